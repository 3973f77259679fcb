"""Pairwise evaluation against ground truth, on examples small enough to count pairs by hand."""
from __future__ import annotations

import re

import pytest

from customer360.identity.evaluate import Evaluation, evaluate

XREF_SCHEMA = "source string, source_record_id string, customer_id string"
TRUTH_SCHEMA = "source string, source_record_id string, person_id string"


def xref(spark, rows):
    return spark.createDataFrame(rows, XREF_SCHEMA)


def truth(spark, rows):
    return spark.createDataFrame(rows, TRUTH_SCHEMA)


@pytest.fixture(scope="module")
def imperfect(spark):
    """Person P1 (a1, a2, a3) and P2 (b1, b2). Customer C1 holds a1, a2, b1, b2 (over-merge) and
    C2 holds a3 (P1 split over C1 and C2). x1 has no truth; a4 (crm) was never resolved; w1 comes
    from a source (web) that the xref does not carry."""
    predicted = xref(
        spark,
        [
            ("crm", "a1", "C1"),
            ("crm", "a2", "C1"),
            ("orders", "b1", "C1"),
            ("orders", "b2", "C1"),
            ("orders", "a3", "C2"),
            ("crm", "x1", "C9"),
        ],
    )
    actual = truth(
        spark,
        [
            ("crm", "a1", "P1"),
            ("crm", "a2", "P1"),
            ("orders", "a3", "P1"),
            ("orders", "b1", "P2"),
            ("orders", "b2", "P2"),
            ("crm", "a4", "P1"),
            ("web", "w1", "P2"),
        ],
    )
    return predicted, actual


@pytest.fixture(scope="module")
def imperfect_result(imperfect):
    return evaluate(*imperfect)


def test_hand_computed_counts_and_scores(imperfect_result):
    result = imperfect_result
    # predicted pairs: C(4,2) + C(1,2) = 6; true pairs: C(3,2) + C(2,2) = 4;
    # true positives: cells (C1,P1)=2, (C1,P2)=2, (C2,P1)=1 -> 1 + 1 + 0 = 2
    assert result == Evaluation(
        records=5,
        records_without_truth=1,
        truth_records_unresolved=1,
        persons=2,
        customers=2,
        predicted_pairs=6,
        true_pairs=4,
        true_positive_pairs=2,
        over_merged_persons=2,
        under_merged_persons=1,
    )
    assert result.precision == pytest.approx(2 / 6)
    assert result.recall == pytest.approx(2 / 4)
    assert result.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4
    assert result.f1 == pytest.approx(0.4)


def test_unresolved_truth_from_sources_the_xref_lacks_counts_only_when_asked(imperfect):
    result = evaluate(*imperfect, restrict_truth_to_sources=False)
    assert result.truth_records_unresolved == 2  # a4 and the web record w1
    assert (result.records, result.true_positive_pairs) == (5, 2)


def test_perfect_resolution_scores_one(spark):
    predicted = xref(spark, [("crm", "1", "C1"), ("orders", "2", "C1"), ("crm", "3", "C2"), ("orders", "4", "C2"), ("crm", "5", "C3")])
    actual = truth(spark, [("crm", "1", "P1"), ("orders", "2", "P1"), ("crm", "3", "P2"), ("orders", "4", "P2"), ("crm", "5", "P3")])
    result = evaluate(predicted, actual)
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)
    assert (result.predicted_pairs, result.true_pairs, result.true_positive_pairs) == (2, 2, 2)
    assert (result.over_merged_persons, result.under_merged_persons) == (0, 0)
    assert (result.persons, result.customers, result.records) == (3, 3, 5)
    assert (result.records_without_truth, result.truth_records_unresolved) == (0, 0)


def test_everything_merged_into_one_customer(spark):
    predicted = xref(spark, [("crm", str(i), "C1") for i in range(4)])
    actual = truth(spark, [("crm", "0", "P1"), ("crm", "1", "P1"), ("crm", "2", "P2"), ("crm", "3", "P3")])
    result = evaluate(predicted, actual)
    # predicted C(4,2) = 6, true C(2,2) = 1, true positive 1
    assert (result.predicted_pairs, result.true_pairs, result.true_positive_pairs) == (6, 1, 1)
    assert result.precision == pytest.approx(1 / 6)
    assert result.recall == 1.0
    assert (result.over_merged_persons, result.under_merged_persons) == (3, 0)


def test_no_pairs_at_all_score_one():
    singletons = Evaluation(
        records=2, records_without_truth=0, truth_records_unresolved=0, persons=2, customers=2,
        predicted_pairs=0, true_pairs=0, true_positive_pairs=0, over_merged_persons=0, under_merged_persons=0,
    )
    assert (singletons.precision, singletons.recall, singletons.f1) == (1.0, 1.0, 1.0)


def test_no_overlap_with_truth(spark):
    predicted = xref(spark, [("crm", "1", "C1"), ("crm", "2", "C1")])
    actual = truth(spark, [("crm", "9", "P1")])
    result = evaluate(predicted, actual)
    assert (result.records, result.records_without_truth, result.truth_records_unresolved) == (0, 2, 1)
    assert (result.persons, result.customers, result.predicted_pairs, result.true_pairs) == (0, 0, 0, 0)


def test_f1_is_zero_when_nothing_is_right():
    nothing = Evaluation(
        records=2, records_without_truth=0, truth_records_unresolved=0, persons=2, customers=1,
        predicted_pairs=1, true_pairs=0, true_positive_pairs=0, over_merged_persons=2, under_merged_persons=0,
    )
    # precision 0, recall 1 (no true pairs) -> F1 0
    assert (nothing.precision, nothing.recall, nothing.f1) == (0.0, 1.0, 0.0)


def test_report_lines(imperfect_result):
    lines = imperfect_result.lines()
    assert re.match(r"records evaluated\s+5\s+\(not in truth: 1;", lines[0])
    assert lines[1].split()[-3:] == ["2", "/", "2"]
    assert lines[2].split()[-1] == "0.3333"
    assert lines[3].split()[-1] == "0.5000"
    assert lines[4].split()[-1] == "0.4000"
    assert lines[5].split()[-1] == "2"
    assert lines[6].split()[-1] == "1"
