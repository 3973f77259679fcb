"""The monitoring stage on small hand-built gold tables: consent enforcement on the score tables,
feature and score PSI against the latest earlier date (cross-checked with a numpy binning),
realized churn at the horizon boundary, month-over-month segment shift, the fairness audit with
exact disparate impacts, the alerts and --fail-on-alert; and the bad paths (no customer_360,
nothing earlier to compare with, no gender source). The rich runs audit fairness by gender (their
customer_360 has no birth dates); age bands from the vault have their own test."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pyspark.sql.functions as F
import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from customer360.config import load_config
from customer360.context import Metric, build_context
from customer360.monitoring.fairness import FAIRNESS_SCHEMA
from customer360.monitoring.stage import ALERTS_SCHEMA, DRIFT_SCHEMA, MonitoringInputError, run
from customer360.tables import ALERTS, DRIFT_METRICS, FAIRNESS_REPORT

from tests.conftest import CONF_DIR
from tests.monitoring.test_drift import numpy_psi

pytestmark = pytest.mark.slow

EPS = 1e-4
PRECISION = 1e-9

AS_OF = date(2026, 6, 30)
NOW = datetime(2026, 7, 1, 6, 0)
HORIZON = 90  # conf/base.yaml region_defaults.churn_horizon_days; conf/regions/us.yaml keeps it
FEATURE_REF = date(2026, 6, 23)  # latest feature date before AS_OF
FEATURE_DATES = (date(2026, 5, 31), FEATURE_REF, AS_OF, date(2026, 7, 7))  # 7 July: after AS_OF, never a reference
SCORED_DUE = AS_OF - timedelta(days=HORIZON)  # 2026-04-01: exactly the horizon before, so due
SCORE_REF = date(2026, 6, 23)
SCORE_DATES = (date(2026, 3, 15), SCORED_DUE, date(2026, 4, 2), SCORE_REF, AS_OF)  # 2 April: one day short of due
SEGMENT_REF = AS_OF - timedelta(days=28)  # 2026-06-02: exactly 28 days before
SEGMENT_DATES = (date(2026, 5, 20), SEGMENT_REF, date(2026, 6, 3), AS_OF)  # 3 June: 27 days, too recent

C360_SCHEMA = (
    "region string, customer_id string, features_as_of date, profiling_consent boolean, "
    "segment string, churn_score double, churn_predicted boolean"
)
FEATURES_SCHEMA = (
    "region string, customer_id string, as_of_date date, feature_set_version string, run_id string, "
    "orders_90d long, spend_90d double, tenure_days int, preferred_channel string, is_cold_start boolean"
)
SCORES_SCHEMA = (
    "region string, customer_id string, as_of_date date, churn_score double, churn_predicted boolean, "
    "threshold double, model_version string"
)
SEGMENTS_SCHEMA = "region string, customer_id string, as_of_date date, segment string, global_segment string"
ORDERS_SCHEMA = "region string, customer_id string, order_id string, ordered_at timestamp"
VAULT_SCHEMA = "token string, kind string, value string, first_seen_run_id string, region string"

# c01..c18 may be profiled; c19 withdrew (false), c20'q has no consent on record (null) - and a
# quote in its id, which the delete predicate must escape
KEPT = [f"c{i:02d}" for i in range(1, 19)]
WITHDRAWN = ["c19", "c20'q"]
CUSTOMERS = KEPT + WITHDRAWN
INDEX = {c: i for i, c in enumerate(CUSTOMERS, start=1)}


def term(e: float, a: float) -> float:
    e, a = max(e, EPS), max(a, EPS)
    return (a - e) * math.log(a / e)


def plain(df):
    """The frame without column comments (the tables carry them; expected frames do not)."""
    return df.select([F.col(c).alias(c, metadata={}) for c in df.columns])


def context(spark, tmp_path, *overrides, run_id="mon-1", as_of=None):
    config = load_config(
        "local", conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={tmp_path / 'lh'}", "pipeline.regions=[us, de]", *overrides],
    )
    return build_context(config, spark=spark, regions=["us"], run_id=run_id, as_of=as_of)


# --- the rich data set ----------------------------------------------------------------------------

def feature_rows() -> list[tuple]:
    rows = []
    for day in FEATURE_DATES:
        for c, i in INDEX.items():
            if day == FEATURE_REF:
                orders, spend, tenure = i % 4, float(i), 10 * i
            elif day == AS_OF:
                # orders unchanged; spend moved above every reference value; tenure: two customers
                # moved one decile each (10 -> 30, 190 -> 170)
                orders, spend, tenure = i % 4, 100.0 + i, {1: 30, 19: 170}.get(i, 10 * i)
            else:  # the older reference and the later date: different, so using them would show
                orders, spend, tenure = 10 * i, 1000.0 * i, 7
            rows.append(("us", c, day, "fs-1", "gold-1", orders, spend, tenure, "web", i % 2 == 0))
    return rows


def score_of(day: date, i: int) -> tuple[float, bool]:
    if day == SCORED_DUE:
        return 0.1 + 0.01 * i, False
    if day == SCORE_REF:
        return i / 20, i >= 10
    if day == AS_OF:
        return (0.32 + i / 30, i >= 9) if i <= 18 else (0.95, True)
    return 0.9, True


def score_rows() -> list[tuple]:
    rows = [("us", c, day, *score_of(day, i), 0.5, "3") for day in SCORE_DATES for c, i in INDEX.items()]
    # de is not monitored here: its rows stay, also those of a de customer with a us withdrawn id
    return rows + [("de", "c19", AS_OF, 0.5, True, 0.5, "1"), ("de", "d01", AS_OF, 0.2, False, 0.5, "1")]


CURRENT_SEGMENTS = {**{c: "loyal" for c in KEPT[:10]}, **{c: "at_risk" for c in KEPT[10:17]}, "c18": "vip"}
REFERENCE_SEGMENTS = {**{c: "loyal" for c in KEPT[:9]}, **{c: "at_risk" for c in KEPT[9:15]}, **{c: "new" for c in KEPT[15:]}}


def segment_rows() -> list[tuple]:
    rows = []
    for day in SEGMENT_DATES:
        for c in CUSTOMERS:
            if day == AS_OF:
                segment = CURRENT_SEGMENTS.get(c, "loyal")
            elif day == SEGMENT_REF:
                segment = REFERENCE_SEGMENTS.get(c, "loyal")
            else:
                segment = "loyal" if day < SEGMENT_REF else "new"
            rows.append(("us", c, day, segment, segment.upper()))
    return rows


# the fairness groups of the rich data set, by gender (null: "unknown"); "female" is the largest
# known group, the reference
GENDERS = {
    "male": ("c04", "c05"),
    "diverse": ("c06", "c14", "c15"),
    "female": ("c01", "c02", "c03", "c09", "c10", "c11", "c12", "c13"),
    "other": ("c16", "c17"),
    "unknown": ("c07", "c08", "c18"),
}
GENDER_OF = {c: (None if g == "unknown" else g) for g, cs in GENDERS.items() for c in cs}


def c360_rows() -> list[tuple]:
    rows = []
    for c, i in INDEX.items():
        if c in WITHDRAWN:
            # gold leaves the ML columns null without profiling consent
            rows.append(("us", c, AS_OF, False if c == "c19" else None, None, None, None, "female"))
        else:
            score, predicted = score_of(AS_OF, i)
            rows.append(("us", c, AS_OF, True, CURRENT_SEGMENTS[c], score, predicted, GENDER_OF[c]))
    return rows


def order_rows() -> list[tuple]:
    # the window of the 1 April scores: [2026-04-02 00:00, 2026-07-01 00:00) UTC
    rows = [("us", c, f"o-{c}", datetime(2026, 5, 1, 10)) for c in KEPT[:6]]
    return rows + [
        ("us", "c07", "o-c07", datetime(2026, 7, 1, 0, 0)),  # first instant after the window: churned
        ("us", "c08", "o-c08", datetime(2026, 4, 2, 0, 0)),  # first instant of the window: retained
        ("us", "c09", "o-c09", datetime(2026, 4, 1, 23, 59, 59)),  # before the window: churned
        ("de", "c10", "o-c10-de", datetime(2026, 5, 1, 10)),  # another region: c10 still churned
        ("us", "c19", "o-c19", datetime(2026, 5, 1, 10)),
    ]


def write_rich(spark, ctx) -> None:
    lh = ctx.lakehouse
    lh.write(spark.createDataFrame(c360_rows(), C360_SCHEMA + ", gender string"), "gold.customer_360", mode="overwrite", partition_by=["region"])
    lh.write(spark.createDataFrame(feature_rows(), FEATURES_SCHEMA), "gold.customer_features", mode="overwrite",
             partition_by=["region", "as_of_date"])
    lh.write(spark.createDataFrame(score_rows(), SCORES_SCHEMA), "gold.churn_scores", mode="overwrite",
             partition_by=["region", "as_of_date"])
    lh.write(spark.createDataFrame(segment_rows(), SEGMENTS_SCHEMA), "gold.customer_segments", mode="overwrite",
             partition_by=["region", "as_of_date"])
    lh.write(spark.createDataFrame(order_rows(), ORDERS_SCHEMA), "silver.orders", mode="overwrite", partition_by=["region"])


@pytest.fixture(scope="module")
def monitored(spark, tmp_path_factory):
    """The rich data set, monitored once (fairness groups of any size may be flagged)."""
    tmp_path = tmp_path_factory.mktemp("monitoring")
    ctx = context(spark, tmp_path, "monitoring.fairness.min_group_size=1")
    write_rich(spark, ctx)
    return ctx, run(ctx, now=NOW)


# the expected numbers, by hand (or numpy where a binning is involved)
SPEND_PSI = 9 * term(0.1, 0.0) + term(0.1, 1.0)  # deciles of 1..20; every current value above the last
TENURE_PSI = 2 * (term(0.1, 0.05) + term(0.1, 0.15))  # first and last decile give one customer each to their neighbour
SCORE_PSI = numpy_psi([score_of(SCORE_REF, INDEX[c])[0] for c in KEPT], [score_of(AS_OF, INDEX[c])[0] for c in KEPT])
PREDICTED_DUE = sum(0.1 + 0.01 * i for i in range(1, 19)) / 18  # 0.195
REALIZED_DUE = 11 / 18  # of 18 scored on 1 April, c01-c06 and c08 ordered in the window


def test_expected_psi_values_agree_with_numpy():
    ref, cur = [r for r in feature_rows() if r[2] == FEATURE_REF], [r for r in feature_rows() if r[2] == AS_OF]
    assert SPEND_PSI == pytest.approx(numpy_psi([r[6] for r in ref], [r[6] for r in cur]), abs=PRECISION)
    assert TENURE_PSI == pytest.approx(numpy_psi([r[7] for r in ref], [r[7] for r in cur]), abs=PRECISION)
    assert numpy_psi([r[5] for r in ref], [r[5] for r in cur]) == 0.0
    assert 0.1 <= TENURE_PSI < 0.25 and SCORE_PSI >= 0.25
    assert PREDICTED_DUE == pytest.approx(0.195, abs=PRECISION)


def test_consent_deletes_every_score_and_segment_row_of_withdrawn_customers(spark, monitored):
    ctx, result = monitored
    # 5 score dates and 4 segment dates, two customers: 18 rows, all us
    assert result.lines[0] == "us as of 2026-06-30: 18 score rows of customers without profiling consent deleted"
    kept_scores = [r for r in score_rows() if not (r[0] == "us" and r[1] in WITHDRAWN)]
    assert_df_equality(plain(ctx.lakehouse.read("gold.churn_scores")), spark.createDataFrame(kept_scores, SCORES_SCHEMA),
                       ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)
    kept_segments = [r for r in segment_rows() if r[1] not in WITHDRAWN]
    assert_df_equality(plain(ctx.lakehouse.read("gold.customer_segments")), spark.createDataFrame(kept_segments, SEGMENTS_SCHEMA),
                       ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)


def test_drift_metrics_rows(spark, monitored):
    ctx, _ = monitored
    expected = spark.createDataFrame(
        [
            ("mon-1", AS_OF, FEATURE_REF, "feature_psi", "orders_90d", 0.0, "stable", "us"),
            ("mon-1", AS_OF, FEATURE_REF, "feature_psi", "spend_90d", SPEND_PSI, "major_shift", "us"),
            ("mon-1", AS_OF, FEATURE_REF, "feature_psi", "tenure_days", TENURE_PSI, "shift", "us"),
            # consent first: PSI over the 18 kept customers only
            ("mon-1", AS_OF, SCORE_REF, "score_psi", "churn_score", SCORE_PSI, "major_shift", "us"),
            ("mon-1", AS_OF, SCORED_DUE, "realized_minus_predicted_churn", "churn_score", REALIZED_DUE - PREDICTED_DUE, "flagged", "us"),
            # shares 9/18, 6/18, 3/18 on 2 June -> 10/18, 7/18, 0, 1/18
            ("mon-1", AS_OF, SEGMENT_REF, "segment_share_change", "at_risk", 7 / 6 - 1, "flagged", "us"),
            ("mon-1", AS_OF, SEGMENT_REF, "segment_share_change", "loyal", 10 / 9 - 1, "ok", "us"),
            ("mon-1", AS_OF, SEGMENT_REF, "segment_share_change", "new", -1.0, "flagged", "us"),
            ("mon-1", AS_OF, SEGMENT_REF, "segment_share_change", "vip", None, "flagged", "us"),
        ],
        DRIFT_SCHEMA,
    )
    assert_approx_df_equality(plain(ctx.lakehouse.read(DRIFT_METRICS)), expected, PRECISION, ignore_row_order=True, ignore_nullable=True)


# fairness over the 18 audited customers (the withdrawn have no score and no segment)
# group: churn_predicted_rate, segment_share:at_risk, segment_share:loyal, segment_share:vip
REFERENCE = "female"
RATES = {
    "diverse": (2 / 3, 2 / 3, 1 / 3, 0.0),
    "female": (5 / 8, 3 / 8, 5 / 8, 0.0),
    "male": (0.0, 0.0, 1.0, 0.0),
    "other": (1.0, 1.0, 0.0, 0.0),
    "unknown": (1 / 3, 0.0, 2 / 3, 1 / 3),
}
RATE_METRICS = {"churn_predicted_rate": 0, "segment_share:at_risk": 1, "segment_share:loyal": 2, "segment_share:vip": 3}
FLAGGED = {  # disparate impact outside [0.8, 1.25], known groups only; in report order
    ("churn_predicted_rate", "male"): 0.0,
    ("churn_predicted_rate", "other"): 1.6,
    ("segment_share:at_risk", "diverse"): 16 / 9,
    ("segment_share:at_risk", "male"): 0.0,
    ("segment_share:at_risk", "other"): 8 / 3,
    ("segment_share:loyal", "diverse"): 8 / 15,
    ("segment_share:loyal", "male"): 1.6,
    ("segment_share:loyal", "other"): 0.0,
}
METRICS = ("churn_predicted_rate", "mean_churn_score", "segment_share:at_risk", "segment_share:loyal", "segment_share:vip")


def mean_score(customers) -> float:
    return sum(score_of(AS_OF, INDEX[c])[0] for c in customers) / len(customers)


def fairness_expected() -> list[tuple]:
    # age_band: no date of birth, so one group, "unknown", of all 18, its own reference, never flagged
    overall = {"churn_predicted_rate": 10 / 18, "mean_churn_score": mean_score(KEPT), "segment_share:at_risk": 7 / 18,
               "segment_share:loyal": 10 / 18, "segment_share:vip": 1 / 18}
    rows = [
        ("age_band", "unknown", m, v, "unknown", v, None if m == "mean_churn_score" else 1.0, None, 18, False)
        for m, v in overall.items()
    ]
    for metric in METRICS:
        for group, members in GENDERS.items():
            if metric == "mean_churn_score":
                value, reference, di = mean_score(members), mean_score(GENDERS[REFERENCE]), None
            else:
                value, reference = RATES[group][RATE_METRICS[metric]], RATES[REFERENCE][RATE_METRICS[metric]]
                di = None if reference == 0 else value / reference
            rows.append(("gender", group, metric, value, REFERENCE, reference, di, None, len(members), (metric, group) in FLAGGED))
    return [(*r, "mon-1", AS_OF, NOW, "us") for r in rows]


def fairness_message(metric: str, group: str, di: float) -> str:
    reference = RATES[REFERENCE][RATE_METRICS[metric]]
    return f"{metric} of gender {group} is {di * reference:.3f} vs {reference:.3f} for female"


def test_fairness_report_rows(spark, monitored):
    ctx, result = monitored
    expected = spark.createDataFrame(fairness_expected(), FAIRNESS_SCHEMA)
    report = plain(ctx.lakehouse.read(FAIRNESS_REPORT))
    got = report.where(F.col("metric") != "true_positive_rate")
    assert_approx_df_equality(got, expected, PRECISION, ignore_row_order=True, ignore_nullable=True)
    tpr = report.where(F.col("metric") == "true_positive_rate").count()
    assert f"  fairness: {30 + tpr} rows over age_band, gender, 8 flagged" in result.lines


def alert(kind, subject, value, threshold, message):
    return ("mon-1", NOW, AS_OF, kind, subject, value, threshold, message, "us")


def expected_alerts() -> list[tuple]:
    rows = [
        alert("feature_drift", "spend_90d", SPEND_PSI, "PSI < 0.25", f"spend_90d: PSI {SPEND_PSI:.3f} against 2026-06-23 (>= 0.25)"),
        alert("score_drift", "churn_score", SCORE_PSI, "PSI < 0.25", f"churn scores: PSI {SCORE_PSI:.3f} against 2026-06-23"),
        alert("realized_churn", "scores of 2026-04-01", REALIZED_DUE - PREDICTED_DUE, "|realized - predicted| <= 0.1",
              "61.1% of the customers scored on 2026-04-01 churned, 19.5% predicted"),
        alert("segment_shift", "at_risk", 7 / 6 - 1, "+-15%", "segment at_risk: share 33.3% on 2026-06-02 -> 38.9% (+17%)"),
        alert("segment_shift", "new", -1.0, "+-15%", "segment new: share 16.7% on 2026-06-02 -> 0.0% (-100%)"),
        alert("segment_shift", "vip", None, "+-15%", "segment vip: share 0.0% on 2026-06-02 -> 5.6% (new)"),
    ]
    for (metric, group), di in FLAGGED.items():
        rows.append(alert("fairness", f"gender={group}: {metric}", di, "disparate impact in [0.8, 1.25]", fairness_message(metric, group, di)))
    return rows


def test_alerts_rows(spark, monitored):
    ctx, result = monitored
    expected = spark.createDataFrame(expected_alerts(), ALERTS_SCHEMA)
    assert_approx_df_equality(plain(ctx.lakehouse.read(ALERTS)), expected, PRECISION, ignore_row_order=True, ignore_nullable=True)
    assert result.metrics == [Metric("us", "alerts", 14, ALERTS)]
    # without --fail-on-alert the alerts are reported, not errors
    assert result.errors == []


def test_summary_lines(monitored):
    _, result = monitored
    assert result.lines == [
        "us as of 2026-06-30: 18 score rows of customers without profiling consent deleted",
        "  features: PSI of 3 against 2026-06-23: 1 major shifts",
        f"  churn scores: PSI {round(SCORE_PSI, 3)} against 2026-06-23 (major_shift)",
        "  realized churn of the 2026-04-01 scores: 61.1% vs 19.5% predicted (18 customers)",
        "  segments against 2026-06-02: 3 of 4 shifted beyond +-15%",
        *[line for line in result.lines if line.startswith("  fairness: ")],
        "alerts: 14 (in ops.alerts)",
        f"  ALERT us feature_drift: spend_90d: PSI {SPEND_PSI:.3f} against 2026-06-23 (>= 0.25)",
        f"  ALERT us score_drift: churn scores: PSI {SCORE_PSI:.3f} against 2026-06-23",
        "  ALERT us realized_churn: 61.1% of the customers scored on 2026-04-01 churned, 19.5% predicted",
        "  ALERT us segment_shift: segment at_risk: share 33.3% on 2026-06-02 -> 38.9% (+17%)",
        "  ALERT us segment_shift: segment new: share 16.7% on 2026-06-02 -> 0.0% (-100%)",
        "  ALERT us segment_shift: segment vip: share 0.0% on 2026-06-02 -> 5.6% (new)",
        *[f"  ALERT us fairness: {fairness_message(metric, group, di)}" for (metric, group), di in FLAGGED.items()],
    ]


def test_fairness_reports_equal_opportunity_on_realized_outcomes(monitored):
    ctx, _ = monitored
    report = ctx.lakehouse.read(FAIRNESS_REPORT).where(F.col("metric") == "true_positive_rate")
    rows = report.select("group", "equal_opportunity_difference").collect()
    # the 1 April scores are due (realized churn is computed from them), so churned customers exist
    assert rows and all(r["equal_opportunity_difference"] is not None for r in rows if r["group"] != "unknown")


# --- small data sets: alerts or none, fail_on_alert, nothing earlier ------------------------------

SMALL = [f"s{i}" for i in range(1, 7)]
SMALL_DUE_SCORES = [0.4, 0.5, 0.45, 0.45, 0.45, 0.45]  # mean 0.45


def write_small(spark, ctx, *, due_scores: bool, ordered: list[str], gender: bool = False) -> None:
    """Six consenting customers, all in one segment, no date of birth; features and segments of AS_OF only;
    scores of AS_OF and (``due_scores``) of the due date with the same values, then orders of
    ``ordered`` inside the due scores' window."""
    lh = ctx.lakehouse
    c360 = spark.createDataFrame(
        [("us", c, AS_OF, True, "loyal", s, s >= 0.5) for c, s in zip(SMALL, SMALL_DUE_SCORES)], C360_SCHEMA,
    )
    if gender:
        c360 = c360.withColumn("gender", F.when(F.col("customer_id").isin("s5", "s6"), "m").otherwise("f"))
    lh.write(c360, "gold.customer_360", mode="overwrite", partition_by=["region"])
    lh.write(spark.createDataFrame([("us", c, AS_OF, "fs-1", "gold-1", 1, 2.0, 3, "web", False) for c in SMALL], FEATURES_SCHEMA),
             "gold.customer_features", mode="overwrite", partition_by=["region", "as_of_date"])
    days = [SCORED_DUE, AS_OF] if due_scores else [AS_OF]
    lh.write(spark.createDataFrame([("us", c, d, s, s >= 0.5, 0.5, "1") for d in days for c, s in zip(SMALL, SMALL_DUE_SCORES)],
                                   SCORES_SCHEMA), "gold.churn_scores", mode="overwrite", partition_by=["region", "as_of_date"])
    lh.write(spark.createDataFrame([("us", c, AS_OF, "loyal", "LOYAL") for c in SMALL], SEGMENTS_SCHEMA),
             "gold.customer_segments", mode="overwrite", partition_by=["region", "as_of_date"])
    if due_scores:
        lh.write(spark.createDataFrame([("us", c, f"o-{c}", datetime(2026, 6, 1, 9)) for c in ordered], ORDERS_SCHEMA),
                 "silver.orders", mode="overwrite", partition_by=["region"])


def test_realized_churn_beyond_tolerance_alerts_and_fail_on_alert_makes_it_an_error(spark, tmp_path):
    # nobody ordered: realized 1.0 against 0.45 predicted (the rich run above shows alerts without
    # fail_on_alert leave result.errors empty)
    ctx = context(spark, tmp_path, "monitoring.fail_on_alert=true", run_id="late-1")
    write_small(spark, ctx, due_scores=True, ordered=[], gender=True)
    result = run(ctx, now=NOW)
    assert result.errors == ["1 monitoring alert(s) raised and --fail-on-alert is set (see ops.alerts)"]
    assert result.lines == [
        "us as of 2026-06-30: 0 score rows of customers without profiling consent deleted",
        "  features: no earlier as-of date to compare with",
        "  churn scores: PSI 0.0 against 2026-04-01 (stable)",
        "  realized churn of the 2026-04-01 scores: 100.0% vs 45.0% predicted (6 customers)",
        "  segments: no scoring 28+ days before to compare with",
        # gender is audited where customer_360 has it; 6 customers are below min_group_size 30: nothing flagged
        "  fairness: 12 rows over age_band, gender, 0 flagged",
        "alerts: 1 (in ops.alerts)",
        "  ALERT us realized_churn: 100.0% of the customers scored on 2026-04-01 churned, 45.0% predicted",
    ]
    assert_approx_df_equality(
        plain(ctx.lakehouse.read(ALERTS)),
        spark.createDataFrame(
            [("late-1", NOW, AS_OF, "realized_churn", "scores of 2026-04-01", 0.55, "|realized - predicted| <= 0.1",
              "100.0% of the customers scored on 2026-04-01 churned, 45.0% predicted", "us")],
            ALERTS_SCHEMA,
        ),
        PRECISION, ignore_nullable=True,
    )


def test_realized_churn_within_tolerance_no_alert_and_fail_on_alert_passes(spark, tmp_path):
    # s1-s3 ordered: realized 0.5 against 0.45 predicted, inside the 0.1 tolerance
    ctx = context(spark, tmp_path, "monitoring.fail_on_alert=true", run_id="calm-1", as_of=AS_OF)
    write_small(spark, ctx, due_scores=True, ordered=["s1", "s2", "s3"])
    result = run(ctx, now=NOW)
    assert result.errors == []
    assert result.metrics == [Metric("us", "alerts", 0, ALERTS)]
    assert result.lines == [
        "us as of 2026-06-30: 0 score rows of customers without profiling consent deleted",
        "  features: no earlier as-of date to compare with",
        "  churn scores: PSI 0.0 against 2026-04-01 (stable)",
        "  realized churn of the 2026-04-01 scores: 50.0% vs 45.0% predicted (6 customers)",
        "  segments: no scoring 28+ days before to compare with",
        "  fairness: 4 rows over age_band, 0 flagged; not audited (no source provides it): gender",
        "alerts: 0",
    ]
    assert not ctx.lakehouse.exists(ALERTS)
    expected = spark.createDataFrame(
        [
            ("calm-1", AS_OF, SCORED_DUE, "score_psi", "churn_score", 0.0, "stable", "us"),
            ("calm-1", AS_OF, SCORED_DUE, "realized_minus_predicted_churn", "churn_score", 0.05, "ok", "us"),
        ],
        DRIFT_SCHEMA,
    )
    assert_approx_df_equality(plain(ctx.lakehouse.read(DRIFT_METRICS)), expected, PRECISION, ignore_row_order=True, ignore_nullable=True)
    # no date of birth: every customer is in the unknown age band, which is its own reference and never flagged
    report = ctx.lakehouse.read(FAIRNESS_REPORT).select("group", "metric", "value", "reference_group", "members", "flagged")
    assert_approx_df_equality(
        plain(report),
        spark.createDataFrame(
            [("unknown", "churn_predicted_rate", 1 / 6, "unknown", 6, False), ("unknown", "mean_churn_score", 0.45, "unknown", 6, False),
             ("unknown", "segment_share:loyal", 1.0, "unknown", 6, False),
             # on the realized outcomes of the due scores: the one churned customer was not predicted
             ("unknown", "true_positive_rate", 0.0, "unknown", 6, False)],
            "group string, metric string, value double, reference_group string, members long, flagged boolean",
        ),
        PRECISION, ignore_row_order=True, ignore_nullable=True,
    )


def test_nothing_earlier_to_compare_with_still_runs_and_says_so(spark, tmp_path):
    ctx = context(spark, tmp_path, "monitoring.fail_on_alert=true", run_id="first-1")
    write_small(spark, ctx, due_scores=False, ordered=[])
    result = run(ctx, now=NOW)
    assert result.errors == []
    assert result.lines == [
        "us as of 2026-06-30: 0 score rows of customers without profiling consent deleted",
        "  features: no earlier as-of date to compare with",
        "  churn scores: no earlier scoring to compare with",
        "  realized churn: no scores older than the 90-day horizon yet",
        "  segments: no scoring 28+ days before to compare with",
        "  fairness: 3 rows over age_band, 0 flagged; not audited (no source provides it): gender",
        "alerts: 0",
    ]
    assert not ctx.lakehouse.exists(ALERTS)
    assert not ctx.lakehouse.exists(DRIFT_METRICS)
    assert ctx.lakehouse.read(FAIRNESS_REPORT).select("run_id").distinct().collect() == [("first-1",)]


def test_missing_customer_360_is_refused(spark, tmp_path):
    ctx = context(spark, tmp_path)
    with pytest.raises(MonitoringInputError, match=r"gold\.customer_360 does not exist: run the gold stage first"):
        run(ctx, now=NOW)
    for table in (ALERTS, DRIFT_METRICS, FAIRNESS_REPORT):
        assert not ctx.lakehouse.exists(table)



# --- age bands from the vault (the stage's date_of_birth name clash) ------------------------------

# customer: date of birth in the us vault (age on 2026-06-30), churn predicted
AGES = {
    "a1": ("1986-03-10", True),  # 40: 35-44
    "a2": ("1986-03-10", False),  # 40: 35-44 (the same token as a1: the vault holds a value once)
    "a3": ("1990-01-01", False),  # 36: 35-44
    "b1": ("2001-07-01", True),  # 25 tomorrow: still 24, 18-24
    "b2": ("2001-06-30", False),  # 25 today: 25-34
    "b3": ("1950-02-01", True),  # 76: 65+
    "u1": ("2010-05-05", False),  # 16: below every band, unknown
    "u2": (None, True),  # the vault has only an email under its token: unknown
    "u3": ("de-only", False),  # the token's date of birth is in de's vault only: unknown
}


def test_fairness_age_bands_from_the_vault(spark, tmp_path):
    ctx = context(spark, tmp_path, "monitoring.fairness.min_group_size=1", run_id="ages-1")
    token = {c: f"dob-{dob}" if dob else f"email-{c}" for c, (dob, _) in AGES.items()}
    c360 = [("us", c, AS_OF, True, token[c], "loyal", 0.7 if p else 0.2, p) for c, (_, p) in AGES.items()]
    vault = [(f"dob-{dob}", "date_of_birth", dob, "id-1", "us") for dob in {dob for dob, _ in AGES.values()} if dob and dob != "de-only"]
    vault += [("email-u2", "email", "u2@example.com", "id-1", "us"), ("dob-de-only", "date_of_birth", "1986-03-10", "id-1", "de")]
    ctx.lakehouse.write(spark.createDataFrame(c360, C360_SCHEMA.replace("boolean, ", "boolean, date_of_birth string, ", 1)),
                        "gold.customer_360", mode="overwrite", partition_by=["region"])
    ctx.lakehouse.write(spark.createDataFrame(vault, VAULT_SCHEMA), "silver.pii_vault", mode="overwrite", partition_by=["region"])
    result = run(ctx, now=NOW)
    # churn_predicted_rate, mean_churn_score and segment_share:loyal (1.0 everywhere) for 5 groups;
    # 18-24 and 65+ (rate 1 vs 1/3: DI 3) and 25-34 (rate 0: DI 0) flagged
    assert "  fairness: 15 rows over age_band, 3 flagged; not audited (no source provides it): gender" in result.lines
    report = ctx.lakehouse.read(FAIRNESS_REPORT).where(F.col("metric") == "churn_predicted_rate")
    assert_approx_df_equality(
        plain(report.select("group", "value", "reference_group", "disparate_impact", "members", "flagged")),
        spark.createDataFrame(
            [("18-24", 1.0, "35-44", 3.0, 1, True), ("25-34", 0.0, "35-44", 0.0, 1, True), ("35-44", 1 / 3, "35-44", 1.0, 3, False),
             ("65+", 1.0, "35-44", 3.0, 1, True), ("unknown", 1 / 3, "35-44", 1.0, 3, False)],
            "group string, value double, reference_group string, disparate_impact double, members long, flagged boolean",
        ),
        PRECISION, ignore_row_order=True, ignore_nullable=True,
    )
