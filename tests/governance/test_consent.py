"""Consent across identity merges: per subject the latest choice wins, a refusal on any merged
subject wins for the customer, the region's regime decides without any choice, and an erasure
request turns everything off."""
from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality

from customer360.governance.consent import consent_flags, with_consent

SCHEMA = (
    "consent_event_id string, customer_id string, purpose string, action string, recorded_at timestamp, "
    "subject string, region string"
)
REGIMES = {"us": "opt_out", "de": "opt_in"}


def t(hour: int) -> datetime:
    return datetime(2026, 5, 1, hour)


EVENTS = [
    # M1 merged two people (subjects a and b): a opted in to marketing, b opted out earlier -> refusal wins
    ("e01", "M1", "marketing", "opt_out", t(1), "tok-b", "us"),
    ("e02", "M1", "marketing", "opt_in", t(5), "tok-a", "us"),
    # ... and profiling: b changed its mind (out, then in): b's latest is yes, a says yes -> yes
    ("e03", "M1", "profiling", "opt_out", t(1), "tok-b", "us"),
    ("e04", "M1", "profiling", "opt_in", t(2), "tok-b", "us"),
    ("e05", "M1", "profiling", "opt_in", t(3), "tok-a", "us"),
    # S1, one subject: out then in -> the latest (in) wins
    ("e06", "S1", "marketing", "opt_out", t(1), "tok-s", "de"),
    ("e07", "S1", "marketing", "opt_in", t(2), "tok-s", "de"),
    # N1: events without a subject (no email) share one subject: the latest (in) wins
    ("e08", "N1", "marketing", "opt_in", t(4), None, "de"),
    ("e09", "N1", "marketing", "opt_out", t(1), None, "de"),
    # E1 asked for erasure (and opted in): everything off
    ("e10", "E1", "marketing", "opt_in", t(1), "tok-e", "us"),
    ("e11", "E1", None, "erasure_request", t(2), "tok-e", "us"),
]


def test_a_refusal_on_any_merged_subject_wins(spark):
    got = consent_flags(spark.createDataFrame(EVENTS, SCHEMA)).select("region", "customer_id", "_marketing", "_profiling", "erasure_requested")
    expected = spark.createDataFrame(
        [
            ("us", "M1", False, True, False),
            ("de", "S1", True, None, False),
            ("de", "N1", True, None, False),
            ("us", "E1", True, None, True),
        ],
        "region string, customer_id string, _marketing boolean, _profiling boolean, erasure_requested boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_regime_defaults_and_erasure_in_the_customer_flags(spark):
    customers = spark.createDataFrame(
        [("us", "M1"), ("de", "S1"), ("de", "N1"), ("us", "E1"), ("us", "U0"), ("de", "D0")], "region string, customer_id string"
    )
    got = with_consent(customers, spark.createDataFrame(EVENTS, SCHEMA), regimes=REGIMES).drop("consent_updated_at")
    expected = spark.createDataFrame(
        [
            ("us", "M1", False, True, False),
            ("de", "S1", True, False, False),   # no profiling choice in an opt-in region: no
            ("de", "N1", True, False, False),
            ("us", "E1", False, False, True),   # erasure requested: nothing allowed
            ("us", "U0", True, True, False),    # opt-out region, no events: assumed yes
            ("de", "D0", False, False, False),  # opt-in region, no events: no
        ],
        "region string, customer_id string, marketing_consent boolean, profiling_consent boolean, erasure_requested boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_consent_without_a_subject_column_is_one_subject_per_customer(spark):
    legacy = spark.createDataFrame(EVENTS, SCHEMA).drop("subject")
    got = {r["customer_id"]: r["_marketing"] for r in consent_flags(legacy).collect()}
    # M1's latest marketing choice (a's opt-in) wins when the subjects cannot be told apart
    assert got == {"M1": True, "S1": True, "N1": True, "E1": True}
