"""Probabilistic record linkage (Fellegi-Sunter) with parameters estimated by EM, no labels.

1. Candidate pairs: the union of several blocking rules (config), within a region. Each rule
   finds the records agreeing on all of its keys; together they catch what any single key misses
   (a typo in both names, swapped names, a move, a wrong date). Blocks larger than
   ``max_block_size`` are not all-paired: each of their records meets its ``neighbourhood``
   nearest by surname and by first name (a sorted neighbourhood), and they are reported; the
   pairs each rule generated, and how many of them no earlier rule had found, are counted. A
   pair found by several rules is compared once.
2. Comparison vectors: each pair gets a level per comparison (names, date of birth, address,
   email, phone, loyalty id, other ids), whatever rule found it: exact, fuzzy (Levenshtein and
   Damerau-Levenshtein distances, soundex, transposed day and month, one digit), different; -1
   when either side is null, which neither helps nor hurts.
3. u probabilities come from random record pairs (almost all non-matches). m probabilities are
   estimated by EM, one session per blocking rule over the comparisons that rule does not fix (as
   Splink does): a rule on surname and postcode makes every candidate agree on them, so letting
   them vote would make EM learn "same household" instead of "same person". Each comparison's m
   is the average over the sessions that estimated it, weighted by their expected matches. The
   pairs are reduced to counts per distinct comparison vector, so EM runs on the driver.
4. Scoring is one model for every pair: the prior is the probability that two random records of
   the region match (expected matching pairs among the candidates / all record pairs of the
   region), each comparison adds log(m/u) of its level, and exact agreement on a first name, a
   surname or a city is term-frequency adjusted (agreeing on a rare name is stronger evidence than
   on a common one). Pairs at or above the threshold become links carrying the first rule that
   found them and their probability.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import types as T

from customer360.config import BlockingRule, MatchingConfig

log = logging.getLogger(__name__)

#: attributes the comparisons read (a record needs a first or last name to be compared at all)
COMPARED = (
    "first_name", "last_name", "date_of_birth", "street", "postcode", "city", "email", "phone", "loyalty_id", "other_ids",
)
COMPARED_TYPES = {"date_of_birth": T.DateType(), "other_ids": T.MapType(T.StringType(), T.StringType())}
#: attributes whose exact agreement is term-frequency adjusted
TF_COLUMNS = ("first_name", "last_name", "city")

MODEL_SCHEMA = T.StructType(
    [
        T.StructField("blocking_rule", T.StringType(), False),  # a training session's rule, or "combined" (the scoring model)
        T.StructField("comparison", T.StringType(), False),
        T.StructField("level", T.IntegerType(), False),
        T.StructField("description", T.StringType(), False),
        T.StructField("m", T.DoubleType(), True),  # null: the rule fixes this comparison
        T.StructField("u", T.DoubleType(), False),
        T.StructField("match_weight", T.DoubleType(), True),  # log2(m/u)
        T.StructField("match_share", T.DoubleType(), False),  # a session: lambda of its candidate pairs; combined: of all record pairs
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
    build: Callable[[], Column]  # over l_*/r_* columns and ``pair_distances``: the level, -1 when nothing to compare
    #: (level, attribute): at that level, when both sides hold the same value of the attribute,
    #: the weight is term-frequency adjusted by that value's frequency
    tf: tuple[int, str] | None = None

    def expression(self) -> Column:
        return self.build()


def _l(name: str) -> Column:
    return F.col(f"l_{name}")


def _r(name: str) -> Column:
    return F.col(f"r_{name}")


def _null(name: str) -> Column:
    return _l(name).isNull() | _r(name).isNull()


def _same(name: str) -> Column:
    return F.coalesce(_l(name) == _r(name), F.lit(False))


def _transposed(left: str, right: str) -> Column:
    """``left`` becomes ``right`` by swapping two adjacent characters (Damerau's extra edit)."""
    return F.expr(
        f"length({left}) = length({right}) AND length({left}) >= 2 AND exists(sequence(1, length({left}) - 1), "
        f"i -> concat(substr({left}, 1, i - 1), substr({left}, i + 1, 1), substr({left}, i, 1), substr({left}, i + 2)) = {right})"
    )


#: Each pair's distances, computed once per pair: several levels of several comparisons read the
#: same distance, and a level is a CASE whose conditions Spark would otherwise evaluate one by one
#: (a pair of strangers goes through every condition). Name and identifier distances stop at the
#: largest that any level asks about (levenshtein's threshold: -1 beyond it), so two long different
#: strings cost little. ``(column, left attribute, right attribute, threshold or None)``.
DISTANCES = (
    ("_d_first_name", "first_name", "first_name", 2),
    ("_d_last_name", "last_name", "last_name", 2),
    ("_d_first_last", "first_name", "last_name", 2),  # swapped names with a typo
    ("_d_last_first", "last_name", "first_name", 2),
    ("_d_street", "street", "street", None),  # up to a fifth of the street's length
    ("_d_postcode", "postcode", "postcode", 2),
    ("_d_city", "city", "city", None),
    ("_d_email", "email", "email", 2),
    ("_d_phone", "phone", "phone", 2),
    ("_d_loyalty_id", "loyalty_id", "loyalty_id", 2),
)
#: a street's house number ("12 ", "12a "): the same street with the number left out on one side
#: is still the same street
HOUSE_NUMBER = r"^\s*[0-9]+[a-z]?\s+"


def pair_distances(pairs: DataFrame) -> DataFrame:
    """``pairs`` (``l_*``/``r_*`` attributes) with the distances the comparison levels read
    (``DISTANCES``, soundex agreement, the date's digits, the streets without house numbers)."""
    distances = [
        (F.levenshtein(_l(left), _r(right)) if limit is None else F.levenshtein(_l(left), _r(right), limit)).alias(name)
        for name, left, right, limit in DISTANCES
    ]
    digits = lambda side: F.date_format(F.col(f"{side}_date_of_birth"), "yyyyMMdd")  # noqa: E731
    return pairs.select(
        "*",
        *distances,
        (F.soundex(_l("first_name")) == F.soundex(_r("first_name"))).alias("_sx_first_name"),
        (F.soundex(_l("last_name")) == F.soundex(_r("last_name"))).alias("_sx_last_name"),
        F.levenshtein(digits("l"), digits("r"), 1).alias("_d_date_digits"),
        F.regexp_replace("l_street", HOUSE_NUMBER, "").alias("_l_bare_street"),
        F.regexp_replace("r_street", HOUSE_NUMBER, "").alias("_r_bare_street"),
    )


def _within(distance: str, edits: int) -> Column:
    """The distance is at most ``edits`` (a thresholded distance is -1 beyond its threshold)."""
    return F.coalesce((F.col(distance) >= 0) & (F.col(distance) <= edits), F.lit(False))


def _damerau_1(distance: str, left: str, right: str) -> Column:
    """Damerau-Levenshtein distance at most 1: one insertion, deletion, substitution or transposition."""
    return _within(distance, 1) | F.coalesce((F.col(distance) == 2) & _transposed(f"l_{left}", f"r_{right}"), F.lit(False))


def _name_level(name: str, other: str) -> Column:
    """First name or surname (``other`` the other one)."""
    left, right = _l(name), _r(name)
    swapped = F.coalesce((_l(name) == _r(other)) & (_l(other) == _r(name)), F.lit(False))
    # one name swapped with the other, one edit apart each way (the same for either comparison)
    swapped_fuzzy = _damerau_1("_d_first_last", "first_name", "last_name") & _damerau_1("_d_last_first", "last_name", "first_name")
    shortest = F.least(F.length(left), F.length(right))
    return (
        F.when(_null(name), -1)
        .when((left == right) | swapped, 3)
        .when(_damerau_1(f"_d_{name}", name, name) | (_within(f"_d_{name}", 2) & (shortest >= 8)) | swapped_fuzzy, 2)
        .when(F.col(f"_sx_{name}"), 1)
        .otherwise(0)
    )


def _date_level() -> Column:
    left, right = _l("date_of_birth"), _r("date_of_birth")
    transposed = (F.year(left) == F.year(right)) & (F.month(left) == F.dayofmonth(right)) & (
        F.dayofmonth(left) == F.month(right)
    )
    return F.when(_null("date_of_birth"), -1).when(left == right, 2).when(transposed | _within("_d_date_digits", 1), 1).otherwise(0)


def _identifier_level(name: str) -> Column:
    """Exact, one edit or transposition (a mistyped digit), different."""
    return F.when(_null(name), -1).when(_l(name) == _r(name), 2).when(_damerau_1(f"_d_{name}", name, name), 1).otherwise(0)


def _other_ids_level() -> Column:
    """The best agreement over the identifier kinds both records carry (exact, one edit, different);
    -1 when they share no kind."""
    return F.coalesce(
        F.expr(
            "array_max(filter(map_values(map_zip_with(l_other_ids, r_other_ids, (k, a, b) -> "
            "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN a = b THEN 2 WHEN levenshtein(a, b) <= 1 THEN 1 ELSE 0 END)), "
            "x -> x IS NOT NULL))"
        ),
        F.lit(-1),
    )


def _street_similar() -> Column:
    """Streets within a fifth of their length in edits, or the same street with the house number
    left out on one side ("beach place" and "15 beach place")."""
    longest = F.greatest(F.length("l_street"), F.length("r_street"))
    bare_l, bare_r = F.col("_l_bare_street"), F.col("_r_bare_street")
    one_unnumbered = (bare_l == F.col("l_street")) != (bare_r == F.col("r_street"))
    return F.coalesce(
        (F.col("_d_street") <= F.greatest(F.lit(1), F.floor(longest * 0.2))) | ((bare_l == bare_r) & one_unnumbered), F.lit(False)
    )


def _address_level() -> Column:
    """One comparison for street, postcode and city: they are strongly correlated, and counting
    them as three independent agreements would make any two people at one address a match.
    A postcode one edit away and a city within a fifth of its length in edits count as close."""
    nothing = lambda side: F.col(f"{side}_street").isNull() & F.col(f"{side}_postcode").isNull() & F.col(f"{side}_city").isNull()  # noqa: E731
    similar_street = _street_similar()
    close_postcode = _damerau_1("_d_postcode", "postcode", "postcode")
    longest_city = F.greatest(F.length("l_city"), F.length("r_city"))
    close_city = F.coalesce(F.col("_d_city") <= F.greatest(F.lit(1), F.floor(longest_city * 0.2)), F.lit(False))
    close_place = close_postcode | close_city
    return (
        F.when(nothing("l") | nothing("r"), -1)
        .when(_same("street") & _same("postcode"), 4)
        .when((similar_street & _same("postcode")) | (_same("street") & close_place), 3)
        .when(_same("postcode") | (similar_street & close_place), 2)
        .when(close_city | similar_street | close_postcode, 1)
        .otherwise(0)
    )


NAME_LEVELS = ("different", "sounds alike", "one edit or transposition (two in a name of 8 letters or more), or swapped with one", "exact or swapped")
ID_LEVELS = ("different", "one edit or transposition", "exact")
COMPARISONS: tuple[Comparison, ...] = (
    Comparison("first_name", ("first_name",), NAME_LEVELS, lambda: _name_level("first_name", "last_name"), tf=(3, "first_name")),
    Comparison("last_name", ("last_name",), NAME_LEVELS, lambda: _name_level("last_name", "first_name"), tf=(3, "last_name")),
    Comparison("date_of_birth", ("date_of_birth",), ("different", "one digit or day/month swapped", "exact"), _date_level),
    Comparison("address", ("street", "postcode", "city"),
               ("different", "close city, similar street or close postcode", "same postcode, or similar street and close city or postcode",
                "similar street and same postcode, or same street and close city or postcode", "same street and postcode"),
               _address_level,
               tf=(1, "city")),
    Comparison("email", ("email",), ID_LEVELS, lambda: _identifier_level("email")),
    Comparison("phone", ("phone",), ID_LEVELS, lambda: _identifier_level("phone")),
    Comparison("loyalty_id", ("loyalty_id",), ID_LEVELS, lambda: _identifier_level("loyalty_id")),
    Comparison("other_ids", ("other_ids",), ("different", "one edit", "exact"), _other_ids_level),
)
GAMMAS = tuple(f"gamma_{c.name}" for c in COMPARISONS)


def fixed_comparisons(rule: BlockingRule) -> frozenset[str]:
    """Comparisons whose attributes appear in the rule's keys: every candidate of the rule agrees
    on them, so they carry no evidence within the rule's pairs."""
    text = " ".join(rule.keys)
    return frozenset(
        c.name for c in COMPARISONS if any(re.search(rf"\b{re.escape(col)}\b", text) for col in c.columns)
    )


def _level_log_odds(counts: pd.DataFrame, m: dict[str, np.ndarray], u: dict[str, np.ndarray], comparisons) -> np.ndarray:
    """Sum of log(m/u) over ``comparisons`` for each comparison vector of ``counts``."""
    weight = np.zeros(len(counts))
    for comparison in comparisons:
        gamma = counts[f"gamma_{comparison.name}"].to_numpy().astype(int)
        present = gamma >= 0
        weight[present] += np.log(m[comparison.name][gamma[present]]) - np.log(u[comparison.name][gamma[present]])
    return weight


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class FellegiSunterModel:
    """One training session (a blocking rule's candidate pairs): m for the comparisons the rule does
    not fix, u from random pairs, the share of matches among the rule's pairs."""

    rule: str
    fixed: frozenset[str]
    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    lam: float
    iterations: int
    candidate_pairs: int

    def free(self) -> list[Comparison]:
        return [c for c in COMPARISONS if c.name not in self.fixed]

    def posterior(self, counts: pd.DataFrame) -> np.ndarray:
        """The session's match probability of each comparison vector (its fixed comparisons ignored)."""
        odds = _logit(self.lam) + _level_log_odds(counts, self.m, self.u, self.free())
        return 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))

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


@dataclass(frozen=True)
class MatchModel:
    """The scoring model: every comparison votes on every pair, whatever rule found it.

    ``priors``: per region, the probability that two random records of the region match.
    """

    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    priors: dict[str, float]
    candidate_pairs: int
    record_pairs: int
    household_surname_share: float = 0.3

    @property
    def match_share(self) -> float:
        return sum(self.priors.values()) / len(self.priors) if self.priors else 0.0

    def log_odds(self) -> Column:
        """Posterior log-odds over ``region``, the ``gamma_*`` columns and the ``tf_*`` frequencies."""
        prior = None
        for region, lam in sorted(self.priors.items()):
            is_region = F.col("region") == region
            prior = F.when(is_region, _logit(lam)) if prior is None else prior.when(is_region, _logit(lam))
        total = (prior.otherwise(_logit(1e-12)) if prior is not None else F.lit(_logit(1e-12)))
        # relatives share a surname and an address, rarely a first name: at the same street
        # (address level 3 or 4), without first names agreeing, a surname agreeing exactly or
        # within one edit is weighed against the household share (it cannot tell relatives apart)
        household = (F.col("gamma_address") >= 3) & (F.col("gamma_last_name") >= 2) & (F.col("gamma_first_name") < 2)
        for comparison in COMPARISONS:
            gamma = F.col(f"gamma_{comparison.name}")
            weight = None
            for level in range(len(comparison.levels)):
                m, u = self.m[comparison.name][level], self.u[comparison.name][level]
                value = F.lit(math.log(m / u))
                if comparison.name == "last_name" and level >= 2:
                    value = F.when(household, math.log(m / max(u, self.household_surname_share))).otherwise(value)
                weight = F.when(gamma == level, value) if weight is None else weight.when(gamma == level, value)
            total = total + weight.otherwise(0.0)
            if comparison.tf is not None:
                level, _ = comparison.tf
                frequency = F.col(f"tf_{comparison.name}")
                u_level = float(self.u[comparison.name][level])
                applies = (gamma == level) & (frequency > 0)
                if comparison.name == "last_name":
                    applies = applies & ~household  # at a shared address the household share replaces u
                # agreeing on a value 1 in 1,000 records hold is stronger evidence than the level's
                # average (u), on a value one in ten hold weaker
                total = total + F.when(applies, F.log(F.lit(u_level) / frequency)).otherwise(0.0)
        return total

    def probability(self) -> Column:
        return F.lit(1.0) / (F.lit(1.0) + F.exp(-self.log_odds()))

    def priors_text(self) -> str:
        """The priors for a log or report line: ``de 1 in 2,245, fr 1 in 1,644``."""
        return ", ".join(f"{region} 1 in {1 / lam:,.0f}" for region, lam in sorted(self.priors.items()) if lam > 0)

    def rows(self, run_id: str) -> list[tuple]:
        out = []
        for comparison in COMPARISONS:
            for level, description in enumerate(comparison.levels):
                m, u = float(self.m[comparison.name][level]), float(self.u[comparison.name][level])
                out.append(("combined", comparison.name, level, description, m, u, math.log2(m / u), self.match_share,
                            0, self.candidate_pairs, run_id))
        return out


def compared_columns(records: DataFrame) -> list[Column]:
    """The compared attributes as matching reads them: the input's column, or null where it has none."""
    return [
        F.col(c) if c in records.columns else F.lit(None).cast(COMPARED_TYPES.get(c, T.StringType())).alias(c)
        for c in COMPARED
    ]


def matchable(records: DataFrame) -> DataFrame:
    """Records that can be compared: a first or a last name. Compared attributes the input does
    not have are null."""
    return records.where(F.col("first_name").isNotNull() | F.col("last_name").isNotNull()).select(
        "vid", "region", *compared_columns(records)
    )


def with_term_frequencies(records: DataFrame, columns: Sequence[str] = TF_COLUMNS) -> DataFrame:
    """``tf_<column>``: the share of the region's records (with a value) holding this record's value."""
    out = records
    for column in columns:
        counts = records.where(F.col(column).isNotNull()).groupBy("region", column).agg(F.count("*").alias("_n"))
        totals = counts.groupBy("region").agg(F.sum("_n").alias("_total"))
        frequencies = counts.join(totals, "region").select("region", column, (F.col("_n") / F.col("_total")).alias(f"tf_{column}"))
        out = out.join(frequencies, ["region", column], "left")
    return out


def prefixed(records: DataFrame, prefix: str) -> DataFrame:
    """Every column renamed ``<prefix><column>`` (one side of a pair)."""
    return records.select(*[F.col(c).alias(f"{prefix}{c}") for c in records.columns])


#: the rule label of pairs a sorted neighbourhood found (``postcode:neighbours``): counted and
#: scored like any, but no EM session trains on them (neighbours by name are no sample of the block)
NEIGHBOURS = ":neighbours"
#: the orders of a sorted neighbourhood (a block over the cap): by surname, and by first name, so a
#: typo in one name still sorts a duplicate beside its original by the other
NEIGHBOURHOOD_ORDERS = (("last_name", "first_name", "date_of_birth"), ("first_name", "last_name", "date_of_birth"))
NEIGHBOURHOOD_COLUMNS = tuple(dict.fromkeys(c for order in NEIGHBOURHOOD_ORDERS for c in order))


def _neighbour_pairs(large: DataFrame, window: int) -> DataFrame:
    """Pairs within blocks over the cap: in each of ``NEIGHBOURHOOD_ORDERS``, every record with the
    ``window`` records after it (n * window pairs a block and order, not n * n / 2). Records are
    numbered in order and bucketed by ``window``; a record meets its own bucket and the next one,
    an equi-join, so no block's all-pairs is ever built."""
    out = None
    for order in NEIGHBOURHOOD_ORDERS:
        ranked = large.withColumn(
            "_rn", F.row_number().over(Window.partitionBy("region", "rule", "key").orderBy(*[F.asc_nulls_last(c) for c in order], "vid"))
        ).withColumn("_bucket", F.floor((F.col("_rn") - 1) / window))
        left = ranked.select(F.col("vid").alias("_a"), "region", "rule", "key", F.col("_rn").alias("_a_rn"), "_bucket")
        right = ranked.select(
            F.col("vid").alias("_b"), "region", "rule", "key", F.col("_rn").alias("_b_rn"),
            F.explode(F.array(F.col("_bucket"), F.col("_bucket") - 1)).alias("_bucket"),
        )
        pairs = (
            left.join(right, ["region", "rule", "key", "_bucket"])
            .where((F.col("_b_rn") > F.col("_a_rn")) & (F.col("_b_rn") - F.col("_a_rn") <= window))
            .select(F.least("_a", "_b").alias("l_vid"), F.greatest("_a", "_b").alias("r_vid"),
                    F.concat("rule", F.lit(NEIGHBOURS)).alias("rule"))
        )
        out = pairs if out is None else out.unionByName(pairs)
    return out.distinct()


def candidate_pairs(
    records: DataFrame, rules: Sequence[BlockingRule], *, max_block_size: int, neighbourhood: int = 0
) -> tuple[DataFrame, DataFrame]:
    """(pairs, large blocks). Pairs: ``l_vid`` < ``r_vid`` in one region agreeing on all keys of
    a rule, one row per (pair, rule). Large blocks: region, rule, block_size of each block over the
    cap; its records are paired as a sorted neighbourhood (each with its ``neighbourhood`` nearest
    by name, in two orders), or not at all when ``neighbourhood`` is 0.

    Every rule's blocks come from one pass: each record gets one (rule, key) row per rule whose
    keys it has (the key values as JSON, so different keys never collide), and one self-join on
    (region, rule, key) pairs them all, instead of a join per rule. Those keyed rows are
    materialized (a local checkpoint): the small blocks' pairs, the large blocks' neighbourhoods
    and the large blocks' report all read them."""
    if not rules:
        raise ValueError("at least one blocking rule is needed")
    entries = []
    for rule in rules:
        keys = [F.expr(key) for key in rule.keys]
        present = F.lit(True)
        for key in keys:
            present = present & key.isNotNull()
        as_json = F.to_json(F.struct(*[key.alias(f"k{i}") for i, key in enumerate(keys)]))
        entries.append(F.when(present, F.struct(F.lit(rule.name).alias("rule"), as_json.alias("key"))))
    order_columns = [c for c in NEIGHBOURHOOD_COLUMNS if c in records.columns]
    keyed = (
        records.select("vid", "region", *order_columns, F.explode(F.array(*entries)).alias("_b"))
        .where(F.col("_b").isNotNull())
        .select("vid", "region", "_b.rule", "_b.key", *order_columns)
        .withColumn("block_size", F.count("*").over(Window.partitionBy("region", "rule", "key")))
        .localCheckpoint(eager=True)
    )
    small = keyed.where(F.col("block_size") <= max_block_size).drop("block_size")
    pairs = (
        small.select(F.col("vid").alias("l_vid"), "region", "rule", "key")
        .join(small.select(F.col("vid").alias("r_vid"), "region", "rule", "key"), ["region", "rule", "key"])
        .where(F.col("l_vid") < F.col("r_vid"))
        .select("l_vid", "r_vid", "rule")
    )
    large = keyed.where(F.col("block_size") > max_block_size)
    if neighbourhood > 0:
        if len(order_columns) != len(NEIGHBOURHOOD_COLUMNS):
            raise ValueError(f"a sorted neighbourhood needs the columns {list(NEIGHBOURHOOD_COLUMNS)}")
        if not large.isEmpty():  # keyed is materialized: a look, not a recomputation
            pairs = pairs.unionByName(_neighbour_pairs(large, neighbourhood))
    return pairs, large.select("region", "rule", "key", "block_size").distinct().drop("key")


def rule_labels(rules: Sequence[BlockingRule]) -> list[str]:
    """The labels a pair's rule can have, in precedence: the rules, then their sorted neighbourhoods."""
    return [rule.name for rule in rules] + [rule.name + NEIGHBOURS for rule in rules]


def distinct_pairs(found: DataFrame, records: DataFrame, rules: Sequence[BlockingRule]) -> DataFrame:
    """One row per pair however many rules found it, with both sides' attributes: ``rule`` is the
    first rule (in configured order) that found it, ``rules`` all of them."""
    names = F.array(*[F.lit(name) for name in rule_labels(rules)])
    unique = found.groupBy("l_vid", "r_vid").agg(
        F.min(F.array_position(names, F.col("rule"))).alias("_first"), F.array_sort(F.collect_set("rule")).alias("rules")
    )
    unique = unique.select("l_vid", "r_vid", F.element_at(names, F.col("_first").cast("int")).alias("rule"), "rules")
    return unique.join(prefixed(records, "l_"), "l_vid").join(prefixed(records.drop("region"), "r_"), "r_vid")


def with_comparison_levels(pairs: DataFrame) -> DataFrame:
    """``gamma_*`` per comparison and ``tf_*`` (the agreed value's frequency, where the comparison
    is term-frequency adjusted and both sides hold the same value) for each pair."""
    extra = [c for c in ("region", "rules") if c in pairs.columns]
    if "region" not in extra and "l_region" in pairs.columns:
        extra.append("l_region")
    frequencies = []
    for comparison in COMPARISONS:
        if comparison.tf is None:
            continue
        column = comparison.tf[1]
        if f"l_tf_{column}" in pairs.columns:
            frequency = F.when(_same(column), F.col(f"l_tf_{column}"))
        else:
            frequency = F.lit(None).cast("double")
        frequencies.append(frequency.alias(f"tf_{comparison.name}"))
    out = pair_distances(pairs).select(
        "l_vid", "r_vid", "rule", *extra, *[c.expression().alias(f"gamma_{c.name}") for c in COMPARISONS], *frequencies
    )
    return out.withColumnRenamed("l_region", "region") if "l_region" in extra else out


def random_pairs(records: DataFrame, *, sample_records: int, pairs_per_region: int, seed: int) -> DataFrame:
    """About ``pairs_per_region`` random pairs per region (almost all non-matches): up to
    ``sample_records`` random records, each paired with the next k records of a random order."""
    # a hash of the content, not rand(): the sample (and so every probability) must not depend on
    # how the input happens to be split into partitions (maps cannot be hashed: other ids left out)
    hashed = [F.col(c) for c in COMPARED if c in records.columns and c != "other_ids"]
    order = Window.partitionBy("region").orderBy(F.xxhash64(*hashed, F.lit(seed)), "vid")
    sample = (
        records.withColumn("_rank", F.row_number().over(order) - 1)
        .where(F.col("_rank") < sample_records)
        .withColumn("_n", F.count("*").over(Window.partitionBy("region")))
    )
    offsets = max(1, math.ceil(pairs_per_region / sample_records))
    left = sample.withColumn("_offset", F.explode(F.sequence(F.lit(1), F.least(F.lit(offsets), F.col("_n") - 1))))
    left = left.where(F.col("_n") > 1).withColumn("_partner", (F.col("_rank") + F.col("_offset")) % F.col("_n"))
    left = prefixed(left.drop("_offset", "_n"), "l_")
    right = prefixed(sample.drop("_n"), "r_")
    condition = (F.col("l_region") == F.col("r_region")) & (F.col("l__partner") == F.col("r__rank"))
    return left.join(right, condition).withColumn("rule", F.lit("random"))


def level_counts(gammas: DataFrame, *, by: Sequence[str] = ()) -> pd.DataFrame:
    """Counts of each distinct comparison vector (a few hundred rows) on the driver, per ``by``."""
    return gammas.groupBy(*by, *GAMMAS).agg(F.count("*").alias("n")).toPandas()


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
    for iteration in range(1, max_iterations + 1):
        odds = math.log(lam) - math.log1p(-lam) + _level_log_odds(counts, m, u, free)
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


def combined_m(sessions: Sequence[FellegiSunterModel]) -> dict[str, np.ndarray]:
    """Each comparison's m: the average of the sessions that estimated it (did not fix it),
    weighted by their expected matches; the starting guess where none did."""
    out = initial_m()
    for comparison in COMPARISONS:
        estimates = [(s.lam * s.candidate_pairs, s.m[comparison.name]) for s in sessions
                     if comparison.name not in s.fixed and s.candidate_pairs > 0]
        total = sum(w for w, _ in estimates)
        if total > 0:
            out[comparison.name] = sum(w * m for w, m in estimates) / total
        else:
            log.warning("Fellegi-Sunter: every blocking rule fixes %s; its m stays at the starting guess", comparison.name)
    return out


def random_match_priors(
    first_rule_counts: pd.DataFrame, sessions: Sequence[FellegiSunterModel], record_pairs: dict[str, int]
) -> dict[str, float]:
    """Per region, the probability that two random records match: the matches expected among the
    candidate pairs (each pair scored by the session of the first rule that found it) over all
    record pairs of the region."""
    by_rule = {s.rule: s for s in sessions}
    priors = {}
    for region, pairs in record_pairs.items():
        rows = first_rule_counts[first_rule_counts["region"] == region]
        expected = 0.0
        for rule, group in rows.groupby("rule"):
            session = by_rule[rule.removesuffix(NEIGHBOURS)]  # a neighbourhood's pairs: by its rule's session
            expected += float((group["n"].to_numpy(dtype=float) * session.posterior(group)).sum())
        if pairs > 0:
            # at least one expected match: a region whose candidates all look different still
            # gets a prior a strong pair can overcome
            priors[region] = min(max(expected, 1.0) / pairs, 0.5)
    return priors


@dataclass(frozen=True)
class RulePairs:
    rule: str
    generated: int  # pairs the rule produced
    new: int  # of those, pairs no earlier rule (in configured order) had produced


@dataclass(frozen=True)
class MatchResult:
    links: DataFrame  # src, dst (vids), rule, probability: accepted pairs (materialized)
    large_blocks: DataFrame  # region, rule, block_size of each block over max_block_size
    models: tuple[FellegiSunterModel, ...]  # the training sessions, one per blocking rule
    model: MatchModel | None = None  # the scoring model
    pairs: tuple[RulePairs, ...] = ()
    neighbourhood: int = 0  # how the blocks over the cap were paired (0: skipped)

    def model_rows(self, run_id: str) -> list[tuple]:
        rows = [row for model in self.models for row in model.rows(run_id)]
        return rows + (self.model.rows(run_id) if self.model is not None else [])


def probabilistic_links(records: DataFrame, settings: MatchingConfig) -> MatchResult:
    """Train one session per blocking rule, score every candidate pair with the combined model and
    link pairs at or above the threshold.

    ``records`` needs vid, region and the compared attributes; callers should persist it.
    """
    spark = records.sparkSession
    if not settings.blocking_rules:
        log.info("Fellegi-Sunter: no blocking rule fits the mapped attributes; deterministic links only")
        return MatchResult(
            links=spark.createDataFrame([], "src long, dst long, rule string, probability double"),
            large_blocks=spark.createDataFrame([], "region string, rule string, block_size long"),
            models=(),
        )
    # clear personal data: a local checkpoint (executor storage, gone with the session), never files
    candidates = with_term_frequencies(matchable(records)).localCheckpoint(eager=True)
    found, large = candidate_pairs(
        candidates, settings.blocking_rules, max_block_size=settings.max_block_size, neighbourhood=settings.neighbourhood
    )
    gammas = with_comparison_levels(distinct_pairs(found, candidates, settings.blocking_rules)).persist()
    sample = random_pairs(
        candidates, sample_records=settings.u_sample_records, pairs_per_region=settings.u_sample_pairs, seed=settings.seed
    )
    u = random_u(
        level_counts(with_comparison_levels(sample)).sort_values(list(GAMMAS), kind="stable").reset_index(drop=True),
        prior_pairs=settings.em_prior_pairs,
    )
    # one aggregation serves all: each (region, first rule, rules that found it, comparison vector)
    first_rule = level_counts(gammas, by=["region", "rule", "rules"])
    first_rule["rules"] = first_rule["rules"].map(list)
    # a fixed row order (Spark returns groups in any order): EM's sums, and so every estimate, come
    # out bit for bit the same on every run of the same input
    first_rule = (
        first_rule.assign(_order=first_rule["rules"].map(",".join))
        .sort_values(["region", "rule", "_order", *GAMMAS], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    by_rule = first_rule.drop(columns=["rule"]).explode("rules").rename(columns={"rules": "rule"})
    generated = by_rule.groupby("rule")["n"].sum().to_dict()  # a pair once per rule that found it
    new = first_rule.groupby("rule")["n"].sum().to_dict()
    pair_counts = tuple(
        RulePairs(name, int(generated.get(name, 0)), int(new.get(name, 0)))
        for name in rule_labels(settings.blocking_rules)
        if not name.endswith(NEIGHBOURS) or generated.get(name)
    )
    sessions = []
    for rule in settings.blocking_rules:
        model = expectation_maximisation(
            by_rule[by_rule["rule"] == rule.name],
            u=u,
            rule=rule.name,
            fixed=fixed_comparisons(rule),
            max_iterations=settings.em_max_iterations,
            tolerance=settings.em_tolerance,
            prior_pairs=settings.em_prior_pairs,
        )
        log.info(
            "Fellegi-Sunter session %s: %d candidate pairs, EM %d iterations, match share %.4f (fixed: %s)",
            rule.name, model.candidate_pairs, model.iterations, model.lam, ", ".join(sorted(model.fixed)) or "none",
        )
        sessions.append(model)
    sizes = {r["region"]: int(r["count"]) for r in candidates.groupBy("region").count().collect()}
    record_pairs = {region: n * (n - 1) // 2 for region, n in sizes.items()}
    scoring = MatchModel(
        m=combined_m(sessions),
        u=u,
        priors=random_match_priors(first_rule, sessions, record_pairs),
        candidate_pairs=int(first_rule["n"].sum()) if len(first_rule) else 0,
        record_pairs=sum(record_pairs.values()),
        household_surname_share=settings.household_surname_share,
    )
    log.info(
        "Fellegi-Sunter: %d distinct candidate pairs of %d record pairs; prior of a random pair matching: %s",
        scoring.candidate_pairs, scoring.record_pairs, scoring.priors_text(),
    )
    links = (
        gammas.select(F.col("l_vid").alias("src"), F.col("r_vid").alias("dst"), "rule", scoring.probability().alias("probability"))
        .where(F.col("probability") >= settings.threshold)
        .localCheckpoint(eager=True)
    )
    large = large.localCheckpoint(eager=True)
    gammas.unpersist()
    candidates.unpersist()
    return MatchResult(
        links=links, large_blocks=large, models=tuple(sessions), model=scoring, pairs=pair_counts,
        neighbourhood=settings.neighbourhood,
    )
