from __future__ import annotations


from customer360.config import load_config
from customer360.session import (
    DELTA_EXTENSION,
    GRAPHFRAMES_CONNECT_PLUGIN,
    detect_capabilities,
    get_session,
    local_session_conf,
)

from tests.conftest import CONF_DIR


def test_detects_plain_spark_without_optional_jars(spark, monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    caps = detect_capabilities(spark)
    assert (caps.spark_connect, caps.databricks, caps.delta_spark, caps.graphframes) == (False, False, False, False)
    assert caps.spark_version.startswith("4.")
    assert "Delta Lake JVM: no; GraphFrames JVM: no" in caps.describe()


def test_extension_setting_without_the_class_is_not_delta(spark, monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)

    class Conf:
        def get(self, key, default=None):
            return DELTA_EXTENSION if key == "spark.sql.extensions" else default

    class ClassicLike:
        version = spark.version
        conf = Conf()
        _jvm = spark._jvm  # a real JVM that lacks io.delta classes

    assert detect_capabilities(ClassicLike()).delta_spark is False


class _ConnectConf:
    def __init__(self, values):
        self.values = values

    def get(self, key, default=None):
        if key not in self.values:
            raise RuntimeError(f"[SQL_CONF_NOT_FOUND] {key}")  # as a Connect server answers
        return self.values[key]


def _connect_session(values):
    cls = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})
    session = cls()
    session.version = "4.1.1"
    session.conf = _ConnectConf(values)
    return session  # no _jvm attribute at all, as under Spark Connect


def test_spark_connect_session_is_read_from_conf_not_jvm(monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    caps = detect_capabilities(_connect_session({}))
    assert (caps.spark_connect, caps.delta_spark, caps.graphframes) == (True, False, False)
    caps = detect_capabilities(
        _connect_session(
            {
                "spark.sql.extensions": DELTA_EXTENSION,
                "spark.connect.extensions.relation.classes": GRAPHFRAMES_CONNECT_PLUGIN,
            }
        )
    )
    assert (caps.delta_spark, caps.graphframes) == (True, True)


def test_databricks_always_has_delta(monkeypatch):
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    caps = detect_capabilities(_connect_session({}))
    assert (caps.databricks, caps.delta_spark) == (True, True)


def test_local_session_settings_come_from_config():
    config = load_config("local", conf_dir=CONF_DIR, overrides=["spark.shuffle_partitions=3", "spark.conf={spark.x: y}"])
    conf = local_session_conf(config)
    assert conf["spark.sql.shuffle.partitions"] == "3"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.driver.memory"] == "4g"
    assert conf["spark.x"] == "y"


def test_get_session_reuses_the_active_session(spark, tmp_path):
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path}"])
    assert get_session(config) is spark
    assert spark.sparkContext.getCheckpointDir() is not None
