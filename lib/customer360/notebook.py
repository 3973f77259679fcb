"""What every notebook in notebooks/ starts with: the common widgets (environment, lakehouse root,
region), the configuration and the lakehouse.

    from customer360.notebook import open_lakehouse
    nb = open_lakehouse(dbutils, spark)          # defines the widgets, then reads them
    c360 = nb.lakehouse.read("gold.customer_360").where(nb.in_region)

Opening also registers the lakehouse's tables by name in the session's catalog (``lakehouse.catalog``),
so ``%sql`` cells and ``spark.table("gold.customer_360")`` read the same tables.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyspark.sql.functions as F
from pyspark.sql import Column, SparkSession

from customer360.config import AppConfig, load_config
from customer360.lakehouse import Lakehouse
from customer360.lakehouse.catalog import CatalogSync


@dataclass(frozen=True)
class NotebookContext:
    config: AppConfig
    lakehouse: Lakehouse
    region: str
    #: the names registered when the notebook opened (None: lakehouse.catalog.enabled is off)
    names: CatalogSync | None = None

    @property
    def in_region(self) -> Column:
        return F.col("region") == self.region


def open_lakehouse(dbutils, spark: SparkSession, *, default_region: str = "us") -> NotebookContext:
    """Define the widgets env, lakehouse_root and region, and open the lakehouse they name."""
    dbutils.widgets.dropdown("env", "prod", ["local", "prod"], "Environment")
    dbutils.widgets.text("lakehouse_root", "", "Lakehouse root (empty: from config)")
    dbutils.widgets.text("region", default_region, "Region")
    root = dbutils.widgets.get("lakehouse_root")
    config = load_config(dbutils.widgets.get("env"), overrides=[f"lakehouse.root={root}"] if root else [])
    region = dbutils.widgets.get("region")
    if region not in config.regions:
        raise ValueError(f"unknown region {region!r}; configured regions: {', '.join(sorted(config.regions))}")
    lakehouse = Lakehouse(spark, config.lakehouse)
    names = None
    if config.lakehouse.catalog.enabled:
        names = lakehouse.sync_catalog()
        lakehouse.catalog.use()  # two-level names (gold.customer_360) resolve in the configured catalog
        if names.failed:
            print(f"table names: {names.describe()}")
    return NotebookContext(config, lakehouse, region, names)
