"""Deterministic links: records sharing a strong identifier, minus hubs.

Every (region, kind, value) of a strong identifier is one group; a group links its records by
edges to the group's smallest record (a star: n-1 edges, not n^2). Groups that are hubs do not
link: a value shared by more distinct record profiles than ``hub_limit`` (test@test.com, a
switchboard number) or a device/cookie whose logins used more than
``max_login_emails_per_device`` emails (a family tablet).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyspark.sql.functions as F
from pyspark.sql import DataFrame
from pyspark.sql import Window
from pyspark.sql import types as T

from customer360.config import IdentityConfig

DEVICE_KINDS = ("device_id", "cookie_id")
#: the order in which a record's linking identifier is reported as its match rule
RULE_PRIORITY = ("loyalty_id", "email", "phone", "other", "device_id", "cookie_id")

HUBS_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("token", T.StringType(), False),
        T.StructField("records", T.LongType(), False),
        T.StructField("profiles", T.LongType(), False),
        T.StructField("login_emails", T.LongType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class DeterministicLinks:
    edges: DataFrame  # src, dst (vids), kind
    hubs: DataFrame  # region, kind, value, records, profiles, login_emails, reason
    linked: DataFrame  # vid, kind: the best identifier through which each linked record is linked


def identifier_occurrences(records: DataFrame, *, kinds: Sequence[str]) -> DataFrame:
    """One row per (record, strong identifier): vid, region, profile_key, email, kind, value.

    ``other_ids`` entries are kind ``other:<name>``.
    """
    parts = [
        records.where(F.col(kind).isNotNull()).select(
            "vid", "region", "profile_key", "email", F.lit(kind).alias("kind"), F.col(kind).alias("value")
        )
        for kind in kinds
    ]
    others = records.select(
        "vid", "region", "profile_key", "email", F.explode("other_ids").alias("name", "value")
    ).select("vid", "region", "profile_key", "email", F.concat(F.lit("other:"), "name").alias("kind"), "value")
    union = others
    for part in parts:
        union = union.unionByName(part)
    return union


def deterministic_links(records: DataFrame, settings: IdentityConfig) -> DeterministicLinks:
    """``records`` needs vid, region, profile_key, the strong identifier columns and other_ids."""
    occurrences = identifier_occurrences(records, kinds=settings.strong_identifiers)
    groups = occurrences.groupBy("region", "kind", "value").agg(
        F.count("*").alias("records"),
        F.countDistinct("profile_key").alias("profiles"),
        F.countDistinct("email").alias("login_emails"),
        F.min("vid").alias("anchor"),
    )
    reason = (
        F.when(F.col("profiles") > settings.hub_limit, F.lit(f"more than {settings.hub_limit} record profiles"))
        .when(
            F.col("kind").isin(*DEVICE_KINDS) & (F.col("login_emails") > settings.max_login_emails_per_device),
            F.lit(f"used by more than {settings.max_login_emails_per_device} login email(s)"),
        )
    )
    groups = groups.withColumn("reason", reason)
    hubs = groups.where(F.col("reason").isNotNull()).select(
        "region", "kind", "value", "records", "profiles", "login_emails", "reason"
    )
    linking = groups.where(F.col("reason").isNull() & (F.col("records") > 1)).select("region", "kind", "value", "anchor")
    joined = occurrences.join(linking, ["region", "kind", "value"])
    edges = joined.where(F.col("vid") != F.col("anchor")).select(
        F.col("vid").alias("src"), F.col("anchor").alias("dst"), "kind"
    )
    family = F.when(F.col("kind").startswith("other:"), F.lit("other")).otherwise(F.col("kind"))
    priority = F.array_position(F.array(*[F.lit(k) for k in RULE_PRIORITY]), family)
    best = Window.partitionBy("vid").orderBy(priority, F.col("kind"))
    linked = (
        joined.select("vid", "kind")
        .withColumn("rank", F.row_number().over(best))
        .where(F.col("rank") == 1)
        .drop("rank")
    )
    return DeterministicLinks(edges=edges, hubs=hubs, linked=linked)
