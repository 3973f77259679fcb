"""``silver.support_tickets`` and ``silver.consent``: source rows keyed by customer, no contact PII."""
from __future__ import annotations

from collections.abc import Sequence

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

TICKETS_COMMENTS = {
    "ticket_id": "support ticket id from the source",
    "customer_id": "stable customer id (silver.customer_xref)",
    "opened_at": "when the ticket was opened, UTC",
    "channel": "email, phone, chat or store",
    "topic": "what the ticket was about",
    "satisfaction": "the customer's rating, 1 (worst) to 5; null if not given",
    "run_id": "pipeline run that wrote the row",
    "region": "region (partition)",
}

CONSENT_COMMENTS = {
    "consent_event_id": "consent event id from the source",
    "customer_id": "stable customer id (silver.customer_xref)",
    "purpose": "marketing or profiling",
    "action": "opt_in, opt_out or erasure_request",
    "recorded_at": "when the choice was recorded, UTC",
    "channel": "where it was recorded",
    "subject": "token of the email the choice was recorded for (silver.identity_records); per subject the latest choice wins",
    "run_id": "pipeline run that wrote the row",
    "region": "region (partition)",
}


def keyed_by_customer(
    bronze: DataFrame, xref: DataFrame, *, source: str, id_column: str, columns: Sequence[str], run_id: str
) -> DataFrame:
    """``columns`` of every bronze row with its ``customer_id``; rows the identity stage did not
    resolve keep a ``_problem`` for the quarantine."""
    customers = xref.where(F.col("source") == source).select(
        "region", F.col("source_record_id").alias(id_column), "customer_id"
    )
    rows = bronze.select(id_column, *columns, "region").join(customers, ["region", id_column], "left")
    return rows.select(
        id_column, "customer_id", *columns, F.lit(run_id).alias("run_id"), "region",
        F.when(F.col("customer_id").isNull(), F.lit("no customer_id in silver.customer_xref (run the identity stage)")).alias("_problem"),
    )


def with_consent_subject(consent: DataFrame, identity_records: DataFrame) -> DataFrame:
    """``subject``: the token of the email each consent event was recorded for (its identity
    record's ``email``), so a customer merged from several people keeps each one's choices apart."""
    subjects = identity_records.where(F.col("source") == "consent").select(
        "region", F.col("source_record_id").alias("consent_event_id"), F.col("email").alias("subject")
    )
    return consent.join(subjects, ["region", "consent_event_id"], "left")
