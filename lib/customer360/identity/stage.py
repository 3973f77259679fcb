"""The identity stage of the pipeline: bronze -> silver identity tables.

Every run resolves all identity records of the selected regions from bronze (so a changed
record, a new source or a new matching setting takes effect everywhere), then keeps customer ids
stable against the previous ``silver.customer_xref``. Tables written (partitioned by region,
only the run's regions replaced):

* ``silver.identity_records`` - one row per identifying source record, personal attributes as tokens
* ``silver.pii_vault`` - token -> standardized value (restricted)
* ``silver.identity_graph`` - every accepted link with its rule and probability
* ``silver.identity_hubs`` - identifier values not used for linking, and why
* ``silver.customer_xref`` - source record -> customer_id, match rule and confidence
* ``silver.customer_golden`` - one row per customer
* ``silver.customer_ids`` - every id ever issued (merged and upserted), ``silver.identity_audit``
  (appended) - merges, splits and retirements
* ``ops.identity_model`` (appended) - the m/u probabilities and weights EM estimated this run
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pyspark.sql.functions as F
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame

from customer360.bronze import current
from customer360.config import AppConfig, RegionConfig
from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.identity.matching import MODEL_SCHEMA
from customer360.identity.records import canonical_records, standardize_records
from customer360.lakehouse import Constraints, Lakehouse
from customer360.identity.outputs import IdentityOutputs, build_outputs
from customer360.tables import (
    CUSTOMER_GOLDEN,
    CUSTOMER_IDS,
    CUSTOMER_XREF,
    IDENTITY_AUDIT,
    IDENTITY_GRAPH,
    IDENTITY_HUBS,
    IDENTITY_MODEL,
    IDENTITY_RECORDS,
    PII_VAULT,
    bronze_table,
)

log = logging.getLogger(__name__)


class IdentityInputError(C360Error):
    """The identity stage has nothing to read, or a mapping does not fit the data."""


def bronze_records(ctx: RunContext) -> tuple[DataFrame | None, list[str]]:
    """Canonical records from every mapped source's current state (``bronze.current``: the latest
    version of each record id, deleted ones left out) for the run's regions.

    Loads the ingest stage has not taken into the current state yet (a stream still running, an
    ingest that failed after loading) are taken in first, and reported. The records are counted
    later, on the materialized frame (``records_in``), not with another scan here.
    """
    lines: list[str] = []
    union: DataFrame | None = None
    for report in current.refresh(ctx, sorted(ctx.config.sources)):
        lines.append(report.line())
    for source, mapping in sorted(ctx.config.sources.items()):
        table = bronze_table(source)
        bronze = current.live(ctx, source)
        if bronze is None:
            lines.append(f"{table}: not ingested yet, skipped")
            continue
        try:
            records = canonical_records(bronze, source=source, mapping=mapping)
        except ValueError as exc:
            raise IdentityInputError(f"conf sources.{source}: {exc}") from exc
        except (AnalysisException, ParseException) as exc:
            raise IdentityInputError(
                f"conf sources.{source}.identity_filter {mapping.identity_filter!r} is not valid SQL on {table}: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        union = records if union is None else union.unionByName(records)
    return union, lines


def _regions(config: AppConfig, codes) -> dict[str, RegionConfig]:
    return {code: config.regions[code] for code in codes}


#: what silver's identity tables promise (docs/ARCHITECTURE.md, identity resolution contract):
#: every record keyed and placed, every xref row resolved to a customer by a rule, confidences
#: probabilities (null for a record alone)
CONSTRAINTS = {
    IDENTITY_RECORDS: Constraints(not_null=("source", "source_record_id", "region")),
    CUSTOMER_XREF: Constraints(
        not_null=("source", "source_record_id", "customer_id", "match_rule", "region"),
        checks=(("match_confidence_probability", "match_confidence IS NULL OR (match_confidence >= 0 AND match_confidence <= 1)"),),
    ),
    CUSTOMER_GOLDEN: Constraints(not_null=("customer_id", "region")),
}


def _write(lakehouse: Lakehouse, df: DataFrame, name: str, regions) -> int:
    result = lakehouse.write(
        df, name, partition_by=["region"], regions=list(regions), schema_mode="merge", constraints=CONSTRAINTS.get(name)
    )
    return int(result.rows_written or 0)


def run(ctx: RunContext, *, now: datetime | None = None) -> StageResult:
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    result = StageResult("identity")
    canonical, lines = bronze_records(ctx)
    result.lines += lines
    if canonical is None:
        raise IdentityInputError("no bronze table of any source in conf/sources.yaml exists: run `c360 ingest` first")
    settings = ctx.config.identity
    clear = standardize_records(canonical, regions=_regions(ctx.config, ctx.regions), identity=settings, today=now.date())
    lakehouse = ctx.lakehouse
    previous = lakehouse.read(CUSTOMER_XREF).where(F.col("region").isin(*ctx.regions)) if lakehouse.exists(CUSTOMER_XREF) else None
    registry = lakehouse.read(CUSTOMER_IDS) if lakehouse.exists(CUSTOMER_IDS) else None
    if previous is not None:
        previous = previous.select("region", "source", "source_record_id", "customer_id").localCheckpoint(eager=True)
        resolved_before = {r[0] for r in previous.select("source").distinct().collect()}
        missing = sorted(s for s in resolved_before if s not in ctx.config.sources or not lakehouse.exists(bronze_table(s)))
        if missing:
            # resolving without them would retire or split every customer they belong to
            raise IdentityInputError(
                f"customer_xref holds records of source(s) {missing} that have no bronze table or mapping now; "
                f"restore them (bronze table, conf/sources.yaml) or remove those sources' rows from "
                f"{CUSTOMER_XREF} deliberately"
            )
    if registry is not None:
        registry = registry.localCheckpoint(eager=True)
    out = build_outputs(
        clear,
        settings=settings,
        key=ctx.config.pii_hash_key(),
        run_id=ctx.run_id,
        now=now,
        previous_xref=previous,
        registry=registry,
        graphframes_available=ctx.capabilities.graphframes,
    )
    # records in per source and region, counted on the materialized records (one scan of bronze)
    counts = {(r["source"], r["region"]): r["count"] for r in out.resolved.records.groupBy("source", "region").count().collect()}
    try:
        # the id registry first: if the run dies later, the next run reuses these ids (see stable_ids);
        # merge creates the table on the first run
        lakehouse.merge(out.assignment.registry, CUSTOMER_IDS, keys=["customer_id"], partition_by=["region"])
        written = {
            IDENTITY_RECORDS: _write(lakehouse, out.identity_records, IDENTITY_RECORDS, ctx.regions),
            PII_VAULT: _write(lakehouse, out.vault, PII_VAULT, ctx.regions),
            IDENTITY_GRAPH: _write(lakehouse, out.links, IDENTITY_GRAPH, ctx.regions),
            IDENTITY_HUBS: _write(lakehouse, out.hubs, IDENTITY_HUBS, ctx.regions),
            CUSTOMER_XREF: _write(lakehouse, out.xref, CUSTOMER_XREF, ctx.regions),
            CUSTOMER_GOLDEN: _write(lakehouse, out.golden, CUSTOMER_GOLDEN, ctx.regions),
        }
        audit = out.assignment.audit.persist()
        lakehouse.write(audit, IDENTITY_AUDIT, mode="append", partition_by=["region"])
        model = ctx.spark.createDataFrame(out.resolved.matching.model_rows(ctx.run_id), MODEL_SCHEMA).coalesce(1)
        lakehouse.write(model, IDENTITY_MODEL, mode="append")
        _report(ctx, result, out, audit, written, counts)
        audit.unpersist()
    finally:
        out.resolved.release()
    return result


def _report(ctx, result: StageResult, out: IdentityOutputs, audit: DataFrame, written: dict[str, int], counts) -> None:
    lakehouse = ctx.lakehouse
    xref = lakehouse.read(CUSTOMER_XREF).where(F.col("region").isin(*ctx.regions))
    per_region = {
        row["region"]: row
        for row in xref.groupBy("region").agg(
            F.count("*").alias("records"),
            F.countDistinct("customer_id").alias("customers"),
            F.sum(F.col("match_rule").startswith("probabilistic").cast("long")).alias("probabilistic"),
            F.sum((F.col("match_rule") == "singleton").cast("long")).alias("singletons"),
        ).collect()
    }
    events = {(r["region"], r["event"]): r["n"] for r in audit.groupBy("region", "event").agg(F.count("*").alias("n")).collect()}
    hubs = {r["region"]: r["n"] for r in lakehouse.read(IDENTITY_HUBS).where(F.col("region").isin(*ctx.regions)).groupBy("region").agg(F.count("*").alias("n")).collect()}
    records_in = sum(counts.values())
    if written[CUSTOMER_XREF] != written[IDENTITY_RECORDS] or written[IDENTITY_RECORDS] != records_in:
        result.errors.append(
            f"identity: {records_in} records in, {written[IDENTITY_RECORDS]} identity records, {written[CUSTOMER_XREF]} xref rows"
        )
    for region in ctx.regions:
        row = per_region.get(region)
        records_read = sum(n for (_, r), n in counts.items() if r == region)
        values = {
            "records_in": records_read,
            "xref_rows": row["records"] if row else 0,
            "customers": row["customers"] if row else 0,
            "probabilistic_records": row["probabilistic"] if row else 0,
            "singleton_records": row["singletons"] if row else 0,
            "hubs": hubs.get(region, 0),
            "merges": events.get((region, "merge"), 0),
            "splits": events.get((region, "split"), 0),
            "retired": events.get((region, "retire"), 0),
        }
        result.metrics += [Metric(region, k, int(v), CUSTOMER_XREF) for k, v in values.items()]
        result.lines.append(
            f"{region}: {values['records_in']:,} records -> {values['customers']:,} customers "
            f"({values['probabilistic_records']:,} linked probabilistically, {values['singleton_records']:,} singletons, "
            f"{values['hubs']:,} hubs; {values['merges']} merges, {values['splits']} splits)"
        )
    result.lines += out.resolved.matching_lines()
    result.lines.append(f"components: {out.resolved.engine}, {out.resolved.rounds} rounds")
