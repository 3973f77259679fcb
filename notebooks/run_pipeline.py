# Databricks notebook source
# MAGIC %md
# MAGIC # Customer 360: run the pipeline
# MAGIC Runs every stage for the chosen regions with the installed `customer360` wheel
# MAGIC (deployed by the bundle in `databricks.yml`). Delta Lake is built into Databricks, so the
# MAGIC lakehouse uses the delta-spark engine here.

# COMMAND ----------

dbutils.widgets.dropdown("env", "prod", ["local", "prod"], "Environment")
dbutils.widgets.text("regions", "all", "Regions (comma list or all)")
dbutils.widgets.text("lakehouse_root", "", "Lakehouse root (empty: from config)")

# COMMAND ----------

from customer360.config import load_config
from customer360.pipeline import build_context, run_pipeline, summary_lines

overrides = []
if dbutils.widgets.get("lakehouse_root"):
    overrides.append(f"lakehouse.root={dbutils.widgets.get('lakehouse_root')}")
config = load_config(dbutils.widgets.get("env"), overrides=overrides)
ctx = build_context(config, regions=[dbutils.widgets.get("regions")], spark=spark)

# COMMAND ----------

summary = run_pipeline(ctx)
print("\n".join(summary_lines(ctx, summary)))

# COMMAND ----------

display(ctx.lakehouse.history("ops.pipeline_runs", limit=10))
