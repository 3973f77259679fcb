# Databricks notebook source
# MAGIC %md
# MAGIC # Churn analysis
# MAGIC The latest churn scores of a region (`gold.churn_scores`): score distribution, risk by
# MAGIC segment, lift by score decile against realized churn where the horizon has passed, and the
# MAGIC customers most at risk.

# COMMAND ----------

import pyspark.sql.functions as F

from customer360.monitoring.drift import with_churn_outcome
from customer360.notebook import open_lakehouse

nb = open_lakehouse(dbutils, spark)
lakehouse, region, in_region = nb.lakehouse, nb.region, nb.in_region
scores = lakehouse.read("gold.churn_scores").where(in_region)
as_of = scores.agg(F.max("as_of_date")).first()[0]
latest = scores.where(F.col("as_of_date") == as_of)
print(f"{region}: churn scores as of {as_of}")

# COMMAND ----------

# MAGIC %md ## Score distribution (tenths)

# COMMAND ----------

binned = latest.select(
    "customer_id",
    (F.least(F.floor(F.col("churn_score") * 10), F.lit(9)) / 10).alias("score_bin"),
    F.col("churn_predicted").cast("int").alias("predicted"),
).pandas_api()
distribution_pdf = binned.groupby("score_bin").agg({"customer_id": "count", "predicted": "sum"}).sort_index().to_pandas()
distribution_pdf.columns = ["customers", "predicted_churners"]
display(distribution_pdf)

# COMMAND ----------

# MAGIC %md ## Risk by segment

# COMMAND ----------

segments = lakehouse.read("gold.customer_segments").where(in_region & (F.col("as_of_date") == as_of))
by_segment = latest.join(segments.select("customer_id", "segment"), "customer_id", "left").fillna({"segment": "(no segment)"})
by_segment_pdf = by_segment.pandas_api().groupby("segment").agg({"churn_score": "mean", "customer_id": "count"}).sort_index().to_pandas()
by_segment_pdf.columns = ["mean_churn_score", "customers"]
display(by_segment_pdf)

# COMMAND ----------

# MAGIC %md ## Lift by decile (only once the horizon has passed: realized outcomes from the orders)

# COMMAND ----------

from datetime import timedelta

from pyspark.sql import Window

orders = lakehouse.read("silver.orders").where(in_region)
data_end = orders.agg(F.max("ordered_at")).first()[0]
horizon = int(latest.select("horizon_days").first()[0])
due_dates = [r[0] for r in scores.select("as_of_date").distinct().collect()
             if data_end is not None and r[0] + timedelta(days=horizon) <= data_end.date()]
lift_pdf = None
if due_dates:
    scored_on = max(due_dates)
    outcome = with_churn_outcome(scores.where(F.col("as_of_date") == scored_on), orders, as_of=scored_on, horizon_days=horizon)
    base = outcome.agg(F.avg(F.col("churned").cast("double"))).first()[0]
    deciles = outcome.withColumn("decile", F.ntile(10).over(Window.orderBy(F.col("churn_score").desc(), "customer_id")))
    lift_pdf = deciles.groupBy("decile").agg(F.avg(F.col("churned").cast("double")).alias("churn_rate")).orderBy("decile").toPandas()
    lift_pdf["lift"] = lift_pdf["churn_rate"] / base if base else float("nan")
    print(f"scored as of {scored_on}: {base:.1%} churned within {horizon} days")
    display(lift_pdf)
else:
    print(f"no scoring of {region} has reached its {horizon}-day horizon within the data (ends {data_end}): no realized churn yet")

# COMMAND ----------

# MAGIC %md ## Most at risk (model scores, not cold start)

# COMMAND ----------

at_risk_pdf = latest.where(~F.col("is_cold_start_score")).orderBy(F.col("churn_score").desc(), "customer_id").limit(20).toPandas()
display(at_risk_pdf[["customer_id", "churn_score", "churn_predicted", "threshold"]])
