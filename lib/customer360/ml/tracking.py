"""MLflow: where runs are tracked, experiment and registered-model names, the champion alias.

Default store: sqlite in ``<lakehouse root>/_mlflow/mlflow.db`` with artifacts beside it, so a
local lakehouse carries its models; ``mlflow.tracking_uri`` selects any other store
(``databricks``, ``databricks-uc``, an http server).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from customer360.config import AppConfig
from customer360.errors import C360Error

log = logging.getLogger(__name__)

CHAMPION = "champion"


class TrackingError(C360Error):
    """No usable MLflow store, or a model the registry does not have."""


def _local_root(config: AppConfig) -> Path | None:
    root = config.lakehouse.root
    if "://" in root or root.startswith("dbfs:"):
        return None
    return Path(root)


def tracking_uri(config: AppConfig) -> str:
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    root = _local_root(config)
    if root is None:
        raise TrackingError(
            f"mlflow.tracking_uri is not set and the lakehouse root {config.lakehouse.root} is not a local folder: "
            "set mlflow.tracking_uri (e.g. databricks) in conf/<env>.yaml"
        )
    folder = root / "_mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder.resolve() / 'mlflow.db'}"


def configure(config: AppConfig):
    """Point MLflow at the configured store; returns an ``MlflowClient`` for it."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    log.info("MLflow tracking store: %s", uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(config: AppConfig, kind: str) -> str:
    """``<experiment_prefix>/<kind>``, created on first use (local stores keep artifacts in the lakehouse)."""
    import mlflow

    name = f"{config.mlflow.experiment_prefix}/{kind}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = _local_root(config) if not config.mlflow.tracking_uri else None
    location = (root / "_mlflow" / "artifacts").resolve().as_uri() if root is not None else None
    return mlflow.create_experiment(name, artifact_location=location)


def model_name(config: AppConfig, region: str, kind: str) -> str:
    return f"{config.mlflow.registered_model_prefix}_{region}_{kind}"


def champion(client, name: str):
    """The model version holding the champion alias, or None (no model, or no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def require_champion(client, name: str):
    found = champion(client, name)
    if found is None:
        raise TrackingError(f"model {name} has no {CHAMPION!r} version: run `c360 train` (or `c360 run`) first")
    return found


def log_json(name: str, payload: Any) -> None:
    """One JSON artifact in the active run."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        with open(path, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        mlflow.log_artifact(path)


def load_json(run_id: str, name: str) -> Any:
    import mlflow

    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")


def typical_row(df, columns) -> Any:
    """One made-up input row for a model's signature and example: each column's approximate
    median over ``df`` (an aggregate, so no customer's own values reach MLflow), as a double: the
    models cast every input to double, and a double column can carry the nulls an integer one
    (``ticket_recency_days`` of a customer without tickets) cannot in MLflow's schema."""
    import pyspark.sql.functions as F

    return df.agg(*[F.percentile_approx(F.col(c).cast("double"), 0.5).alias(c) for c in columns]).toPandas().astype("float64")


def model_output(model, example) -> Any:
    """What a Spark model gives for a pandas ``example``: its ``prediction`` column (pyfunc's output)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    return model.transform(spark.createDataFrame(example)).select("prediction").toPandas()


def log_spark_model(model, *, registered_name: str, example=None, output=None) -> str:
    """Log a Spark ``PipelineModel`` to the active run and register it; returns the new version.

    ``example`` (a pandas frame of model inputs, see ``typical_row``) and ``output`` (what the
    model gives for it) become the model's signature and input example, which Unity Catalog
    requires to register a model and serving uses to check requests."""
    import mlflow.spark
    from mlflow.models import infer_signature

    import pyspark

    signature = infer_signature(example, output) if example is not None else None
    info = mlflow.spark.log_model(
        model, "model", registered_model_name=registered_name, signature=signature, input_example=example,
        # requirements given, not inferred: inference would start a Python subprocess per model
        pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
    )
    return str(info.registered_model_version)


def load_spark_model(name: str, version: str):
    import mlflow.spark

    return mlflow.spark.load_model(f"models:/{name}/{version}")


def promote(client, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHAMPION, version)
