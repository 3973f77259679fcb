"""Every notebook in notebooks/ runs cell by cell against the shared sample lakehouse, with a small
stand-in for Databricks' ``dbutils.widgets`` and ``display``, so the notebooks cannot rot."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyspark.pandas as ps
import pyspark.sql.functions as F
import pytest
from pyspark.sql import DataFrame

from tests.conftest import REPO

pytestmark = pytest.mark.slow

NOTEBOOKS = REPO / "notebooks"
HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"


class InputWidgetNotDefined(Exception):
    pass


class Widgets:
    """``dbutils.widgets``: widgets must be defined before they are read; a value the test passes
    replaces the default (a dropdown's must be one of its choices)."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.defined: dict[str, tuple[str, list[str] | None]] = {}

    def text(self, name, default_value, label=None):
        self.defined[name] = (default_value, None)

    def dropdown(self, name, default_value, choices, label=None):
        assert default_value in choices, f"widget {name}: default {default_value!r} not in {choices}"
        self.defined[name] = (default_value, list(choices))

    combobox = dropdown

    def get(self, name):
        if name not in self.defined:
            raise InputWidgetNotDefined(f"No input widget named {name} is defined")
        default, choices = self.defined[name]
        value = self.values.get(name, default)
        if choices is not None:
            assert value in choices, f"widget {name}: {value!r} not in {choices}"
        return value

    getArgument = get

    def removeAll(self):
        self.defined.clear()


class DBUtils:
    def __init__(self, values):
        self.widgets = Widgets(values)


def cells(path: Path) -> list[str]:
    text = path.read_text()
    assert text.startswith(HEADER + "\n"), f"{path.name}: not a Databricks notebook source file"
    out = []
    for cell in text[len(HEADER):].split(SEPARATOR):
        code = [line for line in cell.splitlines() if not line.startswith("# MAGIC")]
        if any(line.strip() and not line.lstrip().startswith("#") for line in code):
            out.append("\n".join(code))
    return out


def run_notebook(path: Path, spark, widgets: dict[str, str]) -> tuple[dict, list[pd.DataFrame]]:
    """Run every code cell in order; returns the notebook's variables and what it displayed."""
    shown: list[pd.DataFrame] = []

    def display(obj):
        if isinstance(obj, DataFrame):
            obj = obj.limit(1000).toPandas()
        elif isinstance(obj, (ps.DataFrame, ps.Series)):
            obj = obj.to_pandas()
        if isinstance(obj, pd.Series):
            obj = obj.to_frame()
        assert isinstance(obj, pd.DataFrame), f"display() of a {type(obj).__name__}"
        shown.append(obj)

    namespace = {"spark": spark, "dbutils": DBUtils(widgets), "display": display, "__name__": "__main__"}
    for i, cell in enumerate(cells(path), 1):
        exec(compile(cell, f"{path.name} (cell {i})", "exec"), namespace)  # noqa: S102 - our own notebooks
    return namespace, shown


def test_every_notebook_is_covered():
    assert {p.name for p in NOTEBOOKS.glob("*.py")} == {
        "run_pipeline.py", "customer_360_explorer.py", "identity_review.py", "segment_explorer.py", "churn_analysis.py",
    }
    for path in NOTEBOOKS.glob("*.py"):
        assert cells(path), path.name


def test_the_stand_in_refuses_what_databricks_refuses():
    widgets = Widgets({"env": "staging"})
    with pytest.raises(InputWidgetNotDefined):
        widgets.get("env")
    widgets.dropdown("env", "prod", ["local", "prod"])
    with pytest.raises(AssertionError, match="'staging' not in"):
        widgets.get("env")


@pytest.fixture(scope="module")
def sample(scored_sample):
    root, data, ctx, _ = scored_sample
    return {"env": "local", "lakehouse_root": str(root / "lh"), "region": "us"}, ctx


def test_customer_360_explorer(spark, sample):
    widgets, ctx = sample
    ns, shown = run_notebook(NOTEBOOKS / "customer_360_explorer.py", spark, widgets)
    c360 = ctx.lakehouse.read("gold.customer_360").where("region = 'us'")
    overview = shown[0].iloc[0]
    assert overview["customers"] == c360.count()
    assert overview["with_orders"] == c360.where("orders_total > 0").count()
    top = ns["top"].to_pandas()
    assert list(top["net_revenue_total"]) == sorted(top["net_revenue_total"], reverse=True)
    assert top["net_revenue_total"].iloc[0] == c360.agg(F.max("net_revenue_total")).first()[0]
    assert shown[-1].loc["customer_id"].iloc[0] == ns["chosen"] == top["customer_id"].iloc[0]
    # opening the notebook registered the lakehouse's tables by name: spark.table reads the same rows
    assert ns["nb"].names.failed == [] and "gold.customer_360" in ns["nb"].names.names
    assert spark.table("gold.customer_360").count() == ns["nb"].lakehouse.read("gold.customer_360").count()


def test_identity_review(spark, sample):
    widgets, ctx = sample
    ns, shown = run_notebook(NOTEBOOKS / "identity_review.py", spark, widgets)
    xref = ctx.lakehouse.read("silver.customer_xref").where("region = 'us'")
    largest = xref.groupBy("customer_id").count().agg(F.max("count")).first()[0]
    records = ns["records_pdf"]
    assert len(records) == largest == xref.where(F.col("customer_id") == ns["chosen"]).count() > 1
    # clear values come from the vault: emails are addresses, not 64-hex tokens
    emails = records["email_clear"].dropna()
    assert len(emails) and all("@" in e for e in emails)
    # connected components: a cluster of n records has at least n - 1 links, all inside it
    links = ns["links_pdf"]
    members = set(zip(records["source"], records["source_record_id"]))
    assert len(links) >= len(records) - 1
    assert set(zip(links["src_source"], links["src_record_id"])) | set(zip(links["dst_source"], links["dst_record_id"])) <= members
    assert shown[-1]["links"].sum() == len(links)


def test_segment_explorer(spark, sample):
    widgets, ctx = sample
    ns, _ = run_notebook(NOTEBOOKS / "segment_explorer.py", spark, widgets)
    sizes = ns["sizes_pdf"]
    assert sizes["customers"].sum() == ns["current"].count() > 0
    assert abs(sizes["share"].sum() - 1) < 1e-9
    assert set(ns["means_pdf"].index.get_level_values("segment_id")) <= set(sizes["segment_id"])


def test_churn_analysis(spark, sample):
    widgets, ctx = sample
    ns, _ = run_notebook(NOTEBOOKS / "churn_analysis.py", spark, widgets)
    latest = ns["latest"]
    assert ns["distribution_pdf"]["customers"].sum() == latest.count() > 0
    assert ns["distribution_pdf"]["predicted_churners"].sum() == latest.where("churn_predicted").count()
    at_risk = ns["at_risk_pdf"]
    assert list(at_risk["churn_score"]) == sorted(at_risk["churn_score"], reverse=True)
    if ns["due_dates"]:  # a scoring whose horizon has passed (tests/ml may have scored an earlier date)
        assert list(ns["lift_pdf"]["decile"]) == list(range(1, 11))
    else:  # the sample's scoring is as of the data's end: nothing realized yet, and the notebook says so
        assert ns["lift_pdf"] is None


def test_run_pipeline_notebook(spark, sample):
    widgets, ctx = sample
    sources = ctx.config.ingest.landing_root
    ns, shown = run_notebook(NOTEBOOKS / "run_pipeline.py", spark, {
        **widgets, "regions": "us", "settings": f"ingest.landing_root={sources}; pipeline.stages=[ingest]",
    })
    assert ns["summary"].status == "succeeded"
    assert shown[0]["version"].iloc[0] == ctx.lakehouse.version("ops.pipeline_runs")


def test_an_unknown_region_is_refused_before_any_read(spark, sample):
    widgets, _ = sample
    with pytest.raises(ValueError, match="unknown region 'zz'; configured regions: de, es, fr, gb, nl, us"):
        run_notebook(NOTEBOOKS / "segment_explorer.py", spark, {**widgets, "region": "zz"})
