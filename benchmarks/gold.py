"""Silver facts and gold benchmark: stage times and throughput on the sample, bot flags against truth.

    .venv/bin/python benchmarks/gold.py --scale 0.1 [--repeats 3] [--out benchmarks/results/gold.json]

Generates the sample at ``--scale`` (seed 42) into a temporary folder, ingests it and resolves
identities once, then runs the facts stage and the gold stage ``--repeats`` times each (every run
rebuilds its tables from the previous layer). Writes every timing, the medians and the figures the
stages report as JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gold.json"))
    args = parser.parse_args(argv)

    import pyspark.sql.functions as F

    from customer360.bronze.stage import run as ingest
    from customer360.config import load_config
    from customer360.facts import stage as facts
    from customer360.generate import generate
    from customer360.gold import stage as gold
    from customer360.identity import stage as identity
    from customer360.context import build_context

    work = Path(tempfile.mkdtemp(prefix="c360-gold-bench-"))
    regions = ["us", "gb", "de", "fr"]
    config = load_config("local", conf_dir=REPO / "conf", overrides=[f"lakehouse.root={work / 'lh'}", f"ingest.landing_root={work / 'sample' / 'sources'}"])
    data = generate(work / "sample", scale=args.scale, seed=42, regions=regions,
                    consent_regimes={c: config.regions[c].consent_regime for c in regions})
    ctx = build_context(config, regions=regions, run_id="bench-setup")
    ingest(ctx)
    identity.run(ctx)
    spark, lh = ctx.spark, ctx.lakehouse

    runs: dict[str, list[dict]] = {"facts": [], "gold": []}
    for stage_name, stage in (("facts", facts.run), ("gold", gold.run)):
        for repeat in range(args.repeats):
            run_ctx = build_context(config, spark=spark, regions=regions, run_id=f"bench-{stage_name}-{repeat}")
            started = time.perf_counter()
            result = stage(run_ctx)
            seconds = time.perf_counter() - started
            runs[stage_name].append({"seconds": round(seconds, 1), "lines": result.lines, "errors": result.errors})
            print(f"{stage_name} run {repeat}: {seconds:.1f} s", flush=True)

    rows_in = {t: lh.read(f"bronze.{t}").count() for t in ("orders", "web_events", "support_tickets", "consent")}
    events = lh.read(facts.SILVER_WEB_EVENTS)
    bots = spark.read.parquet(str(data.truth / "bot_cookies.parquet")).select(
        F.substring(F.sha2(F.concat(F.lit("cookie:"), "cookie_id"), 256), 1, 32).alias("visitor_key")
    ).distinct()
    flagged = events.where("is_bot_session").select("visitor_key").distinct()
    true_positive = flagged.join(bots, "visitor_key").count()
    stitch = {r["stitch_rule"]: r["count"] for r in events.groupBy("stitch_rule").count().collect()}
    c360 = lh.read(gold.CUSTOMER_360)
    facts_median = statistics.median(r["seconds"] for r in runs["facts"])
    gold_median = statistics.median(r["seconds"] for r in runs["gold"])
    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": "2 cores, local[2], delta-rs engine",
        "scale": args.scale,
        "regions": regions,
        "bronze_rows_in": rows_in,
        "facts": {"median_seconds": facts_median, "rows_per_second": round(sum(rows_in.values()) / facts_median), "runs": runs["facts"]},
        "gold": {"median_seconds": gold_median, "runs": runs["gold"]},
        "web_events_by_stitch_rule": stitch,
        "bot_visitors": {"generated": bots.count(), "flagged": flagged.count(), "flagged_and_generated": true_positive},
        "customer_360_rows": c360.count(),
        "customer_features_rows": lh.read(gold.CUSTOMER_FEATURES).count(),
        "finance_revenue_monthly_rows": lh.read(gold.REVENUE_MONTHLY).count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("facts", "gold")}, indent=2))
    print(f"facts median {facts_median:.1f} s, gold median {gold_median:.1f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
