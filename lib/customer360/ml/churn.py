"""Churn: labels from a cutoff, time-respecting training and validation sets, the GBT pipeline and
its baselines (logistic regression, a recency rule), prior-corrected probabilities, cost threshold.

Churn at cutoff c (an as-of date) means no order in the region's horizon H after it: no
``ordered_at`` in (end of c, end of c + H days], UTC. Features are the gold features as of c, which
use only facts up to the end of c, so a training row sees nothing after its cutoff and its label
sees nothing after c + H. Only buyers (at least one order by c) are labelled; cold-start customers
(``is_cold_start``) are not trained on and get the cold-start score instead of a model score.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pyspark.sql.functions as F
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import SQLTransformer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame

from customer360.config import ChurnConfig
from customer360.errors import C360Error
from customer360.features.compute import cutoff as end_of_day

LABEL = "label"
WEIGHT = "_weight"
VECTOR = "churn_features"
PREFIX = "_churn_"


class ChurnError(C360Error):
    """Churn training cannot run: too little history, one class only, or missing features."""


def cutoffs(as_of: date, *, horizon_days: int, step_days: int | None) -> tuple[date, date]:
    """(training cutoff, validation cutoff): validation outcomes end at ``as_of``; training's end
    where validation's features begin, so no training label overlaps a validation outcome."""
    step = step_days or horizon_days
    if step < horizon_days:
        raise ChurnError(
            f"ml.churn.cutoff_step_days ({step}) is shorter than the churn horizon ({horizon_days} days): "
            "training labels would overlap the validation outcomes"
        )
    validation = as_of - timedelta(days=horizon_days)
    training = validation - timedelta(days=step)
    return training, validation


def labels(orders: DataFrame, *, at: date, horizon_days: int) -> DataFrame:
    """region, customer_id of customers with an order in (end of ``at``, end of ``at`` + H days]."""
    start = end_of_day(at)
    stop = end_of_day(at + timedelta(days=horizon_days))
    return (
        orders.where((F.col("ordered_at") >= F.lit(start).cast("timestamp")) & (F.col("ordered_at") < F.lit(stop).cast("timestamp")))
        .select("region", "customer_id").distinct().withColumn("_bought", F.lit(True))
    )


def labelled_all(features: DataFrame, orders: DataFrame, *, at: date, horizon_days: int) -> DataFrame:
    """``features`` (as of ``at``) with ``label`` 1.0 when the customer placed no order in the H
    days after ``at``."""
    return (
        features.join(labels(orders, at=at, horizon_days=horizon_days), ["region", "customer_id"], "left")
        .withColumn(LABEL, F.when(F.col("_bought"), 0.0).otherwise(1.0))
        .drop("_bought")
    )


def labelled(features: DataFrame, orders: DataFrame, *, at: date, horizon_days: int) -> DataFrame:
    """The buyers (an order by ``at``) among ``features``, labelled: only a buyer can churn."""
    buyers = features.where(F.coalesce(F.col("orders_total"), F.lit(0)) > 0)
    return labelled_all(buyers, orders, at=at, horizon_days=horizon_days)


def trainable(df: DataFrame) -> DataFrame:
    """Rows the model learns from and is validated on: labelled buyers past cold start."""
    return df.where(~F.coalesce(F.col("is_cold_start"), F.lit(False)))


def preparation(features: Sequence[str]) -> list:
    """Null -> 0 plus a missing indicator per feature (a null recency means something), assembled."""
    exprs = []
    for f in features:
        exprs += [f"coalesce(cast({f} AS double), 0.0) AS {PREFIX}{f}", f"cast({f} IS NULL AS double) AS {PREFIX}missing_{f}"]
    inputs = [c for f in features for c in (f"{PREFIX}{f}", f"{PREFIX}missing_{f}")]
    return [
        SQLTransformer(statement=f"SELECT *, {', '.join(exprs)} FROM __THIS__"),
        VectorAssembler(inputCols=inputs, outputCol=VECTOR),
    ]


def with_class_weights(df: DataFrame) -> tuple[DataFrame, float]:
    """Balanced class weights (n / (2 n_class)) and the churn rate they hide from the model."""
    row = df.agg(F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("pos")).first()
    n, pos = int(row["n"]), int(row["pos"] or 0)
    if pos == 0 or pos == n:
        raise ChurnError(f"the training set has {pos} churners among {n} customers: both classes are needed")
    w1, w0 = n / (2.0 * pos), n / (2.0 * (n - pos))
    return df.withColumn(WEIGHT, F.when(F.col(LABEL) == 1.0, w1).otherwise(w0)), pos / n


def gbt_pipeline(settings: ChurnConfig) -> Pipeline:
    g = settings.gbt
    return Pipeline(stages=[
        *preparation(settings.features),
        GBTClassifier(
            featuresCol=VECTOR, labelCol=LABEL, weightCol=WEIGHT, maxIter=g.max_iter, maxDepth=g.max_depth,
            stepSize=g.step_size, subsamplingRate=g.subsampling_rate, minInstancesPerNode=g.min_instances_per_node, seed=g.seed,
        ),
    ])


def logistic_pipeline(settings: ChurnConfig) -> Pipeline:
    lr = settings.logistic
    return Pipeline(stages=[
        *preparation(settings.features),
        StandardScaler(inputCol=VECTOR, outputCol=f"{PREFIX}scaled", withMean=True, withStd=True),
        LogisticRegression(
            featuresCol=f"{PREFIX}scaled", labelCol=LABEL, weightCol=WEIGHT, regParam=lr.reg_param,
            elasticNetParam=lr.elastic_net_param, maxIter=lr.max_iter,
        ),
    ])


def churn_probability(model: PipelineModel, df: DataFrame, *, prior: float, column: str = "churn_score") -> DataFrame:
    """``df`` with the model's churn probability corrected for the balanced class weights.

    A model trained with balanced weights estimates odds as if churn had a 50% rate; multiplying
    the odds by prior / (1 - prior) (the training churn rate) gives a probability on the real scale."""
    raw = vector_to_array(F.col("probability"))[1]
    odds = raw / (1.0 - raw) * (prior / (1.0 - prior))
    scored = model.transform(df).withColumn(column, F.when(raw >= 1.0, 1.0).otherwise(odds / (1.0 + odds)))
    return scored.drop(*[c for c in scored.columns if c.startswith(PREFIX) or c in (VECTOR, "rawPrediction", "probability", "prediction")])


def decision_threshold(settings: ChurnConfig) -> float:
    """Flag when the expected cost of doing nothing exceeds that of acting: p * C_fn > (1 - p) * C_fp."""
    return settings.cost_false_positive / (settings.cost_false_positive + settings.cost_false_negative)


def missing_features(df: DataFrame, features: Sequence[str]) -> list[str]:
    return [f for f in features if f not in df.columns]
