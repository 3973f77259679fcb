"""Declarative data-quality checks, evaluated per region on one table's DataFrame.

A :class:`Check` says what must hold (``not_null``, ``unique``, ``accepted_values``, ``range``,
``freshness``, ``row_count_change``); :func:`evaluate_checks` turns a table's checks into one
:class:`CheckResult` per check and region; :func:`results_frame` shapes them for ``ops.dq_results``;
:func:`raise_on_errors` stops the pipeline on a failed ``error`` check (``warn`` is recorded only).

Only aggregates reach the driver: every check that is an aggregate (the row count, null, value and
range violations, the newest timestamp) is computed in one ``groupBy("region")`` job, and each
``unique`` check takes one more.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import reduce
from typing import Literal, NoReturn, get_args

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import types as T

from customer360.errors import C360Error
from customer360.lakehouse.common import described_columns

Severity = Literal["error", "warn"]
Kind = Literal["not_null", "unique", "accepted_values", "range", "freshness", "row_count_change"]

KINDS: tuple[str, ...] = get_args(Kind)
SEVERITIES: tuple[str, ...] = get_args(Severity)
REGION_COLUMN = "region"

#: the optional fields each kind uses; any other one set is a mistake in the check
_FIELDS: dict[str, frozenset[str]] = {
    "not_null": frozenset({"columns"}),
    "unique": frozenset({"columns"}),
    "accepted_values": frozenset({"columns", "values"}),
    "range": frozenset({"columns", "min", "max"}),
    "freshness": frozenset({"columns", "max_age_hours"}),
    "row_count_change": frozenset({"max_change"}),
}
_ROW_KINDS = ("not_null", "unique", "accepted_values", "range")
_MICROS_PER_HOUR = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class DataQualityConfigError(C360Error):
    """A data-quality check is malformed, or does not fit the table it is evaluated on."""


class DataQualityError(C360Error):
    """At least one data-quality check of severity ``error`` failed."""

    def __init__(self, message: str, failures: Sequence[CheckResult] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


@dataclass(frozen=True)
class Check:
    """One declarative check of one table (see the module docstring for the kinds)."""

    table: str
    kind: Kind
    #: not_null: each must be non-null; unique: the combination must be unique;
    #: accepted_values, range, freshness: exactly one column; row_count_change: none
    columns: tuple[str, ...] = ()
    severity: Severity = "error"
    #: accepted_values: the allowed values, compared with the column cast to string
    values: tuple[str, ...] = ()
    #: range: inclusive bounds, either may be None
    min: float | None = None
    max: float | None = None
    #: freshness: the newest value must be at most this old
    max_age_hours: float | None = None
    #: row_count_change: the largest allowed |rows - previous| / previous (0.5 = 50%); None: record only
    max_change: float | None = None
    name: str | None = None

    @property
    def check_name(self) -> str:
        return self.name or f"{self.table}:{self.kind}({','.join(map(str, self.columns))})"

    def __post_init__(self) -> None:
        for field in ("columns", "values"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise DataQualityConfigError(
                    f"data-quality check on {self.table!r}: {field} must be a list of strings, not {value!r}"
                )
            object.__setattr__(self, field, tuple(value))
        self._validate()

    def _fail(self, problem: str) -> NoReturn:
        raise DataQualityConfigError(f"data-quality check {self.check_name!r}: {problem}")

    def _validate(self) -> None:
        if not isinstance(self.table, str) or not self.table:
            self._fail("table must be a table name such as 'silver.orders'")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            self._fail("name must be a non-empty string (or left out for the default)")
        if self.kind not in KINDS:
            self._fail(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.severity not in SEVERITIES:
            self._fail(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if any(not isinstance(c, str) or not c for c in self.columns):
            self._fail(f"columns must be non-empty strings, got {list(self.columns)}")
        if len(set(self.columns)) != len(self.columns):
            self._fail(f"columns {list(self.columns)} name a column more than once")
        if any(not isinstance(v, str) for v in self.values):
            self._fail(f"values must be strings (quote numbers in YAML), got {list(self.values)}")
        for field in ("min", "max", "max_age_hours", "max_change"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
                self._fail(f"{field} must be a number, got {value!r}")

        given = {f for f in ("columns", "values") if getattr(self, f)}
        given |= {f for f in ("min", "max", "max_age_hours", "max_change") if getattr(self, f) is not None}
        unused = sorted(given - _FIELDS[self.kind])
        if unused:
            self._fail(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by a {self.kind} check")

        if self.kind in ("not_null", "unique") and not self.columns:
            self._fail(f"a {self.kind} check needs at least one column")
        if self.kind in ("accepted_values", "range", "freshness") and len(self.columns) != 1:
            self._fail(f"a {self.kind} check needs exactly one column, got {list(self.columns)}")
        if self.kind == "accepted_values" and not self.values:
            self._fail("an accepted_values check needs at least one value")
        if self.kind == "range":
            if self.min is None and self.max is None:
                self._fail("a range check needs min, max or both")
            if self.min is not None and self.max is not None and self.min > self.max:
                self._fail(f"min ({self.min}) is above max ({self.max})")
        if self.kind == "freshness" and (self.max_age_hours is None or self.max_age_hours <= 0):
            self._fail(f"a freshness check needs max_age_hours above 0, got {self.max_age_hours}")
        if self.max_change is not None and self.max_change < 0:
            self._fail(f"max_change must not be negative, got {self.max_change}")


@dataclass(frozen=True)
class CheckResult:
    check: str
    table: str
    kind: str
    severity: str
    region: str
    passed: bool
    #: failing row count; freshness: age in hours of the newest value; row_count_change: the signed
    #: relative change (-0.6 = 60% fewer rows). None where there is nothing to observe.
    observed: float | None
    failing_rows: int
    rows: int
    threshold: str
    message: str


DQ_RESULTS_SCHEMA, COMMENTS = described_columns(
    ("run_id", T.StringType(), False, "Pipeline run that evaluated the check."),
    ("checked_at", T.TimestampType(), False, "When the checks were evaluated, UTC."),
    ("table", T.StringType(), False, "Table the check ran on, as <layer>.<table>."),
    ("check", T.StringType(), False, "Name of the check (by default <table>:<kind>(<columns>))."),
    ("kind", T.StringType(), False, "Kind of check: not_null, unique, accepted_values, range, freshness or row_count_change."),
    ("severity", T.StringType(), False, "error stops the pipeline when the check fails; warn is only recorded."),
    ("passed", T.BooleanType(), False, "Whether the check held for the region."),
    ("observed", T.DoubleType(), True,
     "Failing rows; for freshness the newest value's age in hours; for row_count_change the relative "
     "change (null if nothing to observe)."),
    ("failing_rows", T.LongType(), False, "Rows that violate the check (0 for freshness and row_count_change)."),
    ("rows", T.LongType(), False, "Rows of the table in the region when checked."),
    ("threshold", T.StringType(), False, "What the check allows, in words."),
    ("message", T.StringType(), False, "ok, or what failed with the observed value and the threshold."),
    ("region", T.StringType(), False, "Region the result is for (partition)."),
)


# --- evaluation -----------------------------------------------------------------------------------

def _col(name: str) -> Column:
    return F.col(f"`{name}`")


def _aggregate(check: Check) -> Column | None:
    """The check's per-region aggregate over the rows, or None where it needs none."""
    if check.kind == "not_null":
        return F.count(F.when(reduce(operator.or_, [_col(c).isNull() for c in check.columns]), 1))
    if check.kind == "accepted_values":
        value = _col(check.columns[0]).cast("string")
        return F.count(F.when(value.isNotNull() & ~value.isin(*check.values), 1))
    if check.kind == "range":
        value = _col(check.columns[0])
        outside = [value < F.lit(check.min)] if check.min is not None else []
        outside += [value > F.lit(check.max)] if check.max is not None else []
        return F.count(F.when(reduce(operator.or_, outside), 1))  # null values compare to null: not counted
    if check.kind == "freshness":
        return F.max(F.unix_micros(_col(check.columns[0]).cast("timestamp")))
    return None


def _duplicated_rows(df: DataFrame, check: Check) -> dict[str, int]:
    """Rows per region whose key combination occurs more than once; rows with a null in the key
    are not compared (as in SQL, null is not equal to null; a not_null check covers them)."""
    keys = [_col(c) for c in check.columns]
    groups = (
        df.where(reduce(operator.and_, [k.isNotNull() for k in keys]))
        .groupBy(REGION_COLUMN, *keys)
        .agg(F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") > 1)
    )
    return {r[REGION_COLUMN]: int(r["_rows"]) for r in groups.groupBy(REGION_COLUMN).agg(F.sum("_n").alias("_rows")).collect()}


def _check_fits(df: DataFrame, checks: Sequence[Check]) -> None:
    tables = sorted({c.table for c in checks})
    if len(tables) > 1:
        raise DataQualityConfigError(
            f"evaluate_checks got checks of {len(tables)} tables ({', '.join(tables)}); evaluate each table's checks on its own frame"
        )
    names = [c.check_name for c in checks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataQualityConfigError(f"check name(s) {repeated} are used more than once; give the checks distinct names")
    types = {f.name: f.dataType for f in df.schema.fields}
    if REGION_COLUMN not in types:
        raise DataQualityConfigError(f"{tables[0]} has no {REGION_COLUMN!r} column; checks are evaluated per region")
    for check in checks:
        missing = [c for c in check.columns if c not in types]
        if missing:
            raise DataQualityConfigError(
                f"data-quality check {check.check_name!r}: column(s) {missing} are not in {check.table} ({', '.join(types)})"
            )
        if check.kind == "range" and not isinstance(types[check.columns[0]], T.NumericType):
            raise DataQualityConfigError(
                f"data-quality check {check.check_name!r}: range needs a numeric column; "
                f"{check.columns[0]} is {types[check.columns[0]].simpleString()}"
            )
        if check.kind == "freshness" and not isinstance(types[check.columns[0]], (T.TimestampType, T.TimestampNTZType, T.DateType)):
            raise DataQualityConfigError(
                f"data-quality check {check.check_name!r}: freshness needs a timestamp or date column; "
                f"{check.columns[0]} is {types[check.columns[0]].simpleString()}"
            )


def _as_utc(moment: datetime) -> datetime:
    """A naive datetime is UTC (the lakehouse's session time zone)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _micros(moment: datetime) -> int:
    delta = _as_utc(moment) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _number(value: float) -> str:
    """48.0 -> '48', 0.5 -> '0.5', 10.000000000000002 -> '10'."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _percent(change: float) -> str:
    return f"{'+' if change > 0 else ''}{_number(round(change * 100, 2))}%"


def _threshold(check: Check) -> str:
    if check.kind == "freshness":
        return f"<= {_number(check.max_age_hours)} h"
    if check.kind == "row_count_change":
        return "no limit" if check.max_change is None else f"<= {_number(check.max_change * 100)}%"
    return "0 failing rows"


def _violation(check: Check, failing: int, rows: int) -> str:
    columns = check.columns
    if check.kind == "not_null":
        return f"{failing} of {rows} rows have a null {' or '.join(columns)}"
    if check.kind == "unique":
        key = columns[0] if len(columns) == 1 else f"({', '.join(columns)}) combination"
        return f"{failing} of {rows} rows have a duplicated {key}"
    if check.kind == "accepted_values":
        return f"{failing} of {rows} rows have {columns[0]} outside the accepted values {', '.join(check.values)}"
    if check.min is not None and check.max is not None:
        bounds = f"outside [{_number(check.min)}, {_number(check.max)}]"
    elif check.min is not None:
        bounds = f"below {_number(check.min)}"
    else:
        bounds = f"above {_number(check.max)}"
    return f"{failing} of {rows} rows have {columns[0]} {bounds}"


def _evaluate(
    check: Check, *, region: str, rows: int, stat: int | None, duplicated: int, now_micros: int, previous: int | None
) -> CheckResult:
    threshold = _threshold(check)

    def result(passed: bool, observed: float | None, failing_rows: int, problem: str | None) -> CheckResult:
        message = "ok" if problem is None else f"{check.check_name} [{region}]: {problem}"
        return CheckResult(
            check=check.check_name, table=check.table, kind=check.kind, severity=check.severity, region=region,
            passed=passed, observed=observed, failing_rows=failing_rows, rows=rows, threshold=threshold, message=message,
        )

    if check.kind in _ROW_KINDS:
        failing = duplicated if check.kind == "unique" else int(stat or 0)
        problem = None if failing == 0 else f"{_violation(check, failing, rows)} (threshold {threshold})"
        return result(failing == 0, float(failing), failing, problem)

    if check.kind == "freshness":
        column = check.columns[0]
        if rows == 0:
            return result(False, None, 0, f"the table has no rows for region {region}, so {column} has no newest value (threshold {threshold})")
        if stat is None:
            return result(False, None, 0, f"all {rows} rows have a null {column}, so it has no newest value (threshold {threshold})")
        age = (now_micros - stat) / _MICROS_PER_HOUR
        passed = age <= check.max_age_hours
        problem = None if passed else f"the newest {column} is {_number(round(age, 2))} h old (threshold {threshold})"
        return result(passed, age, 0, problem)

    # row_count_change
    if previous is None:
        return result(True, None, 0, f"no previous row count for {check.table} in {region}; {rows} rows recorded as the baseline")
    change = (rows - previous) / previous if previous else (0.0 if rows == 0 else math.inf)
    passed = check.max_change is None or abs(change) <= check.max_change
    moved = "no rows before" if math.isinf(change) else _percent(change)
    problem = None if passed else f"the row count went from {previous} to {rows} ({moved}) (threshold {threshold})"
    return result(passed, change, 0, problem)


def evaluate_checks(
    df: DataFrame,
    checks: Sequence[Check],
    *,
    regions: Sequence[str],
    now: datetime,
    previous_rows: Mapping[tuple[str, str], int] | None = None,
) -> list[CheckResult]:
    """One result per region and check (regions in the order given, then checks in the order given).

    ``df`` is one table with a ``region`` column and ``checks`` are that table's; rows of regions
    not in ``regions`` are not checked. A region without rows still gets results: row checks pass,
    freshness fails. ``now`` (naive means UTC) is what freshness measures ages against;
    ``previous_rows[(table, region)]`` is the row count of the previous run (see
    :func:`previous_row_counts`). Spark jobs: one aggregate over the table plus one per unique check.
    """
    checks = list(checks)
    regions = list(dict.fromkeys(regions))
    if not checks:
        return []
    _check_fits(df, checks)
    if not regions:
        return []
    region = F.col(REGION_COLUMN).cast("string")
    scoped = df.withColumn(REGION_COLUMN, region).where(region.isin(*regions))

    aggregates = {f"_check_{i}": _aggregate(c) for i, c in enumerate(checks)}
    columns = [F.count(F.lit(1)).alias("_rows")] + [agg.alias(alias) for alias, agg in aggregates.items() if agg is not None]
    stats = {r[REGION_COLUMN]: r.asDict() for r in scoped.groupBy(REGION_COLUMN).agg(*columns).collect()}
    duplicated = {i: _duplicated_rows(scoped, c) for i, c in enumerate(checks) if c.kind == "unique"}

    now_micros = _micros(now)
    previous_rows = previous_rows or {}
    results = []
    for code in regions:
        stat = stats.get(code, {})
        rows = int(stat.get("_rows", 0))
        for i, check in enumerate(checks):
            results.append(
                _evaluate(
                    check, region=code, rows=rows, stat=stat.get(f"_check_{i}"),
                    duplicated=duplicated.get(i, {}).get(code, 0), now_micros=now_micros,
                    previous=previous_rows.get((check.table, code)),
                )
            )
    return results


# --- results ------------------------------------------------------------------------------------------

def results_frame(spark: SparkSession, results: Sequence[CheckResult], *, run_id: str, checked_at: datetime) -> DataFrame:
    """The results as rows of ``ops.dq_results`` (:data:`DQ_RESULTS_SCHEMA`); naive ``checked_at`` is UTC."""
    at = _as_utc(checked_at)
    rows = [
        (
            run_id, at, r.table, r.check, r.kind, r.severity, bool(r.passed),
            None if r.observed is None else float(r.observed), int(r.failing_rows), int(r.rows),
            r.threshold, r.message, r.region,
        )
        for r in results
    ]
    return spark.createDataFrame(rows, DQ_RESULTS_SCHEMA)


def raise_on_errors(results: Sequence[CheckResult]) -> None:
    """Raise :class:`DataQualityError` listing every failed ``error`` check; ``warn`` failures never raise."""
    failures = [r for r in results if not r.passed and r.severity == "error"]
    if failures:
        raise DataQualityError(
            "data-quality check(s) failed: " + "; ".join(r.message for r in failures), failures
        )


def previous_row_counts(dq_results: DataFrame | None) -> dict[tuple[str, str], int]:
    """(table, region) -> the ``rows`` of its latest result in ``ops.dq_results`` (any check: each
    result carries its region's row count). One small aggregate, collected."""
    if dq_results is None:
        return {}
    latest = (
        dq_results.where(F.col("checked_at").isNotNull() & F.col("rows").isNotNull())
        .groupBy("table", REGION_COLUMN)
        # the greatest (checked_at, rows): the latest result, and a deterministic pick among ties
        .agg(F.max(F.struct("checked_at", "rows")).alias("_latest"))
    )
    return {(r["table"], r[REGION_COLUMN]): int(r["_latest"]["rows"]) for r in latest.collect()}
