"""Both connected-components engines, GraphFrames and the DataFrame algorithm, against scipy on the
same identifier graphs: a shuffled chain of 10,000 records, a star around a hub, many small
components, and a random mix. Every engine must give exactly scipy's partition.

GraphFrames runs where its jar is loaded (`make jars` fetched infra/jvm/graphframes/pom.xml);
elsewhere its cases are skipped with that reason, and the DataFrame cases still run.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from customer360.identity.graph import connected_components
from customer360.session import detect_capabilities

VERTICES = T.StructType([T.StructField("id", T.LongType(), False)])
EDGES = T.StructType([T.StructField("src", T.LongType(), False), T.StructField("dst", T.LongType(), False)])
COMPONENTS = T.StructType([T.StructField("id", T.LongType(), False), T.StructField("component", T.LongType(), False)])


def scipy_partition(vertices: list[int], edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each vertex with the smallest id of its component, by scipy (independent of the code under test)."""
    index = {v: i for i, v in enumerate(vertices)}
    rows = np.array([index[a] for a, _ in edges], dtype=np.int64)
    cols = np.array([index[b] for _, b in edges], dtype=np.int64)
    matrix = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(vertices), len(vertices)))
    _, labels = scipy_components(matrix, directed=False)
    smallest: dict[int, int] = {}
    for vertex, label in zip(vertices, labels):
        smallest[label] = min(smallest.get(label, vertex), vertex)
    return [(vertex, smallest[label]) for vertex, label in zip(vertices, labels)]


def chain(n: int = 10_000) -> tuple[list[int], list[tuple[int, int]]]:
    """One record linked to the next, 10,000 long, visiting scattered 64-bit ids in random order."""
    rng = random.Random(3)
    ids = rng.sample(range(2**33, 2**40), n)
    return ids, [(ids[i], ids[i + 1]) for i in range(n - 1)]


def star() -> tuple[list[int], list[tuple[int, int]]]:
    """A hub (the largest id) linked to 2,000 records, plus the hub's own isolated neighbours-to-be."""
    hub = 10**12
    leaves = list(range(1_000, 3_000))
    edges = [(hub, leaf) if leaf % 2 else (leaf, hub) for leaf in leaves]
    return [hub, *leaves, 5, 6], edges  # 5 and 6: isolated records beside the star


def many_small() -> tuple[list[int], list[tuple[int, int]]]:
    """3,000 components of one to four records, edges in both directions, some repeated, self-loops."""
    rng = random.Random(5)
    vertices: list[int] = []
    edges: list[tuple[int, int]] = []
    next_id = 1
    for _ in range(3_000):
        size = rng.randint(1, 4)
        members = list(range(next_id, next_id + size))
        next_id += size + rng.randint(0, 3)
        vertices += members
        for a, b in zip(members, members[1:]):
            edges.append((a, b) if rng.random() < 0.5 else (b, a))
        if rng.random() < 0.1:
            edges.append((members[0], members[0]))
        if len(members) > 1 and rng.random() < 0.1:
            edges.append((members[0], members[1]))
    rng.shuffle(edges)
    return vertices, edges


def random_mix() -> tuple[list[int], list[tuple[int, int]]]:
    rng = random.Random(9)
    vertices = rng.sample(range(1, 10**9), 4_000)
    edges = [tuple(rng.sample(vertices, 2)) for _ in range(3_000)]
    return vertices, edges


GRAPHS = {"chain_10000": chain, "star_with_hub": star, "many_small": many_small, "random_mix": random_mix}


@pytest.fixture(params=["graphframes", "dataframe"])
def engine(request, spark):
    if request.param == "graphframes" and not detect_capabilities(spark).graphframes:
        pytest.skip("GraphFrames jar not loaded: `make jars` could not fetch infra/jvm/graphframes/pom.xml")
    return request.param


@pytest.mark.slow
@pytest.mark.parametrize("graph", list(GRAPHS))
def test_engines_give_scipys_partition(spark, engine, graph):
    vertices, edges = GRAPHS[graph]()
    result = connected_components(
        spark.createDataFrame([(v,) for v in vertices], VERTICES),
        spark.createDataFrame(edges, EDGES),
        engine=engine,
    )
    assert result.engine == engine
    expected = spark.createDataFrame(scipy_partition(vertices, edges), COMPONENTS)
    assert_df_equality(result.components, expected, ignore_row_order=True, ignore_nullable=True)


def test_scipy_reference_on_a_hand_made_graph():
    """The reference itself, on a graph small enough to check by eye."""
    assert sorted(scipy_partition([7, 3, 9, 4, 8], [(7, 3), (9, 4), (4, 9)])) == [(3, 3), (4, 4), (7, 3), (8, 8), (9, 4)]


def test_auto_uses_graphframes_exactly_when_it_is_loaded(spark):
    vertices, edges = [1, 2, 3], [(1, 2)]
    result = connected_components(
        spark.createDataFrame([(v,) for v in vertices], VERTICES),
        spark.createDataFrame(edges, EDGES),
        graphframes_available=detect_capabilities(spark).graphframes,
    )
    assert result.engine == ("graphframes" if detect_capabilities(spark).graphframes else "dataframe")
    assert sorted(map(tuple, result.components.collect())) == [(1, 1), (2, 1), (3, 3)]
