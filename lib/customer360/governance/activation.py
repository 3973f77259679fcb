"""Activation: ``c360 export --segment NAME --format csv|jsonl --out DIR --role ROLE``.

The audience is the customers ``gold.customer_segments`` puts in the segment (its name or its
global taxonomy name) on each region's current scoring date (``gold.customer_360``'s as-of
date). Each member is exported or excluded for one reason, checked in this order:

1. ``erasure_requested`` - the customer asked to be forgotten;
2. ``no_profiling_consent`` - may no longer be profiled (a score row left from before a withdrawal);
3. ``no_marketing_consent`` - may not be contacted for marketing;
4. ``no_contact_email`` - a contact export without an email address to send to (no token, or
   a token the vault cannot resolve).

What a row holds depends on the role (``governance.roles``): the customer id, region, segment and
churn score for everyone; the contact columns (first_name, last_name, email, phone) as clear values
only for a role with ``contact_export`` (from the vault), otherwise as the role's own PII treatment
(tokens for analysts; a role that would see clear values without ``contact_export`` gets tokens).
``DIR/manifest.json`` records the counts, the exclusions by reason, the files and the rules.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.errors import C360Error
from customer360.governance.access import AccessError, AccessPolicy, policy_from_mapping, role_view
from customer360.tables import CUSTOMER_360, CUSTOMER_SEGMENTS, PII_VAULT

log = logging.getLogger(__name__)

CONTACT_COLUMNS = ("first_name", "last_name", "email", "phone")
REASONS = ("erasure_requested", "no_profiling_consent", "no_marketing_consent", "no_contact_email")


class ExportError(C360Error):
    """The export cannot be made (unknown segment, missing tables, a role that may not export)."""


def access_policy(config) -> AccessPolicy:
    return policy_from_mapping(config.governance.model_dump(mode="python"))


def exclusion_reason(*, contact: bool):
    """The first reason a member is left out, or null when exported."""
    reason = (
        F.when(F.coalesce(F.col("erasure_requested"), F.lit(False)), "erasure_requested")
        .when(~F.coalesce(F.col("profiling_consent"), F.lit(False)), "no_profiling_consent")
        .when(~F.coalesce(F.col("marketing_consent"), F.lit(False)), "no_marketing_consent")
    )
    if contact:
        reason = reason.when(F.col("email").isNull(), "no_contact_email")
    return reason


def audience(c360: DataFrame, segments: DataFrame, segment: str, *, contact: bool) -> DataFrame:
    """Segment members on each region's current date with ``_excluded`` (a reason, or null)."""
    current = c360.select("region", F.col("features_as_of").alias("as_of_date")).distinct()
    members = (
        segments.join(current, ["region", "as_of_date"], "left_semi")
        .where((F.col("segment") == segment) | (F.col("global_segment") == segment))
        .select("region", "customer_id", "as_of_date", F.col("segment").alias("_segment"), F.col("global_segment").alias("_global"))
    )
    people = c360.select(
        "region", "customer_id", *CONTACT_COLUMNS, "marketing_consent", "profiling_consent", "erasure_requested", "churn_score",
    )
    return members.join(people, ["region", "customer_id"], "left").withColumn("_excluded", exclusion_reason(contact=contact))


def export(
    ctx, *, segment: str, fmt: str, out: str, role: str | None = None, now: datetime | None = None, env=None,
) -> dict:
    """Write the audience and ``manifest.json`` under ``out``; returns the manifest. ``role`` must be
    one the caller may take (governance/principals.py); none: the caller's default role."""
    from customer360.governance.principals import resolve_role

    now = now or datetime.now(timezone.utc)
    if fmt not in ("csv", "jsonl"):
        raise ExportError(f"format must be csv or jsonl, not {fmt!r}")
    lakehouse = ctx.lakehouse
    policy = access_policy(ctx.config)
    try:
        _, role = resolve_role(ctx.config, role, env=env)
        role_policy = policy.role(role)
    except AccessError as exc:
        raise ExportError(str(exc)) from None
    for table in (CUSTOMER_360, CUSTOMER_SEGMENTS):
        if not policy.readable(role, [table]):
            raise ExportError(f"role {role} may not read {table}, so it cannot export audiences")
        if not lakehouse.exists(table):
            raise ExportError(f"{table} does not exist: run the gold and ml stages first")
    mine = F.col("region").isin(*ctx.regions)
    c360 = lakehouse.read(CUSTOMER_360).where(mine)
    segments = lakehouse.read(CUSTOMER_SEGMENTS).where(mine)
    contact = role_policy.contact_export
    # consent reasons first; a contact export then also needs an address the vault can give
    members = audience(c360, segments, segment, contact=False)
    # contact columns as the role may see them; clear values only for a contact-export role
    seen = role_policy if contact or role_policy.pii != "clear" else dataclasses.replace(role_policy, pii="token")
    contact_pii = tuple(c for c in policy.pii_of(CUSTOMER_360) if c in CONTACT_COLUMNS)
    narrowed = dataclasses.replace(policy, pii_columns={**policy.pii_columns, CUSTOMER_360: contact_pii})
    vault = lakehouse.read(PII_VAULT).where(mine) if seen.pii == "clear" else None
    shown = role_view(members, table=CUSTOMER_360, role=seen, policy=narrowed, vault=vault)
    if contact:
        shown = shown.withColumn("_excluded", F.coalesce(F.col("_excluded"), F.when(F.col("email").isNull(), F.lit("no_contact_email"))))
    rows = shown.localCheckpoint(eager=True)
    counts = {
        (r["region"], r["_excluded"]): r["count"] for r in rows.groupBy("region", "_excluded").count().collect()
    }
    if not counts:
        known = sorted({r[0] for r in segments.select("segment").distinct().collect() if r[0]}
                       | {r[0] for r in segments.select("global_segment").distinct().collect() if r[0]})
        raise ExportError(f"no customer is in segment {segment!r} in {', '.join(ctx.regions)}; segments: {', '.join(known) or 'none'}")
    visible = rows.where(F.col("_excluded").isNull()).select(
        "customer_id", "region", F.col("_segment").alias("segment"), F.col("_global").alias("global_segment"),
        "as_of_date", "churn_score", *[c for c in CONTACT_COLUMNS if c in rows.columns],
    )

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    data_dir = target / "audience"
    writer = visible.orderBy("region", "customer_id").coalesce(1).write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).csv(str(data_dir))
    else:
        writer.option("ignoreNullFields", False).json(str(data_dir))
    files = sorted(str(p.relative_to(target)) for p in data_dir.glob("part-*"))

    regions = sorted({region for region, _ in counts})
    manifest = {
        "segment": segment,
        "role": role,
        "contact_details": contact,
        "pii": seen.pii,
        "format": fmt,
        "columns": visible.columns,
        "files": files,
        "generated_at": now.isoformat(),
        "run_id": ctx.run_id,
        "members": sum(counts.values()),
        "exported": sum(n for (_, reason), n in counts.items() if reason is None),
        "excluded": {reason: sum(n for (_, r), n in counts.items() if r == reason) for reason in REASONS if contact or reason != "no_contact_email"},
        "by_region": {
            region: {
                "members": sum(n for (r, _), n in counts.items() if r == region),
                "exported": counts.get((region, None), 0),
                "excluded": {reason: counts.get((region, reason), 0) for reason in REASONS if contact or reason != "no_contact_email"},
            }
            for region in regions
        },
        "rules": "members of the segment on the region's current scoring date; excluded, first reason wins: "
        + ", ".join(REASONS if contact else REASONS[:3]),
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    if manifest["members"] != manifest["exported"] + sum(manifest["excluded"].values()):
        raise ExportError(f"export accounting: {manifest['members']} members != exported + excluded")
    rows.unpersist()
    log.info("export %s: %d of %d members exported to %s", segment, manifest["exported"], manifest["members"], target)
    return manifest
