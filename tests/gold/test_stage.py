"""The facts and gold stages end to end on generated data: accounting, bot flags against the
generator's truth, descriptions on every gold column, exact reconciliation, and region replacement."""
from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pyspark.sql.functions as F
import pytest

from customer360 import tables
from customer360.facts import stage as facts
from customer360.features.registry import expand, feature_parameters, feature_set_version
from customer360.gold import stage as gold


pytestmark = pytest.mark.slow

from tests.conftest import SAMPLE_REGIONS as REGIONS
GOLD_TABLES = (
    tables.CUSTOMER_FEATURES, tables.FEATURE_REGISTRY, tables.CUSTOMER_360,
    tables.REVENUE_MONTHLY, tables.COHORT_RETENTION, tables.CUSTOMER_VALUE,
)
SILVER_FACTS = (tables.SILVER_ORDERS, tables.SILVER_WEB_EVENTS, tables.SILVER_TICKETS, tables.SILVER_CONSENT)


@pytest.fixture(scope="module")
def built(pipeline_sample):
    return pipeline_sample


def test_every_bronze_row_lands_in_silver_or_the_quarantine(built):
    ctx, _, result, _ = built
    lh = ctx.lakehouse
    assert result.errors == []
    quarantine = lh.read(tables.SILVER_QUARANTINE)
    for source, table, key in (
        ("orders", tables.SILVER_ORDERS, "order_line_id"),
        ("web_events", tables.SILVER_WEB_EVENTS, "event_id"),
        ("support_tickets", tables.SILVER_TICKETS, "ticket_id"),
        ("consent", tables.SILVER_CONSENT, "consent_event_id"),
    ):
        bronze_ids = {r[0] for r in lh.read(f"bronze.{source}").select(key).collect()}
        silver_ids = [r[0] for r in lh.read(table).select(key).collect()]
        quarantined = [r[0] for r in quarantine.where(F.col("source") == source).select("record_id").collect()]
        assert len(silver_ids) == len(set(silver_ids))
        assert set(silver_ids) | set(quarantined) == bronze_ids and not set(silver_ids) & set(quarantined)
        assert f"{source}: {len(bronze_ids):,} rows = {len(silver_ids):,} in {table}" in "\n".join(result.lines)
    # every identity-resolved row has its customer; only rates can be missing, and the sample has them all
    assert quarantine.count() == 0
    assert lh.read(tables.SILVER_ORDERS).where("customer_id IS NULL OR fx_rate IS NULL").count() == 0


def test_bot_sessions_are_exactly_the_generated_crawlers(built, spark):
    ctx, data, _, _ = built
    bots = spark.read.parquet(str(data.truth / "bot_cookies.parquet")).select(
        F.substring(F.sha2(F.concat(F.lit("cookie:"), "cookie_id"), 256), 1, 32).alias("visitor_key")
    )
    events = ctx.lakehouse.read(tables.SILVER_WEB_EVENTS)
    flagged = events.where("is_bot_session").select("visitor_key").distinct()
    assert sorted(r[0] for r in flagged.collect()) == sorted(r[0] for r in bots.collect())
    assert events.join(bots, "visitor_key").where("NOT is_bot_session").count() == 0
    # raw identifiers never reach silver
    assert not {"cookie_id", "device_id", "login_email"} & set(events.columns)


def test_anonymous_events_are_stitched_through_their_visitor_logins(built):
    ctx, _, _, _ = built
    events = ctx.lakehouse.read(tables.SILVER_WEB_EVENTS)
    rules = {r["stitch_rule"]: r["count"] for r in events.groupBy("stitch_rule").count().collect()}
    assert set(rules) == {"login", "earlier_login", "later_login", "anonymous"}
    assert events.where("customer_id IS NULL").count() == rules["anonymous"]
    assert events.where("stitch_rule = 'earlier_login' AND stitched_at > event_ts").count() == 0
    assert events.where("stitch_rule = 'later_login' AND stitched_at <= event_ts").count() == 0
    # a login event keeps the customer the identity stage gave it
    logins = ctx.lakehouse.read("silver.customer_xref").where("source = 'web_events'")
    mismatched = events.where("stitch_rule = 'login'").join(
        logins.select(F.col("source_record_id").alias("event_id"), F.col("customer_id").alias("xref_customer")), "event_id"
    ).where("customer_id <> xref_customer")
    assert mismatched.count() == 0


def test_every_gold_column_has_a_description(built):
    ctx, _, _, _ = built
    for table in GOLD_TABLES:
        columns = ctx.lakehouse.read(table).columns
        comments = ctx.lakehouse.column_comments(table)
        assert [c for c in columns if not comments.get(c)] == [], table


def test_customer_360_has_one_row_per_golden_customer_and_the_run_features(built):
    ctx, _, _, result = built
    lh = ctx.lakehouse
    c360 = lh.read(tables.CUSTOMER_360)
    golden = lh.read("silver.customer_golden")
    assert c360.count() == golden.count() == c360.select("customer_id").distinct().count()
    assert c360.join(golden, ["region", "customer_id"], "left_anti").count() == 0
    # the default as-of date is the day of the latest fact (UTC)
    ends = [lh.read(t).agg(F.max(c)).first()[0] for t, c in ((tables.SILVER_ORDERS, "ordered_at"), (tables.SILVER_WEB_EVENTS, "event_ts"), (tables.SILVER_TICKETS, "opened_at"))]
    as_of = max(ends).date()
    assert f"features as of {as_of.isoformat()}" in "\n".join(result.lines)
    features = lh.read(tables.CUSTOMER_FEATURES)
    assert {r[0] for r in features.select("as_of_date").distinct().collect()} == {as_of}
    windows = {code: ctx.config.regions[code].feature_windows_days for code in REGIONS}
    versions = {r["region"]: r["feature_set_version"] for r in features.select("region", "feature_set_version").distinct().collect()}
    parameters = {c: feature_parameters(ctx.config.features, session_timeout_minutes=ctx.config.regions[c].session_timeout_minutes) for c in REGIONS}
    assert versions == {code: feature_set_version(expand(ws), parameters[code]) for code, ws in windows.items()}
    registry = lh.read(tables.FEATURE_REGISTRY)
    assert {(r["region"], r["feature_set_version"]) for r in registry.select("region", "feature_set_version").distinct().collect()} == set(versions.items())
    # the 360 carries the features of exactly these customers; the others were unknown by the date
    joined = c360.where("features_as_of IS NOT NULL").select("region", "customer_id", "orders_total")
    assert joined.count() == features.count()
    assert joined.subtract(features.select("region", "customer_id", "orders_total")).count() == 0
    assert c360.where("segment IS NOT NULL OR churn_score IS NOT NULL").count() == 0


def test_finance_marts_reconcile_exactly_with_silver_orders(built):
    ctx, _, _, _ = built
    lh = ctx.lakehouse
    orders = lh.read(tables.SILVER_ORDERS)
    silver = {
        r["region"]: r
        for r in orders.groupBy("region").agg(
            F.sum("gross_amount").alias("gross"), F.sum("return_amount").alias("returns"),
            F.sum("net_amount").alias("net"), F.countDistinct("customer_id").alias("customers"),
        ).collect()
    }
    for table, gross, returns, net in (
        (tables.REVENUE_MONTHLY, "gross_revenue", "returns", "net_revenue"),
        (tables.CUSTOMER_VALUE, "gross_revenue", "returns", "net_revenue"),
    ):
        mart = {r["region"]: r for r in lh.read(table).groupBy("region").agg(
            F.sum(gross).alias("gross"), F.sum(returns).alias("returns"), F.sum(net).alias("net")).collect()}
        for region in REGIONS:
            assert (mart[region]["gross"], mart[region]["returns"], mart[region]["net"]) == (
                silver[region]["gross"], silver[region]["returns"], silver[region]["net"]), (table, region)
            assert isinstance(mart[region]["net"], Decimal)
    cohorts = lh.read(tables.COHORT_RETENTION)
    for region in REGIONS:
        rows = cohorts.where(F.col("region") == region)
        assert rows.agg(F.sum("net_revenue")).first()[0] == silver[region]["net"]
        assert rows.where("months_since = 0").agg(F.sum("cohort_size")).first()[0] == silver[region]["customers"]
        assert rows.where("months_since = 0 AND active_customers <> cohort_size").count() == 0


def test_a_region_run_replaces_only_that_region(built):
    """Last in the module: it re-runs facts and gold for de only, with another run id and as-of date."""
    ctx, _, _, _ = built
    lh = ctx.lakehouse
    names = (*SILVER_FACTS, *GOLD_TABLES)
    before = {t: lh.read(t).where("region = 'us'").drop("run_id").collect() for t in names}
    de_ctx = dataclasses.replace(ctx, regions=("de",), run_id="run-2", as_of=date(2026, 3, 31))
    assert facts.run(de_ctx).errors == []
    gold.run(de_ctx)
    for table in names:
        runs = {(r["region"], r["run_id"]) for r in lh.read(table).select("region", "run_id").distinct().collect()} if "run_id" in lh.read(table).columns else None
        if runs is not None:
            assert runs == {("us", "run-1"), ("de", "run-2")}, table
        after = lh.read(table).where("region = 'us'").drop("run_id").collect()
        assert sorted(map(tuple, after), key=repr) == sorted(map(tuple, before[table]), key=repr), table
    features = lh.read(tables.CUSTOMER_FEATURES)
    # every version any as-of date carries is still described in the registry
    carried = {(r[0], r[1]) for r in features.select("region", "feature_set_version").distinct().collect()}
    described = {(r[0], r[1]) for r in lh.read(tables.FEATURE_REGISTRY).select("region", "feature_set_version").distinct().collect()}
    assert carried <= described
    dates = {(r["region"], r["as_of_date"]) for r in features.select("region", "as_of_date").distinct().collect()}
    first = next(d for region, d in dates if region == "us")
    assert dates == {("us", first), ("de", first), ("de", date(2026, 3, 31))}
    # the 360 of de now carries the March features; nothing after the as-of date went into them
    c360_de = lh.read(tables.CUSTOMER_360).where("region = 'de'")
    assert {r[0] for r in c360_de.select("features_as_of").distinct().collect()} <= {date(2026, 3, 31), None}
    late = lh.read(tables.SILVER_ORDERS).where("region = 'de' AND ordered_at >= '2026-04-01'").select("customer_id").distinct()
    march = features.where("region = 'de' AND as_of_date = '2026-03-31'")
    assert march.where("recency_days < 0").count() == 0
    only_late = late.join(lh.read(tables.SILVER_ORDERS).where("region = 'de' AND ordered_at < '2026-04-01'").select("customer_id").distinct(), "customer_id", "left_anti")
    assert march.join(only_late, "customer_id").where("orders_total > 0").count() == 0
