"""c360 report: the aggregates agree with the tables, and headless Chromium draws every chart of the
self-contained HTML file (Debian's chromium; .ci/run installs it)."""
from __future__ import annotations

import html
import os
import re
import shutil
import subprocess

import pyspark.sql.functions as F
import pytest

from customer360 import cli
from customer360.report import CHARTS, render_html, report_data

from tests.conftest import CONF_DIR

pytestmark = pytest.mark.slow


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI must install chromium (apt-get install chromium): the report test renders in it")
    pytest.skip("no chromium on this machine (apt-get install chromium)")


def rendered_dom(path) -> str:
    """The document after its scripts ran, as headless Chromium serializes it."""
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def drawn(dom: str) -> dict[str, int]:
    figures = re.findall(r'<figure class="chart" id="([\w-]+)"[^>]*>', dom)
    out = {}
    for fig in figures:
        tag = re.search(rf'<figure class="chart" id="{fig}"[^>]*>', dom).group(0)
        assert "data-error" not in tag, tag
        out[fig] = int(re.search(r'data-drawn="(\d+)"', tag).group(1))
    return out


@pytest.fixture(scope="module")
def report(scored_sample, tmp_path_factory):
    _, _, ctx, _ = scored_sample
    data = report_data(ctx)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(data), encoding="utf-8")
    return ctx, data, path


def test_report_numbers_come_from_the_tables(report):
    ctx, data, _ = report
    lh = ctx.lakehouse
    assert data["regions"] == list(ctx.regions) == ["us"]
    segments = lh.read("gold.customer_segments").where("region = 'us'")
    latest = segments.agg(F.max("as_of_date")).first()[0]
    assert sum(r["customers"] for r in data["segments"]["rows"] if r["region"] == "us") == segments.where(F.col("as_of_date") == latest).count()
    assert all(r["share_of_revenue"] is not None and r["distinguishing_features"] for r in data["segments"]["rows"] if r["region"] == "us")
    customers = lh.read("silver.customer_xref").where("region = 'us'").select("region", "customer_id").distinct().count()
    assert sum(r["customers"] for r in data["identity"]["rows"]) == customers
    revenue = lh.read("gold.finance_revenue_monthly").where("region = 'us'")
    assert len(data["revenue"]["rows"]) == revenue.count()
    assert sum(r["net_revenue"] for r in data["revenue"]["rows"]) == pytest.approx(float(revenue.agg(F.sum("net_revenue")).first()[0]))
    c360 = lh.read("gold.customer_360").where("region = 'us'")
    recency = {r["score"]: r["customers"] for r in data["rfm"]["rows"] if r["dimension"] == "recency"}
    assert recency == {r[0]: r[1] for r in c360.where("rfm_recency_score IS NOT NULL").groupBy("rfm_recency_score").count().collect()}
    scores = lh.read("gold.churn_scores").where("region = 'us'")
    assert sum(r["customers"] for r in data["churn"]["histogram"]) == scores.where(F.col("as_of_date") == scores.agg(F.max("as_of_date")).first()[0]).count()
    lift = data["churn"]["lift"]["us"]
    assert [d["bin"] for d in lift] == list(range(1, 11)) and lift[-1]["cumulative_lift"] == pytest.approx(1.0, abs=1e-3)
    assert data["quality"]["rows"] and all(r["passed"] + r["warnings"] + r["errors"] > 0 for r in data["quality"]["rows"])


def scoring_model_artifact(ctx, name: str) -> dict:
    """``name`` from the MLflow run of the churn model version that scored us's latest
    gold.churn_scores rows, read with MLflow itself."""
    import mlflow

    from customer360.ml import tracking

    scores = ctx.lakehouse.read("gold.churn_scores").where("region = 'us'")
    latest = scores.agg(F.max("as_of_date")).first()[0]
    [(model, version)] = {tuple(r) for r in scores.where(F.col("as_of_date") == latest).select("model_name", "model_version").collect()}
    run_id = tracking.configure(ctx.config).get_model_version(model, version).run_id
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")


def test_calibration_is_the_scoring_models_calibration_json(report):
    ctx, data, _ = report
    expected = scoring_model_artifact(ctx, "calibration.json")
    assert expected["bins"] and expected["method"] in ("platt", "isotonic")
    assert data["churn"]["calibration"] == {"us": {k: expected[k] for k in ("method", "held_out", "brier", "bins")}}
    assert data["churn"]["calibration_missing"] == {}
    assert data["churn"]["lift"]["us"] == scoring_model_artifact(ctx, "lift.json")


def test_clv_rows_are_the_marts_latest_rows(report):
    ctx, data, _ = report
    mart = ctx.lakehouse.read("gold.finance_clv_by_segment").where("region = 'us'")
    latest = mart.agg(F.max("as_of_date")).first()[0]
    expected = {
        r["segment"]: (r["customers"], r["clv_mean"], r["clv_total"], r["p_alive_mean"], r["reporting_currency"])
        for r in mart.where(F.col("as_of_date") == latest).collect()
    }
    rows = [r for r in data["clv"]["rows"] if r["region"] == "us"]
    assert expected and len(rows) == len(expected)
    assert {r["segment"]: (r["customers"], r["clv_mean"], r["clv_total"], r["p_alive_mean"], r["currency"]) for r in rows} == expected
    assert data["clv"]["as_of"] == {"us": str(latest)}


def test_every_chart_draws_in_headless_chromium(report):
    ctx, data, path = report
    dom = rendered_dom(path)
    marks = drawn(dom)
    assert set(marks) == {chart for chart, *_ in CHARTS}
    assert all(n > 0 for n in marks.values()), marks
    assert f'data-charts-drawn="{len(CHARTS)}"' in dom and len(CHARTS) == 9
    assert marks["churn-lift"] == 10  # one point per decile of the one region with a model
    calibration = data["churn"]["calibration"]["us"]
    assert marks["churn-calibration"] == len(calibration["bins"])  # one point per non-empty probability bin
    assert marks["clv-by-segment"] == len({r["segment"] for r in data["clv"]["rows"]})  # one bar per segment of us
    caption = re.search(r'id="churn-calibration".*?<figcaption>(.*?)</figcaption>', dom, re.S).group(1)
    assert f"us: {calibration['method']} calibration, Brier score {calibration['brier']:.4f}" in caption
    clv_table = re.search(r'id="clv-by-segment".*?(<table>.*?</table>)', dom, re.S).group(1)
    assert all(f"<td>{html.escape(r['segment'], quote=False)}</td><td>{r['customers']}</td>" in clv_table for r in data["clv"]["rows"])
    text = path.read_text()
    assert "<script src" not in text and "<link" not in text and "https://" not in text  # self-contained


def test_an_empty_lakehouse_says_what_to_run_and_draws_nothing(spark, tmp_path, capsys):
    out = tmp_path / "empty.html"
    args = ["report", "--out", str(out), "--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'lh'}", "--region", "us"]
    assert cli.main(args) == 0
    assert "without data: churn, clv, identity, quality, revenue, rfm, segments" in capsys.readouterr().out
    text = out.read_text()
    assert "gold.customer_segments does not exist yet: run `c360 score`" in text
    assert "gold.finance_clv_by_segment does not exist yet: run `c360 score`" in text
    marks = drawn(rendered_dom(out))
    assert set(marks.values()) == {0}


def test_an_older_model_and_lakehouse_list_calibration_and_clv_as_missing(report, monkeypatch, tmp_path):
    """A champion logged before calibration.json existed, and a lakehouse without the CLV mart: both
    say so; the lift curve and the other charts still draw."""
    from mlflow.exceptions import MlflowException

    from customer360.ml import tracking

    ctx, _, _ = report
    load_json, exists = tracking.load_json, ctx.lakehouse.exists

    def older_run(run_id, name):
        if name == "calibration.json":
            raise MlflowException(f"Failed to download artifacts from path '{name}', please ensure that the path is correct.")
        return load_json(run_id, name)

    monkeypatch.setattr(tracking, "load_json", older_run)
    monkeypatch.setattr(ctx.lakehouse, "exists", lambda name: name != "gold.finance_clv_by_segment" and exists(name))
    data = report_data(ctx)
    assert data["clv"] == {"missing": "gold.finance_clv_by_segment does not exist yet: run `c360 score`"}
    assert data["churn"]["calibration"] == {}
    [(region, message)] = data["churn"]["calibration_missing"].items()
    assert region == "us" and message.endswith(": no calibration table (MlflowException)"), message
    assert len(data["churn"]["lift"]["us"]) == 10 and data["churn"]["lift_missing"] == {}
    path = tmp_path / "older.html"
    path.write_text(render_html(data), encoding="utf-8")
    dom = rendered_dom(path)
    marks = drawn(dom)
    assert marks["churn-calibration"] == 0 and marks["clv-by-segment"] == 0
    assert all(n > 0 for chart, n in marks.items() if chart not in ("churn-calibration", "clv-by-segment")), marks
    assert re.search(r'id="churn-calibration".*?<p class="missing">[^<]*no calibration table \(MlflowException\)</p>', dom, re.S)
    assert re.search(r'id="clv-by-segment".*?<p class="missing">gold.finance_clv_by_segment does not exist yet', dom, re.S)
