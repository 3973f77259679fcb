"""Bronze keeps every load of a row; readers downstream want the latest version of each key."""
from __future__ import annotations

from collections.abc import Sequence

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

VERSION_COLUMN = "_c360_version"


def with_version_rank(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Adds ``_c360_version``: 1 for the latest load of each key (ingestion time, then file and
    row number), 2 for the one before, ... A record id re-exported with changed details thus
    counts once, with its newest details."""
    order = [F.desc(c) for c in ("_ingested_at", "_source_file", "_row_number") if c in df.columns]
    if not order:
        return df.withColumn(VERSION_COLUMN, F.lit(1))
    return df.withColumn(VERSION_COLUMN, F.row_number().over(Window.partitionBy(*[F.col(k) for k in keys]).orderBy(*order)))
