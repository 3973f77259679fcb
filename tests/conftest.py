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
