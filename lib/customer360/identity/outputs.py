"""One resolution's output tables, derived from the clear records: tokenized identity records,
the PII vault, the cross-reference, golden records, stable ids, hubs and links. Shared by the
identity stage and the standalone ``c360 identity --input``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.config import IdentityConfig
from customer360.identity.golden import golden_records
from customer360.identity.records import tokenize_records, vault_entries
from customer360.identity.resolve import ResolvedIdentities, resolve_identities, timed
from customer360.identity.stable_ids import IdAssignment, assign_customer_ids
from customer360.identity.tokenize import hmac_token


@dataclass
class IdentityOutputs:
    """What one resolution produced, ready to write (all personal values tokenized)."""

    identity_records: DataFrame
    vault: DataFrame
    xref: DataFrame
    golden: DataFrame
    assignment: IdAssignment
    hubs: DataFrame
    links: DataFrame
    resolved: ResolvedIdentities


def build_outputs(
    clear: DataFrame,
    *,
    settings: IdentityConfig,
    key: bytes,
    run_id: str,
    now: datetime,
    previous_xref: DataFrame | None,
    registry: DataFrame | None,
    graphframes_available: bool = False,
) -> IdentityOutputs:
    """Resolve ``clear`` records and derive every output table (shared by stage and standalone)."""
    resolved = resolve_identities(clear, settings, graphframes_available=graphframes_available)
    records = resolved.records
    # each step below is read by several outputs: materialize once and cut the lineage
    with timed("identity: match rules per record"):
        components = _materialize(resolved.components)
    with timed("identity: stable customer ids"):
        found = assign_customer_ids(components, previous=previous_xref, registry=registry, run_id=run_id, now=now)
        assignment = IdAssignment(ids=_materialize(found.ids), audit=_materialize(found.audit), registry=_materialize(found.registry))
    ids = assignment.ids
    xref = components.join(ids, ["region", "source", "source_record_id"]).select(
        "source", "source_record_id", "customer_id", "match_rule", "match_confidence", F.lit(run_id).alias("run_id"), "region"
    )
    with timed("identity: tokenized records"):
        tokenized = _materialize(tokenize_records(records.drop("vid", "profile_key"), key=key, run_id=run_id))
    # every survivorship rule reads the records with their customer: join them once
    with_ids = _materialize(
        tokenized.join(ids.select("region", "source", "source_record_id", "customer_id"), ["region", "source", "source_record_id"])
    )
    golden = golden_records(
        with_ids,
        settings.survivorship,
        run_id=run_id,
    )
    hubs = resolved.hubs.select(
        "kind",
        F.when(F.col("kind").startswith("other:"), hmac_token(F.concat(F.expr("substring(kind, 7)"), F.lit(":"), F.col("value")), key=key, kind="other_id"))
        .otherwise(F.coalesce(*[F.when(F.col("kind") == k, hmac_token(F.col("value"), key=key, kind=k)) for k in settings.strong_identifiers]))
        .alias("token"),
        "records",
        "profiles",
        "login_emails",
        "reason",
        F.lit(run_id).alias("run_id"),
        "region",
    )
    links = resolved.links.withColumn("run_id", F.lit(run_id))
    vault = vault_entries(records.drop("vid", "profile_key"), key=key, run_id=run_id)
    return IdentityOutputs(tokenized, vault, xref, golden, assignment, hubs, links, resolved)


def _materialize(df: DataFrame) -> DataFrame:
    return df.localCheckpoint(eager=True)
