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


def _pick(records: DataFrame, columns: Sequence[str], rule: str) -> DataFrame:
    """customer_id + ``columns`` from the record (or value) the rule prefers."""
    any_value = F.col(columns[0]).isNotNull()
    for column in columns[1:]:
        any_value = any_value | F.col(column).isNotNull()
    present = records.where(any_value)
    value = F.struct(*[F.col(c) for c in columns])
    if rule == "most_frequent":
        grouped = present.groupBy("customer_id", *columns).agg(
            F.count("*").alias("n"), F.max(_recency()).alias("t"), F.min("source_rank").alias("s")
        )
        order = F.struct(F.col("n"), F.col("t"), -F.col("s"), *[F.col(c) for c in columns])
        picked = grouped.groupBy("customer_id").agg(F.max_by(F.struct(*[F.col(c) for c in columns]), order).alias("v"))
    else:
        recency = _recency()
        keys = (recency, -F.col("source_rank")) if rule == "most_recent" else (-F.col("source_rank"), recency)
        if len(columns) > 1:
            # a group (the address) comes from its most complete record first: an order's bare
            # postcode must not wipe the street and city a CRM record has
            completeness = sum((F.col(c).isNotNull().cast("int") for c in columns), F.lit(0))
            keys = (completeness, *keys)
        order = F.struct(*keys, *[F.col(c) for c in columns])
        picked = present.groupBy("customer_id").agg(F.max_by(value, order).alias("v"))
    return picked.select("customer_id", *[F.col(f"v.{c}").alias(c) for c in columns])


def golden_records(records: DataFrame, survivorship: SurvivorshipConfig, *, run_id: str) -> DataFrame:
    """``records``: tokenized identity records with ``customer_id`` (and source, event_time, region)."""
    ranked = records.withColumn("source_rank", _source_rank(survivorship.source_priority))
    base = ranked.groupBy("customer_id").agg(
        F.first("region").alias("region"),
        F.count("*").alias("record_count"),
        F.sort_array(F.collect_set("source")).alias("sources"),
        F.min("event_time").alias("first_seen"),
        F.max("event_time").alias("last_seen"),
        F.max(F.col("company_name").isNotNull()).alias("_b2b"),
    )
    golden = base
    for attribute in SINGLE_ATTRIBUTES:
        rule = survivorship.rules.get(attribute, survivorship.default)
        golden = golden.join(_pick(ranked, [attribute], rule), "customer_id", "left")
    address_rule = survivorship.rules.get("address", survivorship.default)
    golden = golden.join(_pick(ranked, list(ADDRESS), address_rule), "customer_id", "left")
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
