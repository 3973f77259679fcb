"""The c360 command, the spark-submit job and the run log, end to end on a temporary lakehouse."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from customer360 import cli
from customer360.config import load_config
from customer360.pipeline import PIPELINE_RUNS, RUN_METRICS, Metric, StageResult, build_context, run_pipeline

from tests.conftest import CONF_DIR, REPO


def _args(tmp_path, *extra):
    return ["--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'lh'}", *extra]


def test_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "config", "tables", "history", "vacuum", "optimize"):
        assert f"    {command} " in out


def test_run_writes_the_run_log_and_prints_a_summary(spark, tmp_path, capsys):
    assert cli.main(["run", *_args(tmp_path, "--region", "de,fr")]) == 0
    out = capsys.readouterr().out
    assert "(local): succeeded" in out
    assert "engine delta-rs" in out
    assert "    de: Germany, EUR, Europe/Berlin, consent opt_in, churn horizon 120 d" in out
    assert "    us:" not in out
    assert f"    {PIPELINE_RUNS} v0" in out
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}"])
    ctx = build_context(config, spark=spark)
    run = ctx.lakehouse.read(PIPELINE_RUNS).first()
    assert (run.env, run.engine, run.regions, run.status, run.error) == ("local", "delta-rs", ["de", "fr"], "succeeded", None)


def test_stage_metrics_and_failures_are_recorded(spark, tmp_path):
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}"])
    ctx = build_context(config, spark=spark, regions=["us"], run_id="r1")

    def counting(ctx):
        return StageResult("ingest", metrics=[Metric("us", "rows_read", 5, "bronze.x"), Metric("us", "rows_loaded", 4, "bronze.x")])

    def broken(ctx):
        raise RuntimeError("stage blew up")

    summary = run_pipeline(ctx, stages=[("ingest", counting)])
    assert summary.status == "succeeded"
    metrics = {(r.stage, r.metric): r.value for r in ctx.lakehouse.read(RUN_METRICS).collect()}
    assert metrics == {("ingest", "rows_read"): 5, ("ingest", "rows_loaded"): 4}

    failing = build_context(config, spark=spark, regions=["us"], run_id="r2")
    with pytest.raises(RuntimeError, match="stage blew up"):
        run_pipeline(failing, stages=[("ingest", counting), ("broken", broken)])
    runs = {r.run_id: r for r in ctx.lakehouse.read(PIPELINE_RUNS).collect()}
    assert runs["r2"].status == "failed"
    assert runs["r2"].error == "RuntimeError: stage blew up"
    assert runs["r2"].stages == ["ingest", "broken"]


def test_config_command_prints_resolved_yaml(tmp_path, capsys):
    assert cli.main(["config", *_args(tmp_path, "--env", "prod", "--region", "gb")]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["env"] == "prod"
    assert data["spark"]["shuffle_partitions"] == 200
    assert list(data["regions"]) == ["gb"]
    assert data["lakehouse"]["root"] == str(tmp_path / "lh")


def test_config_errors_exit_2_with_the_message(tmp_path, capsys):
    assert cli.main(["config", *_args(tmp_path, "--set", "spark.shuffle_partitions=lots")]) == 2
    err = capsys.readouterr().err
    assert "c360 config: error: invalid configuration" in err
    assert "--set: spark.shuffle_partitions" in err
    assert cli.main(["run", *_args(tmp_path, "--region", "zz")]) == 2
    assert "unknown region 'zz'" in capsys.readouterr().err


def test_maintenance_commands(spark, tmp_path, capsys):
    args = _args(tmp_path)
    assert cli.main(["run", *args]) == 0
    assert cli.main(["run", *args]) == 0
    capsys.readouterr()
    assert cli.main(["tables", *args]) == 0
    assert capsys.readouterr().out.strip() == f"{PIPELINE_RUNS}\tv1"
    assert cli.main(["history", PIPELINE_RUNS, *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["v1", "v0"]
    assert lines[0].split("\t")[2:] == ["WRITE", "mode=Append, partitionBy=[]"]
    assert cli.main(["optimize", PIPELINE_RUNS, *args]) == 0
    assert capsys.readouterr().out.strip() == f"{PIPELINE_RUNS}: 2 files compacted into 1"
    assert cli.main(["vacuum", PIPELINE_RUNS, "--retention-hours", "0", "--no-enforce-retention", *args]) == 0
    assert capsys.readouterr().out.strip() == f"{PIPELINE_RUNS}: 2 files removed"
    assert cli.main(["history", "gold.nothing", *args]) == 2
    assert "table gold.nothing does not exist" in capsys.readouterr().err


def test_spark_submit_job_runs_the_same_code(tmp_path):
    """jobs/run_pipeline.py in a fresh interpreter, as spark-submit would start it."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py"), *_args(tmp_path, "--region", "us")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(local): succeeded" in proc.stdout
    assert "    us: United States" in proc.stdout
    assert (tmp_path / "lh" / "ops" / "pipeline_runs" / "_delta_log").is_dir()


def test_bundle_tasks_call_console_scripts_that_exist():
    """databricks.yml's wheel tasks must name entry points setup.py really installs."""
    from importlib.metadata import entry_points

    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    assert bundle["include"] == ["infra/databricks/*.yml"]
    assert {t: bundle["targets"][t]["mode"] for t in ("dev", "prod")} == {"dev": "development", "prod": "production"}
    jobs = yaml.safe_load((REPO / "infra" / "databricks" / "jobs.yml").read_text())["resources"]["jobs"]
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for job in jobs.values():
        assert job["name"].startswith("${bundle.target}_")
        for task in job["tasks"]:
            wheel_task = task["python_wheel_task"]
            assert wheel_task["package_name"] == "customer360"
            assert scripts[wheel_task["entry_point"]].startswith("customer360.")
    assert scripts["c360"] == "customer360.cli:main"
