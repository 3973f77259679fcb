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
dbutils.widgets.text("as_of", "", "Features as of YYYY-MM-DD (empty: the data's end)")
dbutils.widgets.text("settings", "", "More settings: key=value; key=value (like c360 --set)")

# COMMAND ----------

from datetime import date

from customer360.config import load_config
from customer360.context import build_context
from customer360.pipeline import run_pipeline, summary_lines

overrides = []
if dbutils.widgets.get("lakehouse_root"):
    overrides.append(f"lakehouse.root={dbutils.widgets.get('lakehouse_root')}")
overrides += [item.strip() for item in dbutils.widgets.get("settings").split(";") if item.strip()]
config = load_config(dbutils.widgets.get("env"), overrides=overrides)
as_of = date.fromisoformat(dbutils.widgets.get("as_of")) if dbutils.widgets.get("as_of") else None
ctx = build_context(config, regions=[dbutils.widgets.get("regions")], spark=spark, as_of=as_of)

# COMMAND ----------

summary = run_pipeline(ctx)
print("\n".join(summary_lines(ctx, summary)))

# COMMAND ----------

display(ctx.lakehouse.history("ops.pipeline_runs", limit=10))

# COMMAND ----------

# MAGIC %md The customer 360 of the run's regions (PII as tokens) and the monthly revenue mart.

# COMMAND ----------

display(ctx.lakehouse.read("gold.customer_360").where(f"region IN ({', '.join(repr(r) for r in ctx.regions)})").limit(100))
display(ctx.lakehouse.read("gold.finance_revenue_monthly").orderBy("region", "month"))
