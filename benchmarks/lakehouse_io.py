"""Lakehouse I/O on the engine this session gets: write, read, region replace and merge.

    .venv/bin/python benchmarks/lakehouse_io.py --rows 2000000 --repeats 3

Each operation runs ``--repeats`` times in one process; the JSON holds every timing and the
median. The baseline is a plain Spark Parquet write/read of the same frame, so the ratios show
what the Delta commit (staging, moving files, the delta-rs transaction) costs on top.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import REGIONS, arguments, local_config, measured_at, median_seconds, timed, work_dir, write_json  # noqa: E402


def main(argv=None) -> int:
    parser = arguments(__doc__, repeats=3, out="lakehouse_io.json")
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args(argv)

    import pyspark.sql.functions as F

    from customer360.lakehouse import Lakehouse
    from customer360.session import get_session

    work = work_dir("bench")
    config = local_config(f"lakehouse.root={work / 'lh'}", "spark.shuffle_partitions=4")
    spark = get_session(config)
    spark.sparkContext.setLogLevel("ERROR")
    lakehouse = Lakehouse(spark, config.lakehouse)

    region = F.element_at(F.array(*[F.lit(r) for r in REGIONS]), (F.col("id") % len(REGIONS) + 1).cast("int"))
    data = (
        spark.range(args.rows, numPartitions=4)
        .select(
            F.format_string("c%09d", "id").alias("customer_id"),
            (F.col("id") % 997).cast("double").alias("amount"),
            F.timestamp_seconds(F.lit(1_767_225_600) + F.col("id")).alias("seen_at"),
            region.alias("region"),
        )
        .cache()
    )
    data.count()
    us_rows = data.where("region = 'us'").cache()
    us_rows.count()
    updates = data.where(F.col("id") % 100 == 0).withColumn("amount", F.col("amount") + 1).cache()
    updates.count()

    timings: dict[str, list[float]] = {k: [] for k in (
        "parquet_write", "parquet_read", "delta_write", "delta_read", "delta_replace_region", "delta_merge_1pct"
    )}
    for i in range(args.repeats):
        raw = str(work / f"raw{i}")
        timings["parquet_write"].append(timed(lambda: data.write.partitionBy("region").parquet(raw)))
        timings["parquet_read"].append(
            timed(lambda: spark.read.parquet(raw).agg(F.sum("amount"), F.count("*")).collect())
        )
        name = f"silver.bench_{i}"
        timings["delta_write"].append(timed(lambda: lakehouse.write(data, name, partition_by=["region"])))
        timings["delta_read"].append(
            timed(lambda: lakehouse.read(name).agg(F.sum("amount"), F.count("*")).collect())
        )
        timings["delta_replace_region"].append(timed(lambda: lakehouse.write(us_rows, name, regions=["us"])))
        timings["delta_merge_1pct"].append(timed(lambda: lakehouse.merge(updates, name, keys=["customer_id"])))
        assert lakehouse.read(name).count() == args.rows

    medians = {k: median_seconds(v) for k, v in timings.items()}
    result = {
        "benchmark": "lakehouse_io",
        "measured_at": measured_at(),
        "engine": lakehouse.engine_name,
        "rows": args.rows,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "spark": spark.version},
        "seconds": timings,
        "median_seconds": medians,
        "rows_per_second": {k: args.rows / v for k, v in medians.items() if k in ("parquet_write", "delta_write")},
        "ratios": {
            "delta_write_vs_parquet_write": medians["delta_write"] / medians["parquet_write"],
            "delta_read_vs_parquet_read": medians["delta_read"] / medians["parquet_read"],
        },
    }
    write_json(args.out, result)
    print(json.dumps({"median_seconds": medians, "ratios": result["ratios"]}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
