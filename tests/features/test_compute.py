"""Features as of a date: every family against hand-computed values, window edges, bad paths and
the point-in-time guarantee (later data never changes an earlier as-of date)."""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from chispa.dataframe_comparer import DataFramesNotEqualError

from customer360.features.compute import (
    category_mix,
    customer_features,
    cutoff,
    order_features,
    ticket_features,
    web_features,
    with_robust_z,
    with_rfm,
)
from customer360.features.registry import expand, feature_parameters, feature_set_version

from tests.features.conftest import (
    BOT,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    FEATURES_AS_OF,
    ORDERS_SCHEMA,
    REGION_WINDOWS,
    SETTINGS,
    TICKETS_SCHEMA,
    event,
    frame,
    login,
    order,
    ts,
)

AS_OF = date(2025, 3, 31)  # cut-off 2025-04-01 00:00 UTC
PRECISION = 1e-6


# --- cut-off -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2025, 3, 31), datetime(2025, 4, 1)),
        (date(2024, 2, 28), datetime(2024, 2, 29)),  # leap day
        (date(2024, 12, 31), datetime(2025, 1, 1)),
    ],
)
def test_cutoff_is_midnight_after_the_as_of_day(as_of, expected):
    got = cutoff(as_of)
    assert (got.replace(tzinfo=None), got.utcoffset() in (None, timedelta(0))) == (expected, True)


def test_cutoff_is_utc_whatever_the_driver_time_zone(spark, monkeypatch):
    """The cut-off is the end of the as-of day in UTC even when the driver's local zone is not UTC
    (a naive datetime literal is read in the Python process's local zone)."""
    orders = spark.createDataFrame(
        [
            order("l1", "o1", "r1", "c1", ts(2025, 3, 31, 22), "books", 1, "10.00"),
            order("l2", "o2", "r1", "c1", ts(2025, 4, 1, 2), "books", 1, "99.00"),  # the next UTC day
        ],
        ORDERS_SCHEMA,
    )
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        got = order_features(orders, as_of=AS_OF, windows=[30], outlier_z=3.5)
        row = got.select("orders_total", "net_revenue_total", "recency_days").first()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert row.asDict() == {"orders_total": 1, "net_revenue_total": 10.0, "recency_days": 0}


# --- robust z ----------------------------------------------------------------------------------

def test_with_robust_z_uses_mad_falls_back_to_mean_absolute_deviation_and_is_zero_when_all_equal(spark):
    schema = "grp string, id string, x double"
    rows = [
        # g1: median 3, |x - 3| = 2,1,0,1,97: MAD 1; z = 0.6745 * (x - 3); the null gets no score and does not count
        ("g1", "a", 1.0), ("g1", "b", 2.0), ("g1", "c", 3.0), ("g1", "d", 4.0), ("g1", "e", 100.0), ("g1", "n", None),
        # g2: even count, median (2 + 4) / 2 = 3; |x - 3| = 2,1,1,7: MAD 1.5
        ("g2", "a", 1.0), ("g2", "b", 2.0), ("g2", "c", 4.0), ("g2", "d", 10.0),
        # g3: median 5, |x - 5| = 0,0,0,3: MAD 0 -> (x - 5) / (1.253314 * mean 0.75)
        ("g3", "a", 5.0), ("g3", "b", 5.0), ("g3", "c", 5.0), ("g3", "d", 8.0),
        # g4: all equal: MAD and mean deviation 0 -> 0
        ("g4", "a", 7.0), ("g4", "b", 7.0), ("g4", "c", 7.0),
        # g5: one value -> 0; g6: only a null -> null
        ("g5", "a", 42.0),
        ("g6", "a", None),
    ]
    got = with_robust_z(spark.createDataFrame(rows, schema), "x", "z", over=("grp",))
    fallback = 1.253314 * 0.75
    expected = spark.createDataFrame(
        [
            ("g1", "a", 1.0, -1.349), ("g1", "b", 2.0, -0.6745), ("g1", "c", 3.0, 0.0), ("g1", "d", 4.0, 0.6745),
            ("g1", "e", 100.0, 0.6745 * 97), ("g1", "n", None, None),
            ("g2", "a", 1.0, 0.6745 * -2 / 1.5), ("g2", "b", 2.0, 0.6745 * -1 / 1.5), ("g2", "c", 4.0, 0.6745 / 1.5),
            ("g2", "d", 10.0, 0.6745 * 7 / 1.5),
            ("g3", "a", 5.0, 0.0), ("g3", "b", 5.0, 0.0), ("g3", "c", 5.0, 0.0), ("g3", "d", 8.0, 3 / fallback),
            ("g4", "a", 7.0, 0.0), ("g4", "b", 7.0, 0.0), ("g4", "c", 7.0, 0.0),
            ("g5", "a", 42.0, 0.0),
            ("g6", "a", None, None),
        ],
        "grp string, id string, x double, z double",
    )
    assert_approx_df_equality(got, expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


# --- orders, trend, outliers, category ---------------------------------------------------------
# windows 30 and 90 as of 2025-03-31: 30d = [03-02, 04-01), previous 30d = [01-31, 03-02);
# 90d = [01-01, 04-01), previous 90d = [2024-10-03, 01-01)
ORDER_LINES = [
    # c1 (r1): window edges
    order("l1", "o1", "r1", "c1", ts(2025, 3, 2), "books", 1, "10.00"),  # first instant of 30d: inside
    order("l2", "o2", "r1", "c1", ts(2025, 3, 1, 23, 59, 59), "toys", 2, "20.00"),  # last second before 30d
    order("l3", "o3", "r1", "c1", ts(2025, 3, 31, 23, 59, 59), "toys", 2, "30.00"),  # last second of the as-of day
    order("l4", "o3", "r1", "c1", ts(2025, 3, 31, 23, 59, 59), "garden", 1, "0.00", True),  # returned line
    order("l5", "o4", "r1", "c1", ts(2025, 4, 1), "books", 10000, "1000.00"),  # at the cut-off: left out
    order("l6", "o5", "r1", "c1", ts(2024, 12, 31, 23, 59, 59), "books", 1, "40.00"),  # previous 90d
    order("l7", "o6", "r1", "c1", ts(2025, 1, 1), "books", 2, "50.00"),  # first instant of 90d
    # c2 (r1): two orders on one day; equal spend in two categories
    order("l8", "o7", "r1", "c2", ts(2025, 2, 15, 10), "toys", 1, "12.50"),
    order("l9", "o8", "r1", "c2", ts(2025, 2, 15, 12), "books", 2, "12.50"),
    # c3 (r1): a bulk order (quantity 500)
    order("l10", "o9", "r1", "c3", ts(2025, 3, 10, 8), "garden", 500, "5000.00"),
    order("l11", "o10", "r1", "c3", ts(2025, 3, 20, 8), "garden", 2, "60.00"),
    # c6 (r1): orders only after the cut-off
    order("l12", "o11", "r1", "c6", ts(2025, 4, 15), "books", 1, "10.00"),
    # c4 (r2): large quantities are normal in r2
    order("l13", "o12", "r2", "c4", ts(2025, 3, 31), "books", 500, "100.00"),
    order("l14", "o13", "r2", "c4", ts(2025, 1, 15), "books", 480, "100.00"),
    order("l15", "o14", "r2", "c4", ts(2024, 11, 1), "books", 520, "100.00"),
    # c5 (r2): one order, fully returned
    order("l16", "o15", "r2", "c5", ts(2025, 3, 15), "toys", 1, "0.00", True),
]


@pytest.fixture(scope="module")
def by_orders(spark):
    lines = spark.createDataFrame(ORDER_LINES, ORDERS_SCHEMA)
    df = order_features(lines, as_of=AS_OF, windows=[90, 30, 30], outlier_z=3.5).cache()
    yield df
    df.unpersist()


def test_order_features_windows_totals_trends_and_intervals(spark, by_orders):
    columns = [
        "region", "customer_id", "orders_total", "net_revenue_total", "frequency_30d", "monetary_30d", "frequency_90d",
        "monetary_90d", "frequency_trend_30d", "monetary_trend_30d", "frequency_trend_90d", "monetary_trend_90d",
        "recency_days", "first_order_date", "mean_interpurchase_days",
    ]
    expected = spark.createDataFrame(
        [
            # c1: 30d o1+o3; 90d o1,o2,o3,o6; previous 30d o2; previous 90d o5; dates 12-31..03-31 (90 days) over 5 dates
            ("r1", "c1", 5, 150.0, 2, 40.0, 4, 110.0, 2.0, 2.0, 4.0, 2.75, 0, date(2024, 12, 31), 22.5),
            # c2: both orders in the previous 30d, nothing now; one order date -> no interval
            ("r1", "c2", 2, 25.0, 0, 0.0, 2, 25.0, 0.0, 0.0, None, None, 44, date(2025, 2, 15), None),
            ("r1", "c3", 2, 5060.0, 2, 5060.0, 2, 5060.0, None, None, None, None, 11, date(2025, 3, 10), 10.0),
            # c4: 11-01 -> 03-31 is 150 days over 3 dates
            ("r2", "c4", 3, 300.0, 1, 100.0, 2, 200.0, None, None, 2.0, 2.0, 0, date(2024, 11, 1), 75.0),
            # c5: a returned order still counts as an order, with zero revenue (no trend: nothing before)
            ("r2", "c5", 1, 0.0, 1, 0.0, 1, 0.0, None, None, None, None, 16, date(2025, 3, 15), None),
        ],
        "region string, customer_id string, orders_total bigint, net_revenue_total double, frequency_30d bigint, "
        "monetary_30d double, frequency_90d bigint, monetary_90d double, frequency_trend_30d double, "
        "monetary_trend_30d double, frequency_trend_90d double, monetary_trend_90d double, recency_days int, "
        "first_order_date date, mean_interpurchase_days double",
    )
    assert_approx_df_equality(by_orders.select(*columns), expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


def test_bulk_orders_by_robust_z_within_the_region_are_left_out_of_average_order_value(spark, by_orders):
    # r1 order quantities (o3 = 2 + 1 returned): 1,2,3,1,2 | 1,2 | 500,2 -> median 2, MAD 1:
    # z(500) = 0.6745 * 498 = 335.9 > 3.5; z(3) = 0.6745. The cut-off order of 10000 does not count.
    # r2: 500,480,520,1 -> median 490, MAD 20: z(520) = 1.01, so 500-unit orders are normal there.
    expected = spark.createDataFrame(
        [
            ("r1", "c1", 0, 30.0),  # 150 / 5
            ("r1", "c2", 0, 12.5),
            ("r1", "c3", 1, 60.0),  # the 5000.00 bulk order is left out of the average, but not of the totals
            ("r2", "c4", 0, 100.0),
            ("r2", "c5", 0, 0.0),
        ],
        "region string, customer_id string, bulk_orders bigint, avg_order_value double",
    )
    got = by_orders.select("region", "customer_id", "bulk_orders", "avg_order_value")
    assert_approx_df_equality(got, expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


def test_bulk_order_by_mean_absolute_deviation_when_mad_is_zero(spark):
    # quantities 1,1,1,1,6: median 1, MAD 0, mean deviation 1 -> z(6) = 5 / 1.253314 = 3.99 > 3.5
    lines = spark.createDataFrame(
        [order(f"l{i}", f"o{i}", "r1", "k1" if i < 4 else "k2", ts(2025, 3, 10 + i), "books", 6 if i == 4 else 1, "10.00")
         for i in range(5)],
        ORDERS_SCHEMA,
    )
    got = order_features(lines, as_of=AS_OF, windows=[30], outlier_z=3.5).select("customer_id", "bulk_orders", "avg_order_value")
    expected = spark.createDataFrame([("k1", 0, 10.0), ("k2", 1, None)], "customer_id string, bulk_orders bigint, avg_order_value double")
    # k2's only order is bulk: no ordinary order to average
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_category_mix_of_orders_up_to_the_cut_off(spark, by_orders):
    expected = spark.createDataFrame(
        [
            # c1: books 10+40+50 = 100, toys 50, garden returned (0): H(2/3, 1/3) = 0.9183 bits;
            # the after-cut-off books order does not count
            ("r1", "c1", "books", 0.9183),
            ("r1", "c2", "books", 1.0),  # 12.50 each: tie -> alphabetical, one bit
            ("r1", "c3", "garden", 0.0),
            ("r2", "c4", "books", 0.0),
            ("r2", "c5", None, None),  # only a returned line: no revenue in any category
        ],
        "region string, customer_id string, top_category string, category_entropy double",
    )
    got = by_orders.select("region", "customer_id", "top_category", "category_entropy")
    assert_approx_df_equality(got, expected, 1e-4, ignore_nullable=True, ignore_row_order=True)


def test_category_mix_entropy_in_bits_ties_alphabetical_returns_and_unknown_categories_ignored(spark):
    lines = spark.createDataFrame(
        [
            order("l1", "o1", "r1", "x1", ts(2025, 3, 1), "books", 1, "50.00"),
            order("l2", "o1", "r1", "x1", ts(2025, 3, 1), "toys", 1, "25.00"),
            order("l3", "o2", "r1", "x1", ts(2025, 3, 2), "garden", 1, "25.00"),
            order("l4", "o3", "r1", "x2", ts(2025, 3, 1), "zoo", 1, "40.00"),
            order("l5", "o3", "r1", "x2", ts(2025, 3, 1), "art", 1, "40.00"),
            order("l6", "o4", "r1", "x3", ts(2025, 3, 1), "books", 1, "30.00"),
            order("l7", "o4", "r1", "x3", ts(2025, 3, 1), "toys", 3, "0.00", True),
            order("l8", "o4", "r1", "x3", ts(2025, 3, 1), None, 1, "99.00"),
            order("l9", "o5", "r1", "x4", ts(2025, 3, 1), "toys", 1, "0.00", True),
        ],
        ORDERS_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            ("r1", "x1", "books", 1.5),  # shares 1/2, 1/4, 1/4: 0.5*1 + 0.25*2 + 0.25*2
            ("r1", "x2", "art", 1.0),
            ("r1", "x3", "books", 0.0),  # the returned toys and the uncategorised line do not count
        ],  # x4 has revenue in no category: no row
        "region string, customer_id string, top_category string, category_entropy double",
    )
    assert_approx_df_equality(category_mix(lines), expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


# --- rfm ---------------------------------------------------------------------------------------

def test_with_rfm_quintiles_within_region_ties_share_a_score_and_non_buyers_get_nulls(spark):
    df = spark.createDataFrame(
        [
            # r1: five buyers, percent_rank 0, .25, .5, .75, 1 -> scores 1..5; recency reversed
            ("r1", "a", 3, 0, 1, 10.0),
            ("r1", "b", 3, 5, 3, 50.0),
            ("r1", "c", 2, 10, 2, 30.0),
            ("r1", "d", 5, 20, 5, 20.0),
            ("r1", "e", 4, 40, 4, 40.0),
            ("r1", "f", 0, None, 0, 0.0),  # no orders: no scores, and it does not take a rank from the buyers
            # r2: g and h tie everywhere: percent_rank 0.5 -> floor(2.5) + 1 = 3
            ("r2", "g", 2, 3, 2, 10.0),
            ("r2", "h", 2, 3, 2, 10.0),
            ("r2", "i", 1, 9, 1, 5.0),
            # r3: a single buyer: percent_rank 0 -> 1
            ("r3", "j", 1, 0, 1, 99.0),
        ],
        "region string, customer_id string, orders_total bigint, recency_days int, f bigint, m double",
    )
    got = with_rfm(df, frequency=F.col("f"), monetary=F.col("m")).select(
        "region", "customer_id", "rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score", "rfm_score"
    )
    expected = spark.createDataFrame(
        [
            ("r1", "a", 5, 1, 1, "511"),
            ("r1", "b", 4, 3, 5, "435"),
            ("r1", "c", 3, 2, 3, "323"),
            ("r1", "d", 2, 5, 2, "252"),
            ("r1", "e", 1, 4, 4, "144"),
            ("r1", "f", None, None, None, None),
            ("r2", "g", 3, 3, 3, "333"),
            ("r2", "h", 3, 3, 3, "333"),
            ("r2", "i", 1, 1, 1, "111"),
            ("r3", "j", 1, 1, 1, "111"),
        ],
        "region string, customer_id string, rfm_recency_score int, rfm_frequency_score int, rfm_monetary_score int, "
        "rfm_score string",
    )
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


# --- web ---------------------------------------------------------------------------------------
# windows 7 and 30 as of 2025-03-31: 7d from 03-25 00:00, 30d from 03-02 00:00; timeout 30 minutes
def _v1(event_id, at, event_type, rule="earlier_login", stitched_at=ts(2025, 3, 30, 10), **kw):
    return event(event_id, "w1", at, event_type, "v1", rule, stitched_at, "r1", **kw)


WEB_EVENTS = [
    # w1, S1 (7d): login, page, product, purchase over 20 minutes: 2 pages, 1200 s, viewed and bought
    login("e1", "w1", ts(2025, 3, 30, 10), "v1", "r1"),
    _v1("e2", ts(2025, 3, 30, 10, 5), "page_view"),
    _v1("e3", ts(2025, 3, 30, 10, 10), "product_view", category="books"),
    _v1("e4", ts(2025, 3, 30, 10, 20), "purchase", category="books"),
    # S2 (7d): 40 minutes later, a new session: 2 pages, 600 s, viewed, not bought
    _v1("e5", ts(2025, 3, 30, 11), "product_view", category="toys"),
    _v1("e6", ts(2025, 3, 30, 11, 10), "product_view", category="toys"),
    # S3 (30d, not 7d): attributed by the later login (before the cut-off); 1 page, 30 s; a stale bot flag is ignored
    _v1("e7", ts(2025, 3, 10, 9), "page_view", "later_login", is_bot=True),
    _v1("e8", ts(2025, 3, 10, 9, 0, 30), "add_to_cart", "later_login", is_bot=True),
    # S4: outside every window, but the first attributed web activity
    _v1("e9", ts(2025, 2, 1, 12), "page_view", "later_login"),
    # S5: 5 events in 20 s (15 a minute): a bot session, left out (its day too)
    *[_v1(f"e1{i}", ts(2025, 3, 28, 8, 0, 5 * i), "page_view", "later_login") for i in range(5)],
    # S6: last second of the as-of day; its continuation after the cut-off is cut: 1 page, 0 s
    _v1("e15", ts(2025, 3, 31, 23, 59, 59), "page_view"),
    _v1("e16", ts(2025, 4, 1, 0, 0, 10), "page_view"),
    # w2: attributed only by a login after the as-of date
    event("e20", "w2", ts(2025, 3, 20, 12), "page_view", "v2", "later_login", ts(2025, 4, 2, 9), "r1"),
    login("e21", "w2", ts(2025, 4, 2, 9), "v2", "r1"),
    # w3: one session in 7d, no product view
    login("e30", "w3", ts(2025, 3, 26, 12), "v3", "r1"),
    event("e31", "w3", ts(2025, 3, 26, 12, 1), "page_view", "v3", "earlier_login", ts(2025, 3, 26, 12), "r1"),
    # anonymous visitor
    event("e40", None, ts(2025, 3, 29, 15), "page_view", "v4", "anonymous", None, "r1"),
    event("e41", None, ts(2025, 3, 29, 15, 1), "product_view", "v4", "anonymous", None, "r1"),
    # w4: only a bot session (4 events in 3 s)
    login("e50", "w4", ts(2025, 3, 27, 10), "v5", "r1"),
    *[event(f"e5{i}", "w4", ts(2025, 3, 27, 10, 0, i), "page_view", "v5", "earlier_login", ts(2025, 3, 27, 10), "r1")
      for i in range(1, 4)],
]


def test_web_features_sessions_pages_duration_days_and_conversion(spark):
    events = spark.createDataFrame(WEB_EVENTS, EVENTS_SCHEMA)
    got = web_features(events, as_of=AS_OF, windows=[30, 7], timeout_minutes={"r1": 30}, bot=BOT).select(
        "region", "customer_id",
        "sessions_7d", "pages_per_session_7d", "avg_session_seconds_7d", "active_days_7d", "view_to_purchase_7d",
        "sessions_30d", "pages_per_session_30d", "avg_session_seconds_30d", "active_days_30d", "view_to_purchase_30d",
        "first_web_ts",
    )
    expected = spark.createDataFrame(
        [
            # 7d: S1, S2, S6 -> 5 pages / 3, (1200 + 600 + 0) / 3 s, days 03-30 and 03-31, 1 of 2 viewing sessions bought
            # 30d: + S3 -> 6 / 4 pages, 1830 / 4 s, + day 03-10
            ("r1", "w1", 3, 5 / 3, 600.0, 2, 0.5, 4, 1.5, 457.5, 3, 0.5, ts(2025, 2, 1, 12)),
            ("r1", "w3", 1, 1.0, 60.0, 1, None, 1, 1.0, 60.0, 1, None, ts(2025, 3, 26, 12)),
        ],  # w2 (stitched after the cut-off), w4 (bots only) and the anonymous visitor: no rows
        "region string, customer_id string, sessions_7d bigint, pages_per_session_7d double, "
        "avg_session_seconds_7d double, active_days_7d bigint, view_to_purchase_7d double, sessions_30d bigint, "
        "pages_per_session_30d double, avg_session_seconds_30d double, active_days_30d bigint, "
        "view_to_purchase_30d double, first_web_ts timestamp",
    )
    assert_approx_df_equality(got, expected, 1e-4, ignore_nullable=True, ignore_row_order=True)


# --- support -----------------------------------------------------------------------------------

def test_ticket_features_windows_recency_satisfaction_and_low_rated(spark):
    tickets = spark.createDataFrame(
        [
            ("t1", "r1", "s1", ts(2025, 3, 25), 4),  # first instant of 7d
            ("t2", "r1", "s1", ts(2025, 3, 24, 23, 59, 59), None),  # unrated
            ("t3", "r1", "s1", ts(2025, 3, 2), 2),  # first instant of 30d
            ("t4", "r1", "s1", ts(2025, 3, 1, 23, 59, 59), 5),  # before 30d
            ("t5", "r1", "s1", ts(2025, 4, 1), 1),  # at the cut-off: left out
            ("t6", "r1", "s2", ts(2025, 1, 10, 8), None),
            ("t7", "r1", "s3", ts(2025, 4, 2), 3),  # only after the cut-off: no row
        ],
        TICKETS_SCHEMA,
    )
    got = ticket_features(tickets, as_of=AS_OF, windows=[7, 30]).select(
        "region", "customer_id", "tickets_7d", "tickets_30d", "ticket_recency_days", "avg_satisfaction", "first_ticket_ts",
        "low_rated_tickets_7d", "low_rated_tickets_30d",
    )
    expected = spark.createDataFrame(
        [
            # (4 + 2 + 5) / 3 rated; rated 1 or 2: t3 (30d); t5's 1 is after the cut-off, t2 is unrated
            ("r1", "s1", 1, 3, 6, 11 / 3, ts(2025, 3, 1, 23, 59, 59), 0, 1),
            ("r1", "s2", 0, 0, 80, None, ts(2025, 1, 10, 8), 0, 0),
        ],
        "region string, customer_id string, tickets_7d bigint, tickets_30d bigint, ticket_recency_days int, "
        "avg_satisfaction double, first_ticket_ts timestamp, low_rated_tickets_7d bigint, low_rated_tickets_30d bigint",
    )
    assert_approx_df_equality(got, expected, 1e-4, ignore_nullable=True, ignore_row_order=True)


# --- customer_features -------------------------------------------------------------------------

def test_customer_features_columns_and_per_region_feature_set_version(features):
    union = sorted({w for ws in REGION_WINDOWS.values() for w in ws})
    assert features.columns == ["region", "customer_id", "as_of_date", "feature_set_version"] + [f.name for f in expand(union)]
    versions = {(r.region, r.as_of_date, r.feature_set_version) for r in features.select("region", "as_of_date", "feature_set_version").collect()}
    parameters = feature_parameters(SETTINGS, session_timeout_minutes=30)
    ra, rb = feature_set_version(expand([30, 90]), parameters), feature_set_version(expand([30, 90, 180]), parameters)
    assert ra != rb
    # the settings the features were computed with are part of the version
    assert ra != feature_set_version(expand([30, 90])) != feature_set_version(expand([30, 90]), {**parameters, "outlier_z": 3.0})
    assert versions == {("ra", FEATURES_AS_OF, ra), ("rb", FEATURES_AS_OF, rb)}


def test_customer_features_universe_counts_tenure_cold_start_and_rfm(spark, features):
    columns = [
        "region", "customer_id", "orders_total", "net_revenue_total", "frequency_30d", "monetary_30d", "sessions_30d",
        "active_days_30d", "tickets_30d", "bulk_orders", "recency_days", "tenure_days", "is_cold_start", "rfm_score",
        "top_category", "avg_order_value",
    ]
    # rfm in ra over 90d (A9's 2024-11-20 order does not count): recency 11,5,26,16,49; frequency 2,2,1,1,1;
    # monetary 150,40,10,100000,60. rb over 180d: B1 recency 1, 2 orders, 100; B3 recency 30, 1 order, 100000.
    # cold start: fewer than 2 orders or tenure below 30 days (A2: 2 orders but tenure 21)
    expected = spark.createDataFrame(
        [
            ("ra", "A1", 2, 150.0, 1, 100.0, 1, 1, 0, 0, 11, 303, False, "444", "books", 75.0),
            ("ra", "A2", 2, 40.0, 2, 40.0, 0, 0, 1, 0, 5, 21, True, "542", "toys", 20.0),
            ("ra", "A3", 1, 10.0, 1, 10.0, 0, 0, 0, 0, 26, 120, True, "211", "books", 10.0),
            ("ra", "A4", 0, 0.0, 0, 0.0, 0, 0, 0, 0, None, 89, True, None, None, None),
            ("ra", "A7", 0, 0.0, 0, 0.0, 0, 0, 0, 0, None, 0, True, None, None, None),
            ("ra", "A8", 1, 100000.0, 1, 100000.0, 0, 0, 0, 0, 16, 455, True, "315", "garden", 100000.0),
            ("ra", "A9", 2, 90.0, 0, 0.0, 0, 0, 0, 0, 49, 211, False, "113", "books", 45.0),
            ("rb", "B1", 2, 100.0, 1, 20.0, 0, 0, 0, 0, 1, 136, False, "551", "garden", 50.0),
            ("rb", "B2", 0, 0.0, 0, 0.0, 0, 0, 0, 0, None, 106, True, None, None, None),
            ("rb", "B3", 1, 100000.0, 0, 0.0, 0, 0, 0, 0, 30, 303, True, "115", "books", 100000.0),
        ],  # A5/A6 first seen from the cut-off on, C1 in a region not asked for: no rows
        "region string, customer_id string, orders_total bigint, net_revenue_total double, frequency_30d bigint, "
        "monetary_30d double, sessions_30d bigint, active_days_30d bigint, tickets_30d bigint, bulk_orders bigint, "
        "recency_days int, tenure_days int, is_cold_start boolean, rfm_score string, top_category string, "
        "avg_order_value double",
    )
    assert_approx_df_equality(features.select(*columns), expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


def test_customer_features_unconfigured_windows_are_null(spark, features):
    got = features.select(
        "region", "customer_id", "frequency_90d", "frequency_trend_90d", "frequency_180d", "monetary_180d",
        "frequency_trend_180d", "sessions_180d", "pages_per_session_180d", "active_days_180d", "tickets_180d",
    )
    ra_180 = (None,) * 7
    expected = spark.createDataFrame(
        [
            ("ra", "A1", 2, None, *ra_180),
            ("ra", "A2", 2, None, *ra_180),
            ("ra", "A3", 1, None, *ra_180),
            ("ra", "A4", 0, None, *ra_180),
            ("ra", "A7", 0, None, *ra_180),
            ("ra", "A8", 1, None, *ra_180),
            ("ra", "A9", 1, 1.0, *ra_180),  # 90d: 02-10; previous 90d: 2024-11-20
            # B1: 90d 03-30, previous 90d 2024-11-15; 180d both; the 2024-11-20 login is a 0-page, 0 s session
            ("rb", "B1", 1, 1.0, 2, 100.0, None, 1, 0.0, 1, 0),
            ("rb", "B2", 0, None, 0, 0.0, None, 0, None, 0, 1),
            ("rb", "B3", 1, None, 1, 100000.0, None, 0, None, 0, 0),
        ],
        "region string, customer_id string, frequency_90d bigint, frequency_trend_90d double, frequency_180d bigint, "
        "monetary_180d double, frequency_trend_180d double, sessions_180d bigint, pages_per_session_180d double, "
        "active_days_180d bigint, tickets_180d bigint",
    )
    assert_approx_df_equality(got, expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


def test_customer_features_cadence_against_the_customers_own_pace(spark, features):
    got = features.select(
        "region", "customer_id", "overdue_ratio", "order_rate_ratio_30d", "order_rate_ratio_90d", "order_rate_ratio_180d",
        "sessions_total", "session_rate_ratio_30d", "session_rate_ratio_180d", "orders_per_year",
    )
    expected = spark.createDataFrame(
        [
            # A1: 11 days since the last order, usual gap 64: 0.1719; 30d: (1 / 30) / (2 / 303 days of tenure)
            ("ra", "A1", 11 / 64, 303 / 60, (2 / 90) / (2 / 303), None, 1, 10.1, None, 2 * 365 / 303),
            # A2: tenure 21 days, shorter than either window: the window is the tenure, so the ratio is 1;
            # orders per year over at least 30 days of tenure
            ("ra", "A2", 5.0, 1.0, 1.0, None, 0, None, None, 2 * 365 / 30),
            ("ra", "A3", None, 4.0, 120 / 90, None, 1, 0.0, None, 365 / 120),  # one order date: no usual gap
            ("ra", "A4", None, None, None, None, 0, None, None, None),  # no orders, no sessions: null
            ("ra", "A7", None, None, None, None, 0, None, None, None),
            ("ra", "A8", None, 455 / 30, 455 / 90, None, 0, None, None, 365 / 455),
            ("ra", "A9", 49 / 82, 0.0, (1 / 90) / (2 / 211), None, 0, None, None, 2 * 365 / 211),  # no order in 30 days: 0
            ("rb", "B1", 1 / 135, (1 / 30) / (2 / 136), (1 / 90) / (2 / 136), 1.0, 1, 0.0, 1.0, 2 * 365 / 136),
            ("rb", "B2", None, None, None, None, 0, None, None, None),
            ("rb", "B3", None, 0.0, 303 / 90, 303 / 180, 0, None, None, 365 / 303),
        ],
        "region string, customer_id string, overdue_ratio double, order_rate_ratio_30d double, order_rate_ratio_90d double, "
        "order_rate_ratio_180d double, sessions_total bigint, session_rate_ratio_30d double, session_rate_ratio_180d double, "
        "orders_per_year double",
    )
    assert_approx_df_equality(got, expected, 1e-4, ignore_nullable=True, ignore_row_order=True)


def test_customer_features_monetary_outlier_on_log_revenue_within_region(spark, features):
    # ra buyers' log1p(90d revenue): 150, 40, 10, 100000, 60 -> median log1p(60) = 4.111, MAD 0.906:
    # z(100000) = 0.6745 * 7.402 / 0.906 = 5.51 > 3.5. rb has two buyers: z = +-0.6745 (the same 100000 is normal)
    expected = spark.createDataFrame(
        [
            ("ra", "A1", False), ("ra", "A2", False), ("ra", "A3", False), ("ra", "A4", False), ("ra", "A7", False),
            ("ra", "A8", True), ("ra", "A9", False),
            ("rb", "B1", False), ("rb", "B2", False), ("rb", "B3", False),
        ],
        "region string, customer_id string, is_monetary_outlier boolean",
    )
    got = features.select("region", "customer_id", "is_monetary_outlier")
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_customer_features_monetary_outlier_uses_log_scale_not_raw_revenue(spark):
    # raw 10,20,30,40,200: z(200) = 0.6745 * 170 / 10 = 11.5; on log1p: median 3.434, MAD 0.389, z = 3.24 <= 3.5
    customers = frame(spark, [("ra", f"m{i}", ts(2024, 1, 1)) for i in range(5)], CUSTOMERS_SCHEMA)
    orders = frame(
        spark,
        [order(f"l{i}", f"o{i}", "ra", f"m{i}", ts(2025, 3, 20), "books", 1, amount)
         for i, amount in enumerate(["10.00", "20.00", "30.00", "40.00", "200.00"])],
        ORDERS_SCHEMA,
    )
    got = customer_features(
        customers, orders, frame(spark, [], EVENTS_SCHEMA), frame(spark, [], TICKETS_SCHEMA),
        as_of=AS_OF, region_windows={"ra": [30]}, timeout_minutes={"ra": 30}, settings=SETTINGS,
    )
    expected = spark.createDataFrame(
        [("ra", f"m{i}", 10.0 * (i + 1) if i < 4 else 200.0, False) for i in range(5)],
        "region string, customer_id string, monetary_30d double, is_monetary_outlier boolean",
    )
    assert_df_equality(got.select("region", "customer_id", "monetary_30d", "is_monetary_outlier"), expected,
                       ignore_nullable=True, ignore_row_order=True)


# --- point in time -----------------------------------------------------------------------------
# as of 2025-03-31 (cut-off 2025-04-01 00:00 UTC); the "known then" data is silver as it stood at the
# as-of date, the "full" data is silver as it stands a month later.
PIT_WINDOWS = {"ra": [30, 90], "rb": [30, 90, 180]}


def _pv1(event_id, at, event_type, *, session_id="pv1-2", is_bot=False, **kw):
    return event(event_id, "P1", at, event_type, "pv1", "earlier_login", ts(2025, 3, 20, 10), "ra",
                 session_id=session_id, is_bot=is_bot, **kw)


PIT_CUSTOMERS_THEN = [
    ("ra", "P1", ts(2024, 10, 1)),
    ("ra", "P2", ts(2025, 1, 15)),
    ("ra", "P3", ts(2025, 3, 1)),
    ("rb", "Q1", ts(2024, 12, 1)),
]
PIT_CUSTOMERS_LATER = [("ra", "P4", ts(2025, 4, 5)), ("rb", "Q2", ts(2025, 4, 20))]
# ra quantities up to the as-of date: 1,1,6,1,1 -> median 1, MAD 0, mean deviation 1: z(6) = 3.99, P2's order is bulk;
# with the later 1000-unit order the mean deviation grows and it would not be
PIT_ORDERS_THEN = [
    order("l1", "o1", "ra", "P1", ts(2025, 2, 1, 9), "toys", 1, "25.00"),
    order("l2", "o2", "ra", "P1", ts(2025, 3, 10, 9), "books", 1, "40.00"),
    order("l3", "o3", "ra", "P2", ts(2025, 3, 29, 9), "garden", 1, "30.00"),
    order("l4", "o4", "ra", "P2", ts(2025, 3, 30, 9), "garden", 6, "90.00"),
    order("l5", "o5", "ra", "P3", ts(2025, 3, 31, 23), "books", 1, "15.00"),
    order("l6", "o6", "rb", "Q1", ts(2025, 1, 5, 9), "books", 1, "70.00"),
]
PIT_ORDERS_LATER = [
    order("l7", "o7", "ra", "P3", ts(2025, 4, 1), "books", 1, "10.00"),  # exactly at the cut-off
    order("l8", "o8", "ra", "P1", ts(2025, 4, 10, 9), "garden", 1000, "5000.00"),
    order("l9", "o9", "ra", "P4", ts(2025, 4, 6, 9), "toys", 1, "50.00"),
]
PIT_EVENTS_THEN = [
    login("e1", "P1", ts(2025, 3, 20, 10), "pv1", "ra"),
    _pv1("e2", ts(2025, 3, 20, 10, 5), "page_view", session_id="pv1-1"),
    _pv1("e3", ts(2025, 3, 20, 10, 10), "product_view", session_id="pv1-1", category="books"),
    _pv1("e4", ts(2025, 3, 20, 10, 20), "purchase", session_id="pv1-1", category="books"),
    _pv1("e5", ts(2025, 3, 31, 23, 50), "page_view"),
    # pv3 is anonymous at the as-of date
    event("e6", None, ts(2025, 3, 25, 12), "page_view", "pv3", "anonymous", None, "ra"),
    event("e7", None, ts(2025, 3, 25, 12, 5), "product_view", "pv3", "anonymous", None, "ra"),
]
PIT_EVENTS_FULL = [
    *PIT_EVENTS_THEN[:4],
    # in today's silver the 23:50 session goes on past midnight with 10 quick events: it is a bot session now
    _pv1("e5", ts(2025, 3, 31, 23, 50), "page_view", is_bot=True),
    *[_pv1(f"e1{i}", ts(2025, 4, 1, 0, 0, i + 1), "page_view", is_bot=True) for i in range(10)],
    # a login on 2025-04-03 stitches pv3's earlier anonymous events to P3 (stitched_at after the as-of date)
    event("e6", "P3", ts(2025, 3, 25, 12), "page_view", "pv3", "later_login", ts(2025, 4, 3, 10), "ra"),
    event("e7", "P3", ts(2025, 3, 25, 12, 5), "product_view", "pv3", "later_login", ts(2025, 4, 3, 10), "ra"),
    login("e8", "P3", ts(2025, 4, 3, 10), "pv3", "ra"),
]
PIT_TICKETS_THEN = [
    ("t1", "ra", "P1", ts(2025, 3, 15, 9), 4),
    ("t2", "ra", "P2", ts(2025, 3, 31, 12), None),
]
PIT_TICKETS_LATER = [
    ("t3", "ra", "P1", ts(2025, 4, 2, 9), 1),
    ("t4", "rb", "Q1", ts(2025, 4, 15, 9), 5),
]


@pytest.fixture(scope="module")
def pit_frames(spark):
    then = (
        frame(spark, PIT_CUSTOMERS_THEN, CUSTOMERS_SCHEMA),
        frame(spark, PIT_ORDERS_THEN, ORDERS_SCHEMA),
        frame(spark, PIT_EVENTS_THEN, EVENTS_SCHEMA),
        frame(spark, PIT_TICKETS_THEN, TICKETS_SCHEMA),
    )
    full = (
        frame(spark, PIT_CUSTOMERS_THEN + PIT_CUSTOMERS_LATER, CUSTOMERS_SCHEMA),
        frame(spark, PIT_ORDERS_THEN + PIT_ORDERS_LATER, ORDERS_SCHEMA),
        frame(spark, PIT_EVENTS_FULL, EVENTS_SCHEMA),
        frame(spark, PIT_TICKETS_THEN + PIT_TICKETS_LATER, TICKETS_SCHEMA),
    )
    return then, full


def _pit_features(frames, as_of):
    return customer_features(*frames, as_of=as_of, region_windows=PIT_WINDOWS, timeout_minutes={"ra": 30, "rb": 30}, settings=SETTINGS)


def test_point_in_time_later_data_does_not_change_an_earlier_as_of_date(spark, pit_frames):
    then, full = pit_frames
    known_then = _pit_features(then, AS_OF).cache()
    recomputed = _pit_features(full, AS_OF)
    assert_df_equality(recomputed, known_then, ignore_row_order=True)
    # and the equality is not vacuous: the values at the as-of date
    expected = spark.createDataFrame(
        [
            ("ra", "P1", 2, 0, 32.5, 2, 1, False),  # sessions 03-20 and the 23:50 one (not a bot up to the cut-off)
            ("ra", "P2", 2, 1, 30.0, 0, 1, False),  # the 6-unit order is bulk in the data up to the as-of date
            ("ra", "P3", 1, 0, 15.0, 0, 0, True),  # pv3 is not P3's yet
            ("rb", "Q1", 1, 0, 70.0, 0, 0, True),
        ],
        "region string, customer_id string, orders_total bigint, bulk_orders bigint, avg_order_value double, "
        "sessions_30d bigint, tickets_30d bigint, is_cold_start boolean",
    )
    got = known_then.select("region", "customer_id", "orders_total", "bulk_orders", "avg_order_value", "sessions_30d",
                            "tickets_30d", "is_cold_start")
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)
    known_then.unpersist()


def test_point_in_time_later_data_does_change_a_later_as_of_date(spark, pit_frames):
    then, full = pit_frames
    later = date(2025, 4, 30)  # cut-off 2025-05-01: 30d from 04-01, 90d from 01-31
    got = _pit_features(full, later).cache()
    with pytest.raises(DataFramesNotEqualError):
        assert_df_equality(got, _pit_features(then, later), ignore_row_order=True)
    # ra quantities now 1,1,1,6,1,1000,1,1: median 1, MAD 0, mean deviation 1004/8: z(1000) = 6.35, z(6) = 0.03
    expected = spark.createDataFrame(
        [
            ("ra", "P1", 3, 1, 32.5, 1, 1),  # the 1000-unit order is bulk; the 23:50 session is a bot session now
            ("ra", "P2", 2, 0, 60.0, 0, 0),
            ("ra", "P3", 2, 0, 12.5, 2, 0),  # pv3's 03-25 session and the 04-03 login are P3's now
            ("ra", "P4", 1, 0, 50.0, 0, 0),
            ("rb", "Q1", 1, 0, 70.0, 0, 1),
            ("rb", "Q2", 0, 0, None, 0, 0),
        ],
        "region string, customer_id string, orders_total bigint, bulk_orders bigint, avg_order_value double, "
        "sessions_90d bigint, tickets_30d bigint",
    )
    values = got.select("region", "customer_id", "orders_total", "bulk_orders", "avg_order_value", "sessions_90d", "tickets_30d")
    assert_df_equality(values, expected, ignore_nullable=True, ignore_row_order=True)
    got.unpersist()
