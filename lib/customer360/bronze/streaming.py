"""Bronze ingestion as Structured Streaming: each source's landing folder of each region is a file
stream with its own checkpoint, and every micro-batch is loaded by the batch path.

One query per (source, region) lists ``<landing_root>/<source>/<region>/`` with Spark's file
source (``binaryFile`` with only the path selected, so the bytes are not read by the stream) and
keeps what it has handed over in ``<lakehouse>/_checkpoints/ingest/<source>/<region>``. Its
``foreachBatch`` hands the batch's file names to ``ingest.ingest_sources(only=...)``: the same
contracts, quarantine, row accounting and ``ops.ingested_files`` ledger as ``c360 ingest``.

Exactly once across restarts: a batch whose query died before committing it is handed over again
from the checkpoint, and the ledger makes that replay safe (loaded files are skipped as unchanged;
files left ``loading`` have their rows deleted and are loaded again). Files a batch run loaded
are skipped the same way, so batch and stream can take turns on one landing folder.

Triggers: ``availableNow`` (everything landed so far, then stop: scheduled runs) or a processing
time interval (``every`` seconds, until ``stop_after`` seconds or the process is stopped). Batches
of all queries run one at a time (a lock), so two never write the ledger at once.
"""
from __future__ import annotations

import logging
import posixpath
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import urlparse

import pyarrow.fs as pafs
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from customer360.bronze.contracts import CONTRACTS
from customer360.bronze.ingest import SourceReport, ingest_sources
from customer360.context import RunContext
from customer360.errors import C360Error

log = logging.getLogger(__name__)

CHECKPOINTS = "_checkpoints/ingest"
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
    root = ctx.config.ingest.landing_root.rstrip("/")
    fs, base = pafs.FileSystem.from_uri(root)
    fs.create_dir(f"{base.rstrip('/')}/{source}/{region}", recursive=True)
    return f"{root}/{source}/{region}"


def _relative(source: str, region: str, path: str) -> str:
    return f"{source}/{region}/{posixpath.basename(urlparse(path).path)}"


class _Batches:
    """The foreachBatch of every query: hands each batch's files to the batch path, one batch at a
    time, and folds the reports per source."""

    def __init__(self, ctx: RunContext, sources: Sequence[str]):
        self.ctx = ctx
        self.reports = {name: SourceReport(name) for name in sources}
        self.batches = 0
        self.lock = threading.Lock()

    def handler(self, source: str, region: str):
        def load(batch: DataFrame, batch_id: int) -> None:
            files = {_relative(source, region, r.path) for r in batch.select("path").collect()}
            if not files:
                return
            with self.lock:
                log.info("stream %s/%s batch %d: %d file(s)", source, region, batch_id, len(files))
                (report,) = ingest_sources(self.ctx, [source], now=datetime.now(timezone.utc), only={source: files})
                self.reports[source].add(report)
                self.batches += 1

        return load


def stream_ingest(
    ctx: RunContext,
    sources: Sequence[str] | None = None,
    *,
    every_seconds: float | None = None,
    stop_after_seconds: float | None = None,
    max_files_per_trigger: int | None = None,
) -> tuple[list[SourceReport], int]:
    """Run one file stream per source and region of ``ctx``; returns the per-source reports of
    every batch and the number of batches.

    ``every_seconds`` None: ``availableNow`` (each query loads what has landed, then stops).
    Otherwise a processing-time trigger: the queries run until ``stop_after_seconds`` (None: until
    the process is stopped)."""
    names = list(sources or CONTRACTS)
    unknown = [n for n in names if n not in CONTRACTS]
    if unknown:
        raise C360Error(f"unknown source(s) {unknown}; known: {', '.join(CONTRACTS)}")
    batches = _Batches(ctx, names)
    queries = []
    try:
        for source in names:
            for region in ctx.regions:
                reader = ctx.spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA)
                if max_files_per_trigger:
                    reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
                stream = reader.load(_landing_folder(ctx, source, region)).select("path")
                writer = (
                    stream.writeStream.queryName(f"c360_ingest_{source}_{region}")
                    .option("checkpointLocation", checkpoint_location(ctx, source, region))
                    .foreachBatch(batches.handler(source, region))
                )
                writer = writer.trigger(availableNow=True) if every_seconds is None else writer.trigger(
                    processingTime=f"{every_seconds:g} seconds"
                )
                query = writer.start()
                queries.append(query)
                if every_seconds is None:  # one at a time: each drains its folder and stops
                    _await(query)
        if every_seconds is not None:
            deadline = None if stop_after_seconds is None else time.monotonic() + stop_after_seconds
            while deadline is None or time.monotonic() < deadline:
                for query in queries:
                    if not query.isActive:
                        _await(query)  # raises the batch's error
                time.sleep(0.2)
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
        with batches.lock:  # a batch the stop caught half way finishes its writes first
            pass
    return list(batches.reports.values()), batches.batches


def _await(query) -> None:
    from pyspark.errors import StreamingQueryException

    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        raise StreamError(f"stream {query.name} stopped: {str(exc).strip().splitlines()[0]}") from exc
