# Databricks notebook source
# MAGIC %md
# MAGIC # Review an identity cluster
# MAGIC The records resolved into one customer, the links between them and why each matched
# MAGIC (deterministic identifier or probabilistic rule with its match probability), with the clear
# MAGIC values from the PII vault for a data steward (the vault read needs that grant).

# COMMAND ----------

import pyspark.sql.functions as F

from customer360.notebook import open_lakehouse

nb = open_lakehouse(dbutils, spark)
dbutils.widgets.text("customer_id", "", "Customer (empty: the largest cluster)")
lakehouse, in_region = nb.lakehouse, nb.in_region
xref = lakehouse.read("silver.customer_xref").where(in_region)

# COMMAND ----------

# MAGIC %md ## Cluster sizes (records per customer)

# COMMAND ----------

sizes = xref.groupBy("customer_id").count().pandas_api()
size_distribution = sizes["count"].value_counts().sort_index()
display(size_distribution.to_frame("customers").reset_index().rename(columns={"index": "records"}))

# COMMAND ----------

chosen = dbutils.widgets.get("customer_id") or sizes.sort_values(["count", "customer_id"], ascending=[False, True])["customer_id"].to_pandas().iloc[0]
members = xref.where(F.col("customer_id") == chosen)
print(f"customer {chosen}: {members.count()} records")

# COMMAND ----------

# MAGIC %md ## The customer's records (clear values from the vault)

# COMMAND ----------

vault = lakehouse.read("silver.pii_vault").where(in_region)
records = lakehouse.read("silver.identity_records").where(in_region).join(
    members.select("source", "source_record_id", "match_rule", "match_confidence"), ["source", "source_record_id"]
)


def clear(column: str, kind: str):
    values = vault.where(F.col("kind") == kind).select(F.col("token").alias(column), F.col("value").alias(f"{column}_clear"))
    return values


shown = records
for column, kind in (("first_name", "first_name"), ("last_name", "last_name"), ("email", "email"), ("phone", "phone")):
    shown = shown.join(clear(column, kind), column, "left")
records_pdf = shown.select(
    "source", "source_record_id", "first_name_clear", "last_name_clear", "email_clear", "phone_clear",
    "match_rule", "match_confidence",
).orderBy("source", "source_record_id").toPandas()
display(records_pdf)

# COMMAND ----------

# MAGIC %md ## Links between them, and why each matched

# COMMAND ----------

keys = members.select("source", "source_record_id")
graph = lakehouse.read("silver.identity_graph").where(in_region)
links = (
    graph.join(keys.withColumnRenamed("source", "src_source").withColumnRenamed("source_record_id", "src_record_id"),
               ["src_source", "src_record_id"])
    .join(keys.withColumnRenamed("source", "dst_source").withColumnRenamed("source_record_id", "dst_record_id"),
          ["dst_source", "dst_record_id"])
)
links_pdf = links.select(
    "src_source", "src_record_id", "dst_source", "dst_record_id", "link_type", "rule", "probability"
).orderBy("src_source", "src_record_id", "dst_source", "dst_record_id").toPandas()
display(links_pdf)
why = links.groupBy("link_type", "rule").agg(F.count("*").alias("links"), F.min("probability").alias("lowest_probability"))
display(why.orderBy("link_type", "rule"))
