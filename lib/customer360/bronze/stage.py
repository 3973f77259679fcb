"""The bronze stage: ingest every source (or the named ones) for the run's regions
(``bronze.ingest``), and count each source's rows in and out per region."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from customer360.bronze.contracts import CONTRACTS
from customer360.bronze.ingest import ingest_sources, zero_counts
from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.tables import bronze_table


def run(ctx: RunContext, *, sources: Sequence[str] | None = None, now: datetime | None = None) -> StageResult:
    """The bronze stage: ingest every source (or the named ones) for the context's regions."""
    if ctx.spark.conf.get("spark.sql.session.timeZone") != "UTC":
        raise C360Error("bronze ingestion converts local times assuming spark.sql.session.timeZone=UTC; set it")
    names = list(sources or CONTRACTS)
    unknown = [n for n in names if n not in CONTRACTS]
    if unknown:
        raise C360Error(f"unknown source(s) {unknown}; known: {', '.join(CONTRACTS)}")
    result = StageResult("ingest")
    reports = ingest_sources(ctx, names, now=now or datetime.now(timezone.utc))
    for name, report in zip(names, reports):
        result.lines.append(report.line())
        result.errors += report.files_failed
        table = bronze_table(name)
        for region in ctx.regions:
            counts = report.by_region.get(region, zero_counts())
            result.metrics += [Metric(region, metric, value, table) for metric, value in counts.items()]
        for metric, value in (
            ("files_new", report.files_new),
            ("files_unchanged", report.files_unchanged),
            ("files_changed", len(report.files_changed)),
            ("files_failed", len(report.files_failed)),
        ):
            result.metrics.append(Metric("all", metric, value, table))
    return result
