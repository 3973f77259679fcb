"""Identity resolution from standardized records to components, one function for every caller.

``resolve_identities`` takes clear standardized records (``CLEAR_RECORDS_SCHEMA``) and returns,
per record, its component and how it was linked; the pipeline stage (``stage.py``) and the
standalone command (``standalone.py``) both call it, then assign stable ids and build golden
records the same way.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from customer360.config import IdentityConfig
from customer360.identity.graph import connected_components
from customer360.identity.linking import DeterministicLinks, deterministic_links
from customer360.identity.matching import NEIGHBOURS, MatchResult, probabilistic_links
from customer360.identity.records import profile_key

log = logging.getLogger(__name__)


@dataclass
class ResolvedIdentities:
    #: region, source, source_record_id, component, match_rule, match_confidence (one row per record)
    components: DataFrame
    #: the accepted links: src/dst record keys, link_type, rule, probability
    links: DataFrame
    #: identifier values that were not used to link (clear values; tokenize before storing)
    hubs: DataFrame
    large_blocks: DataFrame
    matching: MatchResult
    engine: str
    rounds: int
    records: DataFrame  # the clear records with vid and profile_key (persisted; call release())

    def release(self) -> None:
        self.records.unpersist()

    def matching_lines(self) -> list[str]:
        """The blocks over the cap and how they were paired, each rule's pairs and the model's prior: the
        lines both the pipeline stage and the standalone command report."""
        lines = []
        how = (f"paired by sorted neighbourhood ({self.matching.neighbourhood} nearest by surname and by first name)"
               if self.matching.neighbourhood else "skipped")
        for row in self.large_blocks.groupBy("region", "rule").agg(
            F.count("*").alias("blocks"), F.max("block_size").alias("largest"), F.sum("block_size").alias("records")
        ).orderBy("region", "rule").collect():
            lines.append(
                f"{row['region']}: rule {row['rule']}: {row['blocks']:,} block(s) above matching.max_block_size "
                f"({row['records']:,} records in them, largest {row['largest']:,}) {how}"
            )
        pairs = {p.rule: p for p in self.matching.pairs}
        for model in self.matching.models:
            counted = pairs.get(model.rule)
            found = f"{counted.generated:,} pairs ({counted.new:,} no earlier rule found)" if counted else f"{model.candidate_pairs:,} pairs"
            lines.append(f"matching rule {model.rule}: {found}, EM {model.iterations} iterations, match share {model.lam:.4f}")
        for counted in self.matching.pairs:
            if counted.rule.endswith(NEIGHBOURS):
                lines.append(
                    f"matching rule {counted.rule}: {counted.generated:,} pairs ({counted.new:,} no earlier rule found), "
                    f"scored, not trained on"
                )
        if self.matching.model is not None:
            lines.append(
                f"matching: {self.matching.model.candidate_pairs:,} distinct candidate pairs scored; "
                f"prior that two random records match: {self.matching.model.priors_text() or 'none'}"
            )
        return lines


def vertex_ids(clear: DataFrame, *, hashed: F.Column | None = None) -> DataFrame:
    """``vid``: a long vertex id that is a function of the record's key (region, source, record
    id), not of the rows' order or partitioning, so every tie broken on it (identifier-group
    anchors, sorted-neighbourhood windows, the u sample, edge direction) falls the same way in
    every run over the same records. The id is a 64-bit hash of the key; in the unlikely case that
    two keys share a hash (checked, one aggregation) the ids are the keys' rank in sorted order
    instead. ``hashed`` replaces the hash (tests)."""
    key = ("region", "source", "source_record_id")
    with_ids = clear.withColumn("vid", hashed if hashed is not None else F.xxhash64(*key))
    collisions = (
        with_ids.groupBy("vid").agg(F.count_distinct(F.struct(*key)).alias("keys")).where(F.col("keys") > 1).limit(1).count()
    )
    if not collisions:
        return with_ids
    log.warning("identity: two record keys share a 64-bit hash; vertex ids are the keys' sorted rank instead")
    ranked = clear.select(*key).distinct().rdd.map(tuple).sortBy(lambda k: k).zipWithIndex()
    ids = ranked.map(lambda pair: (*pair[0], pair[1])).toDF([*key, "vid"])
    return clear.join(ids, list(key))


def _with_vertex_ids(clear: DataFrame) -> DataFrame:
    """Vertex ids (``vertex_ids``) and profile keys, fixed by materializing the frame.

    A local checkpoint (executor storage, gone with the session), never a reliable one: these rows
    hold clear personal data, which must not be left in checkpoint files.
    """
    with_ids = vertex_ids(clear).withColumn("profile_key", profile_key(clear))
    return with_ids.localCheckpoint(eager=True)


@contextmanager
def timed(label: str):
    """Log how long a step took (the identity stage's steps are the expensive part of a run)."""
    started = time.perf_counter()
    yield
    log.info("%s: %.1f s", label, time.perf_counter() - started)


def resolve_identities(clear: DataFrame, settings: IdentityConfig, *, graphframes_available: bool = False) -> ResolvedIdentities:
    with timed("identity: standardized records"):
        records = _with_vertex_ids(clear)
    with timed("identity: deterministic links"):
        found = deterministic_links(records, settings)
        deterministic = DeterministicLinks(
            edges=found.edges.localCheckpoint(eager=True),
            hubs=found.hubs.localCheckpoint(eager=True),
            linked=found.linked.localCheckpoint(eager=True),
        )
    with timed("identity: probabilistic matching"):
        matched = probabilistic_links(records, settings.matching)
    probabilistic = matched.links
    edges = deterministic.edges.select("src", "dst").unionByName(probabilistic.select("src", "dst"))
    with timed("identity: connected components"):
        result = connected_components(records.select(F.col("vid").alias("id")), edges, graphframes_available=graphframes_available)
    log.info("connected components: engine %s, %d rounds", result.engine, result.rounds)

    # how each record joined its customer: its best shared identifier, else its best probabilistic link
    sides = probabilistic.select(F.col("src").alias("vid"), "rule", "probability").unionByName(
        probabilistic.select(F.col("dst").alias("vid"), "rule", "probability")
    )
    best = Window.partitionBy("vid").orderBy(F.desc("probability"), "rule")
    best_probabilistic = sides.withColumn("rank", F.row_number().over(best)).where(F.col("rank") == 1).drop("rank")
    rule = (
        F.when(F.col("kind").isNotNull(), F.concat(F.lit("deterministic:"), F.col("kind")))
        .when(F.col("rule").isNotNull(), F.concat(F.lit("probabilistic:"), F.col("rule")))
        .otherwise(F.lit("singleton"))
    )
    confidence = F.when(F.col("kind").isNotNull(), F.lit(1.0)).when(F.col("rule").isNotNull(), F.col("probability"))
    components = (
        records.select("vid", "region", "source", "source_record_id")
        .join(result.components.withColumnRenamed("id", "vid"), "vid")
        .join(deterministic.linked, "vid", "left")
        .join(best_probabilistic, "vid", "left")
        .select("region", "source", "source_record_id", "component", rule.alias("match_rule"), confidence.alias("match_confidence"))
    )

    keys = records.select("vid", "source", "source_record_id")
    def _keyed(edges_df: DataFrame) -> DataFrame:
        src = keys.select(F.col("vid").alias("src"), F.col("source").alias("src_source"), F.col("source_record_id").alias("src_record_id"))
        dst = keys.select(F.col("vid").alias("dst"), F.col("source").alias("dst_source"), F.col("source_record_id").alias("dst_record_id"))
        return edges_df.join(src, "src").join(dst, "dst")

    region_of = records.select(F.col("vid").alias("src"), "region")
    det_links = _keyed(deterministic.edges.join(region_of, "src")).select(
        "region", "src_source", "src_record_id", "dst_source", "dst_record_id",
        F.lit("deterministic").alias("link_type"), F.col("kind").alias("rule"), F.lit(1.0).alias("probability"),
    )
    prob_links = _keyed(probabilistic.join(region_of, "src")).select(
        "region", "src_source", "src_record_id", "dst_source", "dst_record_id",
        F.lit("probabilistic").alias("link_type"), "rule", "probability",
    )
    return ResolvedIdentities(
        components=components,
        links=det_links.unionByName(prob_links),
        hubs=deterministic.hubs,
        large_blocks=matched.large_blocks,
        matching=matched,
        engine=result.engine,
        rounds=result.rounds,
        records=records,
    )
