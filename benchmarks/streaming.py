"""Streaming ingestion: throughput of the file stream and of Kafka against the batch path, and the
latency from a file landing (or a message sent) to its rows in bronze.

    .venv/bin/python benchmarks/streaming.py --scale 0.1 --repeats 3 --latency-drops 8

The sample's web events of one region (``--region``, default us) at ``--scale``:

- throughput, each ``--repeats`` times on a fresh lakehouse: the batch path (``c360 ingest``), the
  file stream (``availableNow``) over the same files, and the Kafka stream (``availableNow``) over
  the same lines sent to a loopback broker (the send is timed apart); rows per second of each;
- latency, one continuous run each (a trigger every ``--every`` s): ``--latency-drops`` small files
  (``--latency-rows`` lines each) landed ``--gap`` s apart by renaming into the landing folder, and
  as many batches of messages sent to Kafka; a drop's latency is from the rename (or the end of the
  send) to the ledger recording its file as loaded, which is after bronze committed its rows.

Writes ``benchmarks/results/streaming.json``.
"""
from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Stopwatch, arguments, finish, generate_sample, local_config, measured_at, median_seconds, pipeline_context, work_dir,
)


def _context(work: Path, name: str, landing: Path, region: str, *overrides: str, spark=None):
    config = local_config(f"lakehouse.root={work / name}", f"ingest.landing_root={landing}", *overrides)
    return pipeline_context(config, regions=[region], run_id=name, spark=spark)


def _rows_per_second(rows: int, runs: list[float]) -> dict:
    return {"seconds": runs, "median_seconds": median_seconds(runs), "rows_per_second": rows / median_seconds(runs)}


def _latencies(ctx, landed: dict[str, float]) -> dict:
    """Seconds from each file's landing to the ledger's ``loaded`` row of it."""
    import pyspark.sql.functions as F

    from customer360.bronze.ingest import ingested_files

    loaded = {
        r.file: r.at for r in ingested_files(ctx.lakehouse).where("status = 'loaded'")
        .select("file", F.col("recorded_at").cast("double").alias("at")).collect()
    }
    seconds = sorted(loaded[f] - t for f, t in landed.items() if f in loaded)
    return {
        "drops": len(landed), "loaded": len(seconds), "seconds": [round(s, 3) for s in seconds],
        "median_seconds": statistics.median(seconds) if seconds else None, "max_seconds": max(seconds) if seconds else None,
    }


def main(argv=None) -> int:
    parser = arguments(__doc__, scale=0.1, repeats=3, out="streaming.json")
    parser.add_argument("--region", default="us")
    parser.add_argument("--latency-drops", type=int, default=8)
    parser.add_argument("--latency-rows", type=int, default=100)
    parser.add_argument("--gap", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=1.0)
    args = parser.parse_args(argv)

    from customer360.bronze import kafka
    from customer360.bronze.stage import run as ingest
    from customer360.bronze.stage import run_stream
    from customer360.bronze.streaming import stream_ingest
    from customer360.services.kafka import KafkaBroker

    work = work_dir("streaming")
    region = args.region
    data = generate_sample(work / "sample", scale=args.scale, regions=[region])
    landing = data.sources
    files = sorted((landing / "web_events" / region).iterdir())
    lines = [line for f in files for line in f.read_bytes().splitlines() if line.strip()]
    rows = len(lines)
    result: dict = {"benchmark": "streaming", "measured_at": measured_at(), "scale": args.scale, "region": region,
                    "web_event_files": len(files), "rows": rows}

    batch, stream, from_kafka = [], [], []
    spark = None
    for i in range(args.repeats):
        ctx = _context(work, f"batch{i}", landing, region, spark=spark)
        spark = ctx.spark
        with Stopwatch() as clock:
            lines_out = ingest(ctx, sources=["web_events"]).lines
        batch.append(clock.seconds)
        ctx = _context(work, f"stream{i}", landing, region, spark=spark)
        with Stopwatch() as clock:
            stream_lines = run_stream(ctx, sources=["web_events"]).lines
        stream.append(clock.seconds)
    result["batch"] = {**_rows_per_second(rows, batch), "accounting": lines_out}
    result["file_stream"] = {**_rows_per_second(rows, stream), "accounting": stream_lines}

    with KafkaBroker(work / "kafka") as broker:
        kafka_set = [f"ingest.kafka.bootstrap_servers={broker.bootstrap_servers}", "ingest.kafka.topic_prefix=bench."]
        with Stopwatch() as clock:
            kafka.publish(spark, broker.bootstrap_servers, f"bench.{region}", lines)
        result["kafka_send"] = {"seconds": clock.seconds, "messages_per_second": rows / clock.seconds}
        for i in range(args.repeats):
            empty = work / f"kafka-landing{i}"
            ctx = _context(work, f"kafka{i}", empty, region, *kafka_set, spark=spark)
            with Stopwatch() as clock:
                streamed = stream_ingest(ctx, ["web_events"], files=False)
            from_kafka.append(clock.seconds)
            assert streamed.kafka_messages == rows, (streamed.kafka_messages, rows)
        result["kafka_stream"] = {**_rows_per_second(rows, from_kafka), "batches": streamed.batches,
                                  "accounting": streamed.reports[0].line()}

        # latency: small drops into a running stream (files, then Kafka)
        drop = lines[: args.latency_rows]
        live = work / "live-landing"
        (live / "web_events" / region).mkdir(parents=True)
        landed: dict[str, float] = {}

        def land_files():
            for k in range(args.latency_drops):
                time.sleep(args.gap)
                name = f"drop_{k:03d}.jsonl"
                staged = live / f".{name}"
                staged.write_bytes(b"\n".join(drop) + b"\n")
                os.replace(staged, live / "web_events" / region / name)
                landed[f"web_events/{region}/{name}"] = time.time()

        ctx = _context(work, "latency-files", live, region, spark=spark)
        lander = threading.Thread(target=land_files)
        lander.start()
        run_stream(ctx, sources=["web_events"], every_seconds=args.every,
                   stop_after_seconds=args.gap * (args.latency_drops + 1) + 10)
        lander.join()
        result["latency_file_stream"] = {"every_seconds": args.every, "rows_per_drop": len(drop), **_latencies(ctx, landed)}

        sent: dict[int, float] = {}

        def send():
            for k in range(args.latency_drops):
                time.sleep(args.gap)
                marked = [line.replace(b'"event_id":"E', f'"event_id":"L{k}-'.encode(), 1) for line in drop]
                kafka.publish(spark, broker.bootstrap_servers, f"late.{region}", marked)
                sent[k] = time.time()

        live_kafka = work / "live-kafka-landing"
        ctx = _context(work, "latency-kafka", live_kafka, region, f"ingest.kafka.bootstrap_servers={broker.bootstrap_servers}",
                       "ingest.kafka.topic_prefix=late.", "ingest.kafka.starting_offsets=latest", spark=spark)
        sender = threading.Thread(target=send)
        sender.start()
        stream_ingest(ctx, ["web_events"], files=False, every_seconds=args.every,
                      stop_after_seconds=args.gap * (args.latency_drops + 1) + 15)
        sender.join()
        # a send's latency ends when the last of the batch files holding its events was recorded loaded
        import pyspark.sql.functions as F

        from customer360.bronze.ingest import ingested_files

        recorded = ingested_files(ctx.lakehouse).where("status = 'loaded'").select(
            F.col("file").alias("_source_file"), F.col("recorded_at").cast("double").alias("at"))
        done = {
            int(r.k): r.at for r in ctx.lakehouse.read("bronze.web_events")
            .select(F.regexp_extract("event_id", r"^L(\d+)-", 1).alias("k"), "_source_file").where("k != ''")
            .join(recorded, "_source_file").groupBy("k").agg(F.max("at").alias("at"), F.count(F.lit(1)).alias("n"))
            .where(F.col("n") == len(drop)).collect()
        }
        seconds = sorted(done[k] - t for k, t in sent.items() if k in done)
        result["latency_kafka_stream"] = {
            "every_seconds": args.every, "rows_per_drop": len(drop), "drops": len(sent), "complete": len(seconds),
            "seconds": [round(x, 3) for x in seconds], "median_seconds": statistics.median(seconds) if seconds else None,
            "max_seconds": max(seconds) if seconds else None,
        }

    result["ratios"] = {
        "file_stream_over_batch": result["file_stream"]["median_seconds"] / result["batch"]["median_seconds"],
        "kafka_stream_over_batch": result["kafka_stream"]["median_seconds"] / result["batch"]["median_seconds"],
    }
    return finish(args.out, result, work)


if __name__ == "__main__":
    raise SystemExit(main())
