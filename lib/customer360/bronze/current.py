"""Each source's current state, ``bronze.<source>_current``: one row per record (region, record
id), its latest change, kept up to date with ``MERGE`` as loads land.

Bronze keeps every load of every row. What identity and facts want is the latest version of
each record, less the deleted ones: the table holds it, so they read one row per record instead
of ranking all of bronze on every run. A load (a file of one ingest run, ``ops.ingested_files``
status ``loaded``) is taken in once: ``refresh`` reads the bronze rows of the loads the table has
not taken in yet (``ops.current_applied``), ranks them against the current rows of their keys
(``versions.apply_changes``: change sequence first, then load time, so late and out-of-order
changes land by sequence, not arrival), merges the winners, and then records the loads as taken
in. A delete stays as a tombstone row (``change_op = 'delete'``), so a change older than it
that arrives later cannot bring the record back; readers leave tombstones out (``live``).

A crash between the merge and the record leaves the loads pending; taking them in again changes
nothing (the rows the table holds already win over themselves). A load's rows that an erasure
deleted from bronze before they were taken in are simply not there; the erasure deletes the
person's rows from this table itself.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import pyspark.sql.functions as F
import pyspark.sql.types as T
from pyspark.sql import DataFrame

from customer360.bronze.contracts import CONTRACTS
from customer360.bronze.versions import apply_changes, deleted
from customer360.context import Metric, RunContext
from customer360.tables import CURRENT_APPLIED, INGESTED_FILES, bronze_table, current_table

log = logging.getLogger(__name__)

APPLIED_SCHEMA = T.StructType([
    T.StructField("source", T.StringType(), False),
    T.StructField("file", T.StringType(), False),
    T.StructField("run_id", T.StringType(), False),
    T.StructField("region", T.StringType(), True),
    T.StructField("rows", T.LongType(), True),
    T.StructField("applied_by_run_id", T.StringType(), False),
    T.StructField("applied_at", T.TimestampType(), False),
])


@dataclass
class CurrentReport:
    """What one refresh of a source's current state took in."""

    source: str
    loads: int = 0
    rows_in: int = 0
    upserted: int = 0
    deletes: int = 0

    def line(self) -> str:
        return (
            f"{current_table(self.source)}: {self.rows_in:,} new bronze row(s) of {self.loads:,} load(s) merged, "
            f"{self.upserted:,} record(s) changed ({self.deletes:,} of them deleted, kept as tombstones)"
        )

    def metrics(self) -> list[Metric]:
        name = current_table(self.source)
        return [Metric("all", "current_rows_in", self.rows_in, name), Metric("all", "current_upserted", self.upserted, name),
                Metric("all", "current_deletes", self.deletes, name)]


def pending(ctx: RunContext, sources: Sequence[str]) -> dict[str, list[tuple[str, str, str, int]]]:
    """source -> the loads of the run's regions its current state has not taken in: (region,
    file, run id, rows loaded). Two small reads (the file ledger and ``ops.current_applied``)."""
    lakehouse = ctx.lakehouse
    if not sources or not lakehouse.exists(INGESTED_FILES):
        return {}
    loads = (
        lakehouse.read(INGESTED_FILES)
        .where((F.col("status") == "loaded") & F.col("source").isin(*sources) & F.col("region").isin(*ctx.regions))
        .groupBy("source", "file", "run_id").agg(F.first("region").alias("region"), F.max("rows_loaded").alias("rows"))
    )
    if lakehouse.exists(CURRENT_APPLIED):
        loads = loads.join(lakehouse.read(CURRENT_APPLIED).select("source", "file", "run_id"), ["source", "file", "run_id"], "left_anti")
    out: dict[str, list[tuple[str, str, str, int]]] = defaultdict(list)
    for r in loads.collect():
        out[r["source"]].append((r["region"], r["file"], r["run_id"], int(r["rows"] or 0)))
    return {s: sorted(v) for s, v in out.items()}


def refresh(ctx: RunContext, sources: Sequence[str] | None = None, *, now: datetime | None = None) -> list[CurrentReport]:
    """Take every pending load of ``sources`` (every source: all) for the run's regions into
    their current-state tables; one report per source that had any."""
    names = [s for s in (sources or CONTRACTS) if s in CONTRACTS]
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    reports = []
    for source, loads in sorted(pending(ctx, names).items()):
        reports.append(_take_in(ctx, source, loads, now))
    return reports


def _take_in(ctx: RunContext, source: str, loads: list[tuple[str, str, str, int]], now: datetime) -> CurrentReport:
    lakehouse, keys = ctx.lakehouse, list(CONTRACTS[source].keys)
    bronze, target = bronze_table(source), current_table(source)
    report = CurrentReport(source, loads=len(loads), rows_in=sum(n for *_, n in loads))
    if lakehouse.exists(bronze):
        which = ctx.spark.createDataFrame([(r, f, i) for r, f, i, _ in loads], "region string, _source_file string, _run_id string")
        increment = (
            lakehouse.read(bronze)
            .where(F.col("region").isin(*sorted({r for r, *_ in loads})) & F.col("_run_id").isin(*sorted({i for _, _, i, _ in loads})))
            .join(F.broadcast(which), ["region", "_source_file", "_run_id"], "left_semi")
        )
        exists = lakehouse.exists(target)
        current = lakehouse.read(target).where(F.col("region").isin(*ctx.regions)) if exists else None
        upserts = apply_changes(current, increment, keys).localCheckpoint(eager=True)
        counts = upserts.agg(F.count(F.lit(1)).alias("n"), F.count(F.when(deleted(upserts), 1)).alias("d")).first()
        report.upserted, report.deletes = int(counts["n"]), int(counts["d"])
        if not exists:
            lakehouse.write(upserts, target, mode="append", partition_by=["region"], schema_mode="merge")
        elif report.upserted:
            lakehouse.merge(upserts, target, keys=keys, partition_by=["region"], schema_mode="merge")
    rows = [(source, f, i, r, n, ctx.run_id, now) for r, f, i, n in loads]
    lakehouse.write(ctx.spark.createDataFrame(rows, APPLIED_SCHEMA).coalesce(1), CURRENT_APPLIED, mode="append")
    log.info(report.line())
    return report


def live(ctx: RunContext, source: str) -> DataFrame | None:
    """The source's current records of the run's regions, tombstones left out (None: no table)."""
    target = current_table(source)
    if not ctx.lakehouse.exists(target):
        return None
    df = ctx.lakehouse.read(target).where(F.col("region").isin(*ctx.regions))
    return df.where(~deleted(df))
