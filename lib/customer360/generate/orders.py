"""Order lines in UTC: segment-driven volumes and prices, bulk business orders, returns, an
optional customer email, a few negative prices for bronze to quarantine, and unit costs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from customer360.generate.people import CATEGORIES, activity_times, email_variants, event_owners, mask, segment_behaviour
from customer360.generate.regions import REGION_PROFILES


def order_lines(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    beh = segment_behaviour(people["segment"])
    order_owner = event_owners(rng, people, beh[:, 0], 0.56)
    k = len(order_owner)
    order_ts = activity_times(rng, people, order_owner)
    lines_per_order = 1 + rng.poisson(beh[order_owner, 2] - 1)
    line_order = np.repeat(np.arange(k), lines_per_order)
    owner = order_owner[line_order]
    m = len(owner)
    segment = people["segment"].to_numpy()[owner]
    region = people["region"].to_numpy(dtype=object)[owner]
    price = np.round(rng.gamma(2.0, beh[owner, 3] / 2.0), 2)
    quantity = 1 + rng.poisson(0.4, m)
    bulk = (segment == "business") & mask(rng, m, 0.05)
    quantity = np.where(bulk, rng.integers(50, 500, m), quantity)
    is_return = mask(rng, m, 0.06)
    price[mask(rng, m, 0.0005)] *= -1  # impossible: bronze quarantines negative prices
    email = email_variants(rng, people["email"].to_numpy(dtype=object)[owner], 0.1)
    email[mask(rng, m, 0.05)] = None
    order_ids = np.array([f"O{i:09d}" for i in rng.permutation(k) + 1], dtype=object)
    line_no = np.arange(m) - np.repeat(np.cumsum(lines_per_order) - lines_per_order, lines_per_order) + 1
    return pd.DataFrame(
        {
            "order_line_id": order_ids[line_order] + "-" + line_no.astype(str).astype(object),
            "order_id": order_ids[line_order],
            "ordered_at": pd.to_datetime(order_ts[line_order], unit="s", utc=True),
            "customer_email": email,
            "loyalty_number": people["loyalty_number"].to_numpy(dtype=object)[owner],
            "shipping_postcode": people["postcode"].to_numpy(dtype=object)[owner],
            "product_category": CATEGORIES[rng.integers(0, len(CATEGORIES), m)],
            "quantity": quantity.astype(np.int64),
            "unit_price": price,
            "currency": np.array([REGION_PROFILES[r].currency for r in region], dtype=object),
            "is_return": is_return,
            "region": region,
            "_person": people["person_id"].to_numpy(dtype=object)[owner],
        }
    )


def with_unit_costs(rng: np.random.Generator, orders: pd.DataFrame) -> pd.DataFrame:
    """The product's unit cost, known for about 80% of lines (40-75% of the price)."""
    m = len(orders)
    cost = np.round(np.abs(orders["unit_price"].to_numpy()) * rng.uniform(0.40, 0.75, m), 2)
    known = rng.random(m) < 0.8
    return orders.assign(unit_cost=np.where(known, cost, np.nan))
