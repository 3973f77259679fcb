"""Role-based access to the lakehouse tables: one policy, applied locally and in Unity Catalog.

A role names the tables it may read (fnmatch patterns over ``<layer>.<table>``) and what it sees
in PII columns, which hold HMAC tokens in every table:

* ``clear`` - the value, looked up in the restricted ``silver.pii_vault``
* ``token`` - the token as stored
* ``mask`` - ``"***"`` where the column is not null
* ``drop`` - no PII column at all

Locally, ``register_role_views`` registers one temporary view per readable table as the role sees
it and ``run_sql`` runs a query against them (table names rewritten with sqlglot). What a role's
query may contain is an allow-list checked on Spark's own parse of it (``sqlguard``): one read-only
query over the role's tables, pure SQL functions only, bounded in size, scan, rows and time. The
boundary is the query text: code that holds the SparkSession itself (jobs, a notebook) can read
the files, so roles hand SQL to ``run_sql`` and never a session. ``unity_catalog_sql`` emits the
statements that enforce the same policy in Unity Catalog (a column mask, grants, and views without
the PII columns).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Literal, get_args

import pyspark.sql.functions as F
import sqlglot
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from sqlglot import exp
from sqlglot.errors import SqlglotError

from customer360.errors import AccessError, QueryRefused
from customer360.governance.sqlguard import QueryBounds, check_query, check_scan, refuse_shadowing_ctes
from customer360.lakehouse.core import LAYERS, Lakehouse
from customer360.tables import PII_VAULT  # the restricted token -> value table

PiiTreatment = Literal["clear", "token", "mask", "drop"]
PII_TREATMENTS: tuple[str, ...] = get_args(PiiTreatment)
MASK = "***"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(value: str, *, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise AccessError(f"{what} {value!r} must match {_NAME_RE.pattern} (letters, digits, underscores)")
    return value


def _split_table(name: str) -> tuple[str, str]:
    layer, sep, table = name.partition(".")
    if not sep or layer not in LAYERS or not _NAME_RE.match(table):
        raise AccessError(f"table {name!r} must be <layer>.<table> with layer one of {', '.join(LAYERS)}")
    return layer, table


@dataclass(frozen=True)
class RolePolicy:
    """What one role may read, and how it sees PII columns."""

    name: str
    #: fnmatch patterns of the tables the role may read, e.g. ("gold.*",)
    tables: tuple[str, ...]
    pii: PiiTreatment
    #: the Unity Catalog account group of the role
    group: str
    #: may export contact details (the activation export)
    contact_export: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, what="role name")
        _check_name(self.group, what=f"group of role {self.name}")
        if self.pii not in PII_TREATMENTS:
            raise AccessError(f"role {self.name}: pii must be one of {', '.join(PII_TREATMENTS)}, not {self.pii!r}")
        if isinstance(self.tables, str):
            raise AccessError(f"role {self.name}: tables must be a sequence of patterns, not the string {self.tables!r}")
        object.__setattr__(self, "tables", tuple(self.tables))

    def may_read(self, table: str) -> bool:
        return any(fnmatchcase(table, pattern) for pattern in self.tables)


@dataclass(frozen=True)
class AccessPolicy:
    """PII columns per table and the roles. ``restricted`` tables are never readable through a
    role (only jobs read them); a role pattern that matches one is ignored for it."""

    pii_columns: Mapping[str, tuple[str, ...]]
    roles: Mapping[str, RolePolicy]
    restricted: tuple[str, ...] = (PII_VAULT,)
    #: bounds on every role query (governance.sql)
    sql_bounds: QueryBounds = QueryBounds()

    def __post_init__(self) -> None:
        for table, columns in self.pii_columns.items():
            _split_table(table)
            if isinstance(columns, str):
                raise AccessError(f"pii_columns[{table!r}] must be a list of columns, not the string {columns!r}")
            for column in columns:
                _check_name(column, what=f"PII column of {table}")
        for key, role in self.roles.items():
            if role.name != key:
                raise AccessError(f"roles[{key!r}] is named {role.name!r}: the key and the name must agree")
        object.__setattr__(
            self, "pii_columns", MappingProxyType({t: tuple(c) for t, c in self.pii_columns.items()})
        )
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))
        object.__setattr__(self, "restricted", tuple(self.restricted))

    def role(self, name: str) -> RolePolicy:
        try:
            return self.roles[name]
        except KeyError:
            raise AccessError(f"unknown role {name!r}; known roles: {', '.join(sorted(self.roles)) or '(none)'}") from None

    def is_restricted(self, table: str) -> bool:
        return any(fnmatchcase(table, pattern) for pattern in self.restricted)

    def readable(self, role: str, tables: Sequence[str]) -> list[str]:
        """The tables of ``tables`` (in their order) the role may read; restricted ones never."""
        policy = self.role(role)
        return [t for t in tables if policy.may_read(t) and not self.is_restricted(t)]

    def pii_of(self, table: str) -> tuple[str, ...]:
        return self.pii_columns.get(table, ())


def policy_from_mapping(data: Mapping[str, Any]) -> AccessPolicy:
    """The policy from a plain mapping shaped like ``conf/governance.yaml`` (either the whole file,
    with a ``governance`` key, or that section). Validation of the file is the config's job; this
    only builds the objects (and rejects values that would make unsafe names)."""
    section = data.get("governance", data)
    if "roles" not in section:
        raise AccessError("the access policy needs a 'roles' mapping (governance.roles)")
    roles = {}
    for name, spec in section["roles"].items():
        missing = [key for key in ("tables", "pii", "group") if key not in spec]
        if missing:
            raise AccessError(f"governance.roles.{name}: missing {', '.join(missing)}")
        roles[name] = RolePolicy(
            name=name,
            tables=tuple(spec["tables"]),
            pii=spec["pii"],
            group=spec["group"],
            contact_export=bool(spec.get("contact_export", False)),
        )
    pii_columns = {table: tuple(columns) for table, columns in (section.get("pii_columns") or {}).items()}
    restricted = tuple(section.get("restricted", (PII_VAULT,)))
    bounds = section.get("sql") or {}
    unknown = sorted(set(bounds) - set(QueryBounds.__dataclass_fields__))
    if unknown:
        raise AccessError(f"governance.sql: unknown key(s) {', '.join(unknown)}")
    return AccessPolicy(pii_columns=pii_columns, roles=roles, restricted=restricted, sql_bounds=QueryBounds(**bounds))


# --------------------------------------------------------------------------- the role's view of a table


def _present_pii(df: DataFrame, *, table: str, policy: AccessPolicy) -> tuple[str, ...]:
    pii = policy.pii_of(table)
    missing = [c for c in pii if c not in df.columns]
    if missing:
        # a renamed PII column would otherwise pass through unprotected under its new name
        raise AccessError(
            f"the access policy lists PII column(s) {', '.join(missing)} for {table}, but the table has "
            f"no such column: update governance.pii_columns"
        )
    return pii


def _with_clear_values(df: DataFrame, *, pii: Sequence[str], vault: DataFrame) -> DataFrame:
    # One join for all PII columns: each row is tagged with an id and exploded into one row per
    # non-null token (carrying the whole row as a struct), the tokens are left-joined to the vault,
    # and the pieces are folded back into one row per id, picking each column's value from the
    # piece of that column. Compared with one join per column this shuffles the table once; compared
    # with collecting the vault (restricted to the tokens present) into a broadcast map it does not
    # need the vault to fit in one row's memory. Null tokens are not exploded, so they cannot skew the
    # join onto one partition; a row without any token survives through explode_outer. The fold takes
    # max(value) per column, so a token the vault holds in several regions (the same value each
    # time) does not duplicate rows, and a token missing from the vault gives null.
    pieces = F.filter(
        F.array(*[F.struct(F.lit(c).alias("column"), F.col(f"`{c}`").cast("string").alias("token")) for c in pii]),
        lambda piece: piece["token"].isNotNull(),
    )
    # the id is set before the explode, in its own projection: beside a generator Spark would
    # evaluate it once per output row
    tagged = df.select(
        F.monotonically_increasing_id().alias("_row_id"),
        F.struct(*[F.col(f"`{c}`") for c in df.columns]).alias("_row"),
        pieces.alias("_pieces"),
    )
    exploded = tagged.select("_row_id", "_row", F.explode_outer("_pieces").alias("_piece"))
    tokens = vault.select(F.col("token").alias("_token"), F.col("value").alias("_value"))
    joined = exploded.join(tokens, F.col("_piece.token") == F.col("_token"), "left")
    folded = joined.groupBy("_row_id").agg(
        F.any_value("_row").alias("_row"),
        *[F.max(F.when(F.col("_piece.column") == c, F.col("_value"))).alias(f"_clear_{i}") for i, c in enumerate(pii)],
    )
    clear = {c: F.col(f"_clear_{i}").cast("string").alias(c) for i, c in enumerate(pii)}
    return folded.select(*[clear.get(c, F.col("_row").getField(c).alias(c)) for c in df.columns])


def role_view(
    df: DataFrame,
    *,
    table: str,
    role: RolePolicy,
    policy: AccessPolicy,
    vault: DataFrame | None = None,
) -> DataFrame:
    """``df`` (the table ``table``) as ``role`` sees it: the same columns in the same order, PII
    columns kept as tokens, masked, dropped or replaced by the vault's clear value."""
    if not role.may_read(table) or policy.is_restricted(table):
        raise AccessError(f"role {role.name} may not read table {table}")
    pii = _present_pii(df, table=table, policy=policy)
    if not pii or role.pii == "token":
        return df
    if role.pii == "drop":
        return df.drop(*pii)
    if role.pii == "mask":
        masked = {c: F.when(F.col(f"`{c}`").isNotNull(), F.lit(MASK)).cast("string").alias(c) for c in pii}
        return df.select(*[masked.get(c, F.col(f"`{c}`")) for c in df.columns])
    if vault is None:
        raise AccessError(f"role {role.name} sees PII in clear: pass the vault ({PII_VAULT}) to show {table}")
    return _with_clear_values(df, pii=pii, vault=vault)


# --------------------------------------------------------------------------- SQL against the role's views


def _parse_query(sql: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
    except SqlglotError as exc:
        raise AccessError(f"cannot parse the SQL: {exc}") from exc
    if len(statements) != 1:
        raise AccessError(f"exactly one statement is allowed, got {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise AccessError("only queries are allowed (SELECT, WITH ... SELECT, UNION ...)")
    for function in statement.find_all(exp.Anonymous):
        if str(function.this).lower() == "identifier":
            # IDENTIFIER('silver.pii_vault') names a table at run time, out of reach of the rewrite
            raise AccessError("IDENTIFIER(...) is not allowed in a governed query: name tables directly")
    return statement


def _table_key(table: exp.Table) -> str:
    return ".".join(part.name for part in table.parts).lower()


def _rewrite(statement: exp.Expression, names: Mapping[str, str], *, role: str) -> exp.Expression:
    names = {k.lower(): v for k, v in names.items()}
    for table in list(statement.find_all(exp.Table)):
        if not table.args.get("db"):
            continue  # a CTE, an unqualified name or a built-in table function (range, explode...)
        if not isinstance(table.this, exp.Identifier):
            raise AccessError(f"{table.sql(dialect='spark')}: qualified table functions are not allowed for role {role}")
        key = _table_key(table)
        if key not in names:
            first = key.split(".")[0]
            if table.args.get("catalog") or first not in LAYERS:
                raise AccessError(
                    f"{key} is not a lakehouse table: role {role} may read only <layer>.<table> names "
                    f"(layers {', '.join(LAYERS)})"
                )
            raise AccessError(f"table {key} is not available to role {role}")
        if not table.alias:
            # ``gold.customer_360`` is also addressable as ``customer_360`` (``customer_360.email``)
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
        table.set("catalog", None)
        table.set("db", None)
        table.set("this", exp.to_identifier(names[key]))
    for column in statement.find_all(exp.Column):
        # ``gold.customer_360.email``: the table part now names the alias set above
        if column.args.get("db") and not column.args.get("catalog"):
            if f"{column.args['db'].name}.{column.table}".lower() in names:
                column.set("db", None)
    return statement


def rewrite_sql(sql: str, names: Mapping[str, str], *, role: str) -> str:
    """One Spark SQL query with each ``<layer>.<table>`` of ``names`` replaced by its view name.

    Aliases, column references, string literals, CTEs and unqualified names are kept; any other
    qualified table reference, a second statement, or anything but a query is an ``AccessError``.
    """
    return _rewrite(_parse_query(sql), names, role=role).sql(dialect="spark")


def view_name(table: str, *, prefix: str = "c360_") -> str:
    layer, name = _split_table(table)
    return f"{prefix}{layer}__{name}"


def register_role_views(
    spark: SparkSession,
    lakehouse: Lakehouse,
    *,
    role: str,
    policy: AccessPolicy,
    prefix: str = "c360_",
) -> dict[str, str]:
    """Register a temporary view per table of the lakehouse the role may read, as it sees it;
    returns table -> view name. The vault is read only if the role needs clear values (the views
    belong to ``spark``, the session the lakehouse reads with)."""
    if prefix:
        _check_name(prefix, what="view prefix")
    role_policy = policy.role(role)
    tables = policy.readable(role, lakehouse.tables())
    vault = None
    if role_policy.pii == "clear" and any(policy.pii_of(t) for t in tables):
        vault = lakehouse.read(PII_VAULT)
    views = {}
    for table in tables:
        name = view_name(table, prefix=prefix)
        role_view(lakehouse.read(table), table=table, role=role_policy, policy=policy, vault=vault).createOrReplaceTempView(name)
        views[table] = name
    return views


def role_view_prefix(role: str) -> str:
    """Each role's views have their own names, so two roles querying one session never read each
    other's views (``c360_finance__gold__customer_360``)."""
    return f"c360_{_check_name(role, what='role name')}__"


def _short_analysis_error(exc: Exception) -> str:
    # Spark's message ends with the plan, which names the views' hidden columns: the first line only
    first = (str(exc).strip().splitlines() or ["(no message)"])[0]
    return first if len(first) <= 300 else first[:297] + "..."


def run_sql(
    spark: SparkSession,
    lakehouse: Lakehouse,
    sql: str,
    *,
    role: str,
    policy: AccessPolicy,
    bounds: QueryBounds | None = None,
) -> DataFrame:
    """One read-only query as ``role``: its ``<layer>.<table>`` names resolve to the role's views.

    The query passes ``sqlguard.check_query`` (Spark's own parser, an allow-list of plan nodes,
    expressions and functions, the role's tables and the query's CTEs only) before it is rewritten,
    and the rewritten text passes it again before it runs, so the text Spark runs is the text that
    was checked. The result's estimated scan must fit ``bounds.max_scan_bytes`` (``bounds``
    defaults to the policy's); fetch it with ``sqlguard.fetch_bounded`` for the row and time bounds."""
    bounds = bounds or policy.sql_bounds
    readable = policy.readable(role, lakehouse.tables())
    found = check_query(spark, sql, allowed=readable, bounds=bounds, role=role)
    refuse_shadowing_ctes(spark, found)
    prefix = role_view_prefix(role)
    names = {t: view_name(t, prefix=prefix) for t in readable}
    try:
        rewritten = _rewrite(_parse_query(sql), names, role=role).sql(dialect="spark")
    except RecursionError:
        raise QueryRefused("the query nests too deeply") from None
    try:
        check_query(spark, rewritten, allowed=[names[t] for t in found.relations if t in names], bounds=bounds, role=role)
    except QueryRefused as exc:  # the rewrite must never widen what the query reads
        raise QueryRefused(f"the query could not be rewritten safely ({exc})") from None
    register_role_views(spark, lakehouse, role=role, policy=policy, prefix=prefix)
    try:
        df = spark.sql(rewritten)
    except AnalysisException as exc:  # a column the role does not see, a typo: the user's to fix
        raise AccessError(f"query failed for role {role}: {_short_analysis_error(exc)}") from None
    check_scan(df, bounds)
    return df


# --------------------------------------------------------------------------- Unity Catalog


def _q(*parts: str) -> str:
    return ".".join(f"`{p}`" for p in parts)


def unity_catalog_sql(
    policy: AccessPolicy,
    *,
    catalog: str,
    tables: Sequence[str],
    columns: Mapping[str, Sequence[str]] | None = None,
    mask_function: str = "governance.mask_pii",
) -> list[str]:
    """Statements that implement the policy in Unity Catalog, ``<layer>.<table>`` being
    ``<catalog>.<layer>.<table>``.

    The tables hold tokens, so one column mask decides token vs ``***``: members of the groups of
    token and clear roles see the token (clear roles detokenize in jobs, never through SQL), everyone
    else ``***`` (null stays null, as locally). Roles with ``drop`` get no grant on a table with PII
    columns; they read ``<catalog>.governance.<role>__<table>``, a view without those columns, which
    needs the table's columns in ``columns``. Restricted tables get no grant, only a revoke. Grants
    are additive: a grant the policy no longer gives must be revoked by hand.
    """
    _check_name(catalog, what="catalog")
    mask_schema, sep, mask_name = mask_function.partition(".")
    if not sep:
        raise AccessError(f"mask_function {mask_function!r} must be <schema>.<function>")
    _check_name(mask_schema, what="mask function schema")
    _check_name(mask_name, what="mask function name")
    columns = columns or {}
    for table in tables:
        _split_table(table)
        for column in columns.get(table, ()):
            _check_name(column, what=f"column of {table}")
        missing = [c for c in policy.pii_of(table) if table in columns and c not in columns[table]]
        if missing:
            raise AccessError(f"the access policy lists PII column(s) {', '.join(missing)} that {table} lacks")

    seeing = [r.group for r in policy.roles.values() if r.pii in ("token", "clear")]
    condition = " OR ".join(f"is_account_group_member('{g}')" for g in dict.fromkeys(seeing))
    condition = f"value IS NULL OR {condition}" if condition else "value IS NULL"
    mask = _q(catalog, mask_schema, mask_name)
    statements = [f"CREATE SCHEMA IF NOT EXISTS {_q(catalog, s)};" for s in dict.fromkeys(["governance", mask_schema])]
    statements.append(
        f"CREATE OR REPLACE FUNCTION {mask}(value STRING) RETURNS STRING "
        f"RETURN CASE WHEN {condition} THEN value ELSE '{MASK}' END;"
    )
    for table in tables:
        if policy.is_restricted(table):
            continue
        for column in policy.pii_of(table):
            statements.append(f"ALTER TABLE {_q(catalog, *table.split('.'))} ALTER COLUMN `{column}` SET MASK {mask};")
    for table in tables:
        if policy.is_restricted(table):
            target = _q(catalog, *table.split("."))
            statements.append(f"REVOKE ALL PRIVILEGES ON TABLE {target} FROM `account users`;")
            for group in dict.fromkeys(r.group for r in policy.roles.values()):
                statements.append(f"REVOKE ALL PRIVILEGES ON TABLE {target} FROM `{group}`;")

    for role in policy.roles.values():
        readable = policy.readable(role.name, tables)
        if not readable:
            continue
        schemas: dict[str, None] = {}
        grants: list[str] = []
        views: dict[str, str] = {}
        for table in readable:
            layer, name = table.split(".")
            pii = policy.pii_of(table)
            if role.pii == "drop" and pii:
                if table not in columns:
                    raise AccessError(f"role {role.name} reads {table} through a view without PII: pass its columns")
                view = _q(catalog, "governance", f"{role.name}__{name}")
                if view in views:
                    raise AccessError(f"role {role.name}: {views[view]} and {table} would share the view {view}")
                views[view] = table
                kept = ", ".join(f"`{c}`" for c in columns[table] if c not in pii)
                schemas["governance"] = None
                grants.append(f"CREATE OR REPLACE VIEW {view} AS SELECT {kept} FROM {_q(catalog, layer, name)};")
                grants.append(f"GRANT SELECT ON VIEW {view} TO `{role.group}`;")
            else:
                schemas[layer] = None
                grants.append(f"GRANT SELECT ON TABLE {_q(catalog, layer, name)} TO `{role.group}`;")
        statements.append(f"GRANT USE CATALOG ON CATALOG `{catalog}` TO `{role.group}`;")
        statements.extend(f"GRANT USE SCHEMA ON SCHEMA {_q(catalog, s)} TO `{role.group}`;" for s in sorted(schemas))
        statements.extend(grants)
    return statements
