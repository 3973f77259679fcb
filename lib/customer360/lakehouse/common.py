"""What the lakehouse facade and both engines share: result and mode types, the engine protocol,
partition literals, commit-conflict handling and Delta log names.

This module sits below ``core`` (the facade) and the engines (``deltaspark``, ``deltars``); it
imports neither, so the arrows point one way: core -> engines -> common.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from customer360.errors import ConstraintViolationError, PartitionMismatchError

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "ops")
REGION_COLUMN = "region"
WriteMode = Literal["overwrite", "append"]
SchemaMode = Literal["merge", "overwrite"]


@dataclass(frozen=True)
class WriteSpec:
    """One write as an engine receives it, after ``Lakehouse.write`` has checked it."""

    table: str
    mode: WriteMode
    partition_by: Sequence[str]
    #: partition column -> the values whose rows the write replaces (None: by ``mode``)
    replace: dict[str, list[str]] | None
    schema_mode: SchemaMode | None
    #: whether the table exists already
    exists: bool
    #: table properties a new table is created with
    properties: Mapping[str, str]


@dataclass(frozen=True)
class WriteResult:
    """What one committed write did. ``rows_written`` counts rows in the files it added."""

    table: str
    version: int
    operation: str
    files_added: int = 0
    files_removed: int = 0
    rows_written: int | None = None
    rows_deleted: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


_CONSTRAINT_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: table properties that hold Delta CHECK constraints: delta.constraints.<name> = <expression>
CONSTRAINT_PREFIX = "delta.constraints."


@dataclass(frozen=True)
class Constraints:
    """What a table promises about every row, as Delta CHECK constraints that both engines enforce
    on every write (``delta.constraints.<name>`` in the table's properties).

    A column in ``not_null`` gets ``<column>_not_null: <column> IS NOT NULL``: Delta on Spark 4.1
    cannot turn a nullable column non-nullable, and tables are created by DataFrame writes whose
    columns are nullable, so NOT NULL is a CHECK here. ``checks`` are (name, SQL expression) pairs
    in the common subset of Spark SQL and DataFusion (comparisons, ``IN``, ``IS NULL``, ``AND``/``OR``).
    """

    not_null: tuple[str, ...] = ()
    checks: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for column in self.not_null:
            if not _CONSTRAINT_NAME.match(column):
                raise ValueError(f"NOT NULL column {column!r} must be a lower-case snake_case name")
        for name, expression in self.checks:
            if not _CONSTRAINT_NAME.match(name):
                raise ValueError(f"constraint name {name!r} must be lower-case snake_case")
            if not expression.strip() or ";" in expression:
                raise ValueError(f"constraint {name}: {expression!r} is not one SQL expression")

    def expressions(self) -> dict[str, str]:
        """Constraint name -> expression, NOT NULL columns first."""
        out = {f"{column}_not_null": f"{column} IS NOT NULL" for column in self.not_null}
        out.update(dict(self.checks))
        return out

    def __bool__(self) -> bool:
        return bool(self.not_null or self.checks)


def constraint_violation(table: str, which: str, *, existing: bool = False) -> ConstraintViolationError:
    """The error for rows that break ``which`` (a constraint, named): never the rows' values,
    which may be personal data."""
    what = "rows already in the table break" if existing else "rows break"
    return ConstraintViolationError(
        f"{table}: {what} {which}; nothing was committed (values not shown: they may be personal data)"
    )


def table_constraints(properties: Mapping[str, str]) -> dict[str, str]:
    """The CHECK constraints recorded in a table's properties, name -> expression."""
    return {k[len(CONSTRAINT_PREFIX):]: v for k, v in properties.items() if k.startswith(CONSTRAINT_PREFIX)}


def constraint_properties(constraints: Mapping[str, str]) -> dict[str, str]:
    """The table properties that record CHECK constraints (name -> expression), as Delta keeps them."""
    return {f"{CONSTRAINT_PREFIX}{name}": expression for name, expression in constraints.items()}


class StorageEngine(Protocol):
    """What an engine implements; paths are table locations, data frames already aligned."""

    name: str
    #: whether a new table's ``delta.constraints.*`` properties may come with its creating commit
    #: (delta-spark); otherwise (delta-rs refuses them there) they follow in one more commit
    constraints_at_creation: bool

    def exists(self, path: str) -> bool: ...
    def schema(self, path: str) -> T.StructType: ...
    def partition_columns(self, path: str) -> list[str]: ...
    def version(self, path: str) -> int: ...
    def read(self, path: str, *, version: int | None, as_of: datetime | None) -> DataFrame: ...
    def write(self, df: DataFrame, path: str, spec: WriteSpec) -> WriteResult: ...
    def merge(
        self, df: DataFrame, path: str, *, table: str, keys: Sequence[str], schema_mode: SchemaMode | None
    ) -> WriteResult: ...
    def delete(self, path: str, *, table: str, where: str) -> WriteResult: ...
    def history(self, path: str, *, limit: int | None) -> list[dict[str, Any]]: ...
    def vacuum(self, path: str, *, retention_hours: int, enforce_retention: bool) -> list[str]: ...
    def optimize(self, path: str, *, regions: Sequence[str] | None, zorder_by: Sequence[str]) -> dict[str, Any]: ...
    def properties(self, path: str) -> dict[str, str]: ...
    def add_constraints(self, path: str, constraints: Mapping[str, str]) -> None: ...
    def drop_constraint(self, path: str, name: str) -> None: ...
    def changes(self, path: str, *, start_version: int, end_version: int | None) -> DataFrame: ...
    def purge_deleted_rows(self, path: str) -> dict[str, Any]: ...
    def purge_history(self, path: str) -> int: ...
    def column_comments(self, path: str) -> dict[str, str]: ...


def sql_string_list(values: Sequence[str]) -> str:
    """``'a', 'b'`` for a SQL ``IN (...)``, quotes doubled."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def uri_to_path(uri: str) -> str:
    """A file URI or path as a decoded path without scheme (``file:///a%20b`` -> ``/a b``). A
    plain path is returned as it is: ``%20`` or ``;`` in a file name are characters, not escapes."""
    if "://" not in uri and not uri.startswith("file:"):
        return uri
    parsed = urlsplit(uri)  # not urlparse: ';' in a name is not the start of URI parameters
    return unquote(parsed.path if parsed.scheme == "file" else parsed.netloc + parsed.path)


def partition_literal(value: Any) -> str:
    """A partition value as the Delta log spells it (dates ISO, booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


#: Delta Lake's optimistic-concurrency failures: another writer committed first (e.g. per-region
#: tasks of one Databricks job merging into the same ops table); the operation can be redone
DELTA_CONFLICTS = (
    "ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException", "MetadataChangedException", "ProtocolChangedException",
    "DELTA_CONCURRENT_APPEND", "DELTA_CONCURRENT_DELETE_READ", "DELTA_CONCURRENT_DELETE_DELETE",
    "DELTA_CONCURRENT_TRANSACTION", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED",
)


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a Delta concurrent-modification conflict (by class name or error class)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc)
    return any(name in names or name in text for name in DELTA_CONFLICTS)


def redo_on_conflict(operation, *, retries: int, what: str):
    """Run ``operation()``; when it loses a commit race (``is_commit_conflict``), run it again from
    the start (it re-reads the table), at most ``retries`` more times."""
    for attempt in range(retries + 1):
        try:
            return operation()
        except Exception as exc:
            if attempt == retries or not is_commit_conflict(exc):
                raise
            log.info("%s conflicted with a concurrent commit; redoing it (%s)", what, str(exc).splitlines()[0][:200])
    raise AssertionError("unreachable")


_LOG_ENTRY_RE = re.compile(r"^(\d{20})\.(json|crc|checkpoint\.parquet|checkpoint\.\d+\.\d+\.parquet)$")


def older_log_entries(names: Sequence[str], version: int) -> list[str]:
    """Delta log file names of versions before ``version`` (commits, checksums, checkpoints)."""
    out = []
    for name in names:
        m = _LOG_ENTRY_RE.match(name)
        if m and int(m.group(1)) < version:
            out.append(name)
    return sorted(out)


def partition_mismatch(table: str, column: str, allowed: Sequence[str], outside: Sequence[str]) -> PartitionMismatchError:
    """The error of a write whose rows fall outside the partitions it replaces (both engines)."""
    what = "regions" if column == REGION_COLUMN else f"{column} values"
    return PartitionMismatchError(f"{table}: write replaces {what} {list(allowed)} but the data also holds {sorted(outside)}")




#: table properties delta-rs's write path cannot keep true: Change Data Feed needs change files
#: for updates and deletes, deletion vectors a reader that applies them
DELTA_SPARK_ONLY_PROPERTIES = ("delta.enableChangeDataFeed", "delta.enableDeletionVectors")


def described_columns(*columns: tuple[str, T.DataType, bool, str]) -> tuple[T.StructType, dict[str, str]]:
    """A table's schema and its column descriptions (for ``with_comments``) from one
    ``(name, type, nullable, description)`` per column, so a column is named once."""
    names = [c[0] for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"a column is declared twice: {names}")
    schema = T.StructType([T.StructField(name, data_type, nullable) for name, data_type, nullable, _ in columns])
    return schema, {name: description for name, _, _, description in columns}
