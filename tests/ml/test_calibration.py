"""Calibration of raw churn scores: Platt scaling recovers a known logistic curve, isotonic
regression a known step, the choice between them is made on a later fold than the fit, and the
bad paths (one class, an unknown method) are refused."""
from __future__ import annotations

import numpy as np
import pytest

from customer360.ml import calibration
from customer360.ml.calibration import CalibrationError
from customer360.ml.churn import RAW_SCORE

SCHEMA = f"region string, customer_id string, label double, {RAW_SCORE} double"


def _scores(spark, raw, labels, prefix="c"):
    rows = [("ra", f"{prefix}{i:05d}", float(y), float(x)) for i, (x, y) in enumerate(zip(raw, labels))]
    return spark.createDataFrame(rows, SCHEMA)


def _logistic(spark, n, seed, prefix="c"):
    """Raw scores whose true churn probability is sigmoid(2 x - 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.5, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(2 * x - 1)))
    return _scores(spark, x, y, prefix)


def _step(spark, n, seed, prefix="c"):
    """Raw scores whose true churn probability jumps from 0.1 to 0.9 at 0."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    y = rng.random(n) < np.where(x < 0, 0.1, 0.9)
    return _scores(spark, x, y, prefix)


def test_platt_recovers_a_logistic_curve(spark):
    scores = _logistic(spark, 4000, seed=1)
    model = calibration.fit("platt", scores)
    glm = model.stages[-1]
    # the curve sigmoid(2 x - 1), fitted from 4,000 Bernoulli draws: slope and intercept within 0.15
    assert glm.coefficients[0] == pytest.approx(2.0, abs=0.15) and glm.intercept == pytest.approx(-1.0, abs=0.15)
    probe = _scores(spark, [-1.0, 0.5, 2.0], [0, 1, 1], "p")
    got = {r["customer_id"]: r["churn_score"] for r in calibration.apply(model, probe).collect()}
    truth = {"p00000": 1 / (1 + np.exp(3)), "p00001": 0.5, "p00002": 1 / (1 + np.exp(-3))}
    assert got == pytest.approx(truth, abs=0.03)


def test_isotonic_is_monotone_and_recovers_a_step(spark):
    scores = _step(spark, 3000, seed=2)
    model = calibration.fit("isotonic", scores)
    probe = _scores(spark, np.linspace(-0.95, 0.95, 39), [0] * 39, "p")
    got = [r["churn_score"] for r in calibration.apply(model, probe).orderBy(RAW_SCORE).collect()]
    assert got == sorted(got)  # never decreasing in the raw score
    assert np.mean(got[:15]) == pytest.approx(0.1, abs=0.05) and np.mean(got[-15:]) == pytest.approx(0.9, abs=0.05)


def test_isotonic_hand_example_pools_adjacent_violators(spark):
    # raw 1..4 with outcomes 0, 1, 0, 1: the violating pair (2, 3) pools to 0.5
    model = calibration.fit("isotonic", _scores(spark, [1, 2, 3, 4], [0, 1, 0, 1]))
    got = [r["churn_score"] for r in calibration.apply(model, _scores(spark, [1, 2, 3, 4], [0, 0, 0, 0], "p")).orderBy(RAW_SCORE).collect()]
    assert got == [0.0, 0.5, 0.5, 1.0]


def test_the_choice_is_made_on_a_later_fold_than_the_fit(spark):
    # folds newest first. A step is isotonic's shape; a smooth curve with few customers is Platt's
    step = [_step(spark, 1500, seed=s, prefix=f"f{s}") for s in (10, 11, 12)]
    chosen = calibration.choose(("platt", "isotonic"), step)
    assert chosen.method == "isotonic"
    assert set(chosen.held_out_brier) == {"platt", "isotonic"} and chosen.held_out_brier["isotonic"] < chosen.held_out_brier["platt"]
    # the figure is the Brier score on fold 0 of the calibrator fitted on fold 1, averaged with fold 1 from fold 2
    by_hand = np.mean([calibration.brier(calibration.apply(calibration.fit("isotonic", older), newer)) for newer, older in zip(step, step[1:])])
    assert chosen.held_out_brier["isotonic"] == pytest.approx(by_hand)
    smooth = [_logistic(spark, 150, seed=s, prefix=f"g{s}") for s in (20, 21, 22)]
    assert calibration.choose(("platt", "isotonic"), smooth).method == "platt"
    assert chosen.describe().startswith("isotonic (held-out Brier ")


def test_one_fold_or_one_method_is_not_compared(spark):
    one = [_logistic(spark, 100, seed=3)]
    assert calibration.choose(("platt", "isotonic"), one) == calibration.Choice("platt", {})
    assert calibration.choose(("isotonic",), one * 2).method == "isotonic"
    assert calibration.Choice("platt", {}).describe() == "platt (one fold: not compared)"


def test_bad_paths(spark):
    with pytest.raises(CalibrationError, match="calibration needs both classes: 0 churners among 3 scored customers"):
        calibration.fit("platt", _scores(spark, [1, 2, 3], [0, 0, 0]))
    with pytest.raises(CalibrationError, match="unknown calibration method 'beta'"):
        calibration.calibrator("beta")
