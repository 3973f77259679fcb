"""Probabilistic record linkage (Fellegi-Sunter) with parameters estimated by EM, no labels.

1. Candidate pairs: records agreeing on every key of a blocking rule (config), within a region;
   blocks larger than ``max_block_size`` are skipped and reported.
2. Comparison vectors: each pair gets a level per comparison (first name, surname, date of birth,
   address, email, phone) from Spark built-ins (levenshtein, soundex); -1 when either side is
   null, which neither helps nor hurts.
3. u probabilities come from random record pairs (almost all non-matches). m probabilities and
   the match share are estimated by EM, one session per blocking rule over the comparisons that
   rule does not fix (as Splink does): a rule on surname and postcode makes every candidate agree
   on them, so letting them vote would make EM learn "same household" instead of "same person".
   The pairs are reduced to counts per distinct comparison vector, so EM runs on the driver over
   a few hundred rows.
4. A pair's match probability is its rule session's posterior (the best one when several rules
   found it); pairs at or above the threshold become links carrying rule and probability.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import types as T

from customer360.config import BlockingRule, MatchingConfig

log = logging.getLogger(__name__)

#: attributes the comparisons read (a record needs a first or last name to be compared at all)
#: attributes the comparisons read (a record needs a first or last name to be compared at all)
COMPARED = ("first_name", "last_name", "date_of_birth", "street", "postcode", "city", "email", "phone")

MODEL_SCHEMA = T.StructType(
    [
        T.StructField("blocking_rule", T.StringType(), False),
        T.StructField("comparison", T.StringType(), False),
        T.StructField("level", T.IntegerType(), False),
        T.StructField("description", T.StringType(), False),
        T.StructField("m", T.DoubleType(), True),  # null: the rule fixes this comparison
        T.StructField("u", T.DoubleType(), False),
        T.StructField("match_weight", T.DoubleType(), True),  # log2(m/u)
        T.StructField("match_share", T.DoubleType(), False),  # lambda of the rule's candidate pairs
        T.StructField("em_iterations", T.IntegerType(), False),
        T.StructField("candidate_pairs", T.LongType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class Comparison:
    name: str
    columns: tuple[str, ...]  # the record attributes it reads
    levels: tuple[str, ...]  # description of level 0, 1, ... (highest = strongest agreement)
    build: object  # () -> Column over l_*/r_* columns giving the level, -1 when nothing to compare

    def expression(self) -> Column:
        return self.build()


def _lev(name: str) -> Column:
    return F.levenshtein(F.col(f"l_{name}"), F.col(f"r_{name}"))


def _null(name: str) -> Column:
    return F.col(f"l_{name}").isNull() | F.col(f"r_{name}").isNull()


def _same(name: str) -> Column:
    return F.coalesce(F.col(f"l_{name}") == F.col(f"r_{name}"), F.lit(False))


def _name_level(name: str, other: str) -> Column:
    left, right = F.col(f"l_{name}"), F.col(f"r_{name}")
    swapped = (F.col(f"l_{name}") == F.col(f"r_{other}")) & (F.col(f"l_{other}") == F.col(f"r_{name}"))
    shortest = F.least(F.length(left), F.length(right))
    return (
        F.when(_null(name), -1)
        .when((left == right) | F.coalesce(swapped, F.lit(False)), 3)
        .when((_lev(name) <= 1) | ((_lev(name) <= 2) & (shortest >= 6)), 2)
        .when(F.soundex(left) == F.soundex(right), 1)
        .otherwise(0)
    )


def _date_level() -> Column:
    left, right = F.col("l_date_of_birth"), F.col("r_date_of_birth")
    transposed = (F.year(left) == F.year(right)) & (F.month(left) == F.dayofmonth(right)) & (
        F.dayofmonth(left) == F.month(right)
    )
    one_digit = F.levenshtein(F.date_format(left, "yyyyMMdd"), F.date_format(right, "yyyyMMdd")) <= 1
    return F.when(_null("date_of_birth"), -1).when(left == right, 2).when(transposed | one_digit, 1).otherwise(0)


def _exact_level(name: str) -> Column:
    return F.when(_null(name), -1).when(F.col(f"l_{name}") == F.col(f"r_{name}"), 1).otherwise(0)


def _address_level() -> Column:
    """One comparison for street, postcode and city: they are strongly correlated, and counting
    them as three independent agreements would make any two people at one address a match."""
    nothing = lambda side: F.col(f"{side}_street").isNull() & F.col(f"{side}_postcode").isNull() & F.col(f"{side}_city").isNull()  # noqa: E731
    longest = F.greatest(F.length("l_street"), F.length("r_street"))
    similar_street = F.coalesce(_lev("street") <= F.greatest(F.lit(1), F.floor(longest * 0.2)), F.lit(False))
    return (
        F.when(nothing("l") | nothing("r"), -1)
        .when(_same("street") & _same("postcode"), 3)
        .when(_same("postcode") | (_same("street") & _same("city")) | (similar_street & _same("postcode")), 2)
        .when(_same("city") | similar_street, 1)
        .otherwise(0)
    )


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("first_name", ("first_name",), ("different", "sounds alike", "one or two edits", "exact or swapped"),
               lambda: _name_level("first_name", "last_name")),
    Comparison("last_name", ("last_name",), ("different", "sounds alike", "one or two edits", "exact or swapped"),
               lambda: _name_level("last_name", "first_name")),
    Comparison("date_of_birth", ("date_of_birth",), ("different", "one digit or day/month swapped", "exact"), _date_level),
    Comparison("address", ("street", "postcode", "city"),
               ("different", "same city or similar street", "same postcode", "same street and postcode"), _address_level),
    Comparison("email", ("email",), ("different", "exact"), lambda: _exact_level("email")),
    Comparison("phone", ("phone",), ("different", "exact"), lambda: _exact_level("phone")),
)


def fixed_comparisons(rule: BlockingRule) -> frozenset[str]:
    """Comparisons whose attributes appear in the rule's keys: every candidate of the rule agrees
    on them, so they carry no evidence within the rule's pairs."""
    text = " ".join(rule.keys)
    return frozenset(
        c.name for c in COMPARISONS if any(re.search(rf"\b{re.escape(col)}\b", text) for col in c.columns)
    )


@dataclass(frozen=True)
class FellegiSunterModel:
    """One rule's model: m for the comparisons it does not fix, u from random pairs, the match share."""

    rule: str
    fixed: frozenset[str]
    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    lam: float
    iterations: int
    candidate_pairs: int

    def log_odds(self) -> Column:
        """The posterior log-odds of a match as a Spark expression over the ``gamma_*`` columns."""
        lam = min(max(self.lam, 1e-9), 1 - 1e-9)
        total = F.lit(math.log(lam / (1 - lam)))
        for comparison in COMPARISONS:
            if comparison.name in self.fixed:
                continue
            gamma = F.col(f"gamma_{comparison.name}")
            weight = None
            for level in range(len(comparison.levels)):
                value = math.log(self.m[comparison.name][level] / self.u[comparison.name][level])
                weight = F.when(gamma == level, value) if weight is None else weight.when(gamma == level, value)
            total = total + weight.otherwise(0.0)
        return total

    def probability(self) -> Column:
        return F.lit(1.0) / (F.lit(1.0) + F.exp(-self.log_odds()))

    def has_evidence(self) -> Column:
        """True when at least one comparison the rule does not fix agrees at a level with positive
        weight: a pair that merely satisfies the blocking keys is never linked on the prior alone."""
        evidence = F.lit(False)
        for comparison in COMPARISONS:
            if comparison.name in self.fixed:
                continue
            supporting = [
                level for level in range(len(comparison.levels))
                if self.m[comparison.name][level] > self.u[comparison.name][level]
            ]
            if supporting:
                evidence = evidence | F.col(f"gamma_{comparison.name}").isin(*supporting)
        return evidence

    def rows(self, run_id: str) -> list[tuple]:
        out = []
        for comparison in COMPARISONS:
            for level, description in enumerate(comparison.levels):
                u = float(self.u[comparison.name][level])
                fixed = comparison.name in self.fixed
                m = None if fixed else float(self.m[comparison.name][level])
                weight = None if fixed else math.log2(m / u)
                out.append((self.rule, comparison.name, level, description, m, u, weight, self.lam,
                            self.iterations, self.candidate_pairs, run_id))
        return out


def matchable(records: DataFrame) -> DataFrame:
    """Records that can be compared: a first or a last name."""
    return records.where(F.col("first_name").isNotNull() | F.col("last_name").isNotNull()).select(
        "vid", "region", *COMPARED
    )


def _sides(records: DataFrame, prefix: str) -> DataFrame:
    return records.select(*[F.col(c).alias(f"{prefix}{c}") for c in records.columns])


def candidate_pairs(records: DataFrame, rules: Sequence[BlockingRule], *, max_block_size: int) -> tuple[DataFrame, DataFrame]:
    """(pairs, skipped blocks). Pairs: l_vid < r_vid in one region agreeing on all keys of a rule,
    one row per (pair, rule) with both sides' attributes."""
    if not rules:
        raise ValueError("at least one blocking rule is needed")
    pairs: DataFrame | None = None
    skipped: DataFrame | None = None
    for rule in rules:
        keys = [F.expr(key).alias(f"_k{i}") for i, key in enumerate(rule.keys)]
        key_names = [f"_k{i}" for i in range(len(keys))]
        keyed = records.select("vid", "region", *keys).where(
            F.expr(" AND ".join(f"{k} IS NOT NULL" for k in key_names))
        )
        sizes = keyed.groupBy("region", *key_names).agg(F.count("*").alias("block_size"))
        big = sizes.where(F.col("block_size") > max_block_size)
        small = keyed.join(big.select("region", *key_names), ["region", *key_names], "left_anti")
        left = small.select(F.col("vid").alias("l_vid"), "region", *key_names)
        right = small.select(F.col("vid").alias("r_vid"), "region", *key_names)
        found = (
            left.join(right, ["region", *key_names])
            .where(F.col("l_vid") < F.col("r_vid"))
            .select("l_vid", "r_vid", F.lit(rule.name).alias("rule"))
        )
        dropped = big.select("region", F.lit(rule.name).alias("rule"), F.col("block_size"))
        pairs = found if pairs is None else pairs.unionByName(found)
        skipped = dropped if skipped is None else skipped.unionByName(dropped)
    with_sides = pairs.join(_sides(records, "l_"), "l_vid").join(_sides(records.drop("region"), "r_"), "r_vid")
    return with_sides, skipped


def with_comparison_levels(pairs: DataFrame) -> DataFrame:
    return pairs.select(
        "l_vid", "r_vid", "rule", *[c.expression().alias(f"gamma_{c.name}") for c in COMPARISONS]
    )


def random_pairs(records: DataFrame, *, sample_records: int, pairs_per_region: int, seed: int) -> DataFrame:
    """About ``pairs_per_region`` random pairs per region (almost all non-matches): up to
    ``sample_records`` random records, each paired with the next k records of a random order."""
    # a hash of the content, not rand(): the sample (and so every probability) must not depend on
    # how the input happens to be split into partitions
    order = Window.partitionBy("region").orderBy(F.xxhash64(*[F.col(c) for c in COMPARED], F.lit(seed)), "vid")
    sample = (
        records.withColumn("_rank", F.row_number().over(order) - 1)
        .where(F.col("_rank") < sample_records)
        .withColumn("_n", F.count("*").over(Window.partitionBy("region")))
    )
    offsets = max(1, math.ceil(pairs_per_region / sample_records))
    left = sample.withColumn("_offset", F.explode(F.sequence(F.lit(1), F.least(F.lit(offsets), F.col("_n") - 1))))
    left = left.where(F.col("_n") > 1).withColumn("_partner", (F.col("_rank") + F.col("_offset")) % F.col("_n"))
    left = _sides(left.drop("_offset", "_n"), "l_")
    right = _sides(sample.drop("_n"), "r_")
    condition = (F.col("l_region") == F.col("r_region")) & (F.col("l__partner") == F.col("r__rank"))
    return left.join(right, condition).withColumn("rule", F.lit("random"))


def level_counts(gammas: DataFrame, *, by_rule: bool = False) -> pd.DataFrame:
    """Counts of each distinct comparison vector (a few hundred rows) on the driver."""
    columns = [f"gamma_{c.name}" for c in COMPARISONS]
    keys = ["rule", *columns] if by_rule else columns
    return gammas.groupBy(*keys).agg(F.count("*").alias("n")).toPandas()


def _frequencies(
    counts: pd.DataFrame, weights: np.ndarray, name: str, levels: int, *, prior: np.ndarray | None = None, strength: float = 0.0
) -> np.ndarray:
    """Weighted level frequencies, shrunk towards ``prior`` by ``strength`` pseudo-pairs (so that a
    handful of pairs cannot produce certainties); a tiny pseudo-count keeps every level possible."""
    gamma = counts[f"gamma_{name}"].to_numpy()
    present = gamma >= 0
    total = weights[present].sum()
    out = np.array([weights[gamma == level].sum() for level in range(levels)], dtype=float)
    if prior is not None and strength > 0:
        out = out + strength * prior
        total = total + strength
    return (out + 1e-3) / (total + 1e-3 * levels)


def prior_u() -> dict[str, np.ndarray]:
    """What random pairs look like before any data: mostly different, rarely equal."""
    out = {}
    for comparison in COMPARISONS:
        k = len(comparison.levels)
        prior = np.full(k, 0.04)
        prior[-1] = 0.01
        prior[0] = 1.0 - prior[1:].sum()
        out[comparison.name] = prior
    return out


def random_u(random_counts: pd.DataFrame, *, prior_pairs: float = 0.0) -> dict[str, np.ndarray]:
    """u probabilities: level frequencies among random pairs."""
    n = random_counts["n"].to_numpy(dtype=float) if len(random_counts) else np.zeros(0)
    prior = prior_u()
    return {
        c.name: _frequencies(random_counts, n, c.name, len(c.levels), prior=prior[c.name], strength=prior_pairs)
        for c in COMPARISONS
    }


def initial_m() -> dict[str, np.ndarray]:
    out = {}
    for comparison in COMPARISONS:
        k = len(comparison.levels)
        prior = np.full(k, 0.1 / max(k - 1, 1))
        prior[-1] = 0.9
        out[comparison.name] = prior / prior.sum()
    return out


def expectation_maximisation(
    counts: pd.DataFrame,
    *,
    u: dict[str, np.ndarray],
    rule: str = "all",
    fixed: frozenset[str] = frozenset(),
    m: dict[str, np.ndarray] | None = None,
    lam: float = 0.5,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
    prior_pairs: float = 0.0,
) -> FellegiSunterModel:
    """EM for m and the match share of a two-class mixture with conditionally independent
    comparisons, u fixed; on comparison-vector counts (columns ``gamma_*`` and ``n``).

    ``prior_pairs`` > 0 makes it a MAP estimate: m is shrunk towards its starting point and the
    match share towards one half by that many pseudo-pairs, which matters only for small inputs.
    """
    m = {k: v.copy() for k, v in (m or initial_m()).items()}
    start = {k: v.copy() for k, v in m.items()}
    n = counts["n"].to_numpy(dtype=float) if len(counts) else np.zeros(0)
    free = [c for c in COMPARISONS if c.name not in fixed]
    iteration = 0
    if n.sum() == 0:
        return FellegiSunterModel(rule, fixed, m, u, lam, 0, 0)
    gammas = {c.name: counts[f"gamma_{c.name}"].to_numpy().astype(int) for c in free}
    for iteration in range(1, max_iterations + 1):
        weight = np.zeros(len(n))
        for comparison in free:
            gamma = gammas[comparison.name]
            present = gamma >= 0
            weight[present] += np.log(m[comparison.name][gamma[present]]) - np.log(u[comparison.name][gamma[present]])
        odds = math.log(lam) - math.log1p(-lam) + weight
        posterior = 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))
        matched = n * posterior
        new_lam = float(np.clip((matched.sum() + prior_pairs / 2) / (n.sum() + prior_pairs), 1e-6, 1 - 1e-6))
        new_m = dict(m)
        for comparison in free:
            new_m[comparison.name] = _frequencies(
                counts, matched, comparison.name, len(comparison.levels), prior=start[comparison.name], strength=prior_pairs
            )
        change = abs(new_lam - lam) + max(float(np.abs(new_m[c.name] - m[c.name]).max()) for c in free)
        m, lam = new_m, new_lam
        if change < tolerance:
            break
    return FellegiSunterModel(rule, fixed, m, u, lam, iteration, int(n.sum()))


@dataclass(frozen=True)
class MatchResult:
    links: DataFrame  # src, dst (vids), rule, probability: accepted pairs (materialized)
    skipped_blocks: DataFrame
    models: tuple[FellegiSunterModel, ...]

    def model_rows(self, run_id: str) -> list[tuple]:
        return [row for model in self.models for row in model.rows(run_id)]


def probabilistic_links(records: DataFrame, settings: MatchingConfig) -> MatchResult:
    """Estimate one model per blocking rule on its candidate pairs and link pairs above the threshold.

    ``records`` needs vid, region and the compared attributes; callers should persist it.
    """
    if not settings.blocking_rules:
        log.info("Fellegi-Sunter: no blocking rule fits the mapped attributes; deterministic links only")
        spark = records.sparkSession
        return MatchResult(
            links=spark.createDataFrame([], "src long, dst long, rule string, probability double"),
            skipped_blocks=spark.createDataFrame([], "region string, rule string, block_size long"),
            models=(),
        )
    candidates = matchable(records)
    pairs, skipped = candidate_pairs(candidates, settings.blocking_rules, max_block_size=settings.max_block_size)
    gammas = with_comparison_levels(pairs).persist()
    sample = random_pairs(
        candidates, sample_records=settings.u_sample_records, pairs_per_region=settings.u_sample_pairs, seed=settings.seed
    )
    u = random_u(level_counts(with_comparison_levels(sample)), prior_pairs=settings.em_prior_pairs)
    counts = level_counts(gammas, by_rule=True)
    models = []
    for rule in settings.blocking_rules:
        model = expectation_maximisation(
            counts[counts["rule"] == rule.name],
            u=u,
            rule=rule.name,
            fixed=fixed_comparisons(rule),
            max_iterations=settings.em_max_iterations,
            tolerance=settings.em_tolerance,
            prior_pairs=settings.em_prior_pairs,
        )
        log.info(
            "Fellegi-Sunter %s: %d candidate pairs, EM %d iterations, match share %.4f (fixed: %s)",
            rule.name, model.candidate_pairs, model.iterations, model.lam, ", ".join(sorted(model.fixed)) or "none",
        )
        models.append(model)
    probability = evidence = None
    for model in models:
        is_rule = F.col("rule") == model.rule
        probability = F.when(is_rule, model.probability()) if probability is None else probability.when(is_rule, model.probability())
        evidence = F.when(is_rule, model.has_evidence()) if evidence is None else evidence.when(is_rule, model.has_evidence())
    # a pair with no supporting comparison scores its rule's prior: never enough for a link
    scored_all = gammas.withColumn("probability", probability).withColumn("evidence", evidence)
    best = Window.partitionBy("l_vid", "r_vid").orderBy(F.desc("evidence"), F.desc("probability"), "rule")
    scored = scored_all.withColumn("_rank", F.row_number().over(best)).where(F.col("_rank") == 1).drop("_rank")
    links = scored.where((F.col("probability") >= settings.threshold) & F.col("evidence")).select(
        F.col("l_vid").alias("src"), F.col("r_vid").alias("dst"), "rule", "probability"
    ).localCheckpoint(eager=True)
    skipped = skipped.localCheckpoint(eager=True)
    gammas.unpersist()
    return MatchResult(links=links, skipped_blocks=skipped, models=tuple(models))
