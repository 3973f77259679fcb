"""fit_segmentation and assign_segments on planted clusters, for each of the three algorithms."""
from __future__ import annotations

import numpy as np
import pytest

from customer360.config import StabilityConfig, load_config
from customer360.ml.metrics import adjusted_rand_index
from customer360.ml.segment_model import assign_segments, fit_segmentation
from customer360.ml.segmentation import SegmentationError

from tests.conftest import CONF_DIR

SETTINGS = load_config("local", conf_dir=CONF_DIR).ml.segmentation.model_copy(
    update={"stability": StabilityConfig(bootstrap_samples=1, sample_fraction=0.8, previous_as_of_days=0)}
)
COLUMNS = [f.name for f in SETTINGS.features]
SCHEMA = ", ".join(
    ["region string", "customer_id string", "blob string", "orders_total bigint", "net_revenue_total double"]
    + [f"{c} double" for c in COLUMNS]
)
#: three behaviours far apart on every feature (raw values; the pipeline log-transforms most)
BLOBS = {
    "light": dict(recency_days=200, frequency_365d=1, monetary_365d=30, avg_order_value=30, sessions_365d=2,
                  pages_per_session_365d=2, category_entropy=0.0, tickets_365d=0, tenure_days=400),
    "regular": dict(recency_days=30, frequency_365d=8, monetary_365d=600, avg_order_value=75, sessions_365d=40,
                    pages_per_session_365d=6, category_entropy=1.5, tickets_365d=1, tenure_days=900),
    "heavy": dict(recency_days=3, frequency_365d=40, monetary_365d=9000, avg_order_value=220, sessions_365d=200,
                  pages_per_session_365d=12, category_entropy=2.5, tickets_365d=4, tenure_days=1500),
}


def customers(spark, *, per_blob: int = 30, prospects: int = 5, seed: int = 3):
    rng = np.random.default_rng(seed)
    rows = []
    for name, centre in BLOBS.items():
        for i in range(per_blob):
            values = {k: float(v) * float(rng.uniform(0.9, 1.1)) for k, v in centre.items()}
            rows.append(("us", f"{name}-{i:02d}", name, 5, values["monetary_365d"] * 2, *[values[c] for c in COLUMNS]))
    for i in range(prospects):  # no orders: the first rule takes them, whatever their numbers say
        rows.append(("us", f"prospect-{i}", "prospect", 0, 0.0, *[float(BLOBS["heavy"][c]) for c in COLUMNS]))
    return spark.createDataFrame(rows, SCHEMA)


@pytest.mark.parametrize("algorithm", ["kmeans", "bisecting_kmeans", "gaussian_mixture"])
def test_each_algorithm_finds_the_planted_clusters_and_scoring_repeats_training(spark, algorithm):
    settings = SETTINGS.model_copy(update={"algorithm": algorithm})
    df = customers(spark)
    fitted = fit_segmentation(df, settings=settings, k_min=2, k_max=5, region="us")
    assert fitted.k == 3
    assert [c.k for c in fitted.candidates] == [2, 3, 4, 5]
    assert fitted.customers == 95 and fitted.clustered == 90
    segments = {sid: (s.name, s.global_segment, s.assigned_by) for sid, s in fitted.segments.items()}
    scored = assign_segments(
        df, model=fitted.model, rules=settings.rules, cluster_to_segment=fitted.cluster_to_segment, segments=segments
    ).join(df.select("customer_id", "blob"), "customer_id")
    assert scored.count() == 95
    # the clusters are the blobs exactly, and the prospects are the rule segment
    assert adjusted_rand_index(scored.where("blob <> 'prospect'"), "segment_id", "blob") == pytest.approx(1.0)
    assert {r[0] for r in scored.where("blob = 'prospect'").select("segment").distinct().collect()} == {"Prospects"}
    # profiles: the scoring path gives the sizes training reported
    sizes = {r["segment_id"]: r["count"] for r in scored.groupBy("segment_id").count().collect()}
    assert {p["segment_id"]: p["customers"] for p in fitted.profiles if p["customers"]} == sizes
    heavy = next(p for p in fitted.profiles if p["customers"] == 30 and p["feature_means"]["frequency_365d"] > 30)
    assert heavy["share_of_revenue"] == pytest.approx(
        sum(r[0] for r in df.where("blob = 'heavy'").select("net_revenue_total").collect())
        / sum(r[0] for r in df.select("net_revenue_total").collect())
    )
    assert heavy["global_segment"] == "High-value loyal"


def test_a_refit_keeps_ids_and_names_by_centroid(spark):
    df = customers(spark)
    first = fit_segmentation(df, settings=SETTINGS, k_min=3, k_max=3, region="us")
    # other customers of the same three behaviours: the segments match the first model's
    second = fit_segmentation(customers(spark, seed=99), settings=SETTINGS, k_min=3, k_max=3, region="us", previous=first.segments)
    named = lambda fit: {(s.segment_id, s.name, s.assigned_by) for s in fit.segments.values()}  # noqa: E731
    assert named(second) == named(first)
    assert len(second.matched) == 3
    # a previous segment nowhere near today's clusters is not reused; new ids come after the old ones
    far = {sid: s for sid, s in first.segments.items()}
    for s in far.values():
        if s.centroid:
            s.centroid = {k: v + 100.0 for k, v in s.centroid.items()}
    third = fit_segmentation(df, settings=SETTINGS, k_min=3, k_max=3, region="us", previous=far)
    cluster_ids = sorted(s.segment_id for s in third.segments.values() if s.assigned_by == "cluster")
    assert third.matched == {} and min(cluster_ids) > max(far)


def test_too_few_customers_to_cluster_is_an_error_naming_the_region(spark):
    with pytest.raises(SegmentationError, match=r"region us: only 30 customers left to cluster after the rule segments; 4 segments need at least 40"):
        fit_segmentation(customers(spark, per_blob=10), settings=SETTINGS, k_min=4, k_max=6, region="us")
