"""MLflow: where runs are tracked, experiment and registered-model names, the champion alias and
the challenger alias (a model scored in shadow beside the champion).

Default store: sqlite in ``<lakehouse root>/_mlflow/mlflow.db`` with artifacts beside it, so a
local lakehouse carries its models; ``mlflow.tracking_uri`` selects any other store
(``databricks``, ``databricks-uc``, an http server).

A moved (or copied) local lakehouse keeps working: MLflow stores absolute artifact URIs, so
``configure`` re-anchors them at the store's own folder. Every URI of the store under another
``.../_mlflow/artifacts`` (experiments, runs, model versions, logged models) is rewritten to
``<lakehouse root>/_mlflow/artifacts`` before anything reads it; the store is this lakehouse's, so
its artifacts are the ones beside it. Other stores are left alone.
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
CHALLENGER = "challenger"


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
    root = _local_root(config) if not config.mlflow.tracking_uri else None
    if root is not None:
        moved = anchor_artifacts(root)
        if moved:
            log.warning("MLflow store %s: %d artifact locations re-anchored at %s (the lakehouse was moved)", uri, moved, root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    log.info("MLflow tracking store: %s", uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


#: (table, column) of the MLflow sqlite store that hold artifact URIs
_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"), ("runs", "artifact_uri"), ("model_versions", "source"),
    ("model_versions", "storage_location"), ("logged_models", "artifact_location"),
)
_ARTIFACTS = "/_mlflow/artifacts"


def anchor_artifacts(root: Path) -> int:
    """Rewrite the local store's artifact URIs that point under another lakehouse's
    ``_mlflow/artifacts`` to ``root``'s (see the module doc); returns the rows changed."""
    import sqlite3
    from contextlib import closing

    db = root / "_mlflow" / "mlflow.db"
    if not db.exists():
        return 0
    here = (root / "_mlflow" / "artifacts").resolve().as_uri()
    changed = 0
    with closing(sqlite3.connect(db)) as con, con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return 0
        # an experiment of this store created under another root: ends in /_mlflow/artifacts
        olds = {
            loc for (loc,) in con.execute("SELECT DISTINCT artifact_location FROM experiments")
            if loc and loc.startswith("file://") and loc.endswith(_ARTIFACTS) and loc != here
        }
        columns = [(t, c) for t, c in _ARTIFACT_COLUMNS if t in tables and c in {r[1] for r in con.execute(f"PRAGMA table_info({t})")}]
        for old in sorted(olds):
            for table, column in columns:  # names from the tuple above, values bound
                changed += con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (here, len(old) + 1, old, len(old) + 1, old + "/"),
                ).rowcount
    return changed


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
    return _aliased(client, name, CHAMPION)


def challenger(client, name: str):
    """The model version holding the challenger alias, or None."""
    return _aliased(client, name, CHALLENGER)


def model_version(client, name: str, version: str):
    """Version ``version`` of the registered model ``name``, or None when there is none."""
    return _found(lambda: client.get_model_version(name, str(version)))


def _aliased(client, name: str, alias: str):
    return _found(lambda: client.get_model_version_by_alias(name, alias))


def _found(lookup):
    """``lookup()``, or None when the registry says the model, version or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return lookup()
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


def log_table(name: str, rows: list[dict]) -> None:
    """Rows as an MLflow table artifact (``mlflow.log_table``: the UI shows and compares it)."""
    import mlflow
    import pandas as pd

    mlflow.log_table(data=pd.DataFrame(rows), artifact_file=name)


def log_reliability_plot(name: str, bins: list[dict], *, title: str) -> None:
    """A reliability diagram (mean predicted probability against the observed rate per bin, point
    size by rows, the diagonal for reference) as a PNG artifact."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt
    import mlflow

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    try:
        ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa3af", label="perfectly calibrated")
        total = sum(b["rows"] for b in bins) or 1
        ax.scatter([b["mean_predicted"] for b in bins], [b["observed_rate"] for b in bins],
                   s=[20 + 400 * b["rows"] / total for b in bins], color="#2563eb", label="bins (size: customers)")
        ax.plot([b["mean_predicted"] for b in bins], [b["observed_rate"] for b in bins], color="#2563eb")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted churn probability", ylabel="observed churn rate", title=title)
        ax.legend(loc="upper left")
        mlflow.log_figure(fig, name)
    finally:
        plt.close(fig)


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


def log_spark_model(model, *, registered_name: str | None = None, example=None, output=None, name: str = "model") -> str | None:
    """Log a Spark ``PipelineModel`` to the active run under ``name`` and register it as
    ``registered_name`` (if given); returns the new version (None when not registered).

    ``example`` (a pandas frame of model inputs, see ``typical_row``) and ``output`` (what the
    model gives for it) become the model's signature and input example, which Unity Catalog
    requires to register a model and serving uses to check requests."""
    import mlflow.spark
    from mlflow.models import infer_signature

    import pyspark

    signature = infer_signature(example, output) if example is not None else None
    info = mlflow.spark.log_model(
        model, name, registered_model_name=registered_name, signature=signature, input_example=example,
        # requirements given, not inferred: inference would start a Python subprocess per model
        pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
    )
    return str(info.registered_model_version) if registered_name else None


def load_spark_model(name: str, version: str):
    import mlflow.spark

    return mlflow.spark.load_model(f"models:/{name}/{version}")


def promote(client, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHAMPION, version)


def set_challenger(client, name: str, version: str | None) -> None:
    """Give ``version`` the challenger alias; None removes the alias (no challenger)."""
    if version is not None:
        client.set_registered_model_alias(name, CHALLENGER, version)
    elif challenger(client, name) is not None:
        client.delete_registered_model_alias(name, CHALLENGER)
