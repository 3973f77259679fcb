"""Pairwise evaluation of a resolution against ground truth, without enumerating pairs.

For records in both ``xref`` and ``truth``: predicted pairs are sum C(n,2) over customers, true
pairs sum C(n,2) over persons, and true positives sum C(n,2) over (customer, person) cells.
A person is over-merged when one of its customers also holds another person's records, and
under-merged when its records are spread over more than one customer.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

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
    )
