from __future__ import annotations

from datetime import datetime, timezone

import pytest

from customer360.config import load_config
from customer360.context import build_context

from tests.conftest import CONF_DIR

NOW = datetime(2026, 7, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def landing(tmp_path):
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture
def ctx(spark, tmp_path, landing):
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={tmp_path / 'lh'}", f"ingest.landing_root={landing}"],
    )
    return build_context(config, spark=spark, regions=["us", "de"], run_id="run-1")


def put(landing, source: str, region: str, name: str, text: str):
    folder = landing / source / region
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
