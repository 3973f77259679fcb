"""The gold stage: features as of a date, the customer 360 and the finance marts.

Reads silver only. Tables (partitioned by region; only the run's regions are replaced):

* ``gold.customer_features`` - one row per customer and as-of date (partitioned by region and
  ``as_of_date``; a run replaces its regions' rows of its as-of date only)
* ``gold.feature_registry`` - the definitions behind each region's feature-set version
* ``gold.customer_360`` - one row per customer, the features of this run's as-of date
* ``gold.finance_revenue_monthly``, ``gold.finance_cohort_retention``, ``gold.finance_customer_value``

Every column carries its description in the Delta schema.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.errors import C360Error
from customer360.facts.stage import SILVER_CONSENT, SILVER_ORDERS, SILVER_TICKETS, SILVER_WEB_EVENTS
from customer360.features.compute import customer_features
from customer360.features.registry import (
    REGISTRY_COMMENTS,
    REGISTRY_SCHEMA,
    expand,
    feature_parameters,
    feature_set_version,
    registry_rows,
)
from customer360.gold.customer360 import column_comments, customer_360, with_ml_columns
from customer360.gold.finance import (
    COHORT_RETENTION_COMMENTS,
    CUSTOMER_VALUE_COMMENTS,
    REVENUE_MONTHLY_COMMENTS,
    cohort_retention,
    customer_value,
    revenue_monthly,
)
from customer360.governance.gate import checks_for, gate
from customer360.lakehouse.core import with_comments
from customer360.pipeline import Metric, RunContext, StageResult

log = logging.getLogger(__name__)

CUSTOMER_GOLDEN = "silver.customer_golden"
CUSTOMER_FEATURES = "gold.customer_features"
FEATURE_REGISTRY = "gold.feature_registry"
CUSTOMER_360 = "gold.customer_360"
REVENUE_MONTHLY = "gold.finance_revenue_monthly"
COHORT_RETENTION = "gold.finance_cohort_retention"
CUSTOMER_VALUE = "gold.finance_customer_value"
CUSTOMER_SEGMENTS = "gold.customer_segments"
CHURN_SCORES = "gold.churn_scores"


class GoldInputError(C360Error):
    """A silver table the gold stage needs is missing, or the as-of date cannot be found."""


def data_end(orders: DataFrame, events: DataFrame, tickets: DataFrame) -> date | None:
    """The date of the latest fact (UTC): the default as-of date."""
    latest = [
        frame.agg(F.max(column)).first()[0]
        for frame, column in ((orders, "ordered_at"), (events, "event_ts"), (tickets, "opened_at"))
    ]
    latest = [t for t in latest if t is not None]
    return max(latest).date() if latest else None


def run(ctx: RunContext) -> StageResult:
    result = StageResult("gold")
    lakehouse, config = ctx.lakehouse, ctx.config
    missing = [t for t in (CUSTOMER_GOLDEN, SILVER_ORDERS, SILVER_WEB_EVENTS, SILVER_TICKETS, SILVER_CONSENT) if not lakehouse.exists(t)]
    if missing:
        raise GoldInputError(f"missing silver table(s) {missing}: run `c360 identity` and `c360 facts` first")
    mine = F.col("region").isin(*ctx.regions)
    golden = lakehouse.read(CUSTOMER_GOLDEN).where(mine)
    orders = lakehouse.read(SILVER_ORDERS).where(mine)
    events = lakehouse.read(SILVER_WEB_EVENTS).where(mine)
    tickets = lakehouse.read(SILVER_TICKETS).where(mine)
    consent = lakehouse.read(SILVER_CONSENT).where(mine)

    as_of = ctx.as_of or config.features.as_of or data_end(orders, events, tickets)
    if as_of is None:
        raise GoldInputError(f"no orders, web events or tickets in regions {list(ctx.regions)}: nothing to compute features from")
    region_windows = {code: config.regions[code].feature_windows_days for code in ctx.regions}
    all_windows = sorted({w for ws in region_windows.values() for w in ws})
    comments = column_comments(all_windows)

    features = compute_features(ctx, ctx.regions, as_of, golden=golden, orders=orders, events=events, tickets=tickets)
    regimes = {code: config.regions[code].consent_regime for code in ctx.regions}
    c360 = customer_360(golden, features, consent, regimes=regimes, run_id=ctx.run_id)
    c360 = with_ml_columns(c360, *_ml_outputs(ctx, as_of))
    outputs = {CUSTOMER_360: (c360, comments)}
    for name, build, described in (
        (REVENUE_MONTHLY, revenue_monthly, REVENUE_MONTHLY_COMMENTS),
        (COHORT_RETENTION, cohort_retention, COHORT_RETENTION_COMMENTS),
        (CUSTOMER_VALUE, customer_value, CUSTOMER_VALUE_COMMENTS),
    ):
        outputs[name] = (build(orders, run_id=ctx.run_id), described)
    # the quality gate sees exactly the rows that would be published, before anything is written
    checked = {name for name in outputs if checks_for(config, name)}
    outputs = {name: (df.localCheckpoint(eager=True) if name in checked else df, c) for name, (df, c) in outputs.items()}
    try:
        gate(ctx, {name: outputs[name][0] for name in checked}, result)
    except Exception:
        features.unpersist()
        raise

    written = {}
    written[CUSTOMER_FEATURES] = _write_features(ctx, features, ctx.regions, as_of)
    parameters = {code: _parameters(ctx, code) for code in ctx.regions}
    registry = ctx.spark.createDataFrame(
        [row for code, ws in region_windows.items() for row in registry_rows(code, ws, parameters[code])], REGISTRY_SCHEMA
    )
    # upserted: the definitions behind every version that older as-of dates carry stay listed
    lakehouse.merge(
        with_comments(registry, REGISTRY_COMMENTS).coalesce(1), FEATURE_REGISTRY,
        keys=["region", "feature_set_version", "name"], partition_by=["region"], schema_mode="merge",
    )
    for name, (df, described) in outputs.items():
        written[name] = _write(ctx, df, name, described)

    versions = {code: feature_set_version(expand(ws), parameters[code]) for code, ws in region_windows.items()}
    result.lines.append(f"features as of {as_of.isoformat()} (facts up to the end of that day, UTC)")
    _profile(ctx, result, as_of, versions, written)
    features.unpersist()
    return result


def _parameters(ctx: RunContext, code: str) -> dict[str, float | int]:
    return feature_parameters(ctx.config.features, session_timeout_minutes=ctx.config.regions[code].session_timeout_minutes)


def region_feature_set_version(ctx: RunContext, code: str) -> str:
    """The feature-set version the region's current definitions and settings give."""
    return feature_set_version(expand(ctx.config.regions[code].feature_windows_days), _parameters(ctx, code))


def compute_features(
    ctx: RunContext,
    regions: Sequence[str],
    as_of: date,
    *,
    golden: DataFrame | None = None,
    orders: DataFrame | None = None,
    events: DataFrame | None = None,
    tickets: DataFrame | None = None,
) -> DataFrame:
    """Features of the regions' customers as of a date, from silver (checkpointed)."""
    lakehouse, config = ctx.lakehouse, ctx.config
    mine = F.col("region").isin(*regions)
    golden = golden if golden is not None else lakehouse.read(CUSTOMER_GOLDEN).where(mine)
    orders = orders if orders is not None else lakehouse.read(SILVER_ORDERS).where(mine)
    events = events if events is not None else lakehouse.read(SILVER_WEB_EVENTS).where(mine)
    tickets = tickets if tickets is not None else lakehouse.read(SILVER_TICKETS).where(mine)
    return customer_features(
        golden.select("region", "customer_id", "first_seen"), orders, events, tickets,
        as_of=as_of,
        region_windows={code: config.regions[code].feature_windows_days for code in regions},
        timeout_minutes={code: config.regions[code].session_timeout_minutes for code in regions},
        settings=config.features,
    ).localCheckpoint(eager=True)


def _write_features(ctx: RunContext, features: DataFrame, regions: Sequence[str], as_of: date) -> int:
    windows = sorted({w for code in regions for w in ctx.config.regions[code].feature_windows_days})
    return int(
        ctx.lakehouse.write(
            with_comments(features, column_comments(windows)), CUSTOMER_FEATURES, partition_by=["region", "as_of_date"],
            regions=list(regions), partitions={"as_of_date": [as_of]}, schema_mode="merge",
        ).rows_written
        or 0
    )


def ensure_features(ctx: RunContext, wanted: Mapping[str, Iterable[date]]) -> None:
    """Make sure ``gold.customer_features`` holds each region's dates (region -> dates) computed
    with the region's current feature-set version; missing ones are computed from silver, one
    pass per date for all regions lacking it, and written (training cutoffs become partitions of
    the feature table like any other as-of date)."""
    have: set[tuple[str, date, str]] = set()
    if ctx.lakehouse.exists(CUSTOMER_FEATURES):
        have = {
            (r[0], r[1], r[2])
            for r in ctx.lakehouse.read(CUSTOMER_FEATURES).select("region", "as_of_date", "feature_set_version").distinct().collect()
        }
    by_date: dict[date, list[str]] = {}
    for region, days in wanted.items():
        version = region_feature_set_version(ctx, region)
        for day in sorted(set(days)):
            if (region, day, version) not in have or any(r == region and d == day and v != version for r, d, v in have):
                by_date.setdefault(day, []).append(region)
    for day, regions in sorted(by_date.items()):
        log.info("features as of %s for %s: computing from silver", day, ", ".join(regions))
        _write_features(ctx, compute_features(ctx, regions, day), regions, day)


def features_as_of(ctx: RunContext, region: str, as_of: date) -> DataFrame:
    """One region's ``gold.customer_features`` of a date (computed first where missing or stale)."""
    ensure_features(ctx, {region: [as_of]})
    return read_features(ctx, region, as_of)


def read_features(ctx: RunContext, region: str, as_of: date) -> DataFrame:
    """One region's stored ``gold.customer_features`` of a date, as they are."""
    return ctx.lakehouse.read(CUSTOMER_FEATURES).where((F.col("region") == region) & (F.col("as_of_date") == F.lit(as_of)))


def _ml_outputs(ctx: RunContext, as_of: date) -> tuple[DataFrame | None, DataFrame | None]:
    """The regions' rows of gold.customer_segments and gold.churn_scores, where they exist; the 360
    joins those of its as-of date, so a gold re-run keeps that date's scores (a new date has none
    until scoring runs)."""
    out = []
    for name in (CUSTOMER_SEGMENTS, CHURN_SCORES):
        if ctx.lakehouse.exists(name):
            out.append(ctx.lakehouse.read(name).where(F.col("region").isin(*ctx.regions)))
        else:
            out.append(None)
    return out[0], out[1]


def _write(ctx: RunContext, df: DataFrame, name: str, comments: dict[str, str]) -> int:
    return int(
        ctx.lakehouse.write(
            with_comments(df, comments), name, partition_by=["region"], regions=list(ctx.regions), schema_mode="merge"
        ).rows_written
        or 0
    )


def _profile(ctx: RunContext, result: StageResult, as_of: date, versions: dict[str, str], written: dict) -> None:
    """A short profile of the customer 360 per region (what `c360 run` prints)."""
    lakehouse = ctx.lakehouse
    c360 = lakehouse.read(CUSTOMER_360).where(F.col("region").isin(*ctx.regions))
    rows = {
        r["region"]: r
        for r in c360.groupBy("region").agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum((F.col("orders_total") > 0).cast("long")).alias("buyers"),
            F.sum(F.col("is_cold_start").cast("long")).alias("cold"),
            F.sum(F.col("is_monetary_outlier").cast("long")).alias("outliers"),
            F.sum(F.col("marketing_consent").cast("long")).alias("marketable"),
            F.median(F.when(F.col("orders_total") > 0, F.col("net_revenue_total"))).alias("median_revenue"),
            F.avg(F.when(F.col("orders_total") > 0, F.col("avg_order_value"))).alias("aov"),
        ).collect()
    }
    revenue = {
        r["region"]: r
        for r in lakehouse.read(REVENUE_MONTHLY).where(F.col("region").isin(*ctx.regions)).groupBy("region", "reporting_currency")
        .agg(F.sum("net_revenue").alias("net"), F.sum("orders").alias("orders")).collect()
    }
    for region in ctx.regions:
        row = rows.get(region)
        if row is None:
            result.lines.append(f"{region}: no customers")
            continue
        n = row["customers"] or 0
        money = revenue.get(region)
        currency = money["reporting_currency"] if money else ctx.config.finance.reporting_currency
        result.lines.append(
            f"{region}: {n:,} customers in customer_360 ({row['buyers'] or 0:,} with orders, "
            f"{(row['cold'] or 0) / n:.0%} cold start, {row['outliers'] or 0:,} revenue outliers, "
            f"{(row['marketable'] or 0) / n:.0%} marketable); median lifetime net revenue {row['median_revenue'] or 0:,.2f} {currency}, "
            f"mean order value {row['aov'] or 0:,.2f}; net revenue all months {money['net'] if money else 0:,.2f} {currency} "
            f"from {money['orders'] if money else 0:,} orders; features {versions[region]}"
        )
        result.metrics += [
            Metric(region, "customers", n, CUSTOMER_360),
            Metric(region, "customers_with_orders", int(row["buyers"] or 0), CUSTOMER_360),
            Metric(region, "cold_start", int(row["cold"] or 0), CUSTOMER_360),
        ]
    result.lines.append("rows written: " + ", ".join(f"{name} {n:,}" for name, n in written.items()))
