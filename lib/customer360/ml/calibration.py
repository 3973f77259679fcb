"""Calibration of churn scores into probabilities: Platt scaling (a logistic curve over the raw
score) or isotonic regression (a monotone step function), both MLlib, both fitted on scores of
customers the model did not train on, chosen by the Brier score on a later fold than the one
they were fitted on.

A calibrator reads the one-element vector ``churn.RAW_VECTOR`` a candidate pipeline ends with and
writes ``prediction``, the calibrated probability (``GeneralizedLinearRegression`` with the
binomial family predicts the mean, i.e. the probability; ``IsotonicRegression`` predicts the fitted
step). Appended to the model it makes the deployed pipeline.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyspark.sql.functions as F
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import GeneralizedLinearRegression, IsotonicRegression
from pyspark.sql import DataFrame

from customer360.errors import C360Error
from customer360.ml.churn import LABEL, PREFIX, RAW_SCORE, RAW_VECTOR

METHODS = ("platt", "isotonic")


class CalibrationError(C360Error):
    """A calibrator cannot be fitted: no scores, or one class only."""


def calibrator(method: str) -> Pipeline:
    """The unfitted calibrator of ``method`` over ``RAW_VECTOR``."""
    if method == "platt":
        fit = GeneralizedLinearRegression(family="binomial", link="logit", featuresCol=RAW_VECTOR, labelCol=LABEL, maxIter=100)
    elif method == "isotonic":
        fit = IsotonicRegression(featuresCol=RAW_VECTOR, labelCol=LABEL, isotonic=True, featureIndex=0)
    else:
        raise CalibrationError(f"unknown calibration method {method!r} (known: {', '.join(METHODS)})")
    return Pipeline(stages=[fit])


def _as_vector(scores: DataFrame) -> DataFrame:
    """Raw scores (``RAW_SCORE``) back into the calibrators' input vector."""
    return VectorAssembler(inputCols=[RAW_SCORE], outputCol=RAW_VECTOR).transform(scores)


def fit(method: str, scores: DataFrame) -> PipelineModel:
    """A calibrator fitted on ``scores`` (``RAW_SCORE`` and ``label`` of customers the model did not train on)."""
    row = scores.agg(F.count(F.lit(1)).alias("n"), F.sum(LABEL).alias("pos")).first()
    n, pos = int(row["n"]), int(row["pos"] or 0)
    if pos in (0, n):
        raise CalibrationError(f"calibration needs both classes: {pos} churners among {n} scored customers")
    return calibrator(method).fit(_as_vector(scores))


def apply(model: PipelineModel, scores: DataFrame, *, column: str = "churn_score") -> DataFrame:
    """``scores`` with the calibrated probability as ``column``."""
    out = model.transform(_as_vector(scores)).withColumn(column, F.least(F.greatest(F.col("prediction"), F.lit(0.0)), F.lit(1.0)))
    return out.drop(RAW_VECTOR, "prediction", *[c for c in out.columns if c.startswith(PREFIX)])


def brier(df: DataFrame, *, probability: str = "churn_score") -> float:
    """Mean squared difference between the probability and the outcome (0 = perfect)."""
    return float(df.agg(F.avg((F.col(probability) - F.col(LABEL)) ** 2)).first()[0])


@dataclass(frozen=True)
class Choice:
    method: str
    #: method -> mean Brier score on the later fold of each (older, newer) pair of folds; empty with one fold
    held_out_brier: dict[str, float]

    def describe(self) -> str:
        if not self.held_out_brier:
            return f"{self.method} (one fold: not compared)"
        others = ", ".join(f"{m} {b:.4f}" for m, b in sorted(self.held_out_brier.items()) if m != self.method)
        return f"{self.method} (held-out Brier {self.held_out_brier[self.method]:.4f}" + (f" vs {others})" if others else ")")


def choose(methods: Sequence[str], folds: Sequence[DataFrame]) -> Choice:
    """The method whose calibrator, fitted on one fold's scores, gives the lowest Brier score on the
    next newer fold's, averaged over the pairs. ``folds`` are raw scores newest first (fold 0 first)."""
    if len(methods) == 1 or len(folds) < 2:
        return Choice(methods[0], {})
    scores = {}
    for method in methods:
        pairs = [brier(apply(fit(method, older), newer)) for newer, older in zip(folds, folds[1:])]
        scores[method] = sum(pairs) / len(pairs)
    best = min(methods, key=lambda m: (scores[m], methods.index(m)))
    return Choice(best, scores)
