# Databricks notebook source
# MAGIC %md
# MAGIC # Segment explorer
# MAGIC The current segmentation of a region (`gold.customer_segments`, champion model): segment sizes,
# MAGIC their profiles from training (`gold.segment_profiles`), and how today's members differ.

# COMMAND ----------

import pyspark.sql.functions as F

from customer360.notebook import open_lakehouse

nb = open_lakehouse(dbutils, spark)
lakehouse, region, in_region = nb.lakehouse, nb.region, nb.in_region
segments = lakehouse.read("gold.customer_segments").where(in_region)
as_of = segments.agg(F.max("as_of_date")).first()[0]
current = segments.where(F.col("as_of_date") == as_of)
print(f"{region}: segments as of {as_of}")

# COMMAND ----------

# MAGIC %md ## Sizes

# COMMAND ----------

members = current.pandas_api()
sizes = members.groupby(["segment_id", "segment", "global_segment"]).size().to_frame("customers").reset_index()
sizes["share"] = sizes["customers"] / sizes["customers"].sum()
sizes_pdf = sizes.sort_values("segment_id").to_pandas()
display(sizes_pdf)

# COMMAND ----------

# MAGIC %md ## Profiles at training (the champion's version)

# COMMAND ----------

version = current.select("model_version").first()[0]
profiles = lakehouse.read("gold.segment_profiles").where(in_region & (F.col("model_version") == version))
display(profiles.select("segment_id", "segment", "customers", "share_of_customers", "share_of_revenue", "distinguishing_features").orderBy("segment_id"))

# COMMAND ----------

# MAGIC %md ## Today's members: key features per segment

# COMMAND ----------

features = ["recency_days", "frequency_365d", "monetary_365d", "avg_order_value", "sessions_365d"]
c360 = lakehouse.read("gold.customer_360").where(in_region).select("customer_id", *features)
joined = current.select("customer_id", "segment_id", "segment").join(c360, "customer_id").pandas_api()
means_pdf = joined.groupby(["segment_id", "segment"])[features].mean().sort_index().to_pandas()
display(means_pdf)
