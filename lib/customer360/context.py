"""The run context every stage is handed, what a stage returns, and the pipeline run log.

This module sits below the stages and above config, session and lakehouse: a stage imports
``RunContext``, ``StageResult`` and ``Metric`` from here, never from ``pipeline`` (orchestration,
above the stages). ``record_run`` appends one row per run to ``ops.pipeline_runs`` and the stages'
counts to ``ops.run_metrics``, so every run's rows in and rows out can be queried later.
"""
from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from customer360.config import AppConfig, RegionConfig
from customer360.lakehouse import Lakehouse
from customer360.session import SessionCapabilities, detect_capabilities, get_session
from customer360.tables import PIPELINE_RUNS, RUN_METRICS

log = logging.getLogger(__name__)

PIPELINE_RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), False),
        T.StructField("env", T.StringType(), False),
        T.StructField("engine", T.StringType(), False),
        T.StructField("regions", T.ArrayType(T.StringType(), False), False),
        T.StructField("stages", T.ArrayType(T.StringType(), False), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("error", T.StringType(), True),
        T.StructField("git_commit", T.StringType(), True),
    ]
)

RUN_METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("stage", T.StringType(), False),
        T.StructField("table", T.StringType(), True),
        T.StructField("metric", T.StringType(), False),
        T.StructField("value", T.LongType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class RunContext:
    """Everything a stage needs: config, session, storage, and which regions to process."""

    config: AppConfig
    spark: SparkSession
    lakehouse: Lakehouse
    regions: tuple[str, ...]
    run_id: str
    capabilities: SessionCapabilities
    #: the date gold features are computed as of (``--as-of``); None: config, else the data's end
    as_of: date | None = None

    def region(self, code: str) -> RegionConfig:
        return self.config.regions[code]


@dataclass(frozen=True)
class Metric:
    region: str
    metric: str
    value: int
    table: str | None = None


@dataclass
class StageResult:
    stage: str
    metrics: list[Metric] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    #: problems that did not stop the stage (e.g. a source file that failed); the run exits non-zero
    errors: list[str] = field(default_factory=list)


Stage = Callable[[RunContext], StageResult]



def build_context(
    config: AppConfig,
    *,
    regions: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    run_id: str | None = None,
    as_of: date | None = None,
    metastore: bool = True,
) -> RunContext:
    spark = spark or get_session(config, metastore=metastore)
    capabilities = detect_capabilities(spark)
    log.info("session: %s", capabilities.describe())
    return RunContext(
        config=config,
        spark=spark,
        lakehouse=Lakehouse(spark, config.lakehouse),
        regions=config.select_regions(regions),
        run_id=run_id or uuid.uuid4().hex[:16],
        capabilities=capabilities,
        as_of=as_of,
    )


def record_run(
    ctx: RunContext,
    stages: Sequence[str],
    results: Sequence[StageResult],
    started: datetime,
    finished: datetime,
    status: str,
    error: str | None,
) -> None:
    """Append the run to ``ops.pipeline_runs`` and its stages' counts to ``ops.run_metrics``."""
    spark, lakehouse = ctx.spark, ctx.lakehouse
    run_row = (
        ctx.run_id,
        started,
        finished,
        ctx.config.env,
        lakehouse.engine_name,
        list(ctx.regions),
        list(stages),
        status,
        error,
        git_commit(),
    )
    # One small file per run, not one per default partition.
    run_df = spark.createDataFrame([run_row], PIPELINE_RUNS_SCHEMA).coalesce(1)
    lakehouse.write(run_df, PIPELINE_RUNS, mode="append")
    metric_rows = [
        (ctx.run_id, result.stage, m.table, m.metric, int(m.value), finished, m.region)
        for result in results
        for m in result.metrics
    ]
    if metric_rows:
        lakehouse.write(
            spark.createDataFrame(metric_rows, RUN_METRICS_SCHEMA).coalesce(1),
            RUN_METRICS,
            mode="append",
            partition_by=["region"],
        )


def stage_totals(results: Sequence[StageResult]) -> dict[str, int]:
    """The stages' counts summed over regions, as ``stage.table.metric -> value``."""
    totals: dict[str, int] = {}
    for result in results:
        for m in result.metrics:
            key = ".".join(p for p in (result.stage, m.table, m.metric) if p)
            totals[key] = totals.get(key, 0) + int(m.value)
    return totals


def git_commit() -> str | None:
    """C360_GIT_COMMIT (set by deployments), else HEAD of the checkout the package runs from."""
    if os.environ.get("C360_GIT_COMMIT"):
        return os.environ["C360_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
