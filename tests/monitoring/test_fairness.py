"""Fairness: age bands around birthdays, the report's rates, disparate impact and equal opportunity
difference on a hand-computed population, reference groups, the groups never flagged, metrics left
out when their columns are missing, the report table; and the bad paths."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pyspark.sql.functions as F
import pytest
from chispa import assert_column_equality, assert_df_equality

from customer360.monitoring.fairness import (
    AGE_BANDS,
    COMMENTS,
    FAIRNESS_SCHEMA,
    FairnessError,
    FairnessRow,
    age_band,
    fairness_frame,
    fairness_report,
)

# --- age bands ------------------------------------------------------------------------------------


def test_age_band_boundaries(spark):
    rows = [
        (date(2008, 6, 15), "18-24"),  # 18th birthday on the as-of day
        (date(2008, 6, 16), None),  # 18 tomorrow: 17 is below the first band
        (date(2001, 6, 16), "18-24"),  # 25 tomorrow
        (date(2001, 6, 15), "25-34"),  # 25 today
        (date(1982, 1, 1), "35-44"),  # 44, birthday earlier in the year
        (date(1961, 6, 16), "55-64"),  # 65 tomorrow
        (date(1961, 6, 15), "65+"),  # 65 today
        (date(1931, 12, 31), "65+"),
        (date(2030, 1, 1), None),  # born after as_of
        (None, None),
    ]
    df = spark.createDataFrame(rows, "dob date, expected string")
    got = df.withColumn("band", age_band(F.col("dob"), as_of=date(2026, 6, 15)))
    assert_column_equality(got, "band", "expected")


def test_age_band_leap_day_birthdays_and_custom_bands(spark):
    # born 29 February 2008: 17 on 28 February 2026, 18 on 1 March. Custom bands with a gap (10-17)
    # and a closed last band: 9 -> "0-9", 10 -> null, 18 -> "18-20", 21 -> null
    rows = [
        (date(2008, 2, 29), None, "18-24", "18-20"),
        (date(2008, 2, 28), "18-24", "18-24", "18-20"),
        (date(2017, 3, 1), None, None, "0-9"),
        (date(2016, 3, 1), None, None, None),
        (date(2005, 3, 1), "18-24", "18-24", None),
    ]
    df = spark.createDataFrame(rows, "dob date, feb_28 string, mar_1 string, custom string")
    born = F.col("dob")
    got = df.select(
        "dob",
        age_band(born, as_of=date(2026, 2, 28)).alias("feb_28"),
        age_band(born, as_of=date(2026, 3, 1)).alias("mar_1"),
        age_band(born, as_of=date(2026, 3, 1), bands=((0, 9), (18, 20))).alias("custom"),
    )
    assert_df_equality(got, df, ignore_row_order=True)


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ((), "must not be empty"),
        (((18, None), (30, 40)), "only the last age band may be open ended"),
        (((18, 30), (30, 40)), "ascending and must not overlap"),
        (((30, 40), (18, 24)), "ascending and must not overlap"),
        (((40, 30),), "ascending and must not overlap"),
    ],
)
def test_age_band_rejects_bad_bands(bands, message):
    with pytest.raises(FairnessError, match=message):
        age_band(F.col("dob"), as_of=date(2026, 1, 1), bands=bands)


def test_default_age_bands():
    assert AGE_BANDS == ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, None))


# --- report ---------------------------------------------------------------------------------------

PRECISION = 1e-9
PEOPLE_SCHEMA = "customer_id string, gender string, tier string, segment string, churn_score double, churn_predicted boolean, churned boolean"


def ap(value):
    return None if value is None else pytest.approx(value, abs=PRECISION)


def people(spark):
    """26 customers. (churn_predicted, churned, segment, churn_score) x how many, per gender:
    F 10: predicted 5/10, true positives 3 of 4 churned, loyal 8/10, risk 2/10, mean score 4.8/10
    M 8: predicted 2/8, true positives 2 of 4 churned, loyal 7/8, risk 1/8, mean score 3.2/8
    X 2: predicted 2/2, true positives 2 of 2, loyal 0, risk 1/2 (one null segment), mean 0.9
    null (unknown) 6: predicted 6/6, nobody churned, risk 6/6, mean 0.6
    tier: "a" for the first 6 rows, "b" for the next 6, null for the other 14."""
    groups = {
        "F": [((True, True, "loyal", 0.9), 3), ((False, True, "loyal", 0.3), 1), ((True, False, "risk", 0.7), 2), ((False, False, "loyal", 0.1), 4)],
        "M": [((True, True, "risk", 0.8), 1), ((True, True, "loyal", 0.8), 1), ((False, True, "loyal", 0.4), 2), ((False, False, "loyal", 0.2), 4)],
        "X": [((True, True, "risk", 0.9), 1), ((True, True, None, 0.9), 1)],
        None: [((True, False, "risk", 0.6), 6)],
    }
    people = [(gender, *values) for gender, kinds in groups.items() for values, n in kinds for _ in range(n)]
    tiers = ["a"] * 6 + ["b"] * 6 + [None] * 14
    rows = [(f"c{i:02d}", gender, tier, segment, score, predicted, churned)
            for i, ((gender, predicted, churned, segment, score), tier) in enumerate(zip(people, tiers))]
    return spark.createDataFrame(rows, PEOPLE_SCHEMA)


def gender_row(metric, group, value, reference_value, di, eod, members, flagged):
    return FairnessRow("gender", group, metric, ap(value), "F", ap(reference_value), ap(di), ap(eod), members, flagged)


def test_fairness_report_hand_computed(spark):
    report = fairness_report(people(spark), attributes=["gender", "tier"], min_group_size=5)
    gender = [r for r in report if r.attribute == "gender"]
    # F (10 members) is the reference; X (2 < 5 members) and unknown are never flagged
    assert gender == [
        gender_row("churn_predicted_rate", "F", 0.5, 0.5, 1.0, None, 10, False),
        gender_row("churn_predicted_rate", "M", 0.25, 0.5, 0.5, None, 8, True),  # DI 0.5 < 0.8
        gender_row("churn_predicted_rate", "X", 1.0, 0.5, 2.0, None, 2, False),
        gender_row("churn_predicted_rate", "unknown", 1.0, 0.5, 2.0, None, 6, False),
        gender_row("mean_churn_score", "F", 0.48, 0.48, None, None, 10, False),
        gender_row("mean_churn_score", "M", 0.4, 0.48, None, None, 8, False),
        gender_row("mean_churn_score", "X", 0.9, 0.48, None, None, 2, False),
        gender_row("mean_churn_score", "unknown", 0.6, 0.48, None, None, 6, False),
        gender_row("true_positive_rate", "F", 0.75, 0.75, None, 0.0, 10, False),
        gender_row("true_positive_rate", "M", 0.5, 0.75, None, -0.25, 8, True),  # |EOD| 0.25 > 0.1
        gender_row("true_positive_rate", "X", 1.0, 0.75, None, 0.25, 2, False),
        # no true positive rate for unknown: nobody in it churned
        gender_row("segment_share:loyal", "F", 0.8, 0.8, 1.0, None, 10, False),
        gender_row("segment_share:loyal", "M", 0.875, 0.8, 1.09375, None, 8, False),
        gender_row("segment_share:loyal", "X", 0.0, 0.8, 0.0, None, 2, False),
        gender_row("segment_share:loyal", "unknown", 0.0, 0.8, 0.0, None, 6, False),
        gender_row("segment_share:risk", "F", 0.2, 0.2, 1.0, None, 10, False),
        gender_row("segment_share:risk", "M", 0.125, 0.2, 0.625, None, 8, True),  # DI 0.625 < 0.8
        gender_row("segment_share:risk", "X", 0.5, 0.2, 2.5, None, 2, False),  # the null segment counts in the denominator
        gender_row("segment_share:risk", "unknown", 1.0, 0.2, 5.0, None, 6, False),
    ]
    # tier: unknown (14) is the largest group but never the reference; a and b tie at 6: a by name
    tier = [r for r in report if r.attribute == "tier"]
    assert {r.reference_group for r in tier} == {"a"}
    assert {(r.group, r.members) for r in tier} == {("a", 6), ("b", 6), ("unknown", 14)}
    assert [r.attribute for r in report] == ["gender"] * len(gender) + ["tier"] * len(tier)


def test_fairness_report_thresholds(spark):
    # DI limits 0.45 and 1 / 0.45 = 2.22, EOD limit 0.3, groups from 2 members: M's rates and
    # true positive rate pass; X's segment shares (DI 0 and 2.5) do not; unknown (risk DI 5) is still never flagged
    report = fairness_report(
        people(spark), attributes=["gender"], min_disparate_impact=0.45, max_equal_opportunity_difference=0.3, min_group_size=2,
    )
    assert {(r.metric, r.group) for r in report if r.flagged} == {("segment_share:loyal", "X"), ("segment_share:risk", "X")}


def test_fairness_report_skips_metrics_whose_columns_are_missing(spark):
    # g1: predicted and churned, not predicted and not churned; g2: predicted, nobody churned
    df = spark.createDataFrame(
        [("g1", True, True, 0.9), ("g1", False, False, 0.2), ("g2", True, False, 0.7)],
        "group_name string, churn_predicted boolean, churned boolean, churn_score double",
    )
    rows = fairness_report(df.drop("churn_score"), attributes=["group_name"])
    assert [(r.metric, r.group, r.value, r.reference_group, r.disparate_impact, r.flagged) for r in rows] == [
        ("churn_predicted_rate", "g1", 0.5, "g1", 1.0, False),
        ("churn_predicted_rate", "g2", 1.0, "g1", 2.0, False),  # below min_group_size: not flagged
        ("true_positive_rate", "g1", 1.0, "g1", None, False),  # g2 has no churned customer: no row
    ]
    # without churn_predicted there is neither a predicted rate nor a true positive rate
    rows = fairness_report(df.drop("churn_predicted"), attributes=["group_name"])
    assert [(r.metric, r.group, r.value) for r in rows] == [("mean_churn_score", "g1", ap(0.55)), ("mean_churn_score", "g2", ap(0.7))]
    assert fairness_report(df.select("group_name"), attributes=["group_name"]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attributes": ["gender", "age_band"]}, "missing from the frame: age_band"),
        ({"attributes": ["gender"], "min_disparate_impact": 0.0}, r"min_disparate_impact must be in \(0, 1\]"),
        ({"attributes": ["gender"], "min_disparate_impact": 1.25}, r"min_disparate_impact must be in \(0, 1\]"),
        ({"attributes": ["gender"], "max_equal_opportunity_difference": -0.1}, "must not be negative"),
    ],
)
def test_fairness_report_rejects_bad_input(spark, kwargs, message):
    df = spark.createDataFrame([("F", True)], "gender string, churn_predicted boolean")
    with pytest.raises(FairnessError, match=message):
        fairness_report(df, **kwargs)


# --- table ----------------------------------------------------------------------------------------

def test_fairness_frame(spark):
    rows = [
        FairnessRow("gender", "M", "churn_predicted_rate", 0.25, "F", 0.5, 0.5, None, 8, True),
        FairnessRow("gender", "unknown", "true_positive_rate", None, "F", 0.75, None, None, 6, False),
    ]
    recorded_at = datetime(2026, 7, 1, 12, 30, tzinfo=timezone.utc)
    got = fairness_frame(spark, rows, run_id="run-7", as_of=date(2026, 6, 30), recorded_at=recorded_at, region="de")
    expected = spark.createDataFrame(
        [
            ("gender", "M", "churn_predicted_rate", 0.25, "F", 0.5, 0.5, None, 8, True, "run-7", date(2026, 6, 30), recorded_at, "de"),
            ("gender", "unknown", "true_positive_rate", None, "F", 0.75, None, None, 6, False, "run-7", date(2026, 6, 30), recorded_at, "de"),
        ],
        FAIRNESS_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True)
    assert got.columns[-4:] == ["run_id", "as_of_date", "recorded_at", "region"]
    assert got.columns[:10] == list(FairnessRow.__dataclass_fields__)
    assert set(COMMENTS) == set(FAIRNESS_SCHEMA.fieldNames())
    empty = fairness_frame(spark, [], run_id="run-7", as_of=date(2026, 6, 30), recorded_at=recorded_at, region="de")
    assert empty.schema == FAIRNESS_SCHEMA and empty.isEmpty()
