"""Bronze keeps every load of a row; readers downstream want the latest version of each key."""
from __future__ import annotations

from collections.abc import Sequence

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from customer360.bronze.contracts import CHANGE_DELETE, CHANGE_OP, CHANGE_SEQ

VERSION_COLUMN = "_c360_version"


def with_version_rank(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Adds ``_c360_version``: 1 for the latest version of each key, 2 for the one before, ... A
    record id re-exported with changed details thus counts once, with its newest details.

    Latest means the highest change sequence (``change_seq``, where the source delivers changes),
    whatever order the changes arrived in; rows without one (full exports) come before every
    sequenced row; then the latest load (ingestion time, then file and row number)."""
    order = [F.desc_nulls_last(CHANGE_SEQ)] if CHANGE_SEQ in df.columns else []
    order += [F.desc(c) for c in ("_ingested_at", "_source_file", "_row_number") if c in df.columns]
    if not order:
        return df.withColumn(VERSION_COLUMN, F.lit(1))
    return df.withColumn(VERSION_COLUMN, F.row_number().over(Window.partitionBy(*[F.col(k) for k in keys]).orderBy(*order)))


def latest_versions(df: DataFrame, keys: Sequence[str]) -> tuple[DataFrame, int, int]:
    """The latest version of each key (``with_version_rank``) less those whose latest change is a
    delete; with the older versions replaced and the deleted keys left out, counted in one pass."""
    ranked = with_version_rank(df, keys)
    latest = F.col(VERSION_COLUMN) == 1
    replaced, removed = ranked.agg(F.count(F.when(~latest, 1)), F.count(F.when(latest & deleted(ranked), 1))).first()
    return ranked.where(latest & ~deleted(ranked)).drop(VERSION_COLUMN), replaced, removed


def deleted(df: DataFrame) -> F.Column:
    """True on a row whose change is a delete (a source's change data capture); false elsewhere."""
    if CHANGE_OP not in df.columns:
        return F.lit(False)
    return F.coalesce(F.col(CHANGE_OP) == CHANGE_DELETE, F.lit(False))


def apply_changes(current: DataFrame | None, increment: DataFrame, keys: Sequence[str]) -> DataFrame:
    """The rows to upsert into a current-state table (one row per key, deletes kept as tombstone
    rows) so that it takes in ``increment``: per key of the increment, the latest version
    (``with_version_rank``) among the increment's rows and the key's current row, where that is
    not the current row already. A tombstone stays, so a change older than a delete that arrives
    after it cannot bring the record back.

    Latest is a total order (sequence, load time, file, row), so taking it batch by batch ends
    where ``latest_versions`` over every batch at once does: folding the increments in, in any
    grouping, leaves the current-state table's live rows equal to it."""
    candidates = increment.withColumn("_c360_current", F.lit(False))
    if current is not None:
        touched = increment.select(*keys).distinct()
        mine = current.join(touched, list(keys), "left_semi").withColumn("_c360_current", F.lit(True))
        candidates = candidates.unionByName(mine, allowMissingColumns=True)
    ranked = with_version_rank(candidates, keys)
    winners = ranked.where(F.col(VERSION_COLUMN) == 1)
    return winners.where(~F.col("_c360_current")).drop(VERSION_COLUMN, "_c360_current")
