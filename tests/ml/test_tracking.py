"""MLflow tracking (ml/tracking.py): a local lakehouse moved to another folder keeps its models and
artifacts (the store's artifact URIs are re-anchored at its own folder, once), other stores are left
alone, and the champion and challenger aliases."""
from __future__ import annotations

import shutil
import sqlite3

import mlflow
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.feature import SQLTransformer

from customer360.config import load_config
from customer360.ml import tracking
from tests.conftest import CONF_DIR

pytestmark = pytest.mark.slow


def _config(root, *extra):
    return load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={root}", *extra])


def _uris(db) -> list[str]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT artifact_location FROM experiments UNION ALL SELECT artifact_uri FROM runs "
            "UNION ALL SELECT source FROM model_versions UNION ALL SELECT storage_location FROM model_versions"
        ).fetchall()
    return [r[0] for r in rows if r[0]]


def test_a_moved_lakehouse_keeps_its_models_and_artifacts(spark, tmp_path):
    before = tmp_path / "old place" / "lh"  # a space: URIs are percent-encoded, the rewrite must match them
    config = _config(before)
    client = tracking.configure(config)
    mlflow.set_experiment(experiment_id=tracking.experiment_id(config, "churn"))
    model = PipelineModel(stages=[SQLTransformer(statement="SELECT *, x * 2.0 AS prediction FROM __THIS__")])
    with mlflow.start_run() as run:
        tracking.log_json("meta.json", {"answer": 42})
        version = tracking.log_spark_model(model, registered_name="c360_test_churn")
    tracking.promote(client, "c360_test_churn", version)
    old_uri = (before / "_mlflow" / "artifacts").resolve().as_uri()
    assert "%20" in old_uri and all(u.startswith(old_uri) for u in _uris(before / "_mlflow" / "mlflow.db") if u.startswith("file:"))

    after = tmp_path / "new_place" / "lh"
    after.parent.mkdir()
    shutil.move(str(before), str(after))
    db = after / "_mlflow" / "mlflow.db"
    moved_config = _config(after)
    client = tracking.configure(moved_config)
    new_uri = (after / "_mlflow" / "artifacts").resolve().as_uri()
    ours = [u for u in _uris(db) if u.startswith("file:")]
    assert ours and all(u.startswith(new_uri + "/") or u == new_uri for u in ours)
    # the moved store reads its artifacts and loads its champion
    assert tracking.load_json(run.info.run_id, "meta.json") == {"answer": 42}
    holder = tracking.require_champion(client, "c360_test_churn")
    loaded = tracking.load_spark_model(holder.name, holder.version)
    assert [r.prediction for r in loaded.transform(spark.createDataFrame([(1.5,)], "x double")).collect()] == [3.0]
    # a second look changes nothing; a new experiment lands beside the store too
    assert tracking.anchor_artifacts(after) == 0
    assert mlflow.get_experiment(tracking.experiment_id(moved_config, "segmentation")).artifact_location == new_uri


def test_other_stores_and_empty_folders_are_left_alone(tmp_path):
    assert tracking.anchor_artifacts(tmp_path / "nothing here") == 0
    (tmp_path / "lh" / "_mlflow").mkdir(parents=True)
    sqlite3.connect(tmp_path / "lh" / "_mlflow" / "mlflow.db").close()  # an empty database: no MLflow tables
    assert tracking.anchor_artifacts(tmp_path / "lh") == 0


def test_challenger_alias_set_and_removed(spark, tmp_path):
    config = _config(tmp_path / "lh")
    client = tracking.configure(config)
    mlflow.set_experiment(experiment_id=tracking.experiment_id(config, "churn"))
    model = PipelineModel(stages=[SQLTransformer(statement="SELECT *, x AS prediction FROM __THIS__")])
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            versions.append(tracking.log_spark_model(model, registered_name="c360_test_shadow"))
    assert tracking.challenger(client, "c360_test_shadow") is None
    tracking.promote(client, "c360_test_shadow", versions[0])
    tracking.set_challenger(client, "c360_test_shadow", versions[1])
    assert str(tracking.challenger(client, "c360_test_shadow").version) == versions[1]
    assert str(tracking.champion(client, "c360_test_shadow").version) == versions[0]
    tracking.set_challenger(client, "c360_test_shadow", None)
    tracking.set_challenger(client, "c360_test_shadow", None)  # none left: still fine
    assert tracking.challenger(client, "c360_test_shadow") is None
    assert tracking.challenger(client, "c360_no_such_model") is None
