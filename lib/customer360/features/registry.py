"""The one registry of feature definitions: name, family, description, window, version, type.

Windowed definitions expand per region into one feature per configured window (``frequency_30d``,
``frequency_90d``, ...). The feature-set version is a hash of the expanded definitions (names,
windows, versions, types) and the settings they are computed with (outlier and cold-start
thresholds, bot rules, session timeout), so changing a definition's version, a window, a setting
or the set itself gives a new version; gold tables carry it on every row, and ``gold.feature_registry`` lists the
definitions behind each version. Change a feature's computation => bump its ``version`` here.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import types as T

from customer360.config import FeaturesConfig
from customer360.lakehouse.common import described_columns


@dataclass(frozen=True)
class FeatureDefinition:
    name: str  # "{w}" stands for the window in days
    family: str
    description: str
    version: int
    data_type: str  # Spark SQL type name
    windowed: bool = False


@dataclass(frozen=True)
class Feature:
    name: str
    family: str
    description: str
    version: int
    data_type: str
    window_days: int | None


DEFINITIONS: tuple[FeatureDefinition, ...] = (
    # orders (net revenue in the reporting currency; bulk orders count as orders but not in averages)
    FeatureDefinition("recency_days", "orders", "days from the last order to the as-of date; null without orders", 1, "int"),
    FeatureDefinition("frequency_{w}d", "orders", "orders in the {w} days up to the as-of date", 1, "bigint", True),
    FeatureDefinition("monetary_{w}d", "orders", "net revenue (returns netted, reporting currency) of orders in the {w} days up to the as-of date", 1, "double", True),
    FeatureDefinition("frequency_trend_{w}d", "trend", "orders in the last {w} days / orders in the {w} days before; null when the earlier window has none", 1, "double", True),
    FeatureDefinition("monetary_trend_{w}d", "trend", "net revenue in the last {w} days / net revenue in the {w} days before; null when the earlier window has none", 1, "double", True),
    FeatureDefinition("orders_total", "orders", "orders up to the as-of date", 1, "bigint"),
    FeatureDefinition("net_revenue_total", "orders", "net revenue of all orders up to the as-of date", 1, "double"),
    FeatureDefinition("avg_order_value", "orders", "mean net revenue per order, bulk orders left out; null without ordinary orders", 1, "double"),
    FeatureDefinition("bulk_orders", "outliers", "orders whose total quantity has a robust z-score above features.outlier_z within the region", 1, "bigint"),
    FeatureDefinition("first_order_date", "orders", "date (UTC) of the first order", 1, "date"),
    FeatureDefinition("mean_interpurchase_days", "orders", "mean days between consecutive order dates; null with fewer than two order dates", 1, "double"),
    FeatureDefinition("tenure_days", "orders", "days from the customer's first record or activity to the as-of date", 1, "int"),
    # cadence: the customer's recent pace against their own usual pace
    FeatureDefinition("orders_per_year", "cadence", "orders per 365 days of tenure (a tenure under 30 days counts as 30); null without orders", 1, "double"),
    FeatureDefinition("overdue_ratio", "cadence", "recency_days / mean_interpurchase_days: time since the last order in units of the customer's usual gap; null with fewer than two order dates", 1, "double"),
    FeatureDefinition("order_rate_ratio_{w}d", "cadence", "orders per day in the {w} days up to the as-of date / orders per day over the tenure (at least {w} days); null without orders", 1, "double", True),
    FeatureDefinition("session_rate_ratio_{w}d", "cadence", "web sessions per day in the {w} days up to the as-of date / sessions per day over the tenure (at least {w} days); null without sessions", 1, "double", True),
    # RFM quintiles within the region, over the region's longest window
    FeatureDefinition("rfm_recency_score", "rfm", "1-5 quintile of recency within the region (5 = most recent); null without orders", 1, "int"),
    FeatureDefinition("rfm_frequency_score", "rfm", "1-5 quintile of frequency over the region's longest window (5 = most orders)", 1, "int"),
    FeatureDefinition("rfm_monetary_score", "rfm", "1-5 quintile of net revenue over the region's longest window (5 = highest)", 1, "int"),
    FeatureDefinition("rfm_score", "rfm", "the three RFM scores as one code, e.g. '545'", 1, "string"),
    # category mix over all orders up to the as-of date (net revenue of lines not returned)
    FeatureDefinition("top_category", "category", "product category with the highest net revenue (ties: alphabetical)", 1, "string"),
    FeatureDefinition("category_entropy", "category", "Shannon entropy (bits) of net revenue across categories; 0 = one category", 1, "double"),
    # web sessions (attributed, not bot-like)
    FeatureDefinition("sessions_total", "web", "web sessions up to the as-of date", 1, "bigint"),
    FeatureDefinition("sessions_{w}d", "web", "web sessions started in the {w} days up to the as-of date", 1, "bigint", True),
    FeatureDefinition("sessions_trend_{w}d", "trend", "web sessions in the last {w} days / sessions in the {w} days before; null when the earlier window has none", 1, "double", True),
    FeatureDefinition("pages_per_session_{w}d", "web", "page and product views per session in the {w}-day window; null without sessions", 1, "double", True),
    FeatureDefinition("avg_session_seconds_{w}d", "web", "mean session duration (first to last event) in the {w}-day window; null without sessions", 1, "double", True),
    FeatureDefinition("active_days_{w}d", "web", "distinct days with web activity in the {w}-day window", 1, "bigint", True),
    FeatureDefinition("view_to_purchase_{w}d", "web", "sessions with a product view and a purchase / sessions with a product view, {w}-day window", 1, "double", True),
    # support
    FeatureDefinition("tickets_{w}d", "support", "support tickets opened in the {w} days up to the as-of date", 1, "bigint", True),
    FeatureDefinition("low_rated_tickets_{w}d", "support", "support tickets opened in the {w} days up to the as-of date and rated 1 or 2 (of 5) by the customer", 1, "bigint", True),
    FeatureDefinition("ticket_recency_days", "support", "days from the last ticket to the as-of date; null without tickets", 1, "int"),
    FeatureDefinition("avg_satisfaction", "support", "mean satisfaction (1-5) of rated tickets up to the as-of date", 1, "double"),
    # data quality
    FeatureDefinition("is_monetary_outlier", "outliers", "log(1 + net revenue over the longest window) has a robust z-score above features.outlier_z within the region (buyers only)", 1, "boolean"),
    FeatureDefinition("is_cold_start", "coverage", "too little history: fewer orders than features.cold_start.min_orders or tenure below min_tenure_days", 1, "boolean"),
)


def expand(windows: Sequence[int]) -> tuple[Feature, ...]:
    """The concrete features for a region's windows, in registry order."""
    out = []
    for d in DEFINITIONS:
        for w in sorted(set(windows)) if d.windowed else (None,):
            fmt = {"w": w} if w is not None else {}
            out.append(Feature(d.name.format(**fmt), d.family, d.description.format(**fmt), d.version, d.data_type, w))
    return tuple(out)


def feature_parameters(settings: FeaturesConfig, *, session_timeout_minutes: int) -> dict[str, float | int]:
    """The settings that change what the features mean (thresholds, bot rules, session timeout)."""
    return {
        "outlier_z": settings.outlier_z,
        "cold_start.min_orders": settings.cold_start.min_orders,
        "cold_start.min_tenure_days": settings.cold_start.min_tenure_days,
        "bot.max_session_events": settings.bot.max_session_events,
        "bot.min_events": settings.bot.min_events,
        "bot.max_events_per_minute": settings.bot.max_events_per_minute,
        "session_timeout_minutes": session_timeout_minutes,
    }


def feature_set_version(features: Sequence[Feature], parameters: Mapping[str, float | int] | None = None) -> str:
    """A hash of the expanded definitions and the parameters they were computed with."""
    payload = json.dumps(
        [[(f.name, f.window_days, f.version, f.data_type) for f in features], sorted((parameters or {}).items())]
    )
    return "fs-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


REGISTRY_SCHEMA, REGISTRY_COMMENTS = described_columns(
    ("feature_set_version", T.StringType(), False, "hash of the region's expanded feature definitions; gold rows carry it"),
    ("name", T.StringType(), False, "feature column name"),
    ("family", T.StringType(), False, "orders, trend, cadence, rfm, category, web, support, outliers or coverage"),
    ("description", T.StringType(), False, "what the feature measures"),
    ("window_days", T.IntegerType(), True, "look-back window in days; null for features without one"),
    ("version", T.IntegerType(), False, "definition version; bumped when the computation changes"),
    ("data_type", T.StringType(), False, "Spark SQL type of the column"),
    ("parameters", T.StringType(), True, "JSON of the settings the version was computed with (thresholds, bot rules, session timeout)"),
    ("region", T.StringType(), False, "region whose windows the row describes (partition)"),
)


def registry_rows(region: str, windows: Sequence[int], parameters: Mapping[str, float | int] | None = None) -> list[tuple]:
    features = expand(windows)
    version = feature_set_version(features, parameters)
    settings = json.dumps(dict(sorted((parameters or {}).items()))) if parameters else None
    return [(version, f.name, f.family, f.description, f.window_days, f.version, f.data_type, settings, region) for f in features]
