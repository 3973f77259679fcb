"""Connected components of an undirected graph given as vertex and edge DataFrames.

One function, two engines with the same result (every vertex labelled with the smallest vertex
id of its component):

* GraphFrames' ``connectedComponents`` when its JVM classes are on the session's classpath;
* otherwise the alternating large-star / small-star algorithm of Kiveris et al. ("Connected
  Components in MapReduce and Beyond", SoCC 2014) written with DataFrame operations. It needs
  O(log n) rounds in practice on chains as well as stars; the lineage is cut by a checkpoint
  after every round so the plan does not grow with the number of rounds.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.errors import C360Error

log = logging.getLogger(__name__)

Engine = Literal["auto", "graphframes", "dataframe"]
COMPONENTS_SCHEMA = T.StructType(
    [T.StructField("id", T.LongType(), False), T.StructField("component", T.LongType(), False)]
)


class ConnectedComponentsError(C360Error):
    """The algorithm did not converge within its round limit."""


@dataclass(frozen=True)
class ComponentsResult:
    components: DataFrame  # id, component
    engine: str
    rounds: int  # large-star + small-star rounds (0 for GraphFrames, which does not report them)


def _checkpoint(df: DataFrame, reliable: bool) -> DataFrame:
    return df.checkpoint(eager=True) if reliable else df.localCheckpoint(eager=True)


def _reliable_checkpoints(spark: SparkSession) -> bool:
    """Reliable checkpoints (files in the checkpoint directory) on a cluster, where an executor can
    be lost between rounds; local ones (executor storage) in local mode, where executors live in
    the driver's JVM, so a reliable one protects against nothing more and costs a write and a read
    of every round's edges."""
    try:
        context = spark.sparkContext
        in_driver_jvm = context.master == "local" or context.master.startswith("local[")  # not local-cluster[...]
        return context.getCheckpointDir() is not None and not in_driver_jvm
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext; use local checkpoints there
        return False


def _large_star(edges: DataFrame) -> DataFrame:
    """Connect every strictly larger neighbour of each vertex to the vertex's smallest neighbour."""
    both = edges.select("src", "dst").union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
    smallest = both.groupBy("src").agg(F.least(F.min("dst"), F.first("src")).alias("m"))
    return (
        both.where(F.col("dst") > F.col("src"))
        .join(smallest, "src")
        .select(F.col("dst").alias("src"), F.col("m").alias("dst"))
        .distinct()
    )


def _small_star(edges: DataFrame) -> DataFrame:
    """Connect each vertex and its smaller neighbours to the smallest of them."""
    down = edges.select(
        F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst")
    ).where(F.col("src") != F.col("dst"))
    smallest = down.groupBy("src").agg(F.min("dst").alias("m"))
    joined = down.join(smallest, "src")
    neighbours = joined.select(F.col("dst").alias("src"), F.col("m").alias("dst"))
    centre = smallest.select(F.col("src"), F.col("m").alias("dst"))
    return neighbours.union(centre).where(F.col("src") != F.col("dst")).distinct()


def _is_forest_of_stars(edges: DataFrame) -> bool:
    """After a small-star step every edge points from a larger to a smaller id; the graph is a set
    of stars centred on each component's minimum exactly when every source has one target and no
    target is also a source. One Spark job: each vertex's out- and in-degree from one aggregation."""
    ends = edges.select(F.col("src").alias("v"), F.lit(1).alias("out"), F.lit(0).alias("into")).unionByName(
        edges.select(F.col("dst").alias("v"), F.lit(0).alias("out"), F.lit(1).alias("into"))
    )
    degrees = ends.groupBy("v").agg(F.sum("out").alias("out"), F.sum("into").alias("into"))
    violation = (F.col("out") > 1) | ((F.col("out") > 0) & (F.col("into") > 0))
    return degrees.where(violation).limit(1).count() == 0


def _dataframe_components(
    vertices: DataFrame, edges: DataFrame, *, max_rounds: int, reliable: bool
) -> ComponentsResult:
    current = _checkpoint(
        edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
        .where(F.col("src") != F.col("dst"))
        .distinct(),
        reliable,
    )
    rounds = 0
    # no edge between two vertices: every vertex is its own component. Checked here because a
    # star step over an empty checkpoint can fail inside Spark (NoSuchElementException: key not
    # found: src#..., seen on a standalone file whose two records shared nothing)
    empty = current.isEmpty()
    while not empty:
        if rounds >= max_rounds:
            raise ConnectedComponentsError(f"connected components did not converge in {max_rounds} rounds")
        rounds += 1
        stepped = _checkpoint(_small_star(_large_star(current)), reliable)
        current.unpersist()
        current = stepped
        if _is_forest_of_stars(current):
            break
    labels = current.select(F.col("src").alias("id"), F.col("dst").alias("component"))
    components = (
        vertices.select("id")
        .distinct()
        .join(labels, "id", "left")
        .select("id", F.coalesce("component", "id").alias("component"))
    )
    return ComponentsResult(components, "dataframe", rounds)


def _graphframes_components(vertices: DataFrame, edges: DataFrame) -> ComponentsResult:
    from graphframes import GraphFrame  # thin adapter: GraphFrames labels each component by its smallest id

    graph = GraphFrame(vertices.select("id").distinct(), edges.select("src", "dst"))
    result = graph.connectedComponents()
    return ComponentsResult(result.select("id", F.col("component").cast("long")), "graphframes", 0)


def connected_components(
    vertices: DataFrame,
    edges: DataFrame,
    *,
    engine: Engine = "auto",
    graphframes_available: bool = False,
    max_rounds: int = 100,
) -> ComponentsResult:
    """Label every vertex (``id`` long) with the smallest id of its component.

    ``edges`` has ``src`` and ``dst`` (long, undirected; self-loops and duplicates allowed).
    Edge endpoints missing from ``vertices`` are not added: pass every vertex.
    """
    for name, frame, columns in (("vertices", vertices, ("id",)), ("edges", edges, ("src", "dst"))):
        for column in columns:
            if column not in frame.columns:
                raise ValueError(f"{name} needs a {column!r} column, has {frame.columns}")
            if not isinstance(frame.schema[column].dataType, (T.LongType, T.IntegerType)):
                raise ValueError(f"{name}.{column} must be an integer type, is {frame.schema[column].dataType.simpleString()}")
    use_graphframes = engine == "graphframes" or (engine == "auto" and graphframes_available)
    if use_graphframes:
        log.info("connected components: GraphFrames")
        return _graphframes_components(vertices, edges)
    log.info("connected components: DataFrame large-star/small-star (GraphFrames jar not on the classpath)")
    reliable = _reliable_checkpoints(vertices.sparkSession)
    return _dataframe_components(vertices, edges, max_rounds=max_rounds, reliable=reliable)
