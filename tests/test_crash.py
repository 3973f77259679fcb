"""Crash safety: each of ingest, identity, gold and vacuum is killed with SIGKILL (its whole process
group: the Python driver and its JVM) at a random moment, then run again. After the kill the last
committed version of every table reads; after the final run every table holds, row for row, what
one uninterrupted run writes (run ids and times aside): nothing lost, nothing written twice. The
harness is the crash benchmark's (benchmarks/crash.py), which kills each of these and the erasure
6 times; here each is killed once (the erasure, two minutes a run, only there: its interruption at
the two moments that matter is tests/governance/test_erasure.py's), and the commands keep table
names for the session only (no Derby metastore: seconds saved per command); the vacuum is of one
table, on gold built twice. Only the killed start is a fresh process: the bases, the reference and
the rerun run `c360` in this process, on the tests' session (a minute a stage saved of Spark
start-up and a cold JVM). The kill moments come from a seeded generator, so a failure can be
replayed."""
from __future__ import annotations


import pytest

from tests.conftest import REPO, load_script

pytestmark = pytest.mark.slow

KILLS = 1


crash = load_script(REPO / "benchmarks" / "crash.py", "bench_crash")


@pytest.fixture(scope="module")
def bench(spark, tmp_path_factory):
    """The sample (scale 0.0005) and each stage's base lakehouse, built once for the module."""
    return crash.Bench(tmp_path_factory.mktemp("crash"), scale=0.0005, seed=20261206, spark=spark,
                       settings=("lakehouse.catalog.enabled=false", "lakehouse.catalog.local_metastore=memory"),
                       vacuumed=("gold.customer_360",), in_process=True)  # the benchmark vacuums three tables in a row


@pytest.mark.parametrize("stage", [s for s in crash.STAGES if s != "erase"])
def test_a_stage_killed_at_random_moments_converges_to_one_uninterrupted_run(bench, stage):
    result = bench.stage(stage, KILLS)
    assert result["kills_landed"] >= 1 and result["events"] >= 2, result
    assert result["unreadable"] == [] and result["reads_after_kills"] >= 1
    assert result["missing"] == [] and result["differing_tables"] == {}, result
    assert result["rows_differing"] == 0 and result["rows"] > 0 and result["tables"] >= 5
