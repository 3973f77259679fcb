"""Model metrics: the adjusted Rand index and ROC AUC against scikit-learn, PR AUC against a
trapezoid over Spark's precision-recall curve written out here, lift, Brier, calibration bins and
expected cost on hand-computed examples, and the bad paths."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, brier_score_loss, roc_auc_score

from customer360.ml.metrics import (
    lift_table,
    BinaryMetrics,
    adjusted_rand_index,
    ari_from_counts,
    binary_metrics,
    calibration_table,
    expected_cost,
)

PRECISION = 1e-9
LABELS_SCHEMA = "id int, a int, b int"
SCORES_SCHEMA = "customer_id string, score double, label double"


def scores(spark, values, labels):
    rows = [(f"c{i:03d}", float(s), float(y)) for i, (s, y) in enumerate(zip(values, labels))]
    return spark.createDataFrame(rows, SCORES_SCHEMA)


def spark_pr_auc(values, labels) -> float:
    """Spark's areaUnderPR: trapezoids over (recall, precision) at each distinct score, highest
    first, starting from (0, precision at the highest score)."""
    values, labels = np.asarray(values, dtype=float), np.asarray(labels, dtype=float)
    positives = labels.sum()
    points = []
    for t in sorted(set(values), reverse=True):
        flagged = values >= t
        tp, fp = float(labels[flagged].sum()), float((1 - labels[flagged]).sum())
        points.append((tp / positives, tp / (tp + fp)))
    points.insert(0, (0.0, points[0][1]))
    return sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in zip(points, points[1:]))


def assert_metrics(got: BinaryMetrics, expected: BinaryMetrics) -> None:
    assert (got.rows, got.positives) == (expected.rows, expected.positives)
    for name in ("roc_auc", "pr_auc", "top_decile_lift", "brier"):
        want = getattr(expected, name)
        assert getattr(got, name) == (None if want is None else pytest.approx(want, abs=PRECISION)), name


# --- adjusted Rand index ---------------------------------------------------------------------------

def test_ari_hand_computed(spark):
    # a = 000111, b = 001122: cells 2,1,1,2 -> index 2; rows 3,3 -> 6; columns 2,2,2 -> 3; pairs 15
    # expected 6 * 3 / 15 = 1.2, maximum 4.5: ARI = 0.8 / 3.3
    df = spark.createDataFrame([(i, a, b) for i, (a, b) in enumerate(zip([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]))], LABELS_SCHEMA)
    assert adjusted_rand_index(df, "a", "b") == pytest.approx(0.8 / 3.3, abs=PRECISION)


@pytest.mark.parametrize(
    ("seed", "rows", "left_labels", "right_labels"),
    [(1, 60, 3, 3), (2, 80, 2, 5), (3, 50, 6, 4), (4, 40, 1, 3)],
)
def test_ari_matches_sklearn_on_random_labelings(spark, seed, rows, left_labels, right_labels):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, left_labels, rows)
    # b agrees with a on about half the rows, so the index is well away from 0 and from 1
    b = np.where(rng.random(rows) < 0.5, a % right_labels, rng.integers(0, right_labels, rows))
    df = spark.createDataFrame([(i, int(x), int(y)) for i, (x, y) in enumerate(zip(a, b))], LABELS_SCHEMA)
    assert adjusted_rand_index(df, "a", "b") == pytest.approx(adjusted_rand_score(a, b), abs=PRECISION)


def test_ari_of_identical_partitions_under_relabelling_is_one(spark):
    a = [0, 0, 1, 1, 1, 2, 2, 3]
    relabel = {0: 7, 1: 5, 2: 9, 3: 1}
    df = spark.createDataFrame([(i, x, relabel[x]) for i, x in enumerate(a)], LABELS_SCHEMA)
    assert adjusted_rand_index(df, "a", "b") == pytest.approx(1.0, abs=PRECISION)


def test_ari_skips_rows_with_a_null_label_on_either_side(spark):
    a = [0, 0, 0, 1, 1, 1]
    b = [0, 0, 1, 1, 2, 2]
    rows = [(i, x, y) for i, (x, y) in enumerate(zip(a, b))]
    # these would pull the index down if they counted (they disagree with everything)
    rows += [(10, None, 0), (11, 1, None), (12, None, None), (13, 0, None)]
    df = spark.createDataFrame(rows, LABELS_SCHEMA)
    assert adjusted_rand_index(df, "a", "b") == pytest.approx(adjusted_rand_score(a, b), abs=PRECISION)


@pytest.mark.parametrize("rows", [[], [(1, 0, 0), (2, None, 1), (3, 1, None)]])
def test_ari_needs_two_labelled_rows(spark, rows):
    df = spark.createDataFrame(rows, LABELS_SCHEMA)
    with pytest.raises(ValueError, match="at least two labelled rows"):
        adjusted_rand_index(df, "a", "b")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 0, 0], [3, 3, 3, 3], 1.0),  # one cluster on both sides
        ([0, 1, 2, 3], [3, 2, 1, 0], 1.0),  # all singletons on both sides
        ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),  # one cluster against singletons: no agreement beyond chance
        ([0, 1], [0, 0], 0.0),  # the smallest input
        ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2], 0.8 / 3.3),
    ],
)
def test_ari_from_counts_degenerate_partitions_agree_with_sklearn(a, b, expected):
    cells = list(Counter(zip(a, b)).values())
    rows, columns = list(Counter(a).values()), list(Counter(b).values())
    got = ari_from_counts(cells, rows, columns)
    assert (got, adjusted_rand_score(a, b)) == (pytest.approx(expected, abs=PRECISION), pytest.approx(expected, abs=PRECISION))


def test_ari_from_counts_rejects_fewer_than_two_rows():
    with pytest.raises(ValueError, match="at least two"):
        ari_from_counts([1], [1], [1])


# --- binary metrics -------------------------------------------------------------------------------

def test_binary_metrics_hand_example(spark):
    # scores 0.9 (no churn), 0.8, 0.7 (churn), 0.1 (no churn)
    # ROC: of the 4 (churner, stayer) pairs, 0.8 > 0.1 and 0.7 > 0.1 are ranked right: 0.5
    # PR curve: (0, 0) start, t=0.9 (0, 0), t=0.8 (0.5, 0.5), t=0.7 (1, 2/3), t=0.1 (1, 0.5)
    #   area 0.5 * 0.5 / 2 + 0.5 * (0.5 + 2/3) / 2 = 0.125 + 0.291667 = 5/12 (average precision would be 7/12)
    # top decile of 4 rows: ntile(10) puts only the highest score (a stayer) there: lift 0
    # Brier: (0.81 + 0.04 + 0.09 + 0.01) / 4 = 0.2375
    df = scores(spark, [0.9, 0.8, 0.7, 0.1], [0, 1, 1, 0])
    got = binary_metrics(df, score="score")
    expected = BinaryMetrics(rows=4, positives=2, roc_auc=0.5, pr_auc=5 / 12, top_decile_lift=0.0, brier=0.2375)
    assert_metrics(got, expected)


def test_binary_metrics_perfect_ranking_with_a_named_label_column(spark):
    # churners 0.8 and 0.6 above stayers 0.4 and 0.1: ROC AUC 1, PR AUC 1; the top decile (1 of 4
    # rows) is the 0.8 churner: 1.0 / 0.5 = 2; Brier (0.04 + 0.16 + 0.01 + 0.16) / 4 = 0.0925
    df = scores(spark, [0.8, 0.4, 0.1, 0.6], [1, 0, 0, 1]).withColumnRenamed("label", "churned")
    got = binary_metrics(df, score="score", label="churned")
    assert_metrics(got, BinaryMetrics(rows=4, positives=2, roc_auc=1.0, pr_auc=1.0, top_decile_lift=2.0, brier=0.0925))


def test_binary_metrics_match_sklearn_on_random_scores_with_ties(spark):
    rng = np.random.default_rng(7)
    labels = (rng.random(300) < 0.3).astype(float)
    # informative but noisy, rounded to 2 decimals so that many scores tie
    values = np.clip(np.round(0.3 * labels + 0.7 * rng.random(300), 2), 0.0, 1.0)
    got = binary_metrics(scores(spark, values, labels), score="score")
    assert (got.rows, got.positives) == (300, int(labels.sum()))
    assert got.roc_auc == pytest.approx(roc_auc_score(labels, values), abs=PRECISION)
    assert got.pr_auc == pytest.approx(spark_pr_auc(values, labels), abs=PRECISION)
    assert got.brier == pytest.approx(brier_score_loss(labels, values), abs=PRECISION)
    assert 0.5 < got.roc_auc < 1.0 and labels.mean() < got.pr_auc < 1.0  # not a degenerate case


def test_top_decile_lift_breaks_ties_by_customer_id(spark):
    # 20 rows, 5 churners (base rate 0.25). The top decile is 2 rows: c000 (0.95, churner) and, of
    # c001 (churner) and c002 (stayer) tied at 0.90, c001 by customer id: rate 1.0, lift 4.0
    # (c002 instead would give 0.5 / 0.25 = 2.0)
    values = [0.95, 0.90, 0.90] + [0.5 - 0.02 * i for i in range(17)]
    labels = [1, 1, 0] + [1 if i in (4, 9, 14) else 0 for i in range(17)]
    got = binary_metrics(scores(spark, values, labels), score="score", probability=False)
    assert (got.rows, got.positives, got.top_decile_lift, got.brier) == (20, 5, pytest.approx(4.0), None)
    assert got.roc_auc == pytest.approx(roc_auc_score(labels, values), abs=PRECISION)


def test_binary_metrics_with_scores_that_are_not_probabilities_have_no_brier(spark):
    # a recency in days as the score: AUCs only; as_dict leaves brier out
    df = scores(spark, [400, 30, 10, 200, 500], [1, 0, 0, 0, 1])
    got = binary_metrics(df, score="score", probability=False)
    assert got.brier is None
    assert got.as_dict("recency_") == {
        "recency_rows": 5.0, "recency_positives": 2.0, "recency_roc_auc": pytest.approx(1.0),
        "recency_pr_auc": pytest.approx(1.0), "recency_top_decile_lift": pytest.approx(2.5),
    }


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_binary_metrics_need_both_classes(spark, label):
    df = scores(spark, [0.2, 0.5, 0.9], [label] * 3)
    with pytest.raises(ValueError, match="both classes"):
        binary_metrics(df, score="score")


def test_binary_metrics_reject_an_empty_frame(spark):
    with pytest.raises(ValueError, match="0 positives among 0 rows"):
        binary_metrics(spark.createDataFrame([], SCORES_SCHEMA), score="score")


# --- calibration ------------------------------------------------------------------------------------

def test_calibration_table_bins_and_values(spark):
    # 0.05 -> bin 0; 0.12 and 0.15 -> bin 1; 0.5 -> bin 5; 0.95 and 1.0 -> bin 9 (1.0 is clipped into the last bin)
    df = scores(spark, [0.05, 0.15, 0.12, 0.95, 1.0, 0.5], [0, 0, 1, 1, 1, 0]).withColumnRenamed("score", "p")
    assert calibration_table(df, probability="p") == [
        {"bin": "[0.0, 0.1)", "rows": 1, "mean_predicted": 0.05, "observed_rate": 0.0},
        {"bin": "[0.1, 0.2)", "rows": 2, "mean_predicted": 0.135, "observed_rate": 0.5},
        {"bin": "[0.5, 0.6)", "rows": 1, "mean_predicted": 0.5, "observed_rate": 0.0},
        {"bin": "[0.9, 1.0)", "rows": 2, "mean_predicted": 0.975, "observed_rate": 1.0},
    ]


def test_calibration_table_rounds_to_four_places_and_takes_a_bin_count(spark):
    # 5 bins of width 0.2: 0.1, 0.3333 -> 0 and 1; 0.35 -> 1; observed 1/3 rounds to 0.3333
    df = scores(spark, [0.1, 1 / 3, 0.35, 0.36], [0, 1, 0, 0]).withColumnRenamed("score", "p")
    assert calibration_table(df, probability="p", bins=5) == [
        {"bin": "[0.0, 0.2)", "rows": 1, "mean_predicted": 0.1, "observed_rate": 0.0},
        {"bin": "[0.2, 0.4)", "rows": 3, "mean_predicted": round((1 / 3 + 0.35 + 0.36) / 3, 4), "observed_rate": 0.3333},
    ]


def test_calibration_table_bin_labels_are_the_true_edges_for_any_bin_count(spark):
    df = scores(spark, [0.1, 0.3, 0.6, 0.9], [0, 1, 0, 1]).withColumnRenamed("score", "p")
    edges = [tuple(float(x) for x in re.findall(r"[0-9.]+", row["bin"])) for row in calibration_table(df, probability="p", bins=4)]
    assert edges == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]


# --- expected cost ------------------------------------------------------------------------------------

def test_expected_cost_confusion_counts_and_cost(spark):
    # threshold 0.5 (inclusive): 0.9 churner TP, 0.6 stayer FP, 0.5 churner TP, 0.2 churner FN, 0.1 and 0.3 stayers TN
    # offer 10, lost customer 100, an offer keeps a churner half the time:
    # 2 TP * (10 + 0.5 * 100) + 1 FP * 10 + 1 FN * 100 = 230, over 6 customers; flagging nobody: 3 churners lost
    df = scores(spark, [0.9, 0.6, 0.2, 0.1, 0.5, 0.3], [1, 0, 1, 0, 1, 0]).withColumnRenamed("score", "p")
    got = expected_cost(df, probability="p", threshold=0.5, retention_offer=10.0, lost_customer=100.0, offer_success_rate=0.5)
    assert got == {
        "true_positives": 2, "false_positives": 1, "false_negatives": 1,
        "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3), "cost_per_customer": pytest.approx(230 / 6),
        "cost_per_customer_flagging_nobody": pytest.approx(300 / 6),
    }


def test_expected_cost_when_nobody_is_flagged(spark):
    # nobody flagged: every churner is a false negative, precision and recall 0 by convention
    df = scores(spark, [0.9, 0.6, 0.2], [1, 0, 1]).withColumnRenamed("score", "p")
    got = expected_cost(df, probability="p", threshold=0.95, retention_offer=1.0, lost_customer=4.0)
    assert got == {
        "true_positives": 0, "false_positives": 0, "false_negatives": 2,
        "precision": 0.0, "recall": 0.0, "cost_per_customer": pytest.approx(8 / 3),
        "cost_per_customer_flagging_nobody": pytest.approx(8 / 3),
    }


def test_expected_cost_of_an_empty_frame_is_zero(spark):
    df = spark.createDataFrame([], "p double, label double")
    assert expected_cost(df, probability="p", threshold=0.5, retention_offer=1.0, lost_customer=4.0) == {
        "true_positives": 0, "false_positives": 0, "false_negatives": 0, "precision": 0.0, "recall": 0.0, "cost_per_customer": 0.0,
        "cost_per_customer_flagging_nobody": 0.0,
    }


def test_lift_table_hand_example(spark):
    # 20 rows, 5 churners (base rate 0.25), 5 bins of 4 in score order: c000-c003 hold 3 churners
    # (c000, c001, c003), c012 and c017 are the others
    values = [0.95, 0.90, 0.90] + [0.5 - 0.02 * i for i in range(17)]
    labels = [1, 1, 0] + [1 if i in (0, 9, 14) else 0 for i in range(17)]
    got = lift_table(scores(spark, values, labels), score="score", bins=5)
    assert [g["rows"] for g in got] == [4] * 5
    assert [g["bin"] for g in got] == [1, 2, 3, 4, 5]
    assert [g["churn_rate"] for g in got] == [0.75, 0.0, 0.0, 0.25, 0.25]
    assert [g["lift"] for g in got] == [3.0, 0.0, 0.0, 1.0, 1.0]
    assert [g["cumulative_lift"] for g in got] == [3.0, 1.5, 1.0, 1.0, 1.0]


def test_lift_table_needs_churners(spark):
    with pytest.raises(ValueError, match="a lift curve needs churners: 0 among 3 rows"):
        lift_table(scores(spark, [0.1, 0.2, 0.3], [0, 0, 0]), score="score")
