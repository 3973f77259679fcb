"""Consent: what each customer allows, from ``silver.consent`` (one row per consent event).

Rules, per purpose (``marketing``, ``profiling``):

* Per *subject* - the email address the choice was recorded for, as its token (``subject``
  column; events without one share one subject per customer) - the latest opt-in or opt-out wins
  (ties: the higher event id).
* A customer is the union of the records identity resolution merged, so they can carry the choices
  of several subjects. **A refusal on any merged subject wins**: the customer allows a purpose only
  if every subject that chose says yes. Consent follows merges and splits automatically because it
  is derived from the current ``silver.customer_xref`` on every run.
* No choice at all: the region's regime decides - ``opt_out`` regions assume yes until a no,
  ``opt_in`` regions need an explicit yes.
* An erasure request turns both purposes off until the erasure is carried out (``c360 erase``).
"""
from __future__ import annotations

from collections.abc import Mapping

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

PURPOSES = ("marketing", "profiling")


def consent_flags(consent: DataFrame) -> DataFrame:
    """Per (region, customer_id): ``_marketing`` / ``_profiling`` (true, false, or null without any
    choice), ``erasure_requested`` and ``consent_updated_at`` (the latest event)."""
    subject = F.coalesce(F.col("subject"), F.lit("")) if "subject" in consent.columns else F.lit("")
    choices = consent.where(F.col("action").isin("opt_in", "opt_out")).withColumn("_subject", subject)
    latest = Window.partitionBy("region", "customer_id", "purpose", "_subject").orderBy(
        F.desc("recorded_at"), F.desc("consent_event_id")
    )
    last_choice = choices.withColumn("_n", F.row_number().over(latest)).where("_n = 1")
    # bool_and: every subject's latest choice is an opt-in; one refusal makes it false
    per_purpose = last_choice.groupBy("region", "customer_id").agg(
        *[F.bool_and(F.when(F.col("purpose") == p, F.col("action") == "opt_in")).alias(f"_{p}") for p in PURPOSES]
    )
    events = consent.groupBy("region", "customer_id").agg(
        F.max((F.col("action") == "erasure_request").cast("int")).cast("boolean").alias("erasure_requested"),
        F.max("recorded_at").alias("consent_updated_at"),
    )
    return events.join(per_purpose, ["region", "customer_id"], "left")


def regime_default(regimes: Mapping[str, str]) -> Column:
    """True in opt-out regions (consent assumed until a no), false in opt-in regions."""
    return F.coalesce(*[F.when(F.col("region") == c, F.lit(r == "opt_out")) for c, r in sorted(regimes.items())], F.lit(False))


def with_consent(customers: DataFrame, consent: DataFrame, *, regimes: Mapping[str, str]) -> DataFrame:
    """``customers`` (region, customer_id, ...) plus ``marketing_consent``, ``profiling_consent``,
    ``erasure_requested`` and ``consent_updated_at`` by the rules above."""
    flags = consent_flags(consent)
    erased = F.coalesce(F.col("erasure_requested"), F.lit(False))
    default = regime_default(regimes)
    df = customers.join(flags, ["region", "customer_id"], "left")
    return df.select(
        *customers.columns,
        *[(~erased & F.coalesce(F.col(f"_{p}"), default)).alias(f"{p}_consent") for p in PURPOSES],
        erased.alias("erasure_requested"),
        "consent_updated_at",
    )
