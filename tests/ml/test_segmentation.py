"""Segmentation: the pure helpers (elbow, choice of k, merging small clusters, taxonomy names,
matching segments across models) on hand-built cases, and the Spark parts (feature preparation,
rule segments, rule checks, silhouette) on a few rows, against numpy and scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
import pyspark.sql.types as T
from pyspark.ml.linalg import Vectors, VectorUDT
from sklearn.metrics import silhouette_score

from customer360.config import SegmentationConfig, SegmentFeature, SegmentRule, TaxonomyEntry
from customer360.ml.segmentation import (
    VECTOR,
    Candidate,
    SegmentationError,
    check_rules,
    choose_k,
    distinguishing,
    elbow,
    match_segments,
    merge_small_clusters,
    preparation,
    rule_segment,
    silhouette,
    taxonomy_name,
    unique_name,
)

PRECISION = 1e-9

# a clear knee at k = 3: scaled to [0, 1] the gaps below the chord are 0, 0.545, 0.409, 0.216, 0
KNEE = [Candidate(2, 0.505, 100.0), Candidate(3, 0.49, 30.0), Candidate(4, 0.52, 20.0), Candidate(5, 0.30, 15.0), Candidate(6, 0.20, 12.0)]


# --- elbow and the choice of k ---------------------------------------------------------------------

def test_elbow_is_the_point_farthest_below_the_chord():
    assert elbow(KNEE) == 3


def test_elbow_does_not_depend_on_the_order_of_candidates():
    assert elbow(list(reversed(KNEE))) == 3


def test_elbow_moves_with_the_knee():
    # the cost drops steeply until k = 5: gaps 0, 0.11, 0.24, 0.47, 0
    curve = [Candidate(2, 0.0, 100.0), Candidate(3, 0.0, 90.0), Candidate(4, 0.0, 75.0), Candidate(5, 0.0, 20.0), Candidate(6, 0.0, 10.0)]
    assert elbow(curve) == 5


def test_elbow_with_fewer_than_three_candidates_is_the_smallest_k():
    assert (elbow([Candidate(5, 0.1, 10.0), Candidate(4, 0.2, 50.0)]), elbow([Candidate(7, 0.1, 1.0)])) == (4, 7)


def test_elbow_of_a_flat_curve_is_the_first_k():
    assert elbow([Candidate(k, 0.0, 5.0) for k in (3, 4, 5, 6)]) == 3


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [
        (0.0, (4, 3)),  # the best silhouette (0.52) alone
        (0.02, (2, 3)),  # k=2 (0.505) and k=4 (0.52) are within 0.02; both 1 from the knee: the smaller k
        (0.05, (3, 3)),  # k=3 (0.49) is within 0.05 too, and is the knee
    ],
)
def test_choose_k_best_silhouette_then_nearest_the_elbow(tolerance, expected):
    assert choose_k(KNEE, tolerance=tolerance) == expected


def test_choose_k_without_candidates_raises():
    with pytest.raises(SegmentationError, match="no k candidates"):
        choose_k([], tolerance=0.02)


# --- merging small clusters -------------------------------------------------------------------------

def test_merge_small_clusters_uses_the_size_weighted_centroid_and_repeats():
    # 100 rows, min share 0.1: clusters under 10 rows merge. 3 (4 rows at 12.5) is the smallest and
    # goes to 2 (5 rows at 9.5, distance 3); 2 now has 9 rows at (47.5 + 50) / 9 = 10.83, still too
    # small, and goes to 1 at 20 (distance 9.2) rather than 0 at 0 (10.8). With its old centroid
    # (9.5) it would have gone to 0. 3 follows 2 into 1.
    sizes = {0: 50, 1: 41, 2: 5, 3: 4}
    centroids = {0: [0.0, 0.0], 1: [20.0, 0.0], 2: [9.5, 0.0], 3: [12.5, 0.0]}
    assert merge_small_clusters(sizes, centroids, min_share=0.1) == {0: 0, 1: 1, 2: 1, 3: 1}


def test_merge_small_clusters_chain_down_to_the_big_cluster():
    # 2 (4 rows) merges into 1 (5 rows, nearer); the merged 9 rows are still under 10 and go to 0
    sizes = {0: 91, 1: 5, 2: 4}
    centroids = {0: [0.0], 1: [10.0], 2: [14.0]}
    assert merge_small_clusters(sizes, centroids, min_share=0.1) == {0: 0, 1: 0, 2: 0}


def test_merge_small_clusters_equal_sizes_merge_the_lower_id_first():
    # 1 and 2 both have 5 rows: 1 goes first (into 2, at distance 2), and the 10 merged rows are
    # enough (share 0.09 of 100 = 9). Had 2 gone first, the answer would be {2: 1}.
    sizes = {0: 90, 1: 5, 2: 5}
    centroids = {0: [0.0], 1: [10.0], 2: [12.0]}
    assert merge_small_clusters(sizes, centroids, min_share=0.09) == {0: 0, 1: 2, 2: 2}


def test_merge_small_clusters_leaves_big_clusters_alone():
    # every cluster has at least 30% (exactly the share counts as big enough)
    sizes = {0: 30, 1: 40, 2: 30}
    centroids = {0: [0.0], 1: [1.0], 2: [2.0]}
    assert merge_small_clusters(sizes, centroids, min_share=0.3) == {0: 0, 1: 1, 2: 2}


def test_merge_small_clusters_maps_an_empty_cluster_to_the_nearest_survivor():
    sizes = {0: 60, 1: 40, 2: 0}
    centroids = {0: [0.0, 0.0], 1: [5.0, 5.0], 2: [4.0, 4.0]}
    assert merge_small_clusters(sizes, centroids, min_share=0.03) == {0: 0, 1: 1, 2: 1}


def test_merge_small_clusters_empty_cluster_goes_to_a_survivor_not_to_a_merged_cluster():
    # 1 (5 of 100) merges into 0; the empty 2 sits next to 1 but 0 is the only survivor
    sizes = {0: 95, 1: 5, 2: 0}
    centroids = {0: [0.0], 1: [10.0], 2: [11.0]}
    assert merge_small_clusters(sizes, centroids, min_share=0.1) == {0: 0, 1: 0, 2: 0}


# --- taxonomy, distinguishing features, names ---------------------------------------------------------

TAXONOMY = (
    TaxonomyEntry(name="High-value loyal", above={"monetary": 0.5, "frequency": 0.5}, min_median={"monetary": 300}),
    TaxonomyEntry(name="At-risk big spenders", above={"monetary": 0.3, "recency": 0.5}, min_median={"monetary": 150}),
    TaxonomyEntry(name="Occasional low spenders", below={"frequency": -0.3, "monetary": -0.3}),
    TaxonomyEntry(name="Lapsing", above={"recency": 0.5}),
    TaxonomyEntry(name="Mainstream"),
)
BIG_LAPSING = {"monetary": 0.6, "frequency": 0.6, "recency": 0.7}


@pytest.mark.parametrize(
    ("z", "medians", "expected"),
    [
        (BIG_LAPSING, {"monetary": 400.0}, "High-value loyal"),  # the next two entries hold too: the first wins
        (BIG_LAPSING, {"monetary": 200.0}, "At-risk big spenders"),  # under the 300 floor: falls through
        (BIG_LAPSING, {"monetary": 100.0}, "Lapsing"),  # under both floors
        (BIG_LAPSING, {"monetary": 300.0}, "High-value loyal"),  # the floor is inclusive
        (BIG_LAPSING, {}, "Lapsing"),  # no median: counts as 0
        (BIG_LAPSING, {"monetary": None}, "Lapsing"),
        ({"monetary": 0.5, "frequency": 0.9, "recency": 0.0}, {"monetary": 1000.0}, "Mainstream"),  # 0.5 is not above 0.5
        ({"monetary": -0.4, "frequency": -0.5, "recency": 0.0}, {}, "Occasional low spenders"),
        ({"frequency": -0.5}, {}, "Mainstream"),  # a missing z-score fails a 'below' condition too
        ({}, {}, "Mainstream"),
    ],
)
def test_taxonomy_name_first_match_with_median_floors_and_fallback(z, medians, expected):
    assert taxonomy_name(z, medians, TAXONOMY) == expected


def test_distinguishing_orders_by_absolute_z_then_name_and_skips_missing():
    z = {"a": 0.5, "b": -1.844, "c": 1.2, "d": None, "e": math.nan, "f": -1.2, "g": 0.0}
    assert distinguishing(z) == ["b -1.84", "c +1.20", "f -1.20"]
    assert distinguishing(z, top=5) == ["b -1.84", "c +1.20", "f -1.20", "a +0.50", "g +0.00"]
    assert distinguishing({"d": None}) == []


LAPSING_Z = {"recency": 1.5, "monetary": -2.0}


@pytest.mark.parametrize(
    ("name", "used", "z", "expected"),
    [
        ("Lapsing", set(), LAPSING_Z, "Lapsing"),
        ("Lapsing", {"Lapsing"}, LAPSING_Z, "Lapsing (low monetary)"),  # the largest |z| first
        ("Lapsing", {"Lapsing", "Lapsing (low monetary)"}, LAPSING_Z, "Lapsing (high recency)"),
        ("Lapsing", {"Lapsing", "Lapsing (low monetary)", "Lapsing (high recency)"}, LAPSING_Z, "Lapsing 2"),
        ("Lapsing", {"Lapsing", "Lapsing 2"}, {}, "Lapsing 3"),
        ("Mainstream", {"Mainstream"}, {"b": 1.0, "a": -1.0}, "Mainstream (low a)"),  # equal |z|: by name
    ],
)
def test_unique_name_suffixes(name, used, z, expected):
    assert unique_name(name, used, z) == expected


# --- matching segments across models ---------------------------------------------------------------------

# distances: new 0 -> old 10: 1.0, -> old 11: 2.0; new 1 -> old 10: 1.5, -> old 11: 4.5.
# Greedy (nearest pair first) takes 0->10 then 1->11: 5.5; the minimum total is 0->11, 1->10: 3.5
NEW = {0: [0.0, 0.0], 1: [2.5, 0.0]}
OLD = {10: [1.0, 0.0], 11: [-2.0, 0.0]}


def test_match_segments_minimises_the_total_distance_not_greedily():
    assert match_segments(NEW, OLD, max_distance=5.0) == {0: 11, 1: 10}


def test_match_segments_drops_pairs_farther_than_max_distance():
    # 0 -> 11 (2.0) is too far; 0 is not re-matched to 10, which the assignment gave to 1
    assert match_segments(NEW, OLD, max_distance=1.8) == {1: 10}


def test_match_segments_uses_euclidean_distance():
    # (3, 4) is 5 from the origin (its squared distance, 25, would fail both limits)
    assert (match_segments({0: [3.0, 4.0]}, {7: [0.0, 0.0]}, max_distance=5.5),
            match_segments({0: [3.0, 4.0]}, {7: [0.0, 0.0]}, max_distance=4.9)) == ({0: 7}, {})


def test_match_segments_more_new_than_old_and_empty_sides():
    new = {0: [0.0], 1: [10.0], 2: [20.0]}
    old = {5: [19.0], 6: [1.0]}
    assert match_segments(new, old, max_distance=2.0) == {0: 6, 2: 5}
    assert (match_segments({}, old, max_distance=2.0), match_segments(new, {}, max_distance=2.0)) == ({}, {})


# --- Spark: preparation ------------------------------------------------------------------------------------

PREP_SETTINGS = SegmentationConfig(
    features=(
        SegmentFeature(name="x", transform="log", weight=1.0, fill=2.0),
        SegmentFeature(name="y", transform="none", weight=2.0, fill=5.0),
        SegmentFeature(name="z", transform="log", weight=0.5, fill=-1.0),
    ),
    taxonomy=(TaxonomyEntry(name="Mainstream"),),
)


@pytest.fixture(scope="module")
def prepared(spark):
    rows = [
        ("r1", -3, None, None),  # x: log1p(max(-3, 0)) = 0; y: fill 5; z: fill -1, clipped: 0
        ("r2", None, 1.0, 3),  # x: fill 2, then log1p: ln 3; z: ln 4
        ("r3", 7, 3.0, 0),  # x: ln 8; z: 0
    ]
    df = spark.createDataFrame(rows, "id string, x bigint, y double, z int")
    out = preparation(PREP_SETTINGS).fit(df).transform(df).cache()
    yield out
    out.unpersist()


def test_preparation_fills_then_log_transforms_with_negatives_clipped(spark, prepared):
    expected = spark.createDataFrame(
        [
            ("r1", -3, None, None, 0.0, 5.0, 0.0),
            ("r2", None, 1.0, 3, math.log(3.0), 1.0, math.log(4.0)),
            ("r3", 7, 3.0, 0, math.log(8.0), 3.0, 0.0),
        ],
        "id string, x bigint, y double, z int, _seg_x double, _seg_y double, _seg_z double",
    )
    got = prepared.select("id", "x", "y", "z", "_seg_x", "_seg_y", "_seg_z")
    assert_approx_df_equality(got, expected, PRECISION, ignore_nullable=True, ignore_row_order=True)


def test_preparation_standardizes_with_the_sample_std_and_weights(prepared):
    raw = np.array([[0.0, 5.0, 0.0], [math.log(3.0), 1.0, math.log(4.0)], [math.log(8.0), 3.0, 0.0]])
    weights = np.array([1.0, 2.0, 0.5])
    # scaled to unit variance, not centred (bisecting k-means cannot split a cluster at the origin)
    sample = raw / raw.std(axis=0, ddof=1) * weights
    population = raw / raw.std(axis=0, ddof=0) * weights
    got = {r["id"]: r[VECTOR].toArray() for r in prepared.select("id", VECTOR).collect()}
    actual = np.array([got["r1"], got["r2"], got["r3"]])
    np.testing.assert_allclose(actual, sample, rtol=0, atol=1e-9)
    # Spark's StandardScaler divides by the corrected (n - 1) std, not the population one
    assert not np.allclose(actual, population, rtol=0, atol=1e-3)
    assert prepared.columns == ["id", "x", "y", "z", "_seg_x", "_seg_y", "_seg_z", "_seg_raw", "_seg_scaled", VECTOR]


# --- Spark: rule segments ------------------------------------------------------------------------------------

RULES = (
    SegmentRule(name="Prospects", when="coalesce(orders_total, 0) = 0"),
    SegmentRule(name="New customers", when="tenure_days < 60"),
    SegmentRule(name="Dormant", when="recency_days > 365"),
)
RULE_SCHEMA = "customer_id string, orders_total bigint, tenure_days int, recency_days int"
RULE_ROWS = [
    ("c1", 0, 10, None),  # Prospects and New customers both hold: the first wins
    ("c2", 3, 30, 400),  # New customers and Dormant: the first wins
    ("c3", 2, 100, 400),
    ("c4", 2, None, None),  # null conditions do not hold
    ("c5", None, 500, 10),  # null orders count as 0
    ("c6", 5, 200, 10),
]


def test_rule_segment_first_match_wins_and_nulls_do_not_match(spark):
    df = spark.createDataFrame(RULE_ROWS, RULE_SCHEMA)
    got = df.select("customer_id", rule_segment(RULES).alias("segment"))
    expected = spark.createDataFrame(
        [("c1", "Prospects"), ("c2", "New customers"), ("c3", "Dormant"), ("c4", None), ("c5", "Prospects"), ("c6", None)],
        "customer_id string, segment string",
    )
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_rule_segment_without_rules_is_null(spark):
    df = spark.createDataFrame(RULE_ROWS[:2], RULE_SCHEMA)
    assert [r["segment"] for r in df.select(rule_segment(()).alias("segment")).collect()] == [None, None]


def test_check_rules_accepts_boolean_conditions(spark):
    assert check_rules(spark.createDataFrame(RULE_ROWS, RULE_SCHEMA), RULES) is None


def test_check_rules_names_the_rule_with_an_unknown_column(spark):
    rules = (*RULES[:1], SegmentRule(name="Loyal", when="loyalty_points > 100"))
    with pytest.raises(SegmentationError, match=r"^ml\.segmentation\.rules\[1\] \('Loyal'\): cannot evaluate 'loyalty_points > 100'"):
        check_rules(spark.createDataFrame(RULE_ROWS, RULE_SCHEMA), rules)


def test_check_rules_names_the_rule_that_is_not_a_condition(spark):
    rules = (SegmentRule(name="Sum", when="tenure_days + 1"), *RULES)
    with pytest.raises(SegmentationError, match=r"^ml\.segmentation\.rules\[0\] \('Sum'\): 'tenure_days \+ 1' is int, not a condition$"):
        check_rules(spark.createDataFrame(RULE_ROWS, RULE_SCHEMA), rules)


def test_check_rules_reports_a_syntax_error(spark):
    rules = (*RULES, SegmentRule(name="Broken", when="recency_days >"))
    with pytest.raises(SegmentationError, match=r"^ml\.segmentation\.rules\[3\] \('Broken'\): cannot evaluate"):
        check_rules(spark.createDataFrame(RULE_ROWS, RULE_SCHEMA), rules)


# --- Spark: silhouette ------------------------------------------------------------------------------------------

POINTS_SCHEMA = T.StructType([T.StructField(VECTOR, VectorUDT()), T.StructField("cluster", T.IntegerType())])


def test_silhouette_matches_sklearn_squared_euclidean(spark):
    points = np.array([[0.0, 0.0], [0.5, 0.2], [0.1, 0.9], [4.0, 4.0], [4.5, 3.5], [3.0, 4.2], [2.0, 2.0]])
    clusters = [0, 0, 0, 1, 1, 1, 0]
    df = spark.createDataFrame([(Vectors.dense(p.tolist()), c) for p, c in zip(points, clusters)], POINTS_SCHEMA)
    assert silhouette(df) == pytest.approx(silhouette_score(points, clusters, metric="sqeuclidean"), abs=1e-9)


def test_silhouette_of_one_cluster_is_minus_one(spark):
    df = spark.createDataFrame([(Vectors.dense([float(i), 0.0]), 3) for i in range(3)], POINTS_SCHEMA)
    assert silhouette(df) == -1.0
