"""silver.orders: customer keys from the xref, dated exchange rates on the region's local order date,
cent-rounded decimal amounts, returns netted, and a ``_problem`` for every line that cannot be used."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from customer360.config import FinanceConfig, FxRate
from customer360.facts.orders import (
    QUARANTINE_SCHEMA,
    SILVER_ORDERS_SCHEMA,
    fx_rates_frame,
    quarantine_rows,
    silver_orders,
)

BRONZE_SCHEMA = (
    "order_line_id string, order_id string, ordered_at timestamp, product_category string, quantity bigint, "
    "unit_price double, unit_cost double, currency string, is_return boolean, region string"
)
XREF_SCHEMA = "region string, source string, source_record_id string, customer_id string"
TIME_ZONES = {"us": "America/New_York", "de": "Europe/Berlin"}
FINANCE = FinanceConfig(
    reporting_currency="EUR",
    fx_rates={"USD": (FxRate(valid_from=date(2021, 1, 1), rate=0.9), FxRate(valid_from=date(2026, 1, 1), rate=0.8))},
)
NO_CUSTOMER = "no customer_id in silver.customer_xref (run the identity stage)"

SILVER_SCHEMA = T.StructType([*SILVER_ORDERS_SCHEMA.fields, T.StructField("_problem", T.StringType())])


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def d(value: str) -> Decimal:
    return Decimal(value)


BRONZE = [
    # line, order, ordered_at (UTC), category, qty, unit_price, unit_cost, currency, is_return, region
    # New York 08:00 on 2025-06-15: first USD rate 0.9; 3 x 19.99 = 59.97 -> x0.9 = 53.973 -> 53.97;
    # cost 3 x 7.333 = 21.999 -> 22.00 -> x0.9 = 19.80
    ("L1", "O1", utc(2025, 6, 15, 12), "books", 3, 19.99, 7.333, "USD", False, "us"),
    # New York noon on 2026-01-01, exactly the second rate's valid_from: rate 0.8;
    # 2 x 10.005 = 20.01 -> x0.8 = 16.008 -> 16.01; unknown cost; a null is_return counts as false
    ("L2", "O2", utc(2026, 1, 1, 17), "toys", 2, 10.005, None, "USD", None, "us"),
    # returned: 10.05 x 0.9 = 9.045 -> 9.05 (half up, in decimal) counted in gross and returns; net 0, cost 0
    ("L3", "O3", utc(2025, 3, 1, 12), "toys", 1, 10.05, 4.0, "USD", True, "us"),
    # 2025-12-31 23:30 UTC is 2026-01-01 00:30 in Berlin: the 2026 rate 0.8 -> 80.00, cost 40.00
    ("L5", "O5", utc(2025, 12, 31, 23, 30), "garden", 1, 100.0, 50.0, "USD", False, "de"),
    # EUR is the reporting currency, not listed: rate 1; 3 x 3.335 = 10.005 -> 10.01 (a double would give 10.00);
    # cost 3 x 1.115 = 3.345 -> 3.35; the currency code is trimmed and upper-cased
    ("L6", "O6", utc(2025, 7, 1, 10), "garden", 3, 3.335, 1.115, " eur ", False, "de"),
    # 2021-01-01 03:00 UTC is 2020-12-31 22:00 in New York: before the first USD rate
    ("L4", "O4", utc(2021, 1, 1, 3), "books", 1, 5.0, None, "USD", False, "us"),
    # no xref row for ('de', 'orders', 'L7') (only one from another source and one from another region)
    ("L7", "O7", utc(2025, 5, 5, 5), "books", 1, 5.0, 1.0, "EUR", False, "de"),
    # neither a customer nor a rate
    ("L8", "O8", utc(2020, 6, 1, 12), "books", 1, 5.0, 1.0, "USD", False, "de"),
]
XREF = [
    ("us", "orders", "L1", "C1"),
    ("us", "orders", "L2", "C1"),
    ("us", "orders", "L3", "C2"),
    ("us", "orders", "L4", "C2"),
    ("de", "orders", "L5", "C3"),
    ("de", "orders", "L6", "C3"),
    ("de", "crm", "L7", "C-CRM"),  # another source's record with the same id
    ("us", "orders", "L7", "C-US"),  # the same line id in another region
]


@pytest.fixture(scope="module")
def silver(spark):
    bronze = spark.createDataFrame(BRONZE, BRONZE_SCHEMA)
    xref = spark.createDataFrame(XREF, XREF_SCHEMA)
    return silver_orders(
        bronze, xref, fx_rates_frame(spark, FINANCE), reporting_currency="EUR", time_zones=TIME_ZONES, run_id="run-1"
    ).cache()


def test_fx_rates_frame_has_validity_intervals_and_an_implied_reporting_rate(spark):
    expected = spark.createDataFrame(
        [
            ("USD", date(2021, 1, 1), date(2026, 1, 1), d("0.90000000")),
            ("USD", date(2026, 1, 1), None, d("0.80000000")),
            ("EUR", date(1900, 1, 1), None, d("1.00000000")),
        ],
        "currency string, valid_from date, valid_to date, rate decimal(18,8)",
    )
    assert_df_equality(fx_rates_frame(spark, FINANCE), expected, ignore_row_order=True, ignore_nullable=True)


def test_fx_rates_frame_uses_the_listed_reporting_rate_only(spark):
    finance = FinanceConfig(
        reporting_currency="USD",
        fx_rates={"USD": (FxRate(valid_from=date(2020, 1, 1), rate=1.0),), "GBP": (FxRate(valid_from=date(2020, 1, 1), rate=1.25),)},
    )
    expected = spark.createDataFrame(
        [("GBP", date(2020, 1, 1), None, d("1.25000000")), ("USD", date(2020, 1, 1), None, d("1.00000000"))],
        "currency string, valid_from date, valid_to date, rate decimal(18,8)",
    )
    assert_df_equality(fx_rates_frame(spark, finance), expected, ignore_row_order=True, ignore_nullable=True)


def test_usable_lines_are_converted_rounded_and_netted(spark, silver):
    good = silver.where("_problem IS NULL")
    expected = spark.createDataFrame(
        [
            ("L1", "O1", "C1", utc(2025, 6, 15, 12), date(2025, 6, 15), "books", 3, 19.99, 7.333, "USD", False,
             d("0.9"), "EUR", d("53.97"), d("0.00"), d("53.97"), d("19.80"), "run-1", "us", None),
            ("L2", "O2", "C1", utc(2026, 1, 1, 17), date(2026, 1, 1), "toys", 2, 10.005, None, "USD", False,
             d("0.8"), "EUR", d("16.01"), d("0.00"), d("16.01"), None, "run-1", "us", None),
            ("L3", "O3", "C2", utc(2025, 3, 1, 12), date(2025, 3, 1), "toys", 1, 10.05, 4.0, "USD", True,
             d("0.9"), "EUR", d("9.05"), d("9.05"), d("0.00"), d("0.00"), "run-1", "us", None),
            ("L5", "O5", "C3", utc(2025, 12, 31, 23, 30), date(2026, 1, 1), "garden", 1, 100.0, 50.0, "USD", False,
             d("0.8"), "EUR", d("80.00"), d("0.00"), d("80.00"), d("40.00"), "run-1", "de", None),
            ("L6", "O6", "C3", utc(2025, 7, 1, 10), date(2025, 7, 1), "garden", 3, 3.335, 1.115, "EUR", False,
             d("1"), "EUR", d("10.01"), d("0.00"), d("10.01"), d("3.35"), "run-1", "de", None),
        ],
        SILVER_SCHEMA,
    )
    assert_df_equality(good, expected, ignore_row_order=True, ignore_nullable=True)


def test_lines_without_customer_or_rate_carry_their_problems(spark, silver):
    bad = silver.where("_problem IS NOT NULL").select(
        "order_line_id", "customer_id", "order_date", "fx_rate", "gross_amount", "net_amount", "_problem", "region"
    )
    expected = spark.createDataFrame(
        [
            ("L4", "C2", date(2020, 12, 31), None, None, None,
             "no exchange rate for USD on 2020-12-31 (finance.fx_rates)", "us"),
            ("L7", None, date(2025, 5, 5), d("1"), d("5.00"), d("5.00"), NO_CUSTOMER, "de"),
            ("L8", None, date(2020, 6, 1), None, None, None,
             f"{NO_CUSTOMER}; no exchange rate for USD on 2020-06-01 (finance.fx_rates)", "de"),
        ],
        "order_line_id string, customer_id string, order_date date, fx_rate decimal(18,8), "
        "gross_amount decimal(18,2), net_amount decimal(18,2), _problem string, region string",
    )
    assert_df_equality(bad, expected, ignore_row_order=True, ignore_nullable=True)


def test_every_bronze_line_appears_exactly_once(silver):
    assert sorted(r.order_line_id for r in silver.select("order_line_id").collect()) == sorted(r[0] for r in BRONZE)


def test_quarantine_rows_lists_each_problem_line(spark, silver):
    expected = spark.createDataFrame(
        [
            ("orders", "L4", "no exchange rate for USD on 2020-12-31 (finance.fx_rates)", "run-9", "us"),
            ("orders", "L7", NO_CUSTOMER, "run-9", "de"),
            ("orders", "L8", f"{NO_CUSTOMER}; no exchange rate for USD on 2020-06-01 (finance.fx_rates)", "run-9", "de"),
        ],
        QUARANTINE_SCHEMA,
    )
    got = quarantine_rows(silver, source="orders", id_column="order_line_id", run_id="run-9")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_bronze_without_unit_cost_has_unknown_costs(spark):
    bronze = spark.createDataFrame(
        [("L1", "O1", utc(2025, 6, 15, 12), "books", 2, 1.5, "EUR", False, "de")],
        "order_line_id string, order_id string, ordered_at timestamp, product_category string, quantity bigint, "
        "unit_price double, currency string, is_return boolean, region string",
    )
    xref = spark.createDataFrame([("de", "orders", "L1", "C1")], XREF_SCHEMA)
    got = silver_orders(
        bronze, xref, fx_rates_frame(spark, FINANCE), reporting_currency="EUR", time_zones=TIME_ZONES, run_id="r"
    ).select("order_line_id", "unit_cost", "gross_amount", "net_amount", "cost_amount", "_problem")
    expected = spark.createDataFrame(
        [("L1", None, d("3.00"), d("3.00"), None, None)],
        "order_line_id string, unit_cost double, gross_amount decimal(18,2), net_amount decimal(18,2), "
        "cost_amount decimal(18,2), _problem string",
    )
    assert_df_equality(got, expected, ignore_nullable=True)
