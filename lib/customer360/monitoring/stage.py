"""The monitoring stage (after ml): consent enforcement on the score tables, drift, segment shift,
realized churn and the fairness audit, per region, as of the region's scoring date.

* **Consent.** Rows of ``gold.customer_segments``, ``gold.churn_scores``, ``gold.churn_scores_shadow``, ``gold.customer_clv`` and ``gold.customer_survival`` (every date) of
  customers whose ``profiling_consent`` is no longer true are deleted.
* **Drift** (``ops.drift_metrics``): PSI of every numeric feature of ``gold.customer_features``
  against the latest earlier as-of date in the table, and of the churn scores against the
  previous scored date; a PSI at or above ``monitoring.psi_alert`` raises an alert.
* **Segment shift**: segment shares against the latest scored date at least
  ``segment_shift_min_gap_days`` before (month over month); a change beyond
  ``segment_shift_threshold`` (+-15%) raises an alert.
* **Realized churn**: for the latest scored date whose horizon has passed by the as-of date, the
  share that did churn against the mean score; beyond ``realized_churn_tolerance``, an alert.
* **Fairness** (``ops.fairness_report``): churn-score and segment distributions across age bands
  (birth date from the vault) and gender where a source provides it; disparate impact and, on the
  realized outcomes above, equal opportunity difference; flagged groups raise alerts.

* **Shadow** (``ops.shadow_comparison``): the challenger churn model scored in shadow against the
  champion: score distributions on the monitored date, realized performance once a date both
  scored is a horizon old, and a promotion recommendation with its evidence (``monitoring/shadow.py``).

Alerts go to ``ops.alerts``. With ``monitoring.fail_on_alert`` (``--fail-on-alert``) any alert
makes the run exit non-zero.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

import pyspark.sql.functions as F
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from customer360.context import Metric, RunContext, StageResult
from customer360.errors import C360Error
from customer360.lakehouse.core import described_columns, sql_string_list, with_comments
from customer360.ml.scoring import scoring_date
from customer360.monitoring import shadow
from customer360.monitoring.drift import psi, psi_level, realized_churn_of, segment_shift, with_churn_outcome
from customer360.monitoring.fairness import COMMENTS as FAIRNESS_COMMENTS
from customer360.monitoring.fairness import TRUE_POSITIVE_RATE, age_band, fairness_frame, fairness_report
from customer360.tables import (
    ALERTS,
    CHURN_SCORES,
    CHURN_SCORES_SHADOW,
    CUSTOMER_360,
    CUSTOMER_CLV,
    CUSTOMER_SURVIVAL,
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    DRIFT_METRICS,
    FAIRNESS_REPORT,
    PII_VAULT,
    SHADOW_COMPARISON,
    SILVER_ORDERS,
)

log = logging.getLogger(__name__)

KEY_COLUMNS = ("region", "customer_id", "as_of_date", "feature_set_version", "run_id")

ALERTS_SCHEMA, ALERTS_COMMENTS = described_columns(
    ("run_id", T.StringType(), False, "monitoring run that raised it"),
    ("raised_at", T.TimestampType(), False, "when, UTC"),
    ("as_of_date", T.DateType(), False, "the scoring date monitored"),
    ("kind", T.StringType(), False, "feature_drift, score_drift, segment_shift, realized_churn or fairness"),
    ("subject", T.StringType(), False, "the feature, segment, or fairness group and metric concerned"),
    ("value", T.DoubleType(), True, "the observed value (PSI, relative share change, realized - predicted, disparate impact or EOD)"),
    ("threshold", T.StringType(), False, "the limit it crossed"),
    ("message", T.StringType(), False, "what happened, in a sentence"),
    ("region", T.StringType(), False, "region (partition)"),
)
SHADOW_SCHEMA, SHADOW_COMMENTS = described_columns(
    ("run_id", T.StringType(), False, "monitoring run"),
    ("recorded_at", T.TimestampType(), False, "when, UTC"),
    ("as_of_date", T.DateType(), False, "the scoring date monitored"),
    ("champion_version", T.StringType(), False, "registered churn model version holding the champion alias (gold.churn_scores)"),
    ("challenger_version", T.StringType(), False, "version holding the challenger alias (gold.churn_scores_shadow)"),
    ("customers", T.LongType(), False, "customers both scored on as_of_date (model scores; cold-start rows left out)"),
    ("score_psi", T.DoubleType(), True, "PSI of the challenger's scores against the champion's, same customers"),
    ("champion_mean_score", T.DoubleType(), True, "mean champion score"),
    ("challenger_mean_score", T.DoubleType(), True, "mean challenger score"),
    ("champion_flagged_share", T.DoubleType(), True, "share at or above the champion's threshold"),
    ("challenger_flagged_share", T.DoubleType(), True, "share at or above the challenger's threshold"),
    ("decision_agreement", T.DoubleType(), True, "share of customers both would treat alike (flag or not)"),
    ("outcomes_scored_on", T.DateType(), True, "the latest date both scored whose churn horizon has passed: the realized figures' date"),
    ("outcomes_challenger_version", T.StringType(), True, "the challenger version scored on outcomes_scored_on"),
    ("labelled_customers", T.LongType(), True, "customers both scored then, with their realized outcome"),
    ("realized_churn_rate", T.DoubleType(), True, "share of them with no order in the horizon"),
    ("champion_roc_auc", T.DoubleType(), True, "champion's ROC AUC on the realized outcomes"),
    ("challenger_roc_auc", T.DoubleType(), True, "challenger's ROC AUC on the realized outcomes"),
    ("champion_brier", T.DoubleType(), True, "champion's Brier score on the realized outcomes"),
    ("challenger_brier", T.DoubleType(), True, "challenger's Brier score on the realized outcomes"),
    ("recommendation", T.StringType(), False, "promote, keep_champion or wait (monitoring.shadow)"),
    ("evidence", T.StringType(), False, "why, with the figures"),
    ("region", T.StringType(), False, "region (partition)"),
)

DRIFT_SCHEMA, DRIFT_COMMENTS = described_columns(
    ("run_id", T.StringType(), False, "monitoring run"),
    ("as_of_date", T.DateType(), False, "the scoring date monitored"),
    ("reference_date", T.DateType(), True,
     "the date compared with (previous features, scores or segments; the scored date for realized "
     "churn)"),
    ("metric", T.StringType(), False, "feature_psi, score_psi, segment_share_change, realized_minus_predicted_churn"),
    ("name", T.StringType(), False, "feature, segment, or churn_score"),
    ("value", T.DoubleType(), True, "PSI; relative change of the segment's share; realized - predicted churn rate"),
    ("level", T.StringType(), False, "stable, shift, major_shift, unknown; flagged / ok for shares and churn"),
    ("region", T.StringType(), False, "region (partition)"),
)


class MonitoringInputError(C360Error):
    """The tables monitoring needs are missing."""


def _dates(df: DataFrame, region: str) -> list[date]:
    return sorted(r[0] for r in df.where(F.col("region") == region).select("as_of_date").distinct().collect())


def _enforce_consent(ctx: RunContext, region: str, allowed: DataFrame) -> int:
    """Delete score rows of customers who may no longer be profiled; returns rows deleted."""
    deleted = 0
    for table in (CUSTOMER_SEGMENTS, CHURN_SCORES, CHURN_SCORES_SHADOW, CUSTOMER_CLV, CUSTOMER_SURVIVAL):
        if not ctx.lakehouse.exists(table):
            continue
        scored = ctx.lakehouse.read(table).where(F.col("region") == region).select("customer_id").distinct()
        withdrawn = [r[0] for r in scored.join(allowed, "customer_id", "left_anti").collect()]
        if withdrawn:
            result = ctx.lakehouse.delete(table, f"region = '{region}' AND customer_id IN ({sql_string_list(withdrawn)})")
            deleted += int(result.rows_deleted or 0)
    return deleted


def _birth_dates(ctx: RunContext, region: str, c360: DataFrame) -> DataFrame:
    """customer_id, date_of_birth (clear, from the vault) for the fairness audit only."""
    if not ctx.lakehouse.exists(PII_VAULT):
        return c360.select("customer_id", F.lit(None).cast("date").alias("date_of_birth"))
    vault = ctx.lakehouse.read(PII_VAULT).where((F.col("region") == region) & (F.col("kind") == "date_of_birth"))
    return c360.select("customer_id", F.col("date_of_birth").alias("token")).join(
        vault.select(F.col("token"), F.to_date("value").alias("date_of_birth")), "token", "left"
    ).drop("token")


def monitor_region(ctx: RunContext, region: str, now: datetime) -> tuple[list[tuple], list[tuple], DataFrame | None, list[str], tuple | None]:
    """Drift rows, alert rows, the fairness frame, summary lines and the shadow comparison row of one region."""
    mon = ctx.config.monitoring
    lakehouse = ctx.lakehouse
    as_of = scoring_date(ctx, region)
    horizon = ctx.region(region).churn_horizon_days
    drift: list[tuple] = []
    alerts: list[tuple] = []
    lines: list[str] = []

    def alert(kind: str, subject: str, value: float | None, threshold: str, message: str) -> None:
        alerts.append((ctx.run_id, now, as_of, kind, subject, value, threshold, message, region))

    c360 = lakehouse.read(CUSTOMER_360).where(F.col("region") == region)
    allowed = c360.where(F.col("profiling_consent")).select("customer_id")
    withdrawn = _enforce_consent(ctx, region, allowed)
    lines.append(f"{region} as of {as_of}: {withdrawn:,} score rows of customers without profiling consent deleted")

    # features
    if lakehouse.exists(CUSTOMER_FEATURES):
        features = lakehouse.read(CUSTOMER_FEATURES).where(F.col("region") == region)
        earlier = [d for d in _dates(features, region) if d < as_of]
        if earlier:
            reference = earlier[-1]
            numeric = [f.name for f in features.schema.fields if f.name not in KEY_COLUMNS and isinstance(f.dataType, T.NumericType)]
            values = psi(features.where(F.col("as_of_date") == reference), features.where(F.col("as_of_date") == as_of), numeric, bins=mon.psi_bins)
            shifted = 0
            for name, value in values.items():
                level = psi_level(value, warn=mon.psi_warn, alert=mon.psi_alert)
                drift.append((ctx.run_id, as_of, reference, "feature_psi", name, value, level, region))
                shifted += level == "major_shift"
                if level == "major_shift":
                    alert("feature_drift", name, value, f"PSI < {mon.psi_alert}", f"{name}: PSI {value:.3f} against {reference} (>= {mon.psi_alert})")
            lines.append(f"  features: PSI of {len(values)} against {reference}: {shifted} major shifts")
        else:
            lines.append("  features: no earlier as-of date to compare with")

    # churn scores
    outcomes = None
    if lakehouse.exists(CHURN_SCORES):
        scores = lakehouse.read(CHURN_SCORES).where(F.col("region") == region)
        dates = _dates(scores, region)
        earlier = [d for d in dates if d < as_of]
        if not (as_of in dates and earlier):
            lines.append("  churn scores: no earlier scoring to compare with")
        else:
            reference = earlier[-1]
            value = psi(scores.where(F.col("as_of_date") == reference), scores.where(F.col("as_of_date") == as_of), ["churn_score"], bins=mon.psi_bins)["churn_score"]
            level = psi_level(value, warn=mon.psi_warn, alert=mon.psi_alert)
            drift.append((ctx.run_id, as_of, reference, "score_psi", "churn_score", value, level, region))
            if level == "major_shift":
                alert("score_drift", "churn_score", value, f"PSI < {mon.psi_alert}", f"churn scores: PSI {value:.3f} against {reference}")
            lines.append(f"  churn scores: PSI {value if value is None else round(value, 3)} against {reference} ({level})")
        due = [d for d in dates if d + timedelta(days=horizon) <= as_of]
        if due:
            scored_on = due[-1]
            orders = lakehouse.read(SILVER_ORDERS).where(F.col("region") == region) if lakehouse.exists(SILVER_ORDERS) else None
            outcome = None
            if orders is not None:
                # one outcome join, read by the realized-churn check and the fairness audit
                joined = with_churn_outcome(
                    scores.where(F.col("as_of_date") == scored_on).select("customer_id", "churn_score", "churn_predicted"),
                    orders, as_of=scored_on, horizon_days=horizon,
                ).localCheckpoint(eager=True)
                outcome = realized_churn_of(joined)
            if outcome is not None:
                outcomes = (scored_on, joined.select("customer_id", "churn_predicted", "churned"))
                flagged = abs(outcome.difference) > mon.realized_churn_tolerance
                drift.append((ctx.run_id, as_of, scored_on, "realized_minus_predicted_churn", "churn_score", outcome.difference,
                              "flagged" if flagged else "ok", region))
                lines.append(
                    f"  realized churn of the {scored_on} scores: {outcome.realized_rate:.1%} vs {outcome.predicted_rate:.1%} predicted "
                    f"({outcome.scored:,} customers)"
                )
                if flagged:
                    alert("realized_churn", f"scores of {scored_on}", outcome.difference, f"|realized - predicted| <= {mon.realized_churn_tolerance}",
                          f"{outcome.realized_rate:.1%} of the customers scored on {scored_on} churned, {outcome.predicted_rate:.1%} predicted")
        else:
            lines.append(f"  realized churn: no scores older than the {horizon}-day horizon yet")

    shadow_row = _shadow(ctx, region, as_of, horizon, now, lines)

    # segments, month over month
    if lakehouse.exists(CUSTOMER_SEGMENTS):
        segments = lakehouse.read(CUSTOMER_SEGMENTS).where(F.col("region") == region)
        dates = _dates(segments, region)
        earlier = [d for d in dates if d <= as_of - timedelta(days=mon.segment_shift_min_gap_days)]
        if as_of in dates and earlier:
            reference = earlier[-1]
            shifts = segment_shift(
                segments.where(F.col("as_of_date") == reference), segments.where(F.col("as_of_date") == as_of),
                threshold=mon.segment_shift_threshold,
            )
            for s in shifts:
                drift.append((ctx.run_id, as_of, reference, "segment_share_change", s.segment, s.relative_change,
                              "flagged" if s.flagged else "ok", region))
                if s.flagged:
                    change = "new" if s.relative_change is None else f"{s.relative_change:+.0%}"
                    alert("segment_shift", s.segment, s.relative_change, f"+-{mon.segment_shift_threshold:.0%}",
                          f"segment {s.segment}: share {s.previous_share:.1%} on {reference} -> {s.current_share:.1%} ({change})")
            lines.append(f"  segments against {reference}: {sum(s.flagged for s in shifts)} of {len(shifts)} shifted beyond +-{mon.segment_shift_threshold:.0%}")
        else:
            lines.append(f"  segments: no scoring {mon.segment_shift_min_gap_days}+ days before to compare with")

    # fairness: today's predictions and segments; equal opportunity on the realized outcomes
    fairness = None
    current = c360.where(F.col("features_as_of") == as_of)
    births = _birth_dates(ctx, region, current).withColumnRenamed("date_of_birth", "_birth_date")
    people = current.drop("date_of_birth").join(births, "customer_id", "left")
    audited = people.withColumn("age_band", age_band(F.col("_birth_date"), as_of=as_of))
    attributes = [a for a in mon.fairness.attributes if a in audited.columns]
    missing = [a for a in mon.fairness.attributes if a not in audited.columns]
    limits = dict(
        min_disparate_impact=mon.fairness.min_disparate_impact,
        max_equal_opportunity_difference=mon.fairness.max_equal_opportunity_difference, min_group_size=mon.fairness.min_group_size,
    )
    rows = fairness_report(
        audited.select(*attributes, "segment", "churn_score", "churn_predicted").where(F.col("churn_score").isNotNull() | F.col("segment").isNotNull()),
        attributes=attributes, **limits,
    ) if attributes else []
    if attributes and outcomes is not None:
        scored_on, outcome_rows = outcomes
        then = people.withColumn("age_band", age_band(F.col("_birth_date"), as_of=scored_on)).select("customer_id", *attributes)
        realized = outcome_rows.join(then, "customer_id", "inner").select(*attributes, "churn_predicted", "churned")
        rows += [r for r in fairness_report(realized, attributes=attributes, **limits) if r.metric == TRUE_POSITIVE_RATE]
    if rows:
        fairness = fairness_frame(ctx.spark, rows, run_id=ctx.run_id, as_of=as_of, recorded_at=now, region=region)
        for r in rows:
            if r.flagged:
                eod = r.metric == TRUE_POSITIVE_RATE
                value = r.equal_opportunity_difference if eod else r.disparate_impact
                limit = (
                    f"|equal opportunity difference| <= {mon.fairness.max_equal_opportunity_difference}" if eod
                    else f"disparate impact in [{mon.fairness.min_disparate_impact}, {1 / mon.fairness.min_disparate_impact:.2f}]"
                )
                alert("fairness", f"{r.attribute}={r.group}: {r.metric}", value, limit,
                      f"{r.metric} of {r.attribute} {r.group} is {r.value:.3f} vs {r.reference_value:.3f} for {r.reference_group}")
    lines.append(
        f"  fairness: {len(rows)} rows over {', '.join(attributes) or 'no attribute'}, {sum(r.flagged for r in rows)} flagged"
        + (f"; not audited (no source provides it): {', '.join(missing)}" if missing else "")
    )
    return drift, alerts, fairness, lines, shadow_row


def _shadow(ctx: RunContext, region: str, as_of: date, horizon: int, now: datetime, lines: list[str]) -> tuple | None:
    """The ops.shadow_comparison row of the region (None without shadow scores on ``as_of``)."""
    lakehouse, settings = ctx.lakehouse, ctx.config.monitoring.shadow
    if not (lakehouse.exists(CHURN_SCORES_SHADOW) and lakehouse.exists(CHURN_SCORES)):
        return None
    mine = F.col("region") == region
    champion, challenger = lakehouse.read(CHURN_SCORES).where(mine), lakehouse.read(CHURN_SCORES_SHADOW).where(mine)
    today = shadow.paired(champion.where(F.col("as_of_date") == as_of), challenger.where(F.col("as_of_date") == as_of)).persist()
    versions = today.select("champion_version", "challenger_version").distinct().collect()
    if not versions:
        today.unpersist()
        return None
    champion_version, challenger_version = versions[0]
    seen = shadow.distributions(today, bins=ctx.config.monitoring.psi_bins)
    today.unpersist()
    both = sorted(set(_dates(champion, region)) & set(_dates(challenger, region)))
    due = [d for d in both if d + timedelta(days=horizon) <= as_of]
    found = None
    if due and lakehouse.exists(SILVER_ORDERS):
        then = F.col("as_of_date") == due[-1]
        found = shadow.realized(
            shadow.paired(champion.where(then), challenger.where(then)), lakehouse.read(SILVER_ORDERS).where(mine),
            scored_on=due[-1], horizon_days=horizon,
        )
    recommendation, evidence = shadow.recommend(
        found, challenger_version=challenger_version, min_improvement=settings.min_improvement, min_labelled=settings.min_labelled,
    )
    psi_text = "n/a" if seen.psi is None else f"{seen.psi:.3f}"
    lines.append(
        f"  shadow: challenger v{challenger_version} vs champion v{champion_version} on {seen.customers:,} customers: PSI {psi_text}, "
        f"mean {seen.challenger_mean or 0:.3f} vs {seen.champion_mean or 0:.3f}, decisions agree for {seen.agreement or 0:.1%}; "
        f"{recommendation}: {evidence}"
    )
    realized = (
        (found.scored_on, found.challenger_version, found.labelled, found.churn_rate, found.champion_roc_auc, found.challenger_roc_auc,
         found.champion_brier, found.challenger_brier) if found is not None else (None,) * 8
    )
    return (
        ctx.run_id, now, as_of, str(champion_version), str(challenger_version), seen.customers, seen.psi, seen.champion_mean,
        seen.challenger_mean, seen.champion_flagged, seen.challenger_flagged, seen.agreement, *realized, recommendation, evidence, region,
    )


def run(ctx: RunContext, *, now: datetime | None = None) -> StageResult:
    result = StageResult("monitoring")
    now = now or datetime.now(timezone.utc)
    lakehouse = ctx.lakehouse
    if not lakehouse.exists(CUSTOMER_360):
        raise MonitoringInputError(f"{CUSTOMER_360} does not exist: run the gold stage first")
    drift_rows: list[tuple] = []
    alert_rows: list[tuple] = []
    fairness: list[DataFrame] = []
    shadow_rows: list[tuple] = []
    for region in ctx.regions:
        drift, alerts, report, lines, shadow_row = monitor_region(ctx, region, now)
        shadow_rows += [shadow_row] if shadow_row else []
        drift_rows += drift
        alert_rows += alerts
        result.lines += lines
        result.metrics.append(Metric(region, "alerts", len(alerts), ALERTS))
        if report is not None:
            fairness.append(report)
    if drift_rows:
        lakehouse.write(with_comments(ctx.spark.createDataFrame(drift_rows, DRIFT_SCHEMA), DRIFT_COMMENTS).coalesce(1),
                        DRIFT_METRICS, mode="append", partition_by=["region"])
    if shadow_rows:
        lakehouse.write(with_comments(ctx.spark.createDataFrame(shadow_rows, SHADOW_SCHEMA), SHADOW_COMMENTS).coalesce(1),
                        SHADOW_COMPARISON, mode="append", partition_by=["region"])
    if fairness:
        frame = fairness[0]
        for f in fairness[1:]:
            frame = frame.unionByName(f)
        lakehouse.write(with_comments(frame, FAIRNESS_COMMENTS).coalesce(1), FAIRNESS_REPORT, mode="append", partition_by=["region"])
    if alert_rows:
        lakehouse.write(with_comments(ctx.spark.createDataFrame(alert_rows, ALERTS_SCHEMA), ALERTS_COMMENTS).coalesce(1),
                        ALERTS, mode="append", partition_by=["region"])
    result.lines.append(f"alerts: {len(alert_rows)}" + (f" (in {ALERTS})" if alert_rows else ""))
    result.lines += [f"  ALERT {a[8]} {a[3]}: {a[7]}" for a in alert_rows[:20]]
    if alert_rows and ctx.config.monitoring.fail_on_alert:
        result.errors.append(f"{len(alert_rows)} monitoring alert(s) raised and --fail-on-alert is set (see {ALERTS})")
    return result
