"""The SparkSession: created here for local runs, taken as it is on a cluster.

This is the only module that builds a session. It also reports which optional JVM
libraries (Delta Lake, GraphFrames) the session can use, for classic sessions (py4j,
``spark._jvm``) and Spark Connect sessions (no JVM in the client) alike.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import shlex
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pyspark.sql import SparkSession

from customer360.config import AppConfig
from customer360.errors import JarVersionError

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CLASS = "io.delta.tables.DeltaTable"
GRAPHFRAMES_CLASS = "org.graphframes.GraphFrame"
GRAPHFRAMES_CONNECT_PLUGIN = "org.graphframes.connect.GraphFramesConnect"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

#: the checkout's jar folder, filled by `make jars` (mvn dependency:copy-dependencies, infra/jvm/)
CHECKOUT_JARS = Path(__file__).resolve().parents[2] / "jars"
_DELTA_JAR = re.compile(r"^delta-spark_(?:[0-9.]+_)?2\.13-(?P<version>[0-9][0-9A-Za-z.\-]*)\.jar$")
_GRAPHFRAMES_JAR = re.compile(r"^graphframes-spark4_2\.13-(?P<version>[0-9][0-9A-Za-z.\-]*)\.jar$")


@dataclass(frozen=True)
class JvmJars:
    """The JVM jars a local session can load, found in one folder."""

    folder: Path
    jars: tuple[Path, ...]
    delta_version: str | None
    graphframes_version: str | None

    @property
    def delta(self) -> bool:
        return self.delta_version is not None

    @property
    def graphframes(self) -> bool:
        return self.graphframes_version is not None

    def describe(self) -> str:
        """The one line a run prints about its JVM libraries."""
        if not self.jars:
            return (
                f"no JVM jars in {self.folder} (run `make jars` to fetch them): Delta Lake on delta-rs, "
                f"connected components on the DataFrame algorithm"
            )
        delta = f"Delta Lake {self.delta_version}" if self.delta else "no Delta Lake jar (delta-rs engine)"
        graph = (
            f"GraphFrames {self.graphframes_version}" if self.graphframes
            else "no GraphFrames jar (DataFrame connected components)"
        )
        return f"JVM jars from {self.folder}: {delta}; {graph}"


def find_jvm_jars(jars_dir: str | Path | None = None) -> JvmJars:
    """The jars in ``jars_dir`` (default: the checkout's ``jars/``), with the Delta Lake and
    GraphFrames versions read off their file names."""
    folder = Path(jars_dir).expanduser().resolve() if jars_dir else CHECKOUT_JARS
    jars = tuple(sorted(folder.glob("*.jar"))) if folder.is_dir() else ()
    delta = graphframes = None
    for jar in jars:
        if m := _DELTA_JAR.match(jar.name):
            delta = m.group("version")
        elif m := _GRAPHFRAMES_JAR.match(jar.name):
            graphframes = m.group("version")
    return JvmJars(folder=folder, jars=jars, delta_version=delta, graphframes_version=graphframes)


def _python_package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_jar_versions(jars: JvmJars) -> None:
    """Fail when a jar and the Python package that drives it are of different versions: the
    Python side calls JVM methods by name, and a mismatch fails deep inside a job, or worse."""
    pairs = (("Delta Lake", jars.delta_version, "delta-spark"), ("GraphFrames", jars.graphframes_version, "graphframes-py"))
    for what, jar_version, package in pairs:
        package_version = _python_package_version(package)
        if jar_version is not None and package_version is not None and jar_version != package_version:
            raise JarVersionError(
                f"{what} jar {jar_version} (in {jars.folder}) and Python package {package}=={package_version} "
                f"are out of step: run `make jars` after changing infra/jvm/pom.xml, or reinstall setup.py's pins"
            )


def jvm_session_conf(jars: JvmJars, *, shuffle_partitions: int) -> dict[str, str]:
    """Settings that load the jars into a new session and switch Delta Lake on."""
    if not jars.jars:
        return {}
    conf = {"spark.jars": ",".join(str(j) for j in jars.jars)}
    if jars.delta:
        conf.update({
            "spark.sql.extensions": DELTA_EXTENSION,
            "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
            # the log's state is rebuilt with this many tasks (50 by default: slow for small tables)
            "spark.databricks.delta.snapshotPartitions": str(shuffle_partitions),
            # VACUUM lists and matches files in this many tasks (10,000 by default: ~80 s of task
            # overhead per vacuum on a laptop, whatever the table's size)
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(shuffle_partitions),
        })
    return conf


@dataclass(frozen=True)
class SessionCapabilities:
    """What the session offers beyond plain Spark."""

    spark_version: str
    spark_connect: bool
    databricks: bool
    delta_spark: bool
    graphframes: bool
    delta_version: str | None = None

    def describe(self) -> str:
        kind = "Spark Connect" if self.spark_connect else "classic"
        where = "Databricks" if self.databricks else "open-source Spark"
        delta = (self.delta_version or "yes") if self.delta_spark else "no"
        return (
            f"Spark {self.spark_version} ({kind}, {where}); "
            f"Delta Lake JVM: {delta}; "
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


def _jvm_delta_version(spark: SparkSession) -> str | None:
    """Delta Lake's version as its JVM classes report it (``io.delta.VERSION``), if reachable."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        return None
    from py4j.protocol import Py4JError

    try:
        return str(getattr(jvm.io.delta, "package").VERSION())
    except Py4JError:
        return None


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
        delta_version=_jvm_delta_version(spark) if delta and delta_class else None,
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
    # a stream's batch (bronze.streaming) runs the batch path on the stream's own thread, under its
    # frames and py4j's: Java's default 1 MB thread stack overflowed once there (deep Delta plans)
    java_options = [THREAD_STACK]
    if config.spark.redact_jvm_logs:
        java_options.append(shlex.quote(f"-Dlog4j2.configurationFile={REDACTED_LOG_CONFIG}"))
    conf["spark.driver.extraJavaOptions"] = " ".join(java_options)
    conf.update(config.spark.conf)
    return conf


#: the stack of every thread the driver JVM starts (default 1 MB)
THREAD_STACK = "-Xss8m"

#: the JVM log configuration of a local session (spark.redact_jvm_logs): Spark's defaults without
#: exception messages, which quote row values (local mode: the executors log in the driver's JVM)
REDACTED_LOG_CONFIG = Path(__file__).with_name("log4j2-redacted.properties")
#: PySpark's loggers that write a failed query's whole message (and its SQL fragment) to stderr
PYSPARK_QUERY_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


class _WithholdDetail(logging.Filter):
    """Keeps a record's error class (``CAST_INVALID_INPUT``) and call site; drops its message,
    exception and SQL fragment, which quote the values and text that failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = record.__dict__.get("context") or {}
        kept = {k: str(context[k]) for k in ("errorClass", "file", "line") if context.get(k) is not None}
        record.msg = f"{kept.get('errorClass') or 'query error'} (detail withheld: it can quote row values)"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.__dict__["context"] = kept
        return True


def redact_pyspark_query_logs() -> None:
    """PySpark logs every captured exception that has a query context at ERROR, message included,
    even when the caller handles it: keep only its error class (idempotent)."""
    from pyspark.logger import PySparkLogger

    for name in PYSPARK_QUERY_LOGGERS:
        logger = PySparkLogger.getLogger(name)
        if not any(isinstance(f, _WithholdDetail) for f in logger.filters):
            logger.addFilter(_WithholdDetail())


#: local-session settings not applied under spark-submit (the cluster's own apply: UI, catalog, ...)
LOCAL_ONLY = frozenset({
    "spark.master", "spark.app.name", "spark.driver.memory", "spark.default.parallelism", "spark.ui.enabled",
    "spark.ui.showConsoleProgress", "spark.sql.catalogImplementation",
})


#: the folder under a local lakehouse root that holds its metastore (Derby) and warehouse
METASTORE_FOLDER = "_catalog"


def local_metastore_dir(config: AppConfig) -> Path | None:
    """The Derby metastore folder of a local lakehouse root (``<root>/_catalog``), or None when
    names stay in the session (``lakehouse.catalog.local_metastore: memory``, a remote root, or a
    root whose path a JDBC URL cannot carry)."""
    root = config.lakehouse.root
    if config.lakehouse.catalog.local_metastore != "derby":
        return None
    if root.startswith("file:"):
        root = root[len("file:"):].lstrip("/")
        root = "/" + root
    elif "://" in root or root.startswith("dbfs:"):
        return None
    if ";" in root:
        return None
    return Path(root).expanduser().resolve() / METASTORE_FOLDER


def metastore_busy(folder: Path) -> bool:
    """Whether another process has the Derby metastore in ``folder`` open (Derby boots a database
    in one process at a time and holds a file lock on ``dbex.lck`` while it does)."""
    lock = folder / "metastore_db" / "dbex.lck"
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:  # never booted, or not ours to open: nobody holds it
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def metastore_conf(folder: Path, *, java_options: str = "") -> dict[str, str]:
    """Settings of a session that keeps table names in Spark's Derby-backed Hive metastore in
    ``folder`` (managed tables, which the pipeline never creates, would go to its warehouse)."""
    options = f"{java_options} -Dderby.system.home={folder}".strip()  # derby.log there, not in the cwd
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={folder / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": options,
    }


def _boot_metastore(spark: SparkSession) -> str | None:
    """Open the metastore now, so that this process holds it from the start; the reason when it
    cannot be opened."""
    try:
        spark.catalog.listDatabases()
    except Exception as exc:  # noqa: BLE001 - Derby's refusal comes wrapped in Hive's
        text = str(exc)
        return "another process opened it first" if "XSDB6" in text or "Another instance of Derby" in text else text.splitlines()[0]
    return None


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


def _build(conf: dict[str, str]) -> SparkSession:
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def get_session(config: AppConfig, *, metastore: bool = True) -> SparkSession:
    """The active session (spark-submit, Databricks, tests) or a new local one from config.

    An existing session keeps its settings; only a checkpoint directory is added when it has none,
    since the iterative graph stages need one. A new local session keeps table names in the
    lakehouse's Derby metastore (``local_metastore_dir``) unless ``metastore`` is False (commands
    that never use names skip its few seconds of start-up) or another process has it open.
    """
    if config.spark.redact_jvm_logs:
        redact_pyspark_query_logs()
    spark = SparkSession.getActiveSession()
    if spark is None:
        # Python workers (pandas UDFs) must run this interpreter, the one with the package installed;
        # PySpark reads the worker interpreter from this variable when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf = local_session_conf(config)
        submitted = submitted_conf()
        if submitted is not None:
            # spark-submit's settings (--master, --conf, --properties-file) win over config's, and
            # settings that only make sense for a local session are left to the cluster; its jars
            # are its own (--jars, spark.jars in the properties file)
            conf = {key: value for key, value in conf.items() if key not in submitted and key not in LOCAL_ONLY}
        if submitted is None:
            jars = find_jvm_jars(config.spark.jars_dir)
            check_jar_versions(jars)
            conf = {**jvm_session_conf(jars, shuffle_partitions=config.spark.shuffle_partitions), **conf}
            if jars.jars:
                log.info("%s", jars.describe())
            else:  # an offline laptop: say once what runs instead, then go on
                print(jars.describe(), file=sys.stderr)
            # table names need Delta's catalog; a Derby metastore in use elsewhere stays there
            folder = local_metastore_dir(config) if jars.delta and metastore else None
        else:
            # a local submission (--master local[N], infra/spark/spark-defaults.local.conf) with Delta's
            # catalog and no catalog of its own keeps names where `c360` does; a cluster's are its own
            local_master = submitted.get("spark.master", "").startswith("local")
            named = (local_master and metastore and "spark.sql.catalogImplementation" not in submitted
                     and submitted.get("spark.sql.catalog.spark_catalog") == DELTA_CATALOG)
            folder = local_metastore_dir(config) if named else None
        if folder is not None and metastore_busy(folder):
            print(f"the metastore in {folder} is open in another process: table names for this session only",
                  file=sys.stderr)
            folder = None
        local = conf
        if folder is not None:
            explicit = set(config.spark.conf)
            extra = {k: v for k, v in metastore_conf(folder, java_options=conf.get("spark.driver.extraJavaOptions", "")).items()
                     if k not in explicit or k == "spark.driver.extraJavaOptions"}
            if submitted is not None:
                # the driver's JVM already runs: Derby reads its home (where derby.log goes) when it boots
                from pyspark import SparkContext

                extra.pop("spark.driver.extraJavaOptions", None)
                SparkContext._jvm.java.lang.System.setProperty("derby.system.home", str(folder))
            conf = {**conf, **extra}
        spark = _build(conf)
        if folder is not None and (reason := _boot_metastore(spark)) is not None:
            print(f"the metastore in {folder} could not be opened ({reason}): table names for this session only",
                  file=sys.stderr)
            spark.stop()
            spark = _build(local)
        log.info("created Spark session (master %s%s); customer360 from %s", spark.sparkContext.master,
                 ", from spark-submit" if submitted is not None else "", Path(__file__).parent)
    if not is_spark_connect(spark) and spark.sparkContext.getCheckpointDir() is None:
        spark.sparkContext.setCheckpointDir(checkpoint_dir(config))
    return spark
