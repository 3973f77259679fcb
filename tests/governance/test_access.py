"""Role-based access: role views, SQL rewriting, run_sql on a lakehouse, Unity Catalog statements."""
from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from customer360.config import LakehouseConfig
from customer360.errors import C360Error
from customer360.governance.access import (
    AccessError,
    AccessPolicy,
    RolePolicy,
    policy_from_mapping,
    register_role_views,
    rewrite_sql,
    role_view,
    run_sql,
    unity_catalog_sql,
)
from customer360.lakehouse import Lakehouse

GOVERNANCE = {
    "governance": {
        "pii_columns": {"gold.customer_360": ["first_name", "email"]},
        "roles": {
            "analyst": {"tables": ["gold.*"], "pii": "token", "group": "c360_analysts"},
            "finance": {"tables": ["gold.finance_*", "gold.customer_360"], "pii": "drop", "group": "c360_finance"},
            "marketing": {
                "tables": ["gold.customer_360", "gold.customer_segments"], "pii": "clear",
                "group": "c360_marketing", "contact_export": True,
            },
            "support": {"tables": ["gold.customer_360"], "pii": "mask", "group": "c360_support"},
            "auditor": {"tables": ["*.*"], "pii": "token", "group": "c360_auditors"},
        },
        "unity_catalog": {"catalog": "main"},
    }
}

C360 = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("first_name", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("churn_score", T.DoubleType()),
        T.StructField("region", T.StringType()),
    ]
)
C360_ROWS = [
    ("c1", "tok_fn_ann", "tok_em_ann", 0.1, "us"),
    ("c2", "tok_fn_bob", None, 0.7, "us"),
    ("c3", None, None, 0.5, "de"),
    ("c4", "tok_fn_gone", "tok_em_eve", 0.2, "de"),
]
VAULT = T.StructType(
    [
        T.StructField("token", T.StringType()),
        T.StructField("kind", T.StringType()),
        T.StructField("value", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("region", T.StringType()),
    ]
)
VAULT_ROWS = [
    ("tok_fn_ann", "first_name", "ann", "r1", "us"),
    ("tok_em_ann", "email", "ann@example.com", "r1", "us"),
    ("tok_fn_bob", "first_name", "bob", "r1", "us"),
    ("tok_fn_bob", "first_name", "bob", "r1", "de"),  # the same token in two regions
    ("tok_em_eve", "email", "eve@example.com", "r1", "de"),
    ("tok_unused", "email", "nobody@example.com", "r1", "de"),
]
SEGMENTS = T.StructType([T.StructField("customer_id", T.StringType()), T.StructField("segment", T.StringType()), T.StructField("region", T.StringType())])


@pytest.fixture(scope="module")
def policy() -> AccessPolicy:
    return policy_from_mapping(GOVERNANCE)


@pytest.fixture
def c360(spark):
    return spark.createDataFrame(C360_ROWS, C360)


@pytest.fixture
def vault(spark):
    return spark.createDataFrame(VAULT_ROWS, VAULT)


# --------------------------------------------------------------------------- the policy


def test_policy_from_mapping_builds_the_roles(policy):
    assert policy.role("marketing") == RolePolicy(
        name="marketing", tables=("gold.customer_360", "gold.customer_segments"), pii="clear",
        group="c360_marketing", contact_export=True,
    )
    assert policy.role("finance").contact_export is False
    assert dict(policy.pii_columns) == {"gold.customer_360": ("first_name", "email")}
    assert policy.restricted == ("silver.pii_vault",)
    assert policy_from_mapping(GOVERNANCE["governance"]) == policy


def test_unknown_role_lists_the_known_ones(policy):
    with pytest.raises(AccessError, match="unknown role 'sales'; known roles: analyst, auditor, finance, marketing, support"):
        policy.role("sales")
    assert issubclass(AccessError, C360Error)


def test_readable_matches_patterns_and_never_the_vault(policy):
    tables = ["gold.customer_360", "gold.customer_segments", "gold.finance_revenue", "silver.customer_golden", "silver.pii_vault"]
    assert policy.readable("analyst", tables) == ["gold.customer_360", "gold.customer_segments", "gold.finance_revenue"]
    assert policy.readable("finance", tables) == ["gold.customer_360", "gold.finance_revenue"]
    assert policy.readable("auditor", tables) == [t for t in tables if t != "silver.pii_vault"]


@pytest.mark.parametrize(
    "role, message",
    [
        ({"tables": ["gold.*"], "pii": "hidden", "group": "g"}, "pii must be one of clear, token, mask, drop"),
        ({"tables": ["gold.*"], "pii": "token", "group": "g`; DROP"}, "group of role r"),
        ({"tables": ["gold.*"], "pii": "token"}, "governance.roles.r: missing group"),
    ],
)
def test_bad_role_definitions_are_rejected(role, message):
    with pytest.raises(AccessError, match=message):
        policy_from_mapping({"roles": {"r": role}})


# --------------------------------------------------------------------------- role_view


def test_token_role_sees_the_table_as_stored(policy, c360):
    view = role_view(c360, table="gold.customer_360", role=policy.role("analyst"), policy=policy)
    assert_df_equality(view, c360)


def test_mask_role_sees_stars_where_a_value_exists(spark, policy, c360):
    view = role_view(c360, table="gold.customer_360", role=policy.role("support"), policy=policy)
    expected = spark.createDataFrame(
        [("c1", "***", "***", 0.1, "us"), ("c2", "***", None, 0.7, "us"), ("c3", None, None, 0.5, "de"), ("c4", "***", "***", 0.2, "de")],
        C360,
    )
    assert_df_equality(view, expected, ignore_nullable=True)


def test_drop_role_loses_the_pii_columns(spark, policy, c360):
    view = role_view(c360, table="gold.customer_360", role=policy.role("finance"), policy=policy)
    expected = spark.createDataFrame(
        [("c1", 0.1, "us"), ("c2", 0.7, "us"), ("c3", 0.5, "de"), ("c4", 0.2, "de")],
        "customer_id string, churn_score double, region string",
    )
    assert_df_equality(view, expected)


def test_clear_role_sees_vault_values_and_null_for_unknown_tokens(spark, policy, c360, vault):
    view = role_view(c360, table="gold.customer_360", role=policy.role("marketing"), policy=policy, vault=vault)
    expected = spark.createDataFrame(
        [
            ("c1", "ann", "ann@example.com", 0.1, "us"),
            ("c2", "bob", None, 0.7, "us"),  # bob's token is in the vault twice: still one row
            ("c3", None, None, 0.5, "de"),  # no token at all: the row survives
            ("c4", None, "eve@example.com", 0.2, "de"),  # tok_fn_gone is not in the vault
        ],
        C360,
    )
    assert_df_equality(view, expected, ignore_row_order=True, ignore_nullable=True)


def test_clear_role_without_a_vault_fails(policy, c360):
    with pytest.raises(AccessError, match="role marketing sees PII in clear: pass the vault"):
        role_view(c360, table="gold.customer_360", role=policy.role("marketing"), policy=policy)


def test_table_without_pii_columns_is_unchanged_even_in_clear(policy, spark):
    segments = spark.createDataFrame([("c1", "loyal", "us")], SEGMENTS)
    view = role_view(segments, table="gold.customer_segments", role=policy.role("marketing"), policy=policy)
    assert_df_equality(view, segments)


@pytest.mark.parametrize(
    "role, table",
    [("finance", "gold.customer_segments"), ("marketing", "gold.finance_revenue"), ("auditor", "silver.pii_vault")],
)
def test_a_table_the_role_may_not_read_fails(policy, c360, role, table):
    with pytest.raises(AccessError, match=f"role {role} may not read table {table}"):
        role_view(c360, table=table, role=policy.role(role), policy=policy)


def test_a_pii_column_missing_from_the_table_fails(policy, c360):
    with pytest.raises(AccessError, match="PII column\\(s\\) email for gold.customer_360"):
        role_view(c360.drop("email"), table="gold.customer_360", role=policy.role("analyst"), policy=policy)


# --------------------------------------------------------------------------- rewrite_sql

NAMES = {"gold.customer_360": "c360_gold__customer_360", "gold.customer_segments": "c360_gold__customer_segments"}


@pytest.mark.parametrize(
    "sql, expected",
    [
        (
            "SELECT c.customer_id, c.email FROM gold.customer_360 c WHERE c.churn_score > 0.5",
            "SELECT c.customer_id, c.email FROM c360_gold__customer_360 AS c WHERE c.churn_score > 0.5",
        ),
        (
            "SELECT customer_360.email FROM gold.customer_360",
            "SELECT customer_360.email FROM c360_gold__customer_360 AS customer_360",
        ),
        (
            "SELECT gold.customer_360.email FROM gold.customer_360",
            "SELECT customer_360.email FROM c360_gold__customer_360 AS customer_360",
        ),
        (
            "SELECT c.customer_id, s.segment FROM gold.customer_360 AS c JOIN gold.customer_segments s ON c.customer_id = s.customer_id",
            "SELECT c.customer_id, s.segment FROM c360_gold__customer_360 AS c "
            "JOIN c360_gold__customer_segments AS s ON c.customer_id = s.customer_id",
        ),
        (
            "WITH top AS (SELECT * FROM gold.customer_360 WHERE churn_score > 0.5) SELECT t.email FROM top t",
            "WITH top AS (SELECT * FROM c360_gold__customer_360 AS customer_360 WHERE churn_score > 0.5) SELECT t.email FROM top AS t",
        ),
        (
            "SELECT x.n FROM (SELECT count(*) AS n FROM gold.customer_segments) x "
            "WHERE x.n IN (SELECT count(*) FROM `gold`.`customer_360`)",
            "SELECT x.n FROM (SELECT COUNT(*) AS n FROM c360_gold__customer_segments AS customer_segments) AS x "
            "WHERE x.n IN (SELECT COUNT(*) FROM c360_gold__customer_360 AS customer_360)",
        ),
        (
            "SELECT 'gold.customer_360' AS src, t.email FROM gold.customer_360 t WHERE t.email <> 'silver.pii_vault'",
            "SELECT 'gold.customer_360' AS src, t.email FROM c360_gold__customer_360 AS t WHERE t.email <> 'silver.pii_vault'",
        ),
        ("SELECT * FROM my_view;", "SELECT * FROM my_view"),
        ("SELECT id FROM range(3)", "SELECT id FROM RANGE(3)"),
        (
            "SELECT email FROM gold.customer_360 UNION ALL SELECT segment FROM gold.customer_segments",
            "SELECT email FROM c360_gold__customer_360 AS customer_360 UNION ALL "
            "SELECT segment FROM c360_gold__customer_segments AS customer_segments",
        ),
    ],
)
def test_rewrite_sql_replaces_lakehouse_tables_only(sql, expected):
    assert rewrite_sql(sql, NAMES, role="analyst") == expected


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT * FROM gold.finance_revenue", "table gold.finance_revenue is not available to role finance"),
        ("SELECT * FROM gold.customer_360 c JOIN silver.pii_vault v ON c.email = v.token", "table silver.pii_vault is not available"),
        ("SELECT * FROM parquet.`/lake/silver/pii_vault`", "parquet./lake/silver/pii_vault is not a lakehouse table"),
        ("SELECT * FROM spark_catalog.gold.customer_360", "spark_catalog.gold.customer_360 is not a lakehouse table"),
        ("SELECT * FROM IDENTIFIER('silver.pii_vault')", "IDENTIFIER\\(...\\) is not allowed"),
        ("SELECT * FROM silver.read_vault(1)", "qualified table functions are not allowed for role finance"),
        ("INSERT INTO gold.customer_360 SELECT * FROM gold.customer_360", "only queries are allowed"),
        ("DROP TABLE gold.customer_360", "only queries are allowed"),
        ("DELETE FROM gold.customer_360 WHERE 1 = 1", "only queries are allowed"),
        ("CREATE TABLE x AS SELECT * FROM gold.customer_360", "only queries are allowed"),
        ("SELECT 1; DROP TABLE gold.customer_360", "exactly one statement is allowed, got 2"),
        ("", "exactly one statement is allowed, got 0"),
        ("SELECT * FROM (", "cannot parse the SQL: .*Expected table name"),
    ],
)
def test_rewrite_sql_rejects(sql, message):
    with pytest.raises(AccessError, match=message):
        rewrite_sql(sql, NAMES, role="finance")


# --------------------------------------------------------------------------- on a lakehouse


@pytest.fixture(scope="module")
def c360_lakehouse(spark, tmp_path_factory):
    # conftest's ``lakehouse`` fixture, once per module: the tests only read these tables, and
    # writing them for every test would triple the module's run time
    lakehouse = Lakehouse(spark, LakehouseConfig(root=str(tmp_path_factory.mktemp("access") / "lakehouse")))
    lakehouse.write(spark.createDataFrame(C360_ROWS, C360), "gold.customer_360", mode="overwrite", partition_by=["region"])
    lakehouse.write(
        spark.createDataFrame([("c1", "loyal", "us"), ("c4", "new", "de")], SEGMENTS),
        "gold.customer_segments", mode="overwrite", partition_by=["region"],
    )
    lakehouse.write(spark.createDataFrame(VAULT_ROWS, VAULT), "silver.pii_vault", mode="overwrite", partition_by=["region"])
    return lakehouse


class ReadRecorder:
    """The lakehouse, recording which tables were read."""

    def __init__(self, lakehouse):
        self.lakehouse = lakehouse
        self.reads: list[str] = []

    def tables(self):
        return self.lakehouse.tables()

    def read(self, name):
        self.reads.append(name)
        return self.lakehouse.read(name)


def test_register_role_views_reads_the_vault_only_for_clear_roles(spark, c360_lakehouse, policy):
    analyst = ReadRecorder(c360_lakehouse)
    assert register_role_views(spark, analyst, role="analyst", policy=policy, prefix="t_") == {
        "gold.customer_360": "t_gold__customer_360",
        "gold.customer_segments": "t_gold__customer_segments",
    }
    assert sorted(analyst.reads) == ["gold.customer_360", "gold.customer_segments"]
    assert_df_equality(spark.table("t_gold__customer_360"), spark.createDataFrame(C360_ROWS, C360), ignore_row_order=True, ignore_nullable=True)

    marketing = ReadRecorder(c360_lakehouse)
    register_role_views(spark, marketing, role="marketing", policy=policy, prefix="t_")
    assert sorted(marketing.reads) == ["gold.customer_360", "gold.customer_segments", "silver.pii_vault"]
    emails = {r.customer_id: r.email for r in spark.table("t_gold__customer_360").collect()}
    assert emails == {"c1": "ann@example.com", "c2": None, "c3": None, "c4": "eve@example.com"}


def test_run_sql_as_finance_has_no_pii_and_no_forbidden_tables(spark, c360_lakehouse, policy):
    result = run_sql(spark, c360_lakehouse, "SELECT * FROM gold.customer_360 c WHERE c.churn_score >= 0.5", role="finance", policy=policy)
    assert result.columns == ["customer_id", "churn_score", "region"]
    expected = spark.createDataFrame([("c2", 0.7, "us"), ("c3", 0.5, "de")], "customer_id string, churn_score double, region string")
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)

    with pytest.raises(AccessError, match="table gold.customer_segments is not available to role finance"):
        run_sql(spark, c360_lakehouse, "SELECT * FROM gold.customer_segments", role="finance", policy=policy)
    with pytest.raises(AccessError, match="table silver.pii_vault is not available to role finance"):
        run_sql(spark, c360_lakehouse, "SELECT value FROM silver.pii_vault", role="finance", policy=policy)


def test_run_sql_as_analyst_sees_tokens_and_joins(spark, c360_lakehouse, policy):
    result = run_sql(
        spark, c360_lakehouse,
        "SELECT c.customer_id, c.email, s.segment FROM gold.customer_360 c JOIN gold.customer_segments s ON c.customer_id = s.customer_id",
        role="analyst", policy=policy,
    )
    expected = spark.createDataFrame([("c1", "tok_em_ann", "loyal"), ("c4", "tok_em_eve", "new")], "customer_id string, email string, segment string")
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_run_sql_refuses_unqualified_views_of_other_roles(spark, c360_lakehouse, policy):
    register_role_views(spark, c360_lakehouse, role="marketing", policy=policy)  # c360_gold__customer_segments now exists
    with pytest.raises(AccessError, match="table c360_gold__customer_segments is not available to role finance"):
        run_sql(spark, c360_lakehouse, "SELECT * FROM c360_gold__customer_segments", role="finance", policy=policy)
    result = run_sql(
        spark, c360_lakehouse, "WITH x AS (SELECT customer_id FROM gold.customer_360) SELECT count(*) AS n FROM x",
        role="finance", policy=policy,
    )
    assert [r.n for r in result.collect()] == [4]


# --------------------------------------------------------------------------- Unity Catalog

UC_POLICY = AccessPolicy(
    pii_columns={"gold.customer_360": ("email", "phone")},
    roles={
        "analyst": RolePolicy(name="analyst", tables=("gold.*",), pii="token", group="c360_analysts"),
        "finance": RolePolicy(name="finance", tables=("gold.finance_*", "gold.customer_360"), pii="drop", group="c360_finance"),
        "support": RolePolicy(name="support", tables=("gold.customer_360",), pii="mask", group="c360_support"),
        "marketing": RolePolicy(name="marketing", tables=("gold.customer_360", "silver.*"), pii="clear", group="c360_marketing"),
    },
)
UC_TABLES = ["gold.customer_360", "gold.finance_revenue", "silver.pii_vault"]
UC_COLUMNS = {"gold.customer_360": ["customer_id", "email", "phone", "churn_score", "region"]}


def test_unity_catalog_sql_statements():
    assert unity_catalog_sql(UC_POLICY, catalog="main", tables=UC_TABLES, columns=UC_COLUMNS) == [
        "CREATE SCHEMA IF NOT EXISTS `main`.`governance`;",
        "CREATE OR REPLACE FUNCTION `main`.`governance`.`mask_pii`(value STRING) RETURNS STRING RETURN CASE "
        "WHEN value IS NULL OR is_account_group_member('c360_analysts') OR is_account_group_member('c360_marketing') "
        "THEN value ELSE '***' END;",
        "ALTER TABLE `main`.`gold`.`customer_360` ALTER COLUMN `email` SET MASK `main`.`governance`.`mask_pii`;",
        "ALTER TABLE `main`.`gold`.`customer_360` ALTER COLUMN `phone` SET MASK `main`.`governance`.`mask_pii`;",
        "REVOKE ALL PRIVILEGES ON TABLE `main`.`silver`.`pii_vault` FROM `account users`;",
        "REVOKE ALL PRIVILEGES ON TABLE `main`.`silver`.`pii_vault` FROM `c360_analysts`;",
        "REVOKE ALL PRIVILEGES ON TABLE `main`.`silver`.`pii_vault` FROM `c360_finance`;",
        "REVOKE ALL PRIVILEGES ON TABLE `main`.`silver`.`pii_vault` FROM `c360_support`;",
        "REVOKE ALL PRIVILEGES ON TABLE `main`.`silver`.`pii_vault` FROM `c360_marketing`;",
        "GRANT USE CATALOG ON CATALOG `main` TO `c360_analysts`;",
        "GRANT USE SCHEMA ON SCHEMA `main`.`gold` TO `c360_analysts`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`customer_360` TO `c360_analysts`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`finance_revenue` TO `c360_analysts`;",
        "GRANT USE CATALOG ON CATALOG `main` TO `c360_finance`;",
        "GRANT USE SCHEMA ON SCHEMA `main`.`gold` TO `c360_finance`;",
        "GRANT USE SCHEMA ON SCHEMA `main`.`governance` TO `c360_finance`;",
        "CREATE OR REPLACE VIEW `main`.`governance`.`finance__customer_360` AS "
        "SELECT `customer_id`, `churn_score`, `region` FROM `main`.`gold`.`customer_360`;",
        "GRANT SELECT ON VIEW `main`.`governance`.`finance__customer_360` TO `c360_finance`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`finance_revenue` TO `c360_finance`;",
        "GRANT USE CATALOG ON CATALOG `main` TO `c360_support`;",
        "GRANT USE SCHEMA ON SCHEMA `main`.`gold` TO `c360_support`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`customer_360` TO `c360_support`;",
        "GRANT USE CATALOG ON CATALOG `main` TO `c360_marketing`;",
        "GRANT USE SCHEMA ON SCHEMA `main`.`gold` TO `c360_marketing`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`customer_360` TO `c360_marketing`;",
    ]


def test_unity_catalog_sql_never_grants_the_vault():
    statements = unity_catalog_sql(UC_POLICY, catalog="prod", tables=UC_TABLES, columns=UC_COLUMNS, mask_function="sec.mask")
    vault = [s for s in statements if "`pii_vault`" in s]
    assert vault and all(s.startswith("REVOKE ") for s in vault)
    assert statements[:2] == ["CREATE SCHEMA IF NOT EXISTS `prod`.`governance`;", "CREATE SCHEMA IF NOT EXISTS `prod`.`sec`;"]
    assert all(s.endswith(";") for s in statements)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"catalog": "main`; DROP CATALOG main; --"}, "catalog 'main`; DROP CATALOG main; --' must match"),
        ({"catalog": "main", "mask_function": "governance.mask;x"}, "mask function name"),
        ({"catalog": "main", "mask_function": "mask_pii"}, "must be <schema>.<function>"),
        ({"catalog": "main", "tables": ["gold.customer_360; --"]}, "must be <layer>.<table>"),
        ({"catalog": "main", "columns": {"gold.customer_360": ["customer_id", "x` FROM y; --"]}}, "column of gold.customer_360"),
        ({"catalog": "main", "columns": {}}, "role finance reads gold.customer_360 through a view without PII: pass its columns"),
    ],
)
def test_unity_catalog_sql_rejects_unsafe_names(kwargs, message):
    arguments = {"tables": UC_TABLES, "columns": UC_COLUMNS, **kwargs}
    with pytest.raises(AccessError, match=message):
        unity_catalog_sql(UC_POLICY, **arguments)
