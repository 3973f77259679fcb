"""Finance marts: monthly revenue, cohort retention and customer value from silver.orders, with
every money column reconciling exactly (decimal) to the silver lines."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import types as T

from customer360.facts.orders import SILVER_ORDERS_SCHEMA
from customer360.gold.finance import cohort_retention, customer_value, revenue_monthly

MONEY = T.DecimalType(18, 2)
d = Decimal
ZERO = d("0.00")


def line(line_id, order_id, customer_id, order_date, gross, *, cost=None, returned=False, region="us", ordered_at=None):
    """A silver line in EUR: gross as given, returns netted, a returned line with known cost costs 0."""
    gross = d(gross)
    returns = gross if returned else ZERO
    cost_amount = None if cost is None else (ZERO if returned else d(cost))
    ordered_at = ordered_at or datetime(order_date.year, order_date.month, order_date.day, 12, tzinfo=timezone.utc)
    return (
        line_id, order_id, customer_id, ordered_at, order_date, "books", 1, float(gross),
        None if cost is None else float(cost), "EUR", returned, d("1"), "EUR",
        gross, returns, gross - returns, cost_amount, "silver-run", region,
    )


LINES = [
    # us
    line("L1", "O1", "C1", date(2025, 1, 10), "100.00", cost="60.00"),
    line("L2", "O1", "C1", date(2025, 1, 10), "20.50", cost="9.00", returned=True),
    line("L3", "O2", "C1", date(2025, 3, 5), "30.00"),
    line("L4", "O3", "C2", date(2025, 1, 20), "50.00", cost="20.00"),
    line("L9", "O7", "C5", date(2025, 1, 31), "8.00", cost="2.00"),
    line("L5", "O4", "C3", date(2025, 2, 14), "10.00"),
    line("L6", "O5", "C3", date(2025, 3, 31), "40.00", cost="30.00"),
    line("L7", "O5", "C3", date(2025, 3, 31), "5.25", returned=True),
    line("L8", "O6", "C4", date(2025, 2, 1), "12.34", returned=True),
    # de: the same customer and order ids are other customers and orders; C6 ordered at
    # 2025-02-28 23:30 UTC, which is 2025-03-01 in Berlin: a March order
    line("L1", "O1", "C1", date(2025, 2, 10), "7.00", cost="3.00", region="de"),
    line("L10", "O8", "C6", date(2025, 3, 1), "9.99", region="de",
         ordered_at=datetime(2025, 2, 28, 23, 30, tzinfo=timezone.utc)),
]


@pytest.fixture(scope="module")
def orders(spark):
    return spark.createDataFrame(LINES, SILVER_ORDERS_SCHEMA).cache()


def test_revenue_monthly(spark, orders):
    expected = spark.createDataFrame(
        [
            # January: L1, L2 (returned), L4, L9; orders O1, O3, O7; C1, C2, C5 all new
            ("us", date(2025, 1, 1), "EUR", d("178.50"), d("20.50"), d("158.00"), 3, 4, 3, 3, 0, "gold-run"),
            # February: L5, L8 (returned); C3 and C4 new
            ("us", date(2025, 2, 1), "EUR", d("22.34"), d("12.34"), d("10.00"), 2, 2, 2, 2, 0, "gold-run"),
            # March: L3, L6, L7 (returned); C1 and C3 ordered before
            ("us", date(2025, 3, 1), "EUR", d("75.25"), d("5.25"), d("70.00"), 2, 3, 2, 0, 2, "gold-run"),
            ("de", date(2025, 2, 1), "EUR", d("7.00"), d("0.00"), d("7.00"), 1, 1, 1, 1, 0, "gold-run"),
            ("de", date(2025, 3, 1), "EUR", d("9.99"), d("0.00"), d("9.99"), 1, 1, 1, 1, 0, "gold-run"),
        ],
        "region string, month date, reporting_currency string, gross_revenue decimal(18,2), returns decimal(18,2), "
        "net_revenue decimal(18,2), orders bigint, order_lines bigint, active_customers bigint, new_customers bigint, "
        "returning_customers bigint, run_id string",
    )
    assert_df_equality(revenue_monthly(orders, run_id="gold-run"), expected, ignore_row_order=True, ignore_nullable=True)


def test_cohort_retention_fills_every_month_up_to_the_regions_last(spark, orders):
    expected = spark.createDataFrame(
        [
            # us cohort January: C1, C2, C5; only C1 comes back, in March
            ("us", date(2025, 1, 1), 0, 3, 3, 1.0, d("158.00"), "EUR", "gold-run"),
            ("us", date(2025, 1, 1), 1, 3, 0, 0.0, d("0.00"), "EUR", "gold-run"),
            ("us", date(2025, 1, 1), 2, 3, 1, 0.3333, d("30.00"), "EUR", "gold-run"),
            # us cohort February: C3, C4; C3 in March (its return nets to 0)
            ("us", date(2025, 2, 1), 0, 2, 2, 1.0, d("10.00"), "EUR", "gold-run"),
            ("us", date(2025, 2, 1), 1, 2, 1, 0.5, d("40.00"), "EUR", "gold-run"),
            # de's last order month is March (Berlin time), not the us one's
            ("de", date(2025, 2, 1), 0, 1, 1, 1.0, d("7.00"), "EUR", "gold-run"),
            ("de", date(2025, 2, 1), 1, 1, 0, 0.0, d("0.00"), "EUR", "gold-run"),
            ("de", date(2025, 3, 1), 0, 1, 1, 1.0, d("9.99"), "EUR", "gold-run"),
        ],
        "region string, cohort_month date, months_since int, cohort_size bigint, active_customers bigint, "
        "retention_rate double, net_revenue decimal(18,2), reporting_currency string, run_id string",
    )
    got = cohort_retention(orders, run_id="gold-run").select(*expected.columns)
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_customer_value_margin_only_over_known_costs(spark, orders):
    expected = spark.createDataFrame(
        [
            # net 130.00; cost known on L1 (60.00) and returned L2 (0); revenue with known cost 100.00 + 0
            ("us", "C1", date(2025, 1, 10), date(2025, 3, 5), 2, 3, d("150.50"), d("20.50"), d("130.00"),
             d("60.00"), d("100.00"), d("40.00"), 0.7692, "EUR", "gold-run"),
            ("us", "C2", date(2025, 1, 20), date(2025, 1, 20), 1, 1, d("50.00"), d("0.00"), d("50.00"),
             d("20.00"), d("50.00"), d("30.00"), 1.0, "EUR", "gold-run"),
            # cost known on L6 only: 40.00 of 50.00 net
            ("us", "C3", date(2025, 2, 14), date(2025, 3, 31), 2, 3, d("55.25"), d("5.25"), d("50.00"),
             d("30.00"), d("40.00"), d("10.00"), 0.8, "EUR", "gold-run"),
            # everything returned, no cost known: no margin, no coverage (net 0)
            ("us", "C4", date(2025, 2, 1), date(2025, 2, 1), 1, 1, d("12.34"), d("12.34"), d("0.00"),
             None, None, None, None, "EUR", "gold-run"),
            ("us", "C5", date(2025, 1, 31), date(2025, 1, 31), 1, 1, d("8.00"), d("0.00"), d("8.00"),
             d("2.00"), d("8.00"), d("6.00"), 1.0, "EUR", "gold-run"),
            ("de", "C1", date(2025, 2, 10), date(2025, 2, 10), 1, 1, d("7.00"), d("0.00"), d("7.00"),
             d("3.00"), d("7.00"), d("4.00"), 1.0, "EUR", "gold-run"),
            # net revenue but no known cost: margin null, coverage 0
            ("de", "C6", date(2025, 3, 1), date(2025, 3, 1), 1, 1, d("9.99"), d("0.00"), d("9.99"),
             None, None, None, 0.0, "EUR", "gold-run"),
        ],
        "region string, customer_id string, first_order_date date, last_order_date date, orders bigint, "
        "order_lines bigint, gross_revenue decimal(18,2), returns decimal(18,2), net_revenue decimal(18,2), "
        "cost decimal(18,2), revenue_with_known_cost decimal(18,2), margin decimal(18,2), cost_coverage double, "
        "reporting_currency string, run_id string",
    )
    got = customer_value(orders, run_id="gold-run")
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------- reconciliation


def generated_lines(seed: int = 1, n_orders: int = 25) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for o in range(n_orders):
        region = rng.choice(["us", "de", "gb"])
        customer = f"C{rng.randint(1, 6)}"
        order_date = date(2024, 11, 1) + timedelta(days=rng.randint(0, 200))
        for n in range(rng.randint(1, 3)):
            gross = d(rng.randint(1, 99_999)) / 100
            cost = None if rng.random() < 0.3 else d(rng.randint(0, int(gross * 100))) / 100
            rows.append(line(f"L{o}-{n}", f"O{o}", customer, order_date, str(gross), cost=None if cost is None else str(cost),
                             returned=rng.random() < 0.2, region=region))
    return rows


def _sums(rows) -> dict[str, dict[str, Decimal]]:
    """Per region, straight from the generated lines (column positions of SILVER_ORDERS_SCHEMA)."""
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for r in rows:
        region, gross, returns, net, cost = r[18], r[13], r[14], r[15], r[16]
        out[region]["gross"] += gross
        out[region]["returns"] += returns
        out[region]["net"] += net
        if cost is not None:
            out[region]["cost"] += cost
            out[region]["net_with_cost"] += net
    return out


def test_marts_reconcile_exactly_with_silver(spark):
    rows = generated_lines()
    assert len(rows) >= 36  # a few dozen lines over three regions
    orders = spark.createDataFrame(rows, SILVER_ORDERS_SCHEMA)
    want = _sums(rows)
    customers = defaultdict(set)
    order_ids = defaultdict(set)
    for r in rows:
        customers[r[18]].add(r[2])
        order_ids[r[18]].add(r[1])
    regions = sorted(want)
    assert regions == ["de", "gb", "us"]

    monthly = {
        r.region: r
        for r in revenue_monthly(orders, run_id="x").groupBy("region").agg(
            {"gross_revenue": "sum", "returns": "sum", "net_revenue": "sum", "order_lines": "sum", "orders": "sum",
             "new_customers": "sum"}
        ).collect()
    }
    cohorts = {
        r.region: r
        for r in cohort_retention(orders, run_id="x").groupBy("region").agg(
            {"net_revenue": "sum"}
        ).collect()
    }
    sizes = {
        r.region: r
        for r in cohort_retention(orders, run_id="x").where("months_since = 0").groupBy("region").agg(
            {"cohort_size": "sum", "active_customers": "sum"}
        ).collect()
    }
    value = {
        r.region: r
        for r in customer_value(orders, run_id="x").groupBy("region").agg(
            {"gross_revenue": "sum", "returns": "sum", "net_revenue": "sum", "cost": "sum",
             "revenue_with_known_cost": "sum", "customer_id": "count", "order_lines": "sum"}
        ).collect()
    }
    for region in regions:
        w, m, c, s, v = want[region], monthly[region], cohorts[region], sizes[region], value[region]
        n_lines = sum(1 for r in rows if r[18] == region)
        assert (m["sum(gross_revenue)"], m["sum(returns)"], m["sum(net_revenue)"]) == (w["gross"], w["returns"], w["net"]), region
        assert (m["sum(order_lines)"], m["sum(orders)"], m["sum(new_customers)"]) == (
            n_lines, len(order_ids[region]), len(customers[region])), region
        assert c["sum(net_revenue)"] == w["net"], region
        assert (s["sum(cohort_size)"], s["sum(active_customers)"]) == (len(customers[region]),) * 2, region
        assert (v["sum(gross_revenue)"], v["sum(returns)"], v["sum(net_revenue)"], v["sum(cost)"],
                v["sum(revenue_with_known_cost)"]) == (w["gross"], w["returns"], w["net"], w["cost"], w["net_with_cost"]), region
        assert (v["count(customer_id)"], v["sum(order_lines)"]) == (len(customers[region]), n_lines), region
