"""Churn: label windows to the microsecond (UTC), buyers only, cold start, class weights, the
candidate pipelines and baselines, the deployed (calibrated) pipeline, the cost threshold, and the point-in-time guarantee
of features plus labels (later facts change neither the features at a cutoff nor, beyond the
horizon, the labels)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.ml.functions import vector_to_array

from customer360.config import ChurnConfig, ChurnCosts, ForestParams, GbtParams, LogisticParams, load_config
from customer360.features.compute import customer_features
from customer360.ml import calibration
from customer360.ml.churn import (
    PREFIX,
    RAW_SCORE,
    ChurnError,
    churn_scores,
    decision_threshold,
    deployed,
    labelled,
    labelled_all,
    labels,
    missing_features,
    model_pipeline,
    raw_scores,
    rule_model,
    trainable,
    with_class_weights,
)

from tests.features.conftest import (
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    ORDERS_SCHEMA,
    SETTINGS,
    TICKETS_SCHEMA,
    event,
    frame,
    login,
    order,
    ts,
)

REPO = Path(__file__).resolve().parents[2]
PRECISION = 1e-9
CUTOFF = date(2025, 3, 31)  # window of the 30-day label: [2025-04-01 00:00, 2025-05-01 00:00) UTC
HORIZON = 30
FEATURES_SCHEMA = "region string, customer_id string, orders_total bigint, is_cold_start boolean"


@pytest.fixture(scope="module")
def churn_settings() -> ChurnConfig:
    return load_config("local", conf_dir=REPO / "conf").ml.churn


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --- labels ---------------------------------------------------------------------------------------

def test_labels_window_is_after_the_cutoff_day_up_to_the_end_of_the_horizon(spark):
    orders = spark.createDataFrame(
        [
            order("l1", "o1", "ra", "k1", utc(2025, 3, 31, 23, 59, 59, 999999), "books", 1, "10.00"),  # cutoff day: out
            order("l2", "o2", "ra", "k2", utc(2025, 4, 1), "books", 1, "10.00"),  # first instant after it: in
            order("l3", "o3", "ra", "k2", utc(2025, 4, 2), "books", 1, "10.00"),  # a second order: one row
            order("l4", "o4", "ra", "k3", utc(2025, 4, 30, 23, 59, 59, 999999), "books", 1, "10.00"),  # last microsecond: in
            order("l5", "o5", "ra", "k4", utc(2025, 5, 1), "books", 1, "10.00"),  # cutoff + H + 1 day: out
            order("l6", "o6", "rb", "k1", utc(2025, 4, 15), "books", 1, "10.00"),  # same id, other region
        ],
        ORDERS_SCHEMA,
    )
    expected = spark.createDataFrame(
        [("ra", "k2", True), ("ra", "k3", True), ("rb", "k1", True)], "region string, customer_id string, _bought boolean"
    )
    got = labels(orders, at=CUTOFF, horizon_days=HORIZON)
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


@pytest.fixture(scope="module")
def label_inputs(spark):
    features = spark.createDataFrame(
        [
            ("ra", "b1", 3, False),  # bought again in the window: stays
            ("ra", "b2", 1, True),  # ordered only before the cutoff: churn
            ("rb", "b1", 2, False),  # b1 of the other region bought nothing: churn
            ("ra", "n1", 0, True),  # never bought by the cutoff: not labelled, though it buys in the window
            ("ra", "n2", None, None),
        ],
        FEATURES_SCHEMA,
    )
    orders = spark.createDataFrame(
        [
            order("l1", "o1", "ra", "b1", utc(2025, 4, 10), "books", 1, "10.00"),
            order("l2", "o2", "ra", "b2", utc(2025, 3, 20), "books", 1, "10.00"),
            order("l3", "o3", "ra", "n1", utc(2025, 4, 20), "books", 1, "10.00"),
            order("l4", "o4", "rb", "b1", utc(2025, 5, 2), "books", 1, "10.00"),  # after the horizon
        ],
        ORDERS_SCHEMA,
    )
    return features, orders


def test_labelled_keeps_buyers_only_and_labels_churn_as_one(spark, label_inputs):
    expected = spark.createDataFrame(
        [("ra", "b1", 3, False, 0.0), ("ra", "b2", 1, True, 1.0), ("rb", "b1", 2, False, 1.0)],
        f"{FEATURES_SCHEMA}, label double",
    )
    got = labelled(*label_inputs, at=CUTOFF, horizon_days=HORIZON)
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_labelled_all_labels_everyone(spark, label_inputs):
    expected = spark.createDataFrame(
        [
            ("ra", "b1", 3, False, 0.0), ("ra", "b2", 1, True, 1.0), ("rb", "b1", 2, False, 1.0),
            ("ra", "n1", 0, True, 0.0), ("ra", "n2", None, None, 1.0),
        ],
        f"{FEATURES_SCHEMA}, label double",
    )
    got = labelled_all(*label_inputs, at=CUTOFF, horizon_days=HORIZON)
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_trainable_drops_cold_start_and_keeps_an_unknown_one(spark, label_inputs):
    # is_cold_start null is treated as not cold start: the row is kept
    got = trainable(label_inputs[0])
    expected = spark.createDataFrame([("ra", "b1", 3, False), ("rb", "b1", 2, False), ("ra", "n2", None, None)], FEATURES_SCHEMA)
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


# --- class weights, threshold ---------------------------------------------------------------------

def test_with_class_weights_balances_the_classes_and_returns_the_churn_rate(spark):
    df = spark.createDataFrame([("a", 1.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)], "customer_id string, label double")
    got, prior = with_class_weights(df)
    # n = 4, 1 churner: 4 / (2 * 1) = 2 and 4 / (2 * 3) = 2/3; each class then weighs 2 in total
    expected = spark.createDataFrame(
        [("a", 1.0, 2.0), ("b", 0.0, 2 / 3), ("c", 0.0, 2 / 3), ("d", 0.0, 2 / 3)], "customer_id string, label double, _weight double"
    )
    assert prior == 0.25
    assert_approx_df_equality(got, expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_with_class_weights_needs_both_classes(spark, label):
    df = spark.createDataFrame([("a", label), ("b", label)], "customer_id string, label double")
    with pytest.raises(ChurnError, match=f"{int(label) * 2} churners among 2 customers"):
        with_class_weights(df)


def test_decision_threshold_from_the_regions_cost_matrix():
    # conf/base.yaml: offer 15, lost customer 120, an offer keeps half the churners: 15 / (0.5 * 120)
    config = load_config("local", conf_dir=REPO / "conf")
    assert decision_threshold(config.regions["us"].churn_costs) == pytest.approx(0.25)
    costs = ChurnCosts(lost_customer=200.0, retention_offer=20.0, offer_success_rate=0.4)
    p = decision_threshold(costs)
    # at the threshold an offer's expected saving equals its cost: p * success * lost == offer
    assert (p, p * 0.4 * 200.0) == (pytest.approx(0.25), pytest.approx(20.0))
    # an offer dearer than what it can save: nobody is flagged (a churn probability never reaches 1.5)
    assert decision_threshold(ChurnCosts(lost_customer=10.0, retention_offer=15.0)) == 1.0


@pytest.mark.parametrize(
    ("values", "field"),
    [({"lost_customer": 0.0, "retention_offer": 15.0}, "lost_customer"),
     ({"lost_customer": 120.0, "retention_offer": -1.0}, "retention_offer"),
     ({"lost_customer": 120.0, "retention_offer": 15.0, "offer_success_rate": 1.5}, "offer_success_rate"),
     ({"lost_customer": 120.0, "retention_offer": 15.0, "offer_success_rate": 0.0}, "offer_success_rate")],
)
def test_a_cost_matrix_out_of_range_is_refused(values, field):
    with pytest.raises(ValidationError, match=field):
        ChurnCosts(**values)


def test_missing_features_in_the_order_asked(spark):
    df = spark.createDataFrame([], "customer_id string, a double, c double")
    assert (missing_features(df, ["a", "b", "c", "d"]), missing_features(df, ["c", "a"])) == (["b", "d"], [])


# --- candidate pipelines, baselines, the deployed pipeline ----------------------------------------

def _random_customers(spark, names, *, n=60, seed=12):
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 20.0, size=(n, len(names)))
    recency = rng.uniform(0, 200, n)
    values[:, names.index("recency_days")] = recency
    churned = (recency + rng.normal(0, 60, n) > 120).astype(float)
    rows = []
    for i in range(n):
        feats = [None if (name == "ticket_recency_days" and i % 3 == 0) else float(v) for name, v in zip(names, values[i])]
        rows.append(("ra", f"c{i:02d}", *feats, float(churned[i])))
    return spark.createDataFrame(rows, "region string, customer_id string, " + ", ".join(f"{f} double" for f in names) + ", label double")


@pytest.mark.parametrize("name", ["gbt", "logistic", "random_forest"])
def test_each_candidate_pipeline_fits_and_its_raw_score_ranks_like_its_probability(spark, churn_settings, name):
    names = list(churn_settings.features)
    df = _random_customers(spark, names)
    weighted, _ = with_class_weights(df)
    quick = {"gbt": GbtParams(max_iter=5), "logistic": LogisticParams(max_iter=15), "random_forest": ForestParams(num_trees=5)}[name]
    model = model_pipeline(name, quick, names).fit(weighted)
    raw = raw_scores(model, df)
    assert raw.columns == ["region", "customer_id", "label", RAW_SCORE]
    probability = model.transform(df).select("customer_id", vector_to_array(f"{PREFIX}probability")[1].alias("p"))
    pairs = sorted((r["p"], r[RAW_SCORE]) for r in raw.join(probability, "customer_id").collect())
    # the churn entry of rawPrediction orders customers exactly as the churn probability does
    assert [x for _, x in pairs] == sorted(x for _, x in pairs)
    assert len({x for _, x in pairs}) > 3  # a real spread, not a constant
    # no column is called "prediction" before the calibrator: that name is the calibrated probability's
    assert "prediction" not in model.transform(df).columns


def test_preparation_treats_nan_like_null(spark):
    # MLflow's pyfunc hands a pandas frame to Spark: a missing number arrives as NaN, not null
    from pyspark.ml import Pipeline

    from customer360.ml.churn import VECTOR, preparation

    df = spark.createDataFrame([("a", 2.0), ("b", None), ("c", float("nan"))], "customer_id string, x double")
    model = Pipeline(stages=preparation(["x"])).fit(df)
    got = {r.customer_id: list(r.v) for r in model.transform(df).select("customer_id", vector_to_array(VECTOR).alias("v")).collect()}
    assert got == {"a": [2.0, 0.0], "b": [0.0, 1.0], "c": [0.0, 1.0]}


def test_a_baseline_rule_scores_recency_and_an_unknown_rule_is_refused(spark):
    df = spark.createDataFrame([("ra", "a", 10, 1.0), ("ra", "b", None, 0.0)], "region string, customer_id string, recency_days int, label double")
    got = raw_scores(rule_model("recency"), df)
    expected = spark.createDataFrame([("ra", "a", 1.0, 10.0), ("ra", "b", 0.0, 0.0)], f"region string, customer_id string, label double, {RAW_SCORE} double")
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)
    with pytest.raises(ChurnError, match="unknown churn baseline 'tenure'"):
        rule_model("tenure")


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_the_deployed_pipeline_gives_the_calibrated_probability_of_the_raw_score(spark, churn_settings, method):
    names = list(churn_settings.features)
    df = _random_customers(spark, names, n=80)
    weighted, _ = with_class_weights(df)
    model = model_pipeline("logistic", LogisticParams(max_iter=15), names).fit(weighted)
    raw = raw_scores(model, df)
    calibrator = calibration.fit(method, raw)
    pipeline = deployed(model, calibrator)
    got = churn_scores(pipeline, df)
    assert got.columns == [*df.columns, "churn_score"]  # helper columns dropped
    expected = calibration.apply(calibrator, raw).select("customer_id", "churn_score")
    assert_approx_df_equality(got.select("customer_id", "churn_score"), expected, 1e-9, ignore_nullable=True, ignore_row_order=True)
    assert got.where("churn_score < 0 OR churn_score > 1").count() == 0


# --- point in time: features at the cutoff and labels after it ------------------------------------

WINDOWS = {"ra": (30,)}  # one window keeps the plan small
LEAK_CUSTOMERS = [
    ("ra", "L1", ts(2024, 6, 1)),
    ("ra", "L2", ts(2024, 6, 1)),
    ("ra", "L3", ts(2024, 6, 1)),
    ("ra", "L4", ts(2025, 1, 1)),  # no order by the cutoff: never labelled
]
LEAK_ORDERS = [
    order("l1", "o1", "ra", "L1", ts(2025, 2, 10, 10), "books", 1, "40.00"),
    order("l2", "o2", "ra", "L1", ts(2025, 3, 20, 10), "toys", 2, "60.00"),
    order("l3", "o3", "ra", "L2", ts(2025, 3, 10, 10), "books", 1, "25.00"),
    order("l4", "o4", "ra", "L2", ts(2025, 3, 31, 23, 59, 59), "books", 1, "15.00"),  # last second of the cutoff day
    order("l5", "o5", "ra", "L3", ts(2025, 1, 5, 10), "garden", 1, "90.00"),
]
LEAK_EVENTS = [
    login("e1", "L1", ts(2025, 3, 21, 9), "v1", "ra"),
    event("e2", "L1", ts(2025, 3, 21, 9, 5), "product_view", "v1", "earlier_login", ts(2025, 3, 21, 9), "ra", category="books"),
]
# (a) in the label window (2025-04-01 00:00 to 2025-05-01 00:00)
WINDOW_ORDERS = [
    order("l6", "o6", "ra", "L2", ts(2025, 4, 1), "books", 1, "30.00"),  # the first instant after the cutoff day
    order("l7", "o7", "ra", "L4", ts(2025, 4, 15, 10), "books", 1, "30.00"),
]
WINDOW_EVENTS = [  # L1 browses and even fires a web purchase event, but places no order
    login("e3", "L1", ts(2025, 4, 2, 9), "v1", "ra"),
    event("e4", "L1", ts(2025, 4, 2, 9, 5), "product_view", "v1", "earlier_login", ts(2025, 4, 2, 9), "ra", category="toys"),
    event("e5", "L1", ts(2025, 4, 2, 9, 10), "purchase", "v1", "earlier_login", ts(2025, 4, 2, 9), "ra", category="toys"),
    event("e6", "L3", ts(2025, 3, 31, 23, 59, 59), "page_view", "v3", "later_login", ts(2025, 4, 3, 9), "ra"),  # stitched later
    login("e7", "L3", ts(2025, 4, 3, 9), "v3", "ra"),
]
# (b) after the horizon
LATE_ORDERS = [
    order("l8", "o8", "ra", "L3", ts(2025, 5, 1), "books", 1, "30.00"),  # the first instant after the window
    order("l9", "o9", "ra", "L1", ts(2025, 6, 1, 10), "books", 1, "30.00"),
]


@pytest.fixture(scope="module")
def leak(spark):
    tickets = frame(spark, [], TICKETS_SCHEMA)
    customers = frame(spark, LEAK_CUSTOMERS, CUSTOMERS_SCHEMA)

    def features(orders, events):
        return customer_features(customers, frame(spark, orders, ORDERS_SCHEMA), frame(spark, events, EVENTS_SCHEMA), tickets,
                                 as_of=CUTOFF, region_windows=WINDOWS, timeout_minutes={"ra": 30}, settings=SETTINGS)

    at_cutoff = features(LEAK_ORDERS, LEAK_EVENTS).cache()
    # (a) and (b) together: if either leaked into the features at the cutoff, they would differ
    with_later_facts = features(LEAK_ORDERS + WINDOW_ORDERS + LATE_ORDERS, LEAK_EVENTS + WINDOW_EVENTS)
    yield at_cutoff, with_later_facts
    at_cutoff.unpersist()


def test_features_at_the_cutoff_ignore_facts_after_it(spark, leak):
    at_cutoff, with_later_facts = leak
    assert_df_equality(with_later_facts, at_cutoff, ignore_row_order=True)
    # not vacuous: the values at the cutoff (L2's order in the last second of the day counts)
    expected = spark.createDataFrame(
        [("ra", "L1", 2, 11, 1, 1), ("ra", "L2", 2, 0, 2, 0), ("ra", "L3", 1, 85, 0, 0), ("ra", "L4", 0, None, 0, 0)],
        "region string, customer_id string, orders_total bigint, recency_days int, frequency_30d bigint, sessions_30d bigint",
    )
    got = at_cutoff.select("region", "customer_id", "orders_total", "recency_days", "frequency_30d", "sessions_30d")
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_labels_change_only_with_orders_in_the_window(spark, leak):
    features = leak[0]

    def label(orders):
        return labelled(features, spark.createDataFrame(orders, ORDERS_SCHEMA), at=CUTOFF, horizon_days=HORIZON)

    base = label(LEAK_ORDERS).cache()
    schema = "region string, customer_id string, label double"
    # nothing after the cutoff yet: every buyer has churned; L4 bought nothing by the cutoff
    assert_df_equality(
        base.select("region", "customer_id", "label"),
        spark.createDataFrame([("ra", "L1", 1.0), ("ra", "L2", 1.0), ("ra", "L3", 1.0)], schema),
        ignore_nullable=True, ignore_row_order=True,
    )
    # (b) orders after the horizon change nothing
    assert_df_equality(label(LEAK_ORDERS + LATE_ORDERS), base, ignore_row_order=True)
    # (a) an order in the window flips exactly L2 (L1 only browsed; L4 was not a buyer at the cutoff)
    in_window = label(LEAK_ORDERS + WINDOW_ORDERS)
    assert_df_equality(
        in_window.select("region", "customer_id", "label"),
        spark.createDataFrame([("ra", "L1", 1.0), ("ra", "L2", 0.0), ("ra", "L3", 1.0)], schema),
        ignore_nullable=True, ignore_row_order=True,
    )
    assert_df_equality(in_window.drop("label"), base.drop("label"), ignore_row_order=True)
    base.unpersist()
