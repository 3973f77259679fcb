# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the customer 360
# MAGIC One row per customer of `gold.customer_360` (PII as tokens): who they are, what they bought,
# MAGIC how they engage, and their segment and churn score. Uses the pandas API on Spark
# MAGIC (`pyspark.pandas`): pandas syntax, computed by Spark on the whole table.

# COMMAND ----------

import pyspark.pandas as ps
import pyspark.sql.functions as F

from customer360.notebook import open_lakehouse

nb = open_lakehouse(dbutils, spark)
dbutils.widgets.text("customer_id", "", "Customer to show (empty: the top customer by revenue)")
c360 = nb.lakehouse.read("gold.customer_360").where(nb.in_region)
customers = c360.pandas_api()

# COMMAND ----------

# MAGIC %md ## The region at a glance

# COMMAND ----------

overview = ps.DataFrame({
    "customers": [len(customers)],
    "with_orders": [int((customers["orders_total"] > 0).sum())],
    "cold_start_share": [float(customers["is_cold_start"].astype(int).mean())],
    "marketable_share": [float(customers["marketing_consent"].astype(int).mean())],
    "net_revenue_total": [float(customers["net_revenue_total"].sum())],
})
display(overview)

# COMMAND ----------

key_features = ["recency_days", "frequency_365d", "monetary_365d", "avg_order_value", "sessions_365d", "tickets_365d"]
display(customers[key_features].describe())

# COMMAND ----------

by_type = customers.groupby("customer_type").agg({"customer_id": "count", "net_revenue_total": "sum", "recency_days": "median"})
by_type.columns = ["customers", "net_revenue", "median_recency_days"]
display(by_type.sort_index())

# COMMAND ----------

# MAGIC %md ## Top customers and one customer's profile

# COMMAND ----------

top = customers.sort_values("net_revenue_total", ascending=False).head(10)[
    ["customer_id", "customer_type", "orders_total", "net_revenue_total", "recency_days", "segment", "churn_score"]
]
display(top)

# COMMAND ----------

chosen = dbutils.widgets.get("customer_id") or top["customer_id"].to_pandas().iloc[0]
profile = c360.where(F.col("customer_id") == chosen).toPandas().T
display(profile)
