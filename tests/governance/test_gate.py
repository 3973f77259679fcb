"""The data-quality gate: a failed error check stops the pipeline before gold is published, with
a message naming the check; warn checks are recorded only; every result lands in ops.dq_results."""
from __future__ import annotations

import pyspark.sql.functions as F
import pytest

from customer360 import tables
from customer360.config import load_config
from customer360.gold import stage as gold
from customer360.governance import stage as quality
from customer360.governance.quality import DataQualityError
from customer360.context import StageResult, build_context
from customer360.pipeline import run_pipeline
from customer360.tables import PIPELINE_RUNS
from tests.conftest import CONF_DIR

XREF_SCHEMA = "source string, source_record_id string, customer_id string, run_id string, region string"


def _ctx(spark, root, *overrides, regions=("us",)):
    config = load_config(
        "local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={root}", "pipeline.regions=[us, de]", *overrides]
    )
    return build_context(config, spark=spark, regions=list(regions), run_id="dq-1")


def _bad_xref(ctx):
    rows = [("crm", "r1", "C1", "x", "us"), ("crm", "r1", "C1", "x", "us"), ("orders", "o1", None, "x", "us"), ("crm", "r9", "C9", "x", "de")]
    ctx.lakehouse.write(ctx.spark.createDataFrame(rows, XREF_SCHEMA), "silver.customer_xref", partition_by=["region"])


def test_a_failed_error_check_stops_the_pipeline_before_gold(spark, tmp_path):
    ctx = _ctx(spark, tmp_path / "lh")
    _bad_xref(ctx)
    published = []
    with pytest.raises(DataQualityError) as failure:
        run_pipeline(ctx, stages=[("quality", quality.run), ("gold", lambda c: published.append(1) or StageResult("gold"))])
    assert published == []
    message = str(failure.value)
    assert "silver.customer_xref:unique(source,source_record_id) [us]" in message
    assert "silver.customer_xref:not_null(customer_id,source,source_record_id) [us]" in message
    assert ctx.lakehouse.read(PIPELINE_RUNS).first().status == "failed"
    results = {
        (r.check, r.region): (r.passed, r.failing_rows, r.rows)
        for r in ctx.lakehouse.read(tables.DQ_RESULTS).where("table = 'silver.customer_xref'").collect()
    }
    assert results == {
        ("silver.customer_xref:not_null(customer_id,source,source_record_id)", "us"): (False, 1, 3),
        ("silver.customer_xref:unique(source,source_record_id)", "us"): (False, 2, 3),
    }


def test_warn_checks_are_recorded_and_do_not_stop(spark, tmp_path):
    warn_only = (
        "quality.checks={silver.customer_xref: [{check: unique, columns: [source, source_record_id], severity: warn}]}"
    )
    ctx = _ctx(spark, tmp_path / "lh", warn_only)
    _bad_xref(ctx)
    result = quality.run(ctx)
    assert any(line.startswith("  WARN ") and "unique(source,source_record_id)" in line for line in result.lines)
    assert {(m.metric, m.value) for m in result.metrics} == {("dq_errors", 0), ("dq_warnings", 1)}
    assert ctx.lakehouse.read(tables.DQ_RESULTS).where("NOT passed").count() == 1


def test_the_gold_stage_checks_its_outputs_before_writing_any(spark, pipeline_sample, tmp_path):
    sample_ctx, data, _, _ = pipeline_sample
    impossible = "quality.checks={gold.customer_360: [{check: not_null, columns: [segment], name: segments_assigned}]}"
    ctx = _ctx(
        spark, sample_ctx.config.lakehouse.root, impossible, f"ingest.landing_root={data.sources}", regions=("de",)
    )
    versions = {name: ctx.lakehouse.version(name) for name in (tables.CUSTOMER_360, tables.CUSTOMER_FEATURES, tables.REVENUE_MONTHLY)}
    with pytest.raises(DataQualityError, match=r"segments_assigned \[de\]"):
        gold.run(ctx)
    assert {name: ctx.lakehouse.version(name) for name in versions} == versions
    recorded = ctx.lakehouse.read(tables.DQ_RESULTS).where(F.col("check") == "segments_assigned").collect()
    assert [(r.region, r.passed) for r in recorded] == [("de", False)] and recorded[0].failing_rows == recorded[0].rows > 0
