"""Shadow mode: the challenger churn model against the champion, on the customers both scored.

The challenger's scores (``gold.churn_scores_shadow``) are compared with the champion's
(``gold.churn_scores``) in two ways:

* **Distributions**, on the monitored date: the PSI of the challenger's scores against the
  champion's (binned on the champion's quantiles), both means, the share each flags (score at or
  above its own threshold) and how often the two decisions agree.
* **Realized performance**, on the latest date both scored whose churn horizon has passed: ROC AUC
  and Brier score of each against what happened (no order in the horizon: the churn label's own
  window, ``drift.with_churn_outcome``). Cold-start rows (a constant score, not a model output)
  are left out of both comparisons.

**Recommendation.** ``promote`` when at least ``min_labelled`` customers have realized outcomes,
the challenger's ROC AUC beats the champion's by more than ``min_improvement`` and its Brier score
is no worse; ``keep_champion`` when enough outcomes say otherwise; ``wait`` when there are too few
outcomes, none have matured yet, or the matured scores came from another challenger version than
today's. The evidence names the figures. Promotion itself stays a person's decision
(``c360 promote``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.ml.metrics import binary_metrics
from customer360.monitoring.drift import psi, with_churn_outcome

PROMOTE, KEEP, WAIT = "promote", "keep_champion", "wait"


@dataclass(frozen=True)
class Distributions:
    customers: int
    psi: float | None
    champion_mean: float | None
    challenger_mean: float | None
    champion_flagged: float | None
    challenger_flagged: float | None
    agreement: float | None


@dataclass(frozen=True)
class Realized:
    scored_on: date
    challenger_version: str
    labelled: int
    churn_rate: float
    champion_roc_auc: float
    challenger_roc_auc: float
    champion_brier: float
    challenger_brier: float


def _model_rows(df: DataFrame, prefix: str) -> DataFrame:
    return df.where(~F.col("is_cold_start_score")).select(
        "customer_id", F.col("churn_score").alias(f"{prefix}_score"), F.col("churn_predicted").alias(f"{prefix}_predicted"),
        F.col("model_version").alias(f"{prefix}_version"),
    )


def paired(champion: DataFrame, challenger: DataFrame) -> DataFrame:
    """The customers both models scored (one date, one region), model scores only: customer_id,
    champion_/challenger_ score, predicted and version."""
    return _model_rows(champion, "champion").join(_model_rows(challenger, "challenger"), "customer_id")


def distributions(pairs: DataFrame, *, bins: int = 10) -> Distributions:
    """The two score distributions on the same customers (``paired``)."""
    row = pairs.agg(
        F.count(F.lit(1)).alias("n"), F.avg("champion_score").alias("m0"), F.avg("challenger_score").alias("m1"),
        F.avg(F.col("champion_predicted").cast("double")).alias("f0"), F.avg(F.col("challenger_predicted").cast("double")).alias("f1"),
        F.avg((F.col("champion_predicted") == F.col("challenger_predicted")).cast("double")).alias("agree"),
    ).first()
    value = psi(
        pairs.select(F.col("champion_score").alias("score")), pairs.select(F.col("challenger_score").alias("score")), ["score"], bins=bins
    )["score"] if row["n"] else None
    return Distributions(int(row["n"]), value, row["m0"], row["m1"], row["f0"], row["f1"], row["agree"])


def realized(pairs: DataFrame, orders: DataFrame, *, scored_on: date, horizon_days: int) -> Realized | None:
    """Both models' ROC AUC and Brier score on the outcomes of the customers they scored on
    ``scored_on`` (``paired`` rows of that date); None when the outcomes have one class only or
    nobody was scored."""
    outcome = with_churn_outcome(pairs, orders, as_of=scored_on, horizon_days=horizon_days).withColumn(
        "label", F.col("churned").cast("double")
    ).localCheckpoint(eager=True)
    versions = [r[0] for r in outcome.select("challenger_version").distinct().collect()]
    try:
        first = binary_metrics(outcome, score="champion_score")
        second = binary_metrics(outcome, score="challenger_score")
    except ValueError:  # no customer, or one class only: nothing to rank
        return None
    return Realized(
        scored_on, ",".join(sorted(versions)), first.rows, first.positives / first.rows,
        first.roc_auc, second.roc_auc, float(first.brier), float(second.brier),
    )


def recommend(found: Realized | None, *, challenger_version: str, min_improvement: float, min_labelled: int) -> tuple[str, str]:
    """The recommendation and its evidence (see the module doc)."""
    if found is None:
        return WAIT, "no outcomes yet: no date both models scored is a churn horizon old"
    figures = (
        f"{found.labelled:,} customers scored on {found.scored_on} with realized outcomes ({found.churn_rate:.1%} churned): "
        f"ROC AUC challenger {found.challenger_roc_auc:.3f} vs champion {found.champion_roc_auc:.3f}, "
        f"Brier {found.challenger_brier:.3f} vs {found.champion_brier:.3f}"
    )
    if found.challenger_version != str(challenger_version):
        return WAIT, f"the matured scores are challenger v{found.challenger_version}'s, not v{challenger_version}'s: {figures}"
    if found.labelled < min_labelled:
        return WAIT, f"fewer than {min_labelled} outcomes: {figures}"
    better = found.challenger_roc_auc > found.champion_roc_auc + min_improvement and found.challenger_brier <= found.champion_brier
    verdict = (
        f"the challenger ranks better by more than {min_improvement} and is no worse calibrated"
        if better else f"the challenger does not beat the champion by more than {min_improvement} ROC AUC with a Brier score no worse"
    )
    return (PROMOTE if better else KEEP), f"{verdict}: {figures}"
