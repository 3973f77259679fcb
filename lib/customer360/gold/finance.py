"""Finance marts from ``silver.orders``: sums of the lines' cent-rounded decimal amounts, so each
mart reconciles exactly with silver (a test proves it). Months are the region's local months."""
from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from customer360.facts.orders import MONEY

REVENUE_MONTHLY_COMMENTS = {
    "region": "region (partition)",
    "month": "first day of the month (order dates in the region's time zone)",
    "reporting_currency": "currency of the revenue columns",
    "gross_revenue": "quantity x unit price of every line ordered in the month, converted",
    "returns": "gross revenue of the month's lines whose goods came back",
    "net_revenue": "gross_revenue - returns",
    "orders": "distinct orders placed in the month",
    "order_lines": "order lines placed in the month",
    "active_customers": "distinct customers who ordered in the month",
    "new_customers": "active customers whose first order fell in the month",
    "returning_customers": "active customers who had ordered in an earlier month",
    "run_id": "pipeline run that wrote the row",
}

COHORT_RETENTION_COMMENTS = {
    "region": "region (partition)",
    "cohort_month": "month of the customers' first order (acquisition cohort)",
    "months_since": "months from the cohort month (0 = the cohort month itself)",
    "cohort_size": "customers acquired in the cohort month",
    "active_customers": "cohort customers who ordered in that month",
    "retention_rate": "active_customers / cohort_size",
    "net_revenue": "net revenue of the cohort in that month, reporting currency",
    "reporting_currency": "currency of net_revenue",
    "run_id": "pipeline run that wrote the row",
}

CUSTOMER_VALUE_COMMENTS = {
    "region": "region (partition)",
    "customer_id": "stable customer id",
    "first_order_date": "first order date, region's time zone",
    "last_order_date": "latest order date, region's time zone",
    "orders": "distinct orders",
    "order_lines": "order lines",
    "gross_revenue": "gross revenue of all lines, reporting currency",
    "returns": "gross revenue of returned lines",
    "net_revenue": "gross_revenue - returns",
    "cost": "cost of the lines whose unit cost is known (returned lines cost 0)",
    "revenue_with_known_cost": "net revenue of the lines whose unit cost is known",
    "margin": "revenue_with_known_cost - cost; null when no line's cost is known",
    "cost_coverage": "share of net revenue whose cost is known; null when net revenue is 0",
    "reporting_currency": "currency of the money columns",
    "run_id": "pipeline run that wrote the row",
}


def _month(column: str) -> F.Column:
    return F.trunc(F.col(column), "month")


def _with_first_month(orders: DataFrame) -> DataFrame:
    first = F.min("order_date").over(Window.partitionBy("region", "customer_id"))
    return orders.withColumn("_month", _month("order_date")).withColumn("_first_month", F.trunc(first, "month"))


def revenue_monthly(orders: DataFrame, *, run_id: str) -> DataFrame:
    lines = _with_first_month(orders)
    return (
        lines.groupBy("region", F.col("_month").alias("month"), "reporting_currency")
        .agg(
            F.sum("gross_amount").cast(MONEY).alias("gross_revenue"),
            F.sum("return_amount").cast(MONEY).alias("returns"),
            F.sum("net_amount").cast(MONEY).alias("net_revenue"),
            F.countDistinct("order_id").alias("orders"),
            F.count(F.lit(1)).alias("order_lines"),
            F.countDistinct("customer_id").alias("active_customers"),
            F.countDistinct(F.when(F.col("_month") == F.col("_first_month"), F.col("customer_id"))).alias("new_customers"),
        )
        .withColumn("returning_customers", F.col("active_customers") - F.col("new_customers"))
        .withColumn("run_id", F.lit(run_id))
        .select(*REVENUE_MONTHLY_COMMENTS)
    )


def cohort_retention(orders: DataFrame, *, run_id: str) -> DataFrame:
    """Every cohort and every month from its start to the region's last order month (zeros included)."""
    lines = _with_first_month(orders).withColumn(
        "months_since", F.months_between(F.col("_month"), F.col("_first_month")).cast("int")
    )
    activity = lines.groupBy("region", F.col("_first_month").alias("cohort_month"), "months_since").agg(
        F.countDistinct("customer_id").alias("active_customers"),
        F.sum("net_amount").cast(MONEY).alias("net_revenue"),
    )
    sizes = lines.groupBy("region", F.col("_first_month").alias("cohort_month"), "reporting_currency").agg(
        F.countDistinct("customer_id").alias("cohort_size")
    )
    last = lines.groupBy("region").agg(F.max("_month").alias("_last_month"))
    grid = sizes.join(last, "region").withColumn(
        "months_since",
        F.explode(F.sequence(F.lit(0), F.months_between("_last_month", "cohort_month").cast("int"))),
    )
    return (
        grid.join(activity, ["region", "cohort_month", "months_since"], "left")
        .fillna(0, subset=["active_customers"])
        .withColumn("net_revenue", F.coalesce(F.col("net_revenue"), F.lit(0).cast(MONEY)))
        .withColumn("retention_rate", F.round(F.col("active_customers") / F.col("cohort_size"), 4))
        .withColumn("run_id", F.lit(run_id))
        .select(*COHORT_RETENTION_COMMENTS)
    )


def customer_value(orders: DataFrame, *, run_id: str) -> DataFrame:
    known = F.col("cost_amount").isNotNull()
    return (
        orders.groupBy("region", "customer_id", "reporting_currency")
        .agg(
            F.min("order_date").alias("first_order_date"),
            F.max("order_date").alias("last_order_date"),
            F.countDistinct("order_id").alias("orders"),
            F.count(F.lit(1)).alias("order_lines"),
            F.sum("gross_amount").cast(MONEY).alias("gross_revenue"),
            F.sum("return_amount").cast(MONEY).alias("returns"),
            F.sum("net_amount").cast(MONEY).alias("net_revenue"),
            F.sum("cost_amount").cast(MONEY).alias("cost"),
            F.sum(F.when(known, F.col("net_amount"))).cast(MONEY).alias("revenue_with_known_cost"),
        )
        .withColumn("margin", (F.col("revenue_with_known_cost") - F.col("cost")).cast(MONEY))
        .withColumn(
            "cost_coverage",
            F.when(F.col("net_revenue") != 0, F.round(F.coalesce(F.col("revenue_with_known_cost"), F.lit(0)) / F.col("net_revenue"), 4).cast("double")),
        )
        .withColumn("run_id", F.lit(run_id))
        .select(*CUSTOMER_VALUE_COMMENTS)
    )
