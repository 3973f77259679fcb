"""The feature registry: expansion per window, the feature-set version hash, and agreement between
the registered types and what customer_features produces."""
from __future__ import annotations

import dataclasses
import re

import pytest

from customer360.features.registry import DEFINITIONS, REGISTRY_SCHEMA, expand, feature_set_version, registry_rows

from tests.features.conftest import REGION_WINDOWS

NON_WINDOWED = [
    "recency_days", "orders_total", "net_revenue_total", "avg_order_value", "bulk_orders", "first_order_date",
    "mean_interpurchase_days", "tenure_days", "orders_per_year", "overdue_ratio", "rfm_recency_score",
    "rfm_frequency_score", "rfm_monetary_score", "rfm_score", "top_category", "category_entropy", "sessions_total",
    "ticket_recency_days", "avg_satisfaction", "is_monetary_outlier", "is_cold_start",
]
WINDOWED_STEMS = [
    "frequency", "monetary", "frequency_trend", "monetary_trend", "order_rate_ratio", "session_rate_ratio", "sessions",
    "sessions_trend", "pages_per_session", "avg_session_seconds", "active_days", "view_to_purchase", "tickets",
    "low_rated_tickets",
]


def test_expand_names_windows_in_registry_order():
    features = expand([30, 7, 30])  # unordered, repeated: sorted and de-duplicated
    assert [f.name for f in features] == [
        "recency_days",
        "frequency_7d", "frequency_30d",
        "monetary_7d", "monetary_30d",
        "frequency_trend_7d", "frequency_trend_30d",
        "monetary_trend_7d", "monetary_trend_30d",
        "orders_total", "net_revenue_total", "avg_order_value", "bulk_orders", "first_order_date",
        "mean_interpurchase_days", "tenure_days",
        "orders_per_year", "overdue_ratio", "order_rate_ratio_7d", "order_rate_ratio_30d", "session_rate_ratio_7d", "session_rate_ratio_30d",
        "rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score", "rfm_score",
        "top_category", "category_entropy",
        "sessions_total", "sessions_7d", "sessions_30d", "sessions_trend_7d", "sessions_trend_30d",
        "pages_per_session_7d", "pages_per_session_30d",
        "avg_session_seconds_7d", "avg_session_seconds_30d",
        "active_days_7d", "active_days_30d",
        "view_to_purchase_7d", "view_to_purchase_30d",
        "tickets_7d", "tickets_30d", "low_rated_tickets_7d", "low_rated_tickets_30d",
        "ticket_recency_days", "avg_satisfaction", "is_monetary_outlier", "is_cold_start",
    ]
    by_name = {f.name: f for f in features}
    assert (by_name["frequency_7d"].window_days, by_name["tickets_30d"].window_days, by_name["recency_days"].window_days) == (7, 30, None)
    assert by_name["frequency_30d"].description == "orders in the 30 days up to the as-of date"
    assert (by_name["monetary_7d"].family, by_name["monetary_7d"].data_type, by_name["monetary_7d"].version) == ("orders", "double", 1)
    assert [f.name for f in features if "{" in f.name or "{" in f.description] == []


def test_expand_without_windows_has_only_the_unwindowed_features():
    assert [f.name for f in expand([])] == NON_WINDOWED


def test_definitions_have_unique_names_and_descriptions():
    names = [d.name for d in DEFINITIONS]
    assert len(names) == len(set(names))
    assert [d.name for d in DEFINITIONS if not d.description.strip()] == []
    assert [d.name for d in DEFINITIONS if d.windowed != ("{w}" in d.name)] == []
    expanded = [f.name for f in expand([7, 30, 90, 180])]
    assert len(expanded) == len(set(expanded)) == 21 + 14 * 4


def test_feature_set_version_is_stable_for_the_same_definitions_and_windows():
    version = feature_set_version(expand([30, 90]))
    assert re.fullmatch(r"fs-[0-9a-f]{12}", version)
    assert feature_set_version(expand([90, 30, 30])) == version
    assert feature_set_version(list(expand([30, 90]))) == version
    # the description is documentation, not part of the computation
    reworded = [dataclasses.replace(f, description=f.description + " (reworded)") for f in expand([30, 90])]
    assert feature_set_version(reworded) == version


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: dataclasses.replace(f, version=f.version + 1) if f.name == "monetary_30d" else f, id="version bump"),
        pytest.param(lambda f: dataclasses.replace(f, data_type="decimal(18,2)") if f.name == "monetary_30d" else f, id="type"),
        pytest.param(lambda f: dataclasses.replace(f, name="spend_30d") if f.name == "monetary_30d" else f, id="rename"),
    ],
)
def test_feature_set_version_changes_with_a_definition(change):
    features = expand([30, 90])
    changed = [change(f) for f in features]
    assert changed != list(features)
    assert feature_set_version(changed) != feature_set_version(features)


def test_feature_set_version_changes_with_windows_and_with_the_set():
    base = feature_set_version(expand([30, 90]))
    assert len({base, feature_set_version(expand([30])), feature_set_version(expand([30, 90, 180])),
                feature_set_version(expand([7, 90]))}) == 4
    assert feature_set_version(expand([30, 90])[:-1]) != base  # a feature dropped


def test_registry_rows_shape(spark):
    rows = registry_rows("ra", [90, 30])
    version = feature_set_version(expand([30, 90]))
    assert len(rows) == 21 + 14 * 2
    assert {len(r) for r in rows} == {len(REGISTRY_SCHEMA.fields)}
    assert {(r[0], r[8]) for r in rows} == {(version, "ra")}
    by_name = {r[1]: r for r in rows}
    assert by_name["frequency_30d"] == (version, "frequency_30d", "orders", "orders in the 30 days up to the as-of date", 30, 1, "bigint", None, "ra")
    assert by_name["is_cold_start"][4:7] == (None, 1, "boolean")
    assert [r[1] for r in rows] == [f.name for f in expand([30, 90])]
    # the rows fit the table's schema (non-null columns included)
    df = spark.createDataFrame(rows, REGISTRY_SCHEMA)
    assert sorted(r.name for r in df.where("window_days = 90").collect()) == sorted(f"{stem}_90d" for stem in WINDOWED_STEMS)
    # the settings are recorded with the rows and change the version
    with_settings = registry_rows("ra", [30, 90], {"outlier_z": 3.5, "session_timeout_minutes": 30})
    assert {r[7] for r in with_settings} == {'{"outlier_z": 3.5, "session_timeout_minutes": 30}'}
    assert {r[0] for r in with_settings} == {feature_set_version(expand([30, 90]), {"outlier_z": 3.5, "session_timeout_minutes": 30})} != {version}
    # regions with other windows get another version
    assert {r[0] for r in registry_rows("rb", [30, 90, 180])} == {feature_set_version(expand([30, 90, 180]))} != {version}


def test_customer_features_columns_have_the_registered_types(features):
    union = sorted({w for ws in REGION_WINDOWS.values() for w in ws})
    schema = features.schema
    mismatched = {
        f.name: (schema[f.name].dataType.simpleString(), f.data_type)
        for f in expand(union)
        if schema[f.name].dataType.simpleString() != f.data_type
    }
    assert mismatched == {}
    assert (schema["as_of_date"].dataType.simpleString(), schema["feature_set_version"].dataType.simpleString()) == ("date", "string")
