"""The SparkSession: created here for local runs, taken as it is on a cluster.

This is the only module that builds a session. It also reports which optional JVM
libraries (Delta Lake, GraphFrames) the session can use, for classic sessions (py4j,
``spark._jvm``) and Spark Connect sessions (no JVM in the client) alike.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from customer360.config import AppConfig

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CLASS = "io.delta.tables.DeltaTable"
GRAPHFRAMES_CLASS = "org.graphframes.GraphFrame"
GRAPHFRAMES_CONNECT_PLUGIN = "org.graphframes.connect.GraphFramesConnect"


@dataclass(frozen=True)
class SessionCapabilities:
    """What the session offers beyond plain Spark."""

    spark_version: str
    spark_connect: bool
    databricks: bool
    delta_spark: bool
    graphframes: bool

    def describe(self) -> str:
        kind = "Spark Connect" if self.spark_connect else "classic"
        where = "Databricks" if self.databricks else "open-source Spark"
        return (
            f"Spark {self.spark_version} ({kind}, {where}); "
            f"Delta Lake JVM: {'yes' if self.delta_spark else 'no'}; "
            f"GraphFrames JVM: {'yes' if self.graphframes else 'no'}"
        )


def is_spark_connect(spark: SparkSession) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _conf(spark: SparkSession, key: str) -> str:
    try:
        return spark.conf.get(key, "") or ""
    except Exception as exc:  # Connect raises for keys the server hides; treat as unset
        log.debug("could not read %s: %s", key, exc)
        return ""


def _jvm_has_class(spark: SparkSession, class_name: str) -> bool | None:
    """True/False when a JVM is reachable (classic session), None under Spark Connect."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        return None
    from py4j.protocol import Py4JError

    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(class_name, False, loader)
        return True
    except Py4JError:
        return False


def detect_capabilities(spark: SparkSession) -> SessionCapabilities:
    connect = is_spark_connect(spark)
    databricks = "DATABRICKS_RUNTIME_VERSION" in os.environ
    extensions = _conf(spark, "spark.sql.extensions")

    delta_class = _jvm_has_class(spark, DELTA_CLASS)
    if databricks:
        delta = True  # Delta is built into every Databricks runtime
    elif delta_class is None:
        delta = DELTA_EXTENSION in extensions
    else:
        delta = delta_class and DELTA_EXTENSION in extensions

    graph_class = _jvm_has_class(spark, GRAPHFRAMES_CLASS)
    if graph_class is None:
        graphframes = GRAPHFRAMES_CONNECT_PLUGIN in _conf(spark, "spark.connect.extensions.relation.classes")
    else:
        graphframes = graph_class

    return SessionCapabilities(
        spark_version=spark.version,
        spark_connect=connect,
        databricks=databricks,
        delta_spark=bool(delta),
        graphframes=bool(graphframes),
    )


def local_session_conf(config: AppConfig) -> dict[str, str]:
    """The settings of a local session built from config (also used by the test session)."""
    conf = {
        "spark.master": config.spark.master,
        "spark.app.name": config.spark.app_name,
        "spark.driver.memory": config.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.default.parallelism": str(config.spark.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(config.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.catalogImplementation": "in-memory",
        # Delta stores timestamps as INT64 microseconds, not Spark's legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    conf.update(config.spark.conf)
    return conf


#: local-session settings not applied under spark-submit (the cluster's own apply: UI, catalog, ...)
LOCAL_ONLY = frozenset({
    "spark.master", "spark.app.name", "spark.driver.memory", "spark.default.parallelism", "spark.ui.enabled",
    "spark.ui.showConsoleProgress", "spark.sql.catalogImplementation",
})


def submitted_conf() -> dict[str, str] | None:
    """The settings spark-submit gave this process (its JVM started first and passed the gateway
    port), or None when the process was not started by spark-submit."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connect to spark-submit's JVM, whose system properties hold its settings
    return dict(SparkConf().getAll())


def checkpoint_dir(config: AppConfig) -> str:
    return config.lakehouse.root.rstrip("/") + "/_checkpoints"


def get_session(config: AppConfig) -> SparkSession:
    """The active session (spark-submit, Databricks, tests) or a new local one from config.

    An existing session keeps its settings; only a checkpoint directory is added when it has none,
    since the iterative graph stages need one.
    """
    spark = SparkSession.getActiveSession()
    if spark is None:
        # Python workers (pandas UDFs) must run this interpreter, the one with the package installed;
        # PySpark reads the worker interpreter from this variable when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf = local_session_conf(config)
        submitted = submitted_conf()
        if submitted is not None:
            # spark-submit's settings (--master, --conf, --properties-file) win over config's, and
            # settings that only make sense for a local session are left to the cluster
            conf = {key: value for key, value in conf.items() if key not in submitted and key not in LOCAL_ONLY}
        builder = SparkSession.builder
        for key, value in conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        log.info("created Spark session (master %s%s); customer360 from %s", spark.sparkContext.master,
                 ", from spark-submit" if submitted is not None else "", Path(__file__).parent)
    if not is_spark_connect(spark) and spark.sparkContext.getCheckpointDir() is None:
        spark.sparkContext.setCheckpointDir(checkpoint_dir(config))
    return spark
