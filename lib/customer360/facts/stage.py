"""The facts stage: bronze orders, web events, tickets and consent -> silver, keyed by customer.

Needs ``silver.customer_xref`` (the identity stage). Every bronze row of the run's regions (its
latest version) ends in exactly one place: its silver table or ``silver._quarantine`` with the
reason, and the stage checks rows in = rows out + quarantined per source. Tables are partitioned
by region and only the run's regions are replaced.
"""
from __future__ import annotations

import logging

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.bronze import current
from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.facts.activity import CONSENT_COMMENTS, TICKETS_COMMENTS, keyed_by_customer, with_consent_subject
from customer360.facts.orders import (
    ORDERS_COMMENTS,
    QUARANTINE_SCHEMA,
    fx_rates_frame,
    quarantine_rows,
    silver_orders,
)
from customer360.facts.web_events import WEB_EVENTS_COMMENTS, silver_web_events
from customer360.lakehouse.core import with_comments
from customer360.tables import (
    CUSTOMER_XREF,
    IDENTITY_RECORDS,
    SILVER_CONSENT,
    SILVER_ORDERS,
    SILVER_QUARANTINE,
    SILVER_TICKETS,
    SILVER_WEB_EVENTS,
    bronze_table,
)

log = logging.getLogger(__name__)


class FactsInputError(C360Error):
    """The facts stage has nothing to key its rows by."""


def _latest(ctx: RunContext, source: str, id_column: str, result: StageResult) -> DataFrame | None:
    """The source's current records of the run's regions (``bronze.current``: latest versions,
    deletes left out)."""
    bronze = current.live(ctx, source)
    if bronze is None:
        result.lines.append(f"{bronze_table(source)}: not ingested yet, skipped")
        return None
    # the identity stage resolved trimmed ids (silver.customer_xref): join on the same form
    return bronze.withColumn(id_column, F.trim(id_column))


def _store(ctx: RunContext, df: DataFrame, name: str, comments: dict[str, str]) -> int:
    written = ctx.lakehouse.write(
        with_comments(df, comments), name, partition_by=["region"], regions=list(ctx.regions), schema_mode="merge"
    )
    return int(written.rows_written or 0)


def run(ctx: RunContext) -> StageResult:
    result = StageResult("facts")
    lakehouse, config = ctx.lakehouse, ctx.config
    if not lakehouse.exists(CUSTOMER_XREF):
        raise FactsInputError(f"{CUSTOMER_XREF} does not exist: run `c360 identity` first")
    xref = (
        lakehouse.read(CUSTOMER_XREF)
        .where(F.col("region").isin(*ctx.regions))
        .select("region", "source", "source_record_id", "customer_id")
        .localCheckpoint(eager=True)
    )
    records = lakehouse.read(IDENTITY_RECORDS).where(F.col("region").isin(*ctx.regions))
    time_zones = {code: config.regions[code].time_zone for code in ctx.regions}
    timeouts = {code: config.regions[code].session_timeout_minutes for code in ctx.regions}
    builders = {
        "orders": (
            "order_line_id", SILVER_ORDERS, ORDERS_COMMENTS,
            lambda b: silver_orders(
                b, xref, fx_rates_frame(ctx.spark, config.finance),
                reporting_currency=config.finance.reporting_currency, time_zones=time_zones, run_id=ctx.run_id,
            ),
        ),
        "web_events": (
            "event_id", SILVER_WEB_EVENTS, WEB_EVENTS_COMMENTS,
            lambda b: silver_web_events(b, xref, timeout_minutes=timeouts, bot=config.features.bot, run_id=ctx.run_id)
            .withColumn("_problem", F.lit(None).cast("string")),
        ),
        "support_tickets": (
            "ticket_id", SILVER_TICKETS, TICKETS_COMMENTS,
            lambda b: keyed_by_customer(
                b, xref, source="support_tickets", id_column="ticket_id",
                columns=["opened_at", "channel", "topic", "satisfaction"], run_id=ctx.run_id,
            ),
        ),
        "consent": (
            "consent_event_id", SILVER_CONSENT, CONSENT_COMMENTS,
            lambda b: keyed_by_customer(
                with_consent_subject(b, records), xref, source="consent", id_column="consent_event_id",
                columns=["purpose", "action", "recorded_at", "channel", "subject"], run_id=ctx.run_id,
            ),
        ),
    }
    for report in current.refresh(ctx, list(builders)):  # loads no stage has taken in yet
        result.lines.append(report.line())
        result.metrics += report.metrics()
    quarantined: list[DataFrame] = []
    try:
        for source, (id_column, table, comments, build) in builders.items():
            bronze = _latest(ctx, source, id_column, result)
            if bronze is None:
                continue
            bronze = bronze.localCheckpoint(eager=True)
            per_region_in = {r["region"]: r["count"] for r in bronze.groupBy("region").count().collect()}
            rows_in = sum(per_region_in.values())
            built = build(bronze).localCheckpoint(eager=True)
            counts = {
                (r["region"], r["bad"]): r["n"]
                for r in built.groupBy("region", F.col("_problem").isNotNull().alias("bad")).count().withColumnRenamed("count", "n").collect()
            }
            # a join that fanned out (a duplicated xref row, overlapping rates) would show here
            if sum(counts.values()) != rows_in or built.select("region", id_column).distinct().count() != rows_in:
                raise FactsInputError(
                    f"{source}: {rows_in:,} bronze rows became {sum(counts.values()):,} rows keyed by customer; "
                    f"{CUSTOMER_XREF} or finance.fx_rates has duplicates"
                )
            written = _store(ctx, built.where(F.col("_problem").isNull()).drop("_problem"), table, comments)
            bad = quarantine_rows(built, source=source, id_column=id_column, run_id=ctx.run_id).localCheckpoint(eager=True)
            quarantined.append(bad)
            n_bad = sum(n for (_, is_bad), n in counts.items() if is_bad)
            if written + n_bad != rows_in:
                result.errors.append(f"{source}: {rows_in:,} rows in but {written:,} written + {n_bad:,} quarantined")
            line = f"{source}: {rows_in:,} rows = {written:,} in {table} + {n_bad:,} quarantined"
            if n_bad:
                reasons = bad.groupBy("reason").count().orderBy(F.desc("count")).limit(3).collect()
                line += " (" + "; ".join(f"{r['count']:,} {r['reason']}" for r in reasons) + ")"
            result.lines.append(line)
            for region in ctx.regions:
                good = counts.get((region, False), 0)
                result.metrics += [
                    Metric(region, "rows_in", per_region_in.get(region, 0), table),
                    Metric(region, "rows_written", good, table),
                    Metric(region, "rows_quarantined", counts.get((region, True), 0), table),
                ]
            if source == "web_events":
                result.lines.append("  " + _web_profile(lakehouse.read(SILVER_WEB_EVENTS).where(F.col("region").isin(*ctx.regions))))
        if quarantined:
            union = quarantined[0]
            for frame in quarantined[1:]:
                union = union.unionByName(frame)
            lakehouse.write(
                union.select(*QUARANTINE_SCHEMA.fieldNames()).coalesce(1), SILVER_QUARANTINE,
                partition_by=["region"], regions=list(ctx.regions),
            )
    finally:
        xref.unpersist()
    return result


def _web_profile(events: DataFrame) -> str:
    row = events.agg(
        F.count(F.lit(1)).alias("events"),
        F.sum((F.col("customer_id").isNotNull()).cast("long")).alias("stitched"),
        F.sum(((F.col("stitch_rule") != "login") & F.col("customer_id").isNotNull()).cast("long")).alias("anonymous_stitched"),
        F.countDistinct(F.when(F.col("is_bot_session"), F.col("session_id"))).alias("bot_sessions"),
        F.sum(F.col("is_bot_session").cast("long")).alias("bot_events"),
    ).first()
    events_n = row["events"] or 0
    share = (row["stitched"] or 0) / events_n if events_n else 0.0
    return (
        f"web events attributed to customers: {row['stitched'] or 0:,} of {events_n:,} ({share:.1%}), "
        f"{row['anonymous_stitched'] or 0:,} of them stitched through their cookie's logins; "
        f"{row['bot_sessions']:,} bot-like sessions ({row['bot_events'] or 0:,} events) flagged"
    )
