"""``c360 report --out report.html``: one self-contained HTML file with the charts a data-platform
team and finance look at after a run.

Sections: segment sizes and profiles, RFM distribution, churn score distribution and the champion's
validation lift curve and calibration (reliability) chart, lifetime value per segment, identity
cluster sizes, revenue by region and month, data-quality summary.
``report_data`` computes small aggregates with Spark (nothing per customer leaves the cluster);
``render_html`` embeds them as JSON with a small inline script that draws SVG charts in the
browser: no network, no JavaScript library. Each chart marks itself ``data-drawn="<marks>"`` once
drawn (tests/test_report.py checks that in headless Chromium); a section whose table is missing
says which command makes it.
"""
from __future__ import annotations

import html
import json
import logging
from datetime import datetime, timezone
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Window

from customer360.context import RunContext
from customer360.tables import (
    CHURN_SCORES, CLV_BY_SEGMENT, CUSTOMER_360, CUSTOMER_SEGMENTS, CUSTOMER_XREF, DQ_RESULTS, REVENUE_MONTHLY, SEGMENT_PROFILES,
)

log = logging.getLogger(__name__)

#: identity clusters of this many records or more share one bar
CLUSTER_CAP = 10


def _table(ctx: RunContext, name: str) -> DataFrame | None:
    if not ctx.lakehouse.exists(name):
        return None
    return ctx.lakehouse.read(name).where(F.col("region").isin(*ctx.regions))


def _missing(name: str, command: str) -> dict[str, Any]:
    return {"missing": f"{name} does not exist yet: run `{command}`"}


def _latest_per_region(df: DataFrame, column: str = "as_of_date") -> DataFrame:
    latest = df.groupBy("region").agg(F.max(column).alias("_latest"))
    return df.join(latest, "region").where(F.col(column) == F.col("_latest")).drop("_latest")


def _segments(ctx: RunContext) -> dict[str, Any]:
    segments = _table(ctx, CUSTOMER_SEGMENTS)
    if segments is None:
        return _missing(CUSTOMER_SEGMENTS, "c360 score")
    current = _latest_per_region(segments)
    sizes = current.groupBy("region", "segment_id", "segment", "model_version").agg(F.count(F.lit(1)).alias("customers"))
    rows = sorted(sizes.collect(), key=lambda r: (r["region"], r["segment_id"]))
    profiles = {}
    table = _table(ctx, SEGMENT_PROFILES)
    if table is not None:
        versions = {(r["region"], r["model_version"]) for r in rows}
        for p in table.select("region", "model_version", "segment_id", "share_of_revenue", "distinguishing_features").collect():
            if (p["region"], p["model_version"]) in versions:
                profiles[(p["region"], p["segment_id"])] = p
    out = []
    for r in rows:
        profile = profiles.get((r["region"], r["segment_id"]))
        out.append({
            "region": r["region"], "segment_id": r["segment_id"], "segment": r["segment"], "customers": r["customers"],
            "share_of_revenue": profile["share_of_revenue"] if profile else None,
            "distinguishing_features": list(profile["distinguishing_features"] or []) if profile else [],
        })
    as_of = {r["region"]: str(r["as_of_date"]) for r in current.select("region", "as_of_date").distinct().collect()}
    return {"as_of": as_of, "rows": out}


def _rfm(ctx: RunContext) -> dict[str, Any]:
    c360 = _table(ctx, CUSTOMER_360)
    if c360 is None:
        return _missing(CUSTOMER_360, "c360 gold")
    scores = ("rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score")
    stacked = None
    for column in scores:
        part = c360.select(F.lit(column.split("_")[1]).alias("dimension"), F.col(column).cast("int").alias("score"))
        stacked = part if stacked is None else stacked.unionByName(part)
    counts = stacked.where(F.col("score").isNotNull()).groupBy("dimension", "score").count().collect()
    return {
        "customers": c360.count(),
        "rows": sorted(({"dimension": r["dimension"], "score": r["score"], "customers": r["count"]} for r in counts),
                       key=lambda r: (["recency", "frequency", "monetary"].index(r["dimension"]), r["score"])),
    }


def _churn(ctx: RunContext) -> dict[str, Any]:
    scores = _table(ctx, CHURN_SCORES)
    if scores is None:
        return _missing(CHURN_SCORES, "c360 score")
    current = _latest_per_region(scores)
    binned = current.withColumn("bin", F.least(F.floor(F.col("churn_score") * 10), F.lit(9)).cast("int"))
    counts = binned.groupBy("region", "bin").agg(
        F.count(F.lit(1)).alias("customers"), F.sum(F.col("churn_predicted").cast("int")).alias("predicted")
    ).collect()
    out: dict[str, Any] = {
        "histogram": sorted(({"region": r["region"], "bin": r["bin"], "customers": r["customers"], "predicted": r["predicted"]}
                             for r in counts), key=lambda r: (r["region"], r["bin"])),
        "lift": {},
        "lift_missing": {},
        "calibration": {},
        "calibration_missing": {},
    }
    models = {r["region"]: r for r in current.select("region", "model_name", "model_version").distinct().collect()}
    if models:
        from mlflow.exceptions import MlflowException

        from customer360.ml import tracking

        # what a missing model version or artifact raises (MLflow's own error; an artifact store's
        # I/O error; a file that is not JSON): the region's chart is listed as missing, the rest drawn
        unavailable = (MlflowException, OSError, ValueError)
        client = tracking.configure(ctx.config)
        for region, model in sorted(models.items()):
            label = f"{model['model_name']} v{model['model_version']}"
            try:
                run_id = client.get_model_version(model["model_name"], model["model_version"]).run_id
            except unavailable as exc:
                out["lift_missing"][region] = f"{label}: no validation lift curve (model version not found: {type(exc).__name__})"
                out["calibration_missing"][region] = f"{label}: no calibration table (model version not found: {type(exc).__name__})"
                continue
            try:
                out["lift"][region] = tracking.load_json(run_id, "lift.json")
            except unavailable as exc:  # an older model has no lift.json: say so, draw the rest
                out["lift_missing"][region] = f"{label}: no validation lift curve ({type(exc).__name__})"
            try:
                calibration = tracking.load_json(run_id, "calibration.json")
                out["calibration"][region] = {key: calibration[key] for key in ("method", "held_out", "brier", "bins")}
            except (*unavailable, KeyError, TypeError) as exc:  # older models logged none (or another format)
                out["calibration_missing"][region] = f"{label}: no calibration table ({type(exc).__name__})"
    return out


def _clv(ctx: RunContext) -> dict[str, Any]:
    mart = _table(ctx, CLV_BY_SEGMENT)
    if mart is None:
        return _missing(CLV_BY_SEGMENT, "c360 score")
    current = _latest_per_region(mart)
    rows = current.select(
        "region", "as_of_date", "segment", "customers", "clv_mean", "clv_total", "expected_purchases_total", "p_alive_mean", "reporting_currency",
    ).collect()

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    return {
        "as_of": {r["region"]: str(r["as_of_date"]) for r in rows},
        "rows": sorted(({
            "region": r["region"], "segment": r["segment"], "customers": r["customers"], "clv_mean": number(r["clv_mean"]),
            "clv_total": number(r["clv_total"]), "expected_purchases_total": number(r["expected_purchases_total"]),
            "p_alive_mean": number(r["p_alive_mean"]), "currency": r["reporting_currency"],
        } for r in rows), key=lambda r: (r["region"], r["segment"])),
    }


def _identity(ctx: RunContext) -> dict[str, Any]:
    xref = _table(ctx, CUSTOMER_XREF)
    if xref is None:
        return _missing(CUSTOMER_XREF, "c360 identity")
    sizes = xref.groupBy("region", "customer_id").agg(F.count(F.lit(1)).alias("records"))
    capped = sizes.withColumn("records", F.least(F.col("records"), F.lit(CLUSTER_CAP)))
    counts = capped.groupBy("region", "records").agg(F.count(F.lit(1)).alias("customers")).collect()
    return {
        "cap": CLUSTER_CAP,
        "rows": sorted(({"region": r["region"], "records": r["records"], "customers": r["customers"]} for r in counts),
                       key=lambda r: (r["region"], r["records"])),
    }


def _revenue(ctx: RunContext) -> dict[str, Any]:
    revenue = _table(ctx, REVENUE_MONTHLY)
    if revenue is None:
        return _missing(REVENUE_MONTHLY, "c360 gold")
    rows = revenue.select("region", "month", "reporting_currency", "net_revenue", "orders").orderBy("region", "month").collect()
    return {
        "rows": [
            {"region": r["region"], "month": str(r["month"])[:7], "currency": r["reporting_currency"],
             "net_revenue": float(r["net_revenue"] or 0), "orders": r["orders"]}
            for r in rows
        ],
    }


def _quality(ctx: RunContext) -> dict[str, Any]:
    if not ctx.lakehouse.exists(DQ_RESULTS):
        return _missing(DQ_RESULTS, "c360 quality")
    results = ctx.lakehouse.read(DQ_RESULTS).where(F.col("region").isin(*ctx.regions, "all"))
    # each table's latest check run per region (regions are checked by separate runs)
    latest = Window.partitionBy("table", "region").orderBy(F.col("checked_at").desc())
    newest = results.withColumn("_at", F.first("checked_at").over(latest)).where(F.col("checked_at") == F.col("_at"))
    counts = newest.groupBy("table").agg(
        F.sum(F.col("passed").cast("int")).alias("passed"),
        F.sum((~F.col("passed") & (F.col("severity") == "warn")).cast("int")).alias("warnings"),
        F.sum((~F.col("passed") & (F.col("severity") == "error")).cast("int")).alias("errors"),
        F.max("checked_at").alias("checked_at"),
    ).orderBy("table").collect()
    failing = newest.where(~F.col("passed")).select("table", "check", "severity", "message", "region").orderBy("table", "check").collect()
    return {
        "rows": [{"table": r["table"], "passed": r["passed"], "warnings": r["warnings"], "errors": r["errors"],
                  "checked_at": r["checked_at"].isoformat(sep=" ", timespec="seconds")} for r in counts],
        "failing": [r.asDict() for r in failing],
    }


def report_data(ctx: RunContext) -> dict[str, Any]:
    """Every section's aggregates for the context's regions (a section whose table is missing
    holds ``{"missing": reason}``)."""
    return {
        "title": "Customer 360 report",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "regions": list(ctx.regions),
        "lakehouse": ctx.lakehouse.root,
        "segments": _segments(ctx),
        "rfm": _rfm(ctx),
        "churn": _churn(ctx),
        "clv": _clv(ctx),
        "identity": _identity(ctx),
        "revenue": _revenue(ctx),
        "quality": _quality(ctx),
    }


# --------------------------------------------------------------------------- HTML

#: (figure id, section, title, what the chart shows)
CHARTS = (
    ("segment-sizes", "segments", "Segment sizes", "customers per segment on the latest scoring date, per region"),
    ("rfm", "rfm", "RFM distribution", "customers per recency, frequency and monetary score (1-5)"),
    ("churn-histogram", "churn", "Churn score distribution", "customers per churn-score tenth, latest scoring, per region"),
    ("churn-lift", "churn", "Lift curve (champion, validation)", "cumulative lift by score decile on the champion's validation set"),
    ("churn-calibration", "churn", "Calibration (champion)",
     "observed churn rate against mean predicted probability per probability bin; the dashed diagonal is perfect calibration"),
    ("clv-by-segment", "clv", "Customer lifetime value by segment", "mean lifetime value per buyer of each segment, latest scoring, per region"),
    ("identity-clusters", "identity", "Identity cluster sizes", "customers by the number of source records resolved to them"),
    ("revenue", "revenue", "Net revenue by region and month", "net revenue in the reporting currency"),
    ("quality", "quality", "Data quality", "checks of each table's latest run: passed, failed warnings, failed errors"),
)

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2430;background:#fafbfc}
h1{margin-bottom:.2rem} .meta{color:#5a6473;margin-bottom:1.5rem}
section{background:#fff;border:1px solid #e3e7ed;border-radius:8px;padding:1rem 1.25rem;margin-bottom:1.25rem}
figure{margin:0} figcaption{color:#5a6473;font-size:.9rem;margin-bottom:.5rem}
svg{width:100%;height:auto;max-width:900px} .missing{color:#a15c00}
table{border-collapse:collapse;font-size:.85rem;margin-top:.5rem} td,th{border-bottom:1px solid #eceff3;padding:.2rem .6rem;text-align:left}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem} .legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""

_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['#3b6fd6', '#e0803a', '#3aa47a', '#b54fb0', '#c9b12f', '#5a6473', '#d64b4b', '#2fa4c9'];
  const W = 860, H = 300, M = {l: 60, r: 20, t: 20, b: 60};
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function frame(fig) {
    const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img'});
    fig.appendChild(svg);
    return svg;
  }
  function fmt(v) { return Math.abs(v) >= 1000 ? (v / 1000).toFixed(1) + 'k' : (Math.round(v * 100) / 100).toString(); }
  function axes(svg, max, label) {
    el('line', {x1: M.l, y1: H - M.b, x2: W - M.r, y2: H - M.b, stroke: '#9aa3af'}, svg);
    el('line', {x1: M.l, y1: M.t, x2: M.l, y2: H - M.b, stroke: '#9aa3af'}, svg);
    for (let i = 0; i <= 4; i++) {
      const y = H - M.b - (H - M.t - M.b) * i / 4;
      const t = el('text', {x: M.l - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5a6473'}, svg);
      t.textContent = fmt(max * i / 4);
    }
    if (label) { const t = el('text', {x: M.l, y: 11, 'font-size': 11, fill: '#5a6473'}, svg); t.textContent = label; }
  }
  function legend(fig, names) {
    const div = document.createElement('div'); div.className = 'legend';
    names.forEach((n, i) => { const s = document.createElement('span'); s.innerHTML = `<i style="background:${COLORS[i % COLORS.length]}"></i>`; s.appendChild(document.createTextNode(n)); div.appendChild(s); });
    fig.appendChild(div);
  }
  // grouped bars: categories on x, one bar per series
  function bars(fig, categories, series, yLabel) {
    const svg = frame(fig);
    const max = Math.max(1e-9, ...series.flatMap(s => s.values.map(v => v || 0)));
    axes(svg, max, yLabel);
    const band = (W - M.l - M.r) / Math.max(1, categories.length), inner = band * 0.8 / Math.max(1, series.length);
    let marks = 0;
    categories.forEach((c, i) => {
      series.forEach((s, j) => {
        const v = s.values[i] || 0, h = (H - M.t - M.b) * v / max;
        const r = el('rect', {x: M.l + band * i + band * 0.1 + inner * j, y: H - M.b - h, width: Math.max(1, inner - 1), height: h, fill: COLORS[j % COLORS.length]}, svg);
        el('title', {}, r).textContent = `${s.name} / ${c}: ${v}`;
        marks++;
      });
      const t = el('text', {x: M.l + band * i + band / 2, y: H - M.b + 14, 'text-anchor': 'middle', 'font-size': 10, fill: '#1d2430'}, svg);
      t.textContent = String(c).length > 18 ? String(c).slice(0, 17) + '…' : c;
    });
    if (series.length > 1) legend(fig, series.map(s => s.name));
    return marks;
  }
  // lines: one path per series over shared x labels
  function lines(fig, xs, series, yLabel) {
    const svg = frame(fig);
    const max = Math.max(1e-9, ...series.flatMap(s => s.values.filter(v => v !== null)));
    axes(svg, max, yLabel);
    const step = (W - M.l - M.r) / Math.max(1, xs.length - 1);
    let marks = 0;
    series.forEach((s, j) => {
      const pts = s.values.map((v, i) => v === null ? null : [M.l + step * i, H - M.b - (H - M.t - M.b) * v / max]).filter(p => p);
      if (!pts.length) return;
      el('path', {d: 'M' + pts.map(p => p.join(',')).join('L'), fill: 'none', stroke: COLORS[j % COLORS.length], 'stroke-width': 2}, svg);
      pts.forEach(p => { el('circle', {cx: p[0], cy: p[1], r: 2.5, fill: COLORS[j % COLORS.length]}, svg); marks++; });
    });
    const every = Math.ceil(xs.length / 12);
    xs.forEach((x, i) => { if (i % every === 0) { const t = el('text', {x: M.l + step * i, y: H - M.b + 14, 'text-anchor': 'middle', 'font-size': 10}, svg); t.textContent = x; } });
    legend(fig, series.map(s => s.name));
    return marks;
  }
  // reliability: points (x, y) in [0, 1] x [0, 1], one line per series, the diagonal y = x dashed
  function reliability(fig, series, xLabel, yLabel) {
    const P = H - M.t - M.b, RW = M.l + P + M.r;
    const svg = el('svg', {viewBox: `0 0 ${RW} ${H}`, role: 'img', style: 'max-width:420px'});
    fig.appendChild(svg);
    const px = v => M.l + P * Math.min(1, Math.max(0, v)), py = v => H - M.b - P * Math.min(1, Math.max(0, v));
    el('line', {x1: px(0), y1: py(0), x2: px(1), y2: py(0), stroke: '#9aa3af'}, svg);
    el('line', {x1: px(0), y1: py(0), x2: px(0), y2: py(1), stroke: '#9aa3af'}, svg);
    el('line', {x1: px(0), y1: py(0), x2: px(1), y2: py(1), stroke: '#9aa3af', 'stroke-dasharray': '4 4'}, svg);
    for (let i = 0; i <= 4; i++) {
      el('text', {x: M.l - 6, y: py(i / 4) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5a6473'}, svg).textContent = fmt(i / 4);
      el('text', {x: px(i / 4), y: H - M.b + 14, 'text-anchor': 'middle', 'font-size': 11, fill: '#5a6473'}, svg).textContent = fmt(i / 4);
    }
    el('text', {x: M.l, y: 11, 'font-size': 11, fill: '#5a6473'}, svg).textContent = yLabel;
    el('text', {x: px(0.5), y: H - M.b + 32, 'text-anchor': 'middle', 'font-size': 11, fill: '#5a6473'}, svg).textContent = xLabel;
    let marks = 0;
    series.forEach((s, j) => {
      const pts = s.points.filter(p => p.x !== null && p.y !== null);
      if (!pts.length) return;
      const color = COLORS[j % COLORS.length];
      el('path', {d: 'M' + pts.map(p => px(p.x) + ',' + py(p.y)).join('L'), fill: 'none', stroke: color, 'stroke-width': 2}, svg);
      pts.forEach(p => {
        const c = el('circle', {cx: px(p.x), cy: py(p.y), r: 3, fill: color}, svg);
        el('title', {}, c).textContent = `${s.name} ${p.label}: predicted ${p.x}, observed ${p.y} (${p.rows} rows)`;
        marks++;
      });
    });
    legend(fig, series.map(s => s.name));
    return marks;
  }
  function unique(xs) { return [...new Set(xs)]; }
  function byRegion(rows, key, cats, value) {
    return unique(rows.map(r => r.region)).map(region => ({name: region, values: cats.map(c => { const r = rows.find(x => x.region === region && x[key] === c); return r ? r[value] : 0; })}));
  }
  const draw = {
    'segment-sizes': d => { const cats = unique(d.rows.map(r => r.segment)); return bars(this_fig, cats, byRegion(d.rows, 'segment', cats, 'customers'), 'customers'); },
    'rfm': d => { const cats = unique(d.rows.map(r => r.score)).sort((a, b) => a - b); const dims = ['recency', 'frequency', 'monetary'];
                  return bars(this_fig, cats.map(c => 'score ' + c), dims.map(n => ({name: n, values: cats.map(c => { const r = d.rows.find(x => x.dimension === n && x.score === c); return r ? r.customers : 0; })})), 'customers'); },
    'churn-histogram': d => { const cats = [...Array(10).keys()]; return bars(this_fig, cats.map(b => (b / 10).toFixed(1) + '-' + ((b + 1) / 10).toFixed(1)), byRegion(d.histogram, 'bin', cats, 'customers'), 'customers'); },
    'churn-lift': d => { const regions = Object.keys(d.lift); if (!regions.length) return 0; const xs = d.lift[regions[0]].map(r => 'decile ' + r.bin);
                         return lines(this_fig, xs, regions.map(r => ({name: r, values: d.lift[r].map(x => x.cumulative_lift)})), 'cumulative lift'); },
    'churn-calibration': d => { const regions = Object.keys(d.calibration || {}).sort(); if (!regions.length) return 0;
                                return reliability(this_fig, regions.map(r => ({name: r, points: d.calibration[r].bins.map(b => ({label: b.bin, x: b.mean_predicted, y: b.observed_rate, rows: b.rows}))})), 'mean predicted probability', 'observed churn rate'); },
    'clv-by-segment': d => { const cats = unique(d.rows.map(r => r.segment)); const currency = unique(d.rows.map(r => r.currency)).join('/');
                             return bars(this_fig, cats, byRegion(d.rows, 'segment', cats, 'clv_mean'), 'mean CLV (' + currency + ')'); },
    'identity-clusters': d => { const cats = unique(d.rows.map(r => r.records)).sort((a, b) => a - b); return bars(this_fig, cats.map(c => c >= d.cap ? c + '+' : String(c)), byRegion(d.rows, 'records', cats, 'customers'), 'customers'); },
    'revenue': d => { const xs = unique(d.rows.map(r => r.month)).sort(); return lines(this_fig, xs, unique(d.rows.map(r => r.region)).map(region => ({name: region, values: xs.map(m => { const r = d.rows.find(x => x.region === region && x.month === m); return r ? r.net_revenue : null; })})), 'net revenue'); },
    'quality': d => { const cats = d.rows.map(r => r.table); return bars(this_fig, cats, [{name: 'passed', values: d.rows.map(r => r.passed)}, {name: 'warnings', values: d.rows.map(r => r.warnings)}, {name: 'errors', values: d.rows.map(r => r.errors)}], 'checks'); },
  };
  let this_fig = null, drawn = 0;
  document.querySelectorAll('figure.chart').forEach(fig => {
    this_fig = fig;
    const section = data[fig.dataset.section];
    let marks = 0;
    try {
      if (!section || section.missing) { fig.dataset.drawn = '0'; return; }
      marks = draw[fig.id](section) || 0;
    } catch (err) {
      fig.dataset.error = String(err);
    }
    fig.dataset.drawn = String(marks);
    if (marks > 0) drawn++;
    else if (!fig.dataset.error) { const p = document.createElement('p'); p.className = 'missing'; p.textContent = 'nothing to draw'; fig.appendChild(p); }
  });
  document.body.dataset.chartsDrawn = String(drawn);
})();
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _caption(data: dict[str, Any], chart_id: str, section: str) -> str:
    """What a chart's caption adds from the data: each region's calibration method and Brier score."""
    part = data.get(section) or {}
    if chart_id != "churn-calibration" or part.get("missing"):
        return ""
    notes = []
    for region, calibration in sorted((part.get("calibration") or {}).items()):
        brier = calibration.get("brier")
        brier_text = f"{brier:.4f}" if isinstance(brier, (int, float)) else "n/a"
        notes.append(f"{region}: {calibration.get('method')} calibration, Brier score {brier_text} "
                     f"({'held out' if calibration.get('held_out') else 'in-sample'})")
    return "; ".join(notes)


def _details(data: dict[str, Any], chart_id: str, section: str) -> str:
    """Tables and notes under a chart: segment profiles, lifetime value per segment, failing checks,
    missing lift curves and calibration tables."""
    part = data.get(section) or {}
    if part.get("missing"):
        return ""
    if chart_id == "segment-sizes":
        return _table_html(
            ["region", "segment", "customers", "share of revenue", "distinguishing features"],
            [[r["region"], r["segment"], r["customers"],
              "" if r["share_of_revenue"] is None else f"{r['share_of_revenue']:.0%}", ", ".join(r["distinguishing_features"])]
             for r in part["rows"]],
        )
    if chart_id == "clv-by-segment":
        def amount(value: float | None, spec: str) -> str:
            return "" if value is None else format(value, spec)

        return _table_html(
            ["region", "as of", "segment", "customers", "mean CLV", "total CLV", "expected purchases", "mean P(alive)", "currency"],
            [[r["region"], part["as_of"].get(r["region"], ""), r["segment"], r["customers"], amount(r["clv_mean"], ",.2f"),
              amount(r["clv_total"], ",.2f"), amount(r["expected_purchases_total"], ",.1f"), amount(r["p_alive_mean"], ".3f"), r["currency"]]
             for r in part["rows"]],
        )
    if chart_id == "quality" and part.get("failing"):
        return _table_html(["table", "check", "severity", "region", "message"],
                           [[r["table"], r["check"], r["severity"], r["region"], r["message"]] for r in part["failing"]])
    if chart_id == "churn-lift" and part.get("lift_missing"):
        return "".join(f'<p class="missing">{_esc(m)}</p>' for m in part["lift_missing"].values())
    if chart_id == "churn-calibration" and part.get("calibration_missing"):
        return "".join(f'<p class="missing">{_esc(m)}</p>' for m in part["calibration_missing"].values())
    return ""


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def render_html(data: dict[str, Any]) -> str:
    """The report as one HTML document (the data inline as JSON, the charts drawn by inline script)."""
    # strict JSON (a NaN would make JSON.parse fail and no chart draw); '<' escaped so nothing in
    # the data can close the script element or open a comment
    payload = json.dumps(_finite(data), default=str, sort_keys=True, allow_nan=False).replace("<", "\\u003c")
    sections = []
    for chart_id, section, title, caption in CHARTS:
        missing = (data.get(section) or {}).get("missing")
        body = (f'<p class="missing">{_esc(missing)}</p>' if missing else "")
        note = _caption(data, chart_id, section)
        sections.append(
            f'<section><h2>{_esc(title)}</h2><figure class="chart" id="{chart_id}" data-section="{section}">'
            f"<figcaption>{_esc(caption)}{'. ' + _esc(note) if note else ''}</figcaption>{body}</figure>"
            + _details(data, chart_id, section)
            + "</section>"
        )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(data['title'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_esc(data['title'])}</h1>"
        f"<div class=\"meta\">regions {_esc(', '.join(data['regions']))} · lakehouse {_esc(data['lakehouse'])} · "
        f"generated {_esc(data['generated_at'])}</div>"
        + "".join(sections)
        + f'<script type="application/json" id="report-data">{payload}</script>'
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(ctx: RunContext, out: str) -> dict[str, Any]:
    """Compute, render and write the report; returns the data."""
    from pathlib import Path

    data = report_data(ctx)
    Path(out).write_text(render_html(data), encoding="utf-8")
    log.info("report written to %s", out)
    return data
