"""Golden records: one row per customer, each attribute chosen by a survivorship rule.

Survivorship works on tokens (equal values have equal tokens), so golden records are built without
clear PII. Rules per attribute (conf/identity.yaml ``survivorship``):

* ``source_priority``: the value from the most trusted source, then the most recent;
* ``most_recent``: the value of the latest record (event time), then source priority;
  for the address, the most complete records first (street, city and postcode all present);
* ``most_frequent``: the value most records agree on, then the most recent.

``address`` (street, city, postcode) is chosen as one unit from one record, so a golden address
never mixes an old street with a new postcode.
"""
from __future__ import annotations

from collections.abc import Sequence

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from customer360.config import SurvivorshipConfig

ADDRESS = ("street", "city", "postcode")
SINGLE_ATTRIBUTES = (
    "first_name", "last_name", "email", "phone", "date_of_birth", "loyalty_id", "company_name", "country",
)

GOLDEN_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType(), False),
        *[T.StructField(a, T.StringType(), True) for a in (*SINGLE_ATTRIBUTES[:5], *ADDRESS, *SINGLE_ATTRIBUTES[5:])],
        T.StructField("household_id", T.StringType(), True),
        T.StructField("customer_type", T.StringType(), False),
        T.StructField("record_count", T.LongType(), False),
        T.StructField("sources", T.ArrayType(T.StringType(), False), False),
        T.StructField("first_seen", T.TimestampType(), True),
        T.StructField("last_seen", T.TimestampType(), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)



def _recency() -> Column:
    return F.coalesce(F.col("event_time"), F.lit("1970-01-01 00:00:00").cast("timestamp"))


def _source_rank(priority: Sequence[str]) -> Column:
    """0 for the most trusted source; unlisted sources after all listed ones."""
    position = F.array_position(F.array(*[F.lit(s) for s in priority]), F.col("source"))
    return F.when(position > 0, position).otherwise(F.lit(len(priority) + 1))


def _present(columns: Sequence[str]) -> Column:
    any_value = F.col(columns[0]).isNotNull()
    for column in columns[1:]:
        any_value = any_value | F.col(column).isNotNull()
    return any_value


def _preferred(columns: Sequence[str], rule: str) -> Column:
    """An aggregate: the struct of ``columns`` from the record ``most_recent`` or
    ``source_priority`` prefers among the records with a value. ``max_by`` skips rows whose
    ordering is null, so records without any of the columns take no part."""
    recency = _recency()
    keys = (recency, -F.col("source_rank")) if rule == "most_recent" else (-F.col("source_rank"), recency)
    if len(columns) > 1:
        # a group (the address) comes from its most complete record first: an order's bare
        # postcode must not wipe the street and city a CRM record has
        completeness = sum((F.col(c).isNotNull().cast("int") for c in columns), F.lit(0))
        keys = (completeness, *keys)
    order = F.struct(*keys, *[F.col(c) for c in columns])
    return F.max_by(F.struct(*[F.col(c) for c in columns]), F.when(_present(columns), order))


def _most_frequent(records: DataFrame, columns: Sequence[str]) -> DataFrame:
    """customer_id + ``columns``: the value most records agree on, then the most recent."""
    grouped = records.where(_present(columns)).groupBy("customer_id", *columns).agg(
        F.count("*").alias("n"), F.max(_recency()).alias("t"), F.min("source_rank").alias("s")
    )
    order = F.struct(F.col("n"), F.col("t"), -F.col("s"), *[F.col(c) for c in columns])
    picked = grouped.groupBy("customer_id").agg(F.max_by(F.struct(*[F.col(c) for c in columns]), order).alias("v"))
    return picked.select("customer_id", *[F.col(f"v.{c}").alias(c) for c in columns])


def golden_records(records: DataFrame, survivorship: SurvivorshipConfig, *, run_id: str) -> DataFrame:
    """``records``: tokenized identity records with ``customer_id`` (and source, event_time, region)."""
    ranked = records.withColumn("source_rank", _source_rank(survivorship.source_priority))
    groups = [[a] for a in SINGLE_ATTRIBUTES] + [list(ADDRESS)]
    rules = {tuple(g): survivorship.rules.get("address" if len(g) > 1 else g[0], survivorship.default) for g in groups}
    # one aggregation per customer for the whole record and every most_recent / source_priority
    # attribute; a most_frequent attribute counts its values first, so it is joined on
    single = [g for g in groups if rules[tuple(g)] != "most_frequent"]
    golden = ranked.groupBy("customer_id").agg(
        F.first("region").alias("region"),
        F.count("*").alias("record_count"),
        F.sort_array(F.collect_set("source")).alias("sources"),
        F.min("event_time").alias("first_seen"),
        F.max("event_time").alias("last_seen"),
        F.max(F.col("company_name").isNotNull()).alias("_b2b"),
        *[_preferred(g, rules[tuple(g)]).alias(f"_pick{i}") for i, g in enumerate(single)],
    ).select(
        "*", *[F.col(f"_pick{i}.{c}").alias(c) for i, g in enumerate(single) for c in g]
    ).drop(*[f"_pick{i}" for i in range(len(single))])
    for g in groups:
        if rules[tuple(g)] == "most_frequent":
            golden = golden.join(_most_frequent(ranked, g), "customer_id", "left")
    household_parts = F.concat_ws("\u001f", "street", "postcode", "last_name")
    household = F.when(
        F.col("street").isNotNull() & F.col("postcode").isNotNull() & F.col("last_name").isNotNull(),
        F.concat(F.lit("H"), F.substring(F.sha2(F.concat_ws("\u001f", "region", household_parts), 256), 1, 16)),
    )
    return golden.select(
        "customer_id",
        *[F.col(f.name) for f in GOLDEN_SCHEMA.fields[1:12]],
        household.alias("household_id"),
        F.when(F.col("_b2b"), "B2B").otherwise("B2C").alias("customer_type"),
        "record_count",
        "sources",
        "first_seen",
        "last_seen",
        F.lit(run_id).alias("run_id"),
        "region",
    )
