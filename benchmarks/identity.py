"""Identity resolution benchmark: the stage's time per step and its quality against ground truth,
plus the DataFrame connected-components algorithm on graphs that are hard for label propagation.

    .venv/bin/python benchmarks/identity.py --scale 0.1 [--repeats 2] [--out benchmarks/results/identity.json]

Generates the sample at ``--scale`` (seed 42) into a temporary folder, ingests it into a fresh
lakehouse, then runs the identity stage ``--repeats`` times: the first run issues every id, later
runs are the incremental path (previous xref read, ids kept). Every run is evaluated against the
generator's truth. Writes every timing and the medians as JSON.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from run import StepTimes  # noqa: E402 - the harness's collector of the identity step times


def _components_benchmark(spark) -> list[dict]:
    from customer360.identity.graph import connected_components

    random.seed(42)
    cases = []
    n = 50_000
    ids = list(range(n))
    random.shuffle(ids)
    cases.append(("chain of 50k vertices, shuffled ids", n, [(ids[i], ids[i + 1]) for i in range(n - 1)]))
    cases.append(("star of 200k vertices, centre the largest id", 200_000, [(199_999, i) for i in range(199_999)]))
    m = 200_000
    cases.append(("random graph, 200k vertices, 200k edges", m, [(random.randrange(m), random.randrange(m)) for _ in range(m)]))
    out = []
    for name, vertices, edges in cases:
        v = spark.range(vertices).withColumnRenamed("id", "id")
        e = spark.createDataFrame(edges, "src long, dst long")
        started = time.perf_counter()
        result = connected_components(v, e)
        components = result.components.select("component").distinct().count()
        seconds = time.perf_counter() - started
        out.append({"graph": name, "vertices": vertices, "edges": len(edges), "rounds": result.rounds,
                    "components": components, "seconds": round(seconds, 2)})
        print(f"  {name}: {result.rounds} rounds, {components:,} components, {seconds:.1f} s", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "identity.json"))
    parser.add_argument("--skip-components", action="store_true")
    args = parser.parse_args(argv)

    from customer360.bronze.stage import run as ingest
    from customer360.config import load_config
    from customer360.generate import generate
    from customer360.identity import stage
    from customer360.identity.evaluate import evaluate
    from customer360.context import build_context

    logging.basicConfig(level=logging.WARNING)
    times = StepTimes()
    logging.getLogger("customer360").setLevel(logging.INFO)
    logging.getLogger("customer360").addHandler(times)

    work = Path(tempfile.mkdtemp(prefix="c360-identity-bench-"))
    regions = ["us", "gb", "de", "fr"]
    config = load_config("local", conf_dir=REPO / "conf", overrides=[f"lakehouse.root={work / 'lh'}", f"ingest.landing_root={work / 'sample' / 'sources'}"])
    data = generate(work / "sample", scale=args.scale, seed=42, regions=regions,
                    consent_regimes={c: config.regions[c].consent_regime for c in regions})
    ctx = build_context(config, regions=regions, run_id="bench-ingest")
    ingest(ctx)
    truth = ctx.spark.read.parquet(str(data.truth / "record_person.parquet"))

    runs = []
    for repeat in range(args.repeats):
        times.steps = {}
        run_ctx = build_context(config, spark=ctx.spark, regions=regions, run_id=f"bench-{repeat}")
        started = time.perf_counter()
        result = stage.run(run_ctx)
        seconds = time.perf_counter() - started
        scores = evaluate(run_ctx.lakehouse.read(stage.CUSTOMER_XREF), truth)
        records = sum(m.value for m in result.metrics if m.metric == "records_in")
        runs.append({
            "run": "first (issues every id)" if repeat == 0 else "incremental (previous xref, ids kept)",
            "seconds": round(seconds, 1),
            "records": records,
            "records_per_second": round(records / seconds),
            "steps": times.steps,
            "precision": round(scores.precision, 5),
            "recall": round(scores.recall, 5),
            "f1": round(scores.f1, 5),
            "persons": scores.persons,
            "customers": scores.customers,
            "over_merged_persons": scores.over_merged_persons,
            "under_merged_persons": scores.under_merged_persons,
            "lines": result.lines,
        })
        print(f"run {repeat}: {seconds:.1f} s, {records:,} records, precision {scores.precision:.4f}, "
              f"recall {scores.recall:.4f}, F1 {scores.f1:.4f}", flush=True)
    components = [] if args.skip_components else _components_benchmark(ctx.spark)

    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scale": args.scale,
        "people": data.people,
        "machine": "2 cores, Spark local[2], shuffle partitions from conf/local.yaml",
        "runs": runs,
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "connected_components": components,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
