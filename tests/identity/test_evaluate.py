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
        # B-cubed over the 5 records: cells (C1,P1)=2, (C1,P2)=2, (C2,P1)=1; |C1|=4, |C2|=1, |P1|=3, |P2|=2
        b_cubed_precision=pytest.approx((2 * 2 / 4 + 2 * 2 / 4 + 1 * 1 / 1) / 5),  # 0.6
        b_cubed_recall=pytest.approx((2 * 2 / 3 + 2 * 2 / 2 + 1 * 1 / 3) / 5),  # 11/15
        exact_persons=0,
    )
    assert result.b_cubed_f1 == pytest.approx(2 * 0.6 * (11 / 15) / (0.6 + 11 / 15))
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
    assert (result.b_cubed_precision, result.b_cubed_recall, result.exact_persons) == (1.0, 1.0, 3)


def test_everything_merged_into_one_customer(spark):
    predicted = xref(spark, [("crm", str(i), "C1") for i in range(4)])
    actual = truth(spark, [("crm", "0", "P1"), ("crm", "1", "P1"), ("crm", "2", "P2"), ("crm", "3", "P3")])
    result = evaluate(predicted, actual)
    # predicted C(4,2) = 6, true C(2,2) = 1, true positive 1
    assert (result.predicted_pairs, result.true_pairs, result.true_positive_pairs) == (6, 1, 1)
    assert result.precision == pytest.approx(1 / 6)
    assert result.recall == 1.0
    assert (result.over_merged_persons, result.under_merged_persons) == (3, 0)
    assert result.b_cubed_precision == pytest.approx((2 * 2 / 4 + 1 / 4 + 1 / 4) / 4)  # 0.375
    assert (result.b_cubed_recall, result.exact_persons) == (1.0, 0)


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


def test_report_lines_carry_the_cluster_metrics(imperfect_result):
    lines = imperfect_result.lines()
    assert lines[7].split()[-1] == "0.6000" and lines[7].startswith("B-cubed precision")
    assert lines[8].split()[-1] == "0.7333" and lines[8].startswith("B-cubed recall")
    assert lines[9].split()[-1] == "0.6600"
    assert re.match(r"persons exactly resolved\s+0\s", lines[10])


# --- the worst errors and why ----------------------------------------------------------------------

LINKS_SCHEMA = (
    "region string, src_source string, src_record_id string, dst_source string, dst_record_id string, "
    "link_type string, rule string, probability double"
)


def test_worst_errors_name_the_merge_its_link_and_the_miss(spark, imperfect):
    from customer360.identity.evaluate import FalseMerge, Miss, RecordPair, worst_errors

    links = spark.createDataFrame(
        [
            ("us", "crm", "a1", "crm", "a2", "deterministic", "email", 1.0),  # same person: not the culprit
            ("us", "crm", "a2", "orders", "b1", "probabilistic", "postcode", 0.995),
            ("us", "orders", "b1", "orders", "b2", "probabilistic", "birth_date", 0.999),
        ],
        LINKS_SCHEMA,
    )
    merges, misses = worst_errors(*imperfect, links=links, limit=5)
    # C1: C(4,2) = 6 pairs, 2 of them within a person: 4 wrong
    assert merges == [FalseMerge("C1", 2, 4, 4, RecordPair(("crm", "a2"), ("orders", "b1"), "probabilistic:postcode p=0.9950"))]
    # P1: a1, a2 in C1 and a3 in C2: 3 pairs, 1 kept, 2 missed; the first record of each piece
    assert misses == [Miss("P1", 2, 3, 2, RecordPair(("crm", "a1"), ("orders", "a3")))]
    # without links a merge's example is the first record of each of two persons
    merges, _ = worst_errors(*imperfect, limit=1)
    assert merges[0].example == RecordPair(("crm", "a1"), ("orders", "b1"))
    assert worst_errors(*imperfect, limit=0) == ([], [])


CLEAR_SCHEMA = (
    "source string, source_record_id string, region string, first_name string, last_name string, date_of_birth date, "
    "postcode string, street string, other_ids map<string,string>"
)


def test_explain_pairs_gives_levels_and_the_rules_that_would_pair_them(spark):
    from datetime import date

    from customer360.config import BlockingRule
    from customer360.identity.evaluate import RecordPair, explain_pairs

    records = spark.createDataFrame(
        [
            ("crm", "1", "us", "anna", "smith", date(1980, 3, 4), "ab1", "12 high street", {"ssn": "123"}),
            ("crm", "2", "us", "ana", "smith", date(1980, 4, 3), "ab1", "12 high st", {"ssn": "124"}),
            ("crm", "3", "gb", "anna", "smith", date(1980, 3, 4), "ab1", "12 high street", None),
        ],
        CLEAR_SCHEMA,
    )
    rules = (
        BlockingRule(name="surname_postcode", keys=("soundex(last_name)", "postcode")),
        BlockingRule(name="birth_date", keys=("date_of_birth",)),
    )
    pairs = [RecordPair(("crm", "1"), ("crm", "2")), RecordPair(("crm", "1"), ("crm", "3")), RecordPair(("crm", "1"), ("crm", "9"))]
    first, other_region, missing = explain_pairs(pairs, records, rules)
    assert first["levels"] == {
        "first_name": 2, "last_name": 3, "date_of_birth": 1, "address": 2,  # "12 high st" is not a similar street
        "email": -1, "phone": -1, "loyalty_id": -1, "other_ids": 1,
    }
    assert first["candidate_under"] == ["surname_postcode"]
    assert other_region["candidate_under"] == []  # never compared across regions
    assert other_region["levels"]["address"] == 4
    assert (missing["levels"], missing["candidate_under"]) == (None, [])
    assert explain_pairs([], records, rules) == []


def test_detokenized_records_and_error_lines(spark):
    from datetime import date

    from customer360.config import PII_ATTRIBUTES
    from customer360.identity.evaluate import FalseMerge, Miss, RecordPair, detokenized, error_lines

    columns = ", ".join(f"{a} string" for a in PII_ATTRIBUTES)
    identity_records = spark.createDataFrame(
        [("crm", "1", "us", *[{"last_name": "t-last", "date_of_birth": "t-dob"}.get(a) for a in PII_ATTRIBUTES], {"ssn": "t-ssn"})],
        f"source string, source_record_id string, region string, {columns}, other_ids map<string,string>",
    )
    vault = spark.createDataFrame(
        [("t-last", "last_name", "smith"), ("t-dob", "date_of_birth", "1980-03-04"), ("t-ssn", "other_id", "ssn:123-45"),
         ("t-other", "last_name", "jones")],
        "token string, kind string, value string",
    )
    clear = detokenized(identity_records, vault, [("crm", "1"), ("crm", "404")]).collect()
    assert len(clear) == 1
    assert (clear[0].last_name, clear[0].date_of_birth, clear[0].other_ids, clear[0].first_name) == (
        "smith", date(1980, 3, 4), {"ssn": "123-45"}, None
    )

    merge = FalseMerge("C1", 2, 4, 4, RecordPair(("crm", "a2"), ("orders", "b1"), "probabilistic:postcode p=0.9950"))
    miss = Miss("P1", 2, 3, 2, RecordPair(("crm", "a1"), ("orders", "a3")))
    explained = {merge.example: {"levels": {"first_name": 0, "last_name": 3}, "candidate_under": ["postcode"]},
                 miss.example: {"levels": None, "candidate_under": []}}
    lines = error_lines([merge], [miss], explained)
    assert lines[1] == (
        "  C1: 2 persons, 4 records, 4 wrong pairs; crm/a2 + orders/b1 via probabilistic:postcode p=0.9950; "
        "levels first_name 0, last_name 3; shares the keys of postcode"
    )
    assert lines[3] == "  P1: 2 customers, 3 records, 2 missed pairs; crm/a1 + orders/a3"
    assert "smith" not in " ".join(lines)
