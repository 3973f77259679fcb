"""Churn: labels from a cutoff, the candidate pipelines (MLlib gradient-boosted trees, logistic
regression, random forest) and baseline rules as pipelines of one shape, the deployed pipeline
(model + calibrator) and the cost threshold. ``ml/backtest.py`` decides which one is deployed.

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
from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import SQLTransformer, StandardScaler, VectorAssembler, VectorSlicer
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame

from customer360.config import ChurnCosts
from customer360.errors import C360Error
from customer360.features.compute import cutoff as end_of_day

LABEL = "label"
WEIGHT = "_weight"
VECTOR = "churn_features"
PREFIX = "_churn_"
RAW = f"{PREFIX}raw_prediction"
RAW_VECTOR = f"{PREFIX}raw_vector"
RAW_SCORE = "raw_score"


class ChurnError(C360Error):
    """Churn training cannot run: too little history, one class only, or missing features."""


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
    """Null -> 0 plus a missing indicator per feature (a null recency means something), assembled.
    NaN counts as missing too: a pandas frame (MLflow's pyfunc input) carries a null number as NaN."""
    exprs = []
    for f in features:
        value = f"nanvl(cast({f} AS double), CAST(NULL AS double))"
        exprs += [f"coalesce({value}, 0.0) AS {PREFIX}{f}", f"cast({value} IS NULL AS double) AS {PREFIX}missing_{f}"]
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


def classifier(name: str, params) -> object:
    """The MLlib estimator of a candidate with its parameters (``GbtParams``, ``LogisticParams``,
    ``ForestParams``). Its prediction columns are renamed so the calibrator alone writes ``prediction``."""
    common = {"featuresCol": VECTOR, "labelCol": LABEL, "weightCol": WEIGHT, "predictionCol": f"{PREFIX}class"}
    return _estimator(name, params, common).setRawPredictionCol(RAW).setProbabilityCol(f"{PREFIX}probability")


def _estimator(name: str, params, common: dict):
    if name == "gbt":
        return GBTClassifier(
            **common, maxIter=params.max_iter, maxDepth=params.max_depth,
            stepSize=params.step_size, subsamplingRate=params.subsampling_rate,
            minInstancesPerNode=params.min_instances_per_node, seed=params.seed,
        )
    if name == "random_forest":
        return RandomForestClassifier(
            **common, numTrees=params.num_trees, maxDepth=params.max_depth,
            minInstancesPerNode=params.min_instances_per_node, subsamplingRate=params.subsampling_rate,
            featureSubsetStrategy=params.feature_subset_strategy, seed=params.seed,
        )
    if name == "logistic":
        return LogisticRegression(
            **{**common, "featuresCol": f"{PREFIX}scaled"},
            regParam=params.reg_param, elasticNetParam=params.elastic_net_param, maxIter=params.max_iter,
        )
    raise ChurnError(f"unknown churn model {name!r}")


def model_pipeline(name: str, params, features: Sequence[str]) -> Pipeline:
    """Preparation, the classifier, and its churn margin as a one-element vector (``RAW_VECTOR``):
    rawPrediction's churn entry, which orders customers as the probability does."""
    scale = [StandardScaler(inputCol=VECTOR, outputCol=f"{PREFIX}scaled", withMean=True, withStd=True)] if name == "logistic" else []
    return Pipeline(stages=[
        *preparation(features), *scale, classifier(name, params),
        VectorSlicer(inputCol=RAW, outputCol=RAW_VECTOR, indices=[1]),
    ])


#: a baseline rule -> its churn score (higher = more likely to churn), a Spark SQL expression over the features
RULES = {"recency": "CAST(coalesce(recency_days, 0) AS double)"}


def rule_model(name: str) -> PipelineModel:
    """A baseline as a fitted pipeline with the same output as a model's (``RAW_VECTOR``)."""
    if name not in RULES:
        raise ChurnError(f"unknown churn baseline {name!r}")
    return PipelineModel(stages=[
        SQLTransformer(statement=f"SELECT *, {RULES[name]} AS {PREFIX}rule FROM __THIS__"),
        VectorAssembler(inputCols=[f"{PREFIX}rule"], outputCol=RAW_VECTOR),
    ])


def raw_scores(model: PipelineModel, df: DataFrame) -> DataFrame:
    """``df``'s keys and label with the model's uncalibrated churn score ``RAW_SCORE`` (a margin or
    a rule's value: it ranks customers, it is not a probability)."""
    scored = model.transform(df).withColumn(RAW_SCORE, vector_to_array(F.col(RAW_VECTOR))[0])
    return scored.select("region", "customer_id", *([LABEL] if LABEL in df.columns else []), RAW_SCORE)


def deployed(model: PipelineModel, calibrator: PipelineModel) -> PipelineModel:
    """One pipeline: features in, calibrated churn probability out (column ``prediction``, what
    MLflow's pyfunc flavour returns)."""
    return PipelineModel(stages=[*model.stages, *calibrator.stages])


def churn_scores(model: PipelineModel, df: DataFrame, *, column: str = "churn_score") -> DataFrame:
    """``df`` with the deployed pipeline's calibrated churn probability as ``column``; helper columns dropped."""
    scored = model.transform(df).withColumn(column, F.least(F.greatest(F.col("prediction").cast("double"), F.lit(0.0)), F.lit(1.0)))
    return scored.drop(*[c for c in scored.columns if c.startswith(PREFIX) or c in (VECTOR, "prediction")])


def decision_threshold(costs: ChurnCosts) -> float:
    """Flag when the expected saving beats the offer: p * success * C_lost > C_offer (capped at 1: nobody)."""
    return min(costs.threshold(), 1.0)


def missing_features(df: DataFrame, features: Sequence[str]) -> list[str]:
    return [f for f in features if f not in df.columns]
