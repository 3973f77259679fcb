"""Schema contracts of the raw sources: columns, types, which are required, and value rules.

The typed ``StructType`` of each bronze table, the validators and the test fixtures all come
from these constants. Columns a file carries beyond its contract are kept as strings (schema
drift); a contract column a file lacks is null, unless it is required, which fails the file.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Literal

from pyspark.sql import types as T

from customer360.errors import C360Error
from customer360.lakehouse import Constraints

EARLIEST_TIMESTAMP = datetime(1990, 1, 1, tzinfo=timezone.utc)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

#: Ingestion metadata every bronze row carries.
METADATA_FIELDS = (
    T.StructField("_source_file", T.StringType(), False),
    T.StructField("_row_number", T.LongType(), False),
    T.StructField("_ingested_at", T.TimestampType(), False),
    T.StructField("_run_id", T.StringType(), False),
    T.StructField("_content_hash", T.StringType(), False),
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("file", T.StringType(), False),
        T.StructField("row_number", T.LongType(), False),
        T.StructField("raw_payload", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("region", T.StringType(), True),
    ]
)

#: every quarantined row says where it came from and why
QUARANTINE_CONSTRAINTS = Constraints(not_null=tuple(f.name for f in QUARANTINE_SCHEMA.fields if not f.nullable))

INGESTED_FILES_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("file", T.StringType(), False),
        T.StructField("region", T.StringType(), True),
        T.StructField("size_bytes", T.LongType(), False),
        T.StructField("content_hash", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("rows_read", T.LongType(), True),
        T.StructField("rows_loaded", T.LongType(), True),
        T.StructField("rows_quarantined", T.LongType(), True),
        T.StructField("message", T.StringType(), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        # when this status was recorded: the table is a log, a file's latest row is its status
        T.StructField("recorded_at", T.TimestampType(), True),
    ]
)


@dataclass(frozen=True)
class Column:
    name: str
    type: T.DataType = T.StringType()
    required: bool = False
    #: smallest allowed number (inclusive)
    minimum: float | None = None
    maximum: float | None = None
    #: dates/timestamps must not lie after the ingestion time
    not_future: bool = False
    #: a time stamp without offset is wall-clock time of the row's region
    local_time: bool = False
    allowed: tuple[str, ...] | None = None
    #: columns a row must also fill when it fills this one
    requires: tuple[str, ...] = ()


#: change data capture: a source that delivers changes marks each row with the operation and the
#: source's own sequence number; the latest change of a record id is the one with the highest
#: sequence, whenever it arrives (bronze/versions.py), and a record whose latest change is a delete
#: is gone downstream. Rows without a sequence (full exports) are older than any sequenced row.
CHANGE_OP = "change_op"
CHANGE_SEQ = "change_seq"
CHANGE_DELETE = "delete"
CHANGE_OPS = ("insert", "update", CHANGE_DELETE)


@dataclass(frozen=True)
class SourceContract:
    name: str
    format: Literal["csv", "json", "parquet"]
    columns: tuple[Column, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def record_id(self) -> str:
        """The column that names one record of the source (its first, a required column): with the
        region, the key of the source's current state (``bronze.current``)."""
        return self.columns[0].name

    @property
    def keys(self) -> tuple[str, str]:
        return ("region", self.record_id)

    @property
    def schema(self) -> T.StructType:
        """The typed columns of ``bronze.<name>`` (before drift columns and metadata)."""
        return T.StructType([T.StructField(c.name, c.type, True) for c in self.columns])

    @property
    def constraints(self) -> Constraints:
        """What every row of ``bronze.<name>`` promises, as Delta CHECK constraints: required and
        ingestion-metadata columns are never null, numbers lie within their bounds, codes among
        their allowed values. Ingestion quarantines the rows that do not before it writes, so a
        violation is a bug in validation, stopped at the table."""
        checks = []
        for c in self.columns:
            if c.minimum is not None:
                checks.append((f"{c.name}_min", f"{c.name} IS NULL OR {c.name} >= {c.minimum:g}"))
            if c.maximum is not None:
                checks.append((f"{c.name}_max", f"{c.name} IS NULL OR {c.name} <= {c.maximum:g}"))
            if c.allowed is not None:
                values = ", ".join("'" + v + "'" for v in c.allowed)
                checks.append((f"{c.name}_allowed", f"{c.name} IS NULL OR {c.name} IN ({values})"))
        return Constraints(not_null=self.required + tuple(f.name for f in METADATA_FIELDS), checks=tuple(checks))

    @property
    def extensions(self) -> tuple[str, ...]:
        return {"csv": (".csv",), "json": (".jsonl", ".json"), "parquet": (".parquet",)}[self.format]


def _ts(name: str, *, required: bool = True, local: bool = False) -> Column:
    return Column(name, T.TimestampType(), required=required, not_future=True, local_time=local)


REGION = Column("region", required=True)

CONTRACTS: dict[str, SourceContract] = {
    c.name: c
    for c in (
        SourceContract(
            "crm_customers",
            "csv",
            (
                Column("crm_id", required=True),
                Column("account_type", allowed=("B2C", "B2B")),
                Column("company_name"),
                Column("first_name"),
                Column("last_name"),
                Column("email"),
                Column("phone"),
                Column("birth_date", T.DateType(), not_future=True),
                Column("street"),
                Column("city"),
                Column("postcode"),
                Column("country"),
                Column("loyalty_number"),
                _ts("updated_at", local=True),
                REGION,
                Column(CHANGE_OP, allowed=CHANGE_OPS, requires=(CHANGE_SEQ,)),
                Column(CHANGE_SEQ, T.LongType(), minimum=0, requires=(CHANGE_OP,)),
            ),
        ),
        SourceContract(
            "web_events",
            "json",
            (
                Column("event_id", required=True),
                _ts("event_ts", local=True),
                Column(
                    "event_type",
                    required=True,
                    allowed=("page_view", "product_view", "add_to_cart", "login", "purchase"),
                ),
                Column("cookie_id"),
                Column("device_id"),
                Column("login_email"),
                Column("product_category"),
                REGION,
            ),
        ),
        SourceContract(
            "orders",
            "parquet",
            (
                Column("order_line_id", required=True),
                Column("order_id", required=True),
                _ts("ordered_at"),
                Column("customer_email"),
                Column("loyalty_number"),
                Column("shipping_postcode"),
                Column("product_category"),
                Column("quantity", T.LongType(), required=True, minimum=1),
                Column("unit_price", T.DoubleType(), required=True, minimum=0),
                Column("unit_cost", T.DoubleType(), minimum=0),
                Column("currency", required=True),
                Column("is_return", T.BooleanType()),
                REGION,
            ),
        ),
        SourceContract(
            "support_tickets",
            "csv",
            (
                Column("ticket_id", required=True),
                Column("contact_first_name"),
                Column("contact_last_name"),
                Column("contact_email"),
                Column("contact_phone"),
                _ts("opened_at", local=True),
                Column("channel"),
                Column("topic"),
                Column("satisfaction", T.IntegerType(), minimum=1, maximum=5),
                REGION,
            ),
        ),
        SourceContract(
            "consent",
            "json",
            (
                Column("consent_event_id", required=True),
                Column("email"),
                Column("purpose", required=True, allowed=("marketing", "profiling")),
                Column("action", required=True, allowed=("opt_in", "opt_out", "erasure_request")),
                _ts("recorded_at", local=True),
                Column("channel"),
                REGION,
            ),
        ),
    )
}


def source_names(sources: Sequence[str] | None) -> list[str]:
    """The named sources (every source when none is named); an unknown name is refused."""
    names = list(sources or CONTRACTS)
    unknown = [n for n in names if n not in CONTRACTS]
    if unknown:
        raise C360Error(f"unknown source(s) {unknown}; known: {', '.join(CONTRACTS)}")
    return names
