"""Sample generation and bronze ingestion throughput.

    .venv/bin/python benchmarks/ingest.py --scale 0.1 --repeats 3 [--generate-scale 1]

Generates the sample once at ``--scale`` (timed), then ingests all five sources into a fresh
lakehouse ``--repeats`` times (each timed) and writes every timing, medians and rows per second
to ``benchmarks/results/ingest.json``. ``--generate-scale`` additionally times generating that
(larger) scale once, without ingesting it.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import (  # noqa: E402
    Stopwatch, arguments, finish, generate_sample, local_config, measured_at, median_seconds, pipeline_context, work_dir,
)


def main(argv=None) -> int:
    parser = arguments(__doc__, scale=0.1, repeats=3, out="ingest.json")
    parser.add_argument("--generate-scale", type=float, default=None)
    args = parser.parse_args(argv)

    from customer360.bronze.stage import run as ingest

    work = work_dir("ingest")
    result: dict = {"benchmark": "ingest", "measured_at": measured_at()}

    if args.generate_scale:
        with Stopwatch() as clock:
            big = generate_sample(work / "big", scale=args.generate_scale)
        result["generate_large"] = {
            "scale": args.generate_scale, "seconds": clock.seconds, "rows": big.rows, "people": big.people,
        }
        shutil.rmtree(work / "big")

    with Stopwatch() as clock:
        data = generate_sample(work / "sample", scale=args.scale)
    result["generate"] = {"scale": args.scale, "seconds": clock.seconds, "rows": data.rows}

    runs = []
    for i in range(args.repeats):
        config = local_config(f"lakehouse.root={work / f'lh{i}'}", f"ingest.landing_root={data.sources}")
        ctx = pipeline_context(config, regions=None, run_id=f"bench-{i}")
        with Stopwatch() as clock:
            stage = ingest(ctx)
        runs.append({"seconds": clock.seconds, "lines": stage.lines})
    seconds = [r["seconds"] for r in runs]
    total_rows = sum(data.rows.values())
    result["ingest"] = {
        "scale": args.scale,
        "rows": total_rows,
        "seconds": seconds,
        "median_seconds": median_seconds(seconds),
        "rows_per_second": total_rows / median_seconds(seconds),
        "accounting": runs[-1]["lines"],
    }
    return finish(args.out, result, work)


if __name__ == "__main__":
    raise SystemExit(main())
