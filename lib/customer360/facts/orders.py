"""``silver.orders``: bronze order lines keyed by customer, returns netted, amounts in the
reporting currency.

Money is ``decimal(18,2)``: every line is rounded once, in its own currency and again after
conversion, so sums over lines (the finance marts) reconcile to the cent. A line marked
``is_return`` is goods that came back: it counts in gross revenue and in returns, and its net
revenue is zero (the source has no return date, so a return is netted on the order's date).
"""
from __future__ import annotations

from collections.abc import Mapping

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.config import FinanceConfig

MONEY = T.DecimalType(18, 2)
#: prices and costs arrive as doubles; six decimals keep any sub-cent price exact before rounding
UNIT = T.DecimalType(20, 6)
RATE = T.DecimalType(18, 8)

FX_RATES_SCHEMA = T.StructType(
    [
        T.StructField("currency", T.StringType(), False),
        T.StructField("valid_from", T.DateType(), False),
        T.StructField("valid_to", T.DateType(), True),
        T.StructField("rate", RATE, False),
    ]
)

#: the columns of ``silver.orders`` (what ``silver_orders`` returns, without ``_problem``)
SILVER_ORDERS_SCHEMA = T.StructType(
    [
        T.StructField("order_line_id", T.StringType()),
        T.StructField("order_id", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("ordered_at", T.TimestampType()),
        T.StructField("order_date", T.DateType()),
        T.StructField("product_category", T.StringType()),
        T.StructField("quantity", T.LongType()),
        T.StructField("unit_price", T.DoubleType()),
        T.StructField("unit_cost", T.DoubleType()),
        T.StructField("currency", T.StringType()),
        T.StructField("is_return", T.BooleanType()),
        T.StructField("fx_rate", RATE),
        T.StructField("reporting_currency", T.StringType()),
        *[T.StructField(c, MONEY) for c in ("gross_amount", "return_amount", "net_amount", "cost_amount")],
        T.StructField("run_id", T.StringType()),
        T.StructField("region", T.StringType()),
    ]
)

ORDERS_COMMENTS = {
    "order_line_id": "order line id from the source (unique per region)",
    "order_id": "order id; the lines of one order share it",
    "customer_id": "stable customer id (silver.customer_xref)",
    "ordered_at": "order time, UTC",
    "order_date": "order date in the region's time zone (finance months use it)",
    "product_category": "product category of the line",
    "quantity": "units on the line",
    "unit_price": "price per unit in the order currency",
    "unit_cost": "cost per unit in the order currency; null where unknown",
    "currency": "ISO 4217 currency of the order",
    "is_return": "the line's goods came back (a null flag in the source counts as false)",
    "fx_rate": "reporting-currency units per order-currency unit on order_date (finance.fx_rates)",
    "reporting_currency": "currency of every *_amount column",
    "gross_amount": "quantity x unit price, converted, rounded to the cent",
    "return_amount": "gross_amount of returned lines, else 0",
    "net_amount": "gross_amount - return_amount",
    "cost_amount": "quantity x unit cost, converted; 0 for returned lines; null where the cost is unknown",
    "run_id": "pipeline run that wrote the row",
    "region": "region (partition)",
}

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("record_id", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)


def fx_rates_frame(spark: SparkSession, finance: FinanceConfig) -> DataFrame:
    """One row per currency and validity interval [valid_from, valid_to); the last is open-ended."""
    rows = []
    for currency, rates in sorted(finance.fx_rates.items()):
        for i, rate in enumerate(rates):
            valid_to = rates[i + 1].valid_from if i + 1 < len(rates) else None
            rows.append((currency, rate.valid_from, valid_to, rate.rate))
    if finance.reporting_currency not in finance.fx_rates:
        from datetime import date

        rows.append((finance.reporting_currency, date(1900, 1, 1), None, 1.0))
    frame = spark.createDataFrame(rows, "currency string, valid_from date, valid_to date, rate double")
    return frame.select("currency", "valid_from", "valid_to", F.col("rate").cast(RATE).alias("rate"))


def _local_date(ts: Column, time_zones: Mapping[str, str]) -> Column:
    """The UTC time stamp as a date in the row's region's time zone (the session time zone is UTC,
    which every run checks, so ``from_utc_timestamp`` shifts from UTC)."""
    zone = F.coalesce(*[F.when(F.col("region") == code, F.lit(tz)) for code, tz in sorted(time_zones.items())], F.lit("UTC"))
    return F.to_date(F.from_utc_timestamp(ts, zone))


def _money(value: Column) -> Column:
    return F.round(value, 2).cast(MONEY)


def silver_orders(
    bronze: DataFrame,
    xref: DataFrame,
    rates: DataFrame,
    *,
    reporting_currency: str,
    time_zones: Mapping[str, str],
    run_id: str,
) -> DataFrame:
    """Every bronze order line (latest version only) with its customer and converted amounts.

    ``bronze`` is ``bronze.orders`` deduplicated; ``xref`` is ``silver.customer_xref``. Lines that
    cannot be used keep a ``_problem`` (no customer, no exchange rate); the caller quarantines them.
    """
    customers = xref.where(F.col("source") == "orders").select(
        "region", F.col("source_record_id").alias("order_line_id"), "customer_id"
    )
    lines = (
        bronze.select(
            "order_line_id", "order_id", "ordered_at", "product_category", "quantity", "unit_price",
            (F.col("unit_cost") if "unit_cost" in bronze.columns else F.lit(None).cast("double")).alias("unit_cost"),
            F.upper(F.trim("currency")).alias("currency"), F.coalesce("is_return", F.lit(False)).alias("is_return"), "region",
        )
        .withColumn("order_date", _local_date(F.col("ordered_at"), time_zones))
        .join(customers, ["region", "order_line_id"], "left")
    )
    r = rates.alias("r")
    joined = lines.alias("o").join(
        F.broadcast(r),
        (F.col("o.currency") == F.col("r.currency"))
        & (F.col("o.order_date") >= F.col("r.valid_from"))
        & (F.col("r.valid_to").isNull() | (F.col("o.order_date") < F.col("r.valid_to"))),
        "left",
    ).select("o.*", F.col("r.rate").alias("fx_rate"))
    local_gross = _money(F.col("unit_price").cast(UNIT) * F.col("quantity"))
    gross = _money(local_gross * F.col("fx_rate"))
    returned = F.when(F.col("is_return"), gross).otherwise(F.lit(0).cast(MONEY))
    cost = F.when(F.col("is_return"), F.lit(0).cast(MONEY)).otherwise(
        _money(_money(F.col("unit_cost").cast(UNIT) * F.col("quantity")) * F.col("fx_rate"))
    )
    problem = F.concat_ws(
        "; ",
        F.when(F.col("customer_id").isNull(), F.lit("no customer_id in silver.customer_xref (run the identity stage)")),
        F.when(
            F.col("fx_rate").isNull(),
            F.concat(F.lit("no exchange rate for "), F.coalesce(F.col("currency"), F.lit("null")), F.lit(" on "),
                     F.col("order_date").cast("string"), F.lit(" (finance.fx_rates)")),
        ),
    )
    return joined.select(
        "order_line_id", "order_id", "customer_id", "ordered_at", "order_date", "product_category",
        "quantity", "unit_price", "unit_cost", "currency", "is_return", "fx_rate",
        F.lit(reporting_currency).alias("reporting_currency"),
        gross.alias("gross_amount"),
        returned.alias("return_amount"),
        (gross - returned).cast(MONEY).alias("net_amount"),
        F.when(F.col("unit_cost").isNotNull(), cost).alias("cost_amount"),
        F.lit(run_id).alias("run_id"),
        "region",
        F.when(problem != "", problem).alias("_problem"),
    )


def quarantine_rows(df: DataFrame, *, source: str, id_column: str, run_id: str) -> DataFrame:
    """Rows with a ``_problem`` as ``silver._quarantine`` rows."""
    return df.where(F.col("_problem").isNotNull()).select(
        F.lit(source).alias("source"), F.col(id_column).cast("string").alias("record_id"),
        F.col("_problem").alias("reason"), F.lit(run_id).alias("run_id"), "region",
    )

