"""Two region jobs writing the same tables at once, as the layout promises: each `c360 run --region`
in its own process (its own JVM and Delta transactions) on one lakehouse. Both must succeed, with
Delta's conflict detection and the engines' redo-on-conflict doing the rest, and each region's rows
must be exactly what that region's sources give."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pyspark.sql.functions as F
import pytest

from customer360.config import load_config
from customer360.generate import ensure_sample_data
from customer360.context import build_context
from customer360.tables import PIPELINE_RUNS

from tests.conftest import CONF_DIR

pytestmark = pytest.mark.slow

REGIONS = ("us", "de")
#: the stages that write shared tables with merges and region replacements (bronze appends, the
#: identity graph, xref, golden records, vault); later stages write the same way
STAGES = "pipeline.stages=[ingest, identity]"


def test_two_region_jobs_at_once_both_land(spark, tmp_path):
    sample = tmp_path / "sample"
    overrides = [
        f"lakehouse.root={tmp_path / 'lh'}", f"sample_data.dir={sample}", "sample_data.scale=0.0005",
        f"ingest.landing_root={sample / 'sources'}", "spark.driver_memory=1g", "spark.shuffle_partitions=2", STAGES,
    ]
    config = load_config("local", conf_dir=CONF_DIR, overrides=overrides)
    # the sample is made once, before: the two jobs find it cached
    ensure_sample_data(sample, scale=0.0005, seed=config.sample_data.seed, regions=config.pipeline.regions)
    sets = [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    jobs = {
        region: subprocess.Popen(
            [sys.executable, "-m", "customer360.cli", "run", "--conf-dir", str(CONF_DIR), "--region", region, *sets],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        for region in REGIONS
    }
    outputs = {region: job.communicate(timeout=1200)[0] for region, job in jobs.items()}
    for region, job in jobs.items():
        assert job.returncode == 0, f"{region}:\n{outputs[region][-4000:]}"
        assert "(local): succeeded" in outputs[region] and "cached)" in outputs[region]

    ctx = build_context(config, spark=spark)
    lh = ctx.lakehouse
    runs = lh.read(PIPELINE_RUNS).collect()
    assert sorted((tuple(r.regions), r.status) for r in runs) == [(("de",), "succeeded"), (("us",), "succeeded")]
    # each process printed its own accounting; bronze holds exactly the rows each one loaded
    for region in REGIONS:
        loaded = {
            source: int(n.replace(",", ""))
            for source, n in re.findall(r"(\w+): files [^\n]*?rows read [\d,]+ = loaded ([\d,]+)", outputs[region])
        }
        assert loaded, outputs[region][-2000:]
        for source, n in loaded.items():
            assert lh.read(f"bronze.{source}").where(F.col("region") == region).count() == n, (region, source)
    # silver and gold hold both regions, and the 360 has one row per golden record in each
    golden = {r.region: r["count"] for r in lh.read("silver.customer_golden").groupBy("region").count().collect()}
    xref = lh.read("silver.customer_xref")
    customers = {r.region: r["count"] for r in xref.select("region", "customer_id").distinct().groupBy("region").count().collect()}
    assert set(golden) == set(REGIONS) and customers == golden and min(golden.values()) > 0
    assert lh.read("silver.customer_golden").groupBy("customer_id").count().where("count > 1").count() == 0
    records = {r.region: r["count"] for r in lh.read("silver.identity_records").groupBy("region").count().collect()}
    assert {r.region: r["count"] for r in xref.groupBy("region").count().collect()} == records
