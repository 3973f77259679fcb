"""How well can any churn model trained on a labelled window rank the generator's true churners?

    .venv/bin/python benchmarks/experiments/churn_truth_bound.py WORKDIR [--out FILE]

WORKDIR is a ``benchmarks/ml.py`` work folder (its lakehouse through ml training, so that
gold.customer_features holds the scoring date T and the deployment cut-off T - H). For each region,
on the buyers past cold start at T, ROC AUC against the generator's ``churned`` flag of:

- ``recency``: days since the last order at T (the rule the issue compares with);
- ``label_model``: the churn logistic regression (ml.churn.logistic, class weights, its feature
  preparation) fitted at T - H on the label "no order in (T - H, T]" (the deployed model's label and
  window), applied at T;
- ``activity_label_model``: the same, labelled "no order and no web session in (T - H, T]";
- ``truth_at_cutoff``: the same model trained on the *true* churn flags at T - H, applied at T: the
  best any label at that cut-off could teach;
- ``truth_at_T``: trained on the true flags at T itself (2 folds by a hash of the customer id, AUC averaged): what today's
  features hold, which no model trained on an observable label can be given.

An experiment, not a benchmark: it reads the truth that no pipeline stage may see.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import REGIONS, pipeline_context, sample_config  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    import pyspark.sql.functions as F
    from pyspark.sql import Window

    from customer360.ml import churn
    from customer360.ml.metrics import binary_metrics
    from customer360.tables import CUSTOMER_FEATURES, CUSTOMER_XREF, SILVER_ORDERS

    work = Path(args.workdir).resolve()
    config = sample_config(work)
    ctx = pipeline_context(config, run_id="truth-bound")
    spark, lh = ctx.spark, ctx.lakehouse
    settings = config.ml.churn
    features = list(settings.features)
    truth_dir = work / "sample" / "truth"
    record_person = spark.read.parquet(str(truth_dir / "record_person.parquet"))
    people = spark.read.parquet(str(truth_dir / "people.parquet")).select("person_id", F.col("churned").cast("double").alias("_truth"))
    votes = (lh.read(CUSTOMER_XREF).join(record_person, ["source", "source_record_id"])
             .groupBy("region", "customer_id", "person_id").count())
    best = Window.partitionBy("region", "customer_id").orderBy(F.desc("count"), "person_id")
    truth = votes.withColumn("_n", F.row_number().over(best)).where("_n = 1").join(people, "person_id").select("region", "customer_id", "_truth")

    def fit(train):  # the deployed logistic regression, as training fits it (class weights, its preparation)
        weighted, _ = churn.with_class_weights(train)
        return churn.model_pipeline("logistic", settings.logistic, features).fit(weighted)

    def auc(model, frame) -> float:
        return binary_metrics(churn.raw_scores(model, frame), score=churn.RAW_SCORE, probability=False).roc_auc

    def as_truth(frame):
        return frame.drop(churn.LABEL).withColumn(churn.LABEL, F.col("_truth"))

    out = {}
    for region in REGIONS:
        horizon = config.regions[region].churn_horizon_days
        mine = lh.read(CUSTOMER_FEATURES).where(F.col("region") == region)
        at = mine.agg(F.max("as_of_date")).first()[0]
        cutoff = at - timedelta(days=horizon)
        orders = lh.read(SILVER_ORDERS).where(F.col("region") == region)

        def buyers(day):  # buyers past cold start with their true churn flag (the truth of the person behind each)
            return churn.trainable(churn.labelled(mine.where(F.col("as_of_date") == F.lit(day)), orders, at=day, horizon_days=horizon)
                                   ).join(truth, ["region", "customer_id"]).persist()

        train, test = buyers(cutoff), as_truth(buyers(at))  # at T the label window is unobserved: only the truth is used
        # sessions started in (T - H, T]: the difference of the two dates' session counts
        sessions = (mine.where(F.col("as_of_date") == F.lit(at)).select("customer_id", F.col("sessions_total").alias("_later"))
                    .join(train.select("customer_id", "sessions_total"), "customer_id")
                    .select("customer_id", (F.coalesce("_later", F.lit(0)) - F.coalesce("sessions_total", F.lit(0))).alias("_sessions")))
        inactive = train.join(sessions, "customer_id", "left").withColumn(
            churn.LABEL, ((F.col(churn.LABEL) == 1.0) & (F.coalesce("_sessions", F.lit(0)) == 0)).cast("double"))
        folds = test.withColumn("_fold", F.abs(F.hash("customer_id")) % 2)
        recency = test.withColumn("_r", F.coalesce(F.col("recency_days").cast("double"), F.lit(0.0)))
        out[region] = {
            "scoring_date": at.isoformat(), "cutoff": cutoff.isoformat(), "customers": test.count(),
            "true_churn_rate": round(test.agg(F.avg(churn.LABEL)).first()[0], 4),
            "label_rate_at_cutoff": round(train.agg(F.avg(churn.LABEL)).first()[0], 4),
            "recency": round(binary_metrics(recency, score="_r", probability=False).roc_auc, 4),
            "label_model": round(auc(fit(train), test), 4),
            "activity_label_rate_at_cutoff": round(inactive.agg(F.avg(churn.LABEL)).first()[0], 4),
            "activity_label_model": round(auc(fit(inactive), test), 4),
            "truth_at_cutoff": round(auc(fit(as_truth(train)), test), 4),
            "truth_at_T": round(sum(auc(fit(folds.where(F.col("_fold") != k)), folds.where(F.col("_fold") == k)) for k in (0, 1)) / 2, 4),
        }
        print(region, json.dumps(out[region]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
