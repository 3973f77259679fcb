"""silver.web_events: login stitching per visitor, sessions per region timeout, bot flags, no raw ids."""
from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta, timezone

from chispa import assert_df_equality

from customer360.config import BotRule
from customer360.facts.web_events import flag_bot_sessions, sessionize, silver_web_events, stitch_events

EVENTS_SCHEMA = "event_id string, event_ts timestamp, event_type string, visitor_key string, region string"
LOGINS_SCHEMA = "region string, event_id string, customer_id string"
STITCHED_SCHEMA = EVENTS_SCHEMA + ", stitch_rule string, customer_id string, stitched_at timestamp"
SESSION_INPUT_SCHEMA = "event_id string, event_ts timestamp, visitor_key string, region string"
SESSIONS_SCHEMA = SESSION_INPUT_SCHEMA + ", session_id string, session_start timestamp"
BOT_INPUT_SCHEMA = "region string, session_id string, event_id string, event_ts timestamp"


def at(hour: int, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2025, 6, 1, hour, minute, second, microsecond, tzinfo=timezone.utc)


def key(raw: str) -> str:
    """The documented visitor key, computed independently: first 32 hex digits of SHA-256."""
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


V1, V2 = "v1" * 16, "v2" * 16

# --------------------------------------------------------------------------- stitching

EVENTS = [
    # visitor V1 in us: logs in as CA at 10:10, as CB at 10:30
    ("e01", at(10, 0), "page_view", V1, "us"),
    ("e02", at(10, 5), "product_view", V1, "us"),
    ("e03", at(10, 10), "login", V1, "us"),
    ("e04", at(10, 20), "page_view", V1, "us"),
    ("e05", at(10, 30), "login", V1, "us"),
    ("e06", at(10, 40), "purchase", V1, "us"),
    # visitor V2 never logs in (a login of its event e07 in another region does not count)
    ("e07", at(10, 0), "page_view", V2, "us"),
    ("e08", at(10, 1), "page_view", V2, "us"),
    # the same visitor key in another region is another visitor
    ("e09", at(9, 0), "page_view", V1, "de"),
    # events without a visitor: only a login attributes itself
    ("e10", at(11, 0), "login", None, "us"),
    ("e11", at(11, 5), "page_view", None, "us"),
    ("e12", at(10, 55), "page_view", None, "us"),
]
LOGINS = [
    ("us", "e03", "CA"),
    ("us", "e05", "CB"),
    ("us", "e10", "CC"),
    ("de", "e07", "CZ"),
]


def test_stitch_events_attributes_by_login_order(spark):
    got = stitch_events(spark.createDataFrame(EVENTS, EVENTS_SCHEMA), spark.createDataFrame(LOGINS, LOGINS_SCHEMA))
    expected = spark.createDataFrame(
        [
            ("e01", at(10, 0), "page_view", V1, "us", "later_login", "CA", at(10, 10)),
            ("e02", at(10, 5), "product_view", V1, "us", "later_login", "CA", at(10, 10)),
            ("e03", at(10, 10), "login", V1, "us", "login", "CA", at(10, 10)),
            # between the two logins: the earlier login's customer
            ("e04", at(10, 20), "page_view", V1, "us", "earlier_login", "CA", at(10, 10)),
            ("e05", at(10, 30), "login", V1, "us", "login", "CB", at(10, 30)),
            ("e06", at(10, 40), "purchase", V1, "us", "earlier_login", "CB", at(10, 30)),
            ("e07", at(10, 0), "page_view", V2, "us", "anonymous", None, None),
            ("e08", at(10, 1), "page_view", V2, "us", "anonymous", None, None),
            ("e09", at(9, 0), "page_view", V1, "de", "anonymous", None, None),
            ("e10", at(11, 0), "login", None, "us", "login", "CC", at(11, 0)),
            ("e11", at(11, 5), "page_view", None, "us", "anonymous", None, None),
            ("e12", at(10, 55), "page_view", None, "us", "anonymous", None, None),
        ],
        STITCHED_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------- sessions

SESSION_EVENTS = [
    # us (timeout 30 min): a gap of exactly 30 min stays, 30 min 1 s starts a new session
    ("a1", at(12, 0), V1, "us"),
    ("a2", at(12, 30), V1, "us"),
    ("a3", at(13, 0, 1), V1, "us"),
    ("a4", at(13, 9, 59), V1, "us"),
    # de (timeout 10 min): exactly 10 min stays, 15 min splits (it would not under 30)
    ("b1", at(12, 0), V1, "de"),
    ("b2", at(12, 10), V1, "de"),
    ("b3", at(12, 25), V1, "de"),
    # fr has no configured timeout: 30 min
    ("c1", at(12, 0), V2, "fr"),
    ("c2", at(12, 25), V2, "fr"),
    # no visitor: a session per event
    ("n1", at(12, 0), None, "us"),
    ("n2", at(12, 1), None, "us"),
]


def test_sessionize_splits_on_gaps_longer_than_the_region_timeout(spark):
    got = sessionize(spark.createDataFrame(SESSION_EVENTS, SESSION_INPUT_SCHEMA), timeout_minutes={"us": 30, "de": 10})
    expected = spark.createDataFrame(
        [
            ("a1", at(12, 0), V1, "us", f"{V1}-1", at(12, 0)),
            ("a2", at(12, 30), V1, "us", f"{V1}-1", at(12, 0)),
            ("a3", at(13, 0, 1), V1, "us", f"{V1}-2", at(13, 0, 1)),
            ("a4", at(13, 9, 59), V1, "us", f"{V1}-2", at(13, 0, 1)),
            ("b1", at(12, 0), V1, "de", f"{V1}-1", at(12, 0)),
            ("b2", at(12, 10), V1, "de", f"{V1}-1", at(12, 0)),
            ("b3", at(12, 25), V1, "de", f"{V1}-2", at(12, 25)),
            ("c1", at(12, 0), V2, "fr", f"{V2}-1", at(12, 0)),
            ("c2", at(12, 25), V2, "fr", f"{V2}-1", at(12, 0)),
            ("n1", at(12, 0), None, "us", "event:n1-1", at(12, 0)),
            ("n2", at(12, 1), None, "us", "event:n2-1", at(12, 1)),
        ],
        SESSIONS_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_sessionize_with_one_timeout_for_every_region(spark):
    us = [row for row in SESSION_EVENTS if row[0].startswith("a")]
    got = sessionize(spark.createDataFrame(us, SESSION_INPUT_SCHEMA), timeout_minutes=10)
    expected = spark.createDataFrame(
        [
            ("a1", at(12, 0), V1, "us", f"{V1}-1", at(12, 0)),
            ("a2", at(12, 30), V1, "us", f"{V1}-2", at(12, 30)),
            ("a3", at(13, 0, 1), V1, "us", f"{V1}-3", at(13, 0, 1)),
            ("a4", at(13, 9, 59), V1, "us", f"{V1}-3", at(13, 0, 1)),  # 9 min 58 s later
        ],
        SESSIONS_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_sessionize_counts_sub_second_gaps(spark):
    """Events 30 min 0.5 s apart are further apart than a 30-minute timeout: a new session."""
    rows = [("s1", at(12, 0, 0, 0), V1, "us"), ("s2", at(12, 30, 0, 500_000), V1, "us")]
    got = sessionize(spark.createDataFrame(rows, SESSION_INPUT_SCHEMA), timeout_minutes=30)
    expected = spark.createDataFrame(
        [
            ("s1", at(12, 0, 0, 0), V1, "us", f"{V1}-1", at(12, 0, 0, 0)),
            ("s2", at(12, 30, 0, 500_000), V1, "us", f"{V1}-2", at(12, 30, 0, 500_000)),
        ],
        SESSIONS_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------- bots

RULE = BotRule(max_session_events=10, min_events=4, max_events_per_minute=2.0)


def _session(region: str, session_id: str, offsets_seconds: list[int]) -> list[tuple]:
    start = at(8)
    return [(region, session_id, f"{session_id}-{i}", start + timedelta(seconds=s)) for i, s in enumerate(offsets_seconds)]


BOT_CASES = {
    # (region, session): (event offsets in seconds, bot?)
    ("us", "big"): ([600 * i for i in range(10)], True),  # 10 events >= max_session_events, slow
    ("us", "slow"): ([600 * i for i in range(9)], False),  # 9 events over 80 min
    ("us", "fast"): ([0, 20, 40, 60], True),  # 4 events in 1 min: 4/min > 2
    ("us", "short_fast"): ([0, 1, 2], False),  # 3/min, but fewer than min_events
    ("us", "at_rate"): ([0, 40, 80, 120], False),  # 4 events in 2 min: exactly 2/min is not more
    ("us", "burst"): ([0, 5, 10, 15], True),  # 15 s: the rate is per minute at least, 4/min
    ("de", "fast"): ([0], False),  # same session id in another region: one event
}


def test_flag_bot_sessions(spark):
    rows = [row for (region, sid), (offsets, _) in BOT_CASES.items() for row in _session(region, sid, offsets)]
    got = flag_bot_sessions(spark.createDataFrame(rows, BOT_INPUT_SCHEMA), RULE)
    expected = spark.createDataFrame(
        [(*row, BOT_CASES[(row[0], row[1])][1]) for row in rows], BOT_INPUT_SCHEMA + ", is_bot_session boolean"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------- silver.web_events

BRONZE_SCHEMA = (
    "event_id string, event_ts timestamp, event_type string, product_category string, cookie_id string, "
    "device_id string, region string"
)
OUTPUT_COLUMNS = [
    "event_id", "customer_id", "event_ts", "event_type", "product_category", "visitor_key", "stitch_rule",
    "stitched_at", "session_id", "session_start", "is_bot_session", "run_id", "region",
]


def test_silver_web_events_keeps_every_event_without_raw_ids(spark):
    bronze = spark.createDataFrame(
        [
            ("w1", at(10, 0), "page_view", None, "ck-1", "dv-9", "us"),
            ("w2", at(10, 5), "login", None, "ck-1", None, "us"),
            ("w3", at(10, 6), "product_view", "toys", None, "dv-9", "us"),  # device visitor: not the cookie's
            ("w4", at(10, 7), "page_view", None, None, None, "us"),
            ("w5", at(11, 0), "purchase", "toys", "ck-1", "dv-9", "us"),  # 55 min later: new session
        ],
        BRONZE_SCHEMA,
    )
    xref = spark.createDataFrame(
        [("us", "web_events", "w2", "C1"), ("us", "orders", "w3", "C9")],
        "region string, source string, source_record_id string, customer_id string",
    )
    got = silver_web_events(bronze, xref, timeout_minutes={"us": 30}, bot=BotRule(), run_id="run-1")

    cookie, device = key("cookie:ck-1"), key("device:dv-9")
    expected = spark.createDataFrame(
        [
            ("w1", "C1", at(10, 0), "page_view", None, cookie, "later_login", at(10, 5), f"{cookie}-1", at(10, 0), False, "run-1", "us"),
            ("w2", "C1", at(10, 5), "login", None, cookie, "login", at(10, 5), f"{cookie}-1", at(10, 0), False, "run-1", "us"),
            ("w3", None, at(10, 6), "product_view", "toys", device, "anonymous", None, f"{device}-1", at(10, 6), False, "run-1", "us"),
            ("w4", None, at(10, 7), "page_view", None, None, "anonymous", None, "event:w4-1", at(10, 7), False, "run-1", "us"),
            ("w5", "C1", at(11, 0), "purchase", "toys", cookie, "earlier_login", at(10, 5), f"{cookie}-2", at(11, 0), False, "run-1", "us"),
        ],
        "event_id string, customer_id string, event_ts timestamp, event_type string, product_category string, "
        "visitor_key string, stitch_rule string, stitched_at timestamp, session_id string, session_start timestamp, "
        "is_bot_session boolean, run_id string, region string",
    )
    assert got.columns == OUTPUT_COLUMNS
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    rows = got.collect()
    assert Counter(r.event_id for r in rows) == Counter({"w1": 1, "w2": 1, "w3": 1, "w4": 1, "w5": 1})
    values = [str(v) for r in rows for v in r if v is not None]
    assert not [v for v in values if "ck-1" in v or "dv-9" in v]
