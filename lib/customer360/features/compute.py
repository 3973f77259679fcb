"""Behavioural features as of a date: pure transforms over silver facts.

Nothing after the as-of date is used: every input is cut at the end of the as-of day (UTC) before
anything is computed, web events also need the login that attributed them (``stitched_at``) before
the cut-off, and statistics over the region (bulk-order and outlier thresholds, RFM quintiles) are
taken over the cut data. Windows are ``(as_of - w days, as_of]`` in whole UTC days.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from customer360.config import BotRule, FeaturesConfig
from customer360.facts.web_events import flag_bot_sessions, sessionize
from customer360.features.registry import expand, feature_parameters, feature_set_version

KEYS = ("region", "customer_id")
#: a ticket rated at most this (1-5) ended badly for the customer
LOW_SATISFACTION = 2


def cutoff(as_of: date) -> datetime:
    """The first instant after the as-of day: facts must lie strictly before it."""
    return datetime.combine(as_of + timedelta(days=1), time(), tzinfo=timezone.utc)


def _ts(value: datetime) -> Column:
    return F.lit(value).cast("timestamp")


def _since(as_of: date, column: str) -> Column:
    return F.datediff(F.lit(as_of), F.to_date(F.col(column)))


def with_robust_z(df: DataFrame, value: str, out: str, *, over: Sequence[str] = ("region",)) -> DataFrame:
    """Adds ``out``, the modified z-score of ``value`` within each group of ``over`` (null values
    get a null score and do not count)."""
    group = Window.partitionBy(*over)
    x = F.col(value).cast("double")
    df = df.withColumn("_median", F.median(x).over(group))
    dev = F.abs(x - F.col("_median"))
    df = df.withColumn("_mad", F.median(dev).over(group)).withColumn("_meanad", F.avg(dev).over(group))
    z = (
        F.when(F.col("_mad") > 0, 0.6745 * (x - F.col("_median")) / F.col("_mad"))
        .when(F.col("_meanad") > 0, (x - F.col("_median")) / (1.253314 * F.col("_meanad")))
        .otherwise(F.when(x.isNotNull(), F.lit(0.0)))
    )
    return df.withColumn(out, z).drop("_median", "_mad", "_meanad")


def order_features(orders: DataFrame, *, as_of: date, windows: Sequence[int], outlier_z: float) -> DataFrame:
    """Per customer: recency, frequency/monetary per window, trends, totals, AOV, bulk orders,
    first order, inter-purchase interval, category mix. ``orders`` is ``silver.orders``."""
    end = cutoff(as_of)
    lines = orders.where(F.col("ordered_at") < _ts(end))
    per_order = lines.groupBy(*KEYS, "order_id").agg(
        F.min("ordered_at").alias("order_ts"),
        F.sum("net_amount").alias("order_net"),
        F.sum("quantity").alias("order_quantity"),
    )
    per_order = with_robust_z(per_order, "order_quantity", "_qz").withColumn("is_bulk", F.col("_qz") > outlier_z).drop("_qz")
    aggs: list[Column] = [
        F.max("order_ts").alias("_last_order_ts"),
        F.min("order_ts").alias("_first_order_ts"),
        F.count(F.lit(1)).alias("orders_total"),
        F.sum("order_net").cast("double").alias("net_revenue_total"),
        F.round(F.avg(F.when(~F.col("is_bulk"), F.col("order_net"))).cast("double"), 2).alias("avg_order_value"),
        F.sum(F.col("is_bulk").cast("long")).alias("bulk_orders"),
        F.countDistinct(F.to_date("order_ts")).alias("_order_days"),
    ]
    for w in sorted(set(windows)):
        start, before = _ts(end - timedelta(days=w)), _ts(end - timedelta(days=2 * w))
        current = F.col("order_ts") >= start
        previous = (F.col("order_ts") >= before) & (F.col("order_ts") < start)
        aggs += [
            F.count(F.when(current, 1)).alias(f"frequency_{w}d"),
            F.coalesce(F.sum(F.when(current, F.col("order_net"))), F.lit(0)).cast("double").alias(f"monetary_{w}d"),
            F.count(F.when(previous, 1)).alias(f"_prev_frequency_{w}d"),
            F.coalesce(F.sum(F.when(previous, F.col("order_net"))), F.lit(0)).cast("double").alias(f"_prev_monetary_{w}d"),
        ]
    out = per_order.groupBy(*KEYS).agg(*aggs)
    for w in sorted(set(windows)):
        for kind in ("frequency", "monetary"):
            prev = F.col(f"_prev_{kind}_{w}d")
            out = out.withColumn(f"{kind}_trend_{w}d", F.when(prev > 0, F.round(F.col(f"{kind}_{w}d") / prev, 4)))
        out = out.drop(f"_prev_frequency_{w}d", f"_prev_monetary_{w}d")
    out = (
        out.withColumn("recency_days", _since(as_of, "_last_order_ts"))
        .withColumn("first_order_date", F.to_date("_first_order_ts"))
        .withColumn(
            "mean_interpurchase_days",
            F.when(
                F.col("_order_days") >= 2,
                F.round(F.datediff(F.to_date("_last_order_ts"), F.to_date("_first_order_ts")) / (F.col("_order_days") - 1), 2),
            ),
        )
        .drop("_last_order_ts", "_order_days")
        .withColumnRenamed("_first_order_ts", "first_order_ts")
    )
    return out.join(category_mix(lines), list(KEYS), "left")


def category_mix(lines: DataFrame) -> DataFrame:
    """Top category and Shannon entropy (bits) of net revenue over categories, per customer."""
    spend = (
        lines.where(F.col("product_category").isNotNull())
        .groupBy(*KEYS, "product_category")
        .agg(F.sum("net_amount").cast("double").alias("_spend"))
        .where(F.col("_spend") > 0)
    )
    customer = Window.partitionBy(*KEYS)
    ranked = spend.withColumn("_share", F.col("_spend") / F.sum("_spend").over(customer)).withColumn(
        "_rank", F.row_number().over(customer.orderBy(F.desc("_spend"), F.asc("product_category")))
    )
    return ranked.groupBy(*KEYS).agg(
        F.max(F.when(F.col("_rank") == 1, F.col("product_category"))).alias("top_category"),
        F.round(F.abs(-F.sum(F.col("_share") * F.log2(F.col("_share")))), 4).alias("category_entropy"),
    )


def web_features(
    events: DataFrame, *, as_of: date, windows: Sequence[int], timeout_minutes: Mapping[str, int] | int, bot: BotRule
) -> DataFrame:
    """Per customer: sessions, pages per session, session length, active days, view-to-purchase.

    Sessions and bot flags are recomputed from the events before the cut-off (a session that
    straddles the as-of date is cut there); only attributed, non-bot events count.
    """
    end = _ts(cutoff(as_of))
    seen = events.where(F.col("event_ts") < end).drop("session_id", "session_start", "is_bot_session")
    flagged = flag_bot_sessions(sessionize(seen, timeout_minutes=timeout_minutes), bot)
    mine = flagged.where(
        F.col("customer_id").isNotNull() & F.col("stitched_at").isNotNull() & (F.col("stitched_at") < end) & ~F.col("is_bot_session")
    )
    sessions = mine.groupBy(*KEYS, "session_id").agg(
        F.min("event_ts").alias("_start"),
        ((F.max(F.unix_micros("event_ts")) - F.min(F.unix_micros("event_ts"))) / 1e6).alias("_seconds"),
        F.count(F.when(F.col("event_type").isin("page_view", "product_view"), 1)).alias("_pages"),
        F.max((F.col("event_type") == "product_view").cast("int")).alias("_viewed"),
        F.max((F.col("event_type") == "purchase").cast("int")).alias("_bought"),
    )
    aggs: list[Column] = [F.count(F.lit(1)).alias("sessions_total")]
    day_aggs: list[Column] = [F.min("event_ts").alias("first_web_ts")]
    for w in sorted(set(windows)):
        start = _ts(cutoff(as_of) - timedelta(days=w))
        inside = F.col("_start") >= start
        n = F.count(F.when(inside, 1))
        before = F.count(F.when((F.col("_start") >= _ts(cutoff(as_of) - timedelta(days=2 * w))) & ~inside, 1))
        viewed = F.sum(F.when(inside, F.col("_viewed")))
        aggs += [
            n.alias(f"sessions_{w}d"),
            F.when(before > 0, F.round(n / before, 4)).alias(f"sessions_trend_{w}d"),
            F.when(n > 0, F.round(F.sum(F.when(inside, F.col("_pages"))) / n, 4)).alias(f"pages_per_session_{w}d"),
            F.round(F.avg(F.when(inside, F.col("_seconds"))), 2).alias(f"avg_session_seconds_{w}d"),
            F.when(viewed > 0, F.round(F.sum(F.when(inside, F.col("_viewed") * F.col("_bought"))) / viewed, 4)).alias(f"view_to_purchase_{w}d"),
        ]
        day_aggs.append(F.countDistinct(F.when(F.col("event_ts") >= start, F.to_date("event_ts"))).alias(f"active_days_{w}d"))
    return sessions.groupBy(*KEYS).agg(*aggs).join(mine.groupBy(*KEYS).agg(*day_aggs), list(KEYS), "outer")


def ticket_features(tickets: DataFrame, *, as_of: date, windows: Sequence[int]) -> DataFrame:
    """Per customer: tickets per window, days since the last ticket, mean satisfaction."""
    end = cutoff(as_of)
    seen = tickets.where(F.col("opened_at") < _ts(end))
    aggs = [
        F.min("opened_at").alias("first_ticket_ts"),
        F.max("opened_at").alias("_last_ticket_ts"),
        F.round(F.avg("satisfaction"), 4).alias("avg_satisfaction"),
    ]
    for w in sorted(set(windows)):
        inside = F.col("opened_at") >= _ts(end - timedelta(days=w))
        aggs.append(F.count(F.when(inside, 1)).alias(f"tickets_{w}d"))
        aggs.append(F.count(F.when(inside & (F.col("satisfaction") <= LOW_SATISFACTION), 1)).alias(f"low_rated_tickets_{w}d"))
    return (
        seen.groupBy(*KEYS)
        .agg(*aggs)
        .withColumn("ticket_recency_days", _since(as_of, "_last_ticket_ts"))
        .drop("_last_ticket_ts")
    )


def with_cadence(df: DataFrame, windows: Sequence[int]) -> DataFrame:
    """The customer's recent pace against their own: their order rate over their tenure
    (``orders_per_year``, a tenure under 30 days counting as 30), time since the last order in
    units of their usual gap (``overdue_ratio``), and each window's order and session rate over their rate across
    their whole tenure (1 = as usual, 0 = stopped). Needs the totals, the window counts and
    ``tenure_days``; a tenure shorter than the window counts as the window."""
    df = df.withColumn(
        "overdue_ratio",
        F.when(F.col("mean_interpurchase_days") > 0, F.round(F.col("recency_days") / F.col("mean_interpurchase_days"), 4)),
    ).withColumn(
        "orders_per_year",
        F.when(F.col("orders_total") > 0, F.round(F.col("orders_total") * 365.0 / F.greatest(F.col("tenure_days"), F.lit(30)), 4)),
    )
    for w in windows:
        days = F.greatest(F.col("tenure_days"), F.lit(w)).cast("double")
        for name, count, total in (("order", "frequency", "orders_total"), ("session", "sessions", "sessions_total")):
            recent = F.col(f"{count}_{w}d") / w
            df = df.withColumn(f"{name}_rate_ratio_{w}d", F.when(F.col(total) > 0, F.round(recent / (F.col(total) / days), 4)))
    return df


def _score(value: str, *, descending: bool = False) -> Column:
    """1-5 quintile score of ``value`` within the region among rows where it is not null; ties share a score."""
    order = F.col(value).desc() if descending else F.col(value).asc()
    rank = F.percent_rank().over(Window.partitionBy("region", F.col(value).isNull()).orderBy(order))
    return F.when(F.col(value).isNotNull(), F.least(F.lit(5), (F.floor(rank * 5) + 1).cast("int")))


def with_rfm(df: DataFrame, *, frequency: Column, monetary: Column) -> DataFrame:
    """RFM quintile scores within the region for customers with orders (null for the others):
    recency from ``recency_days``, frequency and monetary from the given columns."""
    has_orders = F.col("orders_total") > 0
    df = (
        df.withColumn("_r", F.when(has_orders, F.col("recency_days")))
        .withColumn("_f", F.when(has_orders, frequency))
        .withColumn("_m", F.when(has_orders, monetary))
    )
    df = (
        df.withColumn("rfm_recency_score", _score("_r", descending=True))
        .withColumn("rfm_frequency_score", _score("_f"))
        .withColumn("rfm_monetary_score", _score("_m"))
    )
    code = F.concat(*[F.col(c).cast("string") for c in ("rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score")])
    return df.withColumn("rfm_score", code).drop("_r", "_f", "_m")


#: the windowed features: a region's windows it does not configure are null
WINDOWED = (
    "frequency", "monetary", "frequency_trend", "monetary_trend", "order_rate_ratio", "sessions", "sessions_trend",
    "session_rate_ratio", "pages_per_session", "avg_session_seconds", "active_days", "view_to_purchase", "tickets",
    "low_rated_tickets",
)


def customer_features(
    customers: DataFrame,
    orders: DataFrame,
    events: DataFrame,
    tickets: DataFrame,
    *,
    as_of: date,
    region_windows: Mapping[str, Sequence[int]],
    timeout_minutes: Mapping[str, int],
    settings: FeaturesConfig,
) -> DataFrame:
    """One row per customer known by the as-of date, with every registered feature.

    ``customers`` has region, customer_id, first_seen (``silver.customer_golden``); the facts are
    silver.orders, silver.web_events and silver.support_tickets. Regions may configure different
    windows: the frame has the union of columns and a region's unconfigured windows are null.
    """
    end = _ts(cutoff(as_of))
    windows = sorted({w for ws in region_windows.values() for w in ws})
    regions = sorted(region_windows)
    in_regions = F.col("region").isin(*regions)
    by_orders = order_features(orders.where(in_regions), as_of=as_of, windows=windows, outlier_z=settings.outlier_z)
    by_web = web_features(events.where(in_regions), as_of=as_of, windows=windows, timeout_minutes=timeout_minutes, bot=settings.bot)
    by_tickets = ticket_features(tickets.where(in_regions), as_of=as_of, windows=windows)
    known = customers.where(in_regions & (F.col("first_seen") < end)).select(*KEYS, "first_seen")
    universe = (
        known.select(*KEYS)
        .unionByName(by_orders.select(*KEYS))
        .unionByName(by_web.select(*KEYS))
        .unionByName(by_tickets.select(*KEYS))
        .distinct()
    )
    df = (
        universe.join(known, list(KEYS), "left")
        .join(by_orders, list(KEYS), "left")
        .join(by_web, list(KEYS), "left")
        .join(by_tickets, list(KEYS), "left")
    )
    counts = ["orders_total", "bulk_orders", "sessions_total"] + [
        f"{name}_{w}d" for w in windows for name in ("frequency", "sessions", "active_days", "tickets", "low_rated_tickets")
    ]
    df = df.fillna(0, subset=counts).fillna(0.0, subset=["net_revenue_total"] + [f"monetary_{w}d" for w in windows])
    first = F.least(*[F.col(c) for c in ("first_seen", "first_order_ts", "first_web_ts", "first_ticket_ts")])
    df = df.withColumn("tenure_days", F.datediff(F.lit(as_of), F.to_date(first)))
    df = with_cadence(df, windows)
    cold = settings.cold_start
    df = df.withColumn(
        "is_cold_start", (F.col("orders_total") < cold.min_orders) | F.coalesce(F.col("tenure_days") < cold.min_tenure_days, F.lit(True))
    )
    # RFM and the revenue outlier use each region's own longest window
    longest = {code: max(ws) for code, ws in region_windows.items()}
    by_region = lambda values: F.coalesce(*[F.when(F.col("region") == c, F.col(v)) for c, v in sorted(values.items())])  # noqa: E731
    longest_monetary = by_region({c: f"monetary_{w}d" for c, w in longest.items()})
    df = with_rfm(df, frequency=by_region({c: f"frequency_{w}d" for c, w in longest.items()}), monetary=longest_monetary)
    # revenue is heavily right-skewed: the z-score is taken on log1p(revenue)
    spenders = df.where(longest_monetary > 0).select(*KEYS, F.log1p(longest_monetary).alias("_m"))
    spenders = with_robust_z(spenders, "_m", "_mz").select(*KEYS, (F.col("_mz") > settings.outlier_z).alias("is_monetary_outlier"))
    df = df.join(spenders, list(KEYS), "left").withColumn("is_monetary_outlier", F.coalesce("is_monetary_outlier", F.lit(False)))
    # a region's windows it does not configure are null
    for w in windows:
        without = [c for c, ws in region_windows.items() if w not in ws]
        if without:
            for name in WINDOWED:
                column = f"{name}_{w}d"
                df = df.withColumn(column, F.when(~F.col("region").isin(*without), F.col(column)))
    versions = {
        code: feature_set_version(expand(ws), feature_parameters(settings, session_timeout_minutes=timeout_minutes[code]))
        for code, ws in region_windows.items()
    }
    names = [f.name for f in expand(windows)]
    return df.select(
        "region", "customer_id", F.lit(as_of).alias("as_of_date"),
        F.coalesce(*[F.when(F.col("region") == c, F.lit(v)) for c, v in sorted(versions.items())]).alias("feature_set_version"),
        *[F.col(n) for n in names],
    )
