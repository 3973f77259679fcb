"""The pipeline: the ordered stages and ``run_pipeline``, which runs them and logs the run.

Orchestration sits above the stages (beside ``cli`` and ``jobs``); nothing below imports it. Each
stage is a ``run(ctx) -> StageResult`` function (``customer360.context``). ``run_pipeline`` runs them
in order for the selected regions and records the run (``context.record_run``: ``ops.pipeline_runs``,
``ops.run_metrics``; ``governance.lineage``: ``ops.job_runs``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from customer360.context import RunContext, Stage, StageResult, record_run, stage_totals
from customer360.governance.lineage import record_job_run
from customer360.lakehouse.catalog import CatalogSync

log = logging.getLogger(__name__)


def default_stages() -> list[tuple[str, Stage]]:
    """The pipeline's stages in run order; each later capability adds its ``run`` here."""
    from customer360.bronze.stage import run as ingest
    from customer360.facts.stage import run as facts
    from customer360.gold.stage import run as gold
    from customer360.governance.stage import run as quality
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
        record_run(ctx, [name for name, _ in chosen], results, started, finished, status, error)
        record_job_run(
            ctx, job=job, started=started, finished=finished, status=status, error=error, row_counts=stage_totals(results)
        )
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
