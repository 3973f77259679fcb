"""Crash safety of ingestion: `c360 ingest` is killed with SIGKILL at random moments (mid-JVM start,
mid-read, mid-commit), then run again. After every kill the last committed version of every table
reads; after the final run the bronze tables hold, row for row, what one uninterrupted run writes
(run ids and load times aside): nothing lost, nothing loaded twice. The kill points come from a
seeded generator, so a failure can be replayed."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from chispa import assert_df_equality

from customer360.config import load_config
from customer360.generate import ensure_sample_data
from customer360.pipeline import build_context

from tests.conftest import CONF_DIR

pytestmark = pytest.mark.slow

#: per-run metadata that differs between any two runs
VOLATILE = {"_ingested_at", "_run_id", "run_id", "ingested_at"}
KILLS = 3


def _ingest(sets: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "customer360.cli", "ingest", "--conf-dir", str(CONF_DIR), *sets],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # the kill takes the JVM it started with it
    )


def _context(spark, root, sample):
    overrides = [f"lakehouse.root={root}", f"sample_data.dir={sample}", f"ingest.landing_root={sample / 'sources'}"]
    return build_context(load_config("local", conf_dir=CONF_DIR, overrides=overrides), spark=spark)


def test_ingest_killed_at_random_points_converges_to_one_clean_run(spark, tmp_path):
    sample = tmp_path / "sample"
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"sample_data.dir={sample}"])
    ensure_sample_data(sample, scale=0.0005, seed=config.sample_data.seed, regions=config.pipeline.regions)

    def sets(root):
        options = [f"lakehouse.root={root}", f"ingest.landing_root={sample / 'sources'}", "spark.driver_memory=1g",
                   "spark.shuffle_partitions=2"]
        return [a for o in options for a in ("--set", o)]

    started = time.monotonic()
    reference = _ingest(sets(tmp_path / "ref"))
    out = reference.communicate(timeout=600)[0]
    assert reference.returncode == 0, out[-3000:]
    clean_seconds = time.monotonic() - started

    rng = random.Random(20261206)
    killed, states = 0, []
    for attempt in range(KILLS):
        job = _ingest(sets(tmp_path / "lh"))
        time.sleep(rng.uniform(2.0, clean_seconds))
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            killed += 1
        job.communicate(timeout=60)
        # every table's last committed version reads, whatever the kill interrupted
        lh = _context(spark, tmp_path / "lh", sample).lakehouse
        states.append({name: lh.read(name).count() for name in lh.tables()})
    assert killed >= 1, f"no kill landed while ingest ran: {states}"

    final = _ingest(sets(tmp_path / "lh"))
    out = final.communicate(timeout=600)[0]
    assert final.returncode == 0, out[-3000:]

    ref = _context(spark, tmp_path / "ref", sample).lakehouse
    got = _context(spark, tmp_path / "lh", sample).lakehouse
    bronze = sorted(n for n in ref.tables() if n.startswith("bronze."))
    assert len(bronze) == 6 and sorted(n for n in got.tables() if n.startswith("bronze.")) == bronze
    for name in bronze:
        expected, actual = ref.read(name), got.read(name)
        keep = [c for c in expected.columns if c not in VOLATILE]
        assert expected.count() > 0, name
        assert_df_equality(actual.select(keep), expected.select(keep), ignore_row_order=True, ignore_nullable=True)
