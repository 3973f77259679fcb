"""Sample generation and bronze ingestion throughput.

    .venv/bin/python benchmarks/ingest.py --scale 0.1 --repeats 3 [--generate-scale 1]

Generates the sample once at ``--scale`` (timed), then ingests all five sources into a fresh
lakehouse ``--repeats`` times (each timed) and writes every timing, medians and rows per second
to ``benchmarks/results/ingest.json``. ``--generate-scale`` additionally times generating that
(larger) scale once, without ingesting it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from customer360.bronze.stage import run as ingest
from customer360.config import load_config
from customer360.generate import generate
from customer360.context import build_context


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generate-scale", type=float, default=None)
    parser.add_argument("--out", default="benchmarks/results/ingest.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="c360-ingest-"))
    result: dict = {"benchmark": "ingest", "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    if args.generate_scale:
        start = time.perf_counter()
        big = generate(work / "big", scale=args.generate_scale, seed=42)
        result["generate_large"] = {
            "scale": args.generate_scale, "seconds": time.perf_counter() - start, "rows": big.rows, "people": big.people,
        }
        shutil.rmtree(work / "big")

    start = time.perf_counter()
    data = generate(work / "sample", scale=args.scale, seed=42)
    result["generate"] = {"scale": args.scale, "seconds": time.perf_counter() - start, "rows": data.rows}

    runs = []
    for i in range(args.repeats):
        config = load_config(
            "local",
            overrides=[f"lakehouse.root={work / f'lh{i}'}", f"ingest.landing_root={data.sources}"],
        )
        ctx = build_context(config, run_id=f"bench-{i}")
        start = time.perf_counter()
        stage = ingest(ctx)
        runs.append({"seconds": time.perf_counter() - start, "lines": stage.lines})
    seconds = [r["seconds"] for r in runs]
    total_rows = sum(data.rows.values())
    result["ingest"] = {
        "scale": args.scale,
        "rows": total_rows,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "rows_per_second": total_rows / statistics.median(seconds),
        "accounting": runs[-1]["lines"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
