"""``c360 identity --input PATH --format csv|parquet --mapping MAPPING.yaml --output DIR``.

Resolves any file of person records without the rest of the pipeline. The mapping names the
record id column and the columns holding each attribute; unmapped attributes are not used.
Results are Delta tables directly under DIR: ``customer_xref``, ``customer_golden``,
``pii_vault`` (token -> value, to read the golden records), ``customer_ids`` and
``identity_audit`` (so that running again on a changed file keeps the ids stable).

The mapping format is ``EXAMPLE_MAPPING`` below (``c360 identity --print-example-mapping``).
"""
from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pyspark.sql.functions as F
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.config import AppConfig, BlockingRule, PostcodeRule
from customer360.errors import C360Error, ConfigError
from customer360.files import csv_header, file_digest
from customer360.identity.matching import COMPARISONS
from customer360.identity.records import standardize_records
from customer360.identity.outputs import build_outputs
from customer360.identity.standardize import DEFAULT_DATE_FORMATS
from customer360.lakehouse import Lakehouse
from customer360.lakehouse.common import WriteResult, uri_to_path
from customer360.lakehouse.core import parse_table_name
from customer360.tables import CUSTOMER_GOLDEN, CUSTOMER_IDS, CUSTOMER_XREF, IDENTITY_AUDIT, PII_VAULT

log = logging.getLogger(__name__)

#: printed by ``c360 identity --print-example-mapping`` and shown by ``--help``; a test loads it
EXAMPLE_MAPPING = """\
# c360 identity --input FILE --format csv|parquet --mapping THIS.yaml --output DIR
record_id: patient_no            # required: the column of each record's unique id (read as text: 007 stays 007)
source: clinic_a                 # optional, default "input"; keep it fixed so next month's file keeps the ids
region: us                       # optional: a configured region (conf/regions) whose phone, postcode and street rules apply; default generic
default_phone_country: US        # optional: how national phone numbers (no +) are read
columns:                         # attribute: input column; unmapped attributes are not used
  first_name: given
  last_name: family
  # full_name: name              # "John Smith" or "Smith, John", where first and last are not separate
  date_of_birth: {column: dob, format: yyyyMMdd}   # a Spark datetime pattern; default: ISO and a few common ones
  street: [street_number, address_1]               # several columns become one attribute, joined by spaces
  city: suburb
  postcode: postcode
  email: mail
  phone: tel
  loyalty_id: member_no
  # also: country, device_id, cookie_id, company_name, event_time
other_ids: {passport: passport_no}   # further strong identifiers: exact values link, one-edit typos count as evidence
matching:                        # optional; default conf/identity.yaml, rules on unmapped attributes dropped
  threshold: 0.99                # the probability a pair must reach to be linked
  # blocking_rules:
  #   - {name: surname_zip, keys: [soundex(last_name), postcode]}
"""

MAPPABLE = (
    "first_name", "last_name", "full_name", "date_of_birth", "street", "city", "postcode", "country",
    "email", "phone", "loyalty_id", "device_id", "cookie_id", "company_name", "event_time",
)
STANDALONE_REGION = "all"
#: ``region: generic`` (the default): no country's rules. Postcodes are kept as written (upper-cased,
#: 3-10 letters and digits), streets unabbreviated, and phone numbers read only in international form
#: (+...) unless ``default_phone_country`` says how to read national ones.
GENERIC_REGION = "generic"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatedColumn(_Strict):
    column: str = Field(min_length=1)
    #: a Spark datetime pattern (yyyy-MM-dd, dd/MM/yyyy, MM/dd/yy ...); default: ISO and a few common ones
    format: str | None = Field(default=None, min_length=1, max_length=64)


class MatchingOverrides(_Strict):
    threshold: float | None = Field(default=None, gt=0, lt=1)
    blocking_rules: tuple[BlockingRule, ...] | None = Field(default=None, min_length=1)
    max_block_size: int | None = Field(default=None, ge=2)


class StandaloneMapping(_Strict):
    record_id: str = Field(min_length=1)
    source: str | None = None
    region: str | None = None
    default_phone_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    #: attribute -> a column, several columns joined with spaces (``street: [number, street_name]``),
    #: or a dated column with its format
    columns: dict[str, str | list[str] | DatedColumn] = Field(min_length=1)
    other_ids: dict[str, str] = Field(default_factory=dict)
    matching: MatchingOverrides = Field(default_factory=MatchingOverrides)

    @field_validator("columns")
    @classmethod
    def _known(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(MAPPABLE))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; mappable: {', '.join(MAPPABLE)}")
        return value

    @field_validator("columns")
    @classmethod
    def _lists(cls, value: dict[str, Any]) -> dict[str, Any]:
        for attribute, columns in value.items():
            if isinstance(columns, list):
                if not 1 <= len(columns) <= 8 or any(not c for c in columns):
                    raise ValueError(f"{attribute}: a list of 1 to 8 non-empty column names")
                if attribute in ("date_of_birth", "event_time"):
                    raise ValueError(f"{attribute}: one column (with a format), not a list")
        return value

    @field_validator("other_ids")
    @classmethod
    def _kinds(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
        if bad:
            raise ValueError(f"identifier kinds must be lower-case snake_case, got {bad}")
        return value

    def column(self, attribute: str) -> str | None:
        """The attribute's first (usually only) input column; None when it is not mapped."""
        names = self.source_columns(attribute)
        return names[0] if names else None

    def source_columns(self, attribute: str) -> list[str]:
        """Every input column the attribute is built from."""
        value = self.columns.get(attribute)
        if value is None:
            return []
        if isinstance(value, DatedColumn):
            return [value.column]
        return list(value) if isinstance(value, list) else [value]

    def input_columns(self) -> list[str]:
        """Every input column the mapping reads: record id, attributes, other ids."""
        return [self.record_id, *(c for a in self.columns for c in self.source_columns(a)), *self.other_ids.values()]

    def date_format(self, attribute: str) -> str | None:
        value = self.columns.get(attribute)
        return value.format if isinstance(value, DatedColumn) else None


#: a mapping names a few dozen columns; anything larger is not one
MAX_MAPPING_BYTES = 256 * 1024


def load_mapping(path: str | Path) -> StandaloneMapping:
    """The mapping file, validated (``StandaloneMapping``: unknown keys and attributes, wrong types
    and missing fields are refused); every problem is a ``ConfigError`` naming the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise ConfigError(f"{path}: a mapping file is at most {MAX_MAPPING_BYTES:,} bytes")
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: mapping file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a folder, not a mapping file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the mapping file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:300]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the mapping must be a YAML mapping")
    try:
        return StandaloneMapping.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(
            f"{'.'.join(repr(p)[1:-1] if isinstance(p, str) else str(p) for p in e['loc'])[:80] or '<root>'}: {e['msg'][:200]}"
            for e in errors[:5]
        ) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise ConfigError(f"{path}: {problems}") from None


@dataclass(frozen=True)
class StandardizationRules:
    """The region settings the standardizers read (a configured RegionConfig has the same fields)."""

    default_phone_country: str
    postcode: PostcodeRule
    street_abbreviations: dict[str, str]


class _FlatLakehouse(Lakehouse):
    """Tables directly under the root (``DIR/customer_xref``), not ``DIR/<layer>/<table>``."""

    def path(self, name: str) -> str:
        _, table = parse_table_name(name)
        return f"{self.root}/{table}"


def _split_full_name(full: Column) -> tuple[Column, Column]:
    """'Smith, John' -> (John, Smith); 'John Q Smith' -> (John, Smith)."""
    text = F.trim(full)
    comma = text.contains(",")
    after = F.trim(F.substring_index(text, ",", -1))
    before = F.trim(F.substring_index(text, ",", 1))
    words = F.split(text, r"\s+")
    first = F.when(comma, F.split(after, r"\s+")[0]).otherwise(words[0])
    last = F.when(comma, before).otherwise(F.when(F.size(words) > 1, F.element_at(words, -1)))
    return first, last


def _column(name: str) -> Column:
    """The input column named exactly ``name``: dots and backticks in a header are characters, not
    struct paths or quotes."""
    return F.col("`" + name.replace("`", "``") + "`")


def check_date_formats(spark, mapping: StandaloneMapping) -> None:
    """Every ``format`` of the mapping is a datetime pattern Spark accepts, checked before any work."""
    for attribute, value in mapping.columns.items():
        if not isinstance(value, DatedColumn) or value.format is None:
            continue
        try:
            spark.range(1).select(F.try_to_timestamp(F.lit("2000-01-01"), F.lit(value.format))).collect()
        except Exception as exc:  # noqa: BLE001 - Spark's IllegalArgumentException and friends
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"mapping columns.{attribute}.format {value.format!r} is not a datetime pattern: {first}") from None


#: column types a mapped column may have (a struct, array, map or binary id is not an identifier)
ATOMIC_TYPES = (T.StringType, T.NumericType, T.DateType, T.TimestampType, T.TimestampNTZType, T.BooleanType)
_CORRUPT = "_c360_malformed"


def input_files(input_path: str) -> list[str]:
    """The files Spark will read for ``input_path`` when it is local (a file, or a folder's files
    not starting with '.' or '_'); empty for other file systems, which Spark alone checks."""
    if "://" in input_path and not input_path.startswith("file:"):
        return []
    path = os.path.abspath(uri_to_path(input_path))
    if any(c in path for c in "*?[") and not os.path.exists(path):  # a glob, as Spark reads it
        matched = sorted(glob.glob(path))
        if not matched:
            raise C360Error(f"--input {input_path}: no file matches")
        return [f for m in matched for f in input_files(m)]
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        return sorted(
            os.path.join(folder, name)
            for folder, dirs, names in os.walk(path)
            for name in names
            if not name.startswith((".", "_")) and not any(part.startswith((".", "_")) for part in os.path.relpath(folder, path).split(os.sep) if part != ".")
        )
    raise C360Error(f"--input {input_path}: no such file or folder")


def read_input(spark: SparkSession, input_path: str, input_format: str) -> DataFrame:
    """The input as a DataFrame, or a ``C360Error`` naming what is wrong with it: not found, not
    UTF-8 (CSV), malformed CSV rows (counted, never shown: they hold personal data), not Parquet.
    CSV columns are all strings: ids like 007 and postcodes like 02134 keep their zeros."""
    files = input_files(input_path)
    if input_format == "csv":
        for f in files:
            bad = file_digest(f, text=True).bad_utf8_at
            if bad is not None:
                raise C360Error(f"--input {f}: not UTF-8 text (byte {bad:,}); convert it (e.g. iconv -f latin1 -t utf-8)")
        for f in files:
            written = csv_header(f)
            duplicates = sorted({c for c in written if written.count(c) > 1})
            if duplicates:
                raise C360Error(f"--input {f}: duplicate header column(s) {duplicates}")
        try:
            header = spark.read.option("header", True).option("inferSchema", False).csv(input_path).columns
        except Exception as exc:  # noqa: BLE001 - Spark's own reading errors, as one line
            raise C360Error(f"--input {input_path}: cannot be read as CSV: {_first_line(exc)}") from None
        if not header:
            raise C360Error(f"--input {input_path}: no header row (an empty file?)")
        schema = T.StructType([T.StructField(c, T.StringType()) for c in header] + [T.StructField(_CORRUPT, T.StringType())])
        raw = (
            spark.read.option("header", True).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT)
            .schema(schema).csv(input_path)
        )
        # every column read: with column pruning Spark only notices a wrong field count in the columns it parses
        malformed = raw.select(F.sum(F.col(_CORRUPT).isNotNull().cast("long")), F.max(F.hash(*[_column(c) for c in header]))).first()[0] or 0
        if malformed:
            raise C360Error(
                f"--input {input_path}: {malformed:,} malformed CSV row(s) (a different number of fields than the header); "
                "fix or remove them and run again"
            )
        return raw.drop(_CORRUPT)
    if input_format == "parquet":
        import pyarrow.parquet as pq

        for f in files:
            try:
                pq.read_metadata(f)
            except Exception:  # noqa: BLE001 - pyarrow's ArrowInvalid / OSError: the footer is not Parquet's
                raise C360Error(f"--input {f}: not a Parquet file (no valid Parquet footer)") from None
        try:
            raw = spark.read.parquet(input_path)
            raw.schema  # noqa: B018 - reads the footers now, so a file that is not Parquet fails here
        except Exception as exc:  # noqa: BLE001
            raise C360Error(f"--input {input_path}: cannot be read as Parquet: {_first_line(exc)}") from None
        return raw
    raise C360Error(f"--format must be csv or parquet, not {input_format!r}")


def _first_line(exc: BaseException) -> str:
    """The cause in one line: a Py4J error's Java message, not its 'An error occurred while calling'."""
    lines = [line.strip().lstrip(": ").strip() for line in str(exc).strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith("An error occurred while calling")]
    return lines[0][:200] if lines else type(exc).__name__


def check_mapped_types(df: DataFrame, mapping: StandaloneMapping) -> None:
    """Mapped columns must hold values (text, numbers, dates), not structs, arrays, maps or bytes."""
    wanted = mapping.input_columns()
    types = {f.name: f.dataType for f in df.schema.fields}
    bad = sorted({f"{c} ({types[c].simpleString()[:40]})" for c in wanted if c in types and not isinstance(types[c], ATOMIC_TYPES)})
    if bad:
        raise C360Error(f"mapped column(s) {bad} are not text, numbers or dates")


def canonical_input(df: DataFrame, mapping: StandaloneMapping, *, source: str) -> DataFrame:
    """The input rows as canonical attributes (the same shape the pipeline builds from bronze)."""
    wanted = set(mapping.input_columns())
    missing = sorted(c for c in wanted if c not in df.columns)
    if missing:
        raise C360Error(f"mapping names column(s) {missing} that the input does not have; input columns: {df.columns}")
    check_mapped_types(df, mapping)

    def col(attribute: str) -> Column:
        names = mapping.source_columns(attribute)
        if not names:
            return F.lit(None).cast("string")
        if len(names) == 1:
            return _column(names[0]).cast("string")
        # several columns: their trimmed values joined by a space, nulls and blanks skipped
        parts = [F.nullif(F.trim(_column(n).cast("string")), F.lit("")) for n in names]
        return F.nullif(F.concat_ws(" ", *parts), F.lit(""))

    first, last = col("first_name"), col("last_name")
    if mapping.column("full_name"):
        split_first, split_last = _split_full_name(col("full_name"))
        first = F.coalesce(first, split_first) if mapping.column("first_name") else split_first
        last = F.coalesce(last, split_last) if mapping.column("last_name") else split_last
    other = [item for kind, name in sorted(mapping.other_ids.items()) for item in (F.lit(kind), _column(name).cast("string"))]
    return df.select(
        F.lit(source).alias("source"),
        F.trim(_column(mapping.record_id).cast("string")).alias("source_record_id"),
        first.alias("first_name"),
        last.alias("last_name"),
        *[col(a).alias(a) for a in ("email", "phone", "date_of_birth", "street", "city", "postcode", "country",
                                     "loyalty_id", "device_id", "cookie_id", "event_time", "company_name")],
        F.lit(_region_label(mapping)).alias("region"),
        (F.create_map(*other) if other else F.lit(None).cast("map<string,string>")).alias("other_ids"),
    )


def _region_label(mapping: StandaloneMapping) -> str:
    """The region column of the outputs: the configured region, else ``all``."""
    return mapping.region if mapping.region and mapping.region != GENERIC_REGION else STANDALONE_REGION


def _check_record_ids(canonical: DataFrame) -> int:
    """The number of input records, once every one has an id and no id repeats."""
    stats = canonical.agg(
        F.count("*").alias("rows"),
        F.sum(F.col("source_record_id").isNull().cast("long")).alias("null_ids"),
        F.countDistinct("source_record_id").alias("distinct_ids"),
    ).first()
    if stats["null_ids"]:
        raise C360Error(f"{stats['null_ids']} of {stats['rows']} input rows have no record id; every record needs one")
    if stats["distinct_ids"] != stats["rows"]:
        examples = [
            r[0]
            for r in canonical.groupBy("source_record_id").count().where(F.col("count") > 1).limit(5).collect()
        ]
        raise C360Error(
            f"record ids are not unique: {stats['rows'] - stats['distinct_ids']} duplicate rows (e.g. {examples})"
        )
    return int(stats["rows"])


def _mapped_blocking_rules(rules, mapped: set[str]) -> tuple[BlockingRule, ...]:
    """The configured rules whose attributes are all mapped; with none left but both names
    mapped, one rule on the full name; with no names, none (deterministic links only)."""
    attributes = {col for c in COMPARISONS for col in c.columns}
    usable = []
    for rule in rules:
        text = " ".join(rule.keys)
        used = {a for a in attributes if re.search(rf"\b{a}\b", text)}
        if used <= mapped:
            usable.append(rule)
    if not usable and {"first_name", "last_name"} <= mapped:
        usable.append(BlockingRule(name="full_name", keys=("first_name", "last_name")))
    return tuple(usable)


@dataclass(frozen=True)
class StandaloneReport:
    records: int
    customers: int
    probabilistic_records: int
    output: str
    xref_copy: str | None = None
    #: the blocks over the cap, each blocking rule's pairs, the model's prior
    matching: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [
            f"{self.records:,} records -> {self.customers:,} customers "
            f"({self.probabilistic_records:,} records linked probabilistically)",
            *self.matching,
            f"Delta tables under {self.output}: customer_xref, customer_golden, pii_vault, customer_ids, identity_audit",
            *([f"record -> customer mapping also in {self.xref_copy}"] if self.xref_copy else []),
        ]


XREF_COPY_COLUMNS = ("source", "source_record_id", "customer_id", "match_rule", "match_confidence")


def write_xref_copy(xref: DataFrame, output: str, file_format: Literal["csv", "parquet"]) -> str:
    """``customer_xref`` also as one CSV or Parquet file beside the Delta tables (for tools that
    read neither Delta nor folders of parts): ``OUTPUT/customer_xref.csv|parquet``, replaced each run."""
    import shutil
    import tempfile

    root = uri_to_path(output)
    if "://" in output and not output.startswith("file:"):
        raise C360Error(f"--xref-copy writes a local file; {output} is not a local folder")
    target = os.path.join(root, f"customer_xref.{file_format}")
    staging = tempfile.mkdtemp(prefix=".xref-", dir=root)
    try:
        writer = xref.select(*XREF_COPY_COLUMNS).orderBy("source", "source_record_id").coalesce(1).write.mode("overwrite")
        if file_format == "csv":
            writer.option("header", True).option("escape", '"').csv(os.path.join(staging, "out"))
        else:
            writer.parquet(os.path.join(staging, "out"))
        parts = [n for n in os.listdir(os.path.join(staging, "out")) if n.startswith("part-")]
        if len(parts) != 1:
            raise C360Error(f"writing {target}: expected one part file, Spark wrote {len(parts)}")
        os.replace(os.path.join(staging, "out", parts[0]), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_side_by_side(writes: dict[str, Callable[[], WriteResult]]) -> dict[str, WriteResult]:
    """Independent table writes run at once, one thread each: most of a small Delta write is its
    commit's round trips on the driver, not work for the executors. Every write runs to its end;
    the first failure (in the order given) is raised after."""
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="c360-write") as pool:
        futures = {name: pool.submit(write) for name, write in writes.items()}
        wait(futures.values())
    for future in futures.values():
        if future.exception() is not None:
            raise future.exception()
    return {name: future.result() for name, future in futures.items()}


def resolve_file(
    spark: SparkSession,
    config: AppConfig,
    *,
    input_path: str,
    input_format: Literal["csv", "parquet"],
    mapping: StandaloneMapping,
    output: str,
    run_id: str,
    graphframes_available: bool = False,
    now: datetime | None = None,
    xref_copy: Literal["csv", "parquet"] | None = None,
) -> StandaloneReport:
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if mapping.region and mapping.region != GENERIC_REGION and mapping.region not in config.regions:
        raise ConfigError(
            f"mapping region {mapping.region!r} is not configured; known: {', '.join(sorted(config.regions))}, "
            f"or {GENERIC_REGION} (no country's rules)"
        )
    check_date_formats(spark, mapping)
    raw = read_input(spark, input_path, input_format)
    # not the file's name: next month's file into the same output must keep the customers' ids
    source = mapping.source or "input"
    canonical = canonical_input(raw, mapping, source=source)
    records_in = _check_record_ids(canonical)

    if mapping.region and mapping.region != GENERIC_REGION:
        base = config.regions[mapping.region]
        rules = StandardizationRules(
            mapping.default_phone_country or base.default_phone_country, base.postcode, dict(base.street_abbreviations)
        )
    else:
        if not mapping.default_phone_country and mapping.column("phone"):
            log.info("region generic and no default_phone_country: phone numbers are read in international form (+...) only")
        rules = StandardizationRules(mapping.default_phone_country or "ZZ", PostcodeRule(), {})
    mapped = {a for a in mapping.columns} | ({"first_name", "last_name"} if mapping.column("full_name") else set())
    identity = config.identity
    overrides = mapping.matching
    matching = identity.matching.model_copy(
        update={
            "threshold": overrides.threshold or identity.matching.threshold,
            "blocking_rules": overrides.blocking_rules or _mapped_blocking_rules(identity.matching.blocking_rules, mapped),
            "max_block_size": overrides.max_block_size or identity.matching.max_block_size,
        }
    )
    identity = identity.model_copy(update={"matching": matching})
    date_formats = [f for f in (mapping.date_format("date_of_birth"),) if f] or list(DEFAULT_DATE_FORMATS)
    event_formats = [f for f in (mapping.date_format("event_time"),) if f]
    clear = standardize_records(
        canonical,
        regions={_region_label(mapping): rules},
        identity=identity,
        today=now.date(),
        date_formats=date_formats,
        timestamp_formats=event_formats,
    )

    lakehouse = _FlatLakehouse(spark, config.lakehouse.model_copy(update={"root": output.rstrip("/")}))
    previous = lakehouse.read(CUSTOMER_XREF).localCheckpoint(eager=True) if lakehouse.exists(CUSTOMER_XREF) else None
    registry = lakehouse.read(CUSTOMER_IDS).localCheckpoint(eager=True) if lakehouse.exists(CUSTOMER_IDS) else None
    out = build_outputs(
        clear,
        settings=identity,
        key=config.pii_hash_key(),
        run_id=run_id,
        now=now,
        previous_xref=previous.select("region", "source", "source_record_id", "customer_id") if previous is not None else None,
        registry=registry,
        graphframes_available=graphframes_available,
    )
    try:
        # counted before writing (every input of the mapping is materialized), checked against
        # what the write committed
        stats = out.xref.agg(
            F.count("*"), F.countDistinct("customer_id"), F.sum(F.col("match_rule").startswith("probabilistic").cast("long"))
        ).first()
        if stats[0] != records_in:
            raise C360Error(f"{records_in} input records but {stats[0]} resolved: resolution lost records")
        # the registry first, as in the pipeline stage (merge creates the table on the first run)
        lakehouse.merge(out.assignment.registry, CUSTOMER_IDS, keys=["customer_id"], partition_by=["region"])
        written = _write_side_by_side({
            CUSTOMER_XREF: lambda: lakehouse.write(out.xref, CUSTOMER_XREF, partition_by=["region"], schema_mode="merge"),
            CUSTOMER_GOLDEN: lambda: lakehouse.write(out.golden, CUSTOMER_GOLDEN, partition_by=["region"], schema_mode="merge"),
            PII_VAULT: lambda: lakehouse.write(out.vault, PII_VAULT, partition_by=["region"], schema_mode="merge"),
            IDENTITY_AUDIT: lambda: lakehouse.write(out.assignment.audit, IDENTITY_AUDIT, mode="append", partition_by=["region"]),
        })
        matching = tuple(out.resolved.matching_lines())
    finally:
        out.resolved.release()
    if written[CUSTOMER_XREF].rows_written != records_in:
        raise C360Error(
            f"{records_in} input records but {written[CUSTOMER_XREF].rows_written} rows written to customer_xref: resolution lost records"
        )
    copy = write_xref_copy(lakehouse.read(CUSTOMER_XREF), output, xref_copy) if xref_copy else None
    return StandaloneReport(
        records=int(stats[0]), customers=int(stats[1]), probabilistic_records=int(stats[2] or 0), output=output, xref_copy=copy,
        matching=matching,
    )
