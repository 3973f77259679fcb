"""Clickstream from Kafka: each region's topic (``<ingest.kafka.topic_prefix><region>``) is read by
Structured Streaming's Kafka source, and every micro-batch is kept as one JSON-lines file in the
region's landing folder, then loaded by the batch path (``ingest.ingest_sources``) like any file:
same contract, quarantine, row accounting and ``ops.ingested_files`` ledger.

The file is the raw copy bronze promises (every message as it came, replayable without the broker)
and the unit of exactly-once: its name is made from the topic, the batch id and the offset ranges,
its lines are the messages in (partition, offset) order, so a batch replayed from the checkpoint
after a crash writes the same name with the same bytes, and the ledger skips or reloads it as it
does any file.

One message is one line, so messages read = rows read:
- a value with line breaks (pretty-printed JSON) has them read as the spaces JSON allows between
  tokens (a line break cannot be inside a JSON string, where it must be escaped);
- a null or blank value is written as ``null``, and one that is not UTF-8 as a line naming that
  with the bytes in base64: neither is a JSON object, so both are quarantined ("unparseable line")
  with that payload rather than dropped as blank lines are.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyspark.sql.functions as F
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from customer360.bronze.ingest import landing_folder
from customer360.context import RunContext
from customer360.errors import C360Error

log = logging.getLogger(__name__)

#: the one source that can come from Kafka (a JSON-lines contract)
SOURCE = "web_events"
#: under the lakehouse root, beside the file streams' ``_streams/ingest``
CHECKPOINTS = "_streams/ingest_kafka"
NOT_UTF8 = "kafka message that is not UTF-8, base64: "


class KafkaNotConfigured(C360Error):
    """Kafka was asked for but ``ingest.kafka.bootstrap_servers`` is not set."""


def configured(ctx: RunContext) -> bool:
    return ctx.config.ingest.kafka.bootstrap_servers is not None


def topic(ctx: RunContext, region: str) -> str:
    return f"{ctx.config.ingest.kafka.topic_prefix}{region}"


def checkpoint_location(ctx: RunContext, region: str) -> str:
    return f"{ctx.lakehouse.root.rstrip('/')}/{CHECKPOINTS}/{SOURCE}/{region}"


def read_stream(ctx: RunContext, region: str) -> DataFrame:
    """The region's topic as a stream (Spark's Kafka source). Subscribed by a pattern that matches
    the one name: a topic that does not exist yet yields nothing (and is read from its start once
    it appears) instead of failing the query. ``failOnDataLoss`` stays on, so messages the broker
    deleted before they were read stop the stream rather than go missing."""
    kafka = ctx.config.ingest.kafka
    if kafka.bootstrap_servers is None:
        raise KafkaNotConfigured("web events from Kafka need ingest.kafka.bootstrap_servers (e.g. --set ingest.kafka.bootstrap_servers=127.0.0.1:9092)")
    return (
        ctx.spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("subscribePattern", topic(ctx, region).replace(".", "\\."))  # names hold only [A-Za-z0-9._-]
        .option("startingOffsets", kafka.starting_offsets)
        .option("maxOffsetsPerTrigger", str(kafka.max_offsets_per_trigger))
        .option("failOnDataLoss", "true")
        .load()
    )


def message_lines(batch: DataFrame) -> DataFrame:
    """``partition``, ``offset`` and ``line`` (the message as one line; see the module docstring)
    in one partition, sorted by partition and offset."""
    text = F.col("value").cast("string")
    line = F.regexp_replace(
        F.when(F.col("value").isNull(), F.lit("null"))
        .when(~F.expr("is_valid_utf8(CAST(value AS STRING))"), F.concat(F.lit(NOT_UTF8), F.base64("value")))
        .otherwise(text),
        "[\\r\\n]", " ",
    )
    # blank as the batch path judges it (Spark's trim: spaces), which would drop the line
    line = F.when(F.trim(line) == "", F.lit("null")).otherwise(line)
    return batch.select("partition", "offset", line.alias("line")).coalesce(1).sortWithinPartitions("partition", "offset")


@dataclass(frozen=True)
class BatchFile:
    relative: str  # <source>/<region>/<name>, as the ledger and bronze record it
    messages: int
    #: partition -> (first offset, last offset)
    ranges: dict[int, tuple[int, int]]


def file_name(topic_name: str, batch_id: int, ranges: dict[int, tuple[int, int]]) -> str:
    digest = hashlib.sha256(",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(ranges.items())).encode()).hexdigest()[:12]
    return f"{topic_name}-b{batch_id:09d}-{digest}.jsonl"


def write_batch_file(ctx: RunContext, region: str, batch: DataFrame, batch_id: int) -> BatchFile | None:
    """Write the batch's messages to ``<landing_root>/web_events/<region>/`` with Spark's text
    writer (one task, no row through Python) into a hidden staging folder, then move its one part
    file to the batch's name, so no lister sees half a file; None for an empty batch."""
    fs, folder, spark_folder = landing_folder(ctx.config.ingest.landing_root, SOURCE, region)
    topic_name = topic(ctx, region)
    staging = f".{topic_name}-b{batch_id:09d}.partial"
    lines = message_lines(batch).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = lines.groupBy("partition").agg(
            F.min("offset").alias("first"), F.max("offset").alias("last"), F.count(F.lit(1)).alias("n")
        ).collect()
        if not stats:
            return None
        ranges = {r["partition"]: (r["first"], r["last"]) for r in stats}
        messages = sum(r["n"] for r in stats)
        lines.select("line").write.mode("overwrite").text(f"{spark_folder}/{staging}")
        parts = [i.path for i in fs.get_file_info(pafs.FileSelector(f"{folder}/{staging}")) if i.base_name.startswith("part-")]
        if len(parts) != 1:
            raise C360Error(f"kafka {topic_name} batch {batch_id}: {len(parts)} part files written, 1 expected")
        name = file_name(topic_name, batch_id, ranges)
        fs.move(parts[0], f"{folder}/{name}")
    finally:
        lines.unpersist()
        if fs.get_file_info(f"{folder}/{staging}").type != pafs.FileType.NotFound:
            fs.delete_dir(f"{folder}/{staging}")
    log.info("kafka %s batch %d: %d message(s), offsets %s -> %s/%s/%s", topic_name, batch_id, messages,
             {p: f"{a}-{b}" for p, (a, b) in sorted(ranges.items())}, SOURCE, region, name)
    return BatchFile(f"{SOURCE}/{region}/{name}", messages, ranges)


def publish(spark: SparkSession, bootstrap_servers: str, topic_name: str, values: Iterable[str | bytes | None]) -> int:
    """Send ``values`` to ``topic_name`` as messages (Spark's Kafka sink, one batch write); a str is
    sent as UTF-8, in the order given (one producer task). Returns the number sent."""
    rows = [(None if v is None else v.encode("utf-8") if isinstance(v, str) else bytes(v),) for v in values]
    frame = spark.createDataFrame(rows, "value binary")
    (frame.coalesce(1).write.format("kafka").option("kafka.bootstrap.servers", bootstrap_servers)
     .option("topic", topic_name).save())
    return len(rows)
