"""Crash safety with figures: each stage killed with SIGKILL at random moments, then run again.

    .venv/bin/python benchmarks/crash.py --kills 8 [--scale 0.0005] [--stages ingest,identity,gold,erase,vacuum]

For each stage, on the bundled sample generator's data:

1. a **base** lakehouse: the stages before it, run once with ``c360`` (the erasure and vacuum
   bases are the whole pipeline through gold; the vacuum base has gold built twice, so there are
   old files to remove);
2. a **reference**: the stage run once, uninterrupted, on a copy of the base (timed);
3. on another copy, the stage started until ``--kills`` kills have landed (at most three starts a
   kill), each start killed with SIGKILL (its whole process group: the Python driver and its JVM)
   at a moment drawn (seeded) as: after a random one of the reference's events but the last (the lines
   ``customer360`` logs as it goes: each table written, each step timed), plus a random part of
   the reference's time to the next one. A moment in events, not seconds, lands anywhere in the
   run however much slower the killed process is than the reference (a fresh process's work is
   1.4-2.9x slower than an in-process reference's on a warm session). A start that
   ends before its moment is counted as tried, not landed (for the erasure it ends the kills: the
   person is erased, later starts would have no one to erase). After every kill, every table must read at its last committed
   version (each is counted in full);
4. the stage run once more, uninterrupted; then every table must equal the reference's, row for
   row (columns holding run times or run and request ids left out, doubles to 6 decimals; the
   file ledger, a log of attempts, by its latest row per file; the identity model log, one
   entry per run, by its latest run's rows; run records not compared).

The erasure is ``c360 erase --customer-id``; its rerun is ``c360 erase --pending`` (plus the
request again if a kill came before it was marked), and afterwards no file under the lakehouse
may hold the person's customer id, record ids or clear email and phone (read from the vault before). The
vacuum is ``c360 vacuum --retention-hours 0`` of three tables in a row.

Writes ``benchmarks/results/crash.json``; ``--markdown`` prints the table for BENCHMARKS.md.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import (  # noqa: E402
    CONF_DIR, arguments, local_config, measured_at, pipeline_context, table_head, table_row, work_dir, write_json,
)
from customer360.tables import (  # noqa: E402 - the checkout's lib/ is on sys.path once common is imported
    CUSTOMER_360,
    CUSTOMER_FEATURES,
    CUSTOMER_GOLDEN,
    CUSTOMER_XREF,
    DQ_RESULTS,
    IDENTITY_MODEL,
    IDENTITY_RECORDS,
    INGESTED_FILES,
    JOB_RUNS,
    PII_VAULT,
    PIPELINE_RUNS,
    RUN_METRICS,
)

STAGES = ("ingest", "identity", "gold", "erase", "vacuum")
#: tables whose rows record runs (ids, times, durations), not data: compared by neither side
RUN_RECORDS = {JOB_RUNS, PIPELINE_RUNS, RUN_METRICS, DQ_RESULTS}
#: columns that hold when or in which run a row was written (and any ``*_run_id`` or ``*_at`` timestamp)
VOLATILE = {"_ingested_at", "_run_id", "run_id", "ingested_at", "request_id", "erased_at", "loaded_at", "started_at",
            "finished_at", "computed_at", "updated_at", "created_at", "_computed_at", "recorded_at"}
VACUUMED = (CUSTOMER_360, CUSTOMER_GOLDEN, CUSTOMER_FEATURES)


def c360(*args: str, sets: list[str]) -> list[str]:
    return [sys.executable, "-m", "customer360.cli", *args, "--conf-dir", str(CONF_DIR), *sets]


def options(root: Path, sample: Path, scale: float) -> list[str]:
    values = [f"lakehouse.root={root}", f"sample_data.dir={sample}", f"sample_data.scale={scale}",
              f"ingest.landing_root={sample / 'sources'}", "spark.driver_memory=1g", "spark.shuffle_partitions=2"]
    return [a for v in values for a in ("--set", v)]


def start(commands: list[list[str]]) -> subprocess.Popen:
    """The commands one after another in one new process group (a kill takes them all)."""
    script = " && ".join(subprocess.list2cmdline(c) for c in commands)
    return subprocess.Popen(
        ["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )


#: a progress event: a line the package logs (``c360``'s log format), not the session's start-up
#: (an in-process run reuses a session, a fresh process starts one)
EVENT = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ INFO (customer360\.[\w.]+): ")


def is_event(logger: str) -> bool:
    return logger.startswith("customer360.") and logger != "customer360.session"


class Watched:
    """A started process whose output is read as it comes, counting its events."""

    def __init__(self, commands: list[list[str]]):
        self.proc = start(commands)
        self.began = time.monotonic()
        self.events: list[float] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                m = EVENT.match(line)
                if m and is_event(m.group(1)):
                    self.events.append(time.monotonic() - self.began)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_event(self, n: int, timeout: float = 600) -> bool:
        """True once the ``n``-th event (1-based) has come; False if the process ended before it."""
        with self._changed:
            return bool(self._changed.wait_for(lambda: len(self.events) >= n or not self._reader.is_alive(), timeout)
                        and len(self.events) >= n)

    def finish(self, timeout: float = 3600) -> None:
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=60)


class _Events(logging.Handler):
    """An in-process run's events (the same log records a fresh process writes as lines)."""

    def __init__(self, began: float):
        super().__init__(logging.INFO)
        self.began, self.times = began, []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO and is_event(record.name):
            self.times.append(time.monotonic() - self.began)


def comparable(df):
    """Columns that say what a row holds, in a form ``exceptAll`` can compare."""
    import pyspark.sql.functions as F
    from pyspark.sql import types as T

    columns = []
    for f in df.schema.fields:
        if f.name in VOLATILE or f.name.endswith("_run_id") or (f.name.endswith("_at") and isinstance(f.dataType, T.TimestampType)):
            continue
        c = F.col(f"`{f.name}`")
        if isinstance(f.dataType, T.MapType):
            c = F.array_sort(F.map_entries(c))
        elif isinstance(f.dataType, (T.DoubleType, T.FloatType)):
            c = F.round(c, 6)
        elif isinstance(f.dataType, (T.StructType, T.ArrayType)):
            c = F.to_json(c)
        columns.append(c.alias(f.name))
    return df.select(*columns)


def read_all(lakehouse) -> dict[str, int | str]:
    """Every table counted in full at its last committed version: name -> rows, or the error."""
    out: dict[str, int | str] = {}
    for name in lakehouse.tables():
        try:
            out[name] = lakehouse.read(name).count()
        except Exception as exc:  # noqa: BLE001 - the failure is the measurement
            out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return out


#: tables each run appends its own rows to (a killed run that got that far keeps them, as it should):
#: compared by the rows of their latest commit
PER_RUN_LOGS = {IDENTITY_MODEL}


def current(lakehouse, name: str):
    """What a table says now: the file ledger is an append-only log of attempts (a killed run
    leaves its ``loading`` rows, by design), so its latest row per file; a per-run log (the model
    each identity run fitted) by its latest run's rows; any other table whole."""
    if name == INGESTED_FILES:
        from customer360.bronze.ingest import ingested_files

        return ingested_files(lakehouse)
    df = lakehouse.read(name)
    if name in PER_RUN_LOGS and (version := lakehouse.version(name)) > 0:
        return df.exceptAll(lakehouse.read(name, version=version - 1))
    return df


def differences(got, expected) -> dict[str, object]:
    """Tables compared, rows compared and rows differing (either way) between two lakehouses."""
    names = sorted(n for n in expected.tables() if n not in RUN_RECORDS)
    missing = sorted(set(names) - set(got.tables()))
    rows = differing = 0
    by_table = {}
    for name in names:
        if name in missing:
            continue
        a, b = comparable(current(got, name)), comparable(current(expected, name))
        if a.columns != b.columns:
            by_table[name] = f"columns differ: {a.columns} vs {b.columns}"
            continue
        n = b.count()
        d = a.exceptAll(b).count() + b.exceptAll(a).count()
        rows += n
        differing += d
        if d:
            by_table[name] = d
    return {"tables": len(names) - len(missing), "missing": missing, "rows": rows, "rows_differing": differing,
            "differing_tables": by_table}


def copy_lakehouse(source: Path, target: Path) -> None:
    """A copy under another path, without the metastore (its names point at the source's paths)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("_catalog"))


def person_traces(root: Path, needles: list[str]) -> list[str]:
    """Files under ``root`` holding any needle (Parquet decoded, other files as bytes)."""
    import pyarrow.parquet as pq

    needles = [n.lower() for n in needles if n]
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            if path.suffix != ".parquet":
                raise ValueError("not Parquet")
            text = (repr(pq.ParquetFile(path).read().to_pylist()) + repr(pq.read_metadata(path).metadata or {})).lower()
        except (ValueError, OSError):  # other files, and a killed writer's unfinished Parquet (never committed): bytes
            text = path.read_bytes().decode("utf-8", errors="replace").lower()
        if any(n in text for n in needles):
            found.append(str(path.relative_to(root)))
    return found


class Bench:
    def __init__(self, work: Path, scale: float, seed: int, spark=None, settings: tuple[str, ...] = (),
                 vacuumed: tuple[str, ...] = VACUUMED, in_process: bool = False):
        from customer360.generate import ensure_sample_data
        from customer360.session import get_session

        self.work, self.sample, self.scale, self.settings = work, work / "sample", scale, list(settings)
        self.vacuumed, self.in_process = vacuumed, in_process
        config = local_config(f"sample_data.dir={self.sample}")
        # the generator's seed is the configuration's (c360 run finds the sample made); ``seed`` draws the kills
        ensure_sample_data(self.sample, scale=scale, seed=config.sample_data.seed, regions=config.pipeline.regions)
        self.spark = spark or get_session(config, metastore=False)
        self.rng = random.Random(seed)

    def run(self, commands: list[list[str]]) -> tuple[float, list[float]]:
        """The commands run uninterrupted: seconds, and when each of their events came (seconds in).

        ``in_process``: run by ``c360``'s own entry point in this process, on its session (the
        tests: no Spark start-up, a warm JVM); else each in a fresh process, as an operator would.
        """
        if not self.in_process:
            watched = Watched(commands)
            watched.finish()
            if watched.proc.returncode != 0:
                raise RuntimeError(f"{commands} exited {watched.proc.returncode}:\n{''.join(watched.lines)[-4000:]}")
            return time.monotonic() - watched.began, watched.events
        from customer360 import cli

        began = time.monotonic()
        events, package = _Events(began), logging.getLogger("customer360")
        level = package.level
        package.addHandler(events)
        package.setLevel(logging.INFO)
        try:
            for command in commands:
                code = cli.main(command[3:])  # past `python -m customer360.cli`
                if code != 0:
                    raise RuntimeError(f"c360 {' '.join(command[3:])} exited {code}")
        finally:
            package.removeHandler(events)
            package.setLevel(level)
        return time.monotonic() - began, events.times

    def lakehouse(self, root: Path):
        config = local_config(f"lakehouse.root={root}", f"sample_data.dir={self.sample}")
        return pipeline_context(config, spark=self.spark, regions=None, metastore=False).lakehouse

    def sets(self, root: Path) -> list[str]:
        return options(root, self.sample, self.scale) + [a for v in self.settings for a in ("--set", v)]

    #: what each stage's base lakehouse is: the base it starts from and the commands run on a copy of it
    BASES = {
        "ingest": (None, []),
        "identity": ("ingest", [["run", "--set", "pipeline.stages=[ingest]"]]),
        "gold": ("identity", [["run", "--set", "pipeline.stages=[identity, facts, quality]"]]),
        "erase": ("gold", [["gold"]]),
        "vacuum": ("erase", [["gold"]]),  # gold again: the first build's files are old now
    }

    #: the same from a reference run of a stage before, the first that has run (stages in order):
    #: vacuum's from the erasure's (old files of a rebuild after an erasure), else from gold's
    FROM_REFERENCE = {
        "identity": (("ingest", []),),
        "gold": (("identity", [["run", "--set", "pipeline.stages=[facts, quality]"]]),),
        "erase": (("gold", []),),
        "vacuum": (("erase", [["gold"]]), ("gold", [["gold"]])),
    }

    def base(self, stage: str) -> Path:
        """The lakehouse the stage starts from (built once, each from the one before)."""
        root = self.work / f"base-{stage}"
        if root.exists():
            return root
        before, steps = self.BASES[stage]
        ran = [(r, s) for r, s in self.FROM_REFERENCE.get(stage, ()) if (self.work / f"ref-{r}").is_dir()]
        if ran:
            reference, steps = ran[0]
            building = self.work / f"building-{stage}"
            shutil.rmtree(building, ignore_errors=True)
            copy_lakehouse(self.work / f"ref-{reference}", building)
            if steps:
                self.run([c360(*step, sets=self.sets(building)) for step in steps])
            building.rename(root)
            return root
        if before is None:
            root.mkdir(parents=True)
            return root
        building = self.work / f"building-{stage}"
        shutil.rmtree(building, ignore_errors=True)
        copy_lakehouse(self.base(before), building)
        self.run([c360(*step, sets=self.sets(building)) for step in steps])
        building.rename(root)
        return root

    def commands(self, stage: str, root: Path, person: str | None) -> list[list[str]]:
        s = self.sets(root)
        if stage == "erase":
            return [c360("erase", "--customer-id", person, sets=s)]
        if stage == "vacuum":
            return [c360("vacuum", name, "--retention-hours", "0", "--no-enforce-retention", sets=s) for name in self.vacuumed]
        return [c360(stage, sets=s)]

    def finish(self, stage: str, root: Path, person: str | None) -> float:
        """The uninterrupted run after the kills; seconds."""
        if stage != "erase":
            return self.run(self.commands(stage, root, person))[0]
        import pyspark.sql.functions as F

        seconds, _ = self.run([c360("erase", "--pending", sets=self.sets(root))])
        xref = self.lakehouse(root).read(CUSTOMER_XREF)
        if xref.where(F.col("customer_id") == person).limit(1).count():  # every kill came before the request was marked
            seconds += self.run(self.commands(stage, root, person))[0]
        return seconds

    def person(self, root: Path) -> tuple[str, list[str]]:
        """A customer with records in several sources, and their customer id and clear values."""
        import pyspark.sql.functions as F

        lh = self.lakehouse(root)
        xref = lh.read(CUSTOMER_XREF).where(F.col("region") == "de")
        chosen = (xref.groupBy("customer_id").agg(F.countDistinct("source").alias("sources"))
                  .orderBy(F.desc("sources"), "customer_id").first()["customer_id"])
        keys = xref.where(F.col("customer_id") == chosen).select("region", "source", "source_record_id")
        records = lh.read(IDENTITY_RECORDS).join(keys, ["region", "source", "source_record_id"])
        tokens = {r[0] for r in records.select(F.explode(F.array("email", "phone")).alias("t")).where("t IS NOT NULL").collect()}
        values = {r["value"] for r in lh.read(PII_VAULT).where(F.col("token").isin(*tokens)).select("value").collect()}
        values |= {r["source_record_id"] for r in keys.collect()}  # unique per record, e.g. CRM-000123
        return chosen, sorted(v for v in values if v and len(v) >= 6)

    def stage(self, stage: str, kills: int) -> dict:
        base = self.base(stage)
        ref, got = self.work / f"ref-{stage}", self.work / f"got-{stage}"
        for target in (ref, got):
            shutil.rmtree(target, ignore_errors=True)
            copy_lakehouse(base, target)
        person, values = self.person(base) if stage == "erase" else (None, [])
        clean, events = self.run(self.commands(stage, ref, person))
        result: dict = {"stage": stage, "clean_seconds": round(clean, 1), "events": len(events), "kills_tried": 0,
                        "kills_landed": 0, "kill_moments": [], "kill_after_events": [], "reads_after_kills": 0,
                        "unreadable": []}
        # started until ``kills`` kills have landed: a start that ends before its moment (a rerun over
        # a half-done run is quicker) is counted as tried, not landed; at most three starts a kill
        length, timeline = clean, events
        for attempt in range(3 * kills):
            if result["kills_landed"] >= kills:
                break
            result["kills_tried"] += 1
            # the moment: after a random one of the events but the last (what the stage logs as it
            # goes: a fresh process is slower than an in-process reference, 1.4-2.9x from its first
            # event on, but the events come in the same order), plus a random part of the time to
            # the next one: before the next event, in either. The events are the reference's until
            # a start ends before its moment: a start after a kill resumes half-done work and logs
            # fewer, so later draws take that start's
            after = self.rng.randint(1, max(1, len(timeline) - 1)) if timeline else 0
            gap = (timeline[after] if after < len(timeline) else length) - (timeline[after - 1] if after else 0.0)
            delay = self.rng.uniform(0.0, gap)
            watched = Watched(self.commands(stage, got, person))
            reached = watched.wait_for_event(after) if after else True
            if reached:
                time.sleep(delay)
            landed = reached and watched.proc.poll() is None
            if landed:
                os.killpg(watched.proc.pid, signal.SIGKILL)
                result["kills_landed"] += 1
                result["kill_moments"].append(round(time.monotonic() - watched.began, 1))
                result["kill_after_events"].append(after)
            watched.finish()
            if not landed:
                length, timeline = time.monotonic() - watched.began, watched.events
            if not landed and stage == "erase":  # the erasure finished: later starts would find no one to erase
                result["erasure_finished_at_start"] = attempt + 1
                break
            state = read_all(self.lakehouse(got))
            result["reads_after_kills"] += len(state)
            result["unreadable"] += [f"kill {attempt + 1}: {name}: {error}" for name, error in state.items() if isinstance(error, str)]
        result["rerun_seconds"] = round(self.finish(stage, got, person), 1)
        result.update(differences(self.lakehouse(got), self.lakehouse(ref)))
        if stage == "erase":
            from customer360.governance.erasure import pending_erasures

            needles = [person, *values]
            result["person_values_searched"] = len(needles)
            result["files_with_traces"] = person_traces(got, needles)
            result["files_scanned"] = sum(1 for p in got.rglob("*") if p.is_file())
            result["pending_after_rerun"] = len(pending_erasures(self.lakehouse(got)))
            result["reference_files_with_traces"] = person_traces(ref, needles)
            result["base_files_with_traces"] = len(person_traces(base, needles))  # the scan does find them
        return result


def markdown(result: dict) -> str:
    lines = [
        f"Measured {result['measured_at']} with `{result['command']}` (scale {result['scale']}, seed {result['seed']}, "
        f"{result['kills_per_stage']} kills per stage; delta-spark; this 2-core machine).",
        "",
        *table_head("stage", "clean run s", "kills landed / tried", "kill moments s (median, range)", "table reads after kills",
                    "unreadable", "tables compared", "rows compared", "rows differing", "rerun s", align="lrrlrrrrrr"),
    ]
    for s in result["stages"]:
        moments = s["kill_moments"]
        spread = f"{statistics.median(moments):.1f} ({min(moments):.1f}-{max(moments):.1f})" if moments else "-"
        lines.append(table_row(
            s["stage"], f"{s['clean_seconds']:.1f}", f"{s['kills_landed']} / {s['kills_tried']}", spread,
            f"{s['reads_after_kills']:,}", len(s["unreadable"]), s["tables"], f"{s['rows']:,}", f"{s['rows_differing']:,}",
            f"{s['rerun_seconds']:.1f}",
        ))
    totals = result["totals"]
    lines += ["", f"Totals: {totals['kills_landed']} kills landed of {totals['kills_tried']}; "
                  f"{totals['unreadable']} unreadable tables after a kill; {totals['rows_differing']} rows differing from "
                  f"an uninterrupted run over {totals['rows']:,} rows compared."]
    erase = next((s for s in result["stages"] if s["stage"] == "erase"), None)
    if erase:
        lines.append(
            f"Erasure: after the rerun {len(erase['files_with_traces'])} of {erase['files_scanned']:,} files under the "
            f"lakehouse hold any of the person's {erase['person_values_searched']} values (customer id, record ids, clear "
            f"email and phone; {erase['base_files_with_traces']} files held them before), {erase['pending_after_rerun']} "
            f"erasures pending."
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = arguments(__doc__, scale=0.0005, out="crash.json")
    parser.add_argument("--kills", type=int, default=8, help="kills to land per stage")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--markdown", action="store_true", help="print the BENCHMARKS.md table")
    parser.add_argument("--work", default=None, help="working folder (default: a new temporary one, removed after)")
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    work = work_dir("crash", args.work)
    bench = Bench(work, args.scale, args.seed)
    result = {
        "benchmark": "crash", "measured_at": measured_at(),
        "command": "python benchmarks/crash.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "scale": args.scale, "seed": args.seed, "kills_per_stage": args.kills, "stages": [],
    }
    for stage in stages:
        began = time.monotonic()
        result["stages"].append(bench.stage(stage, args.kills))
        print(f"{stage}: {json.dumps(result['stages'][-1])[:600]} ({time.monotonic() - began:.0f} s)", file=sys.stderr)
    s = result["stages"]
    result["totals"] = {
        "kills_tried": sum(x["kills_tried"] for x in s), "kills_landed": sum(x["kills_landed"] for x in s),
        "unreadable": sum(len(x["unreadable"]) for x in s), "rows": sum(x["rows"] for x in s),
        "rows_differing": sum(x["rows_differing"] for x in s),
    }
    write_json(args.out, result)
    if args.markdown:
        print(markdown(result))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    bad = result["totals"]["unreadable"] or result["totals"]["rows_differing"] or any(
        x.get("files_with_traces") or x.get("pending_after_rerun") or x.get("missing") or x.get("differing_tables") for x in s)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
