"""The table catalog (customer360.tables) against the tables a pipeline run wrote: every table is
declared, with the partition columns Delta recorded and key columns that identify one row."""
from __future__ import annotations

import ast
import re

import pytest

from customer360 import tables
from customer360.pipeline import stage_commands
from tests.conftest import REPO, catalog_mismatches

TABLE_NAME = re.compile(r"^(bronze|silver|gold|ops)\.[a-z_<>0-9]+$")


@pytest.mark.slow
def test_the_tables_of_the_shared_sample_through_ml_match_the_catalog(scored_sample):
    _, _, ctx, _ = scored_sample
    written = ctx.lakehouse.tables()
    assert {"bronze.orders", "silver.customer_xref", "gold.customer_360", "gold.churn_scores", "ops.ingested_files"} <= set(written)
    assert catalog_mismatches(ctx) == []


def test_a_table_the_catalog_does_not_describe_is_reported(spark, tmp_path):
    """The check itself, on planted differences: an undeclared table, other partitions, a repeated key."""
    from customer360.config import load_config
    from customer360.context import build_context
    from tests.conftest import CONF_DIR

    ctx = build_context(load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path}"]), spark=spark)
    rows = [("c1", "us", "2026-01-01"), ("c1", "us", "2026-01-01")]
    df = spark.createDataFrame(rows, "customer_id string, region string, as_of_date string")
    ctx.lakehouse.write(df, "gold.unknown_table", partition_by=["region"])
    ctx.lakehouse.write(df, tables.CUSTOMER_VALUE, partition_by=["as_of_date"])
    assert catalog_mismatches(ctx) == [
        "gold.finance_customer_value: partitioned by ['as_of_date'], the catalog says ['region']",
        "gold.finance_customer_value: 1 rows repeat the key ['customer_id']",
        "'gold.unknown_table is not in the table catalog (customer360.tables)'",
    ]


def test_every_entry_names_its_layer_and_a_writer_that_exists():
    stages = set(stage_commands())
    for name, entry in tables.TABLES.items():
        assert TABLE_NAME.match(name) and entry.layer == name.split(".")[0], name
        assert entry.keys and entry.description, name
        assert entry.written_by and all(
            w in stages or w in ("c360 erase", "every pipeline command", "every job") for w in entry.written_by
        ), name
        assert not entry.partition_by or entry.partition_by[0] == "region", name
    assert tables.table("bronze.crm_customers") is tables.TABLES[tables.BRONZE_SOURCE]
    assert tables.bronze_table("orders") == "bronze.orders"
    with pytest.raises(KeyError, match="silver.nowhere is not in the table catalog"):
        tables.table("silver.nowhere")


def test_no_module_but_the_catalog_names_a_table():
    """A table name written out anywhere else (a constant, a tuple, an argument) is a second, drifting
    catalog; docstrings may mention tables."""
    found = []
    for path in sorted((REPO / "lib" / "customer360").rglob("*.py")):
        if path.name == "tables.py" and path.parent.name == "customer360":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if TABLE_NAME.match(node.value):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value}")
    assert found == []
