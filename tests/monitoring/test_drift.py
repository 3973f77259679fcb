"""Drift: PSI against a numpy implementation of the same binning and on hand-computed examples
(edges, nulls, constant columns, missing reference data), PSI levels, segment share shifts with
exact shares, and realized churn around the window's boundary instants; and the bad paths."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone

import numpy as np
import pytest

from customer360.monitoring.drift import (
    DriftError,
    RealizedChurn,
    SegmentShift,
    psi,
    psi_from_proportions,
    psi_level,
    realized_churn,
    segment_shift,
)

EPS = 1e-4
PRECISION = 1e-9
XY_SCHEMA = "x double, y long"


def xy(spark, xs, ys=None):
    ys = ys if ys is not None else [None] * len(xs)
    return spark.createDataFrame(list(zip(xs, ys)), XY_SCHEMA)


def x_only(spark, values):
    return spark.createDataFrame([(v,) for v in values], "x double")


def term(e: float, a: float) -> float:
    e, a = max(e, EPS), max(a, EPS)
    return (a - e) * math.log(a / e)


def numpy_psi(expected, actual, bins: int = 10) -> float:
    """The documented binning written with numpy: edges are the inverted-CDF quantiles of the
    non-null expected values, value v in bin i where edges[i-1] < v <= edges[i], nulls apart."""
    e, a = np.array(expected, dtype=float), np.array(actual, dtype=float)
    edges = np.unique(np.quantile(e[~np.isnan(e)], [i / bins for i in range(1, bins)], method="inverted_cdf"))

    def shares(values):
        known = values[~np.isnan(values)]
        counts = np.bincount(np.searchsorted(edges, known, side="left"), minlength=len(edges) + 1)
        return np.append(counts, np.isnan(values).sum()) / len(values)

    pe, pa = np.maximum(shares(e), EPS), np.maximum(shares(a), EPS)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


# --- psi ------------------------------------------------------------------------------------------

def test_psi_of_identical_frames_is_zero(spark):
    df = xy(spark, [0.5, 1.5, None, 3.0, 3.0, 7.25, -2.0, None], [1, 1, 1, 2, 3, None, 5, 8])
    assert psi(df, df, ["x", "y"]) == {"x": pytest.approx(0.0, abs=PRECISION), "y": pytest.approx(0.0, abs=PRECISION)}


def test_psi_hand_computed(spark):
    # expected 1..8, 4 bins: quartile edges 2, 4, 6 -> bins (-inf,2], (2,4], (4,6], (6,inf) at 1/4 each
    # actual [1, 2, 2, 3, 9, 9, 9, 9]: 3/8 in the first bin, 1/8 in the second, none in the third
    # (floored to 1e-4), 4/8 in the last; no nulls on either side
    actual = [1, 2, 2, 3, 9, 9, 9, 9]
    got = psi(x_only(spark, [float(v) for v in range(1, 9)]), x_only(spark, [float(v) for v in actual]), ["x"], bins=4)
    hand = term(0.25, 3 / 8) + term(0.25, 1 / 8) + term(0.25, 0.0) + term(0.25, 0.5)
    assert got == {"x": pytest.approx(hand, abs=PRECISION)}
    assert hand == pytest.approx(numpy_psi(range(1, 9), actual, 4), abs=PRECISION)


def test_psi_matches_numpy_on_random_data_with_ties_and_nulls(spark):
    # three columns, one call: rounded to one decimal so that many values sit exactly on an edge,
    # about 5% nulls in expected and 15% in actual
    rng = np.random.default_rng(5)
    names = ["a", "b", "c"]
    expected = [np.where(rng.random(150) < 0.05, np.nan, np.round(rng.normal(0, 1, 150), 1)) for _ in names]
    actual = [np.where(rng.random(120) < 0.15, np.nan, np.round(rng.normal(0.1 * k, 1.0 + 0.2 * k, 120), 1)) for k in range(3)]

    def frame(columns):
        rows = [tuple(None if np.isnan(v) else float(v) for v in row) for row in zip(*columns)]
        return spark.createDataFrame(rows, "a double, b double, c double")

    got = psi(frame(expected), frame(actual), names, bins=7)
    assert got == {n: pytest.approx(numpy_psi(e, a, 7), abs=PRECISION) for n, e, a in zip(names, expected, actual)}
    assert min(got.values()) > 0.01  # real shifts, not degenerate zeros


def test_psi_a_value_on_an_edge_belongs_to_the_bin_below(spark):
    # expected 1..4, 4 bins: edges 1, 2, 3; bins (-inf,1], (1,2], (2,3], (3,inf) at 1/4 each.
    # on: one value per bin; below: one per bin; above: none in the first, two in the last
    schema = "on double, below double, above double"
    expected = spark.createDataFrame([(v, v, v) for v in (1.0, 2.0, 3.0, 4.0)], schema)
    actual = spark.createDataFrame([(1.0, 0.5, 1.001), (2.0, 1.5, 2.001), (3.0, 2.5, 3.001), (4.0, 3.5, 4.0)], schema)
    assert psi(expected, actual, ["on", "below", "above"], bins=4) == {
        "on": pytest.approx(0.0, abs=PRECISION),
        "below": pytest.approx(0.0, abs=PRECISION),
        "above": pytest.approx(term(0.25, 0.0) + term(0.25, 0.5), abs=PRECISION),
    }


def test_psi_large_shift_is_a_major_shift(spark):
    # expected 0..99: decile edges 9, 19, ..., 89. actual 80..179: 80-89 fill the ninth bin (1/10),
    # 90-179 the last (9/10), the first eight are empty
    got = psi(x_only(spark, [float(v) for v in range(100)]), x_only(spark, [float(v) for v in range(80, 180)]), ["x"])["x"]
    hand = 8 * term(0.1, 0.0) + term(0.1, 0.1) + term(0.1, 0.9)
    assert got == pytest.approx(hand, abs=PRECISION)
    assert psi_level(got) == "major_shift"


def test_psi_nulls_form_their_own_bin(spark):
    # x: expected 1..4 without nulls (edges 1, 2, 3); actual 1..4 and four nulls: half the rows in
    # the null bin (expected 0, floored), 1/8 in each value bin (expected 1/4).
    # y: a quarter nulls on both sides is no shift
    expected = xy(spark, [1.0, 2.0, 3.0, 4.0], [1, 2, 3, None])
    actual = xy(spark, [1.0, 2.0, 3.0, 4.0, None, None, None, None], [1, 2, 3, None, 3, 2, 1, None])
    assert psi(expected, actual, ["x", "y"], bins=4) == {
        "x": pytest.approx(term(0.0, 0.5) + 4 * term(0.25, 0.125), abs=PRECISION),
        "y": pytest.approx(0.0, abs=PRECISION),
    }


def test_psi_constant_column_has_two_bins(spark):
    # every expected quantile is 5: one edge, bins (-inf,5] and (5,inf). above: half the actual
    # values above 5 is a shift; below: values under 5 fall in the same bin as 5 itself
    schema = "above double, below double"
    expected = spark.createDataFrame([(5.0, 5.0)] * 10, schema)
    actual = spark.createDataFrame([(5.0, 5.0), (5.0, 3.0), (7.0, -1.0), (7.0, 4.9)], schema)
    assert psi(expected, actual, ["above", "below"]) == {
        "above": pytest.approx(term(1.0, 0.5) + term(0.0, 0.5), abs=PRECISION),
        "below": pytest.approx(0.0, abs=PRECISION),
    }


def test_psi_is_none_without_reference_values_or_rows(spark):
    # x is all null in expected, y is not: x has no PSI, y does (computed in the same jobs)
    expected = xy(spark, [None, None, None], [1, 2, 3])
    actual = xy(spark, [1.0, 2.0, 3.0], [1, 2, 3])
    assert psi(expected, actual, ["x", "y"]) == {"x": None, "y": pytest.approx(0.0, abs=PRECISION)}
    empty = spark.createDataFrame([], XY_SCHEMA)
    assert psi(empty, actual, ["x", "y"]) == {"x": None, "y": None}
    assert psi(actual, empty, ["x", "y"]) == {"x": None, "y": None}
    assert psi_level(None) == "unknown"


def test_psi_with_no_columns_runs_nothing(spark):
    assert psi(x_only(spark, [1.0]), x_only(spark, [2.0]), []) == {}


@pytest.mark.parametrize(
    ("kwargs", "columns", "message"),
    [
        ({}, ["z"], "missing from the expected frame: z"),
        ({}, ["name"], r"numeric columns; the expected frame has name \(string\)"),
        ({"bins": 1}, ["x"], "at least 2 bins"),
        ({"epsilon": 0.0}, ["x"], "epsilon must be positive"),
    ],
)
def test_psi_rejects_bad_input(spark, kwargs, columns, message):
    df = spark.createDataFrame([(1.0, "a")], "x double, name string")
    with pytest.raises(DriftError, match=message):
        psi(df, df, columns, **kwargs)


def test_psi_rejects_a_column_missing_from_actual(spark):
    with pytest.raises(DriftError, match="missing from the actual frame: y"):
        psi(xy(spark, [1.0], [1]), x_only(spark, [1.0]), ["x", "y"])


# --- psi from proportions and levels --------------------------------------------------------------

def test_psi_from_proportions_floors_at_epsilon():
    # the empty third bin on the expected side becomes 1e-4: (0.25 - 1e-4) * ln(0.25 / 1e-4)
    expected, actual = [0.5, 0.5, 0.0], [0.5, 0.25, 0.25]
    hand = 0.0 + (0.25 - 0.5) * math.log(0.5) + (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert psi_from_proportions(expected, actual) == pytest.approx(hand, abs=PRECISION)
    # a larger floor shrinks the empty bin's term
    hand_001 = (0.25 - 0.5) * math.log(0.5) + (0.25 - 0.01) * math.log(0.25 / 0.01)
    assert psi_from_proportions(expected, actual, epsilon=0.01) == pytest.approx(hand_001, abs=PRECISION)
    # a bin empty on both sides adds nothing; so does a proportion below the floor on both sides
    assert psi_from_proportions([0.5, 0.5, 0.0, 1e-6], [0.5, 0.5, 0.0, 0.0]) == 0.0


def test_psi_from_proportions_is_symmetric_and_positive():
    e, a = [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]
    assert psi_from_proportions(e, a) == pytest.approx(psi_from_proportions(a, e), abs=PRECISION)
    assert psi_from_proportions(e, a) == pytest.approx(sum(term(x, y) for x, y in zip(e, a)), abs=PRECISION)
    assert psi_from_proportions(e, a) > 0


@pytest.mark.parametrize(
    ("expected", "actual", "kwargs", "message"),
    [([0.5, 0.5], [1.0], {}, "2 expected and 1 actual"), ([1.0], [1.0], {"epsilon": -1.0}, "epsilon must be positive")],
)
def test_psi_from_proportions_rejects_bad_input(expected, actual, kwargs, message):
    with pytest.raises(DriftError, match=message):
        psi_from_proportions(expected, actual, **kwargs)


@pytest.mark.parametrize(
    ("value", "kwargs", "level"),
    [
        (0.0, {}, "stable"),
        (0.0999, {}, "stable"),
        (0.1, {}, "shift"),
        (0.2499, {}, "shift"),
        (0.25, {}, "major_shift"),
        (7.3, {}, "major_shift"),
        (None, {}, "unknown"),
        (float("nan"), {}, "unknown"),
        (0.15, {"warn": 0.2, "alert": 0.5}, "stable"),
        (0.3, {"warn": 0.2, "alert": 0.5}, "shift"),
    ],
)
def test_psi_level(value, kwargs, level):
    assert psi_level(value, **kwargs) == level


def test_psi_level_rejects_warn_above_alert():
    with pytest.raises(DriftError, match="warn level"):
        psi_level(0.1, warn=0.3, alert=0.2)


# --- segment shift --------------------------------------------------------------------------------

SEGMENT_SCHEMA = "customer_id string, segment string"


def segments(spark, counts: dict[str | None, int]):
    rows = [(f"{s}-{i}", s) for s, n in counts.items() for i in range(n)]
    return spark.createDataFrame(rows, SEGMENT_SCHEMA)


def test_segment_shift_shares_changes_and_flags(spark):
    # previous (20 with a segment): a 8, b 6, c 4, e 2 -> 0.4, 0.3, 0.2, 0.1; nulls left out
    # current (20 with a segment): a 9, b 6, d 3, e 2 -> 0.45, 0.3, 0.15, 0.1
    previous = segments(spark, {"a": 8, "b": 6, "c": 4, "e": 2, None: 5})
    current = segments(spark, {"e": 2, "d": 3, "b": 6, "a": 9, None: 1})
    assert segment_shift(previous, current) == [
        SegmentShift("a", pytest.approx(0.4), pytest.approx(0.45), pytest.approx(0.125), False),
        SegmentShift("b", pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.0, abs=PRECISION), False),
        SegmentShift("c", pytest.approx(0.2), 0.0, -1.0, True),  # disappeared
        SegmentShift("d", 0.0, pytest.approx(0.15), None, True),  # new
        SegmentShift("e", pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.0, abs=PRECISION), False),
    ]


def test_segment_shift_in_a_named_column_with_a_threshold(spark):
    # cluster 7: 2/4 -> 2/3 (+1/3), cluster 3: 2/4 -> 1/3 (-1/3): flagged at the default 0.15, not at 0.4
    schema = "customer_id string, cluster int"
    previous = spark.createDataFrame([("1", 7), ("2", 7), ("3", 3), ("4", 3)], schema)
    current = spark.createDataFrame([("1", 7), ("2", 7), ("3", 3), ("4", None)], schema)
    assert segment_shift(previous, current, column="cluster", threshold=0.4) == [
        SegmentShift("3", 0.5, pytest.approx(1 / 3), pytest.approx(-1 / 3), False),
        SegmentShift("7", 0.5, pytest.approx(2 / 3), pytest.approx(1 / 3), False),
    ]


def test_segment_shift_rejects_a_missing_column(spark):
    df = segments(spark, {"a": 1})
    with pytest.raises(DriftError, match="'cluster' is missing from the previous frame"):
        segment_shift(df, df, column="cluster")


# --- realized churn -------------------------------------------------------------------------------

SCORES_SCHEMA = "customer_id string, churn_score double, churn_predicted boolean"
ORDERS_SCHEMA = "customer_id string, ordered_at timestamp"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_realized_churn_window_boundaries(spark):
    # as of 2026-03-31, 30 days: an order in [2026-04-01 00:00, 2026-05-01 00:00) UTC means no churn
    scores = spark.createDataFrame(
        [("c1", 0.2, False), ("c2", 0.9, True), ("c3", 0.6, True), ("c4", 0.1, False), ("c5", 0.7, True)], SCORES_SCHEMA
    )
    orders = spark.createDataFrame(
        [
            ("c1", utc(2026, 4, 1)),  # exactly at the window start: counts
            ("c1", utc(2026, 4, 20, 8)),  # a second order does not count the customer twice
            ("c2", utc(2026, 5, 1)),  # exactly at the window end: does not count -> churned
            ("c3", utc(2026, 3, 31, 23, 59, 59)),  # on the as-of day itself -> churned
            ("c4", utc(2026, 4, 30, 23, 59, 59, 999999)),  # last instant inside
            ("c9", utc(2026, 4, 2)),  # not scored
        ],
        ORDERS_SCHEMA,
    )
    # c5 has no orders. Churned: c2, c3, c5 -> 3/5; mean score 2.5/5; predicted c2, c3, c5 -> 3/5
    got = realized_churn(scores, orders, as_of=date(2026, 3, 31), horizon_days=30)
    assert got == RealizedChurn(
        scored=5, predicted_rate=pytest.approx(0.5), realized_rate=pytest.approx(0.6),
        difference=pytest.approx(0.1), predicted_positive_rate=pytest.approx(0.6),
    )


def test_realized_churn_of_nobody_scored_is_none(spark):
    orders = spark.createDataFrame([("c1", utc(2026, 4, 2))], ORDERS_SCHEMA)
    assert realized_churn(spark.createDataFrame([], SCORES_SCHEMA), orders, as_of=date(2026, 3, 31), horizon_days=30) is None


def test_realized_churn_rejects_bad_input(spark):
    scores = spark.createDataFrame([("c1", None, None)], SCORES_SCHEMA)
    orders = spark.createDataFrame([], ORDERS_SCHEMA)
    with pytest.raises(DriftError, match="at least one day"):
        realized_churn(scores, orders, as_of=date(2026, 3, 31), horizon_days=0)
    with pytest.raises(DriftError, match="null churn_score"):
        realized_churn(scores, orders, as_of=date(2026, 3, 31), horizon_days=30)
