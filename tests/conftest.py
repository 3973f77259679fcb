"""Shared fixtures. Spark is pytest-spark's one session-scoped ``spark_session`` (see pytest.ini)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from customer360.config import LakehouseConfig
from customer360.lakehouse import Lakehouse

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

# pandas UDFs run in Python workers: they must use this interpreter (it has the package).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark(spark_session, tmp_path_factory):
    spark_session.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("checkpoints")))
    spark_session.sparkContext.setLogLevel("ERROR")
    return spark_session


SAMPLE_REGIONS = ["us", "de"]


@pytest.fixture(scope="session")
def pipeline_sample(spark, tmp_path_factory):
    """About 800 people in us and de through ingest, identity, facts and gold, once per test run:
    (context, generated data, facts result, gold result). tests/gold checks the stages on it, then
    re-runs de only; tests/ml (which runs later) trains and scores us."""
    from datetime import datetime

    from customer360.bronze.ingest import run as ingest
    from customer360.config import load_config
    from customer360.facts import stage as facts
    from customer360.generate import generate
    from customer360.gold import stage as gold
    from customer360.identity import stage as identity
    from customer360.pipeline import build_context

    root = tmp_path_factory.mktemp("pipeline_sample")
    data = generate(root / "sample", scale=0.008, seed=11, regions=SAMPLE_REGIONS, consent_regimes={"us": "opt_out", "de": "opt_in"})
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={root / 'lh'}", f"ingest.landing_root={data.sources}", "pipeline.regions=[us, de]"],
    )
    ctx = build_context(config, spark=spark, regions=SAMPLE_REGIONS, run_id="run-1")
    ingest(ctx, now=datetime(2026, 7, 1, 12))
    identity.run(ctx, now=datetime(2026, 7, 1, 13))
    facts_result = facts.run(ctx)
    gold_result = gold.run(ctx)
    return ctx, data, facts_result, gold_result


@pytest.fixture
def conf_dir(tmp_path) -> Path:
    """A private copy of conf/ that a test may edit."""
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    return target


@pytest.fixture
def lakehouse_config(tmp_path) -> LakehouseConfig:
    return LakehouseConfig(root=str(tmp_path / "lakehouse"))


@pytest.fixture
def lakehouse(spark, lakehouse_config) -> Lakehouse:
    return Lakehouse(spark, lakehouse_config)
