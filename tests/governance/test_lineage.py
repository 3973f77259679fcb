"""ops.job_runs: every job run records who ran it, on which config and commit, the Delta versions
it read and wrote, its counts, status, duration and error - also when it fails."""
from __future__ import annotations

import pytest

from customer360.config import load_config
from customer360.errors import C360Error
from customer360.governance.lineage import JOB_RUNS, config_hash, git_commit
from customer360.context import Metric, StageResult, build_context
from customer360.pipeline import run_pipeline
from customer360.session import detect_capabilities
from tests.conftest import CONF_DIR


@pytest.fixture
def ctx(spark, tmp_path):
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}", "pipeline.regions=[us]"])
    context = build_context(config, spark=spark, regions=["us"], run_id="lineage-1")
    source = spark.createDataFrame([("a", 1, "us"), ("b", 2, "us")], "id string, n int, region string")
    context.lakehouse.write(source, "silver.src", partition_by=["region"])
    context.lakehouse.write(source.limit(1), "silver.src", mode="append")  # v1
    return context


def copy_stage(c):
    df = c.lakehouse.read("silver.src")
    written = c.lakehouse.write(df, "gold.out", partition_by=["region"])
    c.lakehouse.write(df.limit(1), "gold.out", mode="append")
    return StageResult("copy", metrics=[Metric("us", "rows_written", int(written.rows_written), "gold.out")])


def test_a_job_run_records_versions_read_and_written(ctx, monkeypatch):
    monkeypatch.setenv("C360_USER", "analyst-7")
    monkeypatch.setenv("C360_GIT_COMMIT", "abc123")
    summary = run_pipeline(ctx, stages=[("copy", copy_stage)], job="copy-job")
    assert summary.status == "succeeded"
    row = ctx.lakehouse.read(JOB_RUNS).where("run_id = 'lineage-1'").collect()
    assert len(row) == 1
    row = row[0]
    assert (row.job, row.user, row.git_commit, row.env, row.engine, row.status, row.error) == (
        "copy-job", "analyst-7", "abc123", "local", ctx.lakehouse.engine_name, "succeeded", None,
    )
    assert row.engine == ("delta-spark" if detect_capabilities(ctx.spark).delta_spark else "delta-rs")
    assert row.config_hash == config_hash(ctx.config) and len(row.config_hash) == 16
    assert [tuple(i) for i in row.inputs] == [("silver.src", 1)]
    assert [tuple(o) for o in row.outputs] == [("gold.out", 1, "WRITE", 4)]  # 3 rows, then 1 appended
    assert row.row_counts == {"copy.gold.out.rows_written": 3}
    assert row.regions == ["us"] and row.duration_s >= 0 and row.finished_at >= row.started_at


def test_a_failed_job_records_its_error(ctx):
    def broken(c):
        c.lakehouse.read("silver.src")
        raise C360Error("the source was empty")

    with pytest.raises(C360Error):
        run_pipeline(ctx, stages=[("broken", broken)], job="broken-job")
    row = ctx.lakehouse.read(JOB_RUNS).where("job = 'broken-job'").first()
    assert (row.status, row.error) == ("failed", "C360Error: the source was empty")
    assert [tuple(i) for i in row.inputs] == [("silver.src", 1)] and row.outputs == []


def test_config_hash_changes_with_the_config_and_the_commit_is_found():
    a = load_config("local", conf_dir=CONF_DIR)
    b = load_config("local", conf_dir=CONF_DIR, overrides=["spark.shuffle_partitions=3"])
    assert config_hash(a) == config_hash(load_config("local", conf_dir=CONF_DIR)) != config_hash(b)
    commit = git_commit()
    assert commit is None or len(commit) == 40
