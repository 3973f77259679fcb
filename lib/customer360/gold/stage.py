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
from datetime import date

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.features.registry import REGISTRY_COMMENTS, REGISTRY_SCHEMA, expand, feature_set_version, registry_rows
from customer360.features.store import compute_features, feature_settings, write_features
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
from customer360.tables import (
    CHURN_SCORES,
    COHORT_RETENTION,
    CUSTOMER_360,
    CUSTOMER_CLV,
    CUSTOMER_SURVIVAL,
    CUSTOMER_FEATURES,
    CUSTOMER_GOLDEN,
    CUSTOMER_SEGMENTS,
    CUSTOMER_VALUE,
    FEATURE_REGISTRY,
    REVENUE_MONTHLY,
    SILVER_CONSENT,
    SILVER_ORDERS,
    SILVER_TICKETS,
    SILVER_WEB_EVENTS,
)

log = logging.getLogger(__name__)


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
    written[CUSTOMER_FEATURES] = write_features(ctx, features, ctx.regions, as_of)
    parameters = {code: feature_settings(ctx, code) for code in ctx.regions}
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


def _ml_outputs(ctx: RunContext, as_of: date) -> list[DataFrame | None]:
    """The regions' rows of gold.customer_segments, gold.churn_scores, gold.customer_clv and
    gold.customer_survival, where they exist; the 360 joins those of its as-of date, so a gold
    re-run keeps that date's scores (a new date has none until scoring runs)."""
    out = []
    for name in (CUSTOMER_SEGMENTS, CHURN_SCORES, CUSTOMER_CLV, CUSTOMER_SURVIVAL):
        if ctx.lakehouse.exists(name):
            out.append(ctx.lakehouse.read(name).where(F.col("region").isin(*ctx.regions)))
        else:
            out.append(None)
    return out


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
