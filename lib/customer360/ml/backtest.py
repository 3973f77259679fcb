"""Back-testing the churn candidates over time-ordered cut-offs (rolling origin) and choosing what
to deploy.

Fold k (0 = newest) validates at ``T - H - k * step`` on the outcomes of the H days after it (so
fold 0's outcomes end at the as-of date T) and trains at its validation cut-off minus ``step``,
whose labels end where validation begins: no fold sees its own outcomes. ``step >= H``.

A candidate with a tuning grid (``tune`` in its parameters) picks, in fold k, the grid point that
did best on fold k + 1 (older, inside fold k's training window); an extra, oldest fold is
evaluated for the oldest reported fold's choice and is not reported itself. Deployment uses the
grid point best on fold 0 and refits on the newest labelled window (features at T - H, outcomes up
to T).

The deployed candidate is the best by the configured metric averaged over the reported folds, if
it beats every baseline; otherwise the best baseline is deployed and the reason says so.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

from customer360.config import ChurnConfig
from customer360.errors import C360Error
from customer360.ml.metrics import BinaryMetrics


class BacktestError(C360Error):
    """The back-test cannot be laid out (a step shorter than the horizon)."""


@dataclass(frozen=True)
class Fold:
    index: int  # 0 = newest
    train_at: date  # features as of this day, labels from the H days after it
    valid_at: date  # features as of this day, outcomes of the H days after it
    reported: bool  # False: the extra, oldest fold only tunes the oldest reported one


def folds(as_of: date, *, horizon_days: int, step_days: int | None, count: int, tuning: bool) -> list[Fold]:
    """The folds, newest first; one more (unreported) when a candidate has a grid to tune."""
    step = step_days or horizon_days
    if step < horizon_days:
        raise BacktestError(
            f"ml.churn.backtest.step_days ({step}) is shorter than the churn horizon ({horizon_days} days): "
            "a fold's training labels would overlap its validation outcomes"
        )
    out = []
    for k in range(count + (1 if tuning else 0)):
        valid_at = as_of - timedelta(days=horizon_days + k * step)
        out.append(Fold(k, valid_at - timedelta(days=step), valid_at, k < count))
    return out


def deployment_cutoff(as_of: date, *, horizon_days: int) -> date:
    """Deployment trains on features at this day with the outcomes of the H days after it (up to T)."""
    return as_of - timedelta(days=horizon_days)


@dataclass(frozen=True)
class Variant:
    candidate: str  # gbt, logistic, random_forest, or a baseline rule's name
    params: tuple[tuple[str, float], ...] = ()  # the grid point (empty: the configured parameters)
    baseline: bool = False

    def describe(self) -> str:
        return " ".join(f"{k}={_number(v)}" for k, v in self.params) or "configured"

    def settings(self, churn: ChurnConfig):
        """The candidate's parameter object with this grid point applied."""
        base = getattr(churn, self.candidate)
        return type(base).model_validate({**base.model_dump(exclude={"tune"}), **dict(self.params)})


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def variants(churn: ChurnConfig) -> list[Variant]:
    """Every grid point of every candidate model, then one per baseline."""
    out = []
    for name in churn.candidates:
        tune = getattr(churn, name).tune
        keys = sorted(tune)
        for values in itertools.product(*(tune[k] for k in keys)):
            out.append(Variant(name, tuple(zip(keys, values))))
    return out + [Variant(name, baseline=True) for name in churn.baselines]


def tuned(churn: ChurnConfig) -> set[str]:
    """The candidates with more than one grid point: the ones a fold tunes on the next older fold."""
    names = [v.candidate for v in variants(churn)]
    return {name for name in names if names.count(name) > 1}


def needs_tuning(churn: ChurnConfig) -> bool:
    return bool(tuned(churn))


@dataclass(frozen=True)
class Outcome:
    """One variant evaluated on one fold."""
    fold: Fold
    variant: Variant
    metrics: BinaryMetrics
    train_rows: int
    seconds: float = 0.0  # fit and evaluation, wall clock


def metric_of(outcome: Outcome, metric: str) -> float:
    return float(getattr(outcome.metrics, metric))


@dataclass
class Result:
    """The back-test of every candidate and what is deployed."""
    metric: str
    folds: list[Fold]
    outcomes: list[Outcome]
    #: candidate -> the variant each reported fold used (newest first)
    chosen: dict[str, list[Variant]] = field(default_factory=dict)
    #: candidate -> mean of the metric over the reported folds
    means: dict[str, float] = field(default_factory=dict)
    deployed: Variant | None = None
    reason: str = ""

    def outcome(self, fold: Fold, variant: Variant) -> Outcome:
        return next(o for o in self.outcomes if o.fold == fold and o.variant == variant)

    def per_fold(self, candidate: str) -> list[float]:
        reported = [f for f in self.folds if f.reported]
        return [metric_of(self.outcome(f, v), self.metric) for f, v in zip(reported, self.chosen[candidate])]

    def table(self) -> list[dict]:
        """Every outcome as a row (the back-test artifact): fold, dates, variant, used or not, metrics."""
        used = {(f.index, v) for name, vs in self.chosen.items() for f, v in zip([f for f in self.folds if f.reported], vs)}
        return [
            {
                "fold": o.fold.index, "train_at": o.fold.train_at.isoformat(), "valid_at": o.fold.valid_at.isoformat(),
                "reported": o.fold.reported, "candidate": o.variant.candidate, "baseline": o.variant.baseline,
                "params": json.dumps(dict(o.variant.params), sort_keys=True), "selected": (o.fold.index, o.variant) in used,
                "train_rows": o.train_rows, "valid_rows": o.metrics.rows, "valid_churners": o.metrics.positives,
                "roc_auc": round(o.metrics.roc_auc, 6), "pr_auc": round(o.metrics.pr_auc, 6),
                "top_decile_lift": round(o.metrics.top_decile_lift, 6), "seconds": round(o.seconds, 2),
            }
            for o in sorted(self.outcomes, key=lambda o: (o.fold.index, o.variant.baseline, o.variant.candidate, o.variant.params))
        ]


def _best(outcomes: Sequence[Outcome], metric: str) -> Variant:
    """The best variant by ``metric`` (ties: the first in configuration order)."""
    return max(enumerate(outcomes), key=lambda io: (metric_of(io[1], metric), -io[0]))[1].variant


def decide(churn: ChurnConfig, fold_list: Sequence[Fold], outcomes: Sequence[Outcome]) -> Result:
    """Each candidate's variant per fold (tuned on the next older fold), its mean, and the deployment."""
    result = Result(churn.primary_metric, list(fold_list), list(outcomes))
    by_fold = {f.index: f for f in fold_list}
    names = [*churn.candidates, *churn.baselines]
    for name in names:
        mine = [o for o in outcomes if o.variant.candidate == name]
        chosen = []
        for fold in (f for f in fold_list if f.reported):
            grid = [o for o in mine if o.fold == fold]
            if len(grid) == 1:
                chosen.append(grid[0].variant)
            else:  # tuned on the next older fold, which lies inside this fold's training window
                chosen.append(_best([o for o in mine if o.fold == by_fold[fold.index + 1]], churn.primary_metric))
        result.chosen[name] = chosen
        values = result.per_fold(name)
        result.means[name] = sum(values) / len(values)
    best_model = max(churn.candidates, key=lambda n: (result.means[n], -churn.candidates.index(n)))
    best_base = max(churn.baselines, key=lambda n: (result.means[n], -churn.baselines.index(n)))
    newest = [o for o in outcomes if o.fold.index == 0]
    label = churn.primary_metric.replace("_", " ")
    if result.means[best_model] > result.means[best_base]:
        result.deployed = _best([o for o in newest if o.variant.candidate == best_model], churn.primary_metric)
        result.reason = (
            f"{best_model} has the best mean {label} ({result.means[best_model]:.3f}) and beats the best baseline, "
            f"{best_base} ({result.means[best_base]:.3f}), by {result.means[best_model] - result.means[best_base]:.3f}"
        )
    else:
        result.deployed = next(o.variant for o in newest if o.variant.candidate == best_base)
        result.reason = (
            f"no model beats the baseline: the best, {best_model}, has a mean {label} of {result.means[best_model]:.3f} "
            f"against {best_base}'s {result.means[best_base]:.3f}, so the {best_base} rule is deployed"
        )
    return result


def needed(churn: ChurnConfig, fold: Fold) -> list[Variant]:
    """The variants a fold evaluates: all on a reported fold; on the unreported, oldest one only
    the grid points of candidates that tune (nothing else reads it)."""
    if fold.reported:
        return variants(churn)
    return [v for v in variants(churn) if v.candidate in tuned(churn)]


def run(
    churn: ChurnConfig,
    fold_list: Sequence[Fold],
    evaluate: Callable[[Fold, Variant], Outcome],
    *,
    prepare: Callable[[Fold], None] | None = None,
    parallelism: int = 1,
) -> Result:
    """Evaluate the variants each fold needs (``evaluate`` fits on the fold's training cut-off and
    scores its validation cut-off) and decide. ``prepare(fold)`` runs first, alone (caching the
    fold's inputs); then up to ``parallelism`` variants are fitted at once (Spark runs the jobs of
    concurrent threads side by side, which small fits, bound by job scheduling, gain from)."""
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        for fold in fold_list:
            if prepare is not None:
                prepare(fold)
            outcomes += list(pool.map(lambda v, f=fold: evaluate(f, v), needed(churn, fold)))
    return decide(churn, fold_list, outcomes)


def summary(result: Result, *, indent: str = "    ") -> list[str]:
    """The candidates side by side: mean and per-fold metric, the grid point used, baselines marked."""
    reported = [f for f in result.folds if f.reported]
    label = result.metric.replace("_", " ")
    head = f"{indent}{'candidate':<22}{'mean ' + label:>16}   per fold ({', '.join(f.valid_at.isoformat() for f in reported)})"
    lines = [head]
    for name, values in sorted(result.chosen.items(), key=lambda kv: -result.means[kv[0]]):
        kind = " (baseline)" if values[0].baseline else ""
        deployed = " <- deployed" if result.deployed and result.deployed.candidate == name else ""
        params = sorted({v.describe() for v in values})
        tuned = f"; {', '.join(params)}" if params != ["configured"] else ""
        lines.append(
            f"{indent}{name + kind:<22}{result.means[name]:>16.3f}   {' '.join(f'{x:.3f}' for x in result.per_fold(name))}{tuned}{deployed}"
        )
    return lines

