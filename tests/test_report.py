"""c360 report: the aggregates agree with the tables, and headless Chromium draws every chart of the
self-contained HTML file (Debian's chromium; .ci/run installs it)."""
from __future__ import annotations

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


def test_every_chart_draws_in_headless_chromium(report):
    _, _, path = report
    dom = rendered_dom(path)
    marks = drawn(dom)
    assert set(marks) == {chart for chart, *_ in CHARTS}
    assert all(n > 0 for n in marks.values()), marks
    assert 'data-charts-drawn="7"' in dom
    assert marks["churn-lift"] == 10  # one point per decile of the one region with a model
    text = path.read_text()
    assert "<script src" not in text and "<link" not in text and "https://" not in text  # self-contained


def test_an_empty_lakehouse_says_what_to_run_and_draws_nothing(spark, tmp_path, capsys):
    out = tmp_path / "empty.html"
    args = ["report", "--out", str(out), "--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'lh'}", "--region", "us"]
    assert cli.main(args) == 0
    assert "without data: churn, identity, quality, revenue, rfm, segments" in capsys.readouterr().out
    text = out.read_text()
    assert "gold.customer_segments does not exist yet: run `c360 score`" in text
    marks = drawn(rendered_dom(out))
    assert set(marks.values()) == {0}
