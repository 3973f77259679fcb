"""The ML stages: train (segmentation and churn per region, tracked in MLflow, champion by
validation) and score (the champions write gold.customer_segments and gold.churn_scores, and fill
the ML columns of gold.customer_360).

Stage ``ml`` (in ``c360 run``) trains a region when ``ml.retrain`` says so (``if_missing``: only a
region without champions), then scores; ``c360 train`` always trains; ``c360 score`` only scores.
Customers without profiling consent are neither trained on nor scored.

Tables (partitioned by region; scores also by ``as_of_date``, replaced per region and date):

* ``gold.segment_profiles`` - one row per segment of every trained segmentation model version
* ``gold.customer_segments`` - customer -> segment, model name and version, scored_at
* ``gold.churn_scores`` - customer -> churn probability, decision, cold-start flag, model, scored_at
* ``gold.churn_scores_shadow`` - the same for the challenger churn model (shadow mode: a newly
  trained model that did not beat the champion holds the ``challenger`` alias, or one set by hand;
  ``ml.churn.shadow``); nothing reads it for a decision, monitoring compares it with the champion
* ``gold.customer_clv`` and ``gold.finance_clv_by_segment`` - lifetime value per buyer and per segment
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import date, datetime, timedelta, timezone

import pyspark.sql.functions as F
from py4j.protocol import Py4JJavaError
from pyspark.ml import PipelineModel
from pyspark.ml.feature import SQLTransformer
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from customer360.config import SegmentRule
from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.features.store import ensure_features, features_as_of, read_features, region_feature_set_version
from customer360.gold.customer360 import with_ml_columns
from customer360.lakehouse.core import described_columns, with_comments
from customer360.ml import backtest, calibration, clv, tracking
from customer360.ml import churn as churn_lib
from customer360.ml import survival as survival_lib
from customer360.ml.metrics import binary_metrics, calibration_table, expected_cost, lift_table
from customer360.ml.scoring import profiling_allowed, scoring_date
from customer360.ml.segment_model import FIT_PARTITIONS, assign_segments, fit_segmentation
from customer360.ml.segmentation import VECTOR, SegmentationError, SegmentInfo, rule_segment, silhouette
from customer360.tables import (
    CHURN_SCORES,
    CHURN_SCORES_SHADOW,
    CLV_BY_SEGMENT,
    CUSTOMER_360,
    CUSTOMER_CLV,
    CUSTOMER_SURVIVAL,
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    SEGMENT_PROFILES,
    SILVER_ORDERS,
)

log = logging.getLogger(__name__)

SEGMENTATION, CHURN = "segmentation", "churn"
#: the time-to-churn model's artifact in the churn model's run (deployed with the churn model)
SURVIVAL_MODEL = "survival"


class ScoringError(C360Error):
    """Scoring cannot run: no champion, or features of another version than the model's."""


PROFILE_SCHEMA, PROFILE_COMMENTS = described_columns(
    ("model_name", T.StringType(), False, "registered segmentation model (MLflow)"),
    ("model_version", T.StringType(), False, "registered model version"),
    ("segment_id", T.IntegerType(), False, "segment id, kept across model versions when a segment's centroid matches the previous model's"),
    ("segment", T.StringType(), False, "operational segment name (kept with the id)"),
    ("global_segment", T.StringType(), False, "name in the global taxonomy (ml.segmentation.taxonomy, or the rule's name)"),
    ("assigned_by", T.StringType(), False, "rule (ml.segmentation.rules, applied first) or cluster"),
    ("customers", T.LongType(), False, "customers in the segment at training"),
    ("share_of_customers", T.DoubleType(), False, "customers / all segmented customers of the region"),
    ("share_of_revenue", T.DoubleType(), False, "the segment's lifetime net revenue / all segmented customers' (reporting currency)"),
    ("feature_means", T.MapType(T.StringType(), T.DoubleType(), True), False, "mean of each segmentation feature (raw values)"),
    ("feature_medians", T.MapType(T.StringType(), T.DoubleType(), True), False,
     "approximate median of each segmentation feature (raw "
     "values)"),
    ("distinguishing_features", T.ArrayType(T.StringType(), False), False,
     "the three features whose (transformed) mean is farthest from all segmented customers', as "
     "z-scores"),
    ("centroid", T.MapType(T.StringType(), T.DoubleType(), False), True,
     "mean of each filled, log-transformed feature (clusters only): what later models are matched "
     "on"),
    ("as_of_date", T.DateType(), False, "as-of date of the features the model was trained on"),
    ("trained_at", T.TimestampType(), False, "training time, UTC"),
    ("is_champion_at_training", T.BooleanType(), False, "the model became the champion when trained"),
    ("run_id", T.StringType(), False, "pipeline run that trained the model"),
    ("region", T.StringType(), False, "region (partition)"),
)

SEGMENTS_SCHEMA_COMMENTS = {
    "customer_id": "stable customer id",
    "segment_id": "segment id (gold.segment_profiles)",
    "segment": "operational segment name",
    "global_segment": "segment name in the global taxonomy",
    "assigned_by": "rule or cluster",
    "model_name": "registered segmentation model (MLflow)",
    "model_version": "registered model version (the champion when scored)",
    "scored_at": "scoring time, UTC",
    "run_id": "pipeline run that scored the row",
    "region": "region (partition)",
    "as_of_date": "as-of date of the features scored (partition)",
}

CLV_COMMENTS = {
    "customer_id": "stable customer id",
    "frequency": "repeat purchase days up to as_of_date (distinct order days, UTC, minus one)",
    "recency_days": "days from the first to the last order day",
    "age_days": "days from the first order day to as_of_date (BG/NBD's T)",
    "monetary_value": "mean net revenue of the repeat order days (reporting currency); 0 without repeat orders",
    "expected_purchases": "BG/NBD expected purchase days in the horizon_days after as_of_date",
    "p_alive": "BG/NBD probability that the customer is still active at as_of_date",
    "expected_avg_order_value": "Gamma-Gamma expected net revenue per purchase day (shrunk towards the region's mean)",
    "clv": "expected purchases x expected spend per purchase over horizon_days, discounted monthly at ml.clv.discount_rate_annual",
    "horizon_days": "the CLV horizon (ml.clv.horizon_days)",
    "reporting_currency": "currency of monetary_value, expected_avg_order_value and clv",
    "scored_at": "scoring time, UTC",
    "run_id": "pipeline run that scored the row",
    "region": "region (partition)",
    "as_of_date": "as-of date of the order histories (partition)",
}

CLV_BY_SEGMENT_COMMENTS = {
    "segment": "segment of the customer at the same as-of date (gold.customer_segments)",
    "customers": "buyers with a lifetime value",
    "clv_total": "sum of their lifetime value over the horizon (reporting currency)",
    "clv_mean": "mean lifetime value per buyer",
    "expected_purchases_total": "expected purchase days over the horizon, summed",
    "p_alive_mean": "mean probability of being still active",
    "reporting_currency": "currency of the amounts",
    "region": "region (partition)",
    "as_of_date": "scoring date (partition)",
}

CHURN_COMMENTS = {
    "customer_id": "stable customer id",
    "churn_score": "probability of no order within horizon_days after as_of_date (the deployed model's score, calibrated on back-test folds); the cold-start score when is_cold_start_score",
    "churn_predicted": "churn_score >= threshold: a retention offer is worth its cost",
    "threshold": "decision threshold from the region's churn_costs: retention_offer / (offer_success_rate * lost_customer), at most 1",
    "is_cold_start_score": "the customer has too little history (is_cold_start): the score is the observed churn rate of cold-start customers at the model's validation cutoff, not a model output",
    "horizon_days": "churn horizon of the region",
    "model_name": "registered churn model (MLflow)",
    "model_version": "registered model version (the champion when scored)",
    "scored_at": "scoring time, UTC",
    "run_id": "pipeline run that scored the row",
    "region": "region (partition)",
    "as_of_date": "as-of date of the features scored (partition)",
}

SURVIVAL_COMMENTS = {
    "customer_id": "stable customer id",
    "status": "active (last order less than gap_days before as_of_date) or lapsed (inactive for gap_days: churned by the definition)",
    "expected_remaining_days": "Weibull AFT mean of the days from as_of_date until the inactivity reaches gap_days; 0 when lapsed",
    "median_remaining_days": "Weibull AFT median of the same; 0 when lapsed",
    "gap_days": "inactivity that counts as churn: the region's churn horizon",
    "model_name": "registered churn model whose run holds the survival model (deployed with it)",
    "model_version": "registered churn model version (the champion when scored)",
    "scored_at": "scoring time, UTC",
    "run_id": "pipeline run that scored the row",
    "region": "region (partition)",
    "as_of_date": "as-of date of the features and order histories (partition)",
}

SHADOW_COMMENTS = {
    **CHURN_COMMENTS,
    "churn_score": "the challenger's calibrated probability of no order within horizon_days after as_of_date (shadow: no decision uses it); "
                   "its cold-start score when is_cold_start_score",
    "churn_predicted": "churn_score >= threshold (what the challenger would decide; not acted on)",
    "threshold": "the challenger's decision threshold from the region's churn_costs when it was trained",
    "model_name": "registered churn model (MLflow)",
    "model_version": "registered model version holding the challenger alias when scored",
}


# --------------------------------------------------------------------------- stages


def run(ctx: RunContext) -> StageResult:
    """``c360 run``: train where ``ml.retrain`` asks for it, then score."""
    result = StageResult("ml")
    client = tracking.configure(ctx.config)
    to_train = [region for region in ctx.regions if ctx.config.ml.retrain == "always" or _needs_training(ctx, client, region)]
    _train_regions(ctx, client, to_train, result)
    for region in ctx.regions:
        if _needs_training(ctx, client, region):
            result.errors.append(f"{region}: not scored: no champion models for the current features")
            continue
        _score_safely(ctx, client, region, result)
    return result


def promote(ctx: RunContext, *, version: str | None = None) -> StageResult:
    """``c360 promote``: each region's churn challenger (or ``version``, one region only) becomes the
    champion, and the champion it replaces becomes the challenger, so it goes on being scored in
    shadow and the swap can be judged, and undone, the same way. A version trained on other
    features than today's, or of an older format, is refused."""
    result = StageResult("promote")
    if version is not None and len(ctx.regions) != 1:
        raise ScoringError(f"--version names one region's model version; {len(ctx.regions)} regions are selected ({', '.join(ctx.regions)})")
    client = tracking.configure(ctx.config)
    for region in ctx.regions:
        name = tracking.model_name(ctx.config, region, CHURN)
        champion = tracking.champion(client, name)
        target = tracking.model_version(client, name, version) if version is not None else tracking.challenger(client, name)
        if target is None:
            result.errors.append(f"{region}: nothing promoted: {name} has no " + (f"version {version}" if version is not None else "challenger"))
            continue
        if champion is not None and str(champion.version) == str(target.version):
            result.errors.append(f"{region}: nothing promoted: {name} v{target.version} is already the champion")
            continue
        meta = tracking.load_json(target.run_id, "churn.json")
        current = region_feature_set_version(ctx, region)
        if not _scores_today(meta, current):
            result.errors.append(
                f"{region}: nothing promoted: {name} v{target.version} was trained on features {meta.get('feature_set_version')} "
                f"(format {meta.get('format')}); today's are {current}: it could not score them"
            )
            continue
        tracking.promote(client, name, str(target.version))
        client.set_model_version_tag(name, str(target.version), "promoted_by", "c360 promote")
        tracking.set_challenger(client, name, str(champion.version) if champion is not None else None)
        result.lines.append(
            f"{region}: {name} v{target.version} is now the champion"
            + (f"; v{champion.version} becomes the challenger (scored in shadow)" if champion is not None else "")
        )
    return result


def _needs_training(ctx: RunContext, client, region: str) -> bool:
    """No champion yet, or one trained on another feature-set version than today's."""
    current = region_feature_set_version(ctx, region)
    for kind in (SEGMENTATION, CHURN):
        holder = tracking.champion(client, tracking.model_name(ctx.config, region, kind))
        if holder is None or _trained_on(client, holder) != current:
            return True
    return False


def _score_safely(ctx: RunContext, client, region: str, result: StageResult) -> None:
    """Score one region; a region that cannot be scored is reported and the others go on."""
    try:
        _score_region(ctx, client, region, result)
    except (ScoringError, tracking.TrackingError) as exc:
        result.errors.append(f"{region}: not scored: {exc}")


def train(ctx: RunContext) -> StageResult:
    result = StageResult("train")
    _train_regions(ctx, tracking.configure(ctx.config), list(ctx.regions), result)
    return result


def score(ctx: RunContext) -> StageResult:
    result = StageResult("score")
    client = tracking.configure(ctx.config)
    for region in ctx.regions:
        _score_safely(ctx, client, region, result)
    return result


def training_dates(ctx: RunContext, region: str) -> list[date]:
    """The as-of dates a region's training reads features of: today, the stability date, the
    churn back-test's cut-offs and the deployment's."""
    as_of = scoring_date(ctx, region)
    settings = ctx.config.ml
    horizon = ctx.config.regions[region].churn_horizon_days
    folds = churn_folds(settings.churn, as_of, horizon)
    days = [as_of, backtest.deployment_cutoff(as_of, horizon_days=horizon), *sorted({d for f in folds for d in (f.train_at, f.valid_at)})]
    if settings.segmentation.stability.previous_as_of_days:
        days.append(as_of - timedelta(days=settings.segmentation.stability.previous_as_of_days))
    return days


def _train_regions(ctx: RunContext, client, regions: list[str], result: StageResult) -> list[str]:
    """Train each region; a region with too little data is reported and the others go on."""
    ensure_features(ctx, {region: training_dates(ctx, region) for region in regions})
    trained = []
    for region in regions:
        try:
            _train_region(ctx, client, region, result)
            trained.append(region)
        except (SegmentationError, churn_lib.ChurnError, backtest.BacktestError, calibration.CalibrationError) as exc:
            result.errors.append(f"{region}: training failed: {exc}")
    return trained


# --------------------------------------------------------------------------- inputs


def _profiled(ctx: RunContext, region: str, day: date) -> DataFrame:
    """Training's features of a date (``_train_regions`` has ensured them) of customers who may be profiled."""
    return read_features(ctx, region, day).join(profiling_allowed(ctx, region), ["region", "customer_id"], "left_semi")


def _input_versions(ctx: RunContext, names: list[str]) -> dict[str, int]:
    return {name: ctx.lakehouse.version(name) for name in names if ctx.lakehouse.exists(name)}


# --------------------------------------------------------------------------- training


def _train_region(ctx: RunContext, client, region: str, result: StageResult) -> None:
    import mlflow

    config = ctx.config
    as_of = scoring_date(ctx, region)
    version = region_feature_set_version(ctx, region)
    current = _profiled(ctx, region, as_of).persist()
    inputs = _input_versions(ctx, [CUSTOMER_FEATURES, CUSTOMER_360, SILVER_ORDERS])
    common_params = {"region": region, "as_of": as_of.isoformat(), "feature_set_version": version, "pipeline_run_id": ctx.run_id}
    common_params.update({f"input_version.{name}": v for name, v in inputs.items()})

    # ---- segmentation
    settings = config.ml.segmentation
    bounds = config.regions[region].segment_count
    seg_name = tracking.model_name(config, region, SEGMENTATION)
    seg_champion = tracking.champion(client, seg_name)
    previous = _previous_segments(ctx, region, seg_name, seg_champion)
    earlier = None
    if settings.stability.previous_as_of_days:
        earlier = _profiled(ctx, region, as_of - timedelta(days=settings.stability.previous_as_of_days))
    fitted = fit_segmentation(
        current, settings=settings, k_min=bounds.min, k_max=bounds.max, region=region, previous=previous, earlier_features=earlier
    )
    comparable = seg_champion is not None and not _stale(client, seg_champion, version)
    champion_silhouette = _champion_silhouette(ctx, seg_champion, current, settings.rules) if comparable else None
    promote = champion_silhouette is None or fitted.silhouette > champion_silhouette + settings.min_silhouette_improvement
    mlflow.set_experiment(experiment_id=tracking.experiment_id(config, SEGMENTATION))
    with mlflow.start_run(run_name=f"{region} segmentation {as_of}"):
        mlflow.log_params({
            **common_params, "algorithm": settings.algorithm, "seed": settings.seed, "max_iter": settings.max_iter,
            "k_min": bounds.min, "k_max": bounds.max, "min_segment_share": settings.min_segment_share,
            "features": json.dumps([f.model_dump() for f in settings.features]),
            "rules": json.dumps([r.model_dump() for r in settings.rules]),
        })
        for c in fitted.candidates:
            mlflow.log_metric("candidate_silhouette", c.silhouette, step=c.k)
            mlflow.log_metric("candidate_cost", c.cost, step=c.k)
        mlflow.log_metrics({
            "k": fitted.k, "elbow_k": fitted.elbow_k, "silhouette": fitted.silhouette, "segments": len(fitted.segments),
            "customers": fitted.customers, "clustered_customers": fitted.clustered, "matched_segments": len(fitted.matched),
            **fitted.stability,
            **({"champion_silhouette": champion_silhouette} if champion_silhouette is not None else {}),
        })
        segment_map = {
            "feature_set_version": version,
            "rules": [r.model_dump() for r in settings.rules],
            "cluster_to_segment": {str(c): s for c, s in fitted.cluster_to_segment.items()},
            "segments": {str(sid): [s.name, s.global_segment, s.assigned_by] for sid, s in fitted.segments.items()},
            "silhouette": fitted.silhouette,
        }
        tracking.log_json("segmentation.json", segment_map)
        tracking.log_json("profiles.json", fitted.profiles)
        mlflow.set_tags({"region": region, "feature_set_version": version, "promoted": str(promote).lower()})
        # the registered model also answers in ``prediction`` (the cluster), the column MLflow's pyfunc returns
        served = PipelineModel(stages=[*fitted.model.stages, SQLTransformer(statement="SELECT *, CAST(cluster AS double) AS prediction FROM __THIS__")])
        example = tracking.typical_row(current, [f.name for f in settings.features])
        model_version = tracking.log_spark_model(served, registered_name=seg_name, example=example, output=tracking.model_output(served, example))
    # profiles first: the next training reads the champion's segments from them
    _write_profiles(ctx, region, seg_name, model_version, fitted.profiles, as_of, promote)
    if promote:
        tracking.promote(client, seg_name, model_version)
    verdict = "champion" if promote else f"kept champion v{seg_champion.version} (silhouette {champion_silhouette:.3f})"
    result.lines.append(
        f"{region}: segmentation {seg_name} v{model_version} ({verdict}): {settings.algorithm} k={fitted.k} "
        f"(elbow {fitted.elbow_k}), silhouette {fitted.silhouette:.3f}, {len(fitted.segments)} segments, "
        + ", ".join(f"ARI {k.removeprefix('ari_')} {v:.2f}" for k, v in fitted.stability.items() if "min" not in k)
    )
    for p in fitted.profiles:
        result.lines.append(
            f"    {p['segment_id']:>2} {p['segment']:<34} {p['customers']:>6,} customers ({p['share_of_customers']:.0%}), "
            f"{p['share_of_revenue']:.0%} of revenue; {', '.join(p['distinguishing_features'])}"
        )
    result.metrics.append(Metric(region, "segmentation_k", fitted.k, SEGMENT_PROFILES))

    # ---- churn
    _train_churn(ctx, client, region, as_of, version, common_params, result)
    current.unpersist()


def _trained_on(client, holder) -> str | None:
    """The feature-set version a registered model was trained on (its run's tag)."""
    return client.get_run(holder.run_id).data.tags.get("feature_set_version")


def _stale(client, holder, version: str) -> bool:
    """The champion was trained on another feature-set version: it cannot score today's features, so
    it is not compared, it is replaced."""
    trained_on = _trained_on(client, holder)
    if trained_on != version:
        log.warning("champion %s v%s was trained on features %s, not %s: the new model is promoted", holder.name, holder.version, trained_on, version)
        return True
    return False


def _previous_segments(ctx: RunContext, region: str, name: str, champion) -> dict[int, SegmentInfo]:
    """The champion's segments (ids, names, centroids) from gold.segment_profiles."""
    if champion is None or not ctx.lakehouse.exists(SEGMENT_PROFILES):
        return {}
    rows = (
        ctx.lakehouse.read(SEGMENT_PROFILES)
        .where((F.col("region") == region) & (F.col("model_name") == name) & (F.col("model_version") == str(champion.version)))
        .collect()
    )
    return {
        r["segment_id"]: SegmentInfo(r["segment_id"], r["segment"], r["global_segment"], r["assigned_by"], centroid=dict(r["centroid"]) if r["centroid"] else None)
        for r in rows
    }


def _champion_silhouette(ctx: RunContext, champion, current: DataFrame, rules) -> float | None:
    """The champion's silhouette on today's customers (its own rules, its own features space)."""
    segment_map = tracking.load_json(champion.run_id, "segmentation.json")
    model = tracking.load_spark_model(champion.name, champion.version)
    champion_rules = [SegmentRule(**r) for r in segment_map["rules"]]
    rest = current.where(rule_segment(champion_rules).isNull())
    try:
        return silhouette(model.transform(rest).select(VECTOR, "cluster"))
    except (PySparkException, Py4JJavaError) as exc:  # a champion built on other features cannot score today's rows
        log.warning("champion %s v%s cannot be evaluated on today's features (%s): the new model is promoted", champion.name, champion.version, exc)
        return None


def _write_profiles(ctx: RunContext, region: str, name: str, version: str, profiles: list[dict], as_of: date, champion: bool) -> None:
    trained_at = datetime.now(timezone.utc)
    rows = [
        (name, version, p["segment_id"], p["segment"], p["global_segment"], p["assigned_by"], p["customers"],
         float(p["share_of_customers"]), float(p["share_of_revenue"]), p["feature_means"], p["feature_medians"],
         p["distinguishing_features"], p["centroid"], as_of, trained_at, champion, ctx.run_id, region)
        for p in profiles
    ]
    df = ctx.spark.createDataFrame(rows, PROFILE_SCHEMA).coalesce(1)
    ctx.lakehouse.merge(
        with_comments(df, PROFILE_COMMENTS), SEGMENT_PROFILES, keys=["region", "model_name", "model_version", "segment_id"],
        partition_by=["region"], schema_mode="merge",
    )


def _train_churn(ctx: RunContext, client, region: str, as_of: date, version: str, common_params: dict, result: StageResult) -> None:
    """Back-test the candidates, refit the deployed one on the newest labelled window, calibrate it,
    log everything to MLflow and register it (champion when it beats the champion's back-test)."""
    import mlflow

    config = ctx.config
    settings = config.ml.churn
    horizon = config.regions[region].churn_horizon_days
    costs = config.regions[region].churn_costs
    fold_list = churn_folds(settings, as_of, horizon)
    data = _ChurnData(ctx, region, horizon, settings.features)
    fitted: dict[tuple[int, backtest.Variant], object] = {}

    def evaluate(fold: backtest.Fold, variant: backtest.Variant) -> backtest.Outcome:
        started = time.perf_counter()
        model, rows = data.fit(variant, settings, fold.train_at)
        fitted[(fold.index, variant)] = model
        try:  # binary_metrics refuses a validation set without both classes
            metrics = binary_metrics(churn_lib.raw_scores(model, data.trainable(fold.valid_at)), score=churn_lib.RAW_SCORE, probability=False)
        except ValueError as exc:
            raise churn_lib.ChurnError(f"region {region}: nothing to validate on at the cutoff {fold.valid_at}: {exc}") from None
        return backtest.Outcome(fold, variant, metrics, rows, time.perf_counter() - started)

    def prepare(fold: backtest.Fold) -> None:  # cached once, before the fold's fits run side by side
        data.trainable(fold.valid_at)
        data.weighted(fold.train_at)

    tested = backtest.run(settings, fold_list, evaluate, prepare=prepare, parallelism=settings.backtest.parallelism)
    deployed = tested.deployed
    reported = [f for f in fold_list if f.reported]
    fold_scores = [
        churn_lib.raw_scores(fitted[(f.index, v)], data.trainable(f.valid_at)).persist()
        for f, v in zip(reported, tested.chosen[deployed.candidate])
    ]
    choice = calibration.choose(settings.calibration, fold_scores)
    # what the deployed probabilities are worth, measured where the calibrator did not look: fitted
    # on fold 1's scores, applied to fold 0's (with one fold, in-sample, and said so)
    held_out = len(fold_scores) > 1
    check = calibration.apply(calibration.fit(choice.method, fold_scores[1 if held_out else 0]), fold_scores[0]).persist()
    threshold = churn_lib.decision_threshold(costs)
    newest = binary_metrics(check, score="churn_score")
    at_threshold = expected_cost(
        check, probability="churn_score", threshold=threshold, retention_offer=costs.retention_offer,
        lost_customer=costs.lost_customer, offer_success_rate=costs.offer_success_rate,
    )
    reliability = calibration_table(check, probability="churn_score")
    lift = lift_table(check, score="churn_score")
    # deployment: the chosen variant refitted on the newest labelled window, calibrated on fold 0
    deploy_at = backtest.deployment_cutoff(as_of, horizon_days=horizon)
    model, deploy_rows = data.fit(deployed, settings, deploy_at)
    pipeline = churn_lib.deployed(model, calibration.fit(choice.method, fold_scores[0]))
    cold_score = data.cold_start_rate(deploy_at)

    lifetime, lifetime_error = None, None
    if settings.survival.enabled:
        try:
            lifetime = _train_survival(data, settings, deploy_at, horizon)
        except survival_lib.SurvivalError as exc:  # the churn model deploys without it; the summary says why
            lifetime_error = str(exc)

    name = tracking.model_name(config, region, CHURN)
    holder = tracking.champion(client, name)
    mean = tested.means[deployed.candidate]
    champion_mean = _champion_backtest(client, holder, settings.primary_metric, version, [f.valid_at for f in reported])
    promote = champion_mean is None or mean > champion_mean + settings.min_improvement
    mlflow.set_experiment(experiment_id=tracking.experiment_id(config, CHURN))
    with mlflow.start_run(run_name=f"{region} churn {as_of}"):
        mlflow.log_params({
            **common_params, "horizon_days": horizon, "primary_metric": settings.primary_metric,
            "backtest.folds": settings.backtest.folds, "backtest.step_days": settings.backtest.step_days or horizon,
            "validation_cutoffs": json.dumps([f.valid_at.isoformat() for f in reported]),
            "deployed": deployed.candidate, "deployed.params": json.dumps(dict(deployed.params)), "training_cutoff": deploy_at.isoformat(),
            "calibration": choice.method, "features": json.dumps(list(settings.features)),
            **{f"{n}.{k}": json.dumps(v) if isinstance(v, dict) else v for n in settings.candidates for k, v in getattr(settings, n).model_dump().items()},
            **{f"costs.{k}": v for k, v in costs.model_dump().items()},
        })
        mlflow.log_metrics({
            **{f"backtest.{n}.{settings.primary_metric}": v for n, v in tested.means.items()},
            "backtest.mean": mean, "train_rows": deploy_rows, "threshold": threshold, "cold_start_score": cold_score,
            **newest.as_dict("newest_fold."), **{f"at_threshold.{k}": float(v) for k, v in at_threshold.items()},
            **{f"calibration.{m}.held_out_brier": b for m, b in choice.held_out_brier.items()},
            **({"champion_backtest_mean": champion_mean} if champion_mean is not None else {}),
            **(lifetime.metrics() if lifetime else {}),
        })
        table = tested.table()
        tracking.log_json("backtest.json", table)
        tracking.log_table("backtest_table.json", table)  # the same rows as an MLflow table (the UI shows it)
        tracking.log_reliability_plot(
            "calibration.png", reliability,
            title=f"{region}: {choice.method}, Brier {newest.brier:.3f}" + (" (held out)" if held_out else " (in sample)"),
        )
        tracking.log_json("calibration.json", {"method": choice.method, "held_out": held_out, "brier": newest.brier, "bins": reliability})
        tracking.log_json("lift.json", lift)  # the newest fold's lift curve (c360 report draws it)
        tracking.log_json("churn.json", {
            "format": 2, "feature_set_version": version, "features": list(settings.features), "threshold": threshold,
            "cold_start_score": cold_score, "horizon_days": horizon, "training_cutoff": deploy_at, "deployed": deployed.candidate,
            "params": dict(deployed.params), "calibration": choice.method, "primary_metric": settings.primary_metric,
            "backtest_mean": mean, "validation_cutoffs": [f.valid_at for f in reported],
            **({"survival": {"gap_days": horizon, "concordance": lifetime.concordance, "training_cutoff": deploy_at}} if lifetime else {}),
        })
        mlflow.set_tags({"region": region, "feature_set_version": version, "promoted": str(promote).lower(), "deployed": deployed.candidate})
        example = tracking.typical_row(data.trainable(deploy_at), list(settings.features))
        model_version = tracking.log_spark_model(
            pipeline, registered_name=name, example=example, output=tracking.model_output(pipeline, example)
        )
        if lifetime:  # logged beside the churn model, deployed with it (not registered on its own)
            tracking.log_spark_model(lifetime.model, example=example, output=tracking.model_output(lifetime.model, example), name=SURVIVAL_MODEL)
    if promote:
        tracking.promote(client, name, model_version)
        tracking.set_challenger(client, name, None)  # a challenger of the old champion is not one of the new
    elif settings.shadow:
        tracking.set_challenger(client, name, model_version)
    verdict = "champion" if promote else (
        f"kept champion v{holder.version} (back-tested {champion_mean:.3f})" + ("; challenger, scored in shadow" if settings.shadow else "")
    )
    label = settings.primary_metric.replace("_", " ")
    result.lines += [
        f"{region}: churn back-test over {len(reported)} folds (H {horizon} d, {label}; tuning on the next older fold):",
        *backtest.summary(tested),
        f"  deployed {deployed.candidate} ({deployed.describe()}): {tested.reason}",
        f"  refit as of {deploy_at} on {deploy_rows:,} customers (outcomes to {as_of}); calibration {choice.describe()}; "
        f"newest fold calibrated: Brier {newest.brier:.3f}, top-decile lift {newest.top_decile_lift:.2f}",
        f"  threshold {threshold:.2f} from costs (offer {costs.retention_offer:g}, lost customer {costs.lost_customer:g}, "
        f"offer success {costs.offer_success_rate:.0%}): precision {at_threshold['precision']:.2f}, recall {at_threshold['recall']:.2f}, "
        f"cost per customer {at_threshold['cost_per_customer']:.2f} vs {at_threshold['cost_per_customer_flagging_nobody']:.2f} flagging nobody",
        *([f"  time to churn (Weibull AFT): concordance {lifetime.concordance:.3f} held out ({lifetime.valid_rows:,} active customers at "
             f"{deploy_at}, {lifetime.valid_events:.0%} churned by {as_of}); refit on them"] if lifetime else []),
        *([f"  time to churn not trained: {lifetime_error}"] if lifetime_error else []),
        f"  registered {name} v{model_version} ({verdict})",
    ]
    result.metrics.append(Metric(region, "churn_validation_rows", newest.rows, CHURN_SCORES))
    for frame in (*fold_scores, check):
        frame.unpersist()
    data.release()


@dataclasses.dataclass(frozen=True)
class _Lifetime:
    model: PipelineModel  # servable: ``prediction`` = expected remaining days
    concordance: float
    train_rows: int
    valid_rows: int
    valid_events: float
    sigma: float

    def metrics(self) -> dict[str, float]:
        return {"survival.concordance": self.concordance, "survival.train_rows": self.train_rows,
                "survival.valid_rows": self.valid_rows, "survival.valid_churned": self.valid_events, "survival.sigma": self.sigma}


def _train_survival(data, settings, deploy_at: date, horizon: int) -> _Lifetime:
    """The time-to-churn model: fitted on the customers active at T - 2H (churn observed up to
    T - H), its concordance index measured on those active at T - H (observed up to T), then refitted
    on the latter; the features and population of the churn model."""
    params = survival_lib.SurvivalParams(max_iter=settings.survival.max_iter, tol=settings.survival.tol)
    features = list(settings.features)
    older = deploy_at - timedelta(days=horizon)
    train = survival_lib.durations(data.trainable(older), data.orders, at=older, until=deploy_at, gap_days=horizon).persist()
    valid = survival_lib.durations(data.trainable(deploy_at), data.orders, at=deploy_at, until=deploy_at + timedelta(days=horizon),
                                   gap_days=horizon).persist()
    try:
        fitted = survival_lib.fit(train, features=features, params=params)
        held_out = survival_lib.concordance(survival_lib.expected_remaining_days(fitted, valid))
        model = survival_lib.servable(survival_lib.fit(valid, features=features, params=params))
        counts = valid.agg(F.count(F.lit(1)).alias("n"), F.avg(survival_lib.EVENT).alias("events")).first()
        return _Lifetime(model, held_out, train.count(), int(counts["n"]), float(counts["events"]),
                         float(survival_lib.aft_model(model).scale))
    finally:
        train.unpersist()
        valid.unpersist()


def churn_folds(settings, as_of: date, horizon: int) -> list[backtest.Fold]:
    return backtest.folds(
        as_of, horizon_days=horizon, step_days=settings.backtest.step_days, count=settings.backtest.folds,
        tuning=backtest.needs_tuning(settings),
    )


class _ChurnData:
    """A region's labelled customers per cut-off, read once and kept while the back-test runs."""

    def __init__(self, ctx: RunContext, region: str, horizon: int, features) -> None:
        self.ctx, self.region, self.horizon, self.features = ctx, region, horizon, features
        self.orders = ctx.lakehouse.read(SILVER_ORDERS).where(F.col("region") == region)
        self._trainable: dict[date, DataFrame] = {}
        self._weighted: dict[date, tuple[DataFrame, int]] = {}

    def trainable(self, day: date) -> DataFrame:
        """Buyers past cold start with profiling consent, labelled at ``day``."""
        if day not in self._trainable:
            labelled = churn_lib.labelled(_profiled(self.ctx, self.region, day), self.orders, at=day, horizon_days=self.horizon)
            missing = churn_lib.missing_features(labelled, self.features)
            if missing:
                raise churn_lib.ChurnError(f"region {self.region}: ml.churn.features names {missing}, which gold.customer_features lacks")
            self._trainable[day] = churn_lib.trainable(labelled).persist()
        return self._trainable[day]

    def fit(self, variant: backtest.Variant, settings, day: date):
        """The variant fitted on the customers labelled at ``day`` (a baseline needs no fit); and their count."""
        if variant.baseline:
            return churn_lib.rule_model(variant.candidate), self.weighted(day)[1]
        frame, rows = self.weighted(day)
        return churn_lib.model_pipeline(variant.candidate, variant.settings(settings), self.features).fit(frame), rows

    def weighted(self, day: date) -> tuple[DataFrame, int]:
        if day not in self._weighted:
            weighted, _ = churn_lib.with_class_weights(self.trainable(day))
            # a fixed row order and partitioning: the seeded subsampling then picks the same rows every run
            frame = weighted.repartition(FIT_PARTITIONS, "customer_id").sortWithinPartitions("customer_id").persist()
            self._weighted[day] = (frame, frame.count())
        return self._weighted[day]

    def cold_start_rate(self, day: date) -> float:
        """The observed churn rate of cold-start buyers at ``day``: their score (no model scores them)."""
        cold = churn_lib.labelled_all(_profiled(self.ctx, self.region, day), self.orders, at=day, horizon_days=self.horizon)
        row = cold.where(_cold_start()).agg(F.avg(churn_lib.LABEL)).first()
        if row[0] is not None:
            return float(row[0])
        return float(self.trainable(day).agg(F.avg(churn_lib.LABEL)).first()[0])

    def release(self) -> None:
        for frame in [*self._trainable.values(), *(f for f, _ in self._weighted.values())]:
            frame.unpersist()


def _champion_backtest(client, holder, metric: str, version: str, cutoffs: list[date]) -> float | None:
    """The champion's back-tested mean of ``metric`` when it was back-tested on the same cut-offs
    (the same data: a retrain); None otherwise (no champion, other features, an older kind of
    model, another metric, or other cut-offs: a champion cannot be back-tested on cut-offs whose
    outcomes it was trained on, so the newer back-test decides)."""
    if holder is None or _stale(client, holder, version):
        return None
    meta = tracking.load_json(holder.run_id, "churn.json")
    same = meta.get("format") == 2 and meta.get("primary_metric") == metric and meta.get("validation_cutoffs") == [d.isoformat() for d in cutoffs]
    if not same:
        log.warning("champion %s v%s has no back-test of %s on the same cut-offs: the new model is promoted", holder.name, holder.version, metric)
        return None
    return float(meta["backtest_mean"])


# --------------------------------------------------------------------------- scoring


def _score_region(ctx: RunContext, client, region: str, result: StageResult) -> None:
    config, lakehouse = ctx.config, ctx.lakehouse
    as_of = scoring_date(ctx, region)
    version = region_feature_set_version(ctx, region)
    seg_holder = tracking.require_champion(client, tracking.model_name(config, region, SEGMENTATION))
    churn_holder = tracking.require_champion(client, tracking.model_name(config, region, CHURN))
    segment_map = tracking.load_json(seg_holder.run_id, "segmentation.json")
    churn_meta = tracking.load_json(churn_holder.run_id, "churn.json")
    for holder, meta in ((seg_holder, segment_map), (churn_holder, churn_meta)):
        if meta["feature_set_version"] != version:
            raise ScoringError(
                f"region {region}: {holder.name} v{holder.version} was trained on features {meta['feature_set_version']}, "
                f"but the features are now {version}: run `c360 train --region {region}`"
            )
    all_features = features_as_of(ctx, region, as_of)
    current = all_features.join(profiling_allowed(ctx, region), ["region", "customer_id"], "left_semi").persist()
    scored_at = datetime.now(timezone.utc)
    stamp = [F.lit(scored_at).cast("timestamp").alias("scored_at"), F.lit(ctx.run_id).alias("run_id")]

    segments = assign_segments(
        current,
        model=tracking.load_spark_model(seg_holder.name, seg_holder.version),
        rules=[SegmentRule(**r) for r in segment_map["rules"]],
        cluster_to_segment={int(c): s for c, s in segment_map["cluster_to_segment"].items()},
        segments={int(sid): tuple(v) for sid, v in segment_map["segments"].items()},
    ).select(
        "customer_id", "segment_id", "segment", "global_segment", "assigned_by",
        F.lit(seg_holder.name).alias("model_name"), F.lit(str(seg_holder.version)).alias("model_version"),
        *stamp, "region", F.lit(as_of).alias("as_of_date"),
    )
    seg_rows = _write_scores(ctx, segments, CUSTOMER_SEGMENTS, SEGMENTS_SCHEMA_COMMENTS, region, as_of)

    if churn_meta.get("format") != 2:
        raise ScoringError(
            f"region {region}: {churn_holder.name} v{churn_holder.version} is an uncalibrated model of an older release: "
            f"run `c360 train --region {region}`"
        )
    model = tracking.load_spark_model(churn_holder.name, churn_holder.version)
    churn = _churn_frame(model, churn_meta, churn_holder, current, stamp, region, as_of)
    churn_rows = _write_scores(ctx, churn, CHURN_SCORES, CHURN_COMMENTS, region, as_of)
    shadow_line = _score_shadow(ctx, client, region, as_of, version, current, churn_holder, stamp) if config.ml.churn.shadow else None
    value_line = _score_value(ctx, region, as_of, current, stamp, result)
    survival_line = _score_survival(ctx, region, as_of, current, churn_holder, churn_meta, stamp)

    # customer_360 rows of this region and date get the new scores
    # (each row gets the scores of its own features_as_of: scoring another date leaves them alone)
    c360 = lakehouse.read(CUSTOMER_360).where(F.col("region") == region)
    mine = F.col("region") == region
    value = lakehouse.read(CUSTOMER_CLV).where(mine) if lakehouse.exists(CUSTOMER_CLV) else None
    lifetime = lakehouse.read(CUSTOMER_SURVIVAL).where(mine) if lakehouse.exists(CUSTOMER_SURVIVAL) else None
    updated = with_ml_columns(
        c360, lakehouse.read(CUSTOMER_SEGMENTS).where(mine), lakehouse.read(CHURN_SCORES).where(mine), value, lifetime
    ).localCheckpoint(eager=True)
    date_filter = mine & (F.col("as_of_date") == F.lit(as_of))
    lakehouse.write(updated, CUSTOMER_360, partition_by=["region"], regions=[region], schema_mode="merge")

    summary = lakehouse.read(CHURN_SCORES).where(date_filter).agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("churn_predicted").cast("long")).alias("flagged"),
        F.sum(F.col("is_cold_start_score").cast("long")).alias("cold"), F.avg(F.when(~F.col("is_cold_start_score"), F.col("churn_score"))).alias("mean"),
    ).first()
    excluded = all_features.count() - current.count()
    result.lines.append(
        f"{region}: scored as of {as_of} with {seg_holder.name} v{seg_holder.version} and {churn_holder.name} v{churn_holder.version}: "
        f"{seg_rows:,} segmented, {churn_rows:,} churn scores ({summary['flagged'] or 0:,} above the threshold, "
        f"{summary['cold'] or 0:,} cold start, mean model score {summary['mean'] or 0:.3f}); {excluded:,} without profiling consent left out"
    )
    result.lines += [line for line in (shadow_line, survival_line, value_line) if line]
    result.metrics += [
        Metric(region, "segmented", seg_rows, CUSTOMER_SEGMENTS),
        Metric(region, "churn_scored", churn_rows, CHURN_SCORES),
        Metric(region, "no_profiling_consent", excluded, CHURN_SCORES),
    ]
    current.unpersist()


def _scores_today(meta: dict, version: str) -> bool:
    """A churn model (its ``churn.json``) can score today's features: the current format (a
    calibrated pipeline) and the feature-set version ``version``."""
    return meta.get("format") == 2 and meta.get("feature_set_version") == version


def _cold_start() -> Column:
    """Customers a model does not score (too little history; unknown counts as cold)."""
    return F.coalesce(F.col("is_cold_start"), F.lit(True))


def _churn_frame(model, meta: dict, holder, current: DataFrame, stamp: list, region: str, as_of: date) -> DataFrame:
    """gold.churn_scores rows of ``current`` by a churn model: the model's calibrated score past cold
    start, its cold-start score before, its threshold."""
    cold = _cold_start()
    by_model = churn_lib.churn_scores(model, current.where(~cold)).select(
        "region", "customer_id", "churn_score", F.lit(False).alias("is_cold_start_score")
    )
    by_rule = current.where(cold).select("region", "customer_id", F.lit(float(meta["cold_start_score"])).alias("churn_score"), F.lit(True).alias("is_cold_start_score"))
    threshold = float(meta["threshold"])
    return by_model.unionByName(by_rule).select(
        "customer_id", "churn_score", (F.col("churn_score") >= threshold).alias("churn_predicted"), F.lit(threshold).alias("threshold"),
        "is_cold_start_score", F.lit(int(meta["horizon_days"])).alias("horizon_days"),
        F.lit(holder.name).alias("model_name"), F.lit(str(holder.version)).alias("model_version"),
        *stamp, "region", F.lit(as_of).alias("as_of_date"),
    )


def _score_shadow(ctx: RunContext, client, region: str, as_of: date, version: str, current: DataFrame, champion, stamp: list) -> str | None:
    """The challenger's scores of the same customers into gold.churn_scores_shadow (no decision
    reads them); a line for the summary, None without a challenger."""
    holder = tracking.challenger(client, champion.name)
    if holder is None or str(holder.version) == str(champion.version):
        return None
    meta = tracking.load_json(holder.run_id, "churn.json")
    if not _scores_today(meta, version):
        return (f"{region}: challenger {holder.name} v{holder.version} not scored in shadow: trained on features "
                f"{meta.get('feature_set_version')} (format {meta.get('format')}), today's are {version}")
    model = tracking.load_spark_model(holder.name, holder.version)
    rows = _write_scores(ctx, _churn_frame(model, meta, holder, current, stamp, region, as_of), CHURN_SCORES_SHADOW, SHADOW_COMMENTS, region, as_of)
    return f"{region}: challenger {holder.name} v{holder.version} scored {rows:,} customers in shadow ({CHURN_SCORES_SHADOW}; no decision uses them)"


def _score_survival(ctx: RunContext, region: str, as_of: date, current: DataFrame, holder, meta: dict, stamp: list) -> str | None:
    """gold.customer_survival: the profiled buyers past cold start, active (remaining lifetime by the
    survival model deployed with the churn champion) or lapsed (0 days); None when the champion has
    no survival model."""
    import mlflow.spark

    info = meta.get("survival")
    if not info:
        return None
    gap = int(info["gap_days"])
    model = mlflow.spark.load_model(f"runs:/{holder.run_id}/{SURVIVAL_MODEL}")
    orders = ctx.lakehouse.read(SILVER_ORDERS).where(F.col("region") == region)
    warm = current.where(~_cold_start())
    buyers = survival_lib.status(warm, orders, at=as_of, gap_days=gap)
    active = survival_lib.expected_remaining_days(model, buyers.where(F.col(survival_lib.STATUS) == "active"))
    lapsed = buyers.where(F.col(survival_lib.STATUS) == "lapsed").withColumn(survival_lib.EXPECTED, F.lit(0.0)).withColumn(survival_lib.MEDIAN, F.lit(0.0))
    rows = active.unionByName(lapsed).select(
        "customer_id", survival_lib.STATUS, survival_lib.EXPECTED, survival_lib.MEDIAN, F.lit(gap).alias("gap_days"),
        F.lit(holder.name).alias("model_name"), F.lit(str(holder.version)).alias("model_version"),
        *stamp, "region", F.lit(as_of).alias("as_of_date"),
    )
    written = _write_scores(ctx, rows, CUSTOMER_SURVIVAL, SURVIVAL_COMMENTS, region, as_of)
    summary = ctx.lakehouse.read(CUSTOMER_SURVIVAL).where((F.col("region") == region) & (F.col("as_of_date") == F.lit(as_of))).agg(
        F.sum((F.col(survival_lib.STATUS) == "active").cast("long")).alias("active"),
        F.percentile_approx(F.when(F.col(survival_lib.STATUS) == "active", F.col(survival_lib.EXPECTED)), 0.5).alias("median"),
    ).first()
    active_n = int(summary["active"] or 0)
    return (
        f"{region}: time to churn of {written:,} buyers: {active_n:,} active (median expected remaining lifetime "
        f"{summary['median'] or 0:.0f} days; concordance {info['concordance']:.3f} held out), {written - active_n:,} lapsed ({CUSTOMER_SURVIVAL})"
    )


def _score_value(ctx: RunContext, region: str, as_of: date, current: DataFrame, stamp: list, result: StageResult) -> str | None:
    """Lifetime value of the region's profiled buyers as of ``as_of``: BG/NBD and Gamma-Gamma fitted
    on their histories up to it (parameters logged to MLflow), written to gold.customer_clv, and
    the finance mart gold.finance_clv_by_segment. A region whose histories cannot be fitted is reported."""
    import mlflow

    settings = ctx.config.ml.clv
    currency = ctx.config.finance.reporting_currency
    orders = ctx.lakehouse.read(SILVER_ORDERS).where(F.col("region") == region).join(
        current.select("region", "customer_id"), ["region", "customer_id"], "left_semi"
    )
    summary = clv.summary_from_orders(orders, as_of=as_of).persist()
    try:
        bgnbd, gg = clv.fit_summary(summary, penalizer=settings.penalizer)
        scored = clv.score(summary, bgnbd, gg, horizon_days=settings.horizon_days, discount_rate_annual=settings.discount_rate_annual)
    except clv.ClvError as exc:
        result.errors.append(f"{region}: lifetime value not computed as of {as_of}: {exc}")
        summary.unpersist()
        return None
    value = scored.select(
        "customer_id", "frequency", F.col("recency").alias("recency_days"), F.col("T").alias("age_days"), "monetary_value",
        "expected_purchases", "p_alive", "expected_avg_order_value", "clv", F.lit(settings.horizon_days).alias("horizon_days"),
        F.lit(currency).alias("reporting_currency"), *stamp, "region", F.lit(as_of).alias("as_of_date"),
    )
    rows = _write_scores(ctx, value, CUSTOMER_CLV, CLV_COMMENTS, region, as_of)
    mine = (F.col("region") == region) & (F.col("as_of_date") == F.lit(as_of))
    written = ctx.lakehouse.read(CUSTOMER_CLV).where(mine)
    mart = clv.by_segment(written, ctx.lakehouse.read(CUSTOMER_SEGMENTS).where(mine))
    _write_scores(ctx, mart.withColumn("reporting_currency", F.lit(currency)), CLV_BY_SEGMENT, CLV_BY_SEGMENT_COMMENTS, region, as_of)
    totals = written.agg(F.sum("clv"), F.avg("p_alive"), F.sum("expected_purchases")).first()
    mlflow.set_experiment(experiment_id=tracking.experiment_id(ctx.config, "clv"))
    with mlflow.start_run(run_name=f"{region} clv {as_of}"):
        mlflow.log_params({"region": region, "as_of": as_of.isoformat(), "pipeline_run_id": ctx.run_id, **settings.model_dump()})
        mlflow.log_metrics({
            **{f"bgnbd.{k}": v for k, v in dataclasses.asdict(bgnbd).items()},
            **{f"gamma_gamma.{k}": v for k, v in dataclasses.asdict(gg).items()},
            "customers": rows, "clv_total": float(totals[0] or 0.0), "p_alive_mean": float(totals[1] or 0.0),
        })
        mlflow.set_tags({"region": region})
    summary.unpersist()
    result.metrics.append(Metric(region, "clv_scored", rows, CUSTOMER_CLV))
    return (
        f"{region}: lifetime value of {rows:,} buyers over {settings.horizon_days} d: {float(totals[0] or 0):,.0f} {currency} "
        f"(mean P(alive) {float(totals[1] or 0):.2f}, {float(totals[2] or 0):,.0f} expected purchases); "
        f"BG/NBD r {bgnbd.r:.3f} alpha {bgnbd.alpha:.1f} d, a {bgnbd.a:.3f} b {bgnbd.b:.3f}; "
        f"Gamma-Gamma p {gg.p:.2f} q {gg.q:.2f} v {gg.v:.1f} (mean spend {gg.population_mean:,.2f} {currency})"
    )


def _write_scores(ctx: RunContext, df: DataFrame, name: str, comments: dict[str, str], region: str, as_of: date) -> int:
    return int(
        ctx.lakehouse.write(
            with_comments(df, comments), name, partition_by=["region", "as_of_date"], regions=[region],
            partitions={"as_of_date": [as_of]}, schema_mode="merge",
        ).rows_written
        or 0
    )
