"""Silver facts and gold benchmark: stage times and throughput on the sample, bot flags against truth.

    .venv/bin/python benchmarks/gold.py --scale 0.1 [--repeats 3] [--out benchmarks/results/gold.json]

Generates the sample at ``--scale`` (seed 42) into a temporary folder, ingests it and resolves
identities once, then runs the facts stage and the gold stage ``--repeats`` times each (every run
rebuilds its tables from the previous layer). Writes every timing, the medians and the figures the
stages report as JSON.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import (  # noqa: E402
    arguments, generate_sample, median_seconds, pipeline_context, repeat_stage, result_head,
    sample_config, work_dir, write_json,
)


def main(argv=None) -> int:
    args = arguments(__doc__, scale=0.1, repeats=3, out="gold.json").parse_args(argv)

    import pyspark.sql.functions as F

    from customer360.bronze.stage import run as ingest
    from customer360.facts import stage as facts
    from customer360.gold import stage as gold
    from customer360.identity import stage as identity
    from customer360.tables import CUSTOMER_360, CUSTOMER_FEATURES, REVENUE_MONTHLY, SILVER_WEB_EVENTS, bronze_table

    work = work_dir("gold-bench")
    config = sample_config(work)
    data = generate_sample(work / "sample", scale=args.scale, config=config)
    ctx = pipeline_context(config, run_id="bench-setup")
    ingest(ctx)
    identity.run(ctx)
    spark, lh = ctx.spark, ctx.lakehouse

    runs = {name: repeat_stage(name, stage, config, spark=spark, repeats=args.repeats)
            for name, stage in (("facts", facts.run), ("gold", gold.run))}

    rows_in = {t: lh.read(bronze_table(t)).count() for t in ("orders", "web_events", "support_tickets", "consent")}
    events = lh.read(SILVER_WEB_EVENTS)
    bots = spark.read.parquet(str(data.truth / "bot_cookies.parquet")).select(
        F.substring(F.sha2(F.concat(F.lit("cookie:"), "cookie_id"), 256), 1, 32).alias("visitor_key")
    ).distinct()
    flagged = events.where("is_bot_session").select("visitor_key").distinct()
    true_positive = flagged.join(bots, "visitor_key").count()
    stitch = {r["stitch_rule"]: r["count"] for r in events.groupBy("stitch_rule").count().collect()}
    c360 = lh.read(CUSTOMER_360)
    facts_median = median_seconds(runs["facts"])
    gold_median = median_seconds(runs["gold"])
    report = {
        **result_head("2 cores, local[2], delta-rs engine", args.scale),
        "bronze_rows_in": rows_in,
        "facts": {"median_seconds": facts_median, "rows_per_second": round(sum(rows_in.values()) / facts_median), "runs": runs["facts"]},
        "gold": {"median_seconds": gold_median, "runs": runs["gold"]},
        "web_events_by_stitch_rule": stitch,
        "bot_visitors": {"generated": bots.count(), "flagged": flagged.count(), "flagged_and_generated": true_positive},
        "customer_360_rows": c360.count(),
        "customer_features_rows": lh.read(CUSTOMER_FEATURES).count(),
        "finance_revenue_monthly_rows": lh.read(REVENUE_MONTHLY).count(),
    }
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k not in ("facts", "gold")}, indent=2))
    print(f"facts median {facts_median:.1f} s, gold median {gold_median:.1f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
