"""Finance SQL: c360 sql's interactive prompt and output formats, and docs/gold-tables.md, which
is generated from the gold tables' metadata and must match what the code writes today."""
from __future__ import annotations

import io
import os

import pyspark.sql.functions as F
import pytest

from customer360.gold.docs import GOLD_TABLES, gold_tables_markdown, undocumented_columns
from customer360.sqlshell import SqlSession, render, split_queries

from tests.conftest import REPO

pytestmark = pytest.mark.slow

DOC = REPO / "docs" / "gold-tables.md"


def test_queries_split_on_semicolons_outside_quotes():
    assert split_queries("SELECT 1;\n SELECT ';' AS s ;; SELECT `a;b`\n") == ["SELECT 1", "SELECT ';' AS s", "SELECT `a;b`"]
    assert split_queries("  ") == []
    # written as is: whitespace inside literals kept; comments (with ';' or quotes) and escapes honoured
    text = "-- top; it's\nSELECT 'a  b' AS x; /* c; */ SELECT 'it\\'s;' AS y;\n-- only a comment;"
    assert split_queries(text) == ["-- top; it's\nSELECT 'a  b' AS x", "/* c; */ SELECT 'it\\'s;' AS y"]


def test_render_formats(spark):
    df = spark.createDataFrame([(i, f"r{i}") for i in range(5)], "n int, name string")
    table = render(df, "table", limit=3)
    assert table.splitlines()[0].split() == ["n", "name"]
    assert table.splitlines()[1:4] == [" 0   r0", " 1   r1", " 2   r2"]
    assert table.endswith("(first 3 rows; --limit N shows more)\n")
    assert render(df.limit(0), "table", limit=3).endswith("(0 rows)\n")
    assert render(df.limit(2), "csv", limit=2) == "n,name\n0,r0\n1,r1\n"
    assert render(df, "csv", limit=1) == "n,name\n0,r0\n"  # every format is cut at the limit
    assert render(df.limit(1), "json", limit=1).strip() == '{"n":0,"name":"r0"}'


def test_gold_tables_doc_is_generated_from_the_tables(scored_sample):
    _, _, ctx, _ = scored_sample
    lakehouse = ctx.lakehouse
    assert all(lakehouse.exists(t) for t in GOLD_TABLES)
    assert undocumented_columns(lakehouse) == {}
    text = gold_tables_markdown(lakehouse)
    if os.environ.get("C360_UPDATE_DOCS") == "1":
        DOC.write_text(text, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == text, "docs/gold-tables.md is stale: C360_UPDATE_DOCS=1 pytest tests/test_sql.py"
    assert "| `net_revenue` | decimal(18,2) | " in text and "## `gold.churn_scores`" in text


def test_interactive_prompt_runs_queries_and_survives_errors(scored_sample):
    _, _, ctx, _ = scored_sample
    out, err = io.StringIO(), io.StringIO()
    session = SqlSession(ctx, role="finance", out=out)
    script = iter([
        "\\dt",
        "\\d gold.finance_revenue_monthly",
        "\\d gold.nope",  # an error in a command: reported, the session goes on
        "SELECT region, COUNT(*) AS customers",
        "FROM gold.customer_360 GROUP BY region ORDER BY region;",
        "SELECT email FROM gold.customer_360;",  # finance sees no PII: refused, the session goes on
        "SELECT * FROM silver.pii_vault;",
        "SELECT cast(region AS int) AS r FROM gold.customer_360;",  # fails while running: one line, the session goes on
        "\\format csv",
        "SELECT COUNT(*) AS months FROM gold.finance_revenue_monthly WHERE region = 'us';",
        "\\q",
        "SELECT 'never run';",
    ])
    prompts = []

    def read_line(prompt):
        prompts.append(prompt)
        return next(script)

    assert session.interact(read_line, errors=err) == 4
    text = out.getvalue()
    tables = text.split("\nregion ")[0].splitlines()  # \dt's lines, before \d's first column
    assert "gold.finance_revenue_monthly" in tables and "gold.customer_360" in tables
    assert not any(t.startswith(("silver.", "bronze.")) for t in tables)  # finance reads gold only
    assert "\nnet_revenue          decimal(18,2)  " in text
    per_region = ctx.lakehouse.read("gold.customer_360").groupBy("region").agg(F.count("*").alias("customers")).orderBy("region")
    assert render(per_region, "table", limit=1000) in text
    months = ctx.lakehouse.read("gold.finance_revenue_monthly").where("region = 'us'").count()
    assert f"months\n{months}\n" in text
    errors = err.getvalue().splitlines()
    assert len(errors) == 4 and all(e.startswith("error: ") for e in errors)
    assert errors[3].startswith("error: query failed for role finance: [CAST_INVALID_INPUT] The value ")
    assert "gold.nope is not available to role finance" in errors[0]
    assert "email" in errors[1] and "pii_vault" in errors[2]
    assert prompts[4] == "  ...> " and prompts[3] == "c360> "
    assert "never run" not in text
