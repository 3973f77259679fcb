"""Time to churn (ml/survival.py): durations on hand-made orders (observed and censored lives,
lapsed and never-buying customers dropped, the cut-off's and the horizon's boundaries to the
microsecond, two regions, any session time zone, orders after ``until`` ignored); recovery of a
simulated Weibull AFT model and agreement with lifelines' WeibullAFTFitter; the Weibull mean and
median; Harrell's concordance index on a hand-computed example; the bad paths."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from lifelines import WeibullAFTFitter
from lifelines.utils import concordance_index
from pyspark.ml import PipelineModel
from pyspark.ml.feature import SQLTransformer

from customer360.errors import C360Error
from customer360.ml.survival import (
    MIN_DURATION_DAYS,
    SurvivalError,
    SurvivalParams,
    concordance,
    durations,
    expected_remaining_days,
    fit,
    model_pipeline,
    servable,
    status,
    training_set,
)

AT = date(2025, 3, 31)  # end of at: 2025-04-01 00:00 UTC
UNTIL = date(2025, 6, 29)  # end of until: 2025-06-30 00:00 UTC, 90 days later
GAP = 30
DAY_MICROS = 86_400_000_000
CUSTOMERS_SCHEMA = "region string, customer_id string, segment string"
ORDERS_SCHEMA = "region string, customer_id string, ordered_at timestamp"
DURATIONS_SCHEMA = f"{CUSTOMERS_SCHEMA}, duration_days double, churned double"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --- durations -------------------------------------------------------------------------------------

#: customer -> (orders, expected (duration_days, churned) or None when dropped), region us unless named
CASES = {
    # o_0 = 03-20 12:00; 21 and 9.75 days to the next orders go on; 41.75 days to 06-01 end the life
    # after o_2 = 04-20 06:00: churn at 05-20 06:00, 49 days 6 hours after 04-01 00:00
    "c1": ([utc(2025, 3, 20, 12), utc(2025, 4, 10, 12), utc(2025, 4, 20, 6), utc(2025, 6, 1)], (49.25, 1.0)),
    # o_0 = 03-15 (an order of two lines, so twice; an older order and a null time play no part),
    # nothing after: churn at 04-14, 13 days after the cut-off
    "c2": ([utc(2025, 1, 5), utc(2025, 3, 15), utc(2025, 3, 15), None], (13.0, 1.0)),
    # gaps of 26, 25 and 26.5 days; 06-10 12:00 + 30 days is after the end of until: censored. The
    # order of 07-02 lies after until and is not read
    "c3": ([utc(2025, 3, 25), utc(2025, 4, 20), utc(2025, 5, 15), utc(2025, 6, 10, 12), utc(2025, 7, 2)], (90.0, 0.0)),
    # lapsed: the last order by at is 30.5 days before its end (a later comeback does not matter)
    "c4": ([utc(2025, 3, 1, 12), utc(2025, 4, 5)], None),
    # lapsed exactly: inactivity reaches 30 days at the very end of at
    "c5": ([utc(2025, 3, 2)], None),
    # active by one microsecond: churns one microsecond after the cut-off
    "c6": ([utc(2025, 3, 2, 0, 0, 0, 1)], (1 / DAY_MICROS, 1.0)),
    # no order by at
    "c7": ([utc(2025, 4, 2)], None),
    # an order at the end of at, 00:00 of 04-01, is after the cut-off (as in churn.labels): o_0 is
    # 02-20, 40 days before, so the customer had lapsed
    "c9": ([utc(2025, 2, 20), utc(2025, 4, 1)], None),
    # the last microsecond of at is by at: churn 30 days later, one microsecond short of 30 days
    "c10": ([utc(2025, 3, 31, 23, 59, 59, 999999)], ((30 * DAY_MICROS - 1) / DAY_MICROS, 1.0)),
    # the next order exactly 30 days later comes after the churn at 04-30 00:00 (a comeback)
    "c11": ([utc(2025, 3, 31), utc(2025, 4, 30), utc(2025, 5, 10)], (29.0, 1.0)),
    # one microsecond sooner it goes on: churn at 05-29 23:59:59.999999
    "c12": ([utc(2025, 3, 31), utc(2025, 4, 29, 23, 59, 59, 999999)], ((59 * DAY_MICROS - 1) / DAY_MICROS, 1.0)),
    # churn exactly at the end of until is observed: no order before it could have continued the life
    "c13": ([utc(2025, 3, 25), utc(2025, 4, 20), utc(2025, 5, 15), utc(2025, 5, 31)], (90.0, 1.0)),
    # one microsecond later it is not
    "c14": ([utc(2025, 3, 25), utc(2025, 4, 20), utc(2025, 5, 15), utc(2025, 5, 31, 0, 0, 0, 1)], (90.0, 0.0)),
}


@pytest.fixture(scope="module")
def lives(spark):
    customers = [("us", c, f"seg-{c}") for c in CASES] + [("us", "c8", "never bought"), ("de", "c1", "other region")]
    orders = [("us", c, t) for c, (times, _) in CASES.items() for t in times]
    # de/c1 shares us/c1's id: its one order churns it 30 days later, on 04-29; a customer not in
    # `customers` and rows with a null key are ignored
    orders += [("de", "c1", utc(2025, 3, 30)), ("de", "c99", utc(2025, 3, 30)), (None, "c2", utc(2025, 4, 1)),
               ("us", None, utc(2025, 4, 1))]
    expected = [("us", c, f"seg-{c}", *out) for c, (_, out) in CASES.items() if out is not None]
    expected.append(("de", "c1", "other region", 28.0, 1.0))
    return (spark.createDataFrame(customers, CUSTOMERS_SCHEMA), spark.createDataFrame(orders, ORDERS_SCHEMA),
            spark.createDataFrame(expected, DURATIONS_SCHEMA))


def test_durations_by_hand(lives):
    customers, orders, expected = lives
    got = durations(customers, orders, at=AT, until=UNTIL, gap_days=GAP)
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)
    # dropped: lapsed (c4, c5, c9), no order by at (c7), never bought (c8): 5 of 15 customers
    kept = {(r["region"], r["customer_id"]) for r in got.collect()}
    dropped = {(r["region"], r["customer_id"]) for r in customers.collect()} - kept
    assert dropped == {("us", "c4"), ("us", "c5"), ("us", "c7"), ("us", "c8"), ("us", "c9")}
    assert customers.count() == 15 and got.count() == 10


def test_durations_keep_the_customers_columns_in_their_order(spark, lives):
    _, orders, _ = lives
    customers = spark.createDataFrame([("seg", 7, "c2", "us")], "segment string, n int, customer_id string, region string")
    expected = spark.createDataFrame([("seg", 7, "c2", "us", 13.0, 1.0)],
                                     "segment string, n int, customer_id string, region string, duration_days double, churned double")
    assert_df_equality(durations(customers, orders, at=AT, until=UNTIL, gap_days=GAP), expected, ignore_nullable=True)


def test_durations_ignore_the_session_time_zone_and_orders_after_until(spark, lives):
    customers, orders, expected = lives
    # orders after the end of until, one for each customer (the first instant after it included)
    later = spark.createDataFrame([(r["region"], r["customer_id"], t) for r in customers.collect()
                                   for t in (utc(2025, 6, 30), utc(2025, 7, 15))], ORDERS_SCHEMA)
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        got = durations(customers, orders.unionByName(later), at=AT, until=UNTIL, gap_days=GAP).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert_df_equality(spark.createDataFrame(got, DURATIONS_SCHEMA), expected, ignore_nullable=True, ignore_row_order=True)


def test_a_longer_window_observes_a_censored_churn(spark, lives):
    customers, orders, _ = lives
    got = durations(customers.where("customer_id IN ('c3', 'c14')"), orders, at=AT, until=date(2025, 7, 31), gap_days=GAP)
    # until 07-31 ends at 08-01 00:00. c3's 07-02 order (21.5 days after 06-10 12:00) now continues
    # the life, which ends at 08-01 00:00, exactly the end of until: observed, 122 days after the
    # cut-off. c14 churns at 06-30 00:00:00.000001, 90 days and a microsecond after it
    expected = spark.createDataFrame(
        [("us", "c3", "seg-c3", 122.0, 1.0), ("us", "c14", "seg-c14", (90 * DAY_MICROS + 1) / DAY_MICROS, 1.0)],
        DURATIONS_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


# --- model: recovery of a simulated Weibull AFT ----------------------------------------------------

TRUE_INTERCEPT, TRUE_BETA, TRUE_SIGMA = 3.0, np.array([0.5, -0.3]), 0.5
N = 5000


@pytest.fixture(scope="module")
def simulated(spark):
    """log T = 3 + 0.5 x1 - 0.3 x2 + 0.5 eps, eps standard minimum extreme value (the log of an
    Exp(1)); censored at a Uniform(0, 55) time (about 30% censored); x2 has mean 1 and sd 2, so
    scaling matters. Returns (pandas frame with the true times, Spark frame, fitted model)."""
    rng = np.random.default_rng(20250331)
    x = np.column_stack([rng.normal(0.0, 1.0, N), rng.normal(1.0, 2.0, N)])
    linear = TRUE_INTERCEPT + x @ TRUE_BETA
    true_time = np.exp(linear + TRUE_SIGMA * np.log(rng.exponential(1.0, N)))
    censor_at = rng.uniform(0.0, 55.0, N)
    frame = pd.DataFrame({
        "region": "us", "customer_id": [f"s{i}" for i in range(N)], "x1": x[:, 0], "x2": x[:, 1],
        "duration_days": np.minimum(true_time, censor_at), "churned": (true_time <= censor_at).astype(float),
    })
    df = spark.createDataFrame(frame).localCheckpoint()
    model = fit(df, features=["x1", "x2"], params=SurvivalParams())
    frame["true_time"], frame["true_linear"] = true_time, linear
    return frame, df, model


def unscaled(model: PipelineModel) -> tuple[float, np.ndarray, float]:
    """(intercept, beta, sigma) on the raw features: the model sees [x1, missing_x1, x2, missing_x2]
    standardized, x_s = (x - m) / s, so beta = beta_s / s and b = b_s - sum(beta_s m / s)."""
    scaler, aft = model.stages[-2], model.stages[-1]
    mean, std, coef = (np.array(v.toArray()) for v in (scaler.mean, scaler.std, aft.coefficients))
    used = [0, 2]  # the missing indicators are constant 0 here: std 0, coefficient 0
    assert coef[[1, 3]].tolist() == [0.0, 0.0]
    beta = coef[used] / std[used]
    return aft.intercept - float(np.sum(beta * mean[used])), beta, aft.scale


def lifelines_fit(frame: pd.DataFrame) -> WeibullAFTFitter:
    """lifelines on the same data the model learnt from (durations floored as training_set does)."""
    data = frame[["x1", "x2", "duration_days", "churned"]].assign(duration_days=lambda d: d.duration_days.clip(lower=MIN_DURATION_DAYS))
    return WeibullAFTFitter().fit(data, duration_col="duration_days", event_col="churned")


def test_the_simulation_is_censored_about_thirty_percent(simulated):
    frame, _, _ = simulated
    assert 0.27 < 1 - frame["churned"].mean() < 0.33


def test_fit_recovers_the_true_parameters(simulated):
    # standard errors with n = 5000 (~3500 events): about 0.009 for b and beta_1, 0.005 for beta_2,
    # 0.007 for sigma; the tolerances are 4 to 6 of them
    frame, _, model = simulated
    intercept, beta, sigma = unscaled(model)
    assert intercept == pytest.approx(TRUE_INTERCEPT, abs=0.05)
    assert beta == pytest.approx(TRUE_BETA, abs=0.04)
    assert sigma == pytest.approx(TRUE_SIGMA, abs=0.03)


def test_fit_agrees_with_lifelines(simulated):
    # both maximise the same likelihood on the same data: the estimates agree to the optimisers'
    # tolerance (about 1e-5 here)
    frame, _, model = simulated
    intercept, beta, sigma = unscaled(model)
    reference = lifelines_fit(frame).params_
    assert intercept == pytest.approx(reference["lambda_", "Intercept"], abs=1e-4)
    assert beta == pytest.approx([reference["lambda_", "x1"], reference["lambda_", "x2"]], abs=1e-4)
    # lifelines' shape rho = 1 / sigma, fitted as log rho
    assert sigma == pytest.approx(1 / math.exp(reference["rho_", "Intercept"]), abs=1e-4)


def test_expected_and_median_remaining_days(spark, simulated):
    frame, df, model = simulated
    got = expected_remaining_days(model, df)
    assert got.columns == [*df.columns, "expected_remaining_days", "median_remaining_days"]
    scored = got.toPandas().set_index("customer_id").loc[frame["customer_id"]]
    # against the fitted parameters by hand: lambda = exp(b + x.beta), mean lambda Gamma(1 + sigma),
    # median lambda (ln 2)^sigma
    intercept, beta, sigma = unscaled(model)
    lam = np.exp(intercept + frame[["x1", "x2"]].to_numpy() @ beta)
    np.testing.assert_allclose(scored["expected_remaining_days"], lam * math.gamma(1 + sigma), rtol=1e-9)
    np.testing.assert_allclose(scored["median_remaining_days"], lam * math.log(2) ** sigma, rtol=1e-9)
    # against lifelines' analytic Weibull mean and median of its own fit (relative differences ~2e-5)
    reference = lifelines_fit(frame)
    np.testing.assert_allclose(scored["expected_remaining_days"], reference.predict_expectation(frame[["x1", "x2"]]), rtol=2e-4)
    np.testing.assert_allclose(scored["median_remaining_days"], reference.predict_median(frame[["x1", "x2"]]), rtol=2e-4)
    # and against the simulated (uncensored) times: their mean is the mean of E[T | x] (sd of the
    # sample mean ~1.5%), half of them fall below the predicted median (sd 0.007)
    assert scored["expected_remaining_days"].mean() == pytest.approx(frame["true_time"].mean(), rel=0.05)
    assert np.mean(frame["true_time"].to_numpy() <= scored["median_remaining_days"].to_numpy()) == pytest.approx(0.5, abs=0.03)


def test_servable_predicts_the_expected_remaining_days(simulated):
    _, df, model = simulated
    both = servable(model).transform(df).select("customer_id", "prediction")
    want = expected_remaining_days(model, df).select("customer_id", F.col("expected_remaining_days").alias("prediction"))
    assert_approx_df_equality(both, want, 1e-9, ignore_row_order=True, ignore_nullable=True)
    assert "prediction" not in expected_remaining_days(servable(model), df).columns


def test_status_of_the_buyers_at_the_cut_off(spark, lives):
    customers, orders, _ = lives
    got = status(customers, orders, at=AT, gap_days=GAP).select("region", "customer_id", "status")
    # active: exactly the customers durations keeps; lapsed: c4, c5, c9 (last order by at 30 days or
    # more before its end); c7 (first order after at) and c8 (none) have no row
    active = [("us", c, "active") for c, (_, out) in CASES.items() if out is not None] + [("de", "c1", "active")]
    lapsed = [("us", c, "lapsed") for c in ("c4", "c5", "c9")]
    assert_df_equality(got, spark.createDataFrame(active + lapsed, "region string, customer_id string, status string"),
                       ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(SurvivalError, match="gap_days must be a whole number of days >= 1"):
        status(customers, orders, at=AT, gap_days=0)
    with pytest.raises(SurvivalError, match="orders lacks the columns"):
        status(customers, orders.drop("ordered_at"), at=AT, gap_days=GAP)


def test_expected_remaining_days_of_a_customer_with_missing_features(spark, simulated):
    _, _, model = simulated
    df = spark.createDataFrame([("us", "n1", None, 1.0)], "region string, customer_id string, x1 double, x2 double")
    aft = model.stages[-1]
    scaler = model.stages[-2]
    # x1 null -> 0 with its indicator 1, which is constant 0 in training: scaled to 0, no effect
    raw = np.array([0.0, 1.0, 1.0, 0.0])
    std = np.array(scaler.std.toArray())
    scaled = np.divide(raw - np.array(scaler.mean.toArray()), std, out=np.zeros(4), where=std > 0)
    lam = math.exp(float(np.array(aft.coefficients.toArray()) @ scaled) + aft.intercept)
    expected = spark.createDataFrame(
        [("us", "n1", None, 1.0, lam * math.gamma(1 + aft.scale), lam * math.log(2) ** aft.scale)],
        "region string, customer_id string, x1 double, x2 double, expected_remaining_days double, median_remaining_days double",
    )
    assert_approx_df_equality(expected_remaining_days(model, df), expected, 1e-9, ignore_nullable=True)


def test_concordance_of_the_fit_matches_that_of_the_true_linear_predictor(simulated):
    frame, df, model = simulated
    got = concordance(expected_remaining_days(model, df))
    truth = concordance_index(frame["duration_days"], frame["true_linear"], frame["churned"])
    assert got == pytest.approx(truth, abs=0.002)
    assert got > 0.7  # the features carry most of the signal


def test_training_set_floors_durations(spark):
    df = spark.createDataFrame([("a", 0.0, 1), ("b", 0.2, 1), ("c", 3.5, 0)], "customer_id string, duration_days double, churned int")
    expected = spark.createDataFrame([("a", 0.5, 1.0), ("b", 0.5, 1.0), ("c", 3.5, 0.0)],
                                     "customer_id string, duration_days double, churned double")
    assert_df_equality(training_set(df, []), expected, ignore_nullable=True)


def test_model_pipeline_uses_churned_as_the_event_indicator():
    aft = model_pipeline(["x1"], SurvivalParams(max_iter=7, tol=1e-4, aggregation_depth=3)).getStages()[-1]
    assert (aft.getLabelCol(), aft.getCensorCol(), aft.getMaxIter(), aft.getTol(), aft.getAggregationDepth()) == (
        "duration_days", "churned", 7, 1e-4, 3)
    assert aft.getFitIntercept()


# --- concordance -----------------------------------------------------------------------------------

def test_concordance_by_hand(spark):
    # (duration, churned, predicted). A pair counts when its shorter duration is an observed churn;
    # a censored duration equal to it counts as longer; two churns at the same time do not count.
    #   A (2, 1, 1.0) with B, C, D, E, F: predictions 3, 2, 2, 1.5, 4 all above 1.0  -> 5 of 5
    #   C (4, 1, 2.0) with B (censored at 4, 3.0): concordant                          -> 1
    #                 with D (6, 2.0): tied prediction                                 -> 0.5
    #                 with E (8, 1.5): discordant; with F (6, 4.0): concordant         -> 0 + 1
    #   D (6, 1, 2.0) with E (8, censored, 1.5): discordant; D-F tied times: no pair   -> 0
    #   F (6, 1, 4.0) with E: discordant                                               -> 0
    #   B and E (censored) are never the shorter one. 11 pairs, 7.5 concordant: C = 7.5 / 11
    rows = [("A", 2.0, 1.0, 1.0), ("B", 4.0, 0.0, 3.0), ("C", 4.0, 1.0, 2.0), ("D", 6.0, 1.0, 2.0),
            ("E", 8.0, 0.0, 1.5), ("F", 6.0, 1.0, 4.0)]
    df = spark.createDataFrame(rows, "customer_id string, duration_days double, churned double, expected_remaining_days double")
    assert concordance(df) == pytest.approx(7.5 / 11, abs=1e-12)
    # other column names; a perfectly reversed ranking (no ties) gives 0
    renamed = spark.createDataFrame([(1.0, 1, 3.0), (2.0, 1, 2.0), (3.0, 0, 1.0)], "t double, e int, p double")
    assert concordance(renamed, duration="t", event="e", predicted="p") == 0.0


# --- bad paths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("until", [AT, date(2025, 3, 1)])
def test_durations_need_until_after_at(lives, until):
    customers, orders, _ = lives
    with pytest.raises(SurvivalError, match=r"until \(2025-03-\d\d\) must be after at \(2025-03-31\)"):
        durations(customers, orders, at=AT, until=until, gap_days=GAP)


def test_durations_bad_inputs(spark, lives):
    customers, orders, _ = lives
    with pytest.raises(SurvivalError, match="gap_days must be a whole number of days >= 1, got 0"):
        durations(customers, orders, at=AT, until=UNTIL, gap_days=0)
    with pytest.raises(SurvivalError, match=r"orders lacks the columns \['ordered_at'\]"):
        durations(customers, orders.drop("ordered_at"), at=AT, until=UNTIL, gap_days=GAP)
    with pytest.raises(SurvivalError, match=r"customers lacks the columns \['region'\]"):
        durations(customers.drop("region"), orders, at=AT, until=UNTIL, gap_days=GAP)


TRAIN_SCHEMA = "customer_id string, x1 double, duration_days double, churned double"


def test_fit_refuses_an_empty_training_set(spark):
    with pytest.raises(SurvivalError, match="the training set is empty"):
        fit(spark.createDataFrame([], TRAIN_SCHEMA), features=["x1"], params=SurvivalParams())


def test_fit_refuses_all_censored(spark):
    df = spark.createDataFrame([("a", 1.0, 90.0, 0.0), ("b", 2.0, 90.0, 0.0), ("c", 3.0, 90.0, 0.0)], TRAIN_SCHEMA)
    with pytest.raises(SurvivalError, match=r"no observed churn among the 3 training customers \(all censored\)"):
        fit(df, features=["x1"], params=SurvivalParams())


def test_fit_refuses_a_missing_feature_or_label(spark):
    df = spark.createDataFrame([("a", 1.0, 9.0, 1.0)], TRAIN_SCHEMA)
    with pytest.raises(SurvivalError, match=r"lacks the feature columns \['x2'\]"):
        fit(df, features=["x1", "x2"], params=SurvivalParams())
    with pytest.raises(SurvivalError, match=r"the training set lacks the columns \['churned'\]"):
        fit(df.drop("churned"), features=["x1"], params=SurvivalParams())


def test_fit_refuses_invalid_labels(spark):
    df = spark.createDataFrame([("a", 1.0, 9.0, 1.0), ("b", 1.0, -1.0, 1.0), ("c", 1.0, None, 0.0), ("d", 1.0, 5.0, 2.0)], TRAIN_SCHEMA)
    with pytest.raises(SurvivalError, match="3 of 4 training rows have a null or negative duration_days or a churned other than 0 or 1"):
        fit(df, features=["x1"], params=SurvivalParams())


def test_model_and_params_bad_values():
    with pytest.raises(SurvivalError, match="at least one feature"):
        model_pipeline([], SurvivalParams())
    with pytest.raises(SurvivalError, match="max_iter >= 1, tol > 0 and aggregation_depth >= 2"):
        SurvivalParams(max_iter=0)
    with pytest.raises(SurvivalError, match="max_iter >= 1, tol > 0 and aggregation_depth >= 2"):
        SurvivalParams(tol=0.0)


def test_expected_remaining_days_needs_a_survival_model(spark):
    not_survival = PipelineModel(stages=[SQLTransformer(statement="SELECT * FROM __THIS__")])
    with pytest.raises(SurvivalError, match="no AFT survival regression stage"):
        expected_remaining_days(not_survival, spark.createDataFrame([("a",)], "customer_id string"))


def test_concordance_bad_inputs(spark):
    schema = "duration_days double, churned double, expected_remaining_days double"
    with pytest.raises(SurvivalError, match="no comparable pair among 2 rows"):
        concordance(spark.createDataFrame([(1.0, 0.0, 2.0), (2.0, 0.0, 1.0)], schema))
    with pytest.raises(SurvivalError, match="no rows"):
        concordance(spark.createDataFrame([], schema))
    with pytest.raises(SurvivalError, match="1 rows have a null or NaN"):
        concordance(spark.createDataFrame([(1.0, 1.0, None), (2.0, 0.0, 1.0)], schema))
    with pytest.raises(SurvivalError, match="churned must be 1.0"):
        concordance(spark.createDataFrame([(1.0, 2.0, 1.0), (2.0, 0.0, 1.0)], schema))
    with pytest.raises(SurvivalError, match=r"lacks the columns \['expected_remaining_days'\]"):
        concordance(spark.createDataFrame([(1.0, 1.0)], "duration_days double, churned double"))


def test_survival_error_is_a_c360_error():
    assert issubclass(SurvivalError, C360Error)
