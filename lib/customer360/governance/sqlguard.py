"""The gate in front of role SQL: an allow-list over what Spark's own parser makes of a query.

A role's query is parsed by the session's parser (the one ``spark.sql`` uses, Delta's extension
included), so what is checked is exactly what would run. The unresolved plan is walked node by node
(plans, their expressions, subqueries, CTE bodies and window definitions) and every node must be of
a class on ``PLAN_NODES`` or ``EXPRESSIONS``; every function call must name a function on
``FUNCTIONS`` (pure SQL functions: no ``reflect``/``java_method``, no UDFs, no file or session
metadata, nothing added by a later Spark until someone puts it on the list); every relation must
be one the caller allows (the role's tables) or a CTE of the query. Anything else - DDL, DML,
``SET``, commands, hints, time travel, table-valued functions, path-based relations, parameter
markers, ``IDENTIFIER(...)``, several statements - is refused with a ``QueryRefused`` naming what
was refused. Before parsing, the text itself is bounded (length, nesting), so a hostile query
cannot exhaust the parser's stack.

The walk is done over py4j, one call per node attribute: ``max_plan_nodes`` bounds its cost.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from customer360.errors import QueryRefused

__all__ = ["QueryRefused", "QueryBounds", "check_text", "check_query", "refuse_shadowing_ctes", "parse_plan",
           "check_scan", "estimated_scan_bytes", "fetch_bounded"]


@dataclass(frozen=True)
class QueryBounds:
    """Limits on one role query; ``governance.sql`` in the config."""

    max_query_chars: int = 20_000
    #: parentheses and brackets open at once
    max_nesting: int = 64
    #: plan and expression nodes of the parsed query
    max_plan_nodes: int = 5_000
    #: rows a query may return
    max_rows: int = 100_000
    #: wall-clock seconds of the query's Spark jobs before they are cancelled
    timeout_seconds: float = 300.0
    #: estimated bytes the query's relations hold (Spark's statistics of the optimized plan's leaves)
    max_scan_bytes: int = 10 * 1024**3


# Unresolved logical plans the parser builds for a read-only query (catalyst.plans.logical and
# catalyst.analysis). Not here, so refused: commands, DDL/DML, hints (UnresolvedHint), time
# travel (RelationTimeTravel), table-valued functions (UnresolvedTableValuedFunction), Sample,
# DISTRIBUTE BY / CLUSTER BY (RepartitionByExpression), TRANSFORM scripts, pipe and SQL scripting
# statements, IDENTIFIER() (PlanWithUnresolvedIdentifier) and whatever a later Spark adds.
PLAN_NODES = frozenset({
    "Project", "Filter", "Aggregate", "Join", "SubqueryAlias", "UnresolvedWith", "Sort", "GlobalLimit",
    "LocalLimit", "Offset", "Union", "Intersect", "Except", "Distinct", "Generate", "Pivot", "Unpivot",
    "OneRowRelation", "WithWindowDefinition", "LateralJoin", "UnresolvedRelation", "UnresolvedInlineTable",
    "UnresolvedSubqueryColumnAliases", "UnresolvedHaving", "LimitAll",
    # VALUES of literals only: the parser evaluates them into rows
    "LocalRelation",
})

# Expressions the parser builds from SQL syntax (operators, literals, names, CASE, CAST, subqueries,
# window specifications, lambdas). Function calls are UnresolvedFunction / UnresolvedGenerator and
# checked by name against FUNCTIONS. Not here, so refused: parameter markers, session variables'
# references by IDENTIFIER, regex column names, and anything unknown.
EXPRESSIONS = frozenset({
    "Alias", "UnresolvedAlias", "UnresolvedAttribute", "UnresolvedStar", "UnresolvedStarExceptOrReplace",
    "UnresolvedFunction", "UnresolvedGenerator", "UnresolvedExtractValue", "Literal",
    "Add", "Subtract", "Multiply", "Divide", "IntegralDivide", "Remainder", "UnaryMinus", "UnaryPositive",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "ShiftLeft", "ShiftRight", "ShiftRightUnsigned",
    "EqualTo", "EqualNullSafe", "LessThan", "LessThanOrEqual", "GreaterThan", "GreaterThanOrEqual",
    "Not", "And", "Or", "In", "InSubquery", "ListQuery", "Exists", "ScalarSubquery", "LateralSubquery",
    "IsNull", "IsNotNull", "IsUnknown", "IsNotUnknown", "Like", "ILike", "RLike", "LikeAll", "NotLikeAll",
    "LikeAny", "NotLikeAny", "CaseWhen", "Cast", "Concat", "SortOrder", "UnresolvedWindowExpression", "WindowExpression", "WindowSpecDefinition",
    "WindowSpecReference", "SpecifiedWindowFrame", "UnspecifiedFrame$", "UnboundedPreceding$",
    "UnboundedFollowing$", "CurrentRow$", "LambdaFunction",
    "UnresolvedNamedLambdaVariable", "Cube", "Rollup", "GroupingSets", "UnresolvedOrdinal",
    "Coalesce", "Between", "Extract", "Collate", "UnresolvedCollation", "CurrentDate", "CurrentTimestamp",
    "IsUnknown$$anon$1", "IsNotUnknown$$anon$1", "AttributeReference",
    # built directly by the parser from SQL syntax: struct(a AS x), position(a IN b), trim(BOTH ...),
    # substring(a FROM 1 FOR 2), overlay(... PLACING ...), timestampadd/diff(unit, ...), aggregate options
    "CreateNamedStruct", "StringLocate", "StringTrim", "StringTrimLeft", "StringTrimRight", "Substring",
    "Overlay", "TimestampAdd", "TimestampDiff", "aggregate.AggregateExpression", "aggregate.AnyValue",
    "aggregate.First", "aggregate.Last",
})

# Pure SQL functions a role may call: aggregates, window functions, arithmetic, strings, dates,
# conditionals, arrays, maps and structs. Out by omission: reflect, java_method, try_reflect,
# input_file_name/input_file_block_*, current_user/user/session_user, current_catalog/database/
# schema, version, spark_partition_id, xpath* (XML parsing), from_protobuf/from_avro and friends,
# aes_*/secret, assert_true/raise_error, every UDF and every function Spark adds later.
FUNCTIONS = frozenset("""
count count_if sum avg mean min max min_by max_by first first_value last last_value any_value any every some
bool_and bool_or stddev stddev_pop stddev_samp std variance var_pop var_samp covar_pop covar_samp corr
regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy
percentile percentile_cont percentile_disc percentile_approx approx_percentile approx_count_distinct median mode skewness kurtosis
collect_list collect_set array_agg listagg string_agg grouping grouping_id
row_number rank dense_rank percent_rank cume_dist ntile lag lead nth_value
abs ceil ceiling floor round bround sign signum sqrt cbrt exp expm1 ln log log10 log2 log1p pow power
mod pmod div greatest least negative positive pi e degrees radians sin cos tan asin acos atan atan2
sinh cosh tanh width_bucket try_add try_subtract try_multiply try_divide try_mod try_sum try_avg
nanvl isnan bin hex unhex conv factorial
lower lcase upper ucase initcap trim ltrim rtrim btrim lpad rpad length char_length character_length
octet_length bit_length substr substring left right concat concat_ws replace translate overlay
instr locate position startswith endswith contains split split_part reverse repeat space
regexp_replace regexp_extract regexp_extract_all regexp_like regexp_count regexp_instr regexp_substr
rlike like ilike format_number format_string printf ascii chr char soundex levenshtein md5 sha sha1 sha2
crc32 hash xxhash64 base64 unbase64 encode decode to_char to_varchar to_number try_to_number elt
find_in_set mask nullif nvl nvl2 ifnull coalesce if isnull isnotnull equal_null
current_date current_timestamp now curdate localtimestamp current_timezone
date_add date_sub dateadd date_diff datediff add_months months_between last_day next_day date_trunc trunc
date_format to_date to_timestamp try_to_timestamp to_timestamp_ntz to_timestamp_ltz to_unix_timestamp
unix_timestamp from_unixtime unix_date unix_seconds unix_millis unix_micros timestamp_seconds
timestamp_millis timestamp_micros date_from_unix_date make_date make_timestamp make_interval
make_dt_interval make_ym_interval year quarter month weekofyear day dayofmonth
dayofweek dayofyear weekday hour minute second extract date_part datepart
from_utc_timestamp to_utc_timestamp
between string int bigint smallint tinyint double float decimal boolean date timestamp binary
array array_contains array_distinct array_except array_intersect array_join array_max array_min
array_position array_remove array_repeat array_sort array_union arrays_overlap arrays_zip array_size
array_append array_prepend array_compact element_at try_element_at size cardinality slice sort_array
flatten sequence shuffle transform filter aggregate reduce exists forall zip_with
explode explode_outer posexplode posexplode_outer inline inline_outer
map map_keys map_values map_entries map_from_arrays map_from_entries map_concat map_filter
map_contains_key transform_keys transform_values str_to_map struct named_struct get
to_json from_json get_json_object json_tuple json_array_length json_object_keys schema_of_json
typeof
""".split())

# Bare names that the analyzer turns into calls (Spark's literal functions): refused unless qualified
# (``t.user``), since current_user/user/session_user say who runs the session.
BARE_FUNCTION_NAMES = frozenset({"current_user", "user", "session_user"})

_PREFIXES = ("org.apache.spark.sql.catalyst.plans.logical.", "org.apache.spark.sql.catalyst.analysis.",
             "org.apache.spark.sql.catalyst.expressions.")


def check_text(sql: str, bounds: QueryBounds) -> None:
    """Length and nesting, before any parser sees the text."""
    if not isinstance(sql, str):
        raise QueryRefused("the query must be a string")
    if len(sql) > bounds.max_query_chars:
        raise QueryRefused(f"the query has {len(sql):,} characters; at most {bounds.max_query_chars:,} are allowed")
    if "\x00" in sql:
        raise QueryRefused("the query contains a NUL character")
    depth = deepest = 0
    for ch in sql:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > bounds.max_nesting:
        raise QueryRefused(f"the query nests {deepest} levels of brackets; at most {bounds.max_nesting} are allowed")


@dataclass
class CheckedQuery:
    """What the walk found: the relations named (lower-case, dotted) and the query's CTE names."""

    relations: set[str] = field(default_factory=set)
    ctes: set[str] = field(default_factory=set)
    nodes: int = 0


def _seq(value) -> Iterator:
    for i in range(value.length()):
        yield value.apply(i)


def _class_name(node) -> str:
    full = node.getClass().getName()
    for prefix in _PREFIXES:
        if full.startswith(prefix):
            return full[len(prefix):]
    return full


def _short(what: str) -> str:
    return what if len(what) <= 120 else what[:117] + "..."


class _Walker:
    """Walks a plan with an explicit stack (a left-deep chain of 3,000 ``+`` would overflow
    Python's recursion limit), counting every node against ``max_plan_nodes``."""

    def __init__(self, allowed: set[str], bounds: QueryBounds):
        self.allowed = allowed
        self.bounds = bounds
        self.found = CheckedQuery()
        self.stack: list[tuple[bool, object]] = []

    def walk(self, root) -> None:
        self.stack.append((True, root))
        while self.stack:
            is_plan, node = self.stack.pop()
            self.found.nodes += 1
            if self.found.nodes > self.bounds.max_plan_nodes:
                raise QueryRefused(f"the query has more than {self.bounds.max_plan_nodes:,} plan nodes")
            if is_plan:
                self.plan(node)
            else:
                self.expression(node)

    def _push(self, is_plan: bool, nodes: Iterable) -> None:
        self.stack.extend((is_plan, n) for n in nodes)

    def plan(self, node) -> None:
        name = _class_name(node)
        if name not in PLAN_NODES:
            raise QueryRefused(f"{_describe_plan(name)} is not allowed in a role query")
        if name == "UnresolvedRelation":
            self.relation(node)
        elif name == "UnresolvedWith":
            for pair in _seq(node.cteRelations()):
                self.found.ctes.add(str(pair._1()).lower())
                self._push(True, [pair._2()])
        elif name == "WithWindowDefinition":
            self._push(False, _seq(node.windowDefinitions().values().toSeq()))
        self._push(True, _seq(node.children()))
        self._push(False, _seq(node.expressions()))

    def relation(self, node) -> None:
        parts = [str(p) for p in _seq(node.multipartIdentifier())]
        key = ".".join(p.lower() for p in parts)
        if node.isStreaming():
            raise QueryRefused(f"streaming reads ({_short(key)}) are not allowed in a role query")
        if not node.options().isEmpty():
            raise QueryRefused(f"read options on {_short(key)} are not allowed in a role query")
        if any("@" in p for p in parts):
            raise QueryRefused(f"{_short(key)}: time travel is not allowed in a role query")
        self.found.relations.add(key)

    def expression(self, node) -> None:
        name = _class_name(node)
        if name not in EXPRESSIONS:
            raise QueryRefused(f"{_describe_expression(name)} is not allowed in a role query")
        if name == "UnresolvedFunction":
            parts = [str(p) for p in _seq(node.nameParts())]
            function = ".".join(parts).lower()
            if len(parts) != 1 or function not in FUNCTIONS:
                raise QueryRefused(f"function {_short(function)} is not allowed in a role query")
        elif name == "UnresolvedGenerator":
            identifier = node.name()
            function = str(identifier.funcName()).lower()
            if identifier.database().isDefined() or function not in FUNCTIONS:
                raise QueryRefused(f"function {_short(str(identifier.unquotedString()))} is not allowed in a role query")
        elif name == "UnresolvedStar" and node.target().isDefined():
            if any(str(p).lower() == "_metadata" for p in _seq(node.target().get())):
                raise QueryRefused("the _metadata column (file paths and sizes) is not allowed in a role query")
        elif name == "UnresolvedAttribute":
            parts = [str(p) for p in _seq(node.nameParts())]
            if len(parts) == 1 and parts[0].lower() in BARE_FUNCTION_NAMES:
                raise QueryRefused(f"{parts[0]} is not allowed in a role query (qualify a column of that name)")
            if any(p.lower() == "_metadata" for p in parts):
                raise QueryRefused("the _metadata column (file paths and sizes) is not allowed in a role query")
        elif name in ("ScalarSubquery", "Exists", "ListQuery", "LateralSubquery"):
            self._push(True, [node.plan()])
        self._push(False, _seq(node.children()))


def _describe_plan(name: str) -> str:
    known = {
        "UnresolvedHint": "a hint", "RelationTimeTravel": "time travel (VERSION/TIMESTAMP AS OF)",
        "UnresolvedTableValuedFunction": "a table-valued function", "PlanWithUnresolvedIdentifier": "IDENTIFIER(...)",
        "RepartitionByExpression": "DISTRIBUTE BY / CLUSTER BY", "Sample": "TABLESAMPLE",
        "ScriptTransformation": "TRANSFORM", "CompoundBody": "a SQL script",
    }
    if name in known:
        return known[name]
    return f"the statement or clause {name.rsplit('.', 1)[-1].rstrip('$')}"


def _describe_expression(name: str) -> str:
    known = {
        "NamedParameter": "a parameter marker", "PosParameter": "a parameter marker",
        "ExpressionWithUnresolvedIdentifier": "IDENTIFIER(...)", "UnresolvedRegex": "a regex column name",
    }
    return known.get(name, f"the expression {name.rsplit('.', 1)[-1].rstrip('$')}")


def parse_plan(spark: SparkSession, sql: str):
    """The session parser's unresolved plan of ``sql`` (a QueryRefused when it does not parse)."""
    try:
        return spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)
    except Exception as exc:  # noqa: BLE001 - ParseException or a py4j error: the user's to fix
        first = (str(exc).strip().splitlines() or ["(no message)"])[0]
        raise QueryRefused(f"cannot parse the query: {_short(first)}") from None


def check_query(spark: SparkSession, sql: str, *, allowed: Iterable[str], bounds: QueryBounds,
                role: str = "") -> CheckedQuery:
    """Parse ``sql`` with the session's parser and walk it: a ``QueryRefused`` unless it is one
    read-only query whose every node, function and relation is allowed. ``allowed`` holds the
    relation names (dotted, lower-case) it may read besides its own CTEs."""
    check_text(sql, bounds)
    plan = parse_plan(spark, sql)
    allowed_set = {a.lower() for a in allowed}
    walker = _Walker(allowed_set, bounds)
    walker.walk(plan)
    found = walker.found
    who = f" to role {role}" if role else ""
    for relation in sorted(found.relations):
        if relation not in allowed_set and relation not in found.ctes:
            raise QueryRefused(f"table {_short(relation)} is not available{who}")
    return found


def refuse_shadowing_ctes(spark: SparkSession, found: CheckedQuery) -> None:
    """A CTE named like an existing table or view could, referenced outside its scope, read that
    object instead: such names are refused."""
    for name in sorted(found.ctes):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or spark.catalog.tableExists(name):
            raise QueryRefused(f"the CTE name {_short(name)} is taken by a table or view of the session; choose another")


def estimated_scan_bytes(df) -> int:
    """Spark's size estimate of the optimized plan's leaves (the files the query reads, before
    pruning at run time): an upper bound that needs no job."""
    leaves = df._jdf.queryExecution().optimizedPlan().collectLeaves()
    return sum(int(str(leaf.stats().sizeInBytes())) for leaf in _seq(leaves))  # a BigInt, or an int by py4j


def check_scan(df, bounds: QueryBounds) -> None:
    size = estimated_scan_bytes(df)
    if size > bounds.max_scan_bytes:
        raise QueryRefused(
            f"the query would scan about {size:,} bytes; at most {bounds.max_scan_bytes:,} are allowed "
            f"(governance.sql.max_scan_bytes): filter on a partition column or query a smaller table"
        )


def fetch_bounded(spark: SparkSession, df, bounds: QueryBounds, *, rows: int | None = None, as_rows: bool = False):
    """The first ``rows`` (at most ``bounds.max_rows``) rows of ``df`` plus one (so a caller can say
    the result was cut) as a pandas frame (``as_rows``: a list of Rows, values as Spark gives them); the query's Spark jobs are cancelled after
    ``bounds.timeout_seconds`` and the call raises ``QueryRefused``.

    The jobs carry a job tag of their own. Cancelling by tag reaches only the jobs running at that
    moment, and adaptive execution submits a query's stages as separate jobs, so once the time is
    up the watcher cancels the tag every 0.1 s until the fetch has returned."""
    import threading
    import uuid

    rows = bounds.max_rows if rows is None else rows
    if rows < 0 or rows > bounds.max_rows:
        raise QueryRefused(f"at most {bounds.max_rows:,} rows may be fetched (governance.sql.max_rows), not {rows:,}")
    context = spark.sparkContext
    tag = f"c360-role-query-{uuid.uuid4().hex}"
    done = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        if done.wait(bounds.timeout_seconds):
            return
        fired.set()
        while not done.is_set():
            context.cancelJobsWithTag(tag)
            done.wait(0.1)

    watcher = threading.Thread(target=watch, name=tag, daemon=True)
    context.addJobTag(tag)
    watcher.start()
    try:
        frame = df.limit(rows + 1).collect() if as_rows else df.limit(rows + 1).toPandas()
    except Exception:
        if fired.is_set():
            raise QueryRefused(
                f"the query was stopped after {bounds.timeout_seconds:g} s (governance.sql.timeout_seconds)"
            ) from None
        raise
    finally:
        done.set()
        context.removeJobTag(tag)
        watcher.join()
    if fired.is_set():  # every job had finished before the cancel could reach one
        raise QueryRefused(f"the query was stopped after {bounds.timeout_seconds:g} s (governance.sql.timeout_seconds)")
    return frame
