"""Bronze ingestion: every raw row lands in ``bronze.<source>`` or ``bronze._quarantine``, never nowhere.

Per source and run:

1. list the files under ``<landing_root>/<source>/<region>/``; compare each file's SHA-256 with
   its current status in ``ops.ingested_files`` (an append-only log of status changes; see
   ``ingested_files``): new files are loaded, unchanged ones skipped, files whose content
   changed after loading are reported and not loaded again;
2. read the new files as strings (CSV by its header, JSON lines by their keys, Parquet by its
   footer), numbering rows within each file;
3. validate against the contract (``contracts.py``): unparseable line, missing required field,
   wrong type, impossible value. Rows with no reason go to bronze, typed, with ingestion
   metadata; the others go to quarantine with their raw payload and every reason;
4. check rows read = rows loaded + rows quarantined (the loaded and quarantined counts are those
   the Delta commits report), and record the files as loaded.

A file that lacks a required column fails whole: nothing of it is written. A file whose load
was interrupted (status ``loading``) has its rows deleted and is loaded again on the next run.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlparse

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyspark.sql.functions as F
from pyspark import StorageLevel
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.bronze.contracts import (
    CONTRACTS,
    EARLIEST_BIRTH_DATE,
    EARLIEST_TIMESTAMP,
    INGESTED_FILES_SCHEMA,
    QUARANTINE_CONSTRAINTS,
    QUARANTINE_SCHEMA,
    Column,
    SourceContract,
)
from customer360.context import RunContext
from customer360.errors import C360Error
from customer360.files import FileDigest, csv_header, file_digest  # noqa: F401 - FileDigest: bronze's public name too
from customer360.lakehouse.core import sql_string_list, uri_to_path
from customer360.tables import INGESTED_FILES, QUARANTINE, bronze_table

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
#: a time stamp with no zone at all; anything else (offsets, zone names) is parsed as written
_NAIVE_TIME_RE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


class AccountingError(C360Error):
    """Rows read did not equal rows loaded plus rows quarantined: a bug, never data to ignore."""


class MissingRequiredColumnError(C360Error):
    """A source file lacks a column its contract requires; the file is not loaded."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # as the filesystem names it
    relative: str  # <source>/<region>/<name>, what tables record
    region: str
    size: int


@dataclass
class SourceReport:
    source: str
    files_new: int = 0
    files_unchanged: int = 0
    files_changed: list[str] = field(default_factory=list)
    files_failed: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    #: rows of erased people (tombstones): neither loaded nor quarantined
    rows_erased: int = 0
    new_columns: list[str] = field(default_factory=list)
    #: files a stream listed that were gone when the load looked for them (not fatal: reported)
    files_vanished: list[str] = field(default_factory=list)
    #: region -> rows_read / rows_loaded / rows_quarantined
    by_region: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, other: SourceReport) -> None:
        """Fold in another load of the same source (a stream's micro-batches)."""
        for name in ("files_new", "files_unchanged", "rows_read", "rows_loaded", "rows_quarantined", "rows_erased"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("files_changed", "files_failed", "files_vanished"):
            getattr(self, name).extend(getattr(other, name))
        self.new_columns += [c for c in other.new_columns if c not in self.new_columns]
        for region, counts in other.by_region.items():
            mine = self.by_region.setdefault(region, zero_counts())
            for metric, value in counts.items():
                mine[metric] = mine.get(metric, 0) + value

    def line(self) -> str:
        text = (
            f"{self.source}: files {self.files_new} new, {self.files_unchanged} unchanged, "
            f"{len(self.files_changed)} changed, {len(self.files_failed)} failed; "
            f"rows read {self.rows_read:,} = loaded {self.rows_loaded:,} + quarantined {self.rows_quarantined:,}"
        )
        if self.rows_erased:
            text += f" + erased {self.rows_erased:,} (tombstones)"
        if self.new_columns:
            text += f"; new columns kept: {', '.join(self.new_columns)}"
        if self.files_vanished:
            text += f"; {len(self.files_vanished)} listed file(s) gone before reading: {', '.join(self.files_vanished)}"
        return text


# --------------------------------------------------------------------------- files


def discover_files(
    landing_root: str, contract: SourceContract, regions: Sequence[str], *, unaccepted: list[SourceFile] | None = None
) -> list[SourceFile]:
    """The source's files under ``<landing_root>/<source>/<region>/`` with one of its extensions
    (exactly, lower case). Other files there (not hidden: ``.x``, ``_x``) go to ``unaccepted``, so
    the run can say it did not load them rather than pass over them in silence."""
    fs, base = pafs.FileSystem.from_uri(landing_root)
    found = []
    for region in regions:
        folder = f"{base.rstrip('/')}/{contract.name}/{region}"
        for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True, recursive=False)):
            if info.type != pafs.FileType.File or info.base_name.startswith((".", "_")):
                continue
            f = SourceFile(
                path=_uri_like(landing_root, info.path),
                relative=f"{contract.name}/{region}/{info.base_name}",
                region=region,
                size=info.size,
            )
            if info.base_name.endswith(contract.extensions):
                found.append(f)
            elif unaccepted is not None:
                unaccepted.append(f)
    if unaccepted is not None:
        unaccepted.sort(key=lambda f: f.relative)
    return sorted(found, key=lambda f: f.relative)


def landing_folder(landing_root: str, source: str, region: str) -> tuple[pafs.FileSystem, str, str]:
    """A source's landing folder of a region, created when missing: its file system, its path
    there, and its path as the configured root names it (for Spark)."""
    root = landing_root.rstrip("/")
    fs, base = pafs.FileSystem.from_uri(root)
    folder = f"{base.rstrip('/')}/{source}/{region}"
    fs.create_dir(folder, recursive=True)
    return fs, folder, f"{root}/{source}/{region}"


def _uri_like(landing_root: str, fs_path: str) -> str:
    scheme = urlparse(landing_root).scheme
    return f"{scheme}://{fs_path}" if scheme and scheme != "file" else fs_path


def file_sha256(path: str) -> str:
    return file_digest(path).sha256


# --------------------------------------------------------------------------- reading


def _string_schema(names: Sequence[str], *, corrupt: bool) -> T.StructType:
    fields = [T.StructField(n, T.StringType(), True) for n in names]
    if corrupt:
        fields.append(T.StructField(CORRUPT, T.StringType(), True))
    return T.StructType(fields)


def _with_position(df: DataFrame) -> DataFrame:
    return df.select(
        "*",
        F.col("_metadata.file_path").alias("_file_uri"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_mid"),
    )


GLOB_CHARACTERS = set("[]*?{}\\")


def json_keys_by_file(spark: SparkSession, files: Sequence[SourceFile]) -> dict[str, set[str]]:
    """The top-level keys each JSON-lines file uses (one Spark job for all files)."""
    by_path = {uri_to_path(f.path): f.relative for f in files}
    keys: dict[str, set[str]] = {f.relative: set() for f in files}
    if not files:
        return keys
    rows = (
        spark.read.text([f.path for f in files])
        .select(F.col("_metadata.file_path").alias("file"), F.explode(F.json_object_keys("value")).alias("key"))
        .distinct()
        .collect()
    )
    for row in rows:
        keys[by_path[uri_to_path(row["file"])]].add(row["key"])
    return keys


def file_columns(
    spark: SparkSession, files: Sequence[SourceFile], contract: SourceContract, *, unreadable: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Column names per file: the CSV header, the JSON keys, or the Parquet footer. A Parquet file
    whose footer cannot be read gets no columns and its reason in ``unreadable``."""
    if contract.format == "json":
        keys = json_keys_by_file(spark, [f for f in files if f.size])
        return {f.relative: sorted(keys.get(f.relative, ())) for f in files}
    columns = {}
    for f in files:
        if not f.size:
            columns[f.relative] = []
        elif contract.format == "csv":
            columns[f.relative] = csv_header(f.path)
        else:
            fs, fs_path = pafs.FileSystem.from_uri(f.path)
            try:
                columns[f.relative] = pq.read_schema(fs_path, filesystem=fs).names
            except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
                columns[f.relative] = []
                if unreadable is not None:
                    unreadable[f.relative] = (str(exc).strip().splitlines() or ["unreadable"])[0][:200]
    return columns


def file_problem(
    f: SourceFile, columns: Sequence[str], contract: SourceContract, *, digest: FileDigest | None = None,
    unreadable: str | None = None, row_level: bool = False,
) -> str | None:
    """Why a file cannot be loaded at all (it then fails whole), or None. ``row_level``: a file of
    messages, whose lines are judged one by one (no JSON object, missing columns: row reasons)."""
    name = f.relative.rsplit("/", 1)[-1]
    if GLOB_CHARACTERS & set(name):
        return f"{f.relative}: file name has a glob character ([ ] * ? {{ }} \\), which Spark would expand; rename it"
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name):
        return f"{f.relative!r}: file name has a control character; rename it"
    if ":" in name:
        return f"{f.relative}: file name has a ':', which Hadoop paths cannot hold; rename it"
    if not f.size:
        return None if contract.format != "parquet" else f"{f.relative}: empty file is not Parquet"
    if unreadable:
        return f"{f.relative}: not a readable Parquet file ({unreadable}); file not loaded"
    if digest is not None and digest.bad_utf8_at is not None:
        return (f"{f.relative}: not valid UTF-8 (first bad byte at offset {digest.bad_utf8_at:,}); file not loaded: "
                f"export it as UTF-8")
    if row_level:
        return None
    if contract.format == "json" and not columns:
        return f"{f.relative}: no line is a JSON object; file not loaded (JSON lines expected: one object per line)"
    duplicated = sorted({c for c in columns if list(columns).count(c) > 1})
    if duplicated:
        return f"{f.relative}: duplicate column name(s) {duplicated} in the header; file not loaded"
    if contract.format == "csv" and any(not c for c in columns):
        return f"{f.relative}: a column of the header has no name; file not loaded"
    missing = [c for c in contract.required if c not in columns]
    if missing:
        return f"{f.relative}: missing required column(s) {missing}; file not loaded"
    if contract.format == "parquet":
        fs, fs_path = pafs.FileSystem.from_uri(f.path)
        schema = pq.read_schema(fs_path, filesystem=fs)
        nanos = [fld.name for fld in schema if getattr(fld.type, "unit", None) == "ns"]
        if nanos:
            return f"{f.relative}: nanosecond timestamps in {nanos}, which Spark cannot read; write microseconds"
    return None


def _as_text(field: T.StructField) -> SparkColumn:
    column = F.col(f"`{field.name}`")
    if isinstance(field.dataType, (T.StructType, T.ArrayType, T.MapType)):
        return F.to_json(column).alias(field.name)  # keeps field names, unlike a cast
    return column.cast("string").alias(field.name)


def read_raw(
    spark: SparkSession, files: Sequence[SourceFile], contract: SourceContract, columns_by_file: dict[str, list[str]]
) -> tuple[DataFrame, list[str]]:
    """All rows of ``files`` as strings plus ``_corrupt_record``, ``_blank``, ``_file_uri``, ``_block``, ``_mid``.

    Returns the frame and the column names found in the files (contract and extra ones).
    """
    frames: list[DataFrame] = []
    columns: list[str] = []
    for f in files:
        columns += [c for c in columns_by_file[f.relative] if c not in columns]
    if contract.format == "csv":
        groups: dict[tuple[str, ...], list[str]] = {}
        for f in files:
            groups.setdefault(tuple(columns_by_file[f.relative]), []).append(f.path)
        for header, group in groups.items():
            df = (
                spark.read.schema(_string_schema(header, corrupt=True))
                .option("header", True)
                .option("multiLine", True)  # quoted fields may hold line breaks
                .option("escape", '"')  # RFC 4180: a quote inside quotes is doubled
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT)
                .csv(group)
            )
            frames.append(_with_position(df).withColumn("_blank", F.lit(False)))
    elif contract.format == "json":
        # read lines as text so every line is one row: arrays or trailing text cannot split or hide rows
        names = list(dict.fromkeys([*contract.names, *columns]))
        text = _with_position(spark.read.text([f.path for f in files]))
        value = F.col("value")
        is_object = F.ltrim(value).startswith("{") & F.json_object_keys(value).isNotNull()
        parsed = F.from_json(value, _string_schema(names, corrupt=False))
        frames.append(
            text.select(
                *[parsed[n].alias(n) for n in names],
                F.when(~is_object, value).alias(CORRUPT),
                (F.trim(value) == "").alias("_blank"),
                "_file_uri",
                "_block",
                "_mid",
            )
        )
    else:
        typed_groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for f in files:
            fs, fs_path = pafs.FileSystem.from_uri(f.path)
            schema = pq.read_schema(fs_path, filesystem=fs)
            typed_groups.setdefault(tuple((fld.name, str(fld.type)) for fld in schema), []).append(f.path)
        # files whose column types differ are read apart, then everything is compared as text
        for group in typed_groups.values():
            df = spark.read.parquet(*group)
            frames.append(
                _with_position(
                    df.select(*[_as_text(fld) for fld in df.schema.fields], F.lit(None).cast("string").alias(CORRUPT))
                ).withColumn("_blank", F.lit(False))
            )
    combined = frames[0]
    for other in frames[1:]:
        combined = combined.unionByName(other, allowMissingColumns=True)
    return combined, columns


def number_rows(raw: DataFrame, files: Sequence[SourceFile]) -> tuple[DataFrame, dict[str, int]]:
    """Replace the read position with ``_source_file`` (relative path) and 1-based ``_row_number``.

    Rows of one file block are consecutive in one partition, so a row's number is the rows of
    the file's earlier blocks plus its place in its block. ``raw`` must be persisted: the
    block statistics and the rows have to come from the same read. Also returns each file's rows
    (by relative path, blank lines included), so its last row number is known.
    """
    stats = (
        raw.groupBy("_file_uri", "_block")
        .agg(F.count(F.lit(1)).alias("n"), F.min("_mid").alias("first_mid"))
        .collect()
    )
    by_path = {uri_to_path(f.path): f.relative for f in files}
    offsets = []
    running: dict[str, int] = {}
    for row in sorted(stats, key=lambda r: (r["_file_uri"], r["_block"])):
        relative = by_path[uri_to_path(row["_file_uri"])]
        start = running.get(relative, 0)
        offsets.append((row["_file_uri"], row["_block"], relative, start, row["first_mid"]))
        running[relative] = start + row["n"]
    offsets_df = raw.sparkSession.createDataFrame(
        offsets, "_file_uri string, _block long, _source_file string, _offset long, _first_mid long"
    )
    numbered = (
        raw.join(F.broadcast(offsets_df), ["_file_uri", "_block"])
        .withColumn("_row_number", F.col("_offset") + F.col("_mid") - F.col("_first_mid") + 1)
        .drop("_file_uri", "_block", "_mid", "_offset", "_first_mid")
    )
    return numbered, running


# --------------------------------------------------------------------------- validation


def _blank_to_null(c: SparkColumn) -> SparkColumn:
    trimmed = F.trim(c)
    return F.when(trimmed == "", F.lit(None)).otherwise(c)


def _typed(column: Column, raw: SparkColumn, time_zone: SparkColumn) -> SparkColumn:
    if isinstance(column.type, T.StringType):
        return raw
    if isinstance(column.type, T.TimestampType) and column.local_time:
        local = F.to_utc_timestamp(F.trim(raw).try_cast("timestamp_ntz").cast("timestamp"), time_zone)
        return F.when(F.trim(raw).rlike(_NAIVE_TIME_RE), local).otherwise(F.trim(raw).try_cast("timestamp"))
    if isinstance(column.type, T.BooleanType):
        lowered = F.lower(F.trim(raw))
        return F.when(lowered.isin("true", "1", "yes"), True).when(lowered.isin("false", "0", "no"), False)
    return F.trim(raw).try_cast(column.type)


def _checks(column: Column, raw: SparkColumn, typed: SparkColumn, now: datetime) -> list[SparkColumn]:
    name = column.name
    shown = F.substring(raw, 1, 60)
    checks = []
    if column.required:
        checks.append(F.when(raw.isNull(), F.lit(f"missing required field: {name}")))
    if not isinstance(column.type, T.StringType):
        checks.append(
            F.when(
                raw.isNotNull() & typed.isNull(),
                F.format_string(f"wrong type: {name} '%s' is not a {column.type.simpleString()}", shown),
            )
        )
    if isinstance(column.type, (T.DoubleType, T.FloatType)):
        checks.append(
            F.when(
                F.isnan(typed) | (F.abs(typed) == float("inf")),
                F.format_string(f"impossible value: {name} '%s' is not a finite number", shown),
            )
        )
    if column.minimum is not None:
        checks.append(
            F.when(typed < column.minimum, F.format_string(f"impossible value: {name} %s is below {column.minimum:g}", shown))
        )
    if column.maximum is not None:
        checks.append(
            F.when(typed > column.maximum, F.format_string(f"impossible value: {name} %s is above {column.maximum:g}", shown))
        )
    if isinstance(column.type, T.TimestampType):
        checks.append(
            F.when(
                typed < F.lit(EARLIEST_TIMESTAMP),
                F.format_string(f"impossible value: {name} %s is before {EARLIEST_TIMESTAMP:%Y-%m-%d}", shown),
            )
        )
    if isinstance(column.type, T.DateType):
        checks.append(
            F.when(
                typed < F.lit(EARLIEST_BIRTH_DATE),
                F.format_string(f"impossible value: {name} %s is before {EARLIEST_BIRTH_DATE:%Y-%m-%d}", shown),
            )
        )
    if column.not_future:
        limit = F.lit(now) if isinstance(column.type, T.TimestampType) else F.lit(now.date())
        checks.append(F.when(typed > limit, F.format_string(f"impossible value: {name} %s is in the future", shown)))
    if column.allowed is not None:
        checks.append(
            F.when(
                ~typed.isin(*column.allowed),
                F.format_string(f"impossible value: {name} '%s' is not one of {', '.join(column.allowed)}", shown),
            )
        )
    return checks


def validate(
    raw: DataFrame,
    contract: SourceContract,
    *,
    columns: Sequence[str],
    time_zones: dict[str, str],
    now: datetime,
) -> DataFrame:
    """Typed contract columns, extra columns as strings, ``_reasons`` (empty when the row is good),
    ``_raw_payload`` and ``_content_hash``. A pure transform of the frame ``read_raw`` made."""
    present = set(columns)
    raw_cols = {
        name: _blank_to_null(F.col(f"`{name}`")) if name in present else F.lit(None).cast("string")
        for name in dict.fromkeys([*contract.names, *columns])
    }
    zone_map = F.create_map(*[F.lit(x) for code, tz in sorted(time_zones.items()) for x in (code, tz)])
    region_raw = raw_cols["region"]
    # an unknown region is its own reason; parse its times as UTC rather than report them too
    time_zone = F.coalesce(zone_map[region_raw], F.lit("UTC"))

    typed = {c.name: _typed(c, raw_cols[c.name], time_zone) for c in contract.columns}
    reasons: list[SparkColumn] = []
    for c in contract.columns:
        reasons += _checks(c, raw_cols[c.name], typed[c.name], now)
        for other in c.requires:
            reasons.append(F.when(raw_cols[c.name].isNotNull() & raw_cols[other].isNull(),
                                  F.lit(f"missing required field: {other} (a row with {c.name} needs it)")))
    reasons.append(
        F.when(
            region_raw.isNotNull() & ~region_raw.isin(*time_zones),
            F.format_string("impossible value: region '%s' is not a configured region", region_raw),
        )
    )
    # <source>/<region>/<file>: a row must belong to the region whose folder holds it, or it
    # would be written to one region's partition and counted under another's
    folder_region = F.split(F.col("_source_file"), "/").getItem(1)
    reasons.append(
        F.when(
            region_raw.isin(*time_zones) & (region_raw != folder_region),
            F.format_string("impossible value: region '%s' in a file of the %s folder", region_raw, folder_region),
        )
    )
    all_reasons = F.filter(F.array(*reasons), lambda r: r.isNotNull())
    corrupt = F.col(CORRUPT)
    reasons_col = F.when(corrupt.isNotNull(), F.array(F.lit("unparseable line"))).otherwise(all_reasons)
    payload_struct = F.struct(*[raw_cols[name].alias(name) for name in columns])
    payload = F.coalesce(corrupt, F.to_json(payload_struct))
    extra = [name for name in columns if name not in contract.names]
    return raw.select(
        *[typed[c.name].alias(c.name) for c in contract.columns],
        *[raw_cols[name].alias(name) for name in extra],
        reasons_col.alias("_reasons"),
        payload.alias("_raw_payload"),
        F.sha2(payload, 256).alias("_content_hash"),
        "_source_file",
        "_row_number",
    )


# --------------------------------------------------------------------------- the stage


def ingested_files(lakehouse) -> DataFrame | None:
    """The current status of every file: the latest row per (source, file) of ``ops.ingested_files``,
    which is an append-only log of status changes (``loading`` → ``loaded`` / ``failed``). None
    before the first ingestion."""
    from pyspark.sql import Window

    if not lakehouse.exists(INGESTED_FILES):
        return None
    log_rows = lakehouse.read(INGESTED_FILES)
    latest = Window.partitionBy("source", "file").orderBy(F.col("recorded_at").desc_nulls_last(), F.col("ingested_at").desc())
    return log_rows.withColumn("_n", F.row_number().over(latest)).where("_n = 1").drop("_n")


def _registry(ctx: RunContext) -> dict[str, dict[str, tuple[str, str]]]:
    """source -> file -> (content hash, status), the files' current status (one read)."""
    current = ingested_files(ctx.lakehouse)
    if current is None:
        return {}
    known: dict[str, dict[str, tuple[str, str]]] = {}
    for r in current.select("source", "file", "content_hash", "status").collect():
        known.setdefault(r.source, {})[r.file] = (r.content_hash, r.status)
    return known


def _record_files(ctx: RunContext, rows: list[tuple]) -> None:
    """Append status rows (one Delta commit, no rewrite of earlier rows)."""
    if not rows:
        return
    recorded_at = datetime.now(timezone.utc)
    df = ctx.spark.createDataFrame([(*row, recorded_at) for row in rows], INGESTED_FILES_SCHEMA).coalesce(1)
    ctx.lakehouse.write(df, INGESTED_FILES, mode="append", schema_mode="merge")


class FileLedger:
    """Status rows for ``ops.ingested_files``, appended in batches (each write is a Spark job).

    Every file is marked ``loading`` in a flush before any of its rows is written, and its
    outcome (``loaded`` / ``failed``) is flushed when the run ends (also when it fails: the
    sources that finished are recorded). A run that dies in between leaves ``loading`` behind, and
    the next run removes those rows and loads the file again (re-loading a finished source then
    costs time, never rows).
    """

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.pending: dict[tuple[str, str], tuple] = {}

    def add(self, rows: Sequence[tuple]) -> None:
        for row in rows:
            self.pending[(row[0], row[1])] = row  # (source, file): the latest status wins

    def flush(self) -> None:
        rows, self.pending = list(self.pending.values()), {}
        _record_files(self.ctx, rows)


def _file_row(source: str, f: SourceFile, digest: str, status: str, run_id: str, now: datetime, **counts) -> tuple:
    return (
        source, f.relative, f.region, f.size, digest, status,
        counts.get("read"), counts.get("loaded"), counts.get("quarantined"), counts.get("message"), run_id, now,
    )


def zero_counts() -> dict[str, int]:
    return {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0, "rows_erased": 0}


def _erased_flag(ctx: RunContext, checked: DataFrame, source: str) -> DataFrame:
    """``_erased``: rows of people erased before (``ops.erasure_tombstones``) are not loaded again."""
    from customer360.governance.erasure import tombstoned, with_erased_flag
    from customer360.identity.standardize import standardize_email_for, standardize_identifier

    mapping = ctx.config.sources.get(source)
    tombstones = tombstoned(ctx.lakehouse, ctx.regions) if mapping is not None else None
    if tombstones is None:
        return checked.withColumn("_erased", F.lit(False))
    identifiers = {}
    if "email" in mapping.attributes:
        identifiers["email"] = standardize_email_for(F.col(mapping.attributes["email"]), ctx.config.identity)
    if "loyalty_id" in mapping.attributes:
        identifiers["loyalty_id"] = standardize_identifier(F.col(mapping.attributes["loyalty_id"]))
    return with_erased_flag(
        checked, tombstones=tombstones, source=source, record_id=mapping.attributes["source_record_id"],
        identifiers=identifiers, key=ctx.config.pii_hash_key(), content_hash=F.col("_content_hash"),
    )


@dataclass
class _Plan:
    """What one source's load will do, decided before anything is written."""

    contract: SourceContract
    report: SourceReport
    ready: list[tuple[SourceFile, str]]
    load_files: list[SourceFile]
    columns_by_file: dict[str, list[str]]
    #: CSV files whose last byte is not a line break: their last row may be cut short
    unterminated: set[str] = field(default_factory=set)
    #: files written from a message stream -> the messages each holds (one row each, checked)
    messages: Mapping[str, int] = field(default_factory=dict)


def _plan(
    ctx: RunContext, contract: SourceContract, known: dict[str, tuple[str, str]], ledger: FileLedger, now: datetime,
    only: set[str] | None = None, messages: Mapping[str, int] | None = None,
) -> _Plan:
    """Compare the landing files with the registry, clean up interrupted loads, fail unreadable
    files; mark the files to load ``loading`` (in ``ledger``, flushed before loading).

    ``only``: the files (``<source>/<region>/<name>``) a stream listed, plus those that failed
    before; the others are left for later, and a listed file that is gone now is reported in
    ``files_vanished``. ``messages``: files a message stream wrote (``bronze.kafka``), one message
    a line: they are not refused whole for lacking a JSON object or a required column (each line is
    judged on its own, into bronze or quarantine), and must read exactly that many rows."""
    messages = messages or {}
    report = SourceReport(contract.name)
    unaccepted: list[SourceFile] = []
    files = discover_files(ctx.config.ingest.landing_root, contract, ctx.regions, unaccepted=unaccepted)
    if only is not None:  # and the files that failed before: every load retries them
        retry = {relative for relative, (_, status) in known.items() if status == "failed"}
        files = [f for f in files if f.relative in only or f.relative in retry]
        unaccepted = [f for f in unaccepted if f.relative in only]
        report.files_vanished = sorted(only - {f.relative for f in (*files, *unaccepted)})
        for relative in report.files_vanished:
            log.warning("%s: listed by the stream but gone before it was read; not loaded", relative)
    for f in unaccepted:  # never silently passed over: each run says so until the file is moved away
        _fail(ledger, report, contract, [(f, file_sha256(f.path))],
              f"{f.relative}: not loaded: {contract.name} takes {' or '.join(contract.extensions)} files "
              f"(rename or convert it; compressed files are not read)", now)
    text = contract.format in ("csv", "json")
    digests: dict[str, FileDigest] = {}
    to_load: list[tuple[SourceFile, str]] = []
    interrupted: list[str] = []
    for f in list(files):
        try:
            digests[f.relative] = file_digest(f.path, text=text)
        except FileNotFoundError:  # removed between listing and reading: reported, the rest goes on
            log.warning("%s: gone before it was read; not loaded", f.relative)
            report.files_vanished.append(f.relative)
            continue
        digest = digests[f.relative].sha256
        previous = known.get(f.relative)
        if previous is None or previous[1] == "failed":
            to_load.append((f, digest))
        elif previous[1] == "loading":
            interrupted.append(f.relative)
            to_load.append((f, digest))
        elif previous[0] == digest:
            report.files_unchanged += 1
        else:
            report.files_changed.append(f.relative)
            log.warning("%s changed after it was loaded; not loading it again (sha256 %s, was %s)", f.relative, digest, previous[0])

    bronze = bronze_table(contract.name)
    if interrupted:  # rows of a load that died before it was recorded go before anything else
        log.warning("%s: removing rows of interrupted loads of %s", contract.name, interrupted)
        if ctx.lakehouse.exists(bronze):
            ctx.lakehouse.delete(bronze, f"_source_file IN ({sql_string_list(interrupted)})")
        if ctx.lakehouse.exists(QUARANTINE):
            ctx.lakehouse.delete(QUARANTINE, f"source = '{contract.name}' AND file IN ({sql_string_list(interrupted)})")

    # a file that cannot be read as a whole (e.g. lacks a required column) fails before anything is written
    unreadable: dict[str, str] = {}
    columns_by_file = file_columns(ctx.spark, [f for f, _ in to_load], contract, unreadable=unreadable)
    ready: list[tuple[SourceFile, str]] = []
    for f, digest in to_load:
        problem = file_problem(
            f, columns_by_file[f.relative], contract, digest=digests[f.relative], unreadable=unreadable.get(f.relative),
            row_level=f.relative in messages,
        )
        if problem:
            _fail(ledger, report, contract, [(f, digest)], problem, now)
        else:
            ready.append((f, digest))
    report.files_new = len(ready)
    load_files = [f for f, _ in ready if f.size]  # empty CSV / JSON files have no rows
    if load_files:
        ledger.add([_file_row(contract.name, f, d, "loading", ctx.run_id, now) for f, d in ready])
    else:
        ledger.add([_file_row(contract.name, f, d, "loaded", ctx.run_id, now, read=0, loaded=0, quarantined=0) for f, d in ready])
    unterminated = {f.relative for f in load_files if contract.format == "csv" and digests[f.relative].unterminated}
    return _Plan(contract, report, ready, load_files, columns_by_file, unterminated,
                 {f.relative: messages[f.relative] for f, _ in ready if f.relative in messages})


def ingest_source(ctx: RunContext, contract: SourceContract, *, now: datetime | None = None) -> SourceReport:
    """Load one source's new files (see the module's docstring)."""
    now = now or datetime.now(timezone.utc)
    ledger = FileLedger(ctx)
    plan = _plan(ctx, contract, _registry(ctx).get(contract.name, {}), ledger, now)
    ledger.flush()
    try:
        return _load(ctx, plan, ledger, now)
    finally:
        ledger.flush()


def _load(ctx: RunContext, plan: _Plan, ledger: FileLedger, now: datetime) -> SourceReport:
    """Read, validate and write the planned files; their outcome goes to ``ledger``."""
    contract, report, ready, load_files = plan.contract, plan.report, plan.ready, plan.load_files
    columns_by_file = plan.columns_by_file
    bronze = bronze_table(contract.name)
    if not load_files:
        return report

    raw, columns = read_raw(ctx.spark, load_files, contract, columns_by_file)
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    checked: DataFrame | None = None
    written = False
    try:
        numbered, rows_per_file = number_rows(raw, load_files)
        numbered = numbered.where(~F.col("_blank")).drop("_blank")
        time_zones = {code: region.time_zone for code, region in ctx.config.regions.items()}
        checked = validate(numbered, contract, columns=columns, time_zones=time_zones, now=now)
        if plan.unterminated:
            checked = _flag_unterminated(checked, plan.unterminated, rows_per_file)
        checked = _erased_flag(ctx, checked, contract.name)
        checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
        status = F.when(F.col("_erased"), "erased").when(F.size("_reasons") > 0, "bad").otherwise("good")
        per_file = {
            (r["_source_file"], r["status"]): r["n"]
            for r in checked.groupBy("_source_file", status.alias("status")).count().withColumnRenamed("count", "n").collect()
        }
        extra = [c for c in columns if c not in contract.names]
        good = checked.where((F.size("_reasons") == 0) & ~F.col("_erased")).select(
            *contract.names,
            *extra,
            "_source_file",
            "_row_number",
            F.lit(now).alias("_ingested_at"),
            F.lit(ctx.run_id).alias("_run_id"),
            "_content_hash",
        )
        if extra and ctx.lakehouse.exists(bronze):
            known_columns = set(ctx.lakehouse.schema(bronze).fieldNames())
            report.new_columns = [c for c in extra if c not in known_columns]
            if report.new_columns:
                log.warning("%s: new column(s) %s in the source; the table schema grows", bronze, report.new_columns)
        elif extra:
            report.new_columns = extra
        region_of_file = F.create_map(*[F.lit(x) for f in load_files for x in (f.relative, f.region)])
        bad = checked.where((F.size("_reasons") > 0) & ~F.col("_erased")).select(
            F.lit(contract.name).alias("source"),
            F.col("_source_file").alias("file"),
            F.col("_row_number").alias("row_number"),
            F.col("_raw_payload").alias("raw_payload"),
            F.array_join("_reasons", "; ").alias("reason"),
            F.lit(ctx.run_id).alias("run_id"),
            F.lit(now).alias("ingested_at"),
            region_of_file[F.col("_source_file")].alias("region"),
        )
        bad = bad.select(*[F.col(f.name).cast(f.dataType) for f in QUARANTINE_SCHEMA.fields])
        n_good = sum(n for (_, s), n in per_file.items() if s == "good")
        n_bad = sum(n for (_, s), n in per_file.items() if s == "bad")
        # the counts below come from the Delta commits, checked against the counts above
        written = True
        if n_good or not ctx.lakehouse.exists(bronze):
            loaded = ctx.lakehouse.write(
                good, bronze, mode="append", partition_by=["region"], schema_mode="merge", constraints=contract.constraints
            ).rows_written
        else:
            loaded = 0
        quarantined = 0
        if n_bad:
            quarantined = ctx.lakehouse.write(
                bad, QUARANTINE, mode="append", partition_by=["region"], constraints=QUARANTINE_CONSTRAINTS
            ).rows_written
    except Exception as exc:
        if written:
            raise  # files stay 'loading': the next run removes what was written and loads them again
        if len(load_files) > 1:  # one bad file must not stop the others: each is loaded on its own
            log.warning("%s: reading %d files together failed (%s); loading them one by one",
                        contract.name, len(load_files), error_line(exc))
            return _load_one_by_one(ctx, plan, ledger, now)
        # nothing was written: the file fails with the reason, the other sources go on
        _fail(ledger, report, contract, ready, f"{ready[0][0].relative if len(ready) == 1 else contract.name}: "
              f"reading failed: {error_line(exc)}; file not loaded", now)
        report.files_new = 0
        return report
    finally:
        raw.unpersist()
        if checked is not None:
            checked.unpersist()

    region_of = {f.relative: f.region for f in load_files}
    for (relative, state), n in per_file.items():
        counts = report.by_region.setdefault(region_of[relative], zero_counts())
        counts["rows_read"] += n
        counts[{"good": "rows_loaded", "bad": "rows_quarantined", "erased": "rows_erased"}[state]] += n
    report.rows_read = sum(per_file.values())
    report.rows_loaded = loaded or 0
    report.rows_quarantined = quarantined or 0
    report.rows_erased = sum(n for (_, s), n in per_file.items() if s == "erased")
    if report.rows_read != report.rows_loaded + report.rows_quarantined + report.rows_erased or n_good != report.rows_loaded:
        raise AccountingError(
            f"{contract.name}: read {report.rows_read} rows but bronze committed {report.rows_loaded}, "
            f"quarantine {report.rows_quarantined} and {report.rows_erased} were erased"
        )
    for relative, expected in plan.messages.items():
        read = sum(per_file.get((relative, state), 0) for state in ("good", "bad", "erased"))
        if read != expected:  # the file stays `loading`: the next run removes its rows and loads it again
            raise AccountingError(f"{relative}: {expected:,} messages but {read:,} rows read")
    ledger.add(
        [
            _file_row(
                contract.name, f, d, "loaded", ctx.run_id, now,
                read=sum(per_file.get((f.relative, state), 0) for state in ("good", "bad", "erased")),
                loaded=per_file.get((f.relative, "good"), 0),
                quarantined=per_file.get((f.relative, "bad"), 0),
            )
            for f, d in ready
        ],
    )
    return report


def error_line(exc: BaseException) -> str:
    """The line of an error that says what went wrong: for a Spark (py4j) error, the deepest
    ``...Exception: message`` line of the Java trace, not "An error occurred while calling o12.x"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by: ") for line in lines
              if ("Exception: " in line or "Error: " in line) and not line.startswith("at ")]
    text = causes[-1] if causes else (lines[0] if lines else type(exc).__name__)
    return text if len(text) <= 300 else text[:297] + "..."


def _load_one_by_one(ctx: RunContext, plan: _Plan, ledger: FileLedger, now: datetime) -> SourceReport:
    """Load the plan's files one at a time (after reading them together failed), so a file Spark
    cannot read fails alone; the reports are added up."""
    report = plan.report
    report.files_new = 0
    for f, digest in plan.ready:
        if not f.size:
            ledger.add([_file_row(plan.contract.name, f, digest, "loaded", ctx.run_id, now, read=0, loaded=0, quarantined=0)])
            report.files_new += 1
            continue
        single = _Plan(plan.contract, SourceReport(plan.contract.name), [(f, digest)], [f],
                       {f.relative: plan.columns_by_file[f.relative]}, plan.unterminated & {f.relative},
                       {k: v for k, v in plan.messages.items() if k == f.relative})
        part = _load(ctx, single, ledger, now)
        report.files_new += part.files_new if not part.files_failed else 0
        report.files_failed += part.files_failed
        report.rows_read += part.rows_read
        report.rows_loaded += part.rows_loaded
        report.rows_quarantined += part.rows_quarantined
        report.rows_erased += part.rows_erased
        report.new_columns += [c for c in part.new_columns if c not in report.new_columns]
        for region, counts in part.by_region.items():
            mine = report.by_region.setdefault(region, zero_counts())
            for key, value in counts.items():
                mine[key] += value
    return report


UNTERMINATED = "the file does not end with a line break, so its last line may be cut short; re-export the file"


def _flag_unterminated(checked: DataFrame, unterminated: set[str], last: dict[str, int]) -> DataFrame:
    """The last row of each CSV file that does not end with a line break is quarantined: a file
    cut off in its last, unquoted field still parses, with a wrong value. ``last``: each file's
    rows, so its last row number (``number_rows``)."""
    pairs = [x for rel in sorted(unterminated) if rel in last for x in (F.lit(rel), F.lit(last[rel]))]
    if not pairs:
        return checked
    is_last = F.create_map(*pairs)[F.col("_source_file")] == F.col("_row_number")
    return checked.withColumn(
        "_reasons",
        F.when(is_last & ~F.array_contains("_reasons", "unparseable line"),
               F.concat("_reasons", F.array(F.lit(UNTERMINATED)))).otherwise(F.col("_reasons")),
    )


def _fail(
    ledger: FileLedger,
    report: SourceReport,
    contract: SourceContract,
    files: Sequence[tuple[SourceFile, str]],
    message: str,
    now: datetime,
) -> None:
    log.error(message)
    report.files_failed.append(message)
    ledger.add([_file_row(contract.name, f, d, "failed", ledger.ctx.run_id, now, message=message) for f, d in files])


def ingest_sources(
    ctx: RunContext, names: Sequence[str], *, now: datetime, only: Mapping[str, set[str]] | None = None,
    messages: Mapping[str, int] | None = None,
) -> list[SourceReport]:
    """Ingest the named sources for the context's regions, one report per source; ``only``:
    source -> the files to consider (what a stream's micro-batch listed), the others left alone;
    ``messages``: files a message stream wrote -> their messages (see ``_plan``)."""
    # every source is planned first, so the files of all of them are marked `loading` in one
    # commit, and their outcomes are recorded in one more (two appends per run, not two per source)
    ledger = FileLedger(ctx)
    known = _registry(ctx)
    plans = [
        _plan(ctx, CONTRACTS[name], known.get(name, {}), ledger, now, None if only is None else set(only.get(name, ())),
              messages)
        for name in names
    ]
    ledger.flush()
    reports = []
    try:
        for plan in plans:
            reports.append(_load(ctx, plan, ledger, now))
    except BaseException:
        try:  # the sources that finished are recorded; the failed one stays `loading`
            ledger.flush()
        except Exception:
            log.exception("could not record the files of the sources ingested before the failure")
        raise
    ledger.flush()
    return reports

