"""Customer segmentation: rule segments first, then a Spark ML clustering pipeline over gold features.

The pipeline (one ``PipelineModel``, logged to MLflow): fill nulls and log-transform skewed money
and count features (``SQLTransformer``), assemble, standardize, weight each feature, cluster with
KMeans, BisectingKMeans or GaussianMixture (fixed seed). k is chosen over the region's range by
silhouette and the elbow of the cost curve. Clusters smaller than a minimum share are merged into
the nearest one; every segment is profiled, named from the global taxonomy by the z-scores of its
means, and keeps the id and name of the previous model's segment whose centroid it matches.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyspark.sql.functions as F
from pyspark.ml import Pipeline
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import ElementwiseProduct, SQLTransformer, StandardScaler, VectorAssembler
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame

from customer360.config import SegmentationConfig, SegmentRule, TaxonomyEntry
from customer360.errors import C360Error

VECTOR = "segment_features"
CLUSTER = "cluster"
PREFIX = "_seg_"


class SegmentationError(C360Error):
    """Segmentation cannot run on this data or configuration (missing features, too few customers)."""


def transformed(name: str) -> str:
    return f"{PREFIX}{name}"


def preparation(settings: SegmentationConfig) -> Pipeline:
    """Fill, log-transform, assemble, scale to unit variance and weight the configured features."""
    exprs = []
    for f in settings.features:
        value = f"coalesce(cast({f.name} AS double), {float(f.fill)!r})"
        exprs.append(f"{'log1p(greatest(' + value + ', 0.0))' if f.transform == 'log' else value} AS {transformed(f.name)}")
    return Pipeline(stages=[
        SQLTransformer(statement=f"SELECT *, {', '.join(exprs)} FROM __THIS__"),
        VectorAssembler(inputCols=[transformed(f.name) for f in settings.features], outputCol=f"{PREFIX}raw"),
        # scaled, not centred: distances do not change with a shift, and bisecting k-means cannot
        # split a cluster whose centre is the origin (Spark perturbs a centre by a fraction of its norm)
        StandardScaler(inputCol=f"{PREFIX}raw", outputCol=f"{PREFIX}scaled", withMean=False, withStd=True),
        ElementwiseProduct(scalingVec=Vectors.dense([f.weight for f in settings.features]), inputCol=f"{PREFIX}scaled", outputCol=VECTOR),
    ])


def clusterer(settings: SegmentationConfig, *, k: int, seed: int | None = None):
    seed = settings.seed if seed is None else seed
    common = dict(featuresCol=VECTOR, predictionCol=CLUSTER, k=k, seed=seed, maxIter=settings.max_iter)
    if settings.algorithm == "kmeans":
        return KMeans(**common, initMode="k-means||")
    if settings.algorithm == "bisecting_kmeans":
        return BisectingKMeans(**common)
    return GaussianMixture(**common, probabilityCol=f"{PREFIX}probability")


def training_cost(model) -> float:
    """Within-cluster sum of squares (k-means family) or the negative log-likelihood (mixtures)."""
    if hasattr(model.summary, "trainingCost"):
        return float(model.summary.trainingCost)
    return -float(model.summary.logLikelihood)


def silhouette(df: DataFrame) -> float:
    """Mean silhouette (squared Euclidean) of the ``cluster`` labels over ``segment_features``."""
    if df.select(CLUSTER).distinct().limit(2).count() < 2:
        return -1.0  # one cluster: no separation at all
    return float(ClusteringEvaluator(featuresCol=VECTOR, predictionCol=CLUSTER, metricName="silhouette").evaluate(df))


@dataclass(frozen=True)
class Candidate:
    k: int
    silhouette: float
    cost: float


def elbow(candidates: Sequence[Candidate]) -> int:
    """The k farthest below the straight line from the first to the last point of the cost curve
    (both axes scaled to [0, 1]); with fewer than three candidates, the smallest k."""
    points = sorted(candidates, key=lambda c: c.k)
    if len(points) < 3:
        return points[0].k
    k0, k1 = points[0].k, points[-1].k
    c0, c1 = points[0].cost, points[-1].cost
    span = (c0 - c1) or 1.0
    best, best_gap = points[0].k, -math.inf
    for p in points:
        x = (p.k - k0) / (k1 - k0)
        y = (p.cost - c1) / span  # 1 at the first point, 0 at the last
        gap = (1.0 - x) - y  # the chord runs from (0, 1) to (1, 0)
        if gap > best_gap:
            best, best_gap = p.k, gap
    return best


def choose_k(candidates: Sequence[Candidate], *, tolerance: float) -> tuple[int, int]:
    """(chosen k, elbow k): the best silhouette; candidates within ``tolerance`` of it go to the one
    nearest the elbow (then the smaller k)."""
    if not candidates:
        raise SegmentationError("no k candidates were evaluated")
    knee = elbow(candidates)
    best = max(c.silhouette for c in candidates)
    close = [c for c in candidates if c.silhouette >= best - tolerance]
    chosen = min(close, key=lambda c: (abs(c.k - knee), c.k))
    return chosen.k, knee


def merge_small_clusters(sizes: Mapping[int, int], centroids: Mapping[int, Sequence[float]], *, min_share: float) -> dict[int, int]:
    """Cluster -> surviving cluster. The smallest cluster under ``min_share`` of all rows is merged
    into the nearest surviving centroid (the merged centroid is the size-weighted mean), repeatedly."""
    total = sum(sizes.values())
    alive = {c: (n, np.asarray(centroids[c], dtype=float)) for c, n in sizes.items() if n > 0}
    mapping = {c: c for c in sizes}
    while len(alive) > 1:
        smallest = min(alive, key=lambda c: (alive[c][0], c))
        n, centre = alive[smallest]
        if n >= min_share * total:
            break
        target = min((c for c in alive if c != smallest), key=lambda c: (float(np.sum((alive[c][1] - centre) ** 2)), c))
        tn, tcentre = alive[target]
        alive[target] = (tn + n, (tcentre * tn + centre * n) / (tn + n))
        del alive[smallest]
        for c, to in mapping.items():
            if to == smallest:
                mapping[c] = target
    for c in sizes:  # an empty cluster (mixtures) goes to the nearest survivor
        if c not in alive and mapping[c] == c:
            centre = np.asarray(centroids[c], dtype=float)
            mapping[c] = min(alive, key=lambda s: (float(np.sum((alive[s][1] - centre) ** 2)), s))
    return mapping


def rule_segment(rules: Sequence[SegmentRule]):
    """A column with the name of the first rule that holds, else null."""
    expr = F.lit(None).cast("string")
    for rule in reversed(rules):
        expr = F.when(F.coalesce(F.expr(rule.when), F.lit(False)), F.lit(rule.name)).otherwise(expr)
    return expr


def check_rules(df: DataFrame, rules: Sequence[SegmentRule]) -> None:
    """Every rule must be a boolean SQL expression over the feature columns."""
    for i, rule in enumerate(rules):
        try:
            data_type = df.select(F.expr(rule.when).alias("r")).schema["r"].dataType.simpleString()
        except Exception as exc:  # AnalysisException / ParseException: report the config key
            raise SegmentationError(f"ml.segmentation.rules[{i}] ({rule.name!r}): cannot evaluate {rule.when!r}: {str(exc).splitlines()[0]}") from None
        if data_type != "boolean":
            raise SegmentationError(f"ml.segmentation.rules[{i}] ({rule.name!r}): {rule.when!r} is {data_type}, not a condition")


def taxonomy_name(z: Mapping[str, float], medians: Mapping[str, float], taxonomy: Sequence[TaxonomyEntry]) -> str:
    """The first taxonomy entry whose z-score conditions and median floors all hold."""
    for entry in taxonomy:
        if all(z.get(f, -math.inf) > v for f, v in entry.above.items()) and all(
            z.get(f, math.inf) < v for f, v in entry.below.items()
        ) and all((medians.get(f) or 0.0) >= v for f, v in entry.min_median.items()):
            return entry.name
    return taxonomy[-1].name


def _fits(entry: TaxonomyEntry, z: Mapping[str, float], medians: Mapping[str, float]) -> float | None:
    """How far past its thresholds a segment is for the entry (sum of z margins), or None."""
    margin = 0.0
    for f, v in entry.above.items():
        if not z.get(f, -math.inf) > v:
            return None
        margin += z[f] - v
    for f, v in entry.below.items():
        if not z.get(f, math.inf) < v:
            return None
        margin += v - z[f]
    if any((medians.get(f) or 0.0) < v for f, v in entry.min_median.items()):
        return None
    return margin


def assign_taxonomy(
    zs: Mapping[int, Mapping[str, float]], medians: Mapping[int, Mapping[str, float]], taxonomy: Sequence[TaxonomyEntry]
) -> dict[int, str]:
    """Segment -> taxonomy name. In taxonomy order, each name goes to the unnamed segment that
    passes its conditions by the widest margin; a segment left over takes the first name it
    passes (a name then repeats and ``unique_name`` qualifies it), else the fallback."""
    names: dict[int, str] = {}
    for entry in taxonomy[:-1]:
        fitting = [(m, c) for c in zs if c not in names and (m := _fits(entry, zs[c], medians[c])) is not None]
        if fitting:
            names[max(fitting, key=lambda mc: (mc[0], -mc[1]))[1]] = entry.name
    for c in zs:
        if c not in names:
            names[c] = taxonomy_name(zs[c], medians[c], taxonomy)
    return names


def distinguishing(z: Mapping[str, float], *, top: int = 3) -> list[str]:
    """The features whose segment mean is farthest from the population's, as 'name +1.84'."""
    ranked = sorted(((f, v) for f, v in z.items() if v is not None and not math.isnan(v)), key=lambda fv: (-abs(fv[1]), fv[0]))
    return [f"{f} {v:+.2f}" for f, v in ranked[:top]]


def match_segments(
    new: Mapping[int, Sequence[float]],
    previous: Mapping[int, Sequence[float]],
    *,
    max_distance: float,
) -> dict[int, int]:
    """New segment -> previous segment id, by minimum total centroid distance (Hungarian), keeping
    only pairs at most ``max_distance`` apart. Centroids must be in the same standardized space."""
    from scipy.optimize import linear_sum_assignment

    if not new or not previous:
        return {}
    new_ids, old_ids = sorted(new), sorted(previous)
    cost = np.array([[float(np.sqrt(np.sum((np.asarray(new[a]) - np.asarray(previous[b])) ** 2))) for b in old_ids] for a in new_ids])
    rows, cols = linear_sum_assignment(cost)
    return {new_ids[r]: old_ids[c] for r, c in zip(rows, cols) if cost[r, c] <= max_distance}


@dataclass
class SegmentInfo:
    segment_id: int
    name: str
    global_segment: str
    assigned_by: str  # 'rule' | 'cluster'
    clusters: list[int] = field(default_factory=list)
    centroid: dict[str, float] | None = None  # mean transformed features (clusters only)


def unique_name(name: str, used: set[str], z: Mapping[str, float]) -> str:
    """``name``, or ``name (high <feature>)`` / ``name (low <feature>)``, or a number, when taken."""
    if name not in used:
        return name
    for f, v in sorted(z.items(), key=lambda fv: (-abs(fv[1]), fv[0])):
        candidate = f"{name} ({'high' if v > 0 else 'low'} {f})"
        if candidate not in used:
            return candidate
    n = 2
    while f"{name} {n}" in used:
        n += 1
    return f"{name} {n}"
