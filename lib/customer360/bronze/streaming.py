"""Bronze ingestion as Structured Streaming: each source's landing folder of each region is a file
stream with its own checkpoint, and every micro-batch is loaded by the batch path.

One query per (source, region) lists ``<landing_root>/<source>/<region>/`` with Spark's file
source (``binaryFile`` with only the path selected, so the bytes are not read by the stream) and
keeps what it has handed over in ``<lakehouse>/_streams/ingest/<source>/<region>``. Its
``foreachBatch`` hands the batch's file names to ``ingest.ingest_sources(only=...)``: the same
contracts, quarantine, row accounting and ``ops.ingested_files`` ledger as ``c360 ingest``.

Exactly once across restarts: a batch whose query died before committing it is handed over again
from the checkpoint, and the ledger makes that replay safe (loaded files are skipped as unchanged;
files left ``loading`` have their rows deleted and are loaded again). Files a batch run loaded
are skipped the same way, so batch and stream can take turns on one landing folder (not run at
once: nothing but this process's lock keeps two loads of one file apart). Files the ledger has as
``failed`` are retried with every batch, as every batch run retries them.

Triggers: ``availableNow`` (everything landed so far, then stop: scheduled runs) or a processing
time interval (``every`` seconds, until ``stop_after`` seconds or the process is stopped). Batches
of all queries run one at a time (a lock), so two never write the ledger at once. A stop waits
for the batch under way; a batch starting after it is left uncommitted for the next run.

Web events can also come from Kafka (``bronze.kafka``): one query per region reads the region's
topic, and each of its batches is written as one file into the landing folder and loaded the same
way, under the same lock (checkpoints in ``<lakehouse>/_streams/ingest_kafka/web_events/<region>``).

Unlike the batch path, the file source lists a name once: a file rewritten in place later is not
seen again (land files by writing elsewhere and renaming). Files in subfolders are skipped by both.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from customer360.bronze.contracts import source_names
from customer360.bronze import kafka
from customer360.bronze.ingest import SourceReport, ingest_sources, landing_folder
from customer360.context import RunContext
from customer360.errors import C360Error

log = logging.getLogger(__name__)

#: under the lakehouse root; not under ``_checkpoints``, whose idle folders an erasure removes
CHECKPOINTS = "_streams/ingest"
#: Spark's file source ignores files older than a week (from the newest seen) by default; the batch
#: path loads them, so the stream does too
MAX_FILE_AGE = "36500d"
#: Spark's binaryFile schema (a stream must be given it); only ``path`` is selected, so no file's
#: bytes are read by the stream itself
BINARY_FILE_SCHEMA = T.StructType([
    T.StructField("path", T.StringType(), False),
    T.StructField("modificationTime", T.TimestampType(), False),
    T.StructField("length", T.LongType(), False),
    T.StructField("content", T.BinaryType(), True),
])


class StreamError(C360Error):
    """A stream stopped on an error its batch raised (the checkpoint keeps the batch for a restart)."""


def checkpoint_location(ctx: RunContext, source: str, region: str) -> str:
    return f"{ctx.lakehouse.root.rstrip('/')}/{CHECKPOINTS}/{source}/{region}"


def _landing_folder(ctx: RunContext, source: str, region: str) -> str:
    """The folder a query lists; created when missing, so a region's first file is picked up."""
    return landing_folder(ctx.config.ingest.landing_root, source, region)[2]


def _relative(source: str, region: str, path: str) -> str | None:
    """``<source>/<region>/<name>`` of a path Spark listed (as Hadoop writes it: not percent-encoded,
    so no URL parsing); None for a file in a subfolder, which the batch path does not read either."""
    parts = path.rstrip("/").split("/")
    if len(parts) < 3 or parts[-3:-1] != [source, region]:
        return None
    return f"{source}/{region}/{parts[-1]}"


class StopRequested(C360Error):
    """Raised in a batch that starts after the stream was asked to stop: it stays uncommitted."""


class _Batches:
    """The foreachBatch of every query: hands each batch's files to the batch path, one batch at a
    time, and folds the reports per source.

    Stopping: ``stopping`` is set, the lock waited for (a batch under way finishes its writes), and
    only then the queries are stopped; a batch that starts later raises ``StopRequested`` before
    touching anything, so it is neither loaded nor committed (the next run hands it over again). A
    batch's own error is kept, so the stream's failure names it rather than py4j's wrapper."""

    def __init__(self, ctx: RunContext, sources: Sequence[str]):
        self.ctx = ctx
        self.reports = {name: SourceReport(name) for name in sources}
        self.batches = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.error: BaseException | None = None
        self.kafka_messages = 0

    def handler(self, source: str, region: str):
        """A file query's foreachBatch: the batch lists landed files."""
        def load(batch: DataFrame, batch_id: int) -> None:
            listed = self._guard(lambda: [r.path for r in batch.select("path").collect()])

            def listed_files() -> tuple[set[str], None]:
                files = set()
                for path in listed:
                    relative = _relative(source, region, path)
                    if relative is None:
                        log.warning("%s: in a subfolder of %s/%s; not loaded (nor by the batch path)", path, source, region)
                    else:
                        files.add(relative)
                return files, None

            self._load(source, region, batch_id, listed_files)

        return load

    def kafka_handler(self, region: str):
        """A Kafka query's foreachBatch: the batch's messages become one landing file first."""
        def load(batch: DataFrame, batch_id: int) -> None:
            def written() -> tuple[set[str], dict[str, int] | None]:
                batch_file = kafka.write_batch_file(self.ctx, region, batch, batch_id)
                if batch_file is None:
                    return set(), None
                self.kafka_messages += batch_file.messages
                return {batch_file.relative}, {batch_file.relative: batch_file.messages}

            self._load(kafka.SOURCE, region, batch_id, written, what="kafka ")

        return load

    def _guard(self, step):
        """Run ``step``, keeping the first error that is not a stop (the stream's failure names it)."""
        try:
            return step()
        except BaseException as exc:
            if not isinstance(exc, StopRequested) and self.error is None:
                self.error = exc
            raise

    def _load(self, source: str, region: str, batch_id: int, prepare, *, what: str = "") -> None:
        """Under the lock: ``prepare()`` gives the batch's files (and, for files of messages, the
        rows each must hold), which the batch path loads."""
        def step() -> None:
            with self.lock:
                if self.stopping:
                    raise StopRequested(f"stream {what}{source}/{region} batch {batch_id} left for the next run: stopping")
                files, messages = prepare()
                if not files:
                    return
                log.info("stream %s%s/%s batch %d: %d file(s)", what, source, region, batch_id, len(files))
                (report,) = ingest_sources(self.ctx, [source], now=datetime.now(timezone.utc), only={source: files},
                                           messages=messages)
                self.reports[source].add(report)
                self.batches += 1

        self._guard(step)

    def stop(self, queries) -> None:
        self.stopping = True
        with self.lock:  # a batch under way finishes its writes; later ones raise StopRequested
            pass
        for query in queries:
            if query.isActive:
                query.stop()

    def await_query(self, query, *, restartable: bool = False) -> bool:
        """Wait for ``query`` to end; raise its error. True (instead of raising) where it ended on
        Spark 4.1.1's Kafka progress-report bug and may be restarted."""
        from pyspark.errors import StreamingQueryException

        try:
            query.awaitTermination()
        except StreamingQueryException as exc:
            if self.error is not None:
                raise StreamError(f"stream {query.name} stopped: {type(self.error).__name__}: {self.error}") from self.error
            if restartable and _kafka_metrics_bug(exc):
                log.warning("stream %s: restarted after Spark's Kafka metrics error (SPARK-55271); its batch was committed", query.name)
                return True
            raise StreamError(f"stream {query.name} stopped: {str(exc).strip().splitlines()[0]}") from exc
        return False


#: restarts of one query that hit SPARK-55271 in one run (it follows the replay of the one batch a
#: crash left uncommitted, so one is expected; more would mean the batch is not being committed)
MAX_RESTARTS = 2


def _kafka_metrics_bug(exc: BaseException) -> bool:
    """SPARK-55271 (Spark 4.1.1): a Kafka query restarted with a batch left uncommitted replays it,
    commits it, and then fails reporting its progress with a NullPointerException, because the
    source's latest offsets were never fetched. The batch is committed (the checkpoint's commit log
    has it), so starting the query again goes on from the next one."""
    text = str(exc)
    return 'IterableOps.map(scala.Function1)" because the return value of "scala.Option.get()" is null' in text


@dataclass
class StreamRun:
    """What a run of the streams did: a report per source over every batch, the batches that loaded
    something, and the Kafka messages those batches took."""

    reports: list[SourceReport]
    batches: int
    kafka_messages: int
    kafka_queries: int


def stream_ingest(
    ctx: RunContext,
    sources: Sequence[str] | None = None,
    *,
    every_seconds: float | None = None,
    stop_after_seconds: float | None = None,
    max_files_per_trigger: int | None = None,
    files: bool = True,
    from_kafka: bool | None = None,
) -> StreamRun:
    """Run one file stream per source and region of ``ctx`` (``files``), and one Kafka stream per
    region for web events (``from_kafka``; None: when ``ingest.kafka.bootstrap_servers`` is set).

    ``every_seconds`` None: ``availableNow`` (each query loads what has landed, then stops).
    Otherwise a processing-time trigger: the queries run until ``stop_after_seconds`` (None: until
    the process is stopped)."""
    names = source_names(sources)
    if from_kafka is None:
        from_kafka = kafka.configured(ctx)
    from_kafka = from_kafka and kafka.SOURCE in names
    batches = _Batches(ctx, names)
    plans = []  # (name, stream, checkpoint, foreachBatch)
    if files:
        for source in names:
            for region in ctx.regions:
                reader = ctx.spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA).option("maxFileAge", MAX_FILE_AGE)
                if max_files_per_trigger:
                    reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
                plans.append((f"c360_ingest_{source}_{region}", lambda s=source, r=region, rd=reader: rd.load(_landing_folder(ctx, s, r)).select("path"),
                              checkpoint_location(ctx, source, region), batches.handler(source, region)))
    if from_kafka:
        for region in ctx.regions:
            plans.append((f"c360_ingest_kafka_{kafka.SOURCE}_{region}", lambda r=region: kafka.read_stream(ctx, r),
                          kafka.checkpoint_location(ctx, region), batches.kafka_handler(region)))
    def start(plan):
        name, stream, checkpoint, handler = plan
        writer = stream().writeStream.queryName(name).option("checkpointLocation", checkpoint).foreachBatch(handler)
        writer = writer.trigger(availableNow=True) if every_seconds is None else writer.trigger(
            processingTime=f"{every_seconds:g} seconds"
        )
        return writer.start()

    queries = []
    restarts = [0] * len(plans)

    def restarted(i: int) -> bool:
        """Wait for query ``i`` to end (raising its error); True where it was started again instead."""
        if not batches.await_query(queries[i], restartable=restarts[i] < MAX_RESTARTS):
            return False
        restarts[i] += 1
        queries[i] = start(plans[i])
        return True

    try:
        for i, plan in enumerate(plans):
            queries.append(start(plan))
            while every_seconds is None and restarted(i):  # one at a time: each drains its folder or topic
                pass
        if every_seconds is not None:
            deadline = None if stop_after_seconds is None else time.monotonic() + stop_after_seconds
            while deadline is None or time.monotonic() < deadline:
                for i, query in enumerate(queries):
                    if not query.isActive:
                        restarted(i)
                if not any(q.isActive for q in queries):
                    break
                time.sleep(0.2)
    finally:
        batches.stop(queries)
    return StreamRun(list(batches.reports.values()), batches.batches, batches.kafka_messages,
                     len(ctx.regions) if from_kafka else 0)
