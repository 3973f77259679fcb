"""The pipeline: a run context handed to every stage, the ordered stages, and the run log.

Each stage is a ``run(ctx) -> StageResult`` function. ``run_pipeline`` runs them in order for
the selected regions and appends one row per run to ``ops.pipeline_runs`` and the stages'
counts to ``ops.run_metrics``, so every run's rows in and rows out can be queried later.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from customer360.config import AppConfig, RegionConfig
from customer360.lakehouse import Lakehouse
from customer360.lakehouse.catalog import CatalogSync
from customer360.session import SessionCapabilities, detect_capabilities, get_session

log = logging.getLogger(__name__)

PIPELINE_RUNS = "ops.pipeline_runs"
RUN_METRICS = "ops.run_metrics"

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

def default_stages() -> list[tuple[str, Stage]]:
    """The pipeline's stages in run order; each later capability adds its ``run`` here."""
    from customer360.bronze.ingest import run as ingest
    from customer360.facts.stage import run as facts
    from customer360.gold.stage import run as gold
    from customer360.governance.gate import run as quality
    from customer360.identity.stage import run as identity
    from customer360.ml.stage import run as ml
    from customer360.monitoring.stage import run as monitoring

    return [
        ("ingest", ingest), ("identity", identity), ("facts", facts), ("quality", quality), ("gold", gold),
        ("ml", ml), ("monitoring", monitoring),
    ]


def stage_commands() -> dict[str, Stage]:
    """Every stage a command can run on its own: the pipeline's, plus ``train`` and ``score``
    (what ``ml`` does in ``c360 run``, split)."""
    from customer360.ml.stage import score, train

    return {**dict(default_stages()), "train": train, "score": score}


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


@dataclass
class RunSummary:
    run_id: str
    status: str
    results: list[StageResult]
    started_at: datetime
    finished_at: datetime
    #: the tables' names after the run (None: lakehouse.catalog.enabled is off)
    catalog: CatalogSync | None = None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run_pipeline(ctx: RunContext, *, stages: Sequence[tuple[str, Stage]] | None = None, job: str = "run") -> RunSummary:
    """Run the stages in order (default: ``pipeline.stages``); the run is logged whether it succeeds
    or fails (``ops.pipeline_runs``, ``ops.run_metrics``, and ``ops.job_runs`` as ``job``)."""
    if stages is None:
        stages = [s for s in default_stages() if s[0] in ctx.config.pipeline.stages]
    chosen = list(stages)
    started = _utc_now()
    ctx.lakehouse.lineage.reset()
    results: list[StageResult] = []
    status, error = "succeeded", None
    try:
        # an erasure an interrupted run left pending is finished before anything is built again
        from customer360.governance.erasure import finish_pending

        for report in finish_pending(ctx):
            log.warning("%s", report.lines()[0])
        for name, stage in chosen:
            log.info("stage %s: regions %s", name, ", ".join(ctx.regions))
            results.append(stage(ctx))
        problems = [e for r in results for e in r.errors]
        if problems:
            status, error = "completed_with_errors", "; ".join(problems)
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        finished = _utc_now()
        _record_run(ctx, chosen, results, started, finished, status, error, job=job)
        catalog = register_names(ctx)
    return RunSummary(ctx.run_id, status, results, started, finished, catalog)


def register_names(ctx: RunContext) -> CatalogSync | None:
    """Register the tables the run wrote by name (``lakehouse.catalog``; ``c360 catalog`` names
    them all); a name the catalog refuses is reported in the summary, it does not fail the run
    that wrote the data."""
    if not ctx.config.lakehouse.catalog.enabled:
        return None
    written = list(dict.fromkeys(w.table for w in ctx.lakehouse.lineage.writes))
    try:
        return ctx.lakehouse.sync_catalog(written)
    except Exception as exc:  # noqa: BLE001 - e.g. an unreachable metastore: say so, keep the run's outcome
        log.warning("catalog: names not registered: %s", exc)
        result = CatalogSync(catalog=ctx.lakehouse.catalog.describe())
        result.failed.append(("*", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"))
        return result


def _record_run(
    ctx: RunContext,
    stages: Sequence[tuple[str, Stage]],
    results: Sequence[StageResult],
    started: datetime,
    finished: datetime,
    status: str,
    error: str | None,
    *,
    job: str = "run",
) -> None:
    from customer360.governance.lineage import git_commit, record_job_run

    spark, lakehouse = ctx.spark, ctx.lakehouse
    run_row = (
        ctx.run_id,
        started,
        finished,
        ctx.config.env,
        lakehouse.engine_name,
        list(ctx.regions),
        [name for name, _ in stages],
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
    totals: dict[str, int] = {}
    for result in results:
        for m in result.metrics:
            key = ".".join(p for p in (result.stage, m.table, m.metric) if p)
            totals[key] = totals.get(key, 0) + int(m.value)
    record_job_run(ctx, job=job, started=started, finished=finished, status=status, error=error, row_counts=totals)


def engines_line(ctx: RunContext) -> str:
    """Which Delta engine wrote the tables and whether GraphFrames ran connected components."""
    caps = ctx.capabilities
    engine = ctx.lakehouse.engine_name
    delta = f"{engine} (Delta Lake {caps.delta_version} in the JVM)" if engine == "delta-spark" and caps.delta_version else engine
    graph = "GraphFrames loaded" if caps.graphframes else "GraphFrames not loaded (DataFrame connected components)"
    return f"{delta}; {graph}"


def summary_lines(ctx: RunContext, summary: RunSummary) -> list[str]:
    """What ``c360 run`` prints: engines, regions and their variants, stage output, tables."""
    seconds = (summary.finished_at - summary.started_at).total_seconds()
    lines = [
        f"customer360 run {summary.run_id} ({ctx.config.env}): {summary.status} in {seconds:.1f} s",
        f"  session: {ctx.capabilities.describe()}",
        f"  lakehouse: {ctx.lakehouse.root} (engine {ctx.lakehouse.engine_name})",
        f"  engines: {engines_line(ctx)}",
        f"  names: {summary.catalog.describe() if summary.catalog else 'not registered (lakehouse.catalog.enabled: false)'}",
        "  regions:",
    ]
    for code in ctx.regions:
        r = ctx.region(code)
        lines.append(
            f"    {code}: {r.name}, {r.currency}, {r.time_zone}, consent {r.consent_regime}, "
            f"churn horizon {r.churn_horizon_days} d, windows {list(r.feature_windows_days)}"
        )
    lines.append("  stages:")
    for result in summary.results:
        lines.append(f"    {result.stage}:")
        lines += [f"      {line}" for line in result.lines]
        lines += [f"      ERROR {line}" for line in result.errors]
    lines.append("  tables:")
    for name in ctx.lakehouse.tables():
        lines.append(f"    {name} v{ctx.lakehouse.version(name)}")
    return lines
