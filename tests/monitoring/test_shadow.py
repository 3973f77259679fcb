"""Shadow mode in monitoring (monitoring/shadow.py and the stage's ops.shadow_comparison): the
challenger's scores against the champion's on the same customers (PSI cross-checked with numpy,
means, flagged shares, agreement), realized ROC AUC and Brier score computed by hand, the three
recommendations, consent enforcement on the shadow table, and a stage run end to end."""
from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_approx_df_equality

from customer360.monitoring import shadow
from customer360.monitoring.stage import SHADOW_SCHEMA, run
from customer360.tables import CHURN_SCORES, CHURN_SCORES_SHADOW, SHADOW_COMPARISON
from tests.monitoring.test_drift import numpy_psi
from tests.monitoring.test_stage import (
    AS_OF, C360_SCHEMA, FEATURES_SCHEMA, NOW, ORDERS_SCHEMA, SCORED_DUE, SEGMENTS_SCHEMA, context, plain,
)

pytestmark = pytest.mark.slow

PRECISION = 1e-9
SCORES = (
    "region string, customer_id string, as_of_date date, churn_score double, churn_predicted boolean, "
    "threshold double, is_cold_start_score boolean, model_version string"
)
CUSTOMERS = [f"c{i}" for i in range(1, 9)]
CHURNED = {"c1", "c2", "c3", "c4"}  # c5-c8 order inside the due scores' window
# due date (2026-04-01): the challenger orders the churners first, the champion does not
#   champion ROC AUC: pairs churner > stayer: 0.9 beats 4, 0.2 beats 1 (0.1), 0.7 beats 4, 0.4 beats 2
#   (0.3, 0.1): 11 of 16 = 0.6875; challenger: 16 of 16 = 1.0
#   Brier champion: churners (1-s)^2 .01+.64+.09+.36 = 1.10, stayers s^2 .36+.09+.01+.25 = .71: 1.81/8 = 0.22625
#   Brier challenger: .01+.04+.09+.16 = .30 and .16+.09+.04+.01 = .30: .60/8 = 0.075
DUE_CHAMPION = dict(zip(CUSTOMERS, [0.9, 0.2, 0.7, 0.4, 0.6, 0.3, 0.1, 0.5]))
DUE_CHALLENGER = dict(zip(CUSTOMERS, [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]))
# today: champion threshold 0.5, challenger's 0.25
TODAY_CHAMPION = dict(zip(CUSTOMERS, [0.55, 0.45, 0.35, 0.25, 0.65, 0.75, 0.15, 0.05]))
TODAY_CHALLENGER = dict(zip(CUSTOMERS, [0.30, 0.20, 0.60, 0.10, 0.70, 0.90, 0.24, 0.26]))


def score_frame(spark, day, scores, *, threshold, version, cold=("c9",)):
    rows = [("us", c, day, s, s >= threshold, threshold, False, version) for c, s in scores.items()]
    rows += [("us", c, day, 0.8, True, threshold, True, version) for c in cold]  # cold start: a constant, left out
    return spark.createDataFrame(rows, SCORES)


def write_shadow_lakehouse(spark, ctx, *, challenger_then="7", withdrawn=()):
    lh = ctx.lakehouse
    everyone = [*CUSTOMERS, "c9"]
    lh.write(spark.createDataFrame([("us", c, AS_OF, c not in withdrawn, "loyal", 0.5, True) for c in everyone], C360_SCHEMA),
             "gold.customer_360", mode="overwrite", partition_by=["region"])
    lh.write(spark.createDataFrame([("us", c, AS_OF, "fs-1", "gold-1", 1, 2.0, 3, "web", c == "c9") for c in everyone], FEATURES_SCHEMA),
             "gold.customer_features", mode="overwrite", partition_by=["region", "as_of_date"])
    lh.write(spark.createDataFrame([("us", c, AS_OF, "loyal", "LOYAL") for c in everyone], SEGMENTS_SCHEMA),
             "gold.customer_segments", mode="overwrite", partition_by=["region", "as_of_date"])
    champion = score_frame(spark, SCORED_DUE, DUE_CHAMPION, threshold=0.5, version="3").unionByName(
        score_frame(spark, AS_OF, TODAY_CHAMPION, threshold=0.5, version="3"))
    challenger = score_frame(spark, SCORED_DUE, DUE_CHALLENGER, threshold=0.25, version=challenger_then).unionByName(
        score_frame(spark, AS_OF, TODAY_CHALLENGER, threshold=0.25, version="7"))
    lh.write(champion, CHURN_SCORES, mode="overwrite", partition_by=["region", "as_of_date"])
    lh.write(challenger, CHURN_SCORES_SHADOW, mode="overwrite", partition_by=["region", "as_of_date"])
    orders = [("us", c, f"o-{c}", datetime(2026, 5, 1, 10)) for c in CUSTOMERS if c not in CHURNED]
    lh.write(spark.createDataFrame(orders, ORDERS_SCHEMA), "silver.orders", mode="overwrite", partition_by=["region"])


def expected_today() -> dict:
    champion, challenger = list(TODAY_CHAMPION.values()), list(TODAY_CHALLENGER.values())
    agree = sum((a >= 0.5) == (b >= 0.25) for a, b in zip(champion, challenger)) / 8
    return dict(
        customers=8, psi=numpy_psi(champion, challenger), champion_mean=sum(champion) / 8, challenger_mean=sum(challenger) / 8,
        champion_flagged=sum(a >= 0.5 for a in champion) / 8, challenger_flagged=sum(b >= 0.25 for b in challenger) / 8, agreement=agree,
    )


def test_distributions_of_the_same_customers_leave_cold_start_out(spark):
    today = shadow.paired(
        score_frame(spark, AS_OF, TODAY_CHAMPION, threshold=0.5, version="3"),
        score_frame(spark, AS_OF, TODAY_CHALLENGER, threshold=0.25, version="7", cold=("c9", "c10")),
    )
    found = shadow.distributions(today)
    want = expected_today()
    assert found.customers == 8
    assert found.psi == pytest.approx(want["psi"], abs=PRECISION)
    assert found.psi > 0.1  # not a trivial cross-check: the two distributions differ
    for key in ("champion_mean", "challenger_mean", "champion_flagged", "challenger_flagged", "agreement"):
        assert getattr(found, key) == pytest.approx(want[key], abs=PRECISION), key
    # by hand: c1 0.55/0.30 both flag; c2 0.45/0.20 neither; c3 0.35/0.60 disagree; c4 0.25/0.10
    # neither; c5, c6 both; c7 0.15/0.24 neither; c8 0.05/0.26 disagree: 6 of 8
    assert want["agreement"] == 0.75


def test_realized_performance_and_a_promotion(spark):
    pairs = shadow.paired(
        score_frame(spark, SCORED_DUE, DUE_CHAMPION, threshold=0.5, version="3"),
        score_frame(spark, SCORED_DUE, DUE_CHALLENGER, threshold=0.25, version="7"),
    )
    orders = spark.createDataFrame([("us", c, f"o-{c}", datetime(2026, 5, 1, 10)) for c in ("c5", "c6", "c7", "c8")], ORDERS_SCHEMA)
    found = shadow.realized(pairs, orders, scored_on=SCORED_DUE, horizon_days=90)
    assert found == shadow.Realized(SCORED_DUE, "7", 8, 0.5, pytest.approx(0.6875), pytest.approx(1.0),
                                    pytest.approx(0.22625), pytest.approx(0.075))
    recommendation, evidence = shadow.recommend(found, challenger_version="7", min_improvement=0.005, min_labelled=5)
    assert recommendation == "promote"
    assert evidence == (
        "the challenger ranks better by more than 0.005 and is no worse calibrated: 8 customers scored on 2026-04-01 with realized "
        "outcomes (50.0% churned): ROC AUC challenger 1.000 vs champion 0.688, Brier 0.075 vs 0.226"
    )


def test_recommendations_wait_and_keep(spark):
    found = shadow.Realized(SCORED_DUE, "7", 8, 0.5, 0.70, 0.702, 0.20, 0.19)
    assert shadow.recommend(None, challenger_version="7", min_improvement=0.005, min_labelled=5) == (
        "wait", "no outcomes yet: no date both models scored is a churn horizon old")
    kind, evidence = shadow.recommend(found, challenger_version="7", min_improvement=0.005, min_labelled=100)
    assert (kind, evidence.split(":")[0]) == ("wait", "fewer than 100 outcomes")
    kind, evidence = shadow.recommend(found, challenger_version="8", min_improvement=0.005, min_labelled=5)
    assert (kind, evidence.split(":")[0]) == ("wait", "the matured scores are challenger v7's, not v8's")
    # better ranking by less than the margin: kept
    kind, evidence = shadow.recommend(found, challenger_version="7", min_improvement=0.005, min_labelled=5)
    assert kind == "keep_champion"
    assert evidence.startswith("the challenger does not beat the champion by more than 0.005 ROC AUC")
    # ranks much better but calibrated worse: kept
    worse = shadow.Realized(SCORED_DUE, "7", 8, 0.5, 0.70, 0.80, 0.20, 0.21)
    assert shadow.recommend(worse, challenger_version="7", min_improvement=0.005, min_labelled=5)[0] == "keep_champion"
    # nobody, or one class only: nothing to rank
    pairs = shadow.paired(
        score_frame(spark, SCORED_DUE, DUE_CHAMPION, threshold=0.5, version="3"),
        score_frame(spark, SCORED_DUE, DUE_CHALLENGER, threshold=0.25, version="7"),
    )
    nobody_ordered = spark.createDataFrame([], ORDERS_SCHEMA)
    assert shadow.realized(pairs, nobody_ordered, scored_on=SCORED_DUE, horizon_days=90) is None


def test_the_stage_writes_the_comparison_and_deletes_withdrawn_customers_shadow_rows(spark, tmp_path):
    ctx = context(spark, tmp_path, "monitoring.shadow.min_labelled=5", run_id="shadow-1")
    write_shadow_lakehouse(spark, ctx, withdrawn=("c8",))
    result = run(ctx, now=NOW)
    assert result.errors == []
    lh = ctx.lakehouse
    # c8 withdrew profiling consent: gone from both score tables, every date
    assert lh.read(CHURN_SCORES_SHADOW).where("customer_id = 'c8'").count() == 0
    assert lh.read(CHURN_SCORES).where("customer_id = 'c8'").count() == 0
    # without c8 (a stayer, 0.5 / 0.1): churners .9 .2 .7 .4 against stayers .6 .3 .1 for the
    # champion: .9 beats 3, .2 beats 1, .7 beats 3, .4 beats 2 = 9 of 12 = 0.75; the challenger 12 of 12.
    # Brier champion (1.10 + .36 + .09 + .01) / 7, challenger (.30 + .16 + .09 + .04) / 7
    champion, challenger = dict(TODAY_CHAMPION), dict(TODAY_CHALLENGER)
    del champion["c8"], challenger["c8"]
    a, b = list(champion.values()), list(challenger.values())
    evidence = (
        "the challenger ranks better by more than 0.005 and is no worse calibrated: 7 customers scored on 2026-04-01 with realized "
        f"outcomes (57.1% churned): ROC AUC challenger 1.000 vs champion 0.750, Brier {0.59 / 7:.3f} vs {1.56 / 7:.3f}"
    )
    expected = spark.createDataFrame([(
        "shadow-1", NOW, AS_OF, "3", "7", 7, numpy_psi(a, b), sum(a) / 7, sum(b) / 7, sum(x >= 0.5 for x in a) / 7,
        sum(x >= 0.25 for x in b) / 7, sum((x >= 0.5) == (y >= 0.25) for x, y in zip(a, b)) / 7,
        SCORED_DUE, "7", 7, 4 / 7, 0.75, 1.0, 1.56 / 7, 0.59 / 7, "promote", evidence, "us",
    )], SHADOW_SCHEMA)
    assert_approx_df_equality(plain(lh.read(SHADOW_COMPARISON)), expected, 1e-9, ignore_nullable=True)
    assert any(line.startswith("  shadow: challenger v7 vs champion v3 on 7 customers: PSI ") and line.endswith(evidence) for line in result.lines)


def test_matured_scores_of_an_older_challenger_wait(spark, tmp_path):
    ctx = context(spark, tmp_path, "monitoring.shadow.min_labelled=5", run_id="shadow-2")
    write_shadow_lakehouse(spark, ctx, challenger_then="6")
    run(ctx, now=NOW)
    row = ctx.lakehouse.read(SHADOW_COMPARISON).first()
    assert (row.recommendation, row.outcomes_challenger_version, row.labelled_customers) == ("wait", "6", 8)
    assert row.evidence.startswith("the matured scores are challenger v6's, not v7's: 8 customers scored on 2026-04-01")


def test_no_shadow_scores_no_comparison(spark, tmp_path):
    ctx = context(spark, tmp_path, run_id="shadow-3")
    write_shadow_lakehouse(spark, ctx)
    ctx.lakehouse.delete(CHURN_SCORES_SHADOW, f"as_of_date = DATE'{AS_OF}'")
    result = run(ctx, now=NOW)
    assert not ctx.lakehouse.exists(SHADOW_COMPARISON)
    assert not any("shadow" in line for line in result.lines)
