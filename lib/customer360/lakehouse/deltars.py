"""The embedded engine: Spark reads and writes the Parquet, delta-rs (``deltalake``) owns the log.

Reads: the table's file list comes from the Delta log at the requested version; Spark reads
those files in parallel with ``basePath`` set, so partition columns come back from the
``key=value`` directories, typed by the table schema.

Writes: Spark writes Parquet into ``<table>/_staging/<write id>/``; the files are moved into
their partition directories and committed with one delta-rs transaction (add actions, plus
remove actions for overwrites and merges). Nothing passes through driver memory but file
footers. Until the commit, readers see the previous version; a failed write deletes its files,
and an interrupted one leaves only unreferenced files that ``vacuum`` removes.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyspark.sql.functions as F
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError
from deltalake.exceptions import TableNotFoundError as DeltaRsTableNotFound
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from customer360.errors import TableNotFoundError, UnsupportedTableError
from customer360.lakehouse.common import (
    DELTA_SPARK_ONLY_PROPERTIES,
    partition_mismatch,
    REGION_COLUMN,
    SchemaMode,
    WriteResult,
    WriteSpec,
    constraint_violation,
    older_log_entries,
    partition_literal,
    table_constraints,
    uri_to_path,
)

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
ENGINE_INFO = "customer360/delta-rs"


@dataclass(frozen=True)
class StagedFile:
    staged_path: str  # filesystem path of the file Spark wrote
    relative_path: str  # path inside the table once published
    partition_values: dict[str, str | None]
    size: int
    num_records: int


def _partition_values_of(relative_dir: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for segment in filter(None, relative_dir.split("/")):
        key, sep, raw = segment.partition("=")
        if sep:
            value = unquote(raw)
            values[unquote(key)] = None if value == HIVE_NULL else value
    return values


def _delta_schema(schema: T.StructType) -> DeltaSchema:
    """Columns are nullable in the table, as delta-spark writes them, whatever the frame says;
    a column's ``comment`` (its description) goes into the Delta schema, as delta-spark keeps it."""
    arrow = to_arrow_schema(schema)
    comments = {f.name: f.metadata["comment"] for f in schema.fields if f.metadata.get("comment")}
    fields = [
        f.with_nullable(True).with_metadata({"comment": comments[f.name]}) if f.name in comments else f.with_nullable(True)
        for f in arrow
    ]
    return DeltaSchema.from_arrow(pa.schema(fields))


def _delta_partition_value(value: Any) -> str | None:
    """A partition value as the Delta log spells it."""
    return None if value is None else partition_literal(value)


def _without_scheme(path: str) -> str:
    if "://" in path:
        return path.split("://", 1)[1]
    return path.removeprefix("file:")


def _remove_dir(fs: pafs.FileSystem, directory: str) -> None:
    if fs.get_file_info(directory).type == pafs.FileType.Directory:
        fs.delete_dir(directory)


def _now_ms() -> int:
    return int(time.time() * 1000)


class DeltaRsEngine:
    name = "delta-rs"
    constraints_at_creation = False  # delta-rs refuses delta.constraints.* in a new table's configuration

    def __init__(self, spark: SparkSession, *, storage_options: dict[str, str] | None = None, commit_retries: int = 20):
        self.spark = spark
        self.storage_options = storage_options or None
        self.commit_retries = commit_retries
        # Delta files hold INT64 microsecond timestamps; Spark's default INT96 would not round-trip.
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")

    # ------------------------------------------------------------------ table access

    def _table(self, path: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(path, version=version, storage_options=self.storage_options)
        except DeltaRsTableNotFound as exc:
            raise TableNotFoundError(f"no Delta table at {path}: {exc}") from exc

    def exists(self, path: str) -> bool:
        return DeltaTable.is_deltatable(path, storage_options=self.storage_options)

    def version(self, path: str) -> int:
        return self._table(path).version()

    def partition_columns(self, path: str) -> list[str]:
        return list(self._table(path).metadata().partition_columns)

    @staticmethod
    def _spark_schema(dt: DeltaTable) -> T.StructType:
        return from_arrow_schema(pa.schema(dt.schema().to_arrow()), prefer_timestamp_ntz=True)

    def schema(self, path: str) -> T.StructType:
        return self._spark_schema(self._table(path))

    def _filesystem(self, path: str) -> tuple[pafs.FileSystem, str]:
        return pafs.FileSystem.from_uri(path)

    # ------------------------------------------------------------------ read

    @staticmethod
    def _check_readable(dt: DeltaTable, path: str) -> None:
        mapping = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
        if mapping not in (None, "none"):
            raise UnsupportedTableError(
                f"{path} uses column mapping ({mapping}); the delta-rs engine reads Parquet files by "
                f"physical column names and cannot read it: use a session with delta-spark"
            )
        features = dt.protocol().reader_features or []
        if "deletionVectors" in features and pa.table(dt.deletion_vectors()).num_rows:
            raise UnsupportedTableError(
                f"{path} has deletion vectors; the delta-rs engine reads whole Parquet files and would "
                f"return deleted rows: purge them (REORG TABLE ... APPLY (PURGE)) or use delta-spark"
            )

    def _scan(self, dt: DeltaTable, path: str) -> DataFrame:
        self._check_readable(dt, path)
        schema = self._spark_schema(dt)
        # the log's paths are URL-encoded relative paths; file_uris() would also encode the root
        files = [self._absolute(path, p) for p in pa.table(dt.get_add_actions()).column("path").to_pylist()]
        if not files:
            return self.spark.createDataFrame([], schema)
        df = self.spark.read.schema(schema).option("basePath", path).parquet(*files)
        return df.select(*[F.col(f"`{name}`") for name in schema.fieldNames()])

    def read(self, path: str, *, version: int | None, as_of: datetime | None) -> DataFrame:
        dt = self._table(path, version=version)
        if as_of is not None:
            dt.load_as_version(as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc))
        return self._scan(dt, path)

    # ------------------------------------------------------------------ write

    def _stage(self, df: DataFrame, path: str, partition_by: Sequence[str]) -> tuple[str, str, list[StagedFile]]:
        """Spark writes the Parquet files of one write under a staging folder of its own."""
        fs, table_dir = self._filesystem(path)
        staging = f"{table_dir}/{STAGING_DIR}/{uuid.uuid4().hex}"
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        staging_uri = path.rstrip("/") + staging[len(table_dir):]
        try:
            writer.parquet(staging_uri)
        except BaseException:
            _remove_dir(fs, staging)
            raise
        staged = []
        for info in fs.get_file_info(pafs.FileSelector(staging, recursive=True)):
            if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
                continue
            if info.base_name.startswith((".", "_")):
                continue
            relative = info.path[len(staging) + 1 :]
            relative_dir = relative.rpartition("/")[0]
            staged.append(
                StagedFile(
                    staged_path=info.path,
                    relative_path=relative,
                    partition_values=_partition_values_of(relative_dir),
                    size=info.size,
                    num_records=pq.read_metadata(info.path, filesystem=fs).num_rows,
                )
            )
        return staging, staging_uri, staged

    def _publish(self, path: str, staged: list[StagedFile]) -> list[AddAction]:
        fs, table_dir = self._filesystem(path)
        actions = []
        now = _now_ms()
        for item in staged:
            target = f"{table_dir}/{item.relative_path}"
            parent = target.rpartition("/")[0]
            if parent != table_dir:
                fs.create_dir(parent, recursive=True)
            fs.move(item.staged_path, target)
            actions.append(
                AddAction(
                    path=item.relative_path,
                    size=item.size,
                    partition_values=item.partition_values,
                    modification_time=now,
                    data_change=True,
                    stats=json.dumps({"numRecords": item.num_records}),
                )
            )
        return actions

    def _discard(self, path: str, staging: str, published: list[AddAction]) -> None:
        fs, table_dir = self._filesystem(path)
        if published and self.exists(path):
            live = {unquote(p) for p in pa.table(self._table(path).get_add_actions()).column("path").to_pylist()}
            if any(a.path in live for a in published):
                log.warning("%s: the commit landed before the error; keeping its files", path)
                _remove_dir(fs, staging)
                return
        for action in published:
            target = f"{table_dir}/{action.path}"
            if fs.get_file_info(target).type == pafs.FileType.File:
                fs.delete_file(target)
        _remove_dir(fs, staging)

    def _commit_properties(self, operation: str, *, retries: int | None = None, **params: Any) -> CommitProperties:
        metadata = {"c360_operation": operation, "c360_engine": ENGINE_INFO}
        metadata.update({k: json.dumps(v) for k, v in params.items()})
        return CommitProperties(
            custom_metadata=metadata, max_commit_retries=self.commit_retries if retries is None else retries
        )

    def _staged_write(
        self,
        df: DataFrame,
        path: str,
        partition_by: Sequence[str],
        commit: Callable[[list[AddAction]], None],
        validate: Callable[[list[StagedFile]], None] | None = None,
        *,
        table: str,
    ) -> list[AddAction]:
        """Stage, check, publish and commit; on any failure remove this write's files and re-raise.

        The files are Spark's, committed through delta-rs's transaction API, which does not check
        the table's CHECK constraints: they are checked here on the staged rows (one scan)."""
        checks = table_constraints(self.properties(path)) if self.exists(path) else {}
        staging, staging_uri, staged = self._stage(df, path, partition_by)
        published: list[AddAction] = []
        try:
            if validate is not None:
                validate(staged)
            if checks and staged:
                self._check_constraints(self.spark.read.schema(df.schema).parquet(staging_uri), table, checks)
            published = self._publish(path, staged)
            commit(published)
        except BaseException:
            self._discard(path, staging, published)
            raise
        _remove_dir(self._filesystem(path)[0], staging)
        return published

    @staticmethod
    def _check_constraints(rows: DataFrame, table: str, checks: Mapping[str, str]) -> None:
        """Raise naming the first constraint some row breaks (false or null, as Delta counts it)."""
        broken = rows.select([
            F.max(F.when(F.coalesce(F.expr(f"({expression})"), F.lit(False)), 0).otherwise(1)).alias(f"c{i}")
            for i, expression in enumerate(checks.values())
        ]).first()
        for i, (name, expression) in enumerate(checks.items()):
            if broken is not None and broken[f"c{i}"] == 1:
                raise constraint_violation(table, f"CHECK constraint {name} ({expression})")

    def write(self, df: DataFrame, path: str, spec: WriteSpec) -> WriteResult:
        table, mode, partition_by, replace = spec.table, spec.mode, spec.partition_by, spec.replace
        schema_mode, exists, properties = spec.schema_mode, spec.exists, spec.properties
        new_schema = _delta_schema(df.schema)
        # what this write path can keep true; Change Data Feed and deletion vectors need delta-spark
        configuration = {k: v for k, v in properties.items() if k not in DELTA_SPARK_ONLY_PROPERTIES}
        removed_before = 0
        regions = (replace or {}).get(REGION_COLUMN)

        def within_replaced(staged: list[StagedFile]) -> None:
            for column, allowed in (replace or {}).items():
                outside = sorted({str(s.partition_values.get(column)) for s in staged} - set(allowed))
                if outside:
                    raise partition_mismatch(table, column, allowed, outside)

        def commit(actions: list[AddAction]) -> None:
            nonlocal removed_before
            props = self._commit_properties("WRITE", mode=mode, regions=list(regions or []), replace=replace or {})
            if not exists:
                try:
                    create_table_with_add_actions(
                        path, new_schema, actions, mode="error", partition_by=list(partition_by),
                        name=table, configuration=configuration, storage_options=self.storage_options,
                        commit_properties=props,
                    )
                    return
                except Exception as exc:  # another writer may have created it meanwhile
                    if not self.exists(path):
                        raise
                    log.info("%s was created by a concurrent writer; appending to it (%s)", table, exc)
            dt = self._table(path)
            if schema_mode == "merge":
                self._add_new_columns(dt, new_schema)
                dt = self._table(path)
            schema = new_schema if schema_mode else dt.schema()
            filters = [(column, "in", list(values)) for column, values in replace.items()] if replace else None
            if mode == "overwrite":
                removed_before = len(dt.file_uris(filters))
            dt.create_write_transaction(
                actions,
                mode=mode,
                schema=schema,
                partition_by=list(partition_by),
                partition_filters=filters,
                commit_properties=props,
            )

        actions = self._staged_write(
            df, path, partition_by, commit, validate=within_replaced if replace else None, table=table
        )
        return WriteResult(
            table=table,
            version=self.version(path),
            operation="WRITE",
            files_added=len(actions),
            files_removed=removed_before,
            rows_written=sum(json.loads(a.stats)["numRecords"] for a in actions),
        )

    @staticmethod
    def _add_new_columns(dt: DeltaTable, schema: DeltaSchema) -> None:
        """Schema evolution: a commit of its own that adds the new (nullable) columns."""
        known = {f.name for f in dt.schema().fields}
        added = [f for f in schema.fields if f.name not in known]
        if added:
            log.info("%s: adding column(s) %s", dt.table_uri, [f.name for f in added])
            dt.alter.add_columns(added)

    # ------------------------------------------------------------------ merge

    def merge(
        self, df: DataFrame, path: str, *, table: str, keys: Sequence[str], schema_mode: SchemaMode | None
    ) -> WriteResult:
        """Copy-on-write upsert computed by Spark, committed as removes + adds in one transaction.

        A merge reads the table, so a concurrent commit invalidates it: it is then redone from the
        start on the new version (up to ``commit_retries`` times) rather than committed blindly.
        """
        for attempt in range(self.commit_retries + 1):
            try:
                return self._merge_once(df, path, table=table, keys=keys, schema_mode=schema_mode)
            except CommitFailedError as exc:
                if attempt == self.commit_retries:
                    raise
                log.info("%s: merge conflicted with a concurrent commit; redoing it (%s)", table, exc)
        raise AssertionError("unreachable")

    def _merge_once(
        self, df: DataFrame, path: str, *, table: str, keys: Sequence[str], schema_mode: SchemaMode | None
    ) -> WriteResult:
        dt = self._table(path)
        self._check_writable(dt, path, "merge into")
        if schema_mode == "merge":
            self._add_new_columns(dt, _delta_schema(df.schema))
            dt = self._table(path)
        partition_by = list(dt.metadata().partition_columns)
        target = self._scan(dt, path).withColumn("_c360_file", F.input_file_name())
        key_cols = [f"`{k}`" for k in keys]
        touched_uris = [
            row[0]
            for row in target.select(*key_cols, "_c360_file")
            .join(df.select(*key_cols), on=list(keys), how="left_semi")
            .select("_c360_file")
            .distinct()
            .collect()
        ]
        # keys: the file's path without scheme, decoded (Spark's input_file_name() is an encoded URI)
        actions_by_path = {
            _without_scheme(self._absolute(path, row["path"])): row
            for row in pa.table(dt.get_add_actions(flatten=True)).to_pylist()
        }
        touched = [actions_by_path[uri_to_path(uri)] for uri in touched_uris]
        kept = (
            target.where(F.col("_c360_file").isin(touched_uris))
            .drop("_c360_file")
            .join(df.select(*key_cols), on=list(keys), how="left_anti")
        )
        rewritten = kept.unionByName(df, allowMissingColumns=True) if touched_uris else df
        now = _now_ms()
        removes = [
            RemoveAction(
                path=unquote(row["path"]),
                data_change=True,
                deletion_timestamp=now,
                size=row["size_bytes"],
                partition_values={c: _delta_partition_value(row.get(f"partition.{c}")) for c in partition_by},
            )
            for row in touched
        ]

        def commit(actions: list[AddAction]) -> None:
            dt.create_write_transaction(
                [*actions, *removes],
                mode="append",
                schema=dt.schema(),
                partition_by=partition_by,
                # no automatic retry: a concurrent commit may have changed the rows this merge read
                commit_properties=self._commit_properties("MERGE", retries=0, keys=list(keys)),
            )

        actions = self._staged_write(rewritten, path, partition_by, commit, table=table)
        return WriteResult(
            table=table,
            version=self.version(path),
            operation="MERGE",
            files_added=len(actions),
            files_removed=len(removes),
            rows_written=sum(json.loads(a.stats)["numRecords"] for a in actions),
        )

    @staticmethod
    def _absolute(path: str, relative: str) -> str:
        """A data file as Spark names it: the table's path or URI plus the decoded relative path."""
        return f"{path.rstrip('/')}/{unquote(relative)}"

    # ------------------------------------------------------------------ maintenance

    def delete(self, path: str, *, table: str, where: str) -> WriteResult:
        dt = self._table(path)
        self._check_writable(dt, path, "delete from")
        metrics = dt.delete(where, commit_properties=self._commit_properties("DELETE", predicate=where))
        return WriteResult(
            table=table,
            version=dt.version(),
            operation="DELETE",
            files_added=int(metrics.get("num_added_files", 0)),
            files_removed=int(metrics.get("num_removed_files", 0)),
            rows_written=int(metrics.get("num_copied_rows", 0)),
            rows_deleted=int(metrics.get("num_deleted_rows", 0)),
            metrics=metrics,
        )

    def history(self, path: str, *, limit: int | None) -> list[dict[str, Any]]:
        rows = []
        for commit in self._table(path).history(limit):
            params = dict(commit.get("operationParameters") or {})
            if "zOrderBy" in commit:  # our own commit metadata (delta-rs records no Z-order columns)
                params["zOrderBy"] = commit["zOrderBy"]
            rows.append(
                {
                    "version": int(commit["version"]),
                    "timestamp": datetime.fromtimestamp(commit["timestamp"] / 1000, tz=timezone.utc),
                    "operation": commit.get("c360_operation") or commit.get("operation"),
                    "operation_parameters": {
                        str(k): v if isinstance(v, str) else json.dumps(v) for k, v in params.items()
                    },
                }
            )
        return rows

    def vacuum(self, path: str, *, retention_hours: int, enforce_retention: bool) -> list[str]:
        dt = self._table(path)
        removed = dt.vacuum(
            retention_hours=retention_hours,
            dry_run=False,
            enforce_retention_duration=enforce_retention,
            full=True,
        )
        removed = list(removed) + self._vacuum_staging(path, retention_hours)
        log.info("vacuum %s: %d files removed", path, len(removed))
        return removed

    def _vacuum_staging(self, path: str, retention_hours: int) -> list[str]:
        """Staging folders left by interrupted writes, once older than the retention."""
        fs, table_dir = self._filesystem(path)
        cutoff = time.time() - retention_hours * 3600
        removed: list[str] = []
        for info in fs.get_file_info(pafs.FileSelector(f"{table_dir}/{STAGING_DIR}", allow_not_found=True)):
            if info.type == pafs.FileType.Directory and info.mtime is not None and info.mtime.timestamp() <= cutoff:
                files = fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
                removed += [f.path for f in files if f.type == pafs.FileType.File]
                fs.delete_dir(info.path)
        return removed

    def purge_history(self, path: str) -> int:
        dt = self._table(path)
        dt.create_checkpoint()
        version = dt.version()
        fs, table_dir = self._filesystem(path)
        log_dir = f"{table_dir}/_delta_log"
        names = [i.base_name for i in fs.get_file_info(pafs.FileSelector(log_dir)) if i.type == pafs.FileType.File]
        doomed = older_log_entries(names, version)
        for name in doomed:
            fs.delete_file(f"{log_dir}/{name}")
        log.info("%s: log truncated to the checkpoint of v%d (%d entries removed)", path, version, len(doomed))
        return len(doomed)

    def column_comments(self, path: str) -> dict[str, str]:
        return {f.name: f.metadata["comment"] for f in self._table(path).schema().fields if f.metadata.get("comment")}

    def optimize(self, path: str, *, regions: Sequence[str] | None, zorder_by: Sequence[str]) -> dict[str, Any]:
        dt = self._table(path)
        self._check_writable(dt, path, "optimize")
        filters = [(REGION_COLUMN, "in", list(regions))] if regions else None
        if zorder_by:  # recorded as delta-spark records it: zOrderBy, a JSON list
            props = self._commit_properties("OPTIMIZE", zOrderBy=list(zorder_by))
            return dt.optimize.z_order(list(zorder_by), partition_filters=filters, commit_properties=props)
        props = self._commit_properties("OPTIMIZE")
        return dt.optimize.compact(partition_filters=filters, commit_properties=props)

    def properties(self, path: str) -> dict[str, str]:
        return {k: v for k, v in self._table(path).metadata().configuration.items() if v is not None}

    def add_constraints(self, path: str, constraints: Mapping[str, str]) -> None:
        dt = self._table(path)
        self._check_writable(dt, path, "add a constraint to")
        dt.alter.add_constraint(dict(constraints))  # all in one commit

    def drop_constraint(self, path: str, name: str) -> None:
        dt = self._table(path)
        self._check_writable(dt, path, "drop a constraint of")
        dt.alter.drop_constraint(name, raise_if_not_exists=False)

    def changes(self, path: str, *, start_version: int, end_version: int | None) -> DataFrame:
        raise UnsupportedTableError(
            f"{path}: reading Change Data Feed needs the delta-spark engine (Delta Lake's jar, `make jars`)"
        )

    def purge_deleted_rows(self, path: str) -> dict[str, Any]:
        self._check_writable(self._table(path), path, "purge deleted rows of")
        return {}  # delta-rs writes no deletion vectors: deleted rows are already gone from the files

    @staticmethod
    def _check_writable(dt: DeltaTable, path: str, what: str) -> None:
        """Refuse, with the reason, a rewrite this engine would get wrong: a table recording Change
        Data Feed (delta-rs's copy-on-write merge and delete write no change files, so the feed would
        miss or misstate the change) or one with deletion vectors (it cannot apply them)."""
        configuration = dt.metadata().configuration
        on = [k for k in DELTA_SPARK_ONLY_PROPERTIES if (configuration.get(k) or "false").lower() == "true"]
        if on:
            raise UnsupportedTableError(
                f"cannot {what} {path} with the delta-rs engine: the table has {', '.join(on)} "
                f"(set by delta-spark), which this engine's rewrites would break; use the delta-spark "
                f"engine (Delta Lake's jar, `make jars`)"
            )
