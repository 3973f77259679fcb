"""``lakehouse`` and ``spark`` (base.yaml, <env>.yaml): where the tables live, how Delta keeps
them, their names in a metastore or Unity Catalog, and the settings of a local Spark session."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from customer360.config.base import FrozenModel


def _as_strings(value: Any) -> Any:
    """Spark settings and storage options are strings; YAML gives bools and numbers too."""
    if not isinstance(value, dict):
        return value
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


class CatalogConfig(FrozenModel):
    """Tables by name: ``<layer>.<table>`` in the session's catalog, or ``<name>.<layer>.<table>``
    in the Unity Catalog catalog ``name``. Names are external tables over the lakehouse's paths."""

    #: Unity Catalog catalog of three-level names (Databricks); null: the session catalog's two-level names
    name: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: runs (c360 run, each stage job, spark-submit) register the tables they wrote, notebooks and
    #: `c360 catalog` all tables; false: paths only
    enabled: bool = True
    #: where a local session keeps the names: derby (Spark's Hive metastore under <root>/_catalog,
    #: kept between runs; one process at a time holds it, the others keep names for their session)
    #: or memory (this session only). Clusters and Databricks use their own metastore.
    local_metastore: Literal["derby", "memory"] = "derby"


class LakehouseConfig(FrozenModel):
    root: str = Field(min_length=1)
    engine: Literal["auto", "delta-spark", "delta-rs"] = "auto"
    vacuum_retention_hours: int = Field(default=168, ge=0)
    commit_retries: int = Field(default=20, ge=0)
    storage_options: dict[str, str] = Field(default_factory=dict)
    #: layers whose tables record Change Data Feed (delta-spark; incremental runs read it)
    change_data_feed_layers: tuple[Literal["bronze", "silver", "gold", "ops"], ...] = ("silver", "gold")
    #: how long a table's log keeps old versions for time travel (delta.logRetentionDuration)
    log_retention_days: int = Field(default=30, ge=1)
    #: deletes mark rows in deletion vectors instead of rewriting files (delta-spark only; such
    #: tables are unreadable for delta-rs, so off by default); erasure purges them with REORG
    deletion_vectors: bool = False
    #: columns each table is Z-ordered by when optimized (`c360 optimize TABLE`)
    zorder: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: the tables' names in the metastore or Unity Catalog
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)

    _strings = field_validator("storage_options", mode="before")(classmethod(lambda cls, v: _as_strings(v)))

    def table_properties(self, layer: str) -> dict[str, str]:
        """Delta table properties a new table of ``layer`` is created with."""
        props = {
            "delta.logRetentionDuration": f"interval {self.log_retention_days} days",
            # vacuum's default retention is also how long removed files stay for time travel
            "delta.deletedFileRetentionDuration": f"interval {self.vacuum_retention_hours} hours",
        }
        if layer in self.change_data_feed_layers:
            props["delta.enableChangeDataFeed"] = "true"
        if self.deletion_vectors:
            props["delta.enableDeletionVectors"] = "true"
        return props

    @field_validator("root")
    @classmethod
    def _no_percent(cls, value: str) -> str:
        if "%" in value:
            raise ValueError("'%' is not allowed in the lakehouse root (Delta paths are URL-encoded)")
        return value


class SparkConfig(FrozenModel):
    master: str = "local[2]"
    app_name: str = "customer360"
    driver_memory: str = Field(default="4g", pattern=r"^\d+[kmgt]?$")
    shuffle_partitions: int = Field(default=8, ge=1)
    ui_enabled: bool = False
    #: folder of JVM jars (Delta Lake, GraphFrames, Kafka) put on a local session's spark.jars;
    #: null: the checkout's jars/ (filled by `make jars`), when there is one
    jars_dir: str | None = None
    #: a local session's JVM log (lib/customer360/log4j2-redacted.properties) and PySpark's query
    #: loggers keep exceptions' classes and error classes, never their messages (they quote row values)
    redact_jvm_logs: bool = True
    conf: dict[str, str] = Field(default_factory=dict)

    _strings = field_validator("conf", mode="before")(classmethod(lambda cls, v: _as_strings(v)))
