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
"""
from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone

import pyspark.sql.functions as F
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from customer360.config import SegmentRule
from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.features.store import ensure_features, features_as_of, read_features, region_feature_set_version
from customer360.gold.customer360 import with_ml_columns
from customer360.lakehouse.core import described_columns, with_comments
from customer360.ml import churn as churn_lib
from customer360.ml import tracking
from customer360.ml.metrics import binary_metrics, calibration_table, expected_cost, lift_table
from customer360.ml.scoring import profiling_allowed, scoring_date
from customer360.ml.segment_model import FIT_PARTITIONS, assign_segments, fit_segmentation
from customer360.ml.segmentation import VECTOR, SegmentationError, SegmentInfo, rule_segment, silhouette
from customer360.tables import CHURN_SCORES, CUSTOMER_360, CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, SEGMENT_PROFILES, SILVER_ORDERS

log = logging.getLogger(__name__)

SEGMENTATION, CHURN = "segmentation", "churn"


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

CHURN_COMMENTS = {
    "customer_id": "stable customer id",
    "churn_score": "probability of no order within horizon_days after as_of_date (model probability corrected for the class weights); the cold-start score when is_cold_start_score",
    "churn_predicted": "churn_score >= threshold",
    "threshold": "decision threshold from the configured costs: cost_fp / (cost_fp + cost_fn)",
    "is_cold_start_score": "the customer has too little history (is_cold_start): the score is the observed churn rate of cold-start customers at the model's validation cutoff, not a model output",
    "horizon_days": "churn horizon of the region",
    "model_name": "registered churn model (MLflow)",
    "model_version": "registered model version (the champion when scored)",
    "scored_at": "scoring time, UTC",
    "run_id": "pipeline run that scored the row",
    "region": "region (partition)",
    "as_of_date": "as-of date of the features scored (partition)",
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


def _needs_training(ctx: RunContext, client, region: str) -> bool:
    """No champion yet, or one trained on another feature-set version than today's."""
    current = region_feature_set_version(ctx, region)
    for kind in (SEGMENTATION, CHURN):
        holder = tracking.champion(client, tracking.model_name(ctx.config, region, kind))
        if holder is None or client.get_run(holder.run_id).data.tags.get("feature_set_version") != current:
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
    churn training and validation cutoffs."""
    as_of = scoring_date(ctx, region)
    settings = ctx.config.ml
    days = [as_of, *churn_lib.cutoffs(as_of, horizon_days=ctx.config.regions[region].churn_horizon_days, step_days=settings.churn.cutoff_step_days)]
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
        except (SegmentationError, churn_lib.ChurnError) as exc:
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
    champion_silhouette = _champion_silhouette(ctx, seg_champion, current, settings.rules) if seg_champion else None
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
        model_version = tracking.log_spark_model(fitted.model, registered_name=seg_name)
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
    import mlflow

    config = ctx.config
    settings = config.ml.churn
    horizon = config.regions[region].churn_horizon_days
    train_at, valid_at = churn_lib.cutoffs(as_of, horizon_days=horizon, step_days=settings.cutoff_step_days)
    orders = ctx.lakehouse.read(SILVER_ORDERS).where(F.col("region") == region)
    train_all = churn_lib.labelled(_profiled(ctx, region, train_at), orders, at=train_at, horizon_days=horizon)
    valid_all = churn_lib.labelled(_profiled(ctx, region, valid_at), orders, at=valid_at, horizon_days=horizon).persist()
    missing = churn_lib.missing_features(train_all, settings.features)
    if missing:
        raise churn_lib.ChurnError(f"region {region}: ml.churn.features names {missing}, which gold.customer_features lacks")
    weighted, prior = churn_lib.with_class_weights(churn_lib.trainable(train_all))
    # a fixed row order and partitioning: the seeded subsampling then picks the same rows every run
    weighted = weighted.repartition(FIT_PARTITIONS, "customer_id").sortWithinPartitions("customer_id").persist()
    valid = churn_lib.trainable(valid_all)
    gbt = churn_lib.gbt_pipeline(settings).fit(weighted)
    logistic = churn_lib.logistic_pipeline(settings).fit(weighted)
    scored = churn_lib.churn_probability(gbt, valid, prior=prior).persist()
    try:  # binary_metrics refuses a validation set without both classes
        metrics = {
            "gbt": binary_metrics(scored, score="churn_score"),
            "logistic": binary_metrics(churn_lib.churn_probability(logistic, valid, prior=prior), score="churn_score"),
            "recency": binary_metrics(valid.withColumn("_r", F.coalesce(F.col("recency_days").cast("double"), F.lit(0.0))), score="_r", probability=False),
        }
    except ValueError as exc:
        raise churn_lib.ChurnError(f"region {region}: nothing to validate on at the cutoff {valid_at}: {exc}") from None
    threshold = churn_lib.decision_threshold(settings)
    costs = expected_cost(scored, probability="churn_score", threshold=threshold, cost_fp=settings.cost_false_positive, cost_fn=settings.cost_false_negative)
    calibration = calibration_table(scored, probability="churn_score")
    lift = lift_table(scored, score="churn_score")
    cold = churn_lib.labelled_all(_profiled(ctx, region, valid_at), orders, at=valid_at, horizon_days=horizon)
    cold_row = cold.where(F.coalesce(F.col("is_cold_start"), F.lit(True))).agg(F.avg(churn_lib.LABEL), F.count(F.lit(1))).first()
    cold_score = float(cold_row[0]) if cold_row[0] is not None else prior

    name = tracking.model_name(config, region, CHURN)
    holder = tracking.champion(client, name)
    champion_auc = _champion_auc(holder, valid) if holder else None
    gbt_auc = metrics["gbt"].roc_auc
    promote = champion_auc is None or gbt_auc > champion_auc + settings.min_auc_improvement
    train_counts = weighted.agg(F.count(F.lit(1)), F.sum(churn_lib.LABEL)).first()
    mlflow.set_experiment(experiment_id=tracking.experiment_id(config, CHURN))
    with mlflow.start_run(run_name=f"{region} churn {as_of}"):
        mlflow.log_params({
            **common_params, "horizon_days": horizon, "training_cutoff": train_at.isoformat(), "validation_cutoff": valid_at.isoformat(),
            "features": json.dumps(list(settings.features)), **{f"gbt.{k}": v for k, v in settings.gbt.model_dump().items()},
            **{f"logistic.{k}": v for k, v in settings.logistic.model_dump().items()},
            "cost_false_positive": settings.cost_false_positive, "cost_false_negative": settings.cost_false_negative,
        })
        mlflow.log_metrics({
            **{k: v for name_, m in metrics.items() for k, v in m.as_dict(f"{name_}.").items()},
            "train_rows": int(train_counts[0]), "train_churners": int(train_counts[1] or 0), "train_churn_rate": prior,
            "threshold": threshold, "cold_start_score": cold_score, **{f"at_threshold.{k}": float(v) for k, v in costs.items()},
            **({"champion_roc_auc": champion_auc} if champion_auc is not None else {}),
        })
        tracking.log_json("calibration.json", calibration)
        tracking.log_json("lift.json", lift)  # the validation lift curve (c360 report draws it)
        tracking.log_json("churn.json", {
            "feature_set_version": version, "features": list(settings.features), "prior": prior, "threshold": threshold,
            "cold_start_score": cold_score, "horizon_days": horizon, "training_cutoff": train_at, "validation_cutoff": valid_at,
            "validation_roc_auc": gbt_auc,
        })
        mlflow.set_tags({"region": region, "feature_set_version": version, "promoted": str(promote).lower()})
        model_version = tracking.log_spark_model(gbt, registered_name=name)
    if promote:
        tracking.promote(client, name, model_version)
    verdict = "champion" if promote else f"kept champion v{holder.version} (ROC AUC {champion_auc:.3f})"
    g, lr, rec = metrics["gbt"], metrics["logistic"], metrics["recency"]
    result.lines.append(
        f"{region}: churn {name} v{model_version} ({verdict}): trained as of {train_at}, validated as of {valid_at} "
        f"({g.rows:,} customers, {g.positives / g.rows:.0%} churned within {horizon} d); ROC AUC GBT {g.roc_auc:.3f} / "
        f"logistic {lr.roc_auc:.3f} / recency rule {rec.roc_auc:.3f}; PR AUC {g.pr_auc:.3f}; top-decile lift {g.top_decile_lift:.2f}; "
        f"Brier {g.brier:.3f}; threshold {threshold:.2f} (precision {costs['precision']:.2f}, recall {costs['recall']:.2f})"
    )
    result.metrics.append(Metric(region, "churn_validation_rows", g.rows, CHURN_SCORES))
    for frame in (scored, weighted, valid_all):
        frame.unpersist()


def _champion_auc(holder, valid: DataFrame) -> float | None:
    meta = tracking.load_json(holder.run_id, "churn.json")
    if churn_lib.missing_features(valid, meta["features"]):
        log.warning("champion %s v%s needs features today's data lacks: the new model is promoted", holder.name, holder.version)
        return None
    model = tracking.load_spark_model(holder.name, holder.version)
    return binary_metrics(churn_lib.churn_probability(model, valid, prior=meta["prior"]), score="churn_score").roc_auc


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

    cold = F.coalesce(F.col("is_cold_start"), F.lit(True))
    model = tracking.load_spark_model(churn_holder.name, churn_holder.version)
    by_model = churn_lib.churn_probability(model, current.where(~cold), prior=churn_meta["prior"]).select(
        "region", "customer_id", "churn_score", F.lit(False).alias("is_cold_start_score")
    )
    by_rule = current.where(cold).select("region", "customer_id", F.lit(float(churn_meta["cold_start_score"])).alias("churn_score"), F.lit(True).alias("is_cold_start_score"))
    threshold = float(churn_meta["threshold"])
    churn = by_model.unionByName(by_rule).select(
        "customer_id", "churn_score", (F.col("churn_score") >= threshold).alias("churn_predicted"), F.lit(threshold).alias("threshold"),
        "is_cold_start_score", F.lit(int(churn_meta["horizon_days"])).alias("horizon_days"),
        F.lit(churn_holder.name).alias("model_name"), F.lit(str(churn_holder.version)).alias("model_version"),
        *stamp, "region", F.lit(as_of).alias("as_of_date"),
    )
    churn_rows = _write_scores(ctx, churn, CHURN_SCORES, CHURN_COMMENTS, region, as_of)

    # customer_360 rows of this region and date get the new scores
    # (each row gets the scores of its own features_as_of: scoring another date leaves them alone)
    c360 = lakehouse.read(CUSTOMER_360).where(F.col("region") == region)
    mine = F.col("region") == region
    updated = with_ml_columns(
        c360, lakehouse.read(CUSTOMER_SEGMENTS).where(mine), lakehouse.read(CHURN_SCORES).where(mine)
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
    result.metrics += [
        Metric(region, "segmented", seg_rows, CUSTOMER_SEGMENTS),
        Metric(region, "churn_scored", churn_rows, CHURN_SCORES),
        Metric(region, "no_profiling_consent", excluded, CHURN_SCORES),
    ]
    current.unpersist()


def _write_scores(ctx: RunContext, df: DataFrame, name: str, comments: dict[str, str], region: str, as_of: date) -> int:
    return int(
        ctx.lakehouse.write(
            with_comments(df, comments), name, partition_by=["region", "as_of_date"], regions=[region],
            partitions={"as_of_date": [as_of]}, schema_mode="merge",
        ).rows_written
        or 0
    )
