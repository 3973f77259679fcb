"""Stable customer ids across runs, with every merge and split audited.

Rules, applied to this run's components against the previous ``customer_xref``:

* an old customer is *intact* when all of its records that still exist fall into one component;
* a component holding intact customers keeps the oldest of their ids (registry ``created_at``,
  then the id); the other intact customers in it are *merged* into that one;
* an old customer whose records now fall into several components is *split*: each piece takes
  the id its component gets (a new id unless an intact customer is in it too);
* a component with no intact customer gets a new id: ``C`` + 16 hex digits of SHA-256 of its
  region and smallest record key (salted with the run id if that id was ever issued before).

So an unchanged input reproduces every id, and new records joining an existing customer leave its
id alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window
from pyspark.sql import types as T

RECORD_KEY = ("source", "source_record_id")

REGISTRY_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType(), False),
        T.StructField("created_at", T.TimestampType(), False),
        T.StructField("created_run_id", T.StringType(), False),
        T.StructField("retired_at", T.TimestampType(), True),
        T.StructField("retired_run_id", T.StringType(), True),
        T.StructField("retired_reason", T.StringType(), True),
        T.StructField("region", T.StringType(), False),
    ]
)

AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("event", T.StringType(), False),  # merge | split | retire
        T.StructField("old_ids", T.ArrayType(T.StringType(), False), False),
        T.StructField("new_id", T.StringType(), True),
        T.StructField("records", T.LongType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class IdAssignment:
    ids: DataFrame  # region, source, source_record_id, customer_id
    audit: DataFrame  # AUDIT_SCHEMA
    registry: DataFrame  # REGISTRY_SCHEMA rows to upsert (new ids and newly retired ones)


def _record_key(prefix: str = "") -> F.Column:
    return F.concat_ws("\u001f", F.col(f"{prefix}source"), F.col(f"{prefix}source_record_id"))


def _new_id(*parts: F.Column) -> F.Column:
    return F.concat(F.lit("C"), F.substring(F.sha2(F.concat_ws("\u001f", *parts), 256), 1, 16))


def _issued(ids: DataFrame, *, run_id: str, now_lit: F.Column) -> DataFrame:
    """Registry rows (``REGISTRY_SCHEMA``) for ids issued by this run: customer_id and region given."""
    return ids.select(
        "customer_id",
        now_lit.alias("created_at"),
        F.lit(run_id).alias("created_run_id"),
        F.lit(None).cast("timestamp").alias("retired_at"),
        F.lit(None).cast("string").alias("retired_run_id"),
        F.lit(None).cast("string").alias("retired_reason"),
        "region",
    )


def _first_assignment(comp: DataFrame, *, run_id: str, now_lit: F.Column) -> IdAssignment:
    """No earlier xref and no registry: every component gets its new id, nothing is merged, split
    or retired. The same ids the general path would give, from one aggregation instead of its joins."""
    spark = comp.sparkSession
    by_component = Window.partitionBy("region", "component")
    ids = comp.withColumn("customer_id", _new_id(F.col("region"), F.min(_record_key()).over(by_component)))
    registry = _issued(ids.select("customer_id", "region").distinct(), run_id=run_id, now_lit=now_lit)
    return IdAssignment(
        ids=ids.select("region", *RECORD_KEY, "customer_id"), audit=spark.createDataFrame([], AUDIT_SCHEMA), registry=registry
    )


def assign_customer_ids(
    components: DataFrame,
    *,
    previous: DataFrame | None,
    registry: DataFrame | None,
    run_id: str,
    now: datetime,
) -> IdAssignment:
    """``components``: region, source, source_record_id, component (one row per record).
    ``previous``: the earlier xref (region, source, source_record_id, customer_id) for the same
    regions, or None on the first run. ``registry``: every id issued so far, or None."""
    spark = components.sparkSession
    now_lit = F.lit(now).cast("timestamp")
    comp = components.select("region", *RECORD_KEY, "component")
    if previous is None and registry is None:
        return _first_assignment(comp, run_id=run_id, now_lit=now_lit)
    if previous is None:
        previous = spark.createDataFrame([], "region string, source string, source_record_id string, customer_id string")
    if registry is None:
        registry = spark.createDataFrame([], REGISTRY_SCHEMA)
    prev = previous.select("region", *RECORD_KEY, F.col("customer_id").alias("old_id"))

    # where each old customer's surviving records went
    moved = prev.join(comp, ["region", *RECORD_KEY])
    pieces = moved.groupBy("region", "old_id", "component").agg(F.count("*").alias("records"))
    spread = pieces.groupBy("region", "old_id").agg(F.count("*").alias("pieces"))
    created = registry.select(F.col("customer_id").alias("old_id"), F.col("created_at"))
    intact = (
        pieces.join(spread.where(F.col("pieces") == 1), ["region", "old_id"])
        .join(created, "old_id", "left")
        .select("region", "component", "old_id", "records", F.coalesce("created_at", F.lit(datetime(1970, 1, 1))).alias("created_at"))
    )
    oldest = Window.partitionBy("region", "component").orderBy("created_at", "old_id")
    ranked = intact.withColumn("rank", F.row_number().over(oldest))
    survivors = ranked.where(F.col("rank") == 1).select("region", "component", F.col("old_id").alias("customer_id"))

    # components without a surviving id get a new one from their smallest record
    smallest = comp.groupBy("region", "component").agg(F.min(_record_key()).alias("min_key"))
    needs_new = smallest.join(survivors, ["region", "component"], "left_anti")
    # taken: ids that named a customer before (live in the previous xref, or retired). An id in
    # the registry but in neither was issued by a run that died before writing its xref: reusing
    # it for the same records is what that run meant to do.
    issued = (
        registry.where(F.col("retired_at").isNotNull()).select(F.col("customer_id").alias("candidate"))
        .unionByName(prev.select(F.col("old_id").alias("candidate")))
        .distinct()
    )
    fresh = needs_new.withColumn("candidate", _new_id(F.col("region"), F.col("min_key")))
    fresh = fresh.join(issued.withColumn("taken", F.lit(True)), "candidate", "left").select(
        "region",
        "component",
        F.when(F.col("taken"), _new_id(F.col("region"), F.col("min_key"), F.lit(run_id)))
        .otherwise(F.col("candidate"))
        .alias("customer_id"),
    )
    component_ids = survivors.unionByName(fresh)
    ids = comp.join(component_ids, ["region", "component"]).select("region", *RECORD_KEY, "customer_id")

    # audit: merges (intact customers folded into a survivor) and splits (one old id, many pieces)
    merges = (
        ranked.join(component_ids, ["region", "component"])
        .groupBy("region", "component", "customer_id")
        .agg(F.sort_array(F.collect_list("old_id")).alias("old_ids"), F.sum("records").alias("records"), F.count("*").alias("n"))
        .where(F.col("n") > 1)
        .select(F.lit("merge").alias("event"), "old_ids", F.col("customer_id").alias("new_id"), "records", "region")
    )
    splits = (
        pieces.join(spread.where(F.col("pieces") > 1), ["region", "old_id"])
        .join(component_ids, ["region", "component"])
        .select(
            F.lit("split").alias("event"),
            F.array("old_id").alias("old_ids"),
            F.col("customer_id").alias("new_id"),
            F.col("records"),
            "region",
        )
    )
    still_there = prev.join(comp, ["region", *RECORD_KEY], "left_semi").select("region", "old_id").distinct()
    gone = (
        prev.join(still_there, ["region", "old_id"], "left_anti")
        .groupBy("region", "old_id")
        .agg(F.count("*").alias("records"))
        .select(F.lit("retire").alias("event"), F.array("old_id").alias("old_ids"), F.lit(None).cast("string").alias("new_id"), "records", "region")
    )
    audit = merges.unionByName(splits).unionByName(gone).select(
        F.lit(run_id).alias("run_id"), "event", "old_ids", "new_id", F.col("records").cast("long"), now_lit.alias("recorded_at"), "region"
    )

    # registry: new ids, and old ids that no longer name a customer
    new_rows = _issued(fresh.join(registry.select("customer_id"), "customer_id", "left_anti"), run_id=run_id, now_lit=now_lit)
    live = component_ids.select("customer_id")
    reasons = (
        audit.where(F.col("event") != "merge")
        .select(F.explode("old_ids").alias("customer_id"), "event")
        .unionByName(audit.where(F.col("event") == "merge").select(F.explode("old_ids").alias("customer_id"), F.col("event")))
        .join(live, "customer_id", "left_anti")
        .groupBy("customer_id")
        .agg(F.min("event").alias("retired_reason"))
    )
    retired = (
        registry.where(F.col("retired_at").isNull())
        .drop("retired_at", "retired_run_id", "retired_reason")
        .join(reasons, "customer_id")
        .select(
            "customer_id",
            "created_at",
            "created_run_id",
            now_lit.alias("retired_at"),
            F.lit(run_id).alias("retired_run_id"),
            "retired_reason",
            "region",
        )
    )
    return IdAssignment(ids=ids, audit=audit, registry=new_rows.unionByName(retired))
