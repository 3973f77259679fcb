"""``silver.web_events``: every web event, attached to a customer where a login tells who it was.

Attribution, per visitor (the cookie, else the device), in time order:

* a login event belongs to the customer its login resolved to (``login``);
* any other event belongs to the customer of the visitor's latest earlier login (``earlier_login``),
* else, retroactively, to the customer of the visitor's first later login (``later_login``);
* a visitor that never logged in stays anonymous (customer_id null).

``stitched_at`` is when the attributing login happened. Features as of a date use an event only
if both the event and its ``stitched_at`` lie before the cut-off, so no login after the date
decides anything about the events before it (and later data never changes an earlier attribution).

Sessions: a visitor's events further apart than the region's ``session_timeout_minutes`` start a
new session. A session is bot-like (``features.bot``) when it has very many events, or many events
at a rate no person clicks; its events stay in silver, flagged, and no feature uses them.
"""
from __future__ import annotations

from collections.abc import Mapping

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from customer360.config import BotRule

WEB_EVENTS_COMMENTS = {
    "event_id": "web event id from the source",
    "customer_id": "customer the event is attributed to; null for anonymous visitors",
    "event_ts": "event time, UTC",
    "event_type": "page_view, product_view, add_to_cart, login or purchase",
    "product_category": "category of the product viewed, added or bought",
    "visitor_key": "SHA-256 of the cookie id (else the device id): who the events came from, without the raw id",
    "stitch_rule": "login, earlier_login, later_login or anonymous (see silver.web_events docs)",
    "stitched_at": "time of the login that attributed the event; features as of a date need it before the date",
    "session_id": "visitor_key and session number: events of one visitor less than the timeout apart",
    "session_start": "first event time of the session, UTC",
    "is_bot_session": "the session looks automated (features.bot); left out of every feature",
    "run_id": "pipeline run that wrote the row",
    "region": "region (partition)",
}


def visitor_key() -> Column:
    """A pseudonymous visitor: the cookie, else the device; null when the event has neither."""
    raw = F.coalesce(F.concat(F.lit("cookie:"), F.col("cookie_id")), F.concat(F.lit("device:"), F.col("device_id")))
    return F.substring(F.sha2(raw, 256), 1, 32)


def stitch_events(events: DataFrame, logins: DataFrame) -> DataFrame:
    """Attach ``customer_id``, ``stitch_rule`` and ``stitched_at`` to every event.

    ``events`` has event_id, event_ts, event_type, visitor_key, region; ``logins`` has region,
    event_id, customer_id of the events the identity stage resolved (the logins).
    """
    with_login = events.join(
        logins.select("region", "event_id", F.col("customer_id").alias("_login_customer")), ["region", "event_id"], "left"
    )
    # a visitor-less event is its own partition: nothing else can be attributed through it
    visitor = F.coalesce(F.col("visitor_key"), F.concat(F.lit("event:"), F.col("event_id")))
    ordered = Window.partitionBy("region", visitor).orderBy("event_ts", "event_id")
    before = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    after = ordered.rowsBetween(Window.currentRow, Window.unboundedFollowing)
    login_ts = F.when(F.col("_login_customer").isNotNull(), F.col("event_ts"))
    stitched = (
        with_login.withColumn("_prev_customer", F.last("_login_customer", ignorenulls=True).over(before))
        .withColumn("_prev_ts", F.last(login_ts, ignorenulls=True).over(before))
        .withColumn("_next_customer", F.first("_login_customer", ignorenulls=True).over(after))
        .withColumn("_next_ts", F.first(login_ts, ignorenulls=True).over(after))
    )
    rule = (
        F.when(F.col("_login_customer").isNotNull(), F.lit("login"))
        .when(F.col("_prev_customer").isNotNull(), F.lit("earlier_login"))
        .when(F.col("_next_customer").isNotNull(), F.lit("later_login"))
        .otherwise(F.lit("anonymous"))
    )
    return (
        stitched.withColumn("stitch_rule", rule)
        .withColumn("customer_id", F.coalesce("_login_customer", "_prev_customer", "_next_customer"))
        .withColumn(
            "stitched_at",
            F.when(F.col("stitch_rule") == "login", F.col("event_ts"))
            .when(F.col("stitch_rule") == "earlier_login", F.col("_prev_ts"))
            .when(F.col("stitch_rule") == "later_login", F.col("_next_ts")),
        )
        .drop("_login_customer", "_prev_customer", "_prev_ts", "_next_customer", "_next_ts")
    )


def sessionize(events: DataFrame, *, timeout_minutes: Mapping[str, int] | int) -> DataFrame:
    """Adds ``session_id`` and ``session_start``: a visitor's events with gaps up to the timeout.

    ``timeout_minutes`` is one value or one per region. Events without a visitor are sessions of
    their own.
    """
    # microseconds: a gap of the timeout plus half a second is longer than the timeout
    if isinstance(timeout_minutes, int):
        timeout = F.lit(timeout_minutes * 60_000_000)
    else:
        timeout = F.coalesce(
            *[F.when(F.col("region") == c, F.lit(m * 60_000_000)) for c, m in sorted(timeout_minutes.items())], F.lit(30 * 60_000_000)
        )
    visitor = F.coalesce(F.col("visitor_key"), F.concat(F.lit("event:"), F.col("event_id")))
    ordered = Window.partitionBy("region", visitor).orderBy("event_ts", "event_id")
    gap = F.unix_micros("event_ts") - F.lag(F.unix_micros("event_ts")).over(ordered)
    starts = F.when(gap.isNull() | (gap > timeout), 1).otherwise(0)
    numbered = events.withColumn("_starts", starts).withColumn(
        "_session_no", F.sum("_starts").over(ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow))
    )
    session = Window.partitionBy("region", visitor, "_session_no")
    return (
        numbered.withColumn("session_id", F.concat(visitor, F.lit("-"), F.col("_session_no").cast("string")))
        .withColumn("session_start", F.min("event_ts").over(session))
        .drop("_starts", "_session_no")
    )


def flag_bot_sessions(sessions: DataFrame, rule: BotRule) -> DataFrame:
    """Adds ``is_bot_session`` to sessionized events (one value for all events of a session)."""
    session = Window.partitionBy("region", "session_id")
    events = F.count(F.lit(1)).over(session)
    seconds = (F.max(F.unix_micros("event_ts")).over(session) - F.min(F.unix_micros("event_ts")).over(session)) / 1e6
    per_minute = events / F.greatest(seconds / 60.0, F.lit(1.0))
    bot = (events >= rule.max_session_events) | ((events >= rule.min_events) & (per_minute > rule.max_events_per_minute))
    return sessions.withColumn("is_bot_session", bot)


def silver_web_events(
    bronze: DataFrame, xref: DataFrame, *, timeout_minutes: Mapping[str, int], bot: BotRule, run_id: str
) -> DataFrame:
    """Every bronze web event (latest version), stitched, sessionized and bot-flagged; no raw ids."""
    logins = xref.where(F.col("source") == "web_events").select(
        "region", F.col("source_record_id").alias("event_id"), "customer_id"
    )
    events = bronze.select("event_id", "event_ts", "event_type", "product_category", visitor_key().alias("visitor_key"), "region")
    stitched = stitch_events(events, logins)
    flagged = flag_bot_sessions(sessionize(stitched, timeout_minutes=timeout_minutes), bot)
    return flagged.select(
        "event_id", "customer_id", "event_ts", "event_type", "product_category", "visitor_key", "stitch_rule",
        "stitched_at", "session_id", "session_start", "is_bot_session", F.lit(run_id).alias("run_id"), "region",
    )
