"""The cluster engine: Delta Lake's own Spark API (Databricks, or Spark started with the Delta jar).

A thin adapter: every check and every result shape is shared with the delta-rs engine in
``core``. It cannot run on machines without the Delta jar, so it holds no logic of its own.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.errors import PartitionMismatchError, TableNotFoundError
from customer360.lakehouse.core import (
    REGION_COLUMN,
    SchemaMode,
    WriteMode,
    WriteResult,
    older_log_entries,
    redo_on_conflict,
    sql_string_list,
)


class DeltaSparkEngine:
    name = "delta-spark"

    def __init__(self, spark: SparkSession, *, commit_retries: int = 20):
        from delta.tables import DeltaTable

        self.spark = spark
        self.commit_retries = commit_retries
        self._delta_table = DeltaTable

    def _table(self, path: str):
        if not self.exists(path):
            raise TableNotFoundError(f"no Delta table at {path}")
        return self._delta_table.forPath(self.spark, path)

    def exists(self, path: str) -> bool:
        return self._delta_table.isDeltaTable(self.spark, path)

    def _detail(self, path: str) -> Any:
        return self._table(path).detail().first()

    def version(self, path: str) -> int:
        return int(self._table(path).history(1).first()["version"])

    def partition_columns(self, path: str) -> list[str]:
        return list(self._detail(path)["partitionColumns"])

    def schema(self, path: str) -> T.StructType:
        return self.spark.read.format("delta").load(path).schema

    def read(self, path: str, *, version: int | None, as_of: datetime | None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if as_of is not None:
            reader = reader.option("timestampAsOf", as_of.isoformat())
        return reader.load(path)

    def _result(self, path: str, table: str, *, after: int, operation: str, tag: str | None = None) -> WriteResult:
        """This operation's commit: the first after ``after`` with our tag (writes) or operation."""
        commits = (
            self._table(path).history().where(f"version > {after}").orderBy("version")
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

    def write(
        self,
        df: DataFrame,
        path: str,
        *,
        table: str,
        mode: WriteMode,
        partition_by: Sequence[str],
        replace: dict[str, list[str]] | None,
        schema_mode: SchemaMode | None,
        exists: bool,
    ) -> WriteResult:
        before = self.version(path) if exists else -1
        tag = f"c360-write-{uuid.uuid4().hex}"
        writer = df.write.format("delta").mode(mode).option("userMetadata", tag)
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
            message = str(exc)
            if replace and ("replaceWhere" in message or "does not conform" in message):
                raise PartitionMismatchError(f"{table}: data outside the replaced partitions {replace}: {exc}") from exc
            raise
        self._update_comments(path, df.schema)
        return self._result(path, table, after=before, operation="WRITE", tag=tag)

    def _update_comments(self, path: str, schema: T.StructType) -> None:
        """mergeSchema keeps an existing column's old comment; set the ones the frame changed."""
        current = self.column_comments(path)
        for f in schema.fields:
            comment = f.metadata.get("comment")
            if comment and current.get(f.name) != comment:
                quoted = comment.replace("\\", "\\\\").replace("'", "\\'")
                self.spark.sql(f"ALTER TABLE delta.`{path}` ALTER COLUMN `{f.name}` COMMENT '{quoted}'")

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
                "operation_parameters": dict(r["operationParameters"] or {}),
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
            target = f"delta.`{path}` RETAIN {int(retention_hours)} HOURS"
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
        delta_log.checkpoint(snapshot)
        log_path = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
        fs = log_path.getFileSystem(jspark.sessionState().newHadoopConf())
        names = [status.getPath().getName() for status in fs.listStatus(log_path) if status.isFile()]
        doomed = older_log_entries(names, int(snapshot.version()))
        for name in doomed:
            fs.delete(jvm.org.apache.hadoop.fs.Path(log_path, name), False)
        return len(doomed)

    def optimize(self, path: str, *, regions: Sequence[str] | None) -> dict[str, Any]:
        builder = self._table(path).optimize()
        if regions:
            builder = builder.where(f"`{REGION_COLUMN}` IN ({sql_string_list(regions)})")
        row = builder.executeCompaction().first()
        return row.asDict(recursive=True)["metrics"] if row is not None else {}
