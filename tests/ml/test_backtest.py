"""The churn back-test's logic without Spark: rolling-origin folds that never see their own
outcomes, tuning grids, tuning on the next older fold, the mean per candidate, and the deployment
rule (a model must beat every baseline, or the best baseline is deployed)."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from customer360.config import ChurnConfig, GbtParams, LogisticParams, load_config
from customer360.ml import backtest
from customer360.ml.backtest import BacktestError, Fold, Outcome, Variant
from customer360.ml.metrics import BinaryMetrics

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 6, 30)


def test_folds_roll_back_one_step_and_never_see_their_own_outcomes():
    got = backtest.folds(AS_OF, horizon_days=90, step_days=None, count=3, tuning=True)
    assert [(f.index, f.train_at, f.valid_at, f.reported) for f in got] == [
        (0, date(2026, 1, 1), date(2026, 4, 1), True),  # 06-30 - 90 = 04-01; training a step (90 d) before
        (1, date(2025, 10, 3), date(2026, 1, 1), True),
        (2, date(2025, 7, 5), date(2025, 10, 3), True),
        (3, date(2025, 4, 6), date(2025, 7, 5), False),  # only tunes fold 2
    ]
    for f in got:  # training labels end where validation begins; validation outcomes end by the as-of date
        assert f.train_at + timedelta(days=90) <= f.valid_at
        assert f.valid_at + timedelta(days=90) <= AS_OF
    assert backtest.deployment_cutoff(AS_OF, horizon_days=90) == date(2026, 4, 1)


def test_folds_with_a_longer_step_and_without_tuning():
    got = backtest.folds(AS_OF, horizon_days=90, step_days=120, count=2, tuning=False)
    assert [(f.train_at, f.valid_at, f.reported) for f in got] == [
        (date(2025, 12, 2), date(2026, 4, 1), True), (date(2025, 8, 4), date(2025, 12, 2), True),
    ]


def test_a_step_shorter_than_the_horizon_is_refused():
    with pytest.raises(BacktestError, match=r"step_days \(60\) is shorter than the churn horizon \(90 days\)"):
        backtest.folds(AS_OF, horizon_days=90, step_days=60, count=3, tuning=False)


def _churn(**update) -> ChurnConfig:
    return ChurnConfig(features=("recency_days",), **update)


def test_variants_are_the_grid_points_then_the_baselines():
    churn = _churn(
        candidates=("gbt", "logistic"),
        gbt=GbtParams(tune={"max_depth": (2, 4), "step_size": (0.1,)}),
        logistic=LogisticParams(),
    )
    got = backtest.variants(churn)
    assert [(v.candidate, v.params, v.baseline) for v in got] == [
        ("gbt", (("max_depth", 2), ("step_size", 0.1)), False),
        ("gbt", (("max_depth", 4), ("step_size", 0.1)), False),
        ("logistic", (), False),
        ("recency", (), True),
    ]
    assert backtest.needs_tuning(churn)
    assert not backtest.needs_tuning(_churn(candidates=("logistic",)))
    # a grid point applied to the configured parameters: an integer parameter stays an integer
    applied = got[1].settings(churn)
    assert (applied.max_depth, applied.step_size, applied.max_iter) == (4, 0.1, 150) and isinstance(applied.max_depth, int)
    assert got[1].describe() == "max_depth=4 step_size=0.1" and got[2].describe() == "configured"


def test_a_tuning_grid_naming_an_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match=r"tune: \['depth'\] are not parameters of this model"):
        GbtParams(tune={"depth": (2, 3)})


def _metrics(auc: float) -> BinaryMetrics:
    return BinaryMetrics(rows=100, positives=50, roc_auc=auc, pr_auc=auc, top_decile_lift=1.5, brier=None)


def _outcomes(folds: list[Fold], table: dict[Variant, list[float]]) -> list[Outcome]:
    return [Outcome(f, v, _metrics(aucs[f.index]), 1000) for v, aucs in table.items() for f in folds]


GBT2 = Variant("gbt", (("max_depth", 2),))
GBT4 = Variant("gbt", (("max_depth", 4),))
LOGISTIC = Variant("logistic")
RECENCY = Variant("recency", baseline=True)


def test_each_fold_uses_the_grid_point_best_on_the_next_older_fold_and_the_best_model_is_deployed():
    churn = _churn(candidates=("gbt", "logistic"), gbt=GbtParams(tune={"max_depth": (2, 4)}))
    folds = backtest.folds(AS_OF, horizon_days=90, step_days=None, count=3, tuning=True)
    outcomes = _outcomes(folds, {
        GBT2: [0.70, 0.80, 0.70, 0.80],  # best on folds 1 and 3
        GBT4: [0.90, 0.70, 0.75, 0.60],  # best on folds 0 and 2
        LOGISTIC: [0.74, 0.73, 0.72, 0.99],  # the unreported fold 3 never counts in a mean
        RECENCY: [0.65, 0.66, 0.67, 0.68],
    })
    result = backtest.decide(churn, folds, outcomes)
    # fold 0 is tuned on fold 1 (depth 2 best there), fold 1 on fold 2 (depth 4), fold 2 on fold 3 (depth 2)
    assert result.chosen["gbt"] == [GBT2, GBT4, GBT2]
    assert result.per_fold("gbt") == [0.70, 0.70, 0.70]
    assert result.means == pytest.approx({"gbt": 0.70, "logistic": 0.73, "recency": 0.66})
    assert result.deployed == LOGISTIC
    assert result.reason == "logistic has the best mean roc auc (0.730) and beats the best baseline, recency (0.660), by 0.070"
    # the deployed grid point is the one best on the newest fold (its outcomes are inside deployment's window)
    churn_gbt = _churn(candidates=("gbt",), gbt=GbtParams(tune={"max_depth": (2, 4)}))
    only_gbt = backtest.decide(churn_gbt, folds, [o for o in outcomes if o.variant != LOGISTIC])
    assert only_gbt.deployed == GBT4
    rows = result.table()
    assert len(rows) == 4 * 4 and sum(r["selected"] for r in rows) == 3 * 3  # three candidates, three reported folds
    assert {(r["fold"], r["params"]) for r in rows if r["selected"] and r["candidate"] == "gbt"} == {
        (0, '{"max_depth": 2}'), (1, '{"max_depth": 4}'), (2, '{"max_depth": 2}'),
    }


def test_when_no_model_beats_the_baseline_the_baseline_is_deployed():
    churn = _churn(candidates=("logistic",))
    folds = backtest.folds(AS_OF, horizon_days=90, step_days=None, count=2, tuning=False)
    result = backtest.decide(churn, folds, _outcomes(folds, {LOGISTIC: [0.70, 0.66], RECENCY: [0.70, 0.68]}))
    assert result.deployed == RECENCY
    assert result.reason == (
        "no model beats the baseline: the best, logistic, has a mean roc auc of 0.680 against recency's 0.690, "
        "so the recency rule is deployed"
    )
    lines = backtest.summary(result)
    assert lines[0].split() == ["candidate", "mean", "roc", "auc", "per", "fold", "(2026-04-01,", "2026-01-01)"]
    assert lines[1].split() == ["recency", "(baseline)", "0.690", "0.700", "0.680", "<-", "deployed"]
    assert lines[2].split() == ["logistic", "0.680", "0.700", "0.660"]


def test_the_primary_metric_decides():
    churn = _churn(candidates=("logistic",), primary_metric="top_decile_lift")
    folds = backtest.folds(AS_OF, horizon_days=90, step_days=None, count=1, tuning=False)
    outcomes = [
        Outcome(folds[0], LOGISTIC, BinaryMetrics(100, 50, 0.9, 0.9, 1.2, None), 1000),
        Outcome(folds[0], RECENCY, BinaryMetrics(100, 50, 0.6, 0.6, 1.4, None), 1000),
    ]
    assert backtest.decide(churn, folds, outcomes).deployed == RECENCY


def test_the_shipped_configuration_backtests_three_folds_with_tuning():
    churn = load_config("local", conf_dir=REPO / "conf").ml.churn
    assert churn.backtest.folds == 3 and churn.candidates == ("gbt", "logistic", "random_forest") and churn.baselines == ("recency",)
    assert backtest.needs_tuning(churn)


@pytest.mark.parametrize("parallelism", [1, 3])
def test_run_prepares_each_fold_first_and_evaluates_only_what_is_read(parallelism):
    churn = _churn(candidates=("gbt", "logistic"), gbt=GbtParams(tune={"max_depth": (2, 4)}))
    folds = backtest.folds(AS_OF, horizon_days=90, step_days=None, count=2, tuning=True)
    calls = []
    auc = {GBT2: 0.70, GBT4: 0.72, LOGISTIC: 0.74, RECENCY: 0.60}

    def prepare(fold):
        calls.append(("prepare", fold.index))

    def evaluate(fold, variant):
        assert ("prepare", fold.index) in calls  # the fold's inputs are ready before any of its fits
        calls.append((fold.index, variant))
        return Outcome(fold, variant, _metrics(auc[variant] - 0.01 * fold.index), 1000)

    result = backtest.run(churn, folds, evaluate, prepare=prepare, parallelism=parallelism)
    evaluated = sorted((c for c in calls if c[0] != "prepare"), key=repr)
    # reported folds 0 and 1: every variant; the unreported fold 2 only the tuned candidate's grid
    assert evaluated == sorted([(k, v) for k in (0, 1) for v in (GBT2, GBT4, LOGISTIC, RECENCY)] + [(2, GBT2), (2, GBT4)], key=repr)
    assert [c for c in calls if c[0] == "prepare"] == [("prepare", 0), ("prepare", 1), ("prepare", 2)]
    assert result.deployed == LOGISTIC and result.chosen["gbt"] == [GBT4, GBT4]
