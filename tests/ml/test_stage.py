"""The ml stages end to end on generated data: training tracked in MLflow with a champion alias,
promotion only on a better validation score, stable segment ids, scoring into the gold tables and
customer_360, consent, cold start, and the refusals (stale features, too little data)."""
from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pyspark.sql.functions as F
import pytest

from customer360 import tables
from customer360.config import load_config
from customer360.ml import stage as ml
from customer360.ml import tracking
from customer360.context import build_context
from customer360.features.store import region_feature_set_version

from tests.conftest import CONF_DIR, raw_contact_values

pytestmark = pytest.mark.slow

from tests.conftest import ML_FAST as FAST


def _context(spark, root, data, *extra, run_id="ml-1"):
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={root / 'lh'}", f"ingest.landing_root={data.sources}", "pipeline.regions=[us]", *FAST, *extra],
    )
    return build_context(config, spark=spark, regions=["us"], run_id=run_id)


@pytest.fixture(scope="module")
def trained(scored_sample):
    """The shared sample's us region trained and scored once per run (tests/conftest.py)."""
    return scored_sample


def example_of(name: str):
    uri = f"models:/{name}@champion"
    return mlflow.models.Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))


def _client(ctx):
    return tracking.configure(ctx.config)


def test_first_run_trains_registers_and_promotes_both_models(trained):
    root, _, ctx, result = trained
    assert result.errors == []
    client = _client(ctx)
    assert tracking.tracking_uri(ctx.config) == f"sqlite:///{root / 'lh' / '_mlflow' / 'mlflow.db'}"
    seg = client.get_model_version_by_alias("c360_us_segmentation", "champion")
    churn = client.get_model_version_by_alias("c360_us_churn", "champion")
    assert (str(seg.version), str(churn.version)) == ("1", "1")

    seg_run = client.get_run(seg.run_id)
    features_version = region_feature_set_version(ctx, "us")
    assert seg_run.data.params["feature_set_version"] == features_version
    assert seg_run.data.params["as_of"] == "2026-06-30"
    # the Delta versions read are logged, and they are versions the table really has
    logged = int(seg_run.data.params["input_version.gold.customer_features"])
    assert 0 <= logged <= ctx.lakehouse.version(tables.CUSTOMER_FEATURES)
    # every candidate k is logged with its silhouette and cost; the chosen k is one of them
    steps = sorted(m.step for m in client.get_metric_history(seg.run_id, "candidate_silhouette"))
    assert steps == [3, 4] and seg_run.data.metrics["k"] in (3, 4)
    assert seg_run.data.metrics["elbow_k"] in (3, 4)
    assert "ari_bootstrap_mean" in seg_run.data.metrics and "ari_previous_as_of" in seg_run.data.metrics

    churn_run = client.get_run(churn.run_id)
    metrics, params = churn_run.data.metrics, churn_run.data.params
    # every candidate and the baseline back-tested on two folds (ML_FAST), a third tunes logistic's reg_param
    means = {name: metrics[f"backtest.{name}.roc_auc"] for name in ("gbt", "logistic", "random_forest", "recency")}
    assert all(0.0 <= v <= 1.0 for v in means.values())
    assert json.loads(params["validation_cutoffs"]) == ["2026-04-01", "2026-01-01"]
    # the deployed candidate is the best by mean, and it is a model only when it beats the baseline
    best = max(means, key=means.get)
    assert params["deployed"] == best and metrics["backtest.mean"] == means[best]
    # refit on the newest labelled window: features as of T - H, outcomes up to T
    assert params["training_cutoff"] == "2026-04-01" and params["calibration"] in ("platt", "isotonic")
    assert metrics["threshold"] == pytest.approx(15.0 / (0.5 * 120.0))  # conf/base.yaml churn_costs
    table = tracking.load_json(churn.run_id, "backtest.json")
    assert sorted({(r["fold"], r["reported"]) for r in table}) == [(0, True), (1, True), (2, False)]
    # 2 reported folds x (gbt, logistic at 2 reg_params, random_forest, recency); the third fold only tunes logistic
    assert len(table) == 2 * 5 + 2 and {r["candidate"] for r in table if not r["reported"]} == {"logistic"}
    assert sum(r["selected"] for r in table) == 2 * 4
    reliability = tracking.load_json(churn.run_id, "calibration.json")
    assert reliability["held_out"] is True and reliability["method"] == params["calibration"]
    assert sum(b["rows"] for b in reliability["bins"]) == metrics["newest_fold.rows"]
    # the back-test as an MLflow table (same rows) and the reliability diagram as an image
    logged = mlflow.artifacts.load_dict(f"runs:/{churn.run_id}/backtest_table.json")
    assert len(logged["data"]) == len(table) and sorted(logged["columns"]) == sorted(table[0])  # the JSON's keys are sorted
    assert [dict(zip(logged["columns"], r)) for r in logged["data"]] == table
    png = Path(mlflow.artifacts.download_artifacts(f"runs:/{churn.run_id}/calibration.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    text = "\n".join(result.lines)
    assert "us: churn back-test over 2 folds (H 90 d, roc auc; tuning on the next older fold):" in text
    assert re.search(r"^    recency \(baseline\) +0\.\d{3}   0\.\d{3} 0\.\d{3}", text, re.M)
    assert "registered c360_us_churn v1 (champion)" in text
    # the model loads back from the registry: the deployed pipeline ends in its calibrator
    model = mlflow.spark.load_model("models:/c360_us_churn@champion")
    calibrators = {"platt": "GeneralizedLinearRegressionModel", "isotonic": "IsotonicRegressionModel"}
    assert model.stages[-1].__class__.__name__ == calibrators[params["calibration"]]
    # both registered models carry a signature (Unity Catalog requires one) and an input example
    features = json.loads(params["features"])
    for name, inputs in (("c360_us_churn", features), ("c360_us_segmentation", [f.name for f in ctx.config.ml.segmentation.features])):
        info = mlflow.models.get_model_info(f"models:/{name}@champion")
        assert info.signature.inputs.input_names() == inputs and info.signature.outputs.input_names() == ["prediction"]
        example = example_of(name)
        assert list(example.columns) == inputs and len(example) == 1
    # the example's prediction is the model's: a probability for churn
    scored = mlflow.pyfunc.load_model("models:/c360_us_churn@champion").predict(example_of("c360_us_churn"))
    assert len(scored) == 1 and 0.0 <= float(list(scored)[0]) <= 1.0


def test_no_raw_contact_detail_or_customer_id_reaches_mlflow(trained, tmp_path):
    # params, tags, metric names and every artifact file of every run (Parquet files of the saved
    # models decoded): no raw email or phone, and no customer id, so an erasure has nothing to
    # remove from MLflow (governance/erasure.py)
    _, data, ctx, _ = trained
    client = _client(ctx)
    raw = raw_contact_values(data.sources)
    ids = {r[0] for r in ctx.lakehouse.read("silver.customer_xref").select("customer_id").distinct().collect()}
    texts, files, parquet = [], 0, 0
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            texts += [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(sorted(run.data.metrics))]
            local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / run.info.run_id))
            for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
                if path.suffix == ".parquet":
                    texts.append(repr(pq.read_table(path).to_pylist()))
                    parquet += 1
                else:
                    texts.append(path.read_bytes().decode("utf-8", "replace"))
                files += 1
    assert len(raw) > 100 and len(ids) > 100 and files >= 4 and parquet >= 2
    said = "\n".join(texts)
    assert sorted(v for v in raw if v in said) == []
    assert sorted(v for v in ids if v in said) == []


def test_scores_cover_exactly_the_customers_who_may_be_profiled(trained):
    _, _, ctx, _ = trained
    lh = ctx.lakehouse
    features = lh.read(tables.CUSTOMER_FEATURES).where("region = 'us' AND as_of_date = DATE'2026-06-30'")
    c360 = lh.read(tables.CUSTOMER_360).where("region = 'us'")
    allowed = {r[0] for r in c360.where("profiling_consent").select("customer_id").collect()}
    refused = {r[0] for r in c360.where("NOT profiling_consent").select("customer_id").collect()}
    assert refused, "the sample should have customers without profiling consent"
    expected = {r[0] for r in features.select("customer_id").collect()} & allowed
    segments = lh.read(tables.CUSTOMER_SEGMENTS).where("region = 'us'")
    scores = lh.read(tables.CHURN_SCORES).where("region = 'us'")
    assert sorted(r[0] for r in segments.select("customer_id").collect()) == sorted(expected)
    assert sorted(r[0] for r in scores.select("customer_id").collect()) == sorted(expected)
    assert {tuple(r) for r in segments.select("model_name", "model_version").distinct().collect()} == {("c360_us_segmentation", "1")}
    assert {tuple(r) for r in scores.select("model_name", "model_version").distinct().collect()} == {("c360_us_churn", "1")}

    # cold-start customers get the documented score: the observed rate logged with the model
    client = _client(ctx)
    meta = tracking.load_json(client.get_model_version_by_alias("c360_us_churn", "champion").run_id, "churn.json")
    cold = scores.join(features.select("customer_id", "is_cold_start"), "customer_id")
    assert cold.where("is_cold_start <> is_cold_start_score").count() == 0
    cold_scores = [r[0] for r in cold.where("is_cold_start_score").select("churn_score").distinct().collect()]
    assert cold_scores == [pytest.approx(meta["cold_start_score"])]
    assert scores.where(F.col("churn_predicted") != (F.col("churn_score") >= F.col("threshold"))).count() == 0
    assert scores.where("churn_score < 0 OR churn_score > 1").count() == 0

    # customer_360 carries the same values; refused customers stay null
    joined = c360.join(scores.select("customer_id", F.col("churn_score").alias("s")), "customer_id", "left").join(
        segments.select("customer_id", F.col("segment").alias("g")), "customer_id", "left"
    )
    assert joined.where("NOT (churn_score <=> s) OR NOT (segment <=> g)").count() == 0
    assert joined.where("NOT profiling_consent AND (segment IS NOT NULL OR churn_score IS NOT NULL)").count() == 0
    assert c360.where("profiling_consent AND features_as_of IS NOT NULL AND segment IS NULL").count() == 0
    assert {r[0] for r in c360.where("segment IS NOT NULL").select("segment_model_version").distinct().collect()} == {"c360_us_segmentation/1"}


def test_segment_profiles_add_up_and_rules_come_first(trained):
    _, _, ctx, _ = trained
    profiles = ctx.lakehouse.read(tables.SEGMENT_PROFILES).where("region = 'us' AND model_version = '1'").collect()
    assert sum(p.customers for p in profiles) == ctx.lakehouse.read(tables.CUSTOMER_SEGMENTS).where("region = 'us'").count()
    assert sum(p.share_of_customers for p in profiles) == pytest.approx(1.0)
    assert sum(p.share_of_revenue for p in profiles) == pytest.approx(1.0)
    rules = [p for p in profiles if p.assigned_by == "rule"]
    assert [p.segment for p in sorted(rules, key=lambda p: p.segment_id)] == ["Prospects", "New customers", "Dormant"]
    clusters = [p for p in profiles if p.assigned_by == "cluster"]
    assert len({p.segment for p in profiles}) == len(profiles)  # names are unique within the region
    assert all(p.centroid and len(p.distinguishing_features) == 3 for p in clusters if p.customers)
    # a customer with no orders is a prospect, whatever a model would say
    segments = ctx.lakehouse.read(tables.CUSTOMER_SEGMENTS).where("region = 'us'")
    features = ctx.lakehouse.read(tables.CUSTOMER_FEATURES).where("region = 'us' AND as_of_date = DATE'2026-06-30'")
    no_orders = segments.join(features.where("coalesce(orders_total, 0) = 0").select("customer_id"), "customer_id")
    assert {r[0] for r in no_orders.select("segment").distinct().collect()} == {"Prospects"}


def test_a_retrain_on_the_same_data_keeps_the_champions_and_the_segment_ids(trained, spark):
    root, data, ctx, _ = trained
    again = dataclasses.replace(ctx, run_id="ml-2")
    result = ml.train(again)
    assert result.errors == []
    text = "\n".join(result.lines)
    # same data and seeds: the new models tie the champions, and a tie does not promote
    assert "c360_us_segmentation v2 (kept champion v1" in text
    assert "c360_us_churn v2 (kept champion v1" in text
    client = _client(ctx)
    assert str(client.get_model_version_by_alias("c360_us_churn", "champion").version) == "1"
    assert client.get_run(client.get_model_version("c360_us_churn", "2").run_id).data.tags["promoted"] == "false"
    # the churn model that was not promoted is the challenger (ml.churn.shadow); segmentation has none
    assert "c360_us_churn v2 (kept champion v1 (back-tested " in text and "; challenger, scored in shadow)" in text
    assert str(tracking.challenger(client, "c360_us_churn").version) == "2"
    assert tracking.challenger(client, "c360_us_segmentation") is None
    profiles = ctx.lakehouse.read(tables.SEGMENT_PROFILES).where("region = 'us'")
    by_version = {
        v: sorted((r.segment_id, r.segment, r.customers) for r in profiles.where(F.col("model_version") == v).collect())
        for v in ("1", "2")
    }
    assert by_version["1"] == by_version["2"]


def test_promote_swaps_champion_and_challenger_and_refuses_what_it_cannot(trained, spark):
    from customer360.ml.stage import ScoringError

    _, _, ctx, _ = trained
    client = _client(ctx)

    def aliases():
        return str(tracking.champion(client, "c360_us_churn").version), str(tracking.challenger(client, "c360_us_churn").version)

    assert aliases() == ("1", "2")  # the retrain above
    result = ml.promote(dataclasses.replace(ctx, run_id="promote-1"))
    assert (result.errors, result.lines) == ([], ["us: c360_us_churn v2 is now the champion; v1 becomes the challenger (scored in shadow)"])
    assert aliases() == ("2", "1")
    assert client.get_model_version("c360_us_churn", "2").tags["promoted_by"] == "c360 promote"
    # the same way back, by version
    result = ml.promote(dataclasses.replace(ctx, run_id="promote-2"), version="1")
    assert result.errors == [] and aliases() == ("1", "2")
    for version, error in (
        ("1", "us: nothing promoted: c360_us_churn v1 is already the champion"),
        ("99", "us: nothing promoted: c360_us_churn has no version 99"),
    ):
        assert ml.promote(ctx, version=version).errors == [error]
    assert aliases() == ("1", "2")
    with pytest.raises(ScoringError, match="--version names one region's model version; 2 regions are selected"):
        ml.promote(dataclasses.replace(ctx, regions=("us", "de")), version="2")
    # a challenger trained on other features than today's could not score them
    root, data, _, _ = trained
    changed = _context(spark, root, data, "features.outlier_z=3.0", run_id="promote-3")
    [error] = ml.promote(changed).errors
    assert re.fullmatch(r"us: nothing promoted: c360_us_churn v2 was trained on features fs-[0-9a-f]+ \(format 2\); "
                        r"today's are fs-[0-9a-f]+: it could not score them", error)
    assert aliases() == ("1", "2")


def test_scoring_another_date_writes_that_date_and_leaves_the_360_alone(trained):
    _, _, ctx, _ = trained
    lh = ctx.lakehouse
    c360_before = sorted(map(tuple, lh.read(tables.CUSTOMER_360).where("region = 'us'").collect()), key=repr)
    result = ml.score(dataclasses.replace(ctx, as_of=date(2026, 5, 31), run_id="ml-5"))
    assert result.errors == []
    # the challenger of the retrain above scored the same customers in shadow; the decisions are the champion's
    day = "region = 'us' AND as_of_date = DATE'2026-05-31'"
    champion = lh.read(tables.CHURN_SCORES).where(day)
    shadow = lh.read(tables.CHURN_SCORES_SHADOW).where(day)
    assert {r[0] for r in champion.select("model_version").distinct().collect()} == {"1"}
    assert {r[0] for r in shadow.select("model_version").distinct().collect()} == {"2"}
    keys = ["customer_id", "is_cold_start_score", "threshold", "horizon_days", "run_id"]
    assert sorted(map(tuple, shadow.select(*keys).collect())) == sorted(map(tuple, champion.select(*keys).collect()))
    assert shadow.where("churn_score < 0 OR churn_score > 1 OR churn_predicted != (churn_score >= threshold)").count() == 0
    assert f"us: challenger c360_us_churn v2 scored {shadow.count():,} customers in shadow (gold.churn_scores_shadow; no decision uses them)" in result.lines
    dates = {r[0] for r in lh.read(tables.CHURN_SCORES).where("region = 'us'").select("as_of_date").distinct().collect()}
    assert dates == {date(2026, 5, 31), date(2026, 6, 30)}
    assert sorted(map(tuple, lh.read(tables.CUSTOMER_360).where("region = 'us'").collect()), key=repr) == c360_before


def test_scoring_refuses_features_of_another_version(trained, spark):
    root, data, _, _ = trained
    changed = _context(spark, root, data, "features.outlier_z=3.0", run_id="ml-3")
    result = ml.score(changed)
    assert len(result.errors) == 1
    assert re.fullmatch(
        r"us: not scored: region us: c360_us_segmentation v1 was trained on features fs-[0-9a-f]+, "
        r"but the features are now fs-[0-9a-f]+: run `c360 train --region us`", result.errors[0]
    )
    # c360 run (ml stage, retrain if_missing) treats stale champions as missing and retrains
    assert ml._needs_training(changed, tracking.configure(changed.config), "us")


def test_too_little_data_is_reported_per_region(trained, spark):
    root, data, _, _ = trained
    greedy = _context(spark, root, data, "regions.us.segment_count={min: 40, max: 50}", run_id="ml-4")
    result = ml.train(greedy)
    assert len(result.errors) == 1
    assert result.errors[0].startswith("us: training failed: region us: only ")
    assert "40 segments need at least 400" in result.errors[0]


def test_lifetime_value_of_the_profiled_buyers_and_its_finance_mart(trained):
    from customer360.ml import clv

    _, _, ctx, result = trained
    lh = ctx.lakehouse
    value = lh.read(tables.CUSTOMER_CLV).where("region = 'us' AND as_of_date = DATE'2026-06-30'")
    scores = lh.read(tables.CHURN_SCORES).where("region = 'us' AND as_of_date = DATE'2026-06-30'")
    features = lh.read(tables.CUSTOMER_FEATURES).where("region = 'us' AND as_of_date = DATE'2026-06-30'")
    # exactly the scored (profiled) customers with an order by the as-of date
    buyers = scores.join(features.where("orders_total > 0").select("customer_id"), "customer_id").select("customer_id")
    assert sorted(r[0] for r in value.select("customer_id").collect()) == sorted(r[0] for r in buyers.collect())
    assert value.where("p_alive < 0 OR p_alive > 1 OR clv < 0 OR expected_purchases < 0").count() == 0
    assert {tuple(r) for r in value.select("horizon_days", "reporting_currency").distinct().collect()} == {(365, "EUR")}
    # the values are the logged models' formulas on each customer's history
    client = _client(ctx)
    runs = client.search_runs(
        [tracking.experiment_id(ctx.config, "clv")], "tags.region = 'us' AND params.as_of = '2026-06-30'", order_by=["attributes.start_time DESC"]
    )
    m = runs[0].data.metrics
    bg = clv.BgNbdParams(m["bgnbd.r"], m["bgnbd.alpha"], m["bgnbd.a"], m["bgnbd.b"], m["bgnbd.log_likelihood"], m["bgnbd.n"])
    gg = clv.GammaGammaParams(m["gamma_gamma.p"], m["gamma_gamma.q"], m["gamma_gamma.v"], m["gamma_gamma.log_likelihood"], m["gamma_gamma.n"])
    rows = value.orderBy("customer_id").limit(25).toPandas()
    expected = clv.lifetime_value(bg, gg, rows["frequency"], rows["recency_days"], rows["age_days"], rows["monetary_value"],
                                  horizon_days=365, discount_rate_annual=0.10)
    assert list(rows["clv"]) == pytest.approx(list(expected), rel=1e-9)
    # customer_360 carries them; the finance mart adds up to the table per segment
    c360 = lh.read(tables.CUSTOMER_360).where("region = 'us'")
    joined = c360.join(value.select("customer_id", F.col("clv").alias("v")), "customer_id", "left")
    assert joined.where("NOT (clv <=> v)").count() == 0
    mart = lh.read(tables.CLV_BY_SEGMENT).where("region = 'us' AND as_of_date = DATE'2026-06-30'")
    totals = mart.agg(F.sum("customers"), F.sum("clv_total")).first()
    assert totals[0] == value.count()
    assert totals[1] == pytest.approx(value.agg(F.sum("clv")).first()[0], abs=0.01 * mart.count())
    segments = {r[0] for r in lh.read(tables.CUSTOMER_SEGMENTS).where("region = 'us'").select("segment").distinct().collect()}
    assert {r[0] for r in mart.select("segment").collect()} <= segments
    assert any(line.startswith("us: lifetime value of ") for line in result.lines)


def test_time_to_churn_of_the_profiled_buyers_past_cold_start(trained, spark):
    import mlflow.pyfunc

    _, _, ctx, result = trained
    lh = ctx.lakehouse
    day = "region = 'us' AND as_of_date = DATE'2026-06-30'"
    lifetime = lh.read(tables.CUSTOMER_SURVIVAL).where(day)
    scores = lh.read(tables.CHURN_SCORES).where(day + " AND NOT is_cold_start_score")
    features = lh.read(tables.CUSTOMER_FEATURES).where(day)
    # exactly the model-scored buyers; active means the last order is less than 90 days before the
    # end of the as-of day (2026-07-01 00:00 UTC), to the microsecond
    end = 1_782_864_000 * 1_000_000  # 2026-07-01T00:00:00Z
    last = lh.read(tables.SILVER_ORDERS).where("region = 'us'").select("customer_id", F.unix_micros("ordered_at").alias("t")).where(
        F.col("t") < end).groupBy("customer_id").agg(F.max("t").alias("last"))
    buyers = scores.join(features.where("orders_total > 0"), "customer_id").join(last, "customer_id").select("customer_id", "last")
    assert sorted(r[0] for r in lifetime.select("customer_id").collect()) == sorted(r[0] for r in buyers.collect())
    joined = lifetime.join(buyers, "customer_id")
    assert joined.where(F.col("status") != F.when(F.col("last") > end - 90 * 86_400_000_000, "active").otherwise("lapsed")).count() == 0
    assert joined.where("status = 'lapsed' AND NOT (expected_remaining_days = 0 AND median_remaining_days = 0)").count() == 0
    active = joined.where("status = 'active'")
    assert active.count() > 20 and active.where("NOT (expected_remaining_days > 0 AND median_remaining_days > 0)").count() == 0
    assert {tuple(r) for r in lifetime.select("gap_days", "model_version").distinct().collect()} == {(90, "1")}
    # the survival model deployed with the churn champion: held-out concordance logged, better than chance
    client = _client(ctx)
    churn = client.get_model_version_by_alias("c360_us_churn", "champion")
    metrics = client.get_run(churn.run_id).data.metrics
    meta = tracking.load_json(churn.run_id, "churn.json")
    assert meta["survival"]["gap_days"] == 90 and meta["survival"]["concordance"] == pytest.approx(metrics["survival.concordance"])
    assert 0.55 < metrics["survival.concordance"] <= 1.0
    assert 0 < metrics["survival.valid_churned"] < 1 and metrics["survival.train_rows"] > 50
    assert any(re.fullmatch(r"  time to churn \(Weibull AFT\): concordance 0\.\d{3} held out \([\d,]+ active customers at 2026-04-01, "
                            r"\d+% churned by 2026-06-30\); refit on them", line) for line in result.lines)
    # pyfunc loads it with its signature and answers the expected remaining days of the table
    model = mlflow.pyfunc.load_model(f"runs:/{churn.run_id}/survival")
    names = [c.name for c in model.metadata.get_input_schema().inputs]
    assert names == list(ctx.config.ml.churn.features)
    some = active.orderBy("customer_id").limit(5).select("customer_id", "expected_remaining_days")
    rows = features.join(some, "customer_id").orderBy("customer_id").toPandas()
    predicted = model.predict(rows[names].astype("float64"))
    assert list(predicted.iloc[:, 0] if hasattr(predicted, "iloc") else predicted) == pytest.approx(list(rows["expected_remaining_days"]), rel=1e-9)
    # customer_360 carries the expected remaining days
    c360 = lh.read(tables.CUSTOMER_360).where("region = 'us'")
    both = c360.join(lifetime.select("customer_id", F.col("expected_remaining_days").alias("e")), "customer_id", "left")
    assert both.where("NOT (expected_remaining_days <=> e)").count() == 0
    assert any(line.startswith("us: time to churn of ") and "lapsed (gold.customer_survival)" in line for line in result.lines)
