"""Stored features: ``gold.customer_features`` of a region and as-of date, computed from silver
where missing or stale, and the feature-set version a region's settings give.

The gold stage writes the features of its as-of date; training reads the features of its cutoffs
through ``ensure_features`` and ``features_as_of``, so every date's features are computed one way.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.context import RunContext
from customer360.features.compute import customer_features
from customer360.features.registry import expand, feature_parameters, feature_set_version
from customer360.gold.customer360 import column_comments
from customer360.lakehouse.core import with_comments
from customer360.tables import CUSTOMER_FEATURES, CUSTOMER_GOLDEN, SILVER_ORDERS, SILVER_TICKETS, SILVER_WEB_EVENTS

log = logging.getLogger(__name__)


def feature_settings(ctx: RunContext, code: str) -> dict[str, float | int]:
    return feature_parameters(ctx.config.features, session_timeout_minutes=ctx.config.regions[code].session_timeout_minutes)


def region_feature_set_version(ctx: RunContext, code: str) -> str:
    """The feature-set version the region's current definitions and settings give."""
    return feature_set_version(expand(ctx.config.regions[code].feature_windows_days), feature_settings(ctx, code))


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


def write_features(ctx: RunContext, features: DataFrame, regions: Sequence[str], as_of: date) -> int:
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
        write_features(ctx, compute_features(ctx, regions, day), regions, day)


def features_as_of(ctx: RunContext, region: str, as_of: date) -> DataFrame:
    """One region's ``gold.customer_features`` of a date (computed first where missing or stale)."""
    ensure_features(ctx, {region: [as_of]})
    return read_features(ctx, region, as_of)


def read_features(ctx: RunContext, region: str, as_of: date) -> DataFrame:
    """One region's stored ``gold.customer_features`` of a date, as they are."""
    return ctx.lakehouse.read(CUSTOMER_FEATURES).where((F.col("region") == region) & (F.col("as_of_date") == F.lit(as_of)))
