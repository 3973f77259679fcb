"""Connected components (DataFrame large-star/small-star engine) cross-checked against networkx.

Each call to ``connected_components`` costs several Spark jobs per round, so the random graphs
of one seed are packed into one call (disjoint id ranges keep them independent).
"""
from __future__ import annotations

import math
import random

import networkx as nx
import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from customer360.identity.graph import ConnectedComponentsError, connected_components

VERTICES = T.StructType([T.StructField("id", T.LongType(), False)])
EDGES = T.StructType([T.StructField("src", T.LongType(), False), T.StructField("dst", T.LongType(), False)])
COMPONENTS = T.StructType([T.StructField("id", T.LongType(), False), T.StructField("component", T.LongType(), False)])


def expected_components(graph: nx.Graph) -> list[tuple[int, int]]:
    """Every vertex with the smallest vertex id of its component (networkx, not the code under test)."""
    rows = []
    for component in nx.connected_components(graph):
        label = min(component)
        rows.extend((vertex, label) for vertex in component)
    return rows


def components_of(spark, vertices, edges, **kwargs):
    result = connected_components(
        spark.createDataFrame([(v,) for v in vertices], VERTICES),
        spark.createDataFrame(edges, EDGES),
        engine="dataframe",
        **kwargs,
    )
    assert result.engine == "dataframe"
    return result


def assert_matches_networkx(spark, result, vertices, edges):
    graph = nx.Graph()
    graph.add_nodes_from(vertices)
    graph.add_edges_from(edges)
    expected = spark.createDataFrame(expected_components(graph), COMPONENTS)
    assert_df_equality(result.components, expected, ignore_row_order=True, ignore_nullable=True)


def random_graphs(seed: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Several G(n, m) graphs of different sizes and densities, relabelled with scattered 64-bit
    ids (so ids are not in vertex order and exceed the int range), in one vertex/edge list."""
    rng = random.Random(seed)
    vertices: list[int] = []
    edges: list[tuple[int, int]] = []
    for n, m in ((8, 3), (20, 12), (40, 40), (60, 25), (30, 120)):  # forests of bits to one blob
        graph = nx.gnm_random_graph(n, m, seed=rng.randrange(2**32))
        labels = rng.sample(range(2**33, 2**40), n)
        vertices.extend(labels)
        for a, b in graph.edges():
            edges.append((labels[a], labels[b]) if rng.random() < 0.5 else (labels[b], labels[a]))
    rng.shuffle(edges)
    return vertices, edges


@pytest.mark.parametrize("seed", [7, 2024])
def test_random_graphs_match_networkx(spark, seed):
    vertices, edges = random_graphs(seed)
    graph = nx.Graph()
    graph.add_nodes_from(vertices)
    graph.add_edges_from(edges)
    assert 5 < nx.number_connected_components(graph) < len(vertices)  # a real mix, not one blob
    result = components_of(spark, vertices, edges)
    assert_matches_networkx(spark, result, vertices, edges)


def test_long_chain_in_shuffled_order_converges_in_logarithmic_rounds(spark):
    n = 300
    ids = list(range(1, n + 1))
    random.Random(11).shuffle(ids)
    edges = [(ids[i], ids[i + 1]) for i in range(n - 1)]  # a path visiting ids in random order
    result = components_of(spark, ids, edges)
    # measured: 6-7 rounds for shuffled 300-vertex chains (9 for an ordered one); the bound leaves room
    assert 1 <= result.rounds <= 2 * math.ceil(math.log2(n)) + 2
    expected = spark.createDataFrame([(v, 1) for v in ids], COMPONENTS)
    assert_df_equality(result.components, expected, ignore_row_order=True, ignore_nullable=True)


def test_star_centred_on_the_largest_id(spark):
    centre = 10_000
    leaves = list(range(100, 150))
    edges = [(centre, leaf) if leaf % 2 else (leaf, centre) for leaf in leaves]
    vertices = [centre, *leaves]
    result = components_of(spark, vertices, edges)
    expected = spark.createDataFrame([(v, 100) for v in vertices], COMPONENTS)
    assert_df_equality(result.components, expected, ignore_row_order=True, ignore_nullable=True)


def test_isolated_vertices_only(spark):
    vertices = [5, 3, 9, 2**40]
    result = components_of(spark, vertices, [])
    expected = spark.createDataFrame([(v, v) for v in vertices], COMPONENTS)
    assert_df_equality(result.components, expected, ignore_row_order=True, ignore_nullable=True)


def test_self_loops_and_duplicate_edges_and_vertices(spark):
    vertices = [1, 2, 3, 4, 5, 6, 6, 2]  # a vertex listed twice is reported once
    edges = [
        (4, 4),  # a self-loop alone keeps 4 on its own
        (3, 2), (2, 3), (3, 2), (3, 3),  # duplicates both ways and a loop
        (6, 5), (6, 5), (5, 5),
        (1, 1),
    ]
    result = components_of(spark, vertices, edges)
    expected = spark.createDataFrame([(1, 1), (2, 2), (3, 2), (4, 4), (5, 5), (6, 5)], COMPONENTS)
    assert_df_equality(result.components, expected, ignore_row_order=True, ignore_nullable=True)


def test_disconnected_mix(spark):
    vertices = [*range(1, 16), 100, 200, -7]
    edges = [
        (15, 14), (14, 13), (13, 12),  # chain 12..15 -> 12
        (1, 9), (9, 5), (5, 1),  # triangle -> 1
        (11, 2), (11, 3), (11, 4), (11, 10),  # star on 11 -> 2
        (6, 7), (7, 7),  # pair with a loop -> 6
        (200, -7),  # negative ids order too -> -7
        (8, 8),  # loop only
    ]
    result = components_of(spark, vertices, edges)
    assert_matches_networkx(spark, result, vertices, edges)
    labels = {r.id: r.component for r in result.components.collect()}
    assert (labels[15], labels[9], labels[10], labels[7], labels[200], labels[8], labels[100]) == (12, 1, 2, 6, -7, 8, 100)


def test_round_limit_raises(spark):
    ids = list(range(1, 41))
    random.Random(3).shuffle(ids)
    with pytest.raises(ConnectedComponentsError, match="did not converge in 1 rounds"):
        components_of(spark, ids, [(ids[i], ids[i + 1]) for i in range(len(ids) - 1)], max_rounds=1)


# --- bad inputs --------------------------------------------------------------------------------


@pytest.fixture
def good_vertices(spark):
    return spark.createDataFrame([(1,), (2,)], VERTICES)


@pytest.fixture
def good_edges(spark):
    return spark.createDataFrame([(1, 2)], EDGES)


def test_vertices_without_id_column(spark, good_edges):
    vertices = spark.createDataFrame([(1,)], "vid long")
    with pytest.raises(ValueError, match="vertices needs a 'id' column"):
        connected_components(vertices, good_edges, engine="dataframe")


@pytest.mark.parametrize("missing", ["src", "dst"])
def test_edges_without_endpoint_column(spark, good_vertices, missing):
    edges = spark.createDataFrame([(1, 2)], EDGES).withColumnRenamed(missing, "other")
    with pytest.raises(ValueError, match=f"edges needs a '{missing}' column"):
        connected_components(good_vertices, edges, engine="dataframe")


def test_string_vertex_ids_are_refused(spark, good_edges):
    vertices = spark.createDataFrame([("1",), ("2",)], "id string")
    with pytest.raises(ValueError, match="vertices.id must be an integer type, is string"):
        connected_components(vertices, good_edges, engine="dataframe")


def test_string_edge_endpoints_are_refused(spark, good_vertices):
    edges = spark.createDataFrame([(1, "2")], "src long, dst string")
    with pytest.raises(ValueError, match="edges.dst must be an integer type, is string"):
        connected_components(good_vertices, edges, engine="dataframe")
