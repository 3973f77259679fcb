"""Identity resolution benchmark: the stage's time per step and its quality against ground truth,
plus the DataFrame connected-components algorithm on graphs that are hard for label propagation.

    .venv/bin/python benchmarks/identity.py --scale 0.1 [--repeats 2] [--out benchmarks/results/identity.json]

Generates the sample at ``--scale`` (seed 42) into a temporary folder, ingests it into a fresh
lakehouse, then runs the identity stage ``--repeats`` times: the first run issues every id, later
runs are the incremental path (previous xref read, ids kept). Every run is evaluated against the
generator's truth. Writes every timing and the medians as JSON.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import (  # noqa: E402
    Stopwatch, arguments, collect_step_times, generate_sample, measured_at, median_seconds, pipeline_context,
    sample_config, work_dir, write_json,
)


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
        with Stopwatch() as clock:
            result = connected_components(v, e)
            components = result.components.select("component").distinct().count()
        seconds = clock.seconds
        out.append({"graph": name, "vertices": vertices, "edges": len(edges), "rounds": result.rounds,
                    "components": components, "seconds": round(seconds, 2)})
        print(f"  {name}: {result.rounds} rounds, {components:,} components, {seconds:.1f} s", flush=True)
    return out


def main(argv=None) -> int:
    parser = arguments(__doc__, scale=0.1, repeats=2, out="identity.json")
    parser.add_argument("--skip-components", action="store_true")
    args = parser.parse_args(argv)

    from customer360.bronze.stage import run as ingest
    from customer360.identity import stage
    from customer360.identity.evaluate import evaluate
    from customer360.tables import CUSTOMER_XREF

    times = collect_step_times()
    work = work_dir("identity-bench")
    config = sample_config(work)
    data = generate_sample(work / "sample", scale=args.scale, config=config)
    ctx = pipeline_context(config, run_id="bench-ingest")
    ingest(ctx)
    truth = ctx.spark.read.parquet(str(data.truth / "record_person.parquet"))

    runs = []
    for repeat in range(args.repeats):
        times.steps = {}
        run_ctx = pipeline_context(config, spark=ctx.spark, run_id=f"bench-{repeat}")
        with Stopwatch() as clock:
            result = stage.run(run_ctx)
        seconds = clock.seconds
        scores = evaluate(run_ctx.lakehouse.read(CUSTOMER_XREF), truth)
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
        "measured_at": measured_at(),
        "scale": args.scale,
        "people": data.people,
        "machine": "2 cores, Spark local[2], shuffle partitions from conf/local.yaml",
        "runs": runs,
        "median_seconds": median_seconds(runs),
        "connected_components": components,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
