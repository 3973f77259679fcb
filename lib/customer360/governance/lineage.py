"""``ops.job_runs``: one row per job run - who ran what, on which config and commit, which table
versions it read and wrote, its row counts, status, duration and error.

The ``Lakehouse`` records every read (the version read) and every commit of the job
(``LineageRecorder``); ``record_job_run`` turns that into the row, for pipeline runs and for the
other jobs (erase, export, monitor) alike.
"""
from __future__ import annotations

import getpass
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime

from pyspark.sql import types as T

from customer360.context import RunContext, git_commit
from customer360.lakehouse.common import WriteResult
from customer360.lakehouse.core import described_columns, with_comments
from customer360.tables import JOB_RUNS, PIPELINE_RUNS, RUN_METRICS

log = logging.getLogger(__name__)

TABLE_READ = T.StructType([T.StructField("table", T.StringType(), False), T.StructField("version", T.LongType(), False)])
TABLE_WRITTEN = T.StructType([
    T.StructField("table", T.StringType(), False),
    T.StructField("version", T.LongType(), False),
    T.StructField("operations", T.StringType(), False),
    T.StructField("rows_written", T.LongType(), True),
])
JOB_RUNS_SCHEMA, JOB_RUNS_COMMENTS = described_columns(
    ("run_id", T.StringType(), False, "the job run (also the run_id of every row it wrote)"),
    ("job", T.StringType(), False, "what ran: run (the pipeline), a stage name, erase, export, monitor, ..."),
    ("user", T.StringType(), True, "OS or platform user who started it"),
    ("env", T.StringType(), False, "configuration environment (conf/<env>.yaml)"),
    ("config_hash", T.StringType(), False, "SHA-256 (16 hex) of the resolved configuration: equal hashes, equal settings"),
    ("git_commit", T.StringType(), True, "commit of the code (C360_GIT_COMMIT, else the checkout's HEAD)"),
    ("engine", T.StringType(), False, "Delta engine used (delta-spark or delta-rs)"),
    ("regions", T.ArrayType(T.StringType(), False), False, "regions the job processed"),
    ("inputs", T.ArrayType(TABLE_READ), False, "tables read, each with the Delta version read (the first read of a table)"),
    ("outputs", T.ArrayType(TABLE_WRITTEN), False, "tables written: last version committed, operations, rows written in total"),
    ("row_counts", T.MapType(T.StringType(), T.LongType(), False), False,
     "the stages' counts summed over regions, as stage.table.metric -> value, and Delta's MERGE metrics "
     "as merge.table.metric"),
    ("status", T.StringType(), False, "succeeded, completed_with_errors or failed"),
    ("started_at", T.TimestampType(), False, "start, UTC"),
    ("finished_at", T.TimestampType(), False, "end, UTC"),
    ("duration_s", T.DoubleType(), False, "seconds from start to end"),
    ("error", T.StringType(), True, "the error that failed the job, or the problems that did not stop it"),
)


def config_hash(config) -> str:
    """A short, stable fingerprint of the resolved configuration."""
    return hashlib.sha256(config.model_dump_json().encode("utf-8")).hexdigest()[:16]


def current_user() -> str | None:
    try:
        return os.environ.get("C360_USER") or getpass.getuser()
    except (KeyError, OSError):
        return None


#: Delta's MERGE INTO operation metrics (delta-spark's commitInfo) -> the names ops.job_runs uses
MERGE_METRICS = {
    "numSourceRows": "source_rows",
    "numTargetRowsInserted": "rows_inserted",
    "numTargetRowsUpdated": "rows_updated",
    "numTargetRowsDeleted": "rows_deleted",
    "numTargetRowsCopied": "rows_copied",
    "numTargetFilesAdded": "files_added",
    "numTargetFilesRemoved": "files_removed",
}


def merge_counts(writes: Sequence[WriteResult], *, exclude: Sequence[str] = ()) -> dict[str, int]:
    """``merge.<table>.<metric>`` summed over the job's merges, from the metrics Delta recorded
    in each MERGE commit (delta-spark; delta-rs's copy-on-write merge reports rows written only)."""
    counts: dict[str, int] = {}
    for w in writes:
        if w.operation != "MERGE" or w.table in exclude:
            continue
        for metric, name in MERGE_METRICS.items():
            if metric in w.metrics and w.metrics[metric] is not None:
                key = f"merge.{w.table}.{name}"
                counts[key] = counts.get(key, 0) + int(w.metrics[metric])
    return counts


def job_run_row(
    ctx: RunContext,
    *,
    job: str,
    started: datetime,
    finished: datetime,
    status: str,
    error: str | None,
    row_counts: Mapping[str, int] | None = None,
    exclude: Sequence[str] = (JOB_RUNS, PIPELINE_RUNS, RUN_METRICS),
) -> tuple:
    lineage = ctx.lakehouse.lineage
    counts = {k: int(v) for k, v in (row_counts or {}).items()}
    counts.update(merge_counts(lineage.writes, exclude=exclude))
    inputs = [(table, int(v)) for table, v in sorted(lineage.reads.items()) if table not in exclude]
    outputs = [(t, int(v), ops, None if rows is None else int(rows)) for t, v, ops, rows in lineage.outputs() if t not in exclude]
    return (
        ctx.run_id, job, current_user(), ctx.config.env, config_hash(ctx.config), git_commit(), ctx.lakehouse.engine_name,
        list(ctx.regions), inputs, outputs, counts, status,
        started, finished, (finished - started).total_seconds(), error,
    )


def record_job_run(ctx: RunContext, **kwargs) -> None:
    """Append the job's row to ``ops.job_runs`` (never raises: lineage must not hide the job's own outcome)."""
    row = job_run_row(ctx, **kwargs)
    try:
        df = ctx.spark.createDataFrame([row], JOB_RUNS_SCHEMA).coalesce(1)
        ctx.lakehouse.write(with_comments(df, JOB_RUNS_COMMENTS), JOB_RUNS, mode="append")
    except Exception:  # noqa: BLE001 - logged; the job's own status is what the caller reports
        log.exception("could not append the run %s to %s", ctx.run_id, JOB_RUNS)
