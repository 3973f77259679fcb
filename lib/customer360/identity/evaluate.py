"""Evaluation of a resolution against ground truth, without enumerating pairs.

For records in both ``xref`` and ``truth``: predicted pairs are sum C(n,2) over customers, true
pairs sum C(n,2) over persons, and true positives sum C(n,2) over (customer, person) cells.
A person is over-merged when one of its customers also holds another person's records, and
under-merged when its records are spread over more than one customer.

Cluster metrics: B-cubed precision is the mean over records of the share of its customer's records
that are its person's (sum n_cp^2 / n_c over cells, over N); B-cubed recall the mean share of its
person's records in its customer (sum n_cp^2 / n_p, over N). A person is resolved exactly when one
customer holds all of its records and nothing else.

``worst_errors`` names the customers holding most wrong pairs and the persons missing most pairs,
each with one record pair to look at; ``explain_pairs`` gives such pairs' comparison levels and the
blocking rules that would make them candidates (levels only: no personal value is shown).
"""
from __future__ import annotations

from dataclasses import dataclass

import pyspark.sql.functions as F
from pyspark.sql import DataFrame
from pyspark.sql import types as T

KEY = ("source", "source_record_id")


@dataclass(frozen=True)
class Evaluation:
    records: int
    records_without_truth: int
    truth_records_unresolved: int
    persons: int
    customers: int
    predicted_pairs: int
    true_pairs: int
    true_positive_pairs: int
    over_merged_persons: int
    under_merged_persons: int
    b_cubed_precision: float = 1.0
    b_cubed_recall: float = 1.0
    exact_persons: int = 0

    @property
    def precision(self) -> float:
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def b_cubed_f1(self) -> float:
        p, r = self.b_cubed_precision, self.b_cubed_recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def lines(self) -> list[str]:
        return [
            f"records evaluated      {self.records:>12,}  (not in truth: {self.records_without_truth:,}; "
            f"truth records of these sources with no identity record: {self.truth_records_unresolved:,}, "
            f"e.g. anonymous web events)",
            f"persons / customers    {self.persons:>12,} / {self.customers:,}",
            f"pairwise precision     {self.precision:>12.4f}",
            f"pairwise recall        {self.recall:>12.4f}",
            f"pairwise F1            {self.f1:>12.4f}",
            f"over-merged persons    {self.over_merged_persons:>12,}",
            f"under-merged persons   {self.under_merged_persons:>12,}",
            f"B-cubed precision      {self.b_cubed_precision:>12.4f}",
            f"B-cubed recall         {self.b_cubed_recall:>12.4f}",
            f"B-cubed F1             {self.b_cubed_f1:>12.4f}",
            f"persons exactly resolved {self.exact_persons:>10,}  (one customer holding all their records and no one else's)",
        ]


def _pairs(column: F.Column) -> F.Column:
    return F.sum(column * (column - 1) / 2).cast("long")


def evaluate(xref: DataFrame, truth: DataFrame, *, restrict_truth_to_sources: bool = True) -> Evaluation:
    """``xref``: source, source_record_id, customer_id. ``truth``: source, source_record_id, person_id.

    With ``restrict_truth_to_sources`` only truth rows of sources present in ``xref`` count as
    unresolved (sources that carry no identity, like anonymous web events, are not expected).
    """
    predicted = xref.select(*KEY, "customer_id")
    actual = truth.select(*KEY, "person_id")
    joined = predicted.join(actual, list(KEY)).persist()
    try:
        cells = joined.groupBy("customer_id", "person_id").agg(F.count("*").alias("n"))
        by_customer = cells.groupBy("customer_id").agg(F.sum("n").alias("n"), F.count("*").alias("persons"))
        by_person = cells.groupBy("person_id").agg(F.sum("n").alias("n"), F.count("*").alias("customers"))
        tp = cells.agg(_pairs(F.col("n"))).first()[0] or 0
        c = by_customer.agg(_pairs(F.col("n")), F.count("*")).first()
        p = by_person.agg(_pairs(F.col("n")), F.count("*"), F.sum((F.col("customers") > 1).cast("long"))).first()
        mixed = by_customer.where(F.col("persons") > 1).select("customer_id")
        over = cells.join(mixed, "customer_id").select("person_id").distinct().count()
        sizes = cells.join(by_customer.select("customer_id", F.col("n").alias("n_c")), "customer_id").join(
            by_person.select("person_id", F.col("n").alias("n_p"), F.col("customers").alias("person_customers")), "person_id"
        )
        b3 = sizes.agg(
            F.sum(F.col("n") * F.col("n") / F.col("n_c")),
            F.sum(F.col("n") * F.col("n") / F.col("n_p")),
            F.sum(((F.col("n") == F.col("n_c")) & (F.col("n") == F.col("n_p"))).cast("long")),
        ).first()
        records = joined.count()
        without_truth = predicted.join(actual, list(KEY), "left_anti").count()
        expected = actual
        if restrict_truth_to_sources:
            expected = actual.join(predicted.select("source").distinct(), "source", "left_semi")
        unresolved = expected.join(predicted, list(KEY), "left_anti").count()
    finally:
        joined.unpersist()
    return Evaluation(
        records=records,
        records_without_truth=without_truth,
        truth_records_unresolved=unresolved,
        persons=int(p[1]),
        customers=int(c[1]),
        predicted_pairs=int(c[0] or 0),
        true_pairs=int(p[0] or 0),
        true_positive_pairs=int(tp),
        over_merged_persons=int(over),
        under_merged_persons=int(p[2] or 0),
        b_cubed_precision=float(b3[0]) / records if records else 1.0,
        b_cubed_recall=float(b3[1]) / records if records else 1.0,
        exact_persons=int(b3[2] or 0),
    )


# --- the worst errors, and why ------------------------------------------------------------------

RecordKey = tuple[str, str]  # (source, source_record_id)


@dataclass(frozen=True)
class RecordPair:
    left: RecordKey
    right: RecordKey
    link: str | None = None  # how they were joined ("probabilistic:postcode p=0.9931"); None for a miss


@dataclass(frozen=True)
class FalseMerge:
    customer_id: str
    persons: int
    records: int
    wrong_pairs: int  # pairs of records of different persons in this customer
    example: RecordPair | None


@dataclass(frozen=True)
class Miss:
    person_id: str
    customers: int
    records: int
    missed_pairs: int  # pairs of this person's records in different customers
    example: RecordPair | None


#: a catastrophic over-merge could put half the data in one customer: examples come from this many rows
_EXAMPLE_ROWS = 10_000


def worst_errors(
    xref: DataFrame, truth: DataFrame, *, links: DataFrame | None = None, limit: int = 5
) -> tuple[list[FalseMerge], list[Miss]]:
    """The ``limit`` customers with the most wrong pairs and persons with the most missed pairs.

    A false merge's example is the link between two of its persons' records with the highest
    probability (``links``: ``silver.identity_graph``), else any such pair; a miss's example pairs
    the first records of its two largest pieces."""
    joined = xref.select(*KEY, "customer_id").join(truth.select(*KEY, "person_id"), list(KEY))
    cells = joined.groupBy("customer_id", "person_id").agg(F.count("*").alias("n"))
    def worst(by: str, spread: str, lost: str) -> list:
        """Groups of ``by`` spread over more than one ``spread``, by the pairs split between them."""
        pairs = lambda c: c * (c - 1) / 2  # noqa: E731
        return (
            cells.groupBy(by)
            .agg(F.sum("n").alias("records"), F.count("*").alias(spread), F.sum(pairs(F.col("n"))).alias("same"))
            .where(F.col(spread) > 1)
            .withColumn(lost, (pairs(F.col("records")) - F.col("same")).cast("long"))
            .orderBy(F.desc(lost), by)
            .limit(limit)
            .collect()
        )

    merges = worst("customer_id", "persons", "wrong")
    misses = worst("person_id", "customers", "missed")
    customers = [r["customer_id"] for r in merges]
    persons = [r["person_id"] for r in misses]
    rows = (
        joined.where(F.col("customer_id").isin(customers) | F.col("person_id").isin(persons))
        .orderBy(*KEY).limit(_EXAMPLE_ROWS).collect()
    ) if customers or persons else []
    person_of = {(r["source"], r["source_record_id"]): r["person_id"] for r in rows}
    cross_links: dict[str, tuple[float, RecordPair]] = {}
    if links is not None and customers:
        customer_of = {(r["source"], r["source_record_id"]): r["customer_id"] for r in rows if r["customer_id"] in customers}
        keys = joined.sparkSession.createDataFrame(list(customer_of), "src_source string, src_record_id string")
        for link in links.join(keys, ["src_source", "src_record_id"]).collect():
            left, right = (link["src_source"], link["src_record_id"]), (link["dst_source"], link["dst_record_id"])
            if right not in customer_of or person_of.get(left) == person_of.get(right):
                continue
            probability = float(link["probability"] if link["probability"] is not None else 1.0)
            described = f"{link['link_type']}:{link['rule']} p={probability:.4f}"
            best = cross_links.get(customer_of[left])
            if best is None or probability > best[0]:
                cross_links[customer_of[left]] = (probability, RecordPair(left, right, described))
    false_merges = []
    for r in merges:
        example = cross_links.get(r["customer_id"], (0.0, None))[1]
        if example is None:  # merged through a chain (or no links given): any two of its persons' first records
            first_by_person: dict[str, RecordKey] = {}
            for row in rows:
                if row["customer_id"] == r["customer_id"]:
                    first_by_person.setdefault(row["person_id"], (row["source"], row["source_record_id"]))
            firsts = sorted(first_by_person.values())
            example = RecordPair(firsts[0], firsts[1]) if len(firsts) > 1 else None
        false_merges.append(FalseMerge(r["customer_id"], int(r["persons"]), int(r["records"]), int(r["wrong"]), example))
    missed = []
    for r in misses:
        pieces: dict[str, list[RecordKey]] = {}
        for row in rows:
            if row["person_id"] == r["person_id"]:
                pieces.setdefault(row["customer_id"], []).append((row["source"], row["source_record_id"]))
        largest = sorted(pieces.values(), key=lambda keys: (-len(keys), min(keys)))
        example = RecordPair(min(largest[0]), min(largest[1])) if len(largest) > 1 else None
        missed.append(Miss(r["person_id"], int(r["customers"]), int(r["records"]), int(r["missed"]), example))
    return false_merges, missed


def explain_pairs(pairs: list[RecordPair], records: DataFrame, rules) -> list[dict]:
    """For each pair: its comparison levels (-1 where a side lacks the attribute) and the blocking
    rules whose keys both records share (the rules that make it a candidate pair).

    ``records``: source, source_record_id, region and the compared attributes in clear
    (standardized) form. Returns dicts ``pair``, ``levels`` (None when a record is missing) and
    ``candidate_under``."""
    from customer360.identity.matching import COMPARISONS, compared_columns, pair_distances, prefixed

    if not pairs:
        return []
    spark = records.sparkSession
    wanted = spark.createDataFrame(
        [(i, *p.left, *p.right) for i, p in enumerate(pairs)], "i int, ls string, lid string, rs string, rid string"
    )
    # the compared attributes as matching reads them (missing ones null), then each rule's keys
    side = records.select("source", "source_record_id", "region", *compared_columns(records))
    side = side.select("*", *[F.expr(key).alias(f"k{i}_{j}") for i, rule in enumerate(rules) for j, key in enumerate(rule.keys)])
    frame = wanted.join(
        prefixed(side, "l_"), (F.col("ls") == F.col("l_source")) & (F.col("lid") == F.col("l_source_record_id"))
    ).join(
        prefixed(side, "r_"), (F.col("rs") == F.col("r_source")) & (F.col("rid") == F.col("r_source_record_id")),
    )
    blocked = [
        F.coalesce(
            (F.col("l_region") == F.col("r_region"))
            & F.expr(" AND ".join(f"(l_k{i}_{j} = r_k{i}_{j})" for j in range(len(rule.keys)))),
            F.lit(False),
        )
        for i, rule in enumerate(rules)
    ]
    under = F.filter(F.array(*[F.when(b, F.lit(rule.name)) for b, rule in zip(blocked, rules)]), lambda x: x.isNotNull()) if rules else F.array()
    found = {
        r["i"]: r
        for r in pair_distances(frame).select("i", under.alias("under"), *[c.expression().alias(f"gamma_{c.name}") for c in COMPARISONS]).collect()
    }
    return [
        {
            "pair": pair,
            "levels": {c.name: found[i][f"gamma_{c.name}"] for c in COMPARISONS} if i in found else None,
            "candidate_under": list(found[i]["under"]) if i in found else [],
        }
        for i, pair in enumerate(pairs)
    ]


def detokenized(identity_records: DataFrame, vault: DataFrame, keys: list[RecordKey]) -> DataFrame:
    """The standardized clear attributes of a few records (``keys``), from ``silver.identity_records``
    (tokens) and ``silver.pii_vault``: for explaining errors on a lakehouse whose truth is known."""
    from datetime import date

    from customer360.config import PII_ATTRIBUTES

    spark = identity_records.sparkSession
    schema = T.StructType(
        [T.StructField("source", T.StringType()), T.StructField("source_record_id", T.StringType()), T.StructField("region", T.StringType())]
        + [T.StructField(a, T.DateType() if a == "date_of_birth" else T.StringType()) for a in PII_ATTRIBUTES]
        + [T.StructField("other_ids", T.MapType(T.StringType(), T.StringType()))]
    )
    if not keys:
        return spark.createDataFrame([], schema)
    wanted = spark.createDataFrame(sorted(set(keys)), "source string, source_record_id string")
    rows = identity_records.join(wanted, list(KEY)).collect()
    tokens = {r[a] for r in rows for a in PII_ATTRIBUTES if r[a]} | {t for r in rows for t in (r["other_ids"] or {}).values() if t}
    values = dict(vault.where(F.col("token").isin(sorted(tokens))).select("token", "value").distinct().collect()) if tokens else {}

    def clear(row, attribute):
        value = values.get(row[attribute]) if row[attribute] else None
        return date.fromisoformat(value) if attribute == "date_of_birth" and value else value

    out = [
        (
            r["source"], r["source_record_id"], r["region"], *[clear(r, a) for a in PII_ATTRIBUTES],
            {k: values[t].split(":", 1)[1] for k, t in (r["other_ids"] or {}).items() if t in values} or None,
        )
        for r in rows
    ]
    return spark.createDataFrame(out, schema)


def error_lines(merges: list[FalseMerge], misses: list[Miss], explained: dict[RecordPair, dict]) -> list[str]:
    """The worst errors as report lines: ids, counts, comparison levels and rules; no personal value."""

    def pair_text(pair: RecordPair | None) -> str:
        if pair is None:
            return "no example pair"
        text = f"{pair.left[0]}/{pair.left[1]} + {pair.right[0]}/{pair.right[1]}"
        if pair.link:
            text += f" via {pair.link}"
        why = explained.get(pair)
        if why and why["levels"] is not None:
            text += "; levels " + ", ".join(f"{name} {level}" for name, level in why["levels"].items())
            text += "; shares the keys of " + (", ".join(why["candidate_under"]) or "no blocking rule")
        return text

    lines = [f"worst false merges ({len(merges)}): customer, persons, records, wrong pairs; the link between two persons"]
    lines += [f"  {m.customer_id}: {m.persons} persons, {m.records:,} records, {m.wrong_pairs:,} wrong pairs; {pair_text(m.example)}" for m in merges]
    lines.append(f"worst misses ({len(misses)}): person, customers, records, missed pairs; one pair across its two largest pieces")
    lines += [f"  {m.person_id}: {m.customers} customers, {m.records:,} records, {m.missed_pairs:,} missed pairs; {pair_text(m.example)}" for m in misses]
    return lines
