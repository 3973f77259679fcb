"""ML benchmark: training and scoring times, the churn back-test of every candidate, and the
models against the generator's ground truth (latent segments, churn after the data's end).

    .venv/bin/python benchmarks/ml.py --scale 0.1 [--repeats 2] [--out benchmarks/results/ml.json]
    .venv/bin/python benchmarks/ml.py --reuse WORKDIR [--repeats 1]   (a previous run's sample and lakehouse)

Generates the sample at ``--scale`` (seed 42) into a temporary folder and builds it through gold
once; then trains every region ``--repeats`` times (the first run promotes, later runs on the same
data must tie and keep the champions) and scores three times. Truth: each customer is mapped to
the person most of its records belong to; churn truth is the generator's ``churned`` flag (churn
happens after 2026-06-30, the data's end, so it is the future the as-of-2026-06-30 scores predict).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import (  # noqa: E402
    REGIONS, arguments, generate_sample, median_seconds, pipeline_context, repeat_stage, result_head,
    sample_config, work_dir, write_json,
)


def main(argv=None) -> int:
    parser = arguments(__doc__, scale=0.1, repeats=2, out="ml.json")
    parser.add_argument("--evaluate-only", metavar="WORKDIR", default=None,
                        help="skip setup and timing: evaluate a previous run's work folder and update --out")
    parser.add_argument("--reuse", metavar="WORKDIR", default=None,
                        help="skip generating and building the sample: time training and scoring on a previous run's "
                             "work folder (its lakehouse through gold; earlier models stay registered)")
    args = parser.parse_args(argv)

    from customer360.bronze.stage import run as ingest
    from customer360.facts import stage as facts
    from customer360.gold import stage as gold
    from customer360.identity import stage as identity
    from customer360.ml import stage as ml
    from customer360.tables import CUSTOMER_360

    work = work_dir("ml-bench", args.evaluate_only or args.reuse)
    config = sample_config(work)
    truth_dir = work / "sample" / "truth"
    if args.evaluate_only:
        ctx = pipeline_context(config, run_id="bench-evaluate")
        report = json.loads(Path(args.out).read_text())
        report.update(_evaluate(ctx, config, REGIONS, truth_dir))
        write_json(args.out, report)
        print(json.dumps({k: v for k, v in report.items() if k not in ("train", "score")}, indent=2))
        return 0
    ctx = pipeline_context(config, run_id="bench-setup")
    if not args.reuse:
        generate_sample(work / "sample", scale=args.scale, config=config)
        for stage in (ingest, identity.run, facts.run, gold.run):
            stage(ctx)
    spark, lh = ctx.spark, ctx.lakehouse

    runs = {name: repeat_stage(name, stage, config, spark=spark, repeats=repeats, echo_lines=True)
            for name, stage, repeats in (("train", ml.train, args.repeats), ("score", ml.score, 3))}
    train_median = median_seconds(runs["train"])
    score_median = median_seconds(runs["score"])
    report = {
        **result_head("2 cores, local[2], delta-rs engine, MLflow sqlite store", args.scale),
        "customers": lh.read(CUSTOMER_360).count(),
        "train": {"median_seconds": train_median, "runs": runs["train"]},
        "score": {"median_seconds": score_median, "runs": runs["score"]},
        "workdir": str(work),
    }
    write_json(args.out, report)  # the timings survive a failed evaluation
    report.update(_evaluate(ctx, config, REGIONS, truth_dir))
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k not in ("train", "score")}, indent=2))
    print(f"train median {train_median:.1f} s, score median {score_median:.1f} s; written {args.out}")
    return 0


def _evaluate(ctx, config, regions, truth_dir) -> dict:
    """The champions' validation metrics (from MLflow) and the scores against the generator's truth."""
    import mlflow
    import pyspark.sql.functions as F
    from pyspark.sql import Window

    from customer360.ml import tracking
    from customer360.ml.scoring import scoring_date
    from customer360.tables import CHURN_SCORES, CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, CUSTOMER_XREF
    from customer360.ml.metrics import adjusted_rand_index, binary_metrics

    spark, lh = ctx.spark, ctx.lakehouse
    client = tracking.configure(config)
    validation = {}
    for region in regions:
        holder = client.get_model_version_by_alias(tracking.model_name(config, region, "churn"), "champion")
        metrics = client.get_run(holder.run_id).data.metrics
        seg = client.get_model_version_by_alias(tracking.model_name(config, region, "segmentation"), "champion")
        seg_metrics = client.get_run(seg.run_id).data.metrics
        params = client.get_run(holder.run_id).data.params
        validation[region] = {
            "churn_model_version": str(holder.version),
            "deployed": params.get("deployed"), "deployed_params": params.get("deployed.params"), "calibration": params.get("calibration"),
            "validation_cutoffs": params.get("validation_cutoffs"),
            **{k: round(v, 4) for k, v in metrics.items() if k.split(".")[0] in ("backtest", "newest_fold", "at_threshold", "calibration", "survival") or k in ("train_rows", "cold_start_score", "threshold")},
            "segmentation_model_version": str(seg.version),
            **{f"segmentation.{k}": round(v, 4) for k, v in seg_metrics.items() if not k.startswith("candidate")},
        }

    # ---- against the truth
    record_person = spark.read.parquet(str(truth_dir / "record_person.parquet"))
    people = spark.read.parquet(str(truth_dir / "people.parquet")).select("person_id", F.col("segment").alias("latent_segment"), "churned")
    xref = lh.read(CUSTOMER_XREF).select("region", "source", "source_record_id", "customer_id")
    votes = xref.join(record_person, ["source", "source_record_id"]).groupBy("region", "customer_id", "person_id").count()
    best = Window.partitionBy("region", "customer_id").orderBy(F.desc("count"), "person_id")
    person_of = votes.withColumn("_n", F.row_number().over(best)).where("_n = 1").select("region", "customer_id", "person_id")
    truth = person_of.join(people, "person_id")
    segments = lh.read(CUSTOMER_SEGMENTS).join(truth, ["region", "customer_id"])
    scores = lh.read(CHURN_SCORES).join(truth, ["region", "customer_id"]).withColumn("label", F.col("churned").cast("double"))
    features = lh.read(CUSTOMER_FEATURES).where(F.col("as_of_date") == F.lit(scoring_date(ctx, "us")))
    against_truth = {}
    for region in regions:
        mine = F.col("region") == region
        clustered = segments.where(mine & (F.col("assigned_by") == "cluster"))
        model_scored = scores.where(mine & ~F.col("is_cold_start_score"))
        with_recency = model_scored.join(features.select("region", "customer_id", "recency_days"), ["region", "customer_id"])
        against_truth[region] = {
            "ari_segments_vs_latent_all": round(adjusted_rand_index(segments.where(mine), "segment_id", "latent_segment"), 4),
            "ari_clusters_vs_latent": round(adjusted_rand_index(clustered, "segment_id", "latent_segment"), 4),
            "churn_customers_scored_by_model": model_scored.count(),
            "true_churn_rate": round(model_scored.agg(F.avg("label")).first()[0], 4),
            "deployed_roc_auc_vs_true_churn": round(binary_metrics(model_scored, score="churn_score").roc_auc, 4),
            "recency_roc_auc_vs_true_churn": round(binary_metrics(with_recency.withColumn("_r", F.coalesce(F.col("recency_days").cast("double"), F.lit(0.0))), score="_r", probability=False).roc_auc, 4),
            "latent_segment_mix_by_segment": _mix(segments.where(mine)),
        }

    return {"validation": validation, "against_truth": against_truth, "mlflow": mlflow.get_tracking_uri()}


def _mix(df) -> dict[str, dict[str, int]]:
    """Our segment (id and name) -> the generator's latent segment -> customers."""
    out: dict[str, dict[str, int]] = {}
    for r in df.groupBy("segment_id", "segment", "latent_segment").count().orderBy("segment_id", "latent_segment").collect():
        out.setdefault(f"{r['segment_id']} {r['segment']}", {})[r["latent_segment"]] = r["count"]
    return out


if __name__ == "__main__":
    sys.exit(main())
