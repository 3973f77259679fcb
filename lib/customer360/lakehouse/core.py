"""The one interface for table I/O: names, shared checks, and the engine choice.

Layering: this facade imports the two engines (``deltaspark``, ``deltars``), which import only
``common``; nothing below imports this module.

Tables are named ``<layer>.<table>`` and live at ``<root>/<layer>/<table>`` as Delta tables.
Everything that does not depend on the storage engine (name rules, schema alignment, merge
key checks, the shape of history) lives here, so the delta-rs engine that runs in tests and
the delta-spark engine used on clusters give the same results.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.config import LakehouseConfig
from customer360.errors import (
    ConstraintViolationError,
    DuplicateKeyError,
    EngineUnavailableError,
    SchemaMismatchError,
    TableNameError,
    UnsupportedTableError,
)
from customer360.lakehouse.common import (  # noqa: F401  (re-exported: callers import them from core)
    LAYERS,
    REGION_COLUMN,
    Constraints,
    SchemaMode,
    StorageEngine,
    WriteMode,
    WriteResult,
    WriteSpec,
    described_columns,
    partition_literal,
    redo_on_conflict,
    is_commit_conflict,
    constraint_properties,
    constraint_violation,
    sql_string_list,
    table_constraints,
    uri_to_path,
)
from customer360.lakehouse.catalog import CatalogSync, TableCatalog
from customer360.lakehouse.deltars import DeltaRsEngine
from customer360.lakehouse.deltaspark import DeltaSparkEngine
from customer360.session import DELTA_EXTENSION, SessionCapabilities, detect_capabilities

log = logging.getLogger(__name__)


_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
#: a Delta log entry that makes a version: a commit or a checkpoint
_VERSION_FILE_RE = re.compile(r"^\d{20}\.(json|checkpoint\b.*)$")
#: Types allowed as partition columns: their string form in the Delta log is unambiguous.
PARTITION_TYPES = (T.StringType, T.IntegerType, T.LongType, T.ShortType, T.ByteType, T.DateType, T.BooleanType)

HISTORY_SCHEMA = T.StructType(
    [
        T.StructField("version", T.LongType(), False),
        T.StructField("timestamp", T.TimestampType(), True),
        T.StructField("operation", T.StringType(), True),
        T.StructField("operation_parameters", T.MapType(T.StringType(), T.StringType()), True),
    ]
)


@dataclass
class LineageRecorder:
    """The tables a job read (with the Delta version read) and wrote (version, rows): what
    ``ops.job_runs`` records. ``Lakehouse`` feeds it on every read and commit."""

    reads: dict[str, int] = field(default_factory=dict)
    writes: list[WriteResult] = field(default_factory=list)

    def reset(self) -> None:
        self.reads.clear()
        self.writes.clear()

    def read(self, table: str, version: int) -> None:
        # the first version a job read is the one its results rest on
        self.reads.setdefault(table, version)

    def wrote(self, result: WriteResult) -> None:
        self.writes.append(result)

    def outputs(self) -> list[tuple[str, int, str, int | None]]:
        """(table, last version written, operations, rows written) per table, in first-write order."""
        by_table: dict[str, list[WriteResult]] = {}
        for w in self.writes:
            by_table.setdefault(w.table, []).append(w)
        out = []
        for table, results in by_table.items():
            rows = [r.rows_written for r in results if r.rows_written is not None]
            operations = ",".join(dict.fromkeys(r.operation for r in results))
            out.append((table, max(r.version for r in results), operations, sum(rows) if rows else None))
        return out


# --------------------------------------------------------------------------- shared helpers


# --------------------------------------------------------------------------- shared checks


def parse_table_name(name: str) -> tuple[str, str]:
    layer, sep, table = name.partition(".")
    if not sep or layer not in LAYERS or not _TABLE_RE.match(table):
        raise TableNameError(
            f"table name {name!r} must be <layer>.<table> with layer one of {', '.join(LAYERS)} "
            f"and a lower-case snake_case table name"
        )
    return layer, table


def _type_name(data_type: T.DataType) -> str:
    return data_type.simpleString()


def align_to_table(df: DataFrame, table_schema: T.StructType, *, schema_mode: SchemaMode | None) -> DataFrame:
    """Reorder ``df`` to the table's columns, fill columns it lacks with nulls, and police types.

    New columns are appended only with ``schema_mode="merge"``; a changed type is always an error
    unless the whole schema is being replaced (``schema_mode="overwrite"``).
    """
    if schema_mode == "overwrite":
        return df
    incoming = {f.name: f for f in df.schema.fields}
    existing = {f.name: f for f in table_schema.fields}
    changed = [
        f"{name} ({_type_name(existing[name].dataType)} -> {_type_name(f.dataType)})"
        for name, f in incoming.items()
        # simpleString ignores element and value nullability, which reads and rewrites change
        if name in existing and _type_name(f.dataType) != _type_name(existing[name].dataType)
    ]
    if changed:
        raise SchemaMismatchError(
            f"column type change not allowed: {', '.join(changed)}; cast the data, or replace the "
            f"table's schema with schema_mode='overwrite'"
        )
    added = [name for name in incoming if name not in existing]
    if added and schema_mode != "merge":
        raise SchemaMismatchError(
            f"new column(s) {added} are not in the table; pass schema_mode='merge' to add them"
        )
    columns = [
        F.col(f"`{f.name}`") if f.name in incoming else F.lit(None).cast(f.dataType).alias(f.name, metadata=f.metadata)
        for f in table_schema.fields
    ]
    columns += [F.col(f"`{name}`") for name in added]
    return df.select(*columns)


def with_comments(df: DataFrame, comments: Mapping[str, str]) -> DataFrame:
    """``df`` with each column's description in its field metadata (``comment``), which both
    engines store in the Delta schema. Every column must have one."""
    missing = [c for c in df.columns if not comments.get(c)]
    if missing:
        raise SchemaMismatchError(f"column(s) {missing} have no description")
    return df.select(
        *[F.col(f"`{f.name}`").alias(f.name, metadata={**f.metadata, "comment": comments[f.name]}) for f in df.schema.fields]
    )


def keep_comments(df: DataFrame, stored: Mapping[str, str]) -> DataFrame:
    """``df`` with the table's stored description on each column that brings none (a frame read
    back from a table and rewritten carries no comments; the rewrite must not drop them)."""
    bare = [f for f in df.schema.fields if not f.metadata.get("comment") and stored.get(f.name)]
    if not bare:
        return df
    names = {f.name for f in bare}
    return df.select(*[
        F.col(f"`{f.name}`").alias(f.name, metadata={**f.metadata, "comment": stored[f.name]}) if f.name in names
        else F.col(f"`{f.name}`")
        for f in df.schema.fields
    ])


def check_partition_columns(schema: T.StructType, partition_by: Sequence[str]) -> None:
    fields = {f.name: f for f in schema.fields}
    for column in partition_by:
        if column not in fields:
            raise SchemaMismatchError(f"partition column {column!r} is not in the data ({', '.join(fields)})")
        if not isinstance(fields[column].dataType, PARTITION_TYPES):
            raise SchemaMismatchError(
                f"partition column {column!r} has type {_type_name(fields[column].dataType)}; "
                f"use a string, integer, date or boolean column"
            )
    if len(partition_by) == len(fields):
        raise SchemaMismatchError("a table needs at least one column that is not a partition column")


def check_merge_keys(df: DataFrame, keys: Sequence[str], *, table: str) -> None:
    """Fail unless every source row has a non-null, unique key (one Spark job)."""
    if not keys:
        raise DuplicateKeyError(f"merge into {table}: at least one key column is required")
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise SchemaMismatchError(f"merge into {table}: key column(s) {missing} not in the source")
    key_cols = [F.col(f"`{k}`") for k in keys]
    has_null = F.greatest(*[c.isNull().cast("int") for c in key_cols]) if len(keys) > 1 else key_cols[0].isNull().cast("int")
    offenders = (
        df.groupBy(*key_cols)
        .agg(F.count(F.lit(1)).alias("_rows"), F.max(has_null).alias("_null_key"))
        .where((F.col("_rows") > 1) | (F.col("_null_key") == 1))
        .orderBy(F.col("_rows").desc())
        .limit(5)
        .collect()
    )
    nulls = [r for r in offenders if r["_null_key"] == 1]
    if nulls:
        raise DuplicateKeyError(
            f"merge into {table}: source has rows with a null in key column(s) {list(keys)}; "
            f"an upsert needs every key present"
        )
    if offenders:
        examples = "; ".join(
            ", ".join(f"{k}={r[k]!r}" for k in keys) + f" ({r['_rows']} rows)" for r in offenders
        )
        raise DuplicateKeyError(
            f"merge into {table}: source has duplicate keys on {list(keys)}, e.g. {examples}; "
            f"deduplicate the source first"
        )


# --------------------------------------------------------------------------- engine choice


def choose_engine(
    spark: SparkSession, config: LakehouseConfig, *, capabilities: SessionCapabilities | None = None
) -> StorageEngine:
    """delta-spark when the session has Delta Lake's JVM classes, delta-rs otherwise (or as configured)."""
    caps = capabilities or detect_capabilities(spark)
    wanted = config.engine
    if wanted == "auto":
        wanted = "delta-spark" if caps.delta_spark else "delta-rs"
        reason = (
            "Delta Lake JVM classes present" if caps.delta_spark else f"{DELTA_EXTENSION} not loaded in this session"
        )
    else:
        reason = "set by lakehouse.engine"
    if wanted == "delta-spark":
        if not caps.delta_spark:
            raise EngineUnavailableError(
                f"lakehouse.engine is delta-spark but this session has no Delta Lake: start Spark with "
                f"the io.delta:delta-spark jar and spark.sql.extensions={DELTA_EXTENSION}, or use engine auto"
            )
        engine: StorageEngine = DeltaSparkEngine(spark, commit_retries=config.commit_retries)
    else:
        engine = DeltaRsEngine(
            spark, storage_options=dict(config.storage_options), commit_retries=config.commit_retries
        )
    log.info("lakehouse engine: %s (%s)", engine.name, reason)
    return engine


#: how each engine reports a row that breaks a constraint (delta-spark: Delta's error classes and
#: exception; delta-rs: DataFusion's validation)
_VIOLATION_MARKERS = (
    "DELTA_VIOLATE_CONSTRAINT", "DeltaInvariantViolationException", "DELTA_NEW_CHECK_CONSTRAINT_VIOLATION",
    "DELTA_NOT_NULL_CONSTRAINT_VIOLATED", "failed validation check", "Check or Invariant",
)
_VIOLATED = re.compile(r"CHECK constraint (\w+) \((.*?)\) violated")


def _check_constraint_expressions(df: DataFrame, table: str, expressions: Mapping[str, str]) -> None:
    """Each constraint is a condition over the frame's columns (Spark's analyzer, no job): a
    constraint recorded with a table's creating commit is not checked by Delta as ALTER TABLE
    ADD CONSTRAINT would check it."""
    for constraint, expression in expressions.items():
        try:
            data_type = df.select(F.expr(expression)).schema.fields[0].dataType
        except Exception as exc:  # noqa: BLE001 - the analyzer's own message says what is wrong
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SchemaMismatchError(f"{table}: constraint {constraint} ({expression}) does not apply to its columns: {first}") from None
        if not isinstance(data_type, T.BooleanType):
            raise SchemaMismatchError(
                f"{table}: constraint {constraint} ({expression}) is not a condition: it gives {data_type.simpleString()}"
            )


# --------------------------------------------------------------------------- the interface


class Lakehouse:
    """All table I/O of the pipeline. ``Lakehouse(spark, config.lakehouse)``."""

    def __init__(self, spark: SparkSession, config: LakehouseConfig, *, engine: StorageEngine | None = None):
        self.spark = spark
        self.config = config
        self.root = config.root.rstrip("/")
        self.engine = engine or choose_engine(spark, config)
        self.lineage = LineageRecorder()
        #: the tables' names in the session's catalog (lakehouse.catalog)
        self.catalog = TableCatalog(spark, self.root, catalog_name=config.catalog.name)

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def path(self, name: str) -> str:
        layer, table = parse_table_name(name)
        return f"{self.root}/{layer}/{table}"

    def exists(self, name: str) -> bool:
        return self.engine.exists(self.path(name))

    def _require(self, name: str) -> str:
        from customer360.errors import TableNotFoundError

        path = self.path(name)
        if not self.engine.exists(path):
            raise TableNotFoundError(f"table {name} does not exist (no Delta table at {path})")
        return path

    def version(self, name: str) -> int:
        return self.engine.version(self._require(name))

    def schema(self, name: str) -> T.StructType:
        return self.engine.schema(self._require(name))

    def partition_columns(self, name: str) -> list[str]:
        return self.engine.partition_columns(self._require(name))

    def read(self, name: str, *, version: int | None = None, as_of: datetime | None = None) -> DataFrame:
        """The table now, at a ``version``, or as of a timestamp (time travel)."""
        if version is not None and as_of is not None:
            raise ValueError("pass version or as_of, not both")
        path = self._require(name)
        if version is None and as_of is None:
            # pinned, so what the job read is exactly the version it records
            version = self.engine.version(path)
        if version is not None:
            self.lineage.read(name, version)
        return self.engine.read(path, version=version, as_of=as_of)

    def write(
        self,
        df: DataFrame,
        name: str,
        *,
        mode: WriteMode = "overwrite",
        partition_by: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        partitions: Mapping[str, Sequence[Any]] | None = None,
        schema_mode: SchemaMode | None = None,
        constraints: Constraints | None = None,
    ) -> WriteResult:
        """Overwrite, append, or (``regions=[...]``) replace only those regions' partitions.

        ``constraints``: what every row of the table promises (Delta CHECK constraints). A new
        table is created empty with them first, so Delta checks the first rows too; an existing
        table gets the ones it lacks (Delta checks its rows then). Rows that break one fail the
        write with ``ConstraintViolationError`` and nothing is committed.

        ``partitions={"as_of_date": [d]}`` narrows the replacement further to those values of
        other partition columns (with ``regions``, the rows in both). The data must lie inside
        what it replaces. A write is one Delta commit: if it fails, readers keep seeing the
        previous version.
        """
        if partitions and regions is None:
            raise ValueError("partitions={...} narrows a regions=[...] replacement: pass regions too")
        if mode not in ("overwrite", "append"):
            raise ValueError(f"mode must be 'overwrite' or 'append', not {mode!r}")
        if schema_mode not in (None, "merge", "overwrite"):
            raise ValueError(f"schema_mode must be None, 'merge' or 'overwrite', not {schema_mode!r}")
        if regions is not None:
            regions = sorted(set(regions))
            if mode != "overwrite" or not regions:
                raise ValueError("regions=[...] replaces those regions' partitions: use it with mode='overwrite'")
            if schema_mode == "overwrite":
                raise ValueError("schema_mode='overwrite' replaces the whole table; it cannot be limited to regions")
        if schema_mode == "overwrite" and mode != "overwrite":
            raise ValueError("schema_mode='overwrite' replaces the table's schema: use it with mode='overwrite'")
        path = self.path(name)
        exists = self.engine.exists(path)
        if exists:
            table_partitions = self.engine.partition_columns(path)
            if partition_by is not None and list(partition_by) != table_partitions:
                raise SchemaMismatchError(
                    f"{name} is partitioned by {table_partitions}, not {list(partition_by)}; "
                    f"re-partitioning a table is not supported: write a new table"
                )
            partition_by = table_partitions
            df = align_to_table(df, self.engine.schema(path), schema_mode=schema_mode)
            if schema_mode != "overwrite":  # a replaced schema brings its own descriptions
                df = keep_comments(df, self.engine.column_comments(path))
        partition_by = list(partition_by or [])
        check_partition_columns(df.schema, partition_by)
        if regions is not None and REGION_COLUMN not in partition_by:
            raise SchemaMismatchError(f"{name} is not partitioned by {REGION_COLUMN!r}; cannot replace regions")
        replace = None
        if regions is not None:
            replace = {REGION_COLUMN: list(regions)}
            for column, values in (partitions or {}).items():
                if column not in partition_by or column == REGION_COLUMN:
                    raise SchemaMismatchError(f"{name}: {column!r} is not a partition column besides region ({partition_by})")
                if not values:
                    raise ValueError(f"partitions[{column!r}] is empty")
                replace[column] = sorted({partition_literal(v) for v in values})
        properties = self.config.table_properties(parse_table_name(name)[0])
        if constraints:
            if not exists:  # an empty table with its constraints first: Delta then checks every row
                expressions = constraints.expressions()
                _check_constraint_expressions(df, name, expressions)
                creating = dict(properties)
                if self.engine.constraints_at_creation:  # one commit, not one per constraint
                    creating.update(constraint_properties(expressions))
                    log.info("%s: created with constraints %s", name, ", ".join(expressions))
                self.engine.write(
                    df.limit(0), path, WriteSpec(name, "overwrite", partition_by, None, None, exists=False, properties=creating)
                )
                exists = True
            self._ensure_constraints(name, path, constraints)
        with self._constraint_errors(name, path):
            result = self.engine.write(df, path, WriteSpec(name, mode, partition_by, replace, schema_mode, exists, properties))
        self.lineage.wrote(result)
        log.info(
            "%s: %s v%d (%s rows, +%d/-%d files)",
            name, result.operation, result.version, result.rows_written, result.files_added, result.files_removed,
        )
        return result

    def merge(
        self,
        df: DataFrame,
        name: str,
        *,
        keys: Sequence[str],
        partition_by: Sequence[str] | None = None,
        schema_mode: Literal["merge"] | None = None,
        constraints: Constraints | None = None,
    ) -> WriteResult:
        """Upsert on ``keys``: matched rows are replaced, others inserted. Creates the table if absent.

        With ``schema_mode="merge"`` new source columns are added to the table (null in old rows).
        ``constraints`` as in ``write``.
        """
        check_merge_keys(df, keys, table=name)
        path = self.path(name)
        if not self.engine.exists(path):
            return self.write(df, name, mode="overwrite", partition_by=partition_by, constraints=constraints)
        if constraints:
            self._ensure_constraints(name, path, constraints)
        df = align_to_table(df, self.engine.schema(path), schema_mode=schema_mode)
        df = keep_comments(df, self.engine.column_comments(path))
        partitions = self.engine.partition_columns(path)
        if partition_by is not None and list(partition_by) != partitions:
            raise SchemaMismatchError(f"{name} is partitioned by {partitions}, not {list(partition_by)}")
        with self._constraint_errors(name, path):
            result = self.engine.merge(df, path, table=name, keys=list(keys), schema_mode=schema_mode)
        self.lineage.wrote(result)
        return result

    def constraints(self, name: str) -> dict[str, str]:
        """The table's CHECK constraints, name -> expression."""
        return table_constraints(self.engine.properties(self._require(name)))

    def _ensure_constraints(self, name: str, path: str, constraints: Constraints) -> None:
        """Add the constraints the table lacks, and replace one whose expression changed."""
        present = table_constraints(self.engine.properties(path))
        missing = {c: e for c, e in constraints.expressions().items() if present.get(c) != e}
        if missing:
            for changed in sorted(set(missing) & set(present)):
                self.engine.drop_constraint(path, changed)
            adding = ("constraint " if len(missing) == 1 else "constraints ") + ", ".join(missing)
            with self._constraint_errors(name, path, adding=adding):
                self.engine.add_constraints(path, missing)
            for constraint, expression in missing.items():
                log.info("%s: constraint %s CHECK (%s)", name, constraint, expression)

    @contextmanager
    def _constraint_errors(self, name: str, path: str, *, adding: str | None = None):
        """A constraint violation as ``ConstraintViolationError`` naming the constraint, never the
        row's values (both engines print them, and they may be personal data)."""
        try:
            yield
        except ConstraintViolationError:
            raise
        except Exception as exc:
            text = str(exc)
            if not any(marker in text for marker in _VIOLATION_MARKERS):
                raise
            found = _VIOLATED.search(text)
            if found:
                which = f"CHECK constraint {found.group(1)} ({found.group(2)})"
            elif adding is not None:
                which = f"the new {adding}"
            else:
                declared = table_constraints(self.engine.properties(path))
                which = "the table's constraints (" + "; ".join(f"{k}: {v}" for k, v in declared.items()) + ")"
            raise constraint_violation(name, which, existing=adding is not None) from None

    def delete(self, name: str, where: str) -> WriteResult:
        """Delete rows matching a SQL predicate, e.g. ``"region = 'us' AND customer_id = 'c1'"``."""
        if not where or not where.strip():
            raise ValueError("delete needs a predicate; to empty a table, overwrite it")
        result = self.engine.delete(self._require(name), table=name, where=where)
        self.lineage.wrote(result)
        return result

    def history(self, name: str, *, limit: int | None = None) -> DataFrame:
        """Commits, newest first: version, timestamp, operation, operation_parameters."""
        rows = self.engine.history(self._require(name), limit=limit)
        return self.spark.createDataFrame(rows, HISTORY_SCHEMA)

    def vacuum(
        self, name: str, *, retention_hours: int | None = None, enforce_retention: bool = True
    ) -> list[str]:
        """Delete files no longer referenced and older than the retention (default from config)."""
        hours = self.config.vacuum_retention_hours if retention_hours is None else retention_hours
        return self.engine.vacuum(self._require(name), retention_hours=hours, enforce_retention=enforce_retention)

    def purge_history(self, name: str) -> int:
        """Checkpoint the current version and delete every older log entry (commits, their
        predicates and file statistics): time travel before now is gone. Erasure uses it after a
        vacuum so no old version can bring deleted rows back. Returns log files removed."""
        return self.engine.purge_history(self._require(name))

    def optimize(
        self, name: str, *, regions: Sequence[str] | None = None, zorder_by: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Compact small files (of the given regions only, when named), clustering rows by
        ``zorder_by`` (default: the table's ``lakehouse.zorder`` columns, if any)."""
        columns = list(self.config.zorder.get(name, ()) if zorder_by is None else zorder_by)
        path = self._require(name)
        if columns:
            known = set(self.engine.schema(path).fieldNames())
            partitions = set(self.engine.partition_columns(path))
            bad = [c for c in columns if c not in known or c in partitions]
            if bad:
                raise SchemaMismatchError(f"{name}: cannot Z-order by {bad}: not a data column of the table")
        metrics = self.engine.optimize(path, regions=regions, zorder_by=columns)
        self.lineage.wrote(WriteResult(table=name, version=self.engine.version(path), operation="OPTIMIZE", metrics=metrics))
        return metrics

    def properties(self, name: str) -> dict[str, str]:
        """The table's Delta properties (``delta.enableChangeDataFeed``, retention, ...)."""
        return self.engine.properties(self._require(name))

    def changes(self, name: str, *, start_version: int, end_version: int | None = None) -> DataFrame:
        """Change Data Feed rows between two versions (inclusive): the table's columns plus
        ``_change_type`` (insert, update_preimage, update_postimage, delete), ``_commit_version``
        and ``_commit_timestamp``. Needs ``delta.enableChangeDataFeed`` (silver and gold by default)."""
        if start_version < 0 or (end_version is not None and end_version < start_version):
            raise ValueError(f"bad version range {start_version}..{end_version}")
        path = self._require(name)
        if self.engine.properties(path).get("delta.enableChangeDataFeed", "false").lower() != "true":
            raise UnsupportedTableError(
                f"{name} does not record Change Data Feed (delta.enableChangeDataFeed is off); "
                f"lakehouse.change_data_feed_layers says which layers do"
            )
        return self.engine.changes(path, start_version=start_version, end_version=end_version)

    def purge_deleted_rows(self, name: str) -> dict[str, Any]:
        """Rewrite the files that deletion vectors mark (``REORG TABLE ... APPLY (PURGE)``) so a
        vacuum can remove the old files and nothing deleted remains in any file. A no-op for
        tables without deletion vectors."""
        return self.engine.purge_deleted_rows(self._require(name))

    def column_comments(self, name: str) -> dict[str, str]:
        """Column -> description stored in the table's Delta schema (columns without one left out)."""
        return self.engine.column_comments(self._require(name))

    def table_name(self, name: str) -> str:
        """``name`` as the catalog knows it (``gold.customer_360`` or ``<catalog>.gold.customer_360``),
        quoted for SQL: ``spark.table(lakehouse.table_name("gold.customer_360"))``."""
        parse_table_name(name)
        return self.catalog.qualified(name)

    def sync_catalog(self, names: Sequence[str] | None = None) -> CatalogSync:
        """Register ``names`` (default: every table under the root) in the session's catalog as
        external tables over their paths; names already right are left alone."""
        for name in names or ():
            parse_table_name(name)
        return self.catalog.sync(self.tables() if names is None else names)

    def tables(self) -> list[str]:
        """Every ``<layer>.<table>`` under the root that is a Delta table: one whose log holds a
        commit or a checkpoint (a writer killed while creating a table leaves a log without one)."""
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            fs, base = pafs.FileSystem.from_uri(self.root)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise ValueError(f"cannot list tables under {self.root}: {exc}") from exc
        found = []
        for layer in LAYERS:
            selector = pafs.FileSelector(f"{base}/{layer}", allow_not_found=True)
            for info in fs.get_file_info(selector):
                if info.type == pafs.FileType.Directory and _TABLE_RE.match(info.base_name):
                    log = pafs.FileSelector(f"{info.path}/_delta_log", allow_not_found=True)
                    if any(_VERSION_FILE_RE.match(entry.base_name) for entry in fs.get_file_info(log)):
                        found.append(f"{layer}.{info.base_name}")
        return sorted(found)

