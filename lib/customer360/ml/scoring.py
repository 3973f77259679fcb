"""Which date a region is scored as of, and whose rows may be profiled: read by training,
scoring and monitoring alike."""
from __future__ import annotations

from datetime import date

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.context import RunContext
from customer360.errors import C360Error
from customer360.tables import CUSTOMER_360


def scoring_date(ctx: RunContext, region: str) -> date:
    """``--as-of``, else features.as_of, else the as-of date of the region's customer_360 rows."""
    if ctx.as_of or ctx.config.features.as_of:
        return ctx.as_of or ctx.config.features.as_of
    if not ctx.lakehouse.exists(CUSTOMER_360):
        raise C360Error(f"{CUSTOMER_360} does not exist: run `c360 gold` first")
    found = ctx.lakehouse.read(CUSTOMER_360).where(F.col("region") == region).agg(F.max("features_as_of")).first()[0]
    if found is None:
        raise C360Error(f"region {region}: gold.customer_360 has no features: run `c360 gold --region {region}` first")
    return found


def profiling_allowed(ctx: RunContext, region: str) -> DataFrame:
    """region, customer_id of the customers who may be profiled (gold.customer_360's current consent)."""
    return (
        ctx.lakehouse.read(CUSTOMER_360)
        .where((F.col("region") == region) & F.col("profiling_consent"))
        .select("region", "customer_id")
    )
