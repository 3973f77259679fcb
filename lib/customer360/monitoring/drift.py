"""Drift between runs: population stability index of numeric columns, segment share shifts, and
realized against predicted churn. Only aggregates reach the driver: quantile edges, bin counts,
one row per segment, one row of churn rates.

PSI bins. The edges e_1 < ... < e_k of a column are the distinct ``1/bins, 2/bins, ...,
(bins-1)/bins`` quantiles of its non-null values in ``expected`` (the deciles by default;
``percentile_approx`` at an accuracy that is exact up to about ``QUANTILE_ACCURACY`` rows). A value
v goes to bin i where e_{i-1} < v <= e_i, with e_0 = -inf and e_{k+1} = +inf: at or below the first
edge is the first bin, above the last edge is the last bin. Equal quantiles collapse, so a column
with many equal values gets fewer bins (a constant column two: <= the constant and above it).
Nulls form one more bin. NaN compares above every number in Spark, so it lands in the last bin.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from customer360.errors import C360Error
from customer360.features.compute import cutoff as end_of_day

#: ``percentile_approx`` accuracy: relative rank error 1/accuracy, so exact quantiles below that many rows
QUANTILE_ACCURACY = 10_000


class DriftError(C360Error):
    """A drift check was asked for something it cannot compute: a missing or non-numeric column,
    a bad bin count, epsilon, threshold or horizon, or proportions of different lengths."""


# --- population stability index ------------------------------------------------------------------

def psi_from_proportions(expected: Sequence[float], actual: Sequence[float], *, epsilon: float = 1e-4) -> float:
    """sum((a - e) * ln(a / e)) over bins, each proportion floored at ``epsilon`` first so that an
    empty bin on one side gives a large but finite term instead of infinity."""
    if len(expected) != len(actual):
        raise DriftError(f"PSI needs one proportion per bin on both sides: got {len(expected)} expected and {len(actual)} actual")
    if epsilon <= 0:
        raise DriftError(f"PSI epsilon must be positive, got {epsilon}")
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(float(e), epsilon), max(float(a), epsilon)
        total += (a - e) * math.log(a / e)
    return total


def psi_level(value: float | None, *, warn: float = 0.1, alert: float = 0.25) -> str:
    """"stable" below ``warn``, "shift" from ``warn`` up to ``alert``, "major_shift" from ``alert``
    on; "unknown" when there is no PSI (no reference data)."""
    if warn > alert:
        raise DriftError(f"the PSI warn level ({warn}) is above the alert level ({alert})")
    if value is None or math.isnan(value):
        return "unknown"
    if value < warn:
        return "stable"
    return "shift" if value < alert else "major_shift"


def _check_numeric(df: DataFrame, columns: Sequence[str], side: str) -> None:
    types = {f.name: f.dataType for f in df.schema.fields}
    missing = [c for c in columns if c not in types]
    if missing:
        raise DriftError(f"PSI columns missing from the {side} frame: {', '.join(missing)}")
    wrong = [f"{c} ({types[c].simpleString()})" for c in columns if not isinstance(types[c], T.NumericType)]
    if wrong:
        raise DriftError(f"PSI needs numeric columns; the {side} frame has {', '.join(wrong)}")


def _bin_conditions(value: Column, edges: Sequence[float]) -> list[Column]:
    """One condition per bin, nulls first, then (-inf, e_1], (e_1, e_2], ..., (e_k, +inf)."""
    conditions = [value.isNull(), value <= F.lit(edges[0])]
    conditions += [(value > F.lit(lo)) & (value <= F.lit(hi)) for lo, hi in zip(edges, edges[1:])]
    conditions.append(value > F.lit(edges[-1]))
    return conditions


def _proportions(df: DataFrame, edges: dict[str, list[float]]) -> dict[str, list[float]] | None:
    """Per column, the share of ``df``'s rows in each bin: one aggregation for all columns.
    None when ``df`` has no rows."""
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    for i, (column, cuts) in enumerate(edges.items()):
        value = F.col(column).cast("double")
        aggregates += [
            F.sum(F.when(condition, 1).otherwise(0)).alias(f"_c{i}_b{b}")
            for b, condition in enumerate(_bin_conditions(value, cuts))
        ]
    row = df.agg(*aggregates).first()
    rows = int(row["_rows"])
    if rows == 0:
        return None
    return {
        column: [row[f"_c{i}_b{b}"] / rows for b in range(len(cuts) + 2)]
        for i, (column, cuts) in enumerate(edges.items())
    }


def psi(expected: DataFrame, actual: DataFrame, columns: Sequence[str], *, bins: int = 10, epsilon: float = 1e-4) -> dict[str, float | None]:
    """Population stability index of each numeric column of ``actual`` against ``expected`` (the
    reference, e.g. the previous run), binned on ``expected``'s quantiles (see the module doc).
    A column is None when ``expected`` has no non-null value in it or either frame has no rows.
    Three Spark jobs in all: the quantiles, then the bin counts of each frame."""
    if bins < 2:
        raise DriftError(f"PSI needs at least 2 bins, got {bins}")
    if epsilon <= 0:
        raise DriftError(f"PSI epsilon must be positive, got {epsilon}")
    columns = list(dict.fromkeys(columns))
    if not columns:
        return {}
    _check_numeric(expected, columns, "expected")
    _check_numeric(actual, columns, "actual")
    percentages = [i / bins for i in range(1, bins)]
    quantiles = expected.agg(
        *[F.percentile_approx(F.col(c).cast("double"), percentages, QUANTILE_ACCURACY).alias(f"_q{i}") for i, c in enumerate(columns)]
    ).first()
    edges = {c: sorted(set(quantiles[f"_q{i}"])) for i, c in enumerate(columns) if quantiles[f"_q{i}"] is not None}
    result: dict[str, float | None] = dict.fromkeys(columns)
    if not edges:
        return result
    expected_shares = _proportions(expected, edges)
    actual_shares = _proportions(actual, edges)
    if expected_shares is None or actual_shares is None:
        return result
    for column in edges:
        result[column] = psi_from_proportions(expected_shares[column], actual_shares[column], epsilon=epsilon)
    return result


# --- segment shares -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentShift:
    segment: str
    previous_share: float
    current_share: float
    relative_change: float | None  # current / previous - 1; None for a new segment
    flagged: bool


def _shares(df: DataFrame, column: str) -> dict[str, float]:
    counts = df.where(F.col(column).isNotNull()).groupBy(column).agg(F.count(F.lit(1)).alias("_n")).collect()
    total = sum(r["_n"] for r in counts)
    return {str(r[column]): r["_n"] / total for r in counts}


def segment_shift(previous: DataFrame, current: DataFrame, *, column: str = "segment", threshold: float = 0.15) -> list[SegmentShift]:
    """Share of each segment value among the rows with a segment (nulls left out), before and now.
    A segment is flagged when its share moved by more than ``threshold`` relative to before; a new
    segment (no share before) is always flagged and has no relative change; one that disappeared
    has current share 0 and change -1. Sorted by segment name."""
    if threshold < 0:
        raise DriftError(f"the segment shift threshold must not be negative, got {threshold}")
    for side, df in (("previous", previous), ("current", current)):
        if column not in df.columns:
            raise DriftError(f"segment column {column!r} is missing from the {side} frame")
    before, now = _shares(previous, column), _shares(current, column)
    shifts = []
    for segment in sorted(before.keys() | now.keys()):
        p, c = before.get(segment, 0.0), now.get(segment, 0.0)
        change = c / p - 1.0 if p else None
        shifts.append(SegmentShift(segment, p, c, change, change is None or abs(change) > threshold))
    return shifts


# --- realized churn -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RealizedChurn:
    scored: int
    predicted_rate: float  # mean churn_score
    realized_rate: float  # share of scored customers without an order in the horizon
    difference: float  # realized - predicted
    predicted_positive_rate: float  # share of churn_predicted


def with_churn_outcome(scores: DataFrame, orders: DataFrame, *, as_of: date, horizon_days: int) -> DataFrame:
    """``scores`` plus ``churned``: no order with ``ordered_at`` in (end of ``as_of``, end of
    ``as_of`` + ``horizon_days`` days], UTC - the churn label's own window."""
    if horizon_days < 1:
        raise DriftError(f"the churn horizon must be at least one day, got {horizon_days}")
    start, stop = end_of_day(as_of), end_of_day(as_of + timedelta(days=horizon_days))
    ordered = (
        orders.where((F.col("ordered_at") >= F.lit(start).cast("timestamp")) & (F.col("ordered_at") < F.lit(stop).cast("timestamp")))
        .select("customer_id").distinct().withColumn("_ordered", F.lit(True))
    )
    return scores.join(ordered, "customer_id", "left").withColumn("churned", F.col("_ordered").isNull()).drop("_ordered")


def realized_churn(scores: DataFrame, orders: DataFrame, *, as_of: date, horizon_days: int) -> RealizedChurn | None:
    """How the churn scored as of ``as_of`` played out: a scored customer churned when they have no
    order with ``ordered_at`` in (end of ``as_of``, end of ``as_of`` + ``horizon_days`` days], UTC
    (the churn label's own window). ``scores``: customer_id, churn_score, churn_predicted, one row
    per customer; ``orders``: customer_id, ordered_at. None when nobody was scored. Null scores and
    null predictions are left out of their means."""
    return realized_churn_of(with_churn_outcome(scores, orders, as_of=as_of, horizon_days=horizon_days))


def realized_churn_of(flagged: DataFrame) -> RealizedChurn | None:
    """``realized_churn`` of scores that already carry their outcome (``with_churn_outcome``)."""
    row = flagged.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(F.col("churn_score").cast("double")).alias("predicted"),
        F.avg(F.col("churned").cast("double")).alias("realized"),
        F.avg(F.col("churn_predicted").cast("double")).alias("positive"),
    ).first()
    if row["n"] == 0:
        return None
    for name, key in (("churn_score", "predicted"), ("churn_predicted", "positive")):
        if row[key] is None:
            raise DriftError(f"all {row['n']} scored customers have a null {name}: nothing to compare realized churn with")
    predicted, realized = float(row["predicted"]), float(row["realized"])
    return RealizedChurn(
        scored=int(row["n"]), predicted_rate=predicted, realized_rate=realized,
        difference=realized - predicted, predicted_positive_rate=float(row["positive"]),
    )
