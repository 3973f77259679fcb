"""Fitting a region's segmentation and assigning segments with a fitted one.

``fit_segmentation`` runs the whole training: rules, k search, small-cluster merge, profiles,
taxonomy names, matching to the previous model's segments, and stability (adjusted Rand index
between bootstrap refits and against a model fitted on an earlier as-of date).
``assign_segments`` is the one scoring path, used by batch scoring and by training's own profiles.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyspark.sql.functions as F
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from customer360.config import SegmentationConfig, SegmentRule
from customer360.ml.metrics import adjusted_rand_index
from customer360.ml.segmentation import (
    CLUSTER,
    PREFIX,
    VECTOR,
    Candidate,
    SegmentationError,
    SegmentInfo,
    check_rules,
    choose_k,
    clusterer,
    distinguishing,
    match_segments,
    merge_small_clusters,
    preparation,
    rule_segment,
    _fits,
    assign_taxonomy,
    silhouette,
    training_cost,
    transformed,
    unique_name,
)

#: fewer customers per cluster than this and k is capped (tiny regions still get a model)
MIN_ROWS_PER_CLUSTER = 10
#: fixed partitioning of the training rows (reproducible fits whatever the session's settings)
FIT_PARTITIONS = 4
REVENUE = "net_revenue_total"


@dataclass
class SegmentationResult:
    model: PipelineModel
    k: int
    elbow_k: int
    candidates: list[Candidate]
    silhouette: float
    segments: dict[int, SegmentInfo]
    cluster_to_segment: dict[int, int]
    profiles: list[dict]
    stability: dict[str, float]
    customers: int
    clustered: int
    matched: dict[int, int] = field(default_factory=dict)  # new segment id -> previous (same id)


def required_columns(settings: SegmentationConfig) -> list[str]:
    return sorted({f.name for f in settings.features} | {REVENUE})


def check_features(features: DataFrame, settings: SegmentationConfig, *, region: str) -> None:
    missing = [c for c in required_columns(settings) if c not in features.columns]
    if missing:
        raise SegmentationError(
            f"region {region}: gold.customer_features has no column(s) {missing} named in ml.segmentation.features "
            f"(check the region's feature_windows_days)"
        )
    check_rules(features, settings.rules)


def fit_segmentation(
    features: DataFrame,
    *,
    settings: SegmentationConfig,
    k_min: int,
    k_max: int,
    region: str,
    previous: Mapping[int, SegmentInfo] | None = None,
    earlier_features: DataFrame | None = None,
) -> SegmentationResult:
    """Train on one region's features (one row per customer who may be profiled)."""
    check_features(features, settings, region=region)
    labelled = features.withColumn("_rule", rule_segment(settings.rules)).persist()
    to_cluster = labelled.where(F.col("_rule").isNull())
    customers, clustered = labelled.count(), to_cluster.count()
    k_top = min(k_max, clustered // MIN_ROWS_PER_CLUSTER)
    if k_top < k_min:
        labelled.unpersist()
        raise SegmentationError(
            f"region {region}: only {clustered} customers left to cluster after the rule segments; "
            f"{k_min} segments need at least {k_min * MIN_ROWS_PER_CLUSTER}"
        )
    prep = preparation(settings).fit(to_cluster)
    # hash partitions sorted within: the same rows in the same order every run (a range sort would
    # sample its boundaries), so the seeded initialisation sees the same data
    prepared = prep.transform(to_cluster).repartition(FIT_PARTITIONS, "customer_id").sortWithinPartitions("customer_id").persist()

    candidates, models = [], {}
    for k in range(k_min, k_top + 1):
        fitted = clusterer(settings, k=k).fit(prepared)
        candidates.append(Candidate(k, silhouette(fitted.transform(prepared)), training_cost(fitted)))
        models[k] = fitted
    k, knee = choose_k(candidates, tolerance=settings.silhouette_tolerance)
    model = PipelineModel(stages=[*prep.stages, models[k]])
    predicted = models[k].transform(prepared).persist()
    chosen_silhouette = next(c.silhouette for c in candidates if c.k == k)

    names = [f.name for f in settings.features]
    cols = [transformed(n) for n in names]
    scaler = prep.stages[2]
    weights = [f.weight for f in settings.features]
    by_cluster = {
        r[CLUSTER]: r for r in predicted.groupBy(CLUSTER).agg(F.count(F.lit(1)).alias("n"), *[F.avg(c).alias(c) for c in cols]).collect()
    }
    sizes = {c: by_cluster[c]["n"] if c in by_cluster else 0 for c in range(k)}
    vector_centroids = {
        c: [w * (by_cluster[c][col] if c in by_cluster else m) / (s or 1.0) for col, m, s, w in zip(cols, scaler.mean, scaler.std, weights)]
        for c in range(k)
    }
    merged = merge_small_clusters(sizes, vector_centroids, min_share=settings.min_segment_share)

    # statistics per provisional segment (rule name or surviving cluster), in one pass
    key = F.when(F.col("_rule").isNotNull(), F.concat(F.lit("rule:"), F.col("_rule"))).otherwise(
        F.concat(F.lit("cluster:"), F.element_at(_literal_map(merged), F.col(CLUSTER)).cast("string"))
    )
    every = prep.stages[0].transform(labelled).join(predicted.select("customer_id", CLUSTER), "customer_id", "left").withColumn("_key", key)
    stats = {
        r["_key"]: r
        for r in every.groupBy("_key").agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.coalesce(F.col(REVENUE), F.lit(0.0))).alias("revenue"),
            *[F.avg(c).alias(f"t_{n}") for n, c in zip(names, cols)],
            *[F.avg(n).alias(f"mean_{n}") for n in names],
            *[F.percentile_approx(n, 0.5, 10000).alias(f"median_{n}") for n in names],
        ).collect()
    }
    population = {
        which: frame.agg(*[F.avg(c).alias(f"m_{n}") for n, c in zip(names, cols)], *[F.stddev_pop(c).alias(f"s_{n}") for n, c in zip(names, cols)]).first()
        for which, frame in (("all", every), ("clustered", every.where(F.col("_rule").isNull())))
    }

    def z(row, which: str) -> dict[str, float]:
        pop = population[which]
        return {n: ((row[f"t_{n}"] - pop[f"m_{n}"]) / pop[f"s_{n}"]) if pop[f"s_{n}"] else 0.0 for n in names}

    def standardized(centroid: Mapping[str, float]) -> list[float]:
        pop = population["clustered"]
        return [w * (centroid.get(n, math.nan)) / (pop[f"s_{n}"] or 1.0) for n, w in zip(names, weights)]

    segments: dict[int, SegmentInfo] = {}
    previous = dict(previous or {})
    next_id = max([0, *previous]) + 1
    used_names: set[str] = set()
    # rules keep their previous id by name, in rule order
    for rule in settings.rules:  # every rule gets an id, even one no customer meets today
        old = next((s for s in previous.values() if s.assigned_by == "rule" and s.name == rule.name), None)
        sid = old.segment_id if old else next_id
        next_id = max(next_id, sid + 1)
        segments[sid] = SegmentInfo(sid, rule.name, rule.name, "rule")
        used_names.add(rule.name)
    survivors = sorted({c for c in merged.values()}, key=lambda c: (-stats[f"cluster:{c}"]["n"], c))
    centroids = {c: {n: stats[f"cluster:{c}"][f"t_{n}"] for n in names} for c in survivors}
    old_clusters = {sid: s for sid, s in previous.items() if s.assigned_by == "cluster" and s.centroid}
    usable_old = {sid: s for sid, s in old_clusters.items() if set(s.centroid) == set(names)}
    matched = match_segments(
        {c: standardized(centroids[c]) for c in survivors},
        {sid: standardized(s.centroid) for sid, s in usable_old.items()},
        max_distance=settings.match_max_distance,
    )
    # a matched segment keeps its name only while it still meets that name's conditions (a
    # "High-value" segment whose median spend fell under the floor gets a new id and name)
    entries = {e.name: e for e in settings.taxonomy}
    for c, sid in list(matched.items()):
        entry = entries.get(usable_old[sid].global_segment)
        row = stats[f"cluster:{c}"]
        if entry is not None and _fits(entry, z(row, "clustered"), {n: row[f"median_{n}"] for n in names}) is None:
            del matched[c]
    cluster_segment: dict[int, int] = {}
    for c in survivors:  # matched first so their names are reserved
        if c in matched:
            old = usable_old[matched[c]]
            segments[old.segment_id] = SegmentInfo(old.segment_id, old.name, old.global_segment, "cluster", centroid=centroids[c])
            used_names.add(old.name)
            cluster_segment[c] = old.segment_id
    fresh = [c for c in survivors if c not in matched]
    z_fresh = {c: z(stats[f"cluster:{c}"], "clustered") for c in fresh}
    global_names = assign_taxonomy(
        z_fresh, {c: {n: stats[f"cluster:{c}"][f"median_{n}"] for n in names} for c in fresh}, settings.taxonomy
    )
    for c in fresh:
        global_name = global_names[c]
        name = unique_name(global_name, used_names, z_fresh[c])
        used_names.add(name)
        segments[next_id] = SegmentInfo(next_id, name, global_name, "cluster", centroid=centroids[c])
        cluster_segment[c] = next_id
        next_id += 1
    cluster_to_segment = {c: cluster_segment[to] for c, to in merged.items()}
    for c, sid in cluster_to_segment.items():
        segments[sid].clusters.append(c)

    total_revenue = sum(r["revenue"] for r in stats.values()) or 0.0
    profiles = []
    for sid, info in sorted(segments.items()):
        row = stats.get(f"rule:{info.name}") if info.assigned_by == "rule" else stats[f"cluster:{next(c for c in survivors if cluster_segment[c] == sid)}"]
        if row is None:
            row = _EmptyStats()
        profiles.append({
            "segment_id": sid,
            "segment": info.name,
            "global_segment": info.global_segment,
            "assigned_by": info.assigned_by,
            "customers": int(row["n"]),
            "share_of_customers": row["n"] / customers,
            "share_of_revenue": (row["revenue"] / total_revenue) if total_revenue else 0.0,
            "feature_means": {n: _num(row[f"mean_{n}"]) for n in names},
            "feature_medians": {n: _num(row[f"median_{n}"]) for n in names},
            "distinguishing_features": distinguishing(z(row, "all")) if row["n"] else [],
            "centroid": info.centroid,
            "clusters": sorted(info.clusters),
        })

    stability = _stability(
        settings, k=k, prepared=predicted, labelled_earlier=earlier_features, model_prep=prep, region=region
    )
    for frame in (predicted, prepared, labelled):
        frame.unpersist()
    return SegmentationResult(
        model=model, k=k, elbow_k=knee, candidates=candidates, silhouette=chosen_silhouette, segments=segments,
        cluster_to_segment=cluster_to_segment, profiles=profiles, stability=stability, customers=customers,
        clustered=clustered, matched={sid: sid for sid in (cluster_segment[c] for c in matched)},
    )


class _EmptyStats(dict):
    """Statistics of a rule segment no customer is in: zero counts, null means."""

    def __missing__(self, key):
        return 0 if key in ("n", "revenue") else None


def _num(value) -> float | None:
    return None if value is None else float(value)


def _stability(settings: SegmentationConfig, *, k: int, prepared: DataFrame, labelled_earlier: DataFrame | None, model_prep, region: str) -> dict[str, float]:
    """Adjusted Rand index of the chosen clustering against refits: on bootstrap samples of the same
    customers, and on the features of an earlier as-of date (both predicting today's customers)."""
    out: dict[str, float] = {}
    base = prepared.select("customer_id", VECTOR, F.col(CLUSTER).alias("_a"))
    scores = []
    for i in range(settings.stability.bootstrap_samples):
        sample = prepared.drop(CLUSTER, f"{PREFIX}probability").sample(withReplacement=True, fraction=settings.stability.sample_fraction, seed=settings.seed + 1 + i)
        refit = clusterer(settings, k=k, seed=settings.seed + 1 + i).fit(sample)
        scores.append(adjusted_rand_index(refit.transform(base).withColumnRenamed(CLUSTER, "_b"), "_a", "_b"))
    if scores:
        out["ari_bootstrap_mean"] = sum(scores) / len(scores)
        out["ari_bootstrap_min"] = min(scores)
    if labelled_earlier is not None:
        earlier = labelled_earlier.where(rule_segment(settings.rules).isNull())
        if earlier.limit(k * MIN_ROWS_PER_CLUSTER).count() >= k * MIN_ROWS_PER_CLUSTER:
            earlier_model = PipelineModel(stages=[*(s := preparation(settings).fit(earlier)).stages, clusterer(settings, k=k).fit(s.transform(earlier))])
            today = prepared.select("customer_id", *[c for c in prepared.columns if c not in (VECTOR, CLUSTER) and not c.startswith("_seg_")])
            again = earlier_model.transform(today).select("customer_id", F.col(CLUSTER).alias("_b"))
            out["ari_previous_as_of"] = adjusted_rand_index(base.join(again, "customer_id"), "_a", "_b")
    return out


def assign_segments(
    features: DataFrame,
    *,
    model: PipelineModel,
    rules: Sequence[SegmentRule],
    cluster_to_segment: Mapping[int, int],
    segments: Mapping[int, tuple[str, str, str]],
) -> DataFrame:
    """customer_id, region, segment_id, segment, global_segment, assigned_by for every row of
    ``features``: the first rule that holds, else the model's cluster mapped to its segment.
    ``segments``: id -> (name, global segment, assigned_by)."""
    ruled = features.withColumn("_rule", rule_segment(rules))
    rule_ids = {info[0]: sid for sid, info in segments.items() if info[2] == "rule"}
    missing = sorted({r.name for r in rules} - set(rule_ids))
    if missing:
        raise SegmentationError(f"rule segment(s) {missing} have no segment id in the model's segment map")
    by_rule = ruled.where(F.col("_rule").isNotNull()).select(
        "region", "customer_id", F.element_at(_literal_map(rule_ids), F.col("_rule")).alias("segment_id")
    )
    rest = ruled.where(F.col("_rule").isNull()).drop("_rule")
    by_model = model.transform(rest).select(
        "region", "customer_id", F.element_at(_literal_map(cluster_to_segment), F.col(CLUSTER).cast("int")).alias("segment_id")
    )
    ids = by_rule.unionByName(by_model)
    name = _literal_map({sid: v[0] for sid, v in segments.items()})
    global_name = _literal_map({sid: v[1] for sid, v in segments.items()})
    assigned = _literal_map({sid: v[2] for sid, v in segments.items()})
    return ids.select(
        "region", "customer_id", F.col("segment_id").cast("int").alias("segment_id"),
        F.element_at(name, F.col("segment_id")).alias("segment"),
        F.element_at(global_name, F.col("segment_id")).alias("global_segment"),
        F.element_at(assigned, F.col("segment_id")).alias("assigned_by"),
    )


def _literal_map(mapping: Mapping) -> F.Column:
    return F.create_map(*[F.lit(x) for kv in sorted(mapping.items()) for x in kv])
