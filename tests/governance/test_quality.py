"""Data-quality checks: every kind passing and failing per region with exact counts, null handling,
a region without rows, freshness against a fixed clock, row-count change against the previous run,
the error gate, check validation, the ops.dq_results frame and the previous row counts."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from customer360.errors import C360Error
from customer360.governance.quality import (
    COMMENTS,
    DQ_RESULTS_SCHEMA,
    Check,
    CheckResult,
    DataQualityConfigError,
    DataQualityError,
    evaluate_checks,
    previous_row_counts,
    raise_on_errors,
    results_frame,
)

TABLE = "silver.customers"
NOW = datetime(2026, 7, 1, 12)
CUSTOMERS_SCHEMA = "id string, region string, status string, tier int, amount double, email string"

# us (7 rows): u1 twice with different emails, u2 twice with the same email; two null ids (not
# duplicates of each other); ACTIVE is not an accepted status (case matters); tier 3 is not
# accepted; amounts -1 and 150 are out of [0, 100] (100 itself is in); u3 has null status, tier,
# amount and email: only not_null counts them.
# de (3 rows): clean, with amounts on both bounds and the id u2 that us also has (unique is per region).
# gb: bad rows in a region nobody asked about: not checked.
CUSTOMERS = [
    ("u1", "us", "active", 1, 10.0, "a@x"),
    ("u1", "us", "churned", 2, 20.0, "z@x"),
    ("u2", "us", "churned", 3, 100.0, "b@x"),
    ("u2", "us", "ACTIVE", 1, -1.0, "b@x"),
    ("u3", "us", None, None, None, None),
    (None, "us", "active", 2, 150.0, "c@x"),
    (None, "us", "active", 1, 5.0, "c@x"),
    ("d1", "de", "active", 1, 0.0, "d@x"),
    ("d2", "de", "churned", 1, 50.0, "e@x"),
    ("u2", "de", "active", 2, 100.0, "b@x"),
    ("g1", "gb", "bad", 9, -5.0, None),
    ("g1", "gb", None, None, 500.0, None),
]

NOT_NULL = Check(TABLE, "not_null", ("id",))
NOT_NULL_PAIR = Check(TABLE, "not_null", ("id", "email"), severity="warn")
UNIQUE = Check(TABLE, "unique", ("id",))
UNIQUE_PAIR = Check(TABLE, "unique", ("id", "email"), severity="warn")
STATUS = Check(TABLE, "accepted_values", ("status",), values=("active", "churned"))
TIER = Check(TABLE, "accepted_values", ("tier",), values=("1", "2"), severity="warn")
AMOUNT = Check(TABLE, "range", ("amount",), min=0, max=100)
AMOUNT_MIN = Check(TABLE, "range", ("amount",), min=0.0, name="silver.customers:amount_not_negative")
AMOUNT_MAX = Check(TABLE, "range", ("amount",), max=100.0, name="silver.customers:amount_at_most_100")
ROW_CHECKS = [NOT_NULL, NOT_NULL_PAIR, UNIQUE, UNIQUE_PAIR, STATUS, TIER, AMOUNT, AMOUNT_MIN, AMOUNT_MAX]


def summary(results):
    return {(r.check, r.region): (r.passed, r.observed, r.failing_rows, r.rows) for r in results}


@pytest.fixture(scope="module")
def customers(spark):
    return spark.createDataFrame(CUSTOMERS, CUSTOMERS_SCHEMA)


@pytest.fixture(scope="module")
def row_results(customers):
    # fr has no rows; gb has rows but is not asked for
    return evaluate_checks(customers, ROW_CHECKS, regions=["us", "de", "fr"], now=NOW)


# --- row checks -------------------------------------------------------------------------------------

def test_row_checks_count_failing_rows_per_region(row_results):
    us = {
        NOT_NULL: (False, 2.0, 2, 7),  # the two null ids
        NOT_NULL_PAIR: (False, 3.0, 3, 7),  # and u3's null email
        UNIQUE: (False, 4.0, 4, 7),  # u1 x2, u2 x2; null ids are not compared
        UNIQUE_PAIR: (False, 2.0, 2, 7),  # (u2, b@x) x2; u1's emails differ
        STATUS: (False, 1.0, 1, 7),  # ACTIVE; the null status is not a failure
        TIER: (False, 1.0, 1, 7),  # 3, compared as the string "3"
        AMOUNT: (False, 2.0, 2, 7),  # -1 and 150; 100 and the null amount pass
        AMOUNT_MIN: (False, 1.0, 1, 7),
        AMOUNT_MAX: (False, 1.0, 1, 7),
    }
    expected = {(c.check_name, "us"): v for c, v in us.items()}
    expected |= {(c.check_name, "de"): (True, 0.0, 0, 3) for c in ROW_CHECKS}
    expected |= {(c.check_name, "fr"): (True, 0.0, 0, 0) for c in ROW_CHECKS}
    assert summary(row_results) == expected
    # regions in the order asked, then checks in the order given
    assert [(r.region, r.check) for r in row_results] == [(g, c.check_name) for g in ("us", "de", "fr") for c in ROW_CHECKS]


def test_row_check_results_carry_the_check_and_actionable_messages(row_results):
    by_key = {(r.check, r.region): r for r in row_results}
    first = by_key[("silver.customers:not_null(id)", "us")]
    assert (first.table, first.kind, first.severity, first.threshold) == (TABLE, "not_null", "error", "0 failing rows")
    assert by_key[(TIER.check_name, "us")].severity == "warn"
    messages = {c.check_name: by_key[(c.check_name, "us")].message for c in ROW_CHECKS}
    suffix = " (threshold 0 failing rows)"
    assert messages == {
        "silver.customers:not_null(id)": "silver.customers:not_null(id) [us]: 2 of 7 rows have a null id" + suffix,
        "silver.customers:not_null(id,email)": "silver.customers:not_null(id,email) [us]: 3 of 7 rows have a null id or email" + suffix,
        "silver.customers:unique(id)": "silver.customers:unique(id) [us]: 4 of 7 rows have a duplicated id" + suffix,
        "silver.customers:unique(id,email)": "silver.customers:unique(id,email) [us]: 2 of 7 rows have a duplicated (id, email) combination" + suffix,
        "silver.customers:accepted_values(status)": "silver.customers:accepted_values(status) [us]: 1 of 7 rows have status outside the accepted values active, churned" + suffix,
        "silver.customers:accepted_values(tier)": "silver.customers:accepted_values(tier) [us]: 1 of 7 rows have tier outside the accepted values 1, 2" + suffix,
        "silver.customers:range(amount)": "silver.customers:range(amount) [us]: 2 of 7 rows have amount outside [0, 100]" + suffix,
        "silver.customers:amount_not_negative": "silver.customers:amount_not_negative [us]: 1 of 7 rows have amount below 0" + suffix,
        "silver.customers:amount_at_most_100": "silver.customers:amount_at_most_100 [us]: 1 of 7 rows have amount above 100" + suffix,
    }
    assert {r.message for r in row_results if r.region in ("de", "fr")} == {"ok"}


def test_nothing_to_check_runs_nothing(customers):
    assert evaluate_checks(customers, ROW_CHECKS, regions=[], now=NOW) == []
    assert evaluate_checks(customers, [], regions=["us"], now=NOW) == []


# --- freshness and row-count change ----------------------------------------------------------------------

# updated_local is the same wall-clock time without a zone (how the delta-rs engine reads timestamps)
EVENTS_SCHEMA = "id string, region string, updated_at timestamp, updated_local timestamp_ntz"
EVENTS = [
    ("e1", "us", datetime(2026, 6, 30, 11, 30)),  # 24.5 h before NOW: fresh
    ("e2", "us", datetime(2026, 6, 1)),
    ("e3", "us", None),
    ("e4", "de", datetime(2026, 6, 28, 6)),  # 78 h: stale
    ("e5", "nl", datetime(2026, 6, 29, 12)),  # exactly 48 h: still fresh
    ("e6", "it", None),  # only null timestamps
    ("e7", "it", None),
    ("e8", "gb", datetime(2026, 6, 30)),
    ("e9", "gb", datetime(2026, 6, 30)),
]
EVENTS = [(*row, row[2]) for row in EVENTS]
FRESHNESS = Check("silver.events", "freshness", ("updated_at",), max_age_hours=48, severity="warn")
FRESHNESS_NTZ = Check("silver.events", "freshness", ("updated_local",), max_age_hours=48)


@pytest.fixture(scope="module")
def events(spark):
    return spark.createDataFrame(EVENTS, EVENTS_SCHEMA)


@pytest.mark.parametrize("now", [NOW, datetime(2026, 7, 1, 14, tzinfo=timezone(timedelta(hours=2)))], ids=["naive-utc", "aware"])
def test_freshness_measures_the_newest_value_against_now(events, now):
    results = evaluate_checks(events, [FRESHNESS, FRESHNESS_NTZ], regions=["us", "de", "nl", "it", "fr"], now=now)
    expected = {"us": (True, 24.5, 0, 3), "de": (False, 78.0, 0, 1), "nl": (True, 48.0, 0, 1), "it": (False, None, 0, 2), "fr": (False, None, 0, 0)}
    assert summary(results) == {(c.check_name, g): v for c in (FRESHNESS, FRESHNESS_NTZ) for g, v in expected.items()}
    results = [r for r in results if r.check == FRESHNESS.check_name]
    name, threshold = "silver.events:freshness(updated_at)", "(threshold <= 48 h)"
    assert [r.message for r in results] == [
        "ok",
        f"{name} [de]: the newest updated_at is 78 h old {threshold}",
        "ok",
        f"{name} [it]: all 2 rows have a null updated_at, so it has no newest value {threshold}",
        f"{name} [fr]: the table has no rows for region fr, so updated_at has no newest value {threshold}",
    ]
    assert {r.threshold for r in results} == {"<= 48 h"}


ROW_COUNT = Check("silver.events", "row_count_change", max_change=0.5)
ROW_COUNT_RECORDED = Check("silver.events", "row_count_change", name="silver.events:rows_recorded", severity="warn")


def test_row_count_change_against_the_previous_run(events):
    previous = {
        ("silver.events", "us"): 2,  # 3 rows now: +50%, on the limit
        ("silver.events", "de"): 4,  # 1 row now: -75%
        ("silver.events", "it"): 0,  # 2 rows now: from none
        ("silver.events", "fr"): 0,  # still none
        ("silver.other", "gb"): 10,  # another table's count: gb has no previous count of its own
    }
    results = evaluate_checks(
        events, [ROW_COUNT, ROW_COUNT_RECORDED], regions=["us", "de", "it", "fr", "gb"], now=NOW, previous_rows=previous
    )
    limited = [r for r in results if r.check == ROW_COUNT.check_name]
    name = "silver.events:row_count_change()"
    assert [(r.region, r.passed, r.observed, r.failing_rows, r.rows, r.message) for r in limited] == [
        ("us", True, 0.5, 0, 3, "ok"),
        ("de", False, -0.75, 0, 1, f"{name} [de]: the row count went from 4 to 1 (-75%) (threshold <= 50%)"),
        ("it", False, math.inf, 0, 2, f"{name} [it]: the row count went from 0 to 2 (no rows before) (threshold <= 50%)"),
        ("fr", True, 0.0, 0, 0, "ok"),
        ("gb", True, None, 0, 2, f"{name} [gb]: no previous row count for silver.events in gb; 2 rows recorded as the baseline"),
    ]
    assert {r.threshold for r in limited} == {"<= 50%"}
    # without a limit the change is recorded and never fails, even from no rows
    recorded = {r.region: (r.passed, r.observed, r.threshold) for r in results if r.check == "silver.events:rows_recorded"}
    assert recorded == {
        "us": (True, 0.5, "no limit"), "de": (True, -0.75, "no limit"), "it": (True, math.inf, "no limit"),
        "fr": (True, 0.0, "no limit"), "gb": (True, None, "no limit"),
    }


# --- the error gate ------------------------------------------------------------------------------------

def test_raise_on_errors_lists_every_failed_error_check(row_results):
    with pytest.raises(DataQualityError) as raised:
        raise_on_errors(row_results)
    message = str(raised.value)
    assert message.startswith(
        "data-quality check(s) failed: silver.customers:not_null(id) [us]: 2 of 7 rows have a null id "
        "(threshold 0 failing rows); silver.customers:unique(id) [us]: 4 of 7 rows have a duplicated id"
    )
    errors = [NOT_NULL, UNIQUE, STATUS, AMOUNT, AMOUNT_MIN, AMOUNT_MAX]
    assert all(f"{c.check_name} [us]: " in message for c in errors)
    assert not any(c.check_name in message for c in (NOT_NULL_PAIR, UNIQUE_PAIR, TIER))  # warn only
    assert "[de]" not in message and "[fr]" not in message
    assert [(r.check, r.region) for r in raised.value.failures] == [(c.check_name, "us") for c in errors]
    assert isinstance(raised.value, C360Error)


def test_raise_on_errors_ignores_warn_failures_and_passes(row_results):
    warn_failures = [r for r in row_results if r.severity == "warn" and not r.passed]
    assert len(warn_failures) == 3
    raise_on_errors(warn_failures)
    raise_on_errors([r for r in row_results if r.passed])
    raise_on_errors([])


# --- check validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "range", "columns": ("amount",)}, r"range\(amount\)': a range check needs min, max or both"),
        ({"kind": "range", "columns": ("amount",), "min": 5, "max": 1}, r"min \(5\) is above max \(1\)"),
        ({"kind": "range", "columns": ("amount",), "min": "0"}, r"min must be a number, got '0'"),
        ({"kind": "accepted_values", "columns": ("status",)}, r"accepted_values\(status\)': an accepted_values check needs at least one value"),
        ({"kind": "accepted_values", "columns": ("tier",), "values": (1, 2)}, r"values must be strings \(quote numbers in YAML\)"),
        ({"kind": "unique"}, r"unique\(\)': a unique check needs at least one column"),
        ({"kind": "not_null"}, r"a not_null check needs at least one column"),
        ({"kind": "not_null", "columns": ("id", "id")}, r"name a column more than once"),
        ({"kind": "not_null", "columns": ("id", 3)}, r"not_null\(id,3\)': columns must be non-empty strings, got \['id', 3\]"),
        ({"kind": "freshness", "columns": ("a", "b"), "max_age_hours": 1}, r"freshness\(a,b\)': a freshness check needs exactly one column, got \['a', 'b'\]"),
        ({"kind": "freshness", "columns": ("a",)}, r"a freshness check needs max_age_hours above 0, got None"),
        ({"kind": "freshness", "columns": ("a",), "max_age_hours": 0}, r"max_age_hours above 0, got 0"),
        ({"kind": "row_count_change", "columns": ("id",)}, r"columns is not used by a row_count_change check"),
        ({"kind": "row_count_change", "max_change": -0.1}, r"max_change must not be negative"),
        ({"kind": "not_null", "columns": ("id",), "values": ("x",), "max": 3}, r"max, values are not used by a not_null check"),
        ({"kind": "nullable", "columns": ("id",)}, r"kind 'nullable' is not one of not_null, unique, accepted_values, range"),
        ({"kind": "not_null", "columns": ("id",), "severity": "fatal"}, r"severity 'fatal' is not one of error, warn"),
        ({"kind": "not_null", "columns": "id"}, r"columns must be a list of strings, not 'id'"),
    ],
)
def test_a_malformed_check_is_refused_naming_it(fields, problem):
    with pytest.raises(DataQualityConfigError, match=problem) as raised:
        Check(TABLE, **fields)
    assert TABLE in str(raised.value)
    assert isinstance(raised.value, C360Error)


def test_check_names_and_list_arguments():
    check = Check(TABLE, "unique", ["id", "email"], values=[])
    assert (check.columns, check.values, check.check_name) == (("id", "email"), (), "silver.customers:unique(id,email)")
    assert hash(check) == hash(Check(TABLE, "unique", ("id", "email")))
    assert Check(TABLE, "row_count_change").check_name == "silver.customers:row_count_change()"
    assert Check(TABLE, "not_null", ("id",), name="ids present").check_name == "ids present"


@pytest.mark.parametrize(
    ("checks", "problem"),
    [
        ([Check(TABLE, "not_null", ("customer_id",))], r"column\(s\) \['customer_id'\] are not in silver.customers"),
        ([Check(TABLE, "range", ("status",), min=0)], r"range needs a numeric column; status is string"),
        ([Check(TABLE, "freshness", ("email",), max_age_hours=1)], r"freshness needs a timestamp or date column; email is string"),
        ([NOT_NULL, Check("silver.orders", "not_null", ("id",))], r"checks of 2 tables \(silver.customers, silver.orders\)"),
        ([AMOUNT, Check(TABLE, "range", ("amount",), max=5)], r"check name\(s\) \['silver.customers:range\(amount\)'\] are used more than once"),
    ],
)
def test_checks_that_do_not_fit_the_frame_are_refused(customers, checks, problem):
    with pytest.raises(DataQualityConfigError, match=problem):
        evaluate_checks(customers, checks, regions=["us"], now=NOW)


def test_a_frame_without_a_region_column_is_refused(customers):
    with pytest.raises(DataQualityConfigError, match="silver.customers has no 'region' column"):
        evaluate_checks(customers.drop("region"), [NOT_NULL], regions=["us"], now=NOW)


# --- ops.dq_results ---------------------------------------------------------------------------------------------

def result(check: str, region: str, rows: int, *, passed: bool = True, observed: float | None = 0.0, failing_rows: int = 0,
           kind: str = "not_null", severity: str = "error", threshold: str = "0 failing rows", message: str = "ok") -> CheckResult:
    return CheckResult(check=check, table=TABLE, kind=kind, severity=severity, region=region, passed=passed,
                       observed=observed, failing_rows=failing_rows, rows=rows, threshold=threshold, message=message)


def test_results_frame_schema_and_values(spark):
    results = [
        result("silver.customers:not_null(id)", "us", 7, passed=False, observed=2.0, failing_rows=2, message="2 of 7 rows"),
        result("silver.customers:row_count_change()", "de", 3, kind="row_count_change", severity="warn", observed=None,
               threshold="<= 50%", message="no previous row count"),
        result("silver.customers:row_count_change()", "it", 2, passed=False, kind="row_count_change", observed=math.inf,
               threshold="<= 50%", message="from 0 to 2"),
    ]
    df = results_frame(spark, results, run_id="run-7", checked_at=NOW)
    assert df.schema == DQ_RESULTS_SCHEMA
    assert df.columns == ["run_id", "checked_at", "table", "check", "kind", "severity", "passed", "observed",
                          "failing_rows", "rows", "threshold", "message", "region"]
    assert sorted(COMMENTS) == sorted(df.columns) and all(COMMENTS.values())
    assert [tuple(r) for r in df.collect()] == [
        ("run-7", NOW, TABLE, "silver.customers:not_null(id)", "not_null", "error", False, 2.0, 2, 7, "0 failing rows", "2 of 7 rows", "us"),
        ("run-7", NOW, TABLE, "silver.customers:row_count_change()", "row_count_change", "warn", True, None, 0, 3, "<= 50%",
         "no previous row count", "de"),
        ("run-7", NOW, TABLE, "silver.customers:row_count_change()", "row_count_change", "error", False, math.inf, 0, 2, "<= 50%",
         "from 0 to 2", "it"),
    ]


def test_previous_row_counts_take_the_latest_result_of_any_check(spark):
    def row(checked_at, table, kind, rows, region):
        return ("run", checked_at, table, f"{table}:{kind}()", kind, "error", True, 0.0, 0, rows, "t", "ok", region)

    day = timedelta(days=1)
    dq_results = spark.createDataFrame(
        [
            row(NOW - 2 * day, TABLE, "row_count_change", 90, "us"),
            row(NOW, TABLE, "not_null", 120, "us"),  # the latest us count comes from a not_null result
            row(NOW - day, TABLE, "row_count_change", 100, "us"),
            row(NOW - day, TABLE, "unique", 40, "de"),
            row(NOW - 3 * day, "silver.orders", "range", 5, "us"),
            row(NOW - day, "silver.orders", "range", 7, "us"),
        ],
        DQ_RESULTS_SCHEMA,
    )
    assert previous_row_counts(dq_results) == {(TABLE, "us"): 120, (TABLE, "de"): 40, ("silver.orders", "us"): 7}
    assert previous_row_counts(None) == {}
