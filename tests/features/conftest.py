"""Silver-shaped builders and one shared customer_features result (regions with different windows)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from customer360.config import BotRule, ColdStartRule, FeaturesConfig
from customer360.features.compute import customer_features

ORDERS_SCHEMA = (
    "order_line_id string, order_id string, region string, customer_id string, ordered_at timestamp, "
    "product_category string, quantity bigint, net_amount decimal(18,2), is_return boolean"
)
EVENTS_SCHEMA = (
    "event_id string, customer_id string, event_ts timestamp, event_type string, product_category string, "
    "visitor_key string, stitch_rule string, stitched_at timestamp, session_id string, session_start timestamp, "
    "is_bot_session boolean, region string"
)
TICKETS_SCHEMA = "ticket_id string, region string, customer_id string, opened_at timestamp, satisfaction int"
CUSTOMERS_SCHEMA = "region string, customer_id string, first_seen timestamp"

# a bot is >= 10 events in a session, or >= 4 events faster than 3 a minute
BOT = BotRule(max_session_events=10, min_events=4, max_events_per_minute=3.0)
SETTINGS = FeaturesConfig(outlier_z=3.5, cold_start=ColdStartRule(min_orders=2, min_tenure_days=30), bot=BOT)


def frame(spark, rows: list[tuple], schema: str):
    """An input frame, materialised: customer_features scans each input many times in one wide plan."""
    return spark.createDataFrame(rows, schema).localCheckpoint()


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An instant in UTC (aware, so the driver's local time zone plays no part in the fixtures)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)


def order(line: str, order_id: str, region: str, customer: str, at: datetime, category: str | None, quantity: int,
          net: str, is_return: bool = False) -> tuple:
    return (line, order_id, region, customer, at, category, quantity, Decimal(net), is_return)


def event(event_id: str, customer: str | None, at: datetime, event_type: str, visitor: str | None, rule: str,
          stitched_at: datetime | None, region: str, *, category: str | None = None, session_id: str = "stale-0",
          session_start: datetime | None = None, is_bot: bool = False) -> tuple:
    """A silver.web_events row; session_id/session_start/is_bot_session are stale placeholders the code must recompute."""
    return (event_id, customer, at, event_type, category, visitor, rule, stitched_at, session_id, session_start, is_bot, region)


def login(event_id: str, customer: str, at: datetime, visitor: str, region: str) -> tuple:
    return event(event_id, customer, at, "login", visitor, "login", at, region)


# --- the shared customer_features data set -------------------------------------------------------
# as of 2025-03-31: cut-off 2025-04-01 00:00 UTC; 30d from 2025-03-02, 90d from 2025-01-01, 180d from 2024-10-03
FEATURES_AS_OF = date(2025, 3, 31)
REGION_WINDOWS = {"ra": (30, 90), "rb": (30, 90, 180)}
TIMEOUTS = {"ra": 30, "rb": 30}

CUSTOMERS = [
    ("ra", "A1", ts(2024, 6, 1)),
    ("ra", "A2", ts(2025, 3, 20)),  # but a ticket on 2025-03-10: tenure 21
    ("ra", "A3", ts(2025, 3, 1)),  # but a web login on 2024-12-01: tenure 120
    ("ra", "A4", ts(2025, 1, 1)),  # no activity at all
    ("ra", "A5", ts(2025, 4, 5)),  # first seen after the as-of date: no row
    ("ra", "A6", ts(2025, 4, 1)),  # first seen exactly at the cut-off: no row
    ("ra", "A7", ts(2025, 3, 31, 23, 59, 59)),  # first seen in the last second: a row, tenure 0
    ("ra", "A8", ts(2024, 1, 1)),
    ("ra", "A9", ts(2024, 9, 1)),
    ("rb", "B1", ts(2025, 1, 1)),  # first order 2024-11-15 is earlier: tenure 136
    ("rb", "B2", ts(2025, 2, 1)),  # ticket 2024-12-15 is earlier: tenure 106
    ("rb", "B3", ts(2024, 6, 1)),
    ("rc", "C1", ts(2024, 1, 1)),  # a region not asked for
]
ORDERS = [
    order("l1", "a1-1", "ra", "A1", ts(2025, 1, 15, 10), "books", 1, "50.00"),
    order("l2", "a1-2", "ra", "A1", ts(2025, 3, 20, 10), "books", 1, "100.00"),
    order("l3", "a1-3", "ra", "A1", ts(2025, 4, 2, 10), "toys", 1, "500.00"),  # after the cut-off
    order("l4", "a2-1", "ra", "A2", ts(2025, 3, 25, 10), "toys", 1, "20.00"),
    order("l5", "a2-2", "ra", "A2", ts(2025, 3, 26, 10), "toys", 1, "20.00"),
    order("l6", "a3-1", "ra", "A3", ts(2025, 3, 5, 10), "books", 1, "10.00"),
    order("l7", "a8-1", "ra", "A8", ts(2025, 3, 15, 10), "garden", 1, "100000.00"),
    order("l8", "a9-1", "ra", "A9", ts(2025, 2, 10, 10), "books", 1, "60.00"),
    order("l9", "a9-2", "ra", "A9", ts(2024, 11, 20, 10), "toys", 1, "30.00"),  # in 180d, not in ra's longest (90d)
    order("l10", "b1-1", "rb", "B1", ts(2024, 11, 15, 10), "garden", 1, "80.00"),
    order("l11", "b1-2", "rb", "B1", ts(2025, 3, 30, 10), "books", 1, "20.00"),
    order("l12", "b3-1", "rb", "B3", ts(2025, 3, 1, 10), "books", 1, "100000.00"),
    order("l13", "c1-1", "rc", "C1", ts(2025, 3, 1, 10), "books", 1, "10.00"),
]
EVENTS = [
    login("e1", "A3", ts(2024, 12, 1, 12), "va3", "ra"),
    login("e2", "A1", ts(2025, 3, 21, 9), "va1", "ra"),
    event("e3", "A1", ts(2025, 3, 21, 9, 5), "product_view", "va1", "earlier_login", ts(2025, 3, 21, 9), "ra", category="books"),
    event("e4", "A1", ts(2025, 3, 21, 9, 10), "purchase", "va1", "earlier_login", ts(2025, 3, 21, 9), "ra", category="books"),
    event("e5", None, ts(2025, 3, 22, 9), "page_view", "vanon", "anonymous", None, "ra"),
    login("e6", "B1", ts(2024, 11, 20, 9), "vb1", "rb"),
]
TICKETS = [
    ("t1", "ra", "A2", ts(2025, 3, 10, 9), 5),
    ("t2", "ra", "A1", ts(2025, 4, 3, 9), 1),  # after the cut-off
    ("t3", "rb", "B2", ts(2024, 12, 15, 9), None),
]


@pytest.fixture(scope="session")
def features(spark):
    """customer_features of the shared data set (ra: windows 30/90, rb: 30/90/180)."""
    df = customer_features(
        frame(spark, CUSTOMERS, CUSTOMERS_SCHEMA),
        frame(spark, ORDERS, ORDERS_SCHEMA),
        frame(spark, EVENTS, EVENTS_SCHEMA),
        frame(spark, TICKETS, TICKETS_SCHEMA),
        as_of=FEATURES_AS_OF,
        region_windows=REGION_WINDOWS,
        timeout_minutes=TIMEOUTS,
        settings=SETTINGS,
    ).localCheckpoint(eager=True)
    yield df
    df.unpersist()
