"""The bronze stage: ingest every source (or the named ones) for the run's regions
(``bronze.ingest``; ``run_stream``: as file streams, ``bronze.streaming``; web events also from
Kafka where configured, ``bronze.kafka``), count each source's rows in and out per region, and
take the new loads into each source's current state (``bronze.current``)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from customer360.bronze import current
from customer360.bronze.contracts import source_names
from customer360.bronze.ingest import ingest_sources, zero_counts
from customer360.bronze import kafka
from customer360.bronze.streaming import StreamRun, stream_ingest
from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.tables import bronze_table


def _check_session(ctx: RunContext) -> None:
    if ctx.spark.conf.get("spark.sql.session.timeZone") != "UTC":
        raise C360Error("bronze ingestion converts local times assuming spark.sql.session.timeZone=UTC; set it")


def run(ctx: RunContext, *, sources: Sequence[str] | None = None, now: datetime | None = None) -> StageResult:
    """The bronze stage: ingest every source (or the named ones) for the context's regions; with
    ``ingest.kafka`` configured, web events are then also taken from Kafka (``availableNow``)."""
    _check_session(ctx)
    names = source_names(sources)
    reports = ingest_sources(ctx, names, now=now or datetime.now(timezone.utc))
    if not (kafka.configured(ctx) and kafka.SOURCE in names):
        return _with_current(ctx, names, _result(ctx, names, reports))
    # after the files: the batch path would otherwise list the files the Kafka batches just wrote
    streamed = stream_ingest(ctx, [kafka.SOURCE], files=False, from_kafka=True)
    by_name = dict(zip(names, reports))
    for report in streamed.reports:
        by_name[report.source].add(report)
    return _with_current(ctx, names, _with_kafka(_result(ctx, names, reports), streamed))


def run_stream(
    ctx: RunContext,
    *,
    sources: Sequence[str] | None = None,
    every_seconds: float | None = None,
    stop_after_seconds: float | None = None,
    max_files_per_trigger: int | None = None,
) -> StageResult:
    """The bronze stage as file streams (``bronze.streaming``): one query per source and region,
    ``availableNow`` unless ``every_seconds``; the same counts as ``run``, over every batch."""
    _check_session(ctx)
    names = source_names(sources)
    streamed = stream_ingest(
        ctx, names, every_seconds=every_seconds, stop_after_seconds=stop_after_seconds,
        max_files_per_trigger=max_files_per_trigger,
    )
    result = _result(ctx, names, streamed.reports)
    mode = "availableNow" if every_seconds is None else f"every {every_seconds:g} s"
    queries = len(names) * len(ctx.regions) + streamed.kafka_queries
    result.lines.insert(0, f"stream ({mode}): {streamed.batches} batch(es) over {queries} queries")
    result.metrics.append(Metric("all", "stream_batches", streamed.batches, None))
    return _with_current(ctx, names, _with_kafka(result, streamed))


def _with_current(ctx: RunContext, names: Sequence[str], result: StageResult) -> StageResult:
    """The loads of this run (and any an earlier run left pending) taken into the sources'
    current-state tables (``bronze.current``)."""
    for report in current.refresh(ctx, names):
        result.lines.append(report.line())
        result.metrics += report.metrics()
    return result


def _with_kafka(result: StageResult, streamed: StreamRun) -> StageResult:
    if streamed.kafka_queries:
        result.lines.append(f"kafka: {streamed.kafka_messages:,} message(s) taken from "
                            f"{streamed.kafka_queries} topic(s), each batch kept as a file in the landing folder")
        result.metrics.append(Metric("all", "kafka_messages", streamed.kafka_messages, bronze_table(kafka.SOURCE)))
    return result


def _result(ctx: RunContext, names: Sequence[str], reports) -> StageResult:
    result = StageResult("ingest")
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
            ("files_vanished", len(report.files_vanished)),
        ):
            result.metrics.append(Metric("all", metric, value, table))
    return result
