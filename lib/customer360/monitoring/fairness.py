"""Fairness of the churn model and the segmentation across customer groups (age band, gender, ...):
per group the churn-predicted rate, mean churn score, true positive rate and segment shares, set
against the attribute's reference group. Only one row per group reaches the driver.

Disparate impact (DI) is a group's rate over the reference group's; the four-fifths rule flags DI
below ``min_disparate_impact`` or above its inverse. Equal opportunity difference (EOD) is a group's
true positive rate minus the reference group's. A group smaller than ``min_group_size`` and the
"unknown" group (null attribute) are reported but never flagged: their rates are noise or mixtures.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import date, datetime

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.errors import C360Error
from customer360.lakehouse.common import described_columns

#: (lowest age, highest age) in whole years, both inclusive; None = open ended
AGE_BANDS: tuple[tuple[int, int | None], ...] = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, None))
UNKNOWN = "unknown"
CHURN_PREDICTED_RATE = "churn_predicted_rate"
MEAN_CHURN_SCORE = "mean_churn_score"
TRUE_POSITIVE_RATE = "true_positive_rate"
SEGMENT_SHARE = "segment_share:"


class FairnessError(C360Error):
    """A fairness check was given bad input: a missing attribute column, bad age bands or thresholds."""


# --- age bands ------------------------------------------------------------------------------------

def _check_bands(bands: Sequence[tuple[int, int | None]]) -> None:
    if not bands:
        raise FairnessError("age bands must not be empty")
    previous_high = -1
    for i, (low, high) in enumerate(bands):
        if high is None and i != len(bands) - 1:
            raise FairnessError(f"only the last age band may be open ended, not ({low}, None)")
        if low <= previous_high or (high is not None and high < low):
            raise FairnessError(f"age bands must be ascending and must not overlap: {list(bands)}")
        previous_high = high if high is not None else low


def age_band(date_of_birth: Column, *, as_of: date, bands: Sequence[tuple[int, int | None]] = AGE_BANDS) -> Column:
    """The band label ("18-24", ..., "65+") of the age in whole years on ``as_of``: the birthday
    counts on its day (someone born on 29 February has it on 1 March in other years). Null for a
    null date of birth and for an age outside every band (below the first, in a gap)."""
    _check_bands(bands)
    born = date_of_birth.cast("date")
    before_birthday = (F.month(born) > as_of.month) | ((F.month(born) == as_of.month) & (F.dayofmonth(born) > as_of.day))
    age = F.lit(as_of.year) - F.year(born) - F.when(before_birthday, 1).otherwise(0)
    label: Column | None = None
    for low, high in bands:
        inside = age >= low if high is None else age.between(low, high)
        name = F.lit(f"{low}+" if high is None else f"{low}-{high}")
        label = F.when(inside, name) if label is None else label.when(inside, name)
    return label


# --- report ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FairnessRow:
    attribute: str
    group: str
    metric: str
    value: float | None
    reference_group: str
    reference_value: float | None
    disparate_impact: float | None
    equal_opportunity_difference: float | None
    members: int
    flagged: bool


def _is_rate(metric: str) -> bool:
    return metric == CHURN_PREDICTED_RATE or metric.startswith(SEGMENT_SHARE)


def _metric_columns(df: DataFrame, segments: list[str]) -> dict[str, Column]:
    """metric name -> aggregate, for the optional columns ``df`` has."""
    metrics: dict[str, Column] = {}
    predicted = F.col("churn_predicted").cast("double")
    if "churn_predicted" in df.columns:
        metrics[CHURN_PREDICTED_RATE] = F.avg(predicted)
    if "churn_score" in df.columns:
        metrics[MEAN_CHURN_SCORE] = F.avg(F.col("churn_score").cast("double"))
    if "churned" in df.columns and "churn_predicted" in df.columns:
        # the mean of the prediction over churned members only: null when the group has none
        metrics[TRUE_POSITIVE_RATE] = F.avg(F.when(F.col("churned"), predicted))
    for segment in segments:
        metrics[SEGMENT_SHARE + segment] = F.sum(F.when(F.col("segment") == segment, 1).otherwise(0)) / F.count(F.lit(1))
    return metrics


def _reference(members: dict[str, int]) -> str:
    """The largest group, ties to the first name; "unknown" only when it is the only group."""
    known = {g: n for g, n in members.items() if g != UNKNOWN} or members
    return min(known, key=lambda g: (-known[g], g))


def fairness_report(
    df: DataFrame,
    *,
    attributes: Sequence[str],
    min_disparate_impact: float = 0.8,
    max_equal_opportunity_difference: float = 0.1,
    min_group_size: int = 30,
) -> list[FairnessRow]:
    """One row per (attribute, metric, group), in that order, groups by name. ``df`` has one row per
    customer: the ``attributes`` (strings; null is the group "unknown") and any of ``segment``,
    ``churn_score``, ``churn_predicted`` and ``churned`` (the outcome); a metric whose columns are
    missing is left out, and a group without churned members has no true positive rate row.
    Segment shares are over all the group's members (a null segment counts in the denominator).
    The reference group is the attribute's largest known group. Spark jobs: one distinct over
    ``segment``, one groupBy per attribute."""
    if not 0 < min_disparate_impact <= 1:
        raise FairnessError(f"min_disparate_impact must be in (0, 1], got {min_disparate_impact}")
    if max_equal_opportunity_difference < 0:
        raise FairnessError(f"max_equal_opportunity_difference must not be negative, got {max_equal_opportunity_difference}")
    missing = [a for a in attributes if a not in df.columns]
    if missing:
        raise FairnessError(f"fairness attributes missing from the frame: {', '.join(missing)}")
    if not attributes:
        return []
    segments: list[str] = []
    if "segment" in df.columns:
        found = df.where(F.col("segment").isNotNull()).select(F.col("segment").cast("string")).distinct().collect()
        segments = sorted(r[0] for r in found)
    metrics = _metric_columns(df, segments)
    if not metrics:
        return []
    names = {metric: f"_m{i}" for i, metric in enumerate(metrics)}
    report: list[FairnessRow] = []
    for attribute in dict.fromkeys(attributes):
        group = F.coalesce(F.col(attribute).cast("string"), F.lit(UNKNOWN)).alias("_group")
        rows = df.groupBy(group).agg(F.count(F.lit(1)).alias("_members"), *[aggregate.alias(names[m]) for m, aggregate in metrics.items()]).collect()
        members = {r["_group"]: int(r["_members"]) for r in rows}
        if not members:
            continue
        reference = _reference(members)
        by_group = {r["_group"]: r for r in rows}
        for metric, column in names.items():
            reference_value = by_group[reference][column]
            for name in sorted(by_group):
                value = by_group[name][column]
                if metric == TRUE_POSITIVE_RATE and value is None:
                    continue
                report.append(_row(
                    attribute, name, metric, value, reference, reference_value, members[name],
                    min_disparate_impact=min_disparate_impact, max_eod=max_equal_opportunity_difference, min_group_size=min_group_size,
                ))
    return report


def _row(
    attribute: str, group: str, metric: str, value: float | None, reference: str, reference_value: float | None, members: int,
    *, min_disparate_impact: float, max_eod: float, min_group_size: int,
) -> FairnessRow:
    value = None if value is None else float(value)
    reference_value = None if reference_value is None else float(reference_value)
    both = value is not None and reference_value is not None
    di = value / reference_value if _is_rate(metric) and both and reference_value != 0 else None
    eod = value - reference_value if metric == TRUE_POSITIVE_RATE and both else None
    eligible = group != UNKNOWN and members >= min_group_size
    flagged = eligible and (
        (di is not None and (di < min_disparate_impact or di > 1 / min_disparate_impact))
        or (eod is not None and abs(eod) > max_eod)
    )
    return FairnessRow(attribute, group, metric, value, reference, reference_value, di, eod, members, flagged)


# --- table ----------------------------------------------------------------------------------------

FAIRNESS_SCHEMA, COMMENTS = described_columns(
    ("attribute", T.StringType(), False, "customer attribute the groups come from, e.g. age_band or gender"),
    ("group", T.StringType(), False, "value of the attribute; 'unknown' where it is null"),
    ("metric", T.StringType(), False, "churn_predicted_rate, mean_churn_score, true_positive_rate or segment_share:<segment>"),
    ("value", T.DoubleType(), True, "the metric for the group; null where it cannot be computed (no scores)"),
    ("reference_group", T.StringType(), False, "the attribute's largest known group, which the others are compared with"),
    ("reference_value", T.DoubleType(), True, "the metric for the reference group"),
    ("disparate_impact", T.DoubleType(), True,
     "value / reference_value for rate metrics (churn_predicted_rate, segment_share:*); null otherwise or "
     "when the reference is 0"),
    ("equal_opportunity_difference", T.DoubleType(), True, "value - reference_value for true_positive_rate; null for other metrics"),
    ("members", T.LongType(), False, "customers in the group"),
    ("flagged", T.BooleanType(), False,
     "outside the four-fifths rule (rates) or the equal opportunity limit (true_positive_rate); never for "
     "small or unknown groups"),
    ("run_id", T.StringType(), False, "pipeline run that wrote the row"),
    ("as_of_date", T.DateType(), False, "date the scores and segments are as of"),
    ("recorded_at", T.TimestampType(), False, "when the report was computed, UTC"),
    ("region", T.StringType(), False, "region (partition)"),
)


def fairness_frame(
    spark: SparkSession, rows: Sequence[FairnessRow], *, run_id: str, as_of: date, recorded_at: datetime, region: str,
) -> DataFrame:
    """The report as a frame of ``FAIRNESS_SCHEMA``, ready to append to the monitoring table."""
    return spark.createDataFrame([(*astuple(r), run_id, as_of, recorded_at, region) for r in rows], FAIRNESS_SCHEMA)
