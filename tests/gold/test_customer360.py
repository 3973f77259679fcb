"""gold.customer_360: one row per golden customer with consent flags, features and empty ML columns."""
from __future__ import annotations

from datetime import date, datetime

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from customer360.features.registry import expand
from customer360.gold.customer360 import GOLDEN_COLUMNS, ML_COLUMNS, column_comments, customer_360, with_ml_columns
from customer360.governance.consent import consent_flags
from customer360.identity.golden import GOLDEN_SCHEMA

CONSENT_SCHEMA = (
    "consent_event_id string, customer_id string, purpose string, action string, recorded_at timestamp, "
    "channel string, run_id string, region string"
)
REGIMES = {"us": "opt_out", "de": "opt_in"}
AS_OF = date(2025, 7, 1)


def t(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 6, day, hour)


def golden_row(customer_id: str, region: str) -> tuple:
    """A GOLDEN_SCHEMA row whose attributes name the customer, so the test can see them pass through."""
    attributes = [f"{customer_id}-{name}" for name in GOLDEN_SCHEMA.fieldNames()[1:12]]
    return (customer_id, *attributes, f"H-{customer_id}", "B2C", 2, ["crm", "orders"], t(1), t(2), "identity-run", region)


GOLDEN = [golden_row("K1", "us"), golden_row("K2", "us"), golden_row("K3", "us"),
          golden_row("K4", "de"), golden_row("K5", "de"), golden_row("K6", "de")]

CONSENT = [
    # K1: marketing opt-in then opt-out; profiling opt-out then opt-in
    ("ev01", "K1", "marketing", "opt_in", t(1), "web", "r", "us"),
    ("ev02", "K1", "marketing", "opt_out", t(2), "web", "r", "us"),
    ("ev03", "K1", "profiling", "opt_out", t(1), "web", "r", "us"),
    ("ev04", "K1", "profiling", "opt_in", t(3), "web", "r", "us"),
    # K2: two choices at the same time per purpose: the larger event id wins
    ("ev05", "K2", "marketing", "opt_out", t(4), "store", "r", "us"),
    ("ev06", "K2", "marketing", "opt_in", t(4), "store", "r", "us"),
    ("ev07", "K2", "profiling", "opt_in", t(4), "store", "r", "us"),
    ("ev08", "K2", "profiling", "opt_out", t(4), "store", "r", "us"),
    # K3 has no events in us; an event of a K3 in de is another customer
    ("ev09", "K3", "marketing", "opt_out", t(5), "web", "r", "de"),
    # K4 (de) has none; K5 opted in, then asked for erasure, then opted in again
    ("ev10", "K5", "marketing", "opt_in", t(1), "web", "r", "de"),
    ("ev11", "K5", None, "erasure_request", t(2), "email", "r", "de"),
    ("ev12", "K5", "profiling", "opt_in", t(3), "web", "r", "de"),
    # K6: a marketing opt-in only
    ("ev13", "K6", "marketing", "opt_in", t(6), "web", "r", "de"),
    # a customer without a golden record gets no row
    ("ev14", "KX", "marketing", "opt_in", t(6), "web", "r", "us"),
]

FEATURES_SCHEMA = "region string, customer_id string, as_of_date date, feature_set_version string, orders_total bigint, net_revenue_total double"
FEATURES = [
    ("us", "K1", AS_OF, "fs-a", 3, 120.5),
    ("us", "K2", AS_OF, "fs-a", 0, 0.0),
    ("de", "K3", AS_OF, "fs-b", 99, 999.0),  # K3 of de: not us's K3
    ("de", "K5", AS_OF, "fs-b", 1, 10.0),
]


@pytest.fixture(scope="module")
def c360(spark):
    return customer_360(
        spark.createDataFrame(GOLDEN, GOLDEN_SCHEMA),
        spark.createDataFrame(FEATURES, FEATURES_SCHEMA),
        spark.createDataFrame(CONSENT, CONSENT_SCHEMA),
        regimes=REGIMES,
        run_id="gold-run",
    ).cache()


def test_consent_flags_erasure_and_latest_event_time(spark):
    got = consent_flags(spark.createDataFrame(CONSENT, CONSENT_SCHEMA)).select(
        "region", "customer_id", "erasure_requested", "consent_updated_at"
    )
    expected = spark.createDataFrame(
        [
            ("us", "K1", False, t(3)),
            ("us", "K2", False, t(4)),
            ("de", "K3", False, t(5)),
            ("de", "K5", True, t(3)),
            ("de", "K6", False, t(6)),
            ("us", "KX", False, t(6)),
        ],
        "region string, customer_id string, erasure_requested boolean, consent_updated_at timestamp",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_customer_360_consent_features_and_ml_columns(spark, c360):
    got = c360.select(
        "region", "customer_id", "marketing_consent", "profiling_consent", "erasure_requested", "consent_updated_at",
        "features_as_of", "feature_set_version", "orders_total", "net_revenue_total",
        "segment", "segment_model_version", "churn_score", "churn_model_version", "run_id",
    )
    expected = spark.createDataFrame(
        [
            ("us", "K1", False, True, False, t(3), AS_OF, "fs-a", 3, 120.5, None, None, None, None, "gold-run"),
            ("us", "K2", True, False, False, t(4), AS_OF, "fs-a", 0, 0.0, None, None, None, None, "gold-run"),
            # no events: the opt-out regime's default; no features in us
            ("us", "K3", True, True, False, None, None, None, None, None, None, None, None, None, "gold-run"),
            # no events: the opt-in regime's default
            ("de", "K4", False, False, False, None, None, None, None, None, None, None, None, None, "gold-run"),
            # erasure wins over every opt-in, also a later one
            ("de", "K5", False, False, True, t(3), AS_OF, "fs-b", 1, 10.0, None, None, None, None, "gold-run"),
            ("de", "K6", True, False, False, t(6), None, None, None, None, None, None, None, None, "gold-run"),
        ],
        "region string, customer_id string, marketing_consent boolean, profiling_consent boolean, "
        "erasure_requested boolean, consent_updated_at timestamp, features_as_of date, feature_set_version string, "
        "orders_total bigint, net_revenue_total double, segment string, segment_model_version string, "
        "churn_score double, churn_model_version string, run_id string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_customer_360_one_row_per_golden_customer_with_its_attributes(spark, c360):
    rows = c360.select("region", "customer_id").collect()
    assert sorted((r.region, r.customer_id) for r in rows) == sorted((g[-1], g[0]) for g in GOLDEN)
    golden = spark.createDataFrame(GOLDEN, GOLDEN_SCHEMA).select("region", "customer_id", *GOLDEN_COLUMNS)
    assert_df_equality(
        c360.select("region", "customer_id", *GOLDEN_COLUMNS), golden, ignore_row_order=True, ignore_nullable=True
    )


def test_customer_360_column_order(c360):
    assert c360.columns == [
        "customer_id", *GOLDEN_COLUMNS, "marketing_consent", "profiling_consent", "erasure_requested",
        "consent_updated_at", "features_as_of", "feature_set_version", "orders_total", "net_revenue_total",
        "segment", "global_segment", "segment_model_version", "churn_score", "churn_predicted", "churn_cold_start",
        "churn_model_version", "expected_purchases", "p_alive", "clv", "expected_remaining_days", "run_id", "region",
    ]


def test_ml_columns_come_from_the_scores_of_the_same_as_of_date(spark):
    c360 = spark.createDataFrame(
        [("c1", True, date(2026, 6, 30), "us"), ("c2", True, date(2026, 6, 30), "us"), ("c3", True, None, "us"),
         ("c4", False, date(2026, 6, 30), "us")],  # c4 withdrew profiling consent after it was scored
        "customer_id string, profiling_consent boolean, features_as_of date, region string",
    )
    for column, data_type in ML_COLUMNS.items():
        c360 = c360.withColumn(column, F.lit(None).cast(data_type))
    segments = spark.createDataFrame(
        [("c1", 4, "Lapsing", "Lapsing", "c360_us_segmentation", "3", "us", date(2026, 6, 30)),
         ("c2", 5, "Mainstream", "Mainstream", "c360_us_segmentation", "3", "us", date(2026, 5, 31))],  # another date
        "customer_id string, segment_id int, segment string, global_segment string, model_name string, "
        "model_version string, region string, as_of_date date",
    )
    churn = spark.createDataFrame(
        [("c1", 0.7, True, False, "c360_us_churn", "2", "us", date(2026, 6, 30)),
         ("c4", 0.9, True, False, "c360_us_churn", "2", "us", date(2026, 6, 30))],
        "customer_id string, churn_score double, churn_predicted boolean, is_cold_start_score boolean, "
        "model_name string, model_version string, region string, as_of_date date",
    )
    value = spark.createDataFrame(
        [("c1", 2.5, 0.9, 410.0, "us", date(2026, 6, 30)), ("c2", 1.0, 0.8, 99.0, "us", date(2026, 5, 31)),  # another date
         ("c4", 3.0, 0.7, 500.0, "us", date(2026, 6, 30))],
        "customer_id string, expected_purchases double, p_alive double, clv double, region string, as_of_date date",
    )
    survival = spark.createDataFrame(
        [("c1", 123.5, "us", date(2026, 6, 30)), ("c2", 40.0, "us", date(2026, 5, 31)), ("c4", 9.0, "us", date(2026, 6, 30))],
        "customer_id string, expected_remaining_days double, region string, as_of_date date",
    )
    out = with_ml_columns(c360, segments, churn, value, survival)
    assert out.columns == c360.columns
    rows = {r.customer_id: r for r in out.collect()}
    assert rows["c1"].expected_remaining_days == 123.5
    assert (rows["c1"].segment, rows["c1"].global_segment, rows["c1"].segment_model_version) == ("Lapsing", "Lapsing", "c360_us_segmentation/3")
    assert (rows["c1"].churn_score, rows["c1"].churn_predicted, rows["c1"].churn_cold_start, rows["c1"].churn_model_version) == (0.7, True, False, "c360_us_churn/2")
    assert (rows["c1"].expected_purchases, rows["c1"].p_alive, rows["c1"].clv) == (2.5, 0.9, 410.0)
    assert all(getattr(rows[c], col) is None for c in ("c2", "c3", "c4") for col in ML_COLUMNS)
    # no ML tables yet: the columns stay, null
    assert with_ml_columns(c360, None, None).where(F.col("segment").isNotNull()).count() == 0


def features_frame(spark, windows):
    """An empty frame with the columns the gold stage's customer_features produces."""
    columns = ["region string", "customer_id string", "as_of_date date", "feature_set_version string"]
    columns += [f"{f.name} {f.data_type}" for f in expand(windows)]
    return spark.createDataFrame([], ", ".join(columns))


@pytest.mark.parametrize("windows", [(30,), (30, 90, 365)])
def test_column_comments_describe_every_column(spark, windows):
    features = features_frame(spark, windows)
    out = customer_360(
        spark.createDataFrame([], GOLDEN_SCHEMA), features, spark.createDataFrame([], CONSENT_SCHEMA),
        regimes=REGIMES, run_id="r",
    )
    comments = column_comments(windows)
    assert [c for c in out.columns if c not in comments] == []
    assert [c for c in features.columns if c not in comments] == []
    # nothing described that neither table has
    assert set(comments) - set(out.columns) - set(features.columns) == set()
    assert all(isinstance(v, str) and v.strip() for v in comments.values())
    assert comments["frequency_30d"] == "orders in the 30 days up to the as-of date"
    for w in windows:
        assert f"sessions_{w}d" in out.columns and f"sessions_{w}d" in comments
    assert ("frequency_90d" in comments) == (90 in windows)
