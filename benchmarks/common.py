"""What the benchmark scripts share: the checkout's paths (with its lib/ on ``sys.path``), their
common options, a work folder with the sample and a configuration on it, pipeline contexts, timing
and medians, the JSON result files, the commit measured and markdown tables.

A script is run as ``python benchmarks/<name>.py`` (this folder is then first on ``sys.path``) or
loaded by path in a test; each puts this folder on ``sys.path`` itself before importing this module.
Nothing here imports Spark or the package at import time: ``--help`` stays quick.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib"
CONF_DIR = REPO / "conf"
RESULTS = REPO / "benchmarks" / "results"
#: the regions the pipeline benchmarks generate and run
REGIONS = ["us", "gb", "de", "fr"]
#: the sample generator's seed in the pipeline benchmarks
SEED = 42

# the checkout's package, also where it is not installed (identity_splink's child processes)
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))


# --- command line --------------------------------------------------------------------------------

def arguments(doc: str | None = None, *, scale: float | None = None, repeats: int | None = None,
              out: str | None = None) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc`` with the options the benchmarks share, each
    only where its default is given: ``--scale`` (the sample's), ``--repeats`` (timed runs) and
    ``--out`` (the JSON file, ``out`` under benchmarks/results/)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    if scale is not None:
        parser.add_argument("--scale", type=float, default=scale)
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats)
    if out is not None:
        parser.add_argument("--out", default=str(RESULTS / out))
    return parser


def work_dir(prefix: str, folder: str | None = None, *, parent: str | None = None) -> Path:
    """``folder`` (created if missing), else a new temporary folder ``c360-<prefix>-*`` (under
    ``parent`` when given); as an absolute path either way (child processes run elsewhere)."""
    if folder:
        path = Path(folder).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"c360-{prefix}-", dir=parent)).resolve()


# --- sample, configuration, context --------------------------------------------------------------

def local_config(*overrides: str):
    """conf/'s ``local`` environment with ``overrides`` (``key=value``)."""
    from customer360.config import load_config

    return load_config("local", conf_dir=CONF_DIR, overrides=list(overrides))


def sample_config(work: Path, *overrides: str):
    """The ``local`` configuration of a lakehouse at ``work/lh`` landing the sample under ``work/sample``."""
    return local_config(f"lakehouse.root={work / 'lh'}", f"ingest.landing_root={work / 'sample' / 'sources'}", *overrides)


def generate_sample(folder: Path, *, scale: float, config=None, regions: Sequence[str] = REGIONS, seed: int = SEED):
    """The sample at ``scale`` under ``folder``; with ``config``, each region's consent as its
    configured regime (without, the generator's default)."""
    from customer360.generate import generate

    consent = {c: config.regions[c].consent_regime for c in regions} if config is not None else None
    return generate(folder, scale=scale, seed=seed, regions=regions, consent_regimes=consent)


def pipeline_context(config, *, run_id: str | None = None, regions: Sequence[str] | None = REGIONS, spark=None, **options):
    """A pipeline context on ``config`` (a new session unless ``spark``); ``regions=None``: the configuration's."""
    from customer360.context import build_context

    return build_context(config, spark=spark, regions=regions, run_id=run_id, **options)


# --- timing --------------------------------------------------------------------------------------

class Stopwatch:
    """``with Stopwatch() as clock: ...``; then ``clock.seconds`` is the block's wall time."""

    seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._started


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took."""
    with Stopwatch() as clock:
        fn()
    return clock.seconds


def median_seconds(runs: Iterable[dict | float]) -> float:
    """The median of the runs' ``seconds`` (run dicts or plain seconds)."""
    return statistics.median(r["seconds"] if isinstance(r, dict) else r for r in runs)


def repeat_stage(name: str, stage: Callable, config, *, spark, repeats: int, regions: Sequence[str] = REGIONS,
                 echo_lines: bool = False) -> list[dict]:
    """``stage`` run ``repeats`` times, each on a fresh context (run id ``bench-<name>-<n>``) on
    ``spark``: each run's seconds, report lines and errors, printed as it ends (with its lines too
    when ``echo_lines``)."""
    runs = []
    for repeat in range(repeats):
        run_ctx = pipeline_context(config, spark=spark, regions=regions, run_id=f"bench-{name}-{repeat}")
        with Stopwatch() as clock:
            result = stage(run_ctx)
        runs.append({"seconds": round(clock.seconds, 1), "lines": result.lines, "errors": result.errors})
        print(f"{name} run {repeat}: {clock.seconds:.1f} s", flush=True)
        if echo_lines:
            print("\n".join(result.lines), flush=True)
    return runs


class StepTimes(logging.Handler):
    """Collects the 'identity: <step>: <s> s' lines the identity stage logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.steps: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("identity: ") and message.endswith(" s"):
            name, _, seconds = message.removeprefix("identity: ").rpartition(": ")
            self.steps[name] = float(seconds.removesuffix(" s"))


def collect_step_times(log_format: str | None = None) -> StepTimes:
    """Logging at WARNING (in ``log_format``), the package's at INFO into a new :class:`StepTimes`."""
    logging.basicConfig(level=logging.WARNING, **({"format": log_format} if log_format else {}))
    times = StepTimes()
    package = logging.getLogger("customer360")
    package.setLevel(logging.INFO)
    package.addHandler(times)
    return times


# --- results -------------------------------------------------------------------------------------

def measured_at() -> str:
    """Now, UTC, to the second (ISO 8601): a result's ``measured_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def result_head(machine: str, scale: float, regions: Sequence[str] = REGIONS) -> dict:
    """The first keys of a pipeline benchmark's JSON: when it was measured, on what, at which
    scale and on which regions."""
    return {"measured_at": measured_at(), "machine": machine, "scale": scale, "regions": list(regions)}


def write_json(path: str | Path, data) -> Path:
    """``data`` as indented JSON at ``path`` (its folder made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def finish(out: str | Path, result: dict, work: Path) -> int:
    """The end of a benchmark script: ``result`` written to ``out`` and printed, ``work`` removed."""
    write_json(out, result)
    print(json.dumps(result, indent=2))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


def git_state(*paths: str) -> tuple[str | None, list[str] | None]:
    """The checkout's commit (short) and the files under ``paths`` that differ from it; (None, None)
    where git cannot tell."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", *paths], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, sorted(line[3:] for line in dirty.splitlines())


def table_head(*columns: str, align: str | None = None) -> list[str]:
    """A markdown table's header row and rule; ``align`` has an ``l`` or ``r`` per column (default:
    the first column left, the others right)."""
    align = align or "l" + "r" * (len(columns) - 1)
    if len(align) != len(columns):
        raise ValueError(f"{len(columns)} columns but alignment {align!r}")
    return [table_row(*columns), "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]


def table_row(*cells: object) -> str:
    """A markdown table row; an empty cell stays blank (``| |``)."""
    return "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"
