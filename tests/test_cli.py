"""The c360 command and the run log, end to end on a temporary lakehouse (spark-submit: tests/test_cluster.py)."""
from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest
import yaml

from customer360 import cli
from customer360.config import load_config
from customer360.generate import SOURCES
from customer360.context import Metric, StageResult, build_context
from customer360.pipeline import run_pipeline
from customer360.tables import PIPELINE_RUNS, RUN_METRICS
from customer360.session import find_jvm_jars

from tests.conftest import CONF_DIR, catalog_mismatches, raw_contact_values


def _args(tmp_path, *extra):
    sample = tmp_path / "sample"
    return [
        "--conf-dir", str(CONF_DIR),
        "--set", f"lakehouse.root={tmp_path / 'lh'}",
        "--set", f"sample_data.dir={sample}",
        "--set", "sample_data.scale=0.0005",  # 50 people
        "--set", f"ingest.landing_root={sample / 'sources'}",
        *extra,
    ]


def test_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "generate", "deliver", "ingest", "identity", "identity-eval", "facts", "gold", "train", "score", "config", "tables", "history", "vacuum", "optimize"):
        assert re.search(rf"^    {command}(\s|$)", out, re.MULTILINE), command


def test_run_generates_ingests_and_logs_the_run(spark, tmp_path, capsys, caplog, monkeypatch):
    secret = "k3y-" + "q7Zp" * 10  # the PII hashing key: it must never be printed or logged
    monkeypatch.setenv("C360_PII_HASH_KEY", secret)
    caplog.set_level(logging.DEBUG, logger="customer360")
    # 50 people are too few to train models on: the ml stage has its own end-to-end test (tests/ml)
    assert cli.main(["run", *_args(tmp_path, "--region", "de,fr", "--set", "pipeline.stages=[ingest, identity, facts, quality, gold]")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    # no secret and no raw contact detail in what the run printed, logged or wrote to its ops tables
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}"])
    ctx = build_context(config, spark=spark)
    ops = [ctx.lakehouse.read(t).toJSON().collect() for t in ctx.lakehouse.tables() if t.startswith("ops.")]
    said = "\n".join([captured.out, captured.err, caplog.text, *(line for table in ops for line in table)])
    raw = raw_contact_values(tmp_path / "sample" / "sources")
    assert len(raw) > 100 and len(ops) >= 4 and caplog.records
    assert secret not in said
    assert sorted(v for v in raw if v in said) == []
    assert f"sample data: {tmp_path / 'sample'} (scale 0.0005, seed 42, 50 people; generated now)" in out
    assert "(local): succeeded" in out
    accounting = [line.strip() for line in out.splitlines() if "rows read" in line]
    assert [line.split(":")[0] for line in accounting] == list(SOURCES)
    for line in accounting:  # rows read = loaded + quarantined, as printed
        read, loaded, quarantined = (int(x.replace(",", "")) for x in re.findall(r"(?:read|loaded|quarantined) ([\d,]+)", line))
        assert read == loaded + quarantined and read > 0
    engine = "delta-spark" if find_jvm_jars().delta else "delta-rs"
    assert f"(engine {engine})" in out
    graph = "GraphFrames loaded" if find_jvm_jars().graphframes else "GraphFrames not loaded (DataFrame connected components)"
    delta = f"delta-spark (Delta Lake {find_jvm_jars().delta_version} in the JVM)" if find_jvm_jars().delta else "delta-rs"
    assert f"  engines: {delta}; {graph}\n" in out
    assert "    de: Germany, EUR, Europe/Berlin, consent opt_in, churn horizon 120 d" in out
    assert "    us:" not in out
    assert f"    {PIPELINE_RUNS} v0" in out
    run = ctx.lakehouse.read(PIPELINE_RUNS).first()
    assert (run.env, run.engine, run.regions, run.status, run.error) == ("local", engine, ["de", "fr"], "succeeded", None)
    # every table the run wrote (bronze to gold, the quality results, the run log) fits the catalog
    assert {"ops.pipeline_runs", "ops.run_metrics", "ops.job_runs", "ops.dq_results", "gold.customer_360"} <= set(ctx.lakehouse.tables())
    assert catalog_mismatches(ctx) == []
    metrics = ctx.lakehouse.read(RUN_METRICS).where("metric = 'rows_loaded'").groupBy("table").sum("value").collect()
    bronze_counts = {t: ctx.lakehouse.read(t).count() for t in (f"bronze.{s}" for s in SOURCES)}
    assert {r["table"]: r["sum(value)"] for r in metrics} == bronze_counts
    assert set(ctx.lakehouse.read("bronze.crm_customers").select("region").distinct().toPandas()["region"]) == {"de", "fr"}
    # the identity stage ran after ingestion, and its figures are in the run log too
    assert re.search(r"    identity:\n      de: [\d,]+ records -> [\d,]+ customers", out)
    identity_metrics = {
        (r.region, r.metric): r.value
        for r in ctx.lakehouse.read(RUN_METRICS).where("stage = 'identity'").collect()
    }
    assert identity_metrics[("de", "xref_rows")] == identity_metrics[("de", "records_in")] > 0
    assert identity_metrics[("de", "customers")] == ctx.lakehouse.read("silver.customer_golden").where("region = 'de'").count()

    # the quality gate checked silver (and gold its outputs) with no failed error check
    assert re.search(r"    quality:\n      data quality: \d+ check results on \d table\(s\): \d+ passed, \d+ warnings, 0 errors", out)
    assert ctx.lakehouse.read("ops.dq_results").where("severity = 'error' AND NOT passed").count() == 0
    jobs = ctx.lakehouse.read("ops.job_runs").where("job = 'run'").first()
    assert jobs.status == "succeeded" and {o.table for o in jobs.outputs} >= {"bronze.crm_customers", "gold.customer_360"}

    # then the facts and gold stages, with a profile of the customer 360 per region
    assert re.search(r"    facts:\n      orders: [\d,]+ rows = [\d,]+ in silver\.orders \+ 0 quarantined", out)
    profile = re.search(r"      de: ([\d,]+) customers in customer_360 \(([\d,]+) with orders", out)
    assert profile and int(profile.group(1).replace(",", "")) == ctx.lakehouse.read("gold.customer_360").where("region = 'de'").count()
    assert re.search(r"      features as of 2026-\d\d-\d\d \(facts up to the end of that day, UTC\)", out)

    # identity-eval scores the xref against the generator's truth
    assert cli.main(["identity-eval", *_args(tmp_path, "--region", "de,fr")]) == 0
    scores = capsys.readouterr().out
    assert "identity evaluation against" in scores and "(regions de, fr)" in scores
    precision = float(re.search(r"pairwise precision\s+([\d.]+)", scores).group(1))
    assert precision >= 0.95
    assert re.search(r"B-cubed precision\s+[\d.]+\nB-cubed recall\s+[\d.]+\nB-cubed F1\s+[\d.]+", scores)
    assert re.search(r"worst false merges \(\d\): customer", scores) and re.search(r"worst misses \(\d\): person", scores)
    assert cli.main(["identity-eval", "--truth", str(tmp_path / "none.parquet"), *_args(tmp_path)]) == 2
    assert "no ground truth at" in capsys.readouterr().err

    # a second run (ingest only: pipeline.stages) finds the sample cached and every file already loaded
    assert cli.main(["run", *_args(tmp_path, "--region", "de,fr", "--set", "pipeline.stages=[ingest]")]) == 0
    out = capsys.readouterr().out
    assert "50 people; cached)" in out
    assert "    ingest:" in out and "    identity:" not in out
    assert "crm_customers: files 0 new, 2 unchanged, 0 changed, 0 failed; rows read 0" in out


def test_a_bad_as_of_date_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["gold", "--as-of", "2026-13-01"])
    assert exit_info.value.code == 2
    assert "'2026-13-01' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


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
    args = _args(tmp_path, "--set", "sample_data.enabled=false")
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}"])
    ctx = build_context(config, spark=spark)
    run_pipeline(ctx, stages=[])
    run_pipeline(ctx, stages=[])
    capsys.readouterr()
    assert cli.main(["tables", *args]) == 0
    assert capsys.readouterr().out.strip() == f"ops.job_runs\tv1\n{PIPELINE_RUNS}\tv1"
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


def test_generate_and_ingest_commands(spark, tmp_path, capsys):
    out_dir = tmp_path / "gen"
    assert cli.main(["generate", "--scale", "0.0005", "--seed", "5", "--out", str(out_dir), *_args(tmp_path, "--region", "gb")]) == 0
    printed = capsys.readouterr().out
    assert f"generated 50 people into {out_dir}" in printed
    assert sorted(p.name for p in (out_dir / "sources" / "orders").iterdir()) == ["gb"]
    args = _args(tmp_path, "--region", "gb", "--set", f"ingest.landing_root={out_dir / 'sources'}")
    assert cli.main(["ingest", "--source", "orders", *args]) == 0
    printed = capsys.readouterr().out
    assert "orders: files 1 new" in printed and "crm_customers" not in printed
    assert cli.main(["ingest", "--source", "nope", *args]) == 2
    assert "unknown source(s) ['nope']" in capsys.readouterr().err
