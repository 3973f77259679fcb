"""Model metrics computed in Spark: adjusted Rand index, ROC/PR AUC, top-decile lift, Brier score,
calibration table. Only small aggregates (a contingency table, ten bins) reach the driver."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pyspark.sql.functions as F
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, Window


def _pairs(n: float) -> float:
    return n * (n - 1) / 2.0


def adjusted_rand_index(df: DataFrame, left: str, right: str) -> float:
    """Hubert-Arabie adjusted Rand index of two labelings of the same rows (1 = identical
    partitions, about 0 = chance). Rows with a null label on either side are left out."""
    rows = df.where(F.col(left).isNotNull() & F.col(right).isNotNull())
    table = rows.groupBy(left, right).agg(F.count(F.lit(1)).alias("n")).collect()
    a: dict = {}
    b: dict = {}
    for r in table:  # the margins come from the contingency table itself: one pass over the rows
        a[r[0]] = a.get(r[0], 0) + r["n"]
        b[r[1]] = b.get(r[1], 0) + r["n"]
    return ari_from_counts([r["n"] for r in table], list(a.values()), list(b.values()))


def ari_from_counts(cells: list[int], row_sums: list[int], column_sums: list[int]) -> float:
    n = sum(cells)
    if n < 2:
        raise ValueError("the adjusted Rand index needs at least two labelled rows")
    index = sum(_pairs(c) for c in cells)
    sum_a, sum_b = sum(_pairs(x) for x in row_sums), sum(_pairs(x) for x in column_sums)
    expected = sum_a * sum_b / _pairs(n)
    maximum = (sum_a + sum_b) / 2.0
    if maximum == expected:  # both labelings trivial (one cluster, or all singletons): identical
        return 1.0
    return (index - expected) / (maximum - expected)


@dataclass(frozen=True)
class BinaryMetrics:
    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    top_decile_lift: float
    brier: float | None  # only for probabilities

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items() if v is not None}


def binary_metrics(df: DataFrame, *, score: str, label: str = "label", probability: bool = True) -> BinaryMetrics:
    """ROC AUC and PR AUC (Spark's evaluator), lift of the top decile (the 10% highest scores, ties
    broken by customer id) and, for probabilities, the Brier score. ``label`` is 1.0 for churn."""
    scored = df.select(F.col(score).cast("double").alias("_score"), F.col(label).cast("double").alias("_label"), "customer_id")
    totals = scored.agg(F.count(F.lit(1)).alias("n"), F.sum("_label").alias("pos"), F.avg((F.col("_score") - F.col("_label")) ** 2).alias("brier")).first()
    n, positives = int(totals["n"]), int(totals["pos"] or 0)
    if n == 0 or positives in (0, n):
        raise ValueError(f"metrics need both classes: {positives} positives among {n} rows")
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="_score", labelCol="_label")
    roc = evaluator.setMetricName("areaUnderROC").evaluate(scored)
    pr = evaluator.setMetricName("areaUnderPR").evaluate(scored)
    ranked = scored.withColumn("_decile", F.ntile(10).over(Window.orderBy(F.desc("_score"), "customer_id")))
    top_rate = ranked.where("_decile = 1").agg(F.avg("_label")).first()[0]
    return BinaryMetrics(
        rows=n, positives=positives, roc_auc=roc, pr_auc=pr,
        top_decile_lift=float(top_rate) / (positives / n),
        brier=float(totals["brier"]) if probability else None,
    )


def lift_table(df: DataFrame, *, score: str, label: str = "label", bins: int = 10) -> list[dict]:
    """The lift curve: customers ranked by score (ties by customer id) into ``bins`` equal groups,
    each with its rows, churn rate, lift (rate / overall rate) and cumulative lift of the groups up
    to it. ``label`` is 1.0 for churn."""
    scored = df.select(F.col(score).cast("double").alias("_score"), F.col(label).cast("double").alias("_label"), "customer_id")
    ranked = scored.withColumn("_bin", F.ntile(bins).over(Window.orderBy(F.desc("_score"), "customer_id")))
    rows = ranked.groupBy("_bin").agg(F.count(F.lit(1)).alias("rows"), F.sum("_label").alias("positives")).orderBy("_bin").collect()
    n = sum(r["rows"] for r in rows)
    positives = sum(r["positives"] or 0 for r in rows)
    if n == 0 or positives == 0:
        raise ValueError(f"a lift curve needs churners: {positives} among {n} rows")
    base = positives / n
    out, seen_rows, seen_pos = [], 0, 0.0
    for r in rows:
        seen_rows += r["rows"]
        seen_pos += r["positives"] or 0
        rate = (r["positives"] or 0) / r["rows"]
        out.append({
            "bin": int(r["_bin"]), "rows": int(r["rows"]), "churn_rate": round(rate, 4), "lift": round(rate / base, 4),
            "cumulative_lift": round(seen_pos / seen_rows / base, 4),
        })
    return out


def calibration_table(df: DataFrame, *, probability: str, label: str = "label", bins: int = 10) -> list[dict]:
    """Equal-width probability bins: rows, mean predicted probability, observed rate."""
    binned = df.withColumn("_bin", F.least(F.floor(F.col(probability) * bins), F.lit(bins - 1)).cast("int"))
    rows = binned.groupBy("_bin").agg(
        F.count(F.lit(1)).alias("rows"), F.avg(probability).alias("mean_predicted"), F.avg(F.col(label).cast("double")).alias("observed_rate")
    ).orderBy("_bin").collect()
    return [
        {"bin": f"[{round(r['_bin'] / bins, 4)}, {round((r['_bin'] + 1) / bins, 4)})", "rows": r["rows"],
         "mean_predicted": round(r["mean_predicted"], 4), "observed_rate": round(r["observed_rate"], 4)}
        for r in rows
    ]


def expected_cost(
    df: DataFrame, *, probability: str, threshold: float, retention_offer: float, lost_customer: float,
    offer_success_rate: float = 1.0, label: str = "label",
) -> dict[str, float]:
    """Confusion counts at the threshold and the mean cost per customer under the cost matrix: a
    flagged customer costs the offer; a flagged churner is kept with ``offer_success_rate`` (else
    lost too); an unflagged churner is lost; an unflagged stayer costs nothing. Also the cost of
    flagging nobody, so the saving the threshold brings can be read off."""
    flagged = F.col(probability) >= threshold
    positive = F.col(label) == 1.0
    r = df.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum((flagged & positive).cast("long")).alias("tp"),
        F.sum((flagged & ~positive).cast("long")).alias("fp"),
        F.sum((~flagged & positive).cast("long")).alias("fn"),
    ).first()
    n, tp, fp, fn = (int(r[k] or 0) for k in ("n", "tp", "fp", "fn"))
    cost = tp * (retention_offer + (1.0 - offer_success_rate) * lost_customer) + fp * retention_offer + fn * lost_customer
    return {
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "cost_per_customer": cost / n if n else 0.0,
        "cost_per_customer_flagging_nobody": (tp + fn) * lost_customer / n if n else 0.0,
    }
