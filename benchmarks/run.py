"""Pipeline benchmark harness: every stage's throughput and memory, the I/O floor, connected
components against scipy, and the scaling curve.

    .venv/bin/python benchmarks/run.py --scale 0.1                    # one scale
    .venv/bin/python benchmarks/run.py --scale 0.1 --scale 0.3 --scale 1   # scaling curve
    .venv/bin/python benchmarks/run.py --scale 0.1 --label before --no-markdown

For each scale (a fresh process each, so memory figures do not carry over):

1. the sample is generated once per scale and seed and cached under ``--cache-dir``;
2. the I/O floor: Spark reads every raw source once (its contract's schema, no inference) and
   writes it once as Parquet;
3. each stage runs on a fresh lakehouse (ingest, identity, facts, quality, gold; ``--with-ml`` adds
   ml and monitoring): wall seconds, rows in (rows of the Delta table versions it read; for ingest
   the raw rows), rows out (rows it committed), peak driver (Python) and JVM memory, sampled every
   0.2 s;
4. identity: the stage's own connected-components call is timed (its edges are materialized first)
   and the same edge list, collected to the driver, is solved with
   ``scipy.sparse.csgraph.connected_components``; the partitions are compared; the probabilistic
   matching's candidate pairs per second are reported.

Writes ``<out-dir>/run-scale-<S>[-<label>].json`` per scale and appends a section to BENCHMARKS.md
(``--no-markdown`` to skip); with several scales, also ``run-scaling[-<label>].json`` and the
cost per 10x data (the exponent of a least-squares fit of log time on log rows).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import (  # noqa: E402
    LIB, REGIONS, REPO, RESULTS, Stopwatch, arguments, collect_step_times, git_state, local_config,
    measured_at, pipeline_context, table_head, table_row, work_dir, write_json,
)

#: ingest through gold: the stages the I/O-floor target is about (no model training)
CORE_STAGES = ["ingest", "identity", "facts", "quality", "gold"]
ML_STAGES = ["ml", "monitoring"]
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# machine and memory


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import pyspark

    return {
        "cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(), "java": java[0] if java else None, "pyspark": pyspark.__version__,
        "os": platform.platform(),
    }


def _rss_mb(pid: int | str = "self") -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def _jvm_pid(spark) -> int | None:
    """The driver JVM: the process PySpark started (spark-submit execs into java)."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    return proc.pid if proc is not None else None


LIB_PREFIX = str(LIB) + os.sep


def _where(frame) -> str | None:
    """The innermost customer360 line of a stack (``path:line function``), or None."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(LIB_PREFIX):
            return f"{code.co_filename.removeprefix(LIB_PREFIX)}:{frame.f_lineno} {code.co_name}"
        frame = frame.f_back
    return None


class MemorySampler:
    """Peak Python driver RSS, JVM RSS and JVM heap used while a block runs (sampled every 0.2 s);
    and a wall-clock profile: which customer360 line the driver's main thread is in (blocked in
    a Spark action, a Delta commit, pandas...), sampled at the same time."""

    def __init__(self, spark, interval: float = 0.2):
        self.main_thread = threading.get_ident()
        self.lines: dict[str, int] = {}
        self.jvm_pid = _jvm_pid(spark)
        self.memory_bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getMemoryMXBean()
        self.interval = interval

    def _heap_mb(self) -> float:
        try:
            return self.memory_bean.getHeapMemoryUsage().getUsed() / 2**20
        except Exception:  # noqa: BLE001 - the gateway can be busy closing; a missed sample is fine
            return 0.0

    def __enter__(self):
        self.start_python = _rss_mb()
        self.peak = {"python": self.start_python, "jvm_rss": _rss_mb(self.jvm_pid) if self.jvm_pid else 0.0, "jvm_heap": self._heap_mb()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        frame = sys._current_frames().get(self.main_thread)
        where = _where(frame)
        if where:
            self.lines[where] = self.lines.get(where, 0) + 1
        self.peak["python"] = max(self.peak["python"], _rss_mb())
        if self.jvm_pid:
            self.peak["jvm_rss"] = max(self.peak["jvm_rss"], _rss_mb(self.jvm_pid))
        self.peak["jvm_heap"] = max(self.peak["jvm_heap"], self._heap_mb())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def hot_lines(self, top: int = 12) -> list[dict]:
        ranked = sorted(self.lines.items(), key=lambda kv: -kv[1])[:top]
        return [{"line": line, "seconds": round(n * self.interval, 1)} for line, n in ranked]

    def figures(self) -> dict:
        return {
            "peak_driver_python_mb": round(self.peak["python"]),
            "driver_python_growth_mb": round(self.peak["python"] - self.start_python),
            "peak_jvm_rss_mb": round(self.peak["jvm_rss"]),
            "peak_jvm_heap_mb": round(self.peak["jvm_heap"]),
        }


# ---------------------------------------------------------------------------------------------
# data, floor, stages


def sample(cache_dir: Path, scale: float, seed: int) -> tuple[object, float | None]:
    """The cached sample for (scale, seed): (data, seconds generating it, None when cached)."""
    from customer360.generate import ensure_sample_data

    with Stopwatch() as clock:
        data, made = ensure_sample_data(cache_dir / f"scale-{scale:g}-seed-{seed}", scale=scale, seed=seed, regions=REGIONS)
    return data, (round(clock.seconds, 1) if made else None)


def io_floor(spark, sources: Path, out: Path) -> dict:
    """Read every raw source once with its contract's schema and write it once as Parquet."""
    from pyspark.sql import types as T

    from customer360.bronze.contracts import CONTRACTS

    per_source = {}
    total = 0.0
    for name, contract in CONTRACTS.items():
        files = sorted(str(p) for ext in contract.extensions for p in (sources / name).glob(f"*/*{ext}"))
        if not files:
            continue
        with Stopwatch() as clock:
            if contract.format == "csv":
                schema = T.StructType([T.StructField(c.name, T.StringType()) for c in contract.columns])
                df = spark.read.schema(schema).option("header", True).csv(files)
            elif contract.format == "json":
                df = spark.read.schema(contract.schema).json(files)
            else:
                df = spark.read.parquet(*files)
            df.write.mode("overwrite").parquet(str(out / name))
        seconds = clock.seconds
        rows = spark.read.parquet(str(out / name)).count()  # not timed
        per_source[name] = {"files": len(files), "rows": rows, "seconds": round(seconds, 2)}
        total += seconds
    return {"seconds": round(total, 2), "sources": per_source}


def _table_rows(lakehouse, table: str, version: int) -> int | None:
    """Rows of one Delta table version, from the log's per-file statistics (no data read)."""
    from deltalake import DeltaTable

    try:
        actions = DeltaTable(lakehouse.path(table), version=version).get_add_actions(flatten=True)
        return int(sum(v for v in actions.column("num_records").to_pylist() if v is not None))
    except Exception:  # noqa: BLE001 - a table without statistics counts as unknown
        return None


class ComponentsProbe:
    """Wraps the identity stage's ``connected_components``: materializes its edges (Parquet, not
    timed), times the call on them including the final labels, and keeps the edge list for the
    scipy baseline."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.figures: dict = {}

    def install(self):
        from customer360.identity import resolve
        from customer360.identity.graph import ComponentsResult, connected_components

        def probed(vertices, edges, **kwargs):
            entered = time.perf_counter()
            spark = vertices.sparkSession
            vertices.write.mode("overwrite").parquet(str(self.folder / "vertices"))
            edges.select("src", "dst").write.mode("overwrite").parquet(str(self.folder / "edges"))
            v = spark.read.parquet(str(self.folder / "vertices"))
            e = spark.read.parquet(str(self.folder / "edges"))
            with Stopwatch() as clock:
                result = connected_components(v, e, **kwargs)
                labels = result.components.localCheckpoint(eager=True)
            seconds = clock.seconds
            self.figures = {"engine": result.engine, "rounds": result.rounds, "spark_seconds": round(seconds, 2),
                            "vertices": labels.count(), "edges": e.count()}
            labels.write.mode("overwrite").parquet(str(self.folder / "labels"))
            # what the probe added to the stage (materializing edges, counts, the labels' copy)
            self.figures["probe_overhead_seconds"] = round(time.perf_counter() - entered - seconds, 2)
            return ComponentsResult(labels, result.engine, result.rounds)

        self._original = resolve.connected_components
        resolve.connected_components = probed
        return self

    def uninstall(self) -> None:
        from customer360.identity import resolve

        resolve.connected_components = self._original

    def scipy_baseline(self) -> dict:
        """The same edge list, collected to the driver, through scipy; and whether the partitions agree."""
        import numpy as np
        import pyarrow.parquet as pq
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components as scipy_components

        with Stopwatch() as collect:
            vertices = pq.read_table(self.folder / "vertices").column("id").to_numpy()
            edges = pq.read_table(self.folder / "edges")
            src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()

        with Stopwatch() as solve:
            ids = np.unique(vertices)
            n = len(ids)
            matrix = coo_matrix((np.ones(len(src), dtype=np.int8), (np.searchsorted(ids, src), np.searchsorted(ids, dst))), shape=(n, n))
            count, labels = scipy_components(matrix, directed=False)

        spark_labels = pq.read_table(self.folder / "labels").to_pandas().set_index("id")["component"]
        spark_labels = spark_labels.reindex(ids).to_numpy()
        # the same partition: each Spark component is one scipy component and vice versa
        pairs = np.unique(np.stack([spark_labels, labels]), axis=1).shape[1]
        same = pairs == count == len(np.unique(spark_labels))
        return {"collect_seconds": round(collect.seconds, 2), "scipy_seconds": round(solve.seconds, 3), "components": int(count),
                "same_partition": bool(same)}


def _versions(lakehouse) -> dict[str, int]:
    return {t: lakehouse.version(t) for t in lakehouse.tables()}


def run_stage(name: str, ctx, stage, sampler_spark, raw_rows: int | None) -> tuple[dict, object]:
    """Run one stage; rows in are the rows of the data tables it read that existed before it ran
    (its own outputs read back for its report are not input), rows out the rows it committed to
    data tables (``ops.*`` bookkeeping is listed but not counted)."""
    lakehouse = ctx.lakehouse
    before = _versions(lakehouse)
    lakehouse.lineage.reset()
    window_start = time.time()
    with MemorySampler(sampler_spark) as memory, Stopwatch() as clock:
        result = stage(ctx)
    seconds = clock.seconds
    reads = dict(lakehouse.lineage.reads)
    outputs = lakehouse.lineage.outputs()
    inputs = {t: v for t, v in reads.items() if t in before and v <= before[t] and not t.startswith("ops.")}
    if name == "ingest":
        rows_in = raw_rows
    else:
        counted = [_table_rows(lakehouse, t, v) for t, v in inputs.items()]
        rows_in = None if any(n is None for n in counted) else sum(counted)  # None: a version without statistics
    rows_out = sum(rows or 0 for t, _, _, rows in outputs if not t.startswith("ops."))
    figures = {
        "stage": name,
        "seconds": round(seconds, 2),
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_in_per_second": round(rows_in / seconds) if seconds and rows_in is not None else None,
        **memory.figures(),
        "window": [window_start, time.time()],
        "hot_lines": memory.hot_lines(),
        "tables_read": {t: v for t, v in sorted(inputs.items())},
        "tables_written": {t: rows for t, _, _, rows in outputs},
        "errors": list(result.errors),
    }
    return figures, result


def run_scale(args, scale: float) -> dict:
    from customer360.pipeline import default_stages

    steps = collect_step_times("%(asctime)s %(name)s: %(message)s")

    commit = _git_commit()  # before the stages' modules load: what this process runs
    data, generated = sample(Path(args.cache_dir), scale, args.seed)
    raw_rows = sum(data.rows.values())
    print(f"scale {scale:g}: {data.people:,} people, {raw_rows:,} raw rows "
          f"({'generated in %.0f s' % generated if generated is not None else 'cached'})", flush=True)

    work = work_dir(f"bench-{scale:g}", parent=args.work_dir)
    event_logs = work / "eventlog"
    profiling = []
    if args.profile:
        event_logs.mkdir()
        profiling = [f"spark.conf={{spark.eventLog.enabled: 'true', spark.eventLog.dir: '{event_logs.as_uri()}', spark.eventLog.compress: 'false'}}"]
    config = local_config(
        *profiling, f"lakehouse.root={work / 'lh'}", f"ingest.landing_root={data.sources}",
        f"pipeline.regions=[{', '.join(REGIONS)}]", "sample_data.enabled=false", *args.set,
    )
    ctx = pipeline_context(config, run_id=f"bench-{scale:g}")
    spark = ctx.spark

    print("  I/O floor ...", flush=True)
    floor = io_floor(spark, data.sources, work / "floor")
    print(f"  I/O floor: {floor['seconds']:.1f} s", flush=True)

    stages = dict(default_stages())
    names = CORE_STAGES + (ML_STAGES if args.with_ml else [])
    probe = ComponentsProbe(work / "graph").install()
    results = []
    try:
        for name in names:
            steps.steps = {}
            figures, result = run_stage(name, ctx, stages[name], spark, raw_rows)
            if name == "identity" and probe.figures:
                # the stage's time without what the probe added (edges written out, counts)
                figures["seconds_with_probe"] = figures["seconds"]
                overhead = probe.figures["probe_overhead_seconds"]
                figures["seconds"] = round(figures["seconds"] - overhead, 2)
                if figures["rows_in"] is not None:
                    figures["rows_in_per_second"] = round(figures["rows_in"] / figures["seconds"])
                # identity records (after each source's identity_filter): the vertices of the graph
                figures["identity_records"] = probe.figures["vertices"]
                figures["identity_records_per_second"] = round(probe.figures["vertices"] / figures["seconds"])
            figures["ratio_to_floor"] = round(figures["seconds"] / floor["seconds"], 2)
            if name == "identity":
                figures["steps"] = dict(steps.steps)
                if probe.figures and "connected components" in figures["steps"]:
                    # the step without the probe's overhead; it includes the final label join, which
                    # the probe materializes (unprobed, that join runs in the next step)
                    figures["steps"]["connected components"] = round(
                        figures["steps"]["connected components"] - probe.figures["probe_overhead_seconds"], 1)
                models = result_models(result)
                pairs = sum(m["candidate_pairs"] for m in models)
                matching_s = steps.steps.get("probabilistic matching")
                figures["matching"] = {"candidate_pairs": pairs, "seconds": matching_s,
                                       "comparisons_per_second": round(pairs / matching_s) if matching_s else None,
                                       "rules": models}
            results.append(figures)
            print(f"  {name}: {figures['seconds']:.1f} s, {figures['rows_in']:,} rows in, {figures['rows_out']:,} out, "
                  f"{figures['ratio_to_floor']}x floor, driver peak {figures['peak_driver_python_mb']} MB "
                  f"(+{figures['driver_python_growth_mb']}), JVM heap peak {figures['peak_jvm_heap_mb']} MB", flush=True)
            for hot in figures["hot_lines"][:args.show_lines]:
                print(f"      {hot['seconds']:6.1f} s  {hot['line']}", flush=True)
            if figures["errors"]:
                print(f"  {name} reported errors: {figures['errors']}", flush=True)
    finally:
        probe.uninstall()

    if args.profile:
        jobs = spark_jobs(event_logs)
        for figures in results:
            figures["profile"] = profile(jobs, figures["window"])
            print(f"  {figures['stage']}: {figures['profile']['jobs']} Spark jobs, {figures['profile']['job_seconds']} s in jobs", flush=True)
            for site in figures["profile"]["top_call_sites"]:
                print(f"      {site['seconds']:7.2f} s  {site['jobs']:4d} jobs  {site['site']}", flush=True)
    components = dict(probe.figures)
    if components:
        components.update(probe.scipy_baseline())
        components["ratio_to_scipy"] = round(components["spark_seconds"] / max(components["scipy_seconds"], 1e-3), 1)
        print(f"  connected components: {components['spark_seconds']} s, {components['rounds']} rounds; scipy "
              f"{components['scipy_seconds']} s (collect {components['collect_seconds']} s): {components['ratio_to_scipy']}x; "
              f"same partition: {components['same_partition']}", flush=True)

    core = [r for r in results if r["stage"] in CORE_STAGES]
    core_seconds = sum(r["seconds"] for r in core)
    spark_conf = {k: v for k, v in spark.sparkContext.getConf().getAll()
                  if k.startswith(("spark.sql.shuffle", "spark.master", "spark.driver.memory", "spark.sql.adaptive.enabled",
                                   "spark.default.parallelism", "spark.executor.memory", "spark.serializer"))}
    report = {
        "measured_at": measured_at(),
        "label": args.label,
        "command": args.command,
        "git_commit": commit,
        "machine": machine(),
        "spark_settings": dict(sorted(spark_conf.items())),
        "engines": {"lakehouse": ctx.lakehouse.engine_name, "connected_components": components.get("engine"),
                    "graphframes_on_classpath": ctx.capabilities.graphframes},
        "data": {"scale": scale, "seed": args.seed, "regions": REGIONS, "people": data.people, "raw_rows": raw_rows,
                 "rows_by_source": data.rows, "generate_seconds": generated},
        "io_floor": floor,
        "stages": results,
        "ingest_to_gold": {"seconds": round(core_seconds, 1), "ratio_to_floor": round(core_seconds / floor["seconds"], 2)},
        "connected_components": components,
    }
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return report


def result_models(result) -> list[dict]:
    """Candidate pairs per matching rule, from the identity stage's report lines."""
    import re

    out = []
    for line in result.lines:
        m = re.match(r"matching rule (\S+): ([\d,]+) candidate pairs, EM (\d+) iterations", line)
        if m:
            out.append({"rule": m.group(1), "candidate_pairs": int(m.group(2).replace(",", "")), "em_iterations": int(m.group(3))})
    return out


def spark_jobs(event_log_dir: Path) -> list[dict]:
    """Every Spark job in the event log: start and end (epoch s), seconds, and the call site
    (PySpark records the Python line that started the job)."""
    jobs: dict[int, dict] = {}
    for path in sorted(event_log_dir.rglob("events_*")):  # Spark 4 writes rolling logs: eventlog_v2_<app>/events_<n>_<app>
        with open(path, encoding="utf-8") as f:
            for line in f:
                event = json.loads(line)
                kind = event.get("Event")
                if kind == "SparkListenerJobStart":
                    props = event.get("Properties") or {}
                    jobs[event["Job ID"]] = {"start": event["Submission Time"] / 1000,
                                             "site": props.get("callSite.short") or props.get("spark.job.description") or "?"}
                elif kind == "SparkListenerJobEnd" and event["Job ID"] in jobs:
                    job = jobs[event["Job ID"]]
                    job["end"] = event["Completion Time"] / 1000
                    job["seconds"] = job["end"] - job["start"]
    return [j for j in jobs.values() if "seconds" in j]


def profile(jobs: list[dict], window: list[float], top: int = 12) -> dict:
    """A stage's Spark jobs (those started inside its time window): how many, their summed
    seconds, and the call sites that took longest."""
    mine = [j for j in jobs if window[0] <= j["start"] <= window[1]]
    by_site: dict[str, list[float]] = {}
    for j in mine:
        site = j["site"].replace(str(REPO / "lib") + "/", "")
        by_site.setdefault(site, []).append(j["seconds"])
    ranked = sorted(by_site.items(), key=lambda kv: -sum(kv[1]))[:top]
    return {"jobs": len(mine), "job_seconds": round(sum(j["seconds"] for j in mine), 1),
            "top_call_sites": [{"site": site, "jobs": len(times), "seconds": round(sum(times), 2)} for site, times in ranked]}


def _git_commit() -> str | None:
    """The commit measured, with ``+uncommitted`` when lib/, the harness or conf/ differ from it."""
    commit, changed = git_state("lib", "benchmarks/run.py", "benchmarks/common.py", "conf")
    return None if commit is None else commit + ("+uncommitted" if changed else "")


# ---------------------------------------------------------------------------------------------
# scaling and markdown


def cost_per_10x(points: list[tuple[float, float]]) -> float | None:
    """10 ** slope of the least-squares line through (log10 rows, log10 seconds): the factor time
    grows by per 10x data. None with fewer than two points."""
    if len(points) < 2 or len({r for r, _ in points}) < 2 or any(r <= 0 or s <= 0 for r, s in points):
        return None
    xs = [math.log10(r) for r, _ in points]
    ys = [math.log10(s) for _, s in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return round(10**slope, 2)


def scaling(reports: list[dict]) -> dict:
    reports = sorted(reports, key=lambda r: r["data"]["scale"])
    stages = [s["stage"] for s in reports[0]["stages"]]
    per_stage = {}
    for name in stages + ["ingest_to_gold", "io_floor"]:
        points = []
        for r in reports:
            if name == "ingest_to_gold":
                seconds = r["ingest_to_gold"]["seconds"]
            elif name == "io_floor":
                seconds = r["io_floor"]["seconds"]
            else:
                seconds = next(s["seconds"] for s in r["stages"] if s["stage"] == name)
            points.append((r["data"]["raw_rows"], seconds))
        per_stage[name] = {"seconds": [s for _, s in points], "cost_per_10x": cost_per_10x(points)}
    return {"scales": [r["data"]["scale"] for r in reports], "raw_rows": [r["data"]["raw_rows"] for r in reports],
            "per_stage": per_stage}


def _n(value) -> str:
    return "?" if value is None else f"{value:,}"


def markdown(report: dict) -> str:
    d, m = report["data"], report["machine"]
    lines = [
        f"### Scale {d['scale']:g}{' (' + report['label'] + ')' if report['label'] else ''}: "
        f"{d['raw_rows']:,} raw rows, {d['people']:,} people",
        "",
        f"Measured {report['measured_at']} at commit {report['git_commit']} on {m['cpus']} × {m['cpu']}, "
        f"{m['memory_gib']} GiB, {m['java']}, Python {m['python']}, pyspark {m['pyspark']}; "
        f"engines: lakehouse {report['engines']['lakehouse']}, connected components {report['engines']['connected_components']}; "
        "Spark " + ", ".join(f"`{k}={v}`" for k, v in report["spark_settings"].items()) + ".",
        "",
        f"```\n{report['command']}\n```",
        "",
        "Rows in: rows of the Delta table versions the stage read (raw rows for ingest); rows out: rows it committed "
        "(`ops.*` bookkeeping not counted). Driver: the Python process (growth during the stage); the JVM holds the "
        "driver and, in local mode, the executors.",
        "",
        *table_head("stage", "seconds", "rows in", "rows out", "rows in/s", "× I/O floor", "driver peak MB (growth)",
                    "JVM heap peak MB"),
        table_row("I/O floor (read each raw source, write Parquet)", f"{report['io_floor']['seconds']:.1f}", f"{d['raw_rows']:,}",
                  f"{d['raw_rows']:,}", f"{d['raw_rows'] / report['io_floor']['seconds']:,.0f}", "1.00", "", ""),
    ]
    for s in report["stages"]:
        lines.append(table_row(
            s["stage"], f"{s['seconds']:.1f}", _n(s["rows_in"]), f"{s['rows_out']:,}", _n(s["rows_in_per_second"]),
            f"{s['ratio_to_floor']:.2f}", f"{s['peak_driver_python_mb']:,} (+{s['driver_python_growth_mb']:,})",
            f"{s['peak_jvm_heap_mb']:,}",
        ))
    t = report["ingest_to_gold"]
    lines.append(table_row("**ingest → gold**", f"**{t['seconds']:.1f}**", "", "", "", f"**{t['ratio_to_floor']:.2f}**", "", ""))
    cc = report["connected_components"]
    if cc:
        ident = next(s for s in report["stages"] if s["stage"] == "identity")
        mt = ident.get("matching", {})
        lines += [
            "",
            f"Connected components ({cc['engine']}): {cc['vertices']:,} vertices, {cc['edges']:,} edges, {cc['rounds']} rounds, "
            f"{cc['spark_seconds']} s; scipy `connected_components` on the same edge list {cc['scipy_seconds']} s "
            f"(plus {cc['collect_seconds']} s to collect it): **{cc['ratio_to_scipy']}x**; {cc['components']:,} components, "
            f"same partition: {'yes' if cc['same_partition'] else 'NO'}. Identity records: {_n(ident.get('identity_records'))} "
            f"({_n(ident.get('identity_records_per_second'))} per second of the stage). Probabilistic matching: "
            f"{mt.get('candidate_pairs', 0):,} candidate pairs compared in {mt.get('seconds')} s, the whole matching step "
            f"with blocking and EM ({mt.get('comparisons_per_second') or 0:,} comparisons/s).",
        ]
    return "\n".join(lines) + "\n"


def scaling_markdown(result: dict, command: str, label: str | None) -> str:
    scales = result["scales"]
    lines = [
        f"### Scaling{' (' + label + ')' if label else ''}: scales {', '.join(f'{s:g}' for s in scales)} "
        f"({', '.join(f'{r:,}' for r in result['raw_rows'])} raw rows)",
        "",
        f"```\n{command}\n```",
        "",
        *table_head("stage", *(f"scale {s:g} (s)" for s in scales), "cost per 10x data"),
    ]
    for name, row in result["per_stage"].items():
        cost = row["cost_per_10x"]
        lines.append(table_row(name, *(f"{s:.1f}" for s in row["seconds"]), f"{cost if cost is not None else '-'}x"))
    return "\n".join(lines) + "\n"


def append_markdown(path: Path, text: str) -> None:
    marker = "## Harness runs (`benchmarks/run.py`)"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if marker not in current:
        current = current.rstrip("\n") + f"\n\n{marker}\n\nRows appended by each run of the harness, newest last.\n"
    path.write_text(current.rstrip("\n") + "\n\n" + text, encoding="utf-8")


def main(argv=None) -> int:
    parser = arguments(__doc__)
    parser.add_argument("--scale", type=float, action="append", required=True, help="repeat for a scaling curve")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--with-ml", action="store_true", help="also run ml (train and score) and monitoring")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. spark.driver_memory=12g")
    parser.add_argument("--label", default=None, help="a name for this run (before, after, ...) in the file names and tables")
    parser.add_argument("--cache-dir", default=str(REPO / "benchmarks" / ".cache"))
    parser.add_argument("--work-dir", default=None, help="where the lakehouses go (default: the system's temp folder)")
    parser.add_argument("--out-dir", default=str(RESULTS))
    parser.add_argument("--markdown", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-markdown", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the lakehouse")
    parser.add_argument("--show-lines", type=int, default=0, help="print each stage's N hottest lines (sampled)")
    parser.add_argument("--profile", action="store_true",
                        help="Spark event log on: each stage's job count and the Python call sites whose jobs took longest")
    parser.add_argument("--engines", default=None,
                        help="compare lakehouse engines at one scale, each in a fresh process, e.g. delta-spark,delta-rs")
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.command = args.command or "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.label}" if args.label else ""

    if args.engines:
        return compare_engines(args, out_dir)

    if len(args.scale) == 1:
        report = run_scale(args, args.scale[0])
        path = write_json(out_dir / f"run-scale-{args.scale[0]:g}{suffix}.json", report)
        print(f"wrote {path}")
        if not args.no_markdown:
            append_markdown(Path(args.markdown), markdown(report))
        return 1 if any(s["errors"] for s in report["stages"]) else 0

    # several scales: one fresh process each (the JVM and Python memory start clean)
    reports, status = [], 0
    for scale in args.scale:
        child = [sys.executable, __file__, "--scale", str(scale), "--seed", str(args.seed), "--cache-dir", args.cache_dir,
                 "--out-dir", str(out_dir), "--markdown", args.markdown, "--command", args.command]
        child += [f"--set={s}" for s in args.set] + (["--with-ml"] if args.with_ml else []) + (["--label", args.label] if args.label else [])
        child += (["--work-dir", args.work_dir] if args.work_dir else []) + (["--no-markdown"] if args.no_markdown else [])
        child += (["--profile"] if args.profile else []) + ["--show-lines", str(args.show_lines)] + (["--keep"] if args.keep else [])
        path = out_dir / f"run-scale-{scale:g}{suffix}.json"
        path.unlink(missing_ok=True)  # a failed scale must not leave an older run's figures in the table
        code = subprocess.call(child)
        if not path.exists():
            print(f"scale {scale:g} failed (exit {code}); the scaling table covers the scales that finished", flush=True)
            status = 1
            continue
        if code != 0:
            print(f"scale {scale:g}: a stage reported errors (see its JSON); its times are in the table", flush=True)
            status = 1
        reports.append(json.loads(path.read_text()))
    if len(reports) >= 2:
        result = scaling(reports)
        write_json(out_dir / f"run-scaling{suffix}.json", result)
        print(json.dumps(result["per_stage"], indent=2))
        if not args.no_markdown:
            append_markdown(Path(args.markdown), scaling_markdown(result, args.command, args.label))
    return status


def compare_engines(args, out_dir: Path) -> int:
    """One scale, one fresh process per engine (``--set lakehouse.engine=E --label E``), then one
    table of both against the I/O floor each measured: ``engines-scale-<S>.json`` and BENCHMARKS.md."""
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ("delta-spark", "delta-rs")]
    if len(args.scale) != 1 or len(engines) < 2 or unknown:
        raise SystemExit("--engines compares delta-spark and delta-rs at one --scale, e.g. --scale 1 --engines delta-spark,delta-rs")
    scale, reports, status = args.scale[0], [], 0
    for engine in engines:
        child = [sys.executable, __file__, "--scale", str(scale), "--seed", str(args.seed), "--cache-dir", args.cache_dir,
                 "--out-dir", str(out_dir), "--markdown", args.markdown, "--command", args.command, "--label", engine,
                 f"--set=lakehouse.engine={engine}", "--no-markdown"]
        child += [f"--set={s}" for s in args.set] + (["--with-ml"] if args.with_ml else [])
        child += (["--work-dir", args.work_dir] if args.work_dir else [])
        path = out_dir / f"run-scale-{scale:g}-{engine}.json"
        path.unlink(missing_ok=True)
        code = subprocess.call(child)
        if not path.exists():
            print(f"{engine} failed (exit {code})", flush=True)
            return 1
        status |= code != 0
        reports.append(json.loads(path.read_text()))
    result = engine_comparison(reports)
    write_json(out_dir / f"engines-scale-{scale:g}.json", result)
    if not args.no_markdown:
        append_markdown(Path(args.markdown), engines_markdown(result, reports, args.command))
    return int(status)


def engine_comparison(reports: list[dict]) -> dict:
    """Seconds per stage per engine, each engine's ingest -> gold against its own floor, and the
    ratio of every engine's time to the first's."""
    first = reports[0]
    stages = [s["stage"] for s in first["stages"]]
    per_stage = {}
    for name in stages:
        seconds = [next((s["seconds"] for s in r["stages"] if s["stage"] == name), None) for r in reports]
        per_stage[name] = {"seconds": seconds, "ratio_to_first": [
            None if s is None or not seconds[0] else round(s / seconds[0], 2) for s in seconds]}
    return {
        "scale": first["data"]["scale"],
        "raw_rows": first["data"]["raw_rows"],
        "engines": [r["engines"]["lakehouse"] for r in reports],
        "connected_components": [r["engines"]["connected_components"] for r in reports],
        "io_floor_seconds": [r["io_floor"]["seconds"] for r in reports],
        "ingest_to_gold_seconds": [r["ingest_to_gold"]["seconds"] for r in reports],
        "ingest_to_gold_ratio_to_floor": [r["ingest_to_gold"]["ratio_to_floor"] for r in reports],
        "per_stage": per_stage,
    }


def engines_markdown(result: dict, reports: list[dict], command: str) -> str:
    engines, others = result["engines"], [""] * (len(result["engines"]) - 1)
    lines = [
        f"### Engines at scale {result['scale']:g}: {', '.join(engines)} ({result['raw_rows']:,} raw rows)",
        "",
        f"Measured {reports[0]['measured_at']} at commit {reports[0]['git_commit']}, each engine in a fresh process, "
        f"one after the other; connected components: {', '.join(str(c) for c in result['connected_components'])}.",
        "",
        f"```\n{command}\n```",
        "",
        *table_head("stage", *(f"{e} (s)" for e in engines), *(f"{e} / {engines[0]}" for e in engines[1:])),
        table_row("I/O floor", *(f"{s:.1f}" for s in result["io_floor_seconds"]), *others),
    ]
    for name, row in result["per_stage"].items():
        lines.append(table_row(name, *("-" if s is None else f"{s:.1f}" for s in row["seconds"]),
                               *("-" if r is None else f"{r:.2f}" for r in row["ratio_to_first"][1:])))
    total = result["ingest_to_gold_seconds"]
    lines.append(table_row("**ingest → gold**", *(f"**{s:.1f}**" for s in total), *(f"**{s / total[0]:.2f}**" for s in total[1:])))
    lines.append(table_row("× own I/O floor", *(f"{r:.2f}" for r in result["ingest_to_gold_ratio_to_floor"]), *others))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
