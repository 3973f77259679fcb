"""The data-quality gate: ``conf/governance.yaml`` ``quality.checks`` evaluated per region.

* The ``quality`` stage (after facts, ``governance.stage``) checks the configured bronze and silver tables.
* The gold stage calls ``gate`` on the frames it is about to write, before it writes any of them.

Every result is appended to ``ops.dq_results``; a failed ``error`` check then raises
``DataQualityError`` naming it, which stops the pipeline before gold is published. ``warn``
checks are recorded only.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from pyspark.sql import DataFrame

from customer360.config import AppConfig
from customer360.context import Metric, RunContext, StageResult
from customer360.governance.quality import (
    COMMENTS,
    Check,
    CheckResult,
    evaluate_checks,
    previous_row_counts,
    raise_on_errors,
    results_frame,
)
from customer360.lakehouse.core import with_comments
from customer360.tables import DQ_RESULTS


def checks_for(config: AppConfig, table: str) -> list[Check]:
    return [
        Check(
            table=table, kind=c.check, columns=tuple(c.columns), severity=c.severity, values=tuple(c.values),
            min=c.min, max=c.max, max_age_hours=c.max_age_hours, max_change=c.max_change, name=c.name,
        )
        for c in config.quality.checks.get(table, ())
    ]


def gate(ctx: RunContext, frames: Mapping[str, DataFrame], result: StageResult, *, now: datetime | None = None) -> list[CheckResult]:
    """Check ``frames`` (table -> the rows to check), record the results, raise on a failed error check."""
    now = now or datetime.now(timezone.utc)
    lakehouse = ctx.lakehouse
    previous = previous_row_counts(lakehouse.read(DQ_RESULTS) if lakehouse.exists(DQ_RESULTS) else None)
    results: list[CheckResult] = []
    for table, df in frames.items():
        checks = checks_for(ctx.config, table)
        if checks:
            results += evaluate_checks(df, checks, regions=ctx.regions, now=now, previous_rows=previous)
    if not results:
        return results
    frame = results_frame(ctx.spark, results, run_id=ctx.run_id, checked_at=now)
    lakehouse.write(with_comments(frame, COMMENTS).coalesce(1), DQ_RESULTS, mode="append", partition_by=["region"])
    failed = [r for r in results if not r.passed]
    result.lines.append(
        f"data quality: {len(results)} check results on {len(frames)} table(s): {len(results) - len(failed)} passed, "
        f"{sum(r.severity == 'warn' for r in failed)} warnings, {sum(r.severity == 'error' for r in failed)} errors"
    )
    result.lines += [f"  {r.severity.upper()} {r.message}" for r in failed]
    for region in ctx.regions:
        mine = [r for r in failed if r.region == region]
        result.metrics += [
            Metric(region, "dq_errors", sum(r.severity == "error" for r in mine), DQ_RESULTS),
            Metric(region, "dq_warnings", sum(r.severity == "warn" for r in mine), DQ_RESULTS),
        ]
    raise_on_errors(results)
    return results
