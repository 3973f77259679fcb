"""The cluster engine: Delta Lake's own Spark API (Databricks, or Spark started with the Delta jar).

A thin adapter: every check and every result shape is shared with the delta-rs engine in
``core``. It cannot run on machines without the Delta jar, so it holds no logic of its own.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyspark.sql.functions as F
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.errors import PartitionMismatchError, TableNotFoundError
from customer360.lakehouse.common import (
    partition_literal,
    partition_mismatch,
    REGION_COLUMN,
    SchemaMode,
    WriteResult,
    WriteSpec,
    older_log_entries,
    redo_on_conflict,
    sql_string_list,
)


_EXPR_ID = re.compile(r"#\d+")


def _plain_parameter(value: str | None) -> str | None:
    """delta-spark records predicates as a JSON list of resolved expressions
    (``["(customer_id#4054 = c5)"]``): one predicate comes back as its text without expression ids."""
    if value is None or not value.startswith("["):
        return value
    try:
        items = json.loads(value)
    except ValueError:
        return value
    if isinstance(items, list) and len(items) == 1 and isinstance(items[0], str):
        return _EXPR_ID.sub("", items[0])
    return value


class DeltaSparkEngine:
    name = "delta-spark"
    constraints_at_creation = True

    def __init__(self, spark: SparkSession, *, commit_retries: int = 20):
        from delta.tables import DeltaTable

        self.spark = spark
        self.commit_retries = commit_retries
        self._delta_table = DeltaTable
        # INT64 microsecond timestamps, as delta-rs writes and reads them (Spark's default is INT96)
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")

    def _table(self, path: str):
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        return self._delta_table.forPath(self.spark, path)

    def exists(self, path: str) -> bool:
        if self._delta_table.isDeltaTable(self.spark, path):
            return True
        # Delta answers from the snapshot it cached when this session first looked: a log folder
        # that held no commit then (a writer killed while creating the table) stays "no table"
        # after another process commits one, unless the log is listed again
        jvm = getattr(self.spark, "_jvm", None)
        if jvm is None:
            return False
        jspark = self.spark._jsparkSession
        log_path = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
        if not log_path.getFileSystem(jspark.sessionState().newHadoopConf()).exists(log_path):
            return False
        empty = jvm.scala.Option.empty()
        return int(jvm.org.apache.spark.sql.delta.DeltaLog.forTable(jspark, path).update(False, empty, empty).version()) >= 0

    def _detail(self, path: str) -> Any:
        return self._table(path).detail().first()

    def _snapshot(self, path: str) -> Any | None:
        """The table's latest snapshot from Delta's JVM ``DeltaLog`` (a listing of ``_delta_log``,
        cached between calls): version, schema, partitioning and properties without a Spark job.
        None under Spark Connect (no JVM in the client), where the DataFrame API answers instead."""
        jvm = getattr(self.spark, "_jvm", None)
        if jvm is None:
            return None
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        empty = jvm.scala.Option.empty()
        return jvm.org.apache.spark.sql.delta.DeltaLog.forTable(self.spark._jsparkSession, path).update(False, empty, empty)

    def _as_python(self, scala_collection: Any) -> Any:
        return self.spark._jvm.scala.jdk.javaapi.CollectionConverters.asJava(scala_collection)

    def version(self, path: str) -> int:
        snapshot = self._snapshot(path)
        if snapshot is None:
            return int(self._table(path).history(1).first()["version"])
        return int(snapshot.version())

    def partition_columns(self, path: str) -> list[str]:
        snapshot = self._snapshot(path)
        if snapshot is None:
            return list(self._detail(path)["partitionColumns"])
        return [str(c) for c in self._as_python(snapshot.metadata().partitionColumns())]

    def schema(self, path: str) -> T.StructType:
        snapshot = self._snapshot(path)
        if snapshot is None:
            return self.spark.read.format("delta").load(path).schema
        return T.StructType.fromJson(json.loads(snapshot.metadata().schemaString()))

    def read(self, path: str, *, version: int | None, as_of: datetime | None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if as_of is not None:
            reader = reader.option("timestampAsOf", as_of.isoformat())
        return reader.load(path)

    def _result(self, path: str, table: str, *, after: int, operation: str, tag: str | None = None) -> WriteResult:
        """This operation's commit: the first after ``after`` with our tag (writes) or operation."""
        new = self.version(path) - after
        if new <= 0:  # Delta commits nothing for an append of no rows: the table is unchanged
            return WriteResult(table=table, version=after, operation=operation, rows_written=0)
        commits = (
            self._table(path).history(new).where(f"version > {after}").orderBy("version")
            .select("version", "operation", "operationMetrics", "userMetadata").collect()
        )
        mine = [c for c in commits if (c["userMetadata"] == tag if tag else c["operation"] == operation)]
        last = mine[0] if mine else commits[-1]
        metrics = dict(last["operationMetrics"] or {})
        return WriteResult(
            table=table,
            version=int(last["version"]),
            operation=last["operation"],
            files_added=int(metrics.get("numFiles", metrics.get("numAddedFiles", metrics.get("numTargetFilesAdded", 0)))),
            files_removed=int(metrics.get("numRemovedFiles", metrics.get("numTargetFilesRemoved", 0))),
            rows_written=int(metrics.get("numOutputRows", metrics.get("numCopiedRows", 0))),
            rows_deleted=int(metrics["numDeletedRows"]) if "numDeletedRows" in metrics else None,
            metrics=metrics,
        )

    def write(self, df: DataFrame, path: str, spec: WriteSpec) -> WriteResult:
        table, mode, partition_by, replace = spec.table, spec.mode, spec.partition_by, spec.replace
        schema_mode, exists, properties = spec.schema_mode, spec.exists, spec.properties
        before = self.version(path) if exists else -1
        tag = f"c360-write-{uuid.uuid4().hex}"
        writer = df.write.format("delta").mode(mode).option("userMetadata", tag)
        if not exists:  # "delta.*" writer options become the new table's properties
            for key, value in properties.items():
                writer = writer.option(key, value)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace:
            where = " AND ".join(f"`{column}` IN ({sql_string_list(values)})" for column, values in replace.items())
            writer = writer.option("replaceWhere", where)
        if schema_mode == "merge":
            writer = writer.option("mergeSchema", "true")
        elif schema_mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        try:
            writer.save(path)
        except AnalysisException as exc:
            if replace and "DELTA_REPLACE_WHERE_MISMATCH" in str(exc):
                raise self._outside_replaced(df, table, replace) from exc
            raise
        self._update_comments(path, df.schema)
        return self._result(path, table, after=before, operation="WRITE", tag=tag)

    @staticmethod
    def _outside_replaced(df: DataFrame, table: str, replace: dict[str, list[str]]) -> Exception:
        """The shared error naming the values outside the replacement (computed on failure only)."""
        for column, allowed in replace.items():
            values = {partition_literal(r[0]) for r in df.select(F.col(f"`{column}`")).distinct().collect()}
            outside = sorted(values - set(allowed))
            if outside:
                return partition_mismatch(table, column, allowed, outside)
        return PartitionMismatchError(f"{table}: data outside the replaced partitions {replace}")

    def _update_comments(self, path: str, schema: T.StructType) -> None:
        """mergeSchema keeps an existing column's old comment; set the ones the frame changed."""
        current = self.column_comments(path)
        for f in schema.fields:
            comment = f.metadata.get("comment")
            if comment and current.get(f.name) != comment:
                quoted = comment.replace("\\", "\\\\").replace("'", "\\'")
                self.spark.sql(f"ALTER TABLE delta.`{_quoted_path(path)}` ALTER COLUMN `{f.name}` COMMENT '{quoted}'")

    def merge(
        self, df: DataFrame, path: str, *, table: str, keys: Sequence[str], schema_mode: SchemaMode | None
    ) -> WriteResult:
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)

        def merge_once() -> WriteResult:
            before = self.version(path)
            builder = self._table(path).alias("t").merge(df.alias("s"), condition)
            if schema_mode == "merge":
                builder = builder.withSchemaEvolution()
            builder.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
            return self._result(path, table, after=before, operation="MERGE")

        return redo_on_conflict(merge_once, retries=self.commit_retries, what=f"{table}: merge")

    def delete(self, path: str, *, table: str, where: str) -> WriteResult:
        before = self.version(path)
        self._table(path).delete(where)
        return self._result(path, table, after=before, operation="DELETE")

    def history(self, path: str, *, limit: int | None) -> list[dict[str, Any]]:
        frame = self._table(path).history(limit) if limit else self._table(path).history()
        return [
            {
                "version": int(r["version"]),
                "timestamp": r["timestamp"],
                "operation": r["operation"],
                "operation_parameters": {k: _plain_parameter(v) for k, v in (r["operationParameters"] or {}).items()},
            }
            for r in frame.select("version", "timestamp", "operation", "operationParameters").collect()
        ]

    def vacuum(self, path: str, *, retention_hours: int, enforce_retention: bool) -> list[str]:
        key = "spark.databricks.delta.retentionDurationCheck.enabled"
        previous = self.spark.conf.get(key, "true")
        if not enforce_retention:
            self.spark.conf.set(key, "false")
        try:
            self._table(path)
            target = f"delta.`{_quoted_path(path)}` RETAIN {int(retention_hours)} HOURS"
            doomed = [r[0] for r in self.spark.sql(f"VACUUM {target} DRY RUN").collect()]
            self.spark.sql(f"VACUUM {target}")
        finally:
            self.spark.conf.set(key, previous)
        return doomed

    def column_comments(self, path: str) -> dict[str, str]:
        return {f.name: f.metadata["comment"] for f in self.schema(path).fields if f.metadata.get("comment")}

    def purge_history(self, path: str) -> int:
        # Delta's own checkpoint (JVM), then the older log entries removed through Hadoop's
        # FileSystem, which reaches every store the session can write to
        jvm, jspark = self.spark._jvm, self.spark._jsparkSession
        delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(jspark, path)
        snapshot = delta_log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty())
        delta_log.checkpoint(snapshot, jvm.scala.Option.empty())  # (snapshot, catalog table: none, by path)
        log_path = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
        fs = log_path.getFileSystem(jspark.sessionState().newHadoopConf())
        names = [status.getPath().getName() for status in fs.listStatus(log_path) if status.isFile()]
        doomed = older_log_entries(names, int(snapshot.version()))
        for name in doomed:
            fs.delete(jvm.org.apache.hadoop.fs.Path(log_path, name), False)
        return len(doomed)

    def optimize(self, path: str, *, regions: Sequence[str] | None, zorder_by: Sequence[str]) -> dict[str, Any]:
        builder = self._table(path).optimize()
        if regions:
            builder = builder.where(f"`{REGION_COLUMN}` IN ({sql_string_list(regions)})")
        frame = builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
        row = frame.first()
        return row.asDict(recursive=True)["metrics"] if row is not None else {}

    def properties(self, path: str) -> dict[str, str]:
        snapshot = self._snapshot(path)
        if snapshot is None:
            return dict(self._detail(path)["properties"] or {})
        return {str(k): str(v) for k, v in dict(self._as_python(snapshot.metadata().configuration())).items()}

    def add_constraints(self, path: str, constraints: Mapping[str, str]) -> None:
        # one commit each (Delta's ALTER adds one); Delta checks the rows already in the table
        # before it records a constraint. New tables get theirs with their creating commit.
        for name, expression in constraints.items():
            self.spark.sql(f"ALTER TABLE delta.`{_quoted_path(path)}` ADD CONSTRAINT {name} CHECK ({expression})")

    def drop_constraint(self, path: str, name: str) -> None:
        self.spark.sql(f"ALTER TABLE delta.`{_quoted_path(path)}` DROP CONSTRAINT IF EXISTS {name}")

    def changes(self, path: str, *, start_version: int, end_version: int | None) -> DataFrame:
        reader = self.spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", start_version)
        if end_version is not None:
            reader = reader.option("endingVersion", end_version)
        return reader.load(path)

    def purge_deleted_rows(self, path: str) -> dict[str, Any]:
        if self.properties(path).get("delta.enableDeletionVectors", "false").lower() != "true":
            return {}
        row = self.spark.sql(f"REORG TABLE delta.`{_quoted_path(path)}` APPLY (PURGE)").first()
        return row.asDict(recursive=True)["metrics"] if row is not None else {}


def _quoted_path(path: str) -> str:
    """A path inside delta.`...` (a backtick in it doubled)."""
    return path.replace("`", "``")
