from __future__ import annotations


import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pyspark
import pytest
from py4j.protocol import Py4JError

from customer360.config import load_config
from customer360.errors import JarVersionError
from customer360.session import (
    DELTA_CATALOG,
    DELTA_EXTENSION,
    GRAPHFRAMES_CONNECT_PLUGIN,
    check_jar_versions,
    detect_capabilities,
    find_jvm_jars,
    get_session,
    jvm_session_conf,
    local_session_conf,
)

from tests.conftest import CONF_DIR, REPO


def test_detects_the_jars_the_test_session_loaded(spark, monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    jars = find_jvm_jars()
    caps = detect_capabilities(spark)
    assert (caps.spark_connect, caps.databricks) == (False, False)
    assert (caps.delta_spark, caps.graphframes) == (jars.delta, jars.graphframes)
    assert caps.spark_version.startswith("4.")
    if jars.delta:  # the JVM's own version string, read through py4j
        assert caps.delta_version == jars.delta_version == metadata.version("delta-spark")
        assert f"Delta Lake JVM: {jars.delta_version};" in caps.describe()
    else:
        assert "Delta Lake JVM: no;" in caps.describe()


class _NoClassesJvm:
    """A py4j JVM view in which no optional class loads (Class.forName raises Py4JError)."""

    def __init__(self):
        def for_name(*args):
            raise Py4JError("ClassNotFoundException")

        lang = SimpleNamespace(
            Thread=SimpleNamespace(currentThread=lambda: SimpleNamespace(getContextClassLoader=lambda: None)),
            Class=SimpleNamespace(forName=for_name),
        )
        self.java = SimpleNamespace(lang=lang)


def test_extension_setting_without_the_class_is_not_delta(spark, monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)

    class Conf:
        def get(self, key, default=None):
            return DELTA_EXTENSION if key == "spark.sql.extensions" else default

    class ClassicLike:
        version = spark.version
        conf = Conf()
        _jvm = _NoClassesJvm()

    caps = detect_capabilities(ClassicLike())
    assert (caps.delta_spark, caps.graphframes, caps.delta_version) == (False, False, None)
    assert "Delta Lake JVM: no; GraphFrames JVM: no" in caps.describe()


def _touch_jars(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_jar_versions_are_read_off_the_file_names(tmp_path):
    folder = _touch_jars(
        tmp_path / "jars", "delta-spark_4.1_2.13-4.4.0.jar", "delta-storage-4.4.0.jar",
        "graphframes-spark4_2.13-0.12.3.jar", "kafka-clients-3.9.1.jar",
    )
    jars = find_jvm_jars(folder)
    assert (jars.delta_version, jars.graphframes_version, len(jars.jars)) == ("4.4.0", "0.12.3", 4)
    conf = jvm_session_conf(jars, shuffle_partitions=3)
    assert conf["spark.jars"].split(",") == [str(folder / n) for n in sorted(p.name for p in folder.iterdir())]
    assert conf["spark.sql.extensions"] == DELTA_EXTENSION
    assert conf["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert conf["spark.databricks.delta.snapshotPartitions"] == "3"
    assert conf["spark.sql.sources.parallelPartitionDiscovery.parallelism"] == "3"
    assert jars.describe() == f"JVM jars from {folder}: Delta Lake 4.4.0; GraphFrames 0.12.3"


def test_no_jars_is_one_clear_line_and_no_settings(tmp_path):
    jars = find_jvm_jars(tmp_path / "nowhere")
    assert (jars.jars, jars.delta, jars.graphframes) == ((), False, False)
    assert jvm_session_conf(jars, shuffle_partitions=2) == {}
    assert jars.describe() == (
        f"no JVM jars in {tmp_path / 'nowhere'} (run `make jars` to fetch them): Delta Lake on delta-rs, "
        f"connected components on the DataFrame algorithm"
    )
    check_jar_versions(jars)  # nothing to compare: no error
    # Kafka's jars alone switch nothing on
    only_kafka = find_jvm_jars(_touch_jars(tmp_path / "k", "kafka-clients-3.9.1.jar"))
    assert set(jvm_session_conf(only_kafka, shuffle_partitions=2)) == {"spark.jars"}


def test_a_jar_out_of_step_with_its_python_package_is_refused(tmp_path):
    installed = metadata.version("delta-spark")
    folder = _touch_jars(tmp_path / "jars", "delta-spark_4.1_2.13-9.9.9.jar")
    with pytest.raises(JarVersionError) as err:
        check_jar_versions(find_jvm_jars(folder))
    assert str(err.value).startswith(f"Delta Lake jar 9.9.9 (in {folder}) and Python package delta-spark=={installed} are out of step")
    graph = _touch_jars(tmp_path / "g", "graphframes-spark4_2.13-0.1.0.jar")
    with pytest.raises(JarVersionError, match=r"GraphFrames jar 0\.1\.0 .* graphframes-py==0\.12\.3"):
        check_jar_versions(find_jvm_jars(graph))


def test_the_checkout_jars_match_the_pom_and_setup_pins():
    """infra/jvm/pom.xml, setup.py and what `make jars` copied say the same versions."""
    pom = (REPO / "infra" / "jvm" / "pom.xml").read_text()
    graph_pom = (REPO / "infra" / "jvm" / "graphframes" / "pom.xml").read_text()
    setup = (REPO / "setup.py").read_text()
    delta = re.search(r"<delta.version>([^<]+)</delta.version>", pom).group(1)
    spark_version = re.search(r"<spark.version>([^<]+)</spark.version>", pom).group(1)
    graphframes = re.search(r"<graphframes.version>([^<]+)</graphframes.version>", graph_pom).group(1)
    assert f'"delta-spark=={delta}"' in setup
    assert f'"pyspark=={spark_version}"' in setup
    assert f'"graphframes-py=={graphframes}"' in setup
    jars = find_jvm_jars()
    if jars.delta:
        assert jars.delta_version == delta
        pyspark_jars = {re.sub(r"-[0-9][^-]*\.jar$", "", p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
        ours = {re.sub(r"-[0-9][^-]*\.jar$", "", p.name) for p in jars.jars}
        assert not ours & pyspark_jars, "jars/ repeats artifacts that pyspark already ships"


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


def _c360_tables(tmp_path, jars_dir) -> subprocess.CompletedProcess:
    """`c360 tables` in a fresh process (a new Spark session) with ``spark.jars_dir`` set."""
    lakehouse = tmp_path / "lh"
    (lakehouse / "gold").mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "customer360.cli", "tables", "--conf-dir", str(CONF_DIR),
         "--set", f"lakehouse.root={lakehouse}", "--set", f"spark.jars_dir={jars_dir}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )


@pytest.mark.slow
def test_a_session_without_jars_says_so_in_one_line_and_goes_on(tmp_path):
    proc = _c360_tables(tmp_path, tmp_path / "no-jars-here")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.splitlines() if "jars" in line.lower()]
    assert ours == [
        f"no JVM jars in {tmp_path / 'no-jars-here'} (run `make jars` to fetch them): Delta Lake on delta-rs, "
        f"connected components on the DataFrame algorithm"
    ]
    assert "Traceback" not in proc.stderr
    assert f"no tables under {tmp_path / 'lh'}" in proc.stdout


@pytest.mark.slow
def test_a_jar_out_of_step_stops_the_session_at_start(tmp_path):
    jars = _touch_jars(tmp_path / "jars", "delta-spark_4.1_2.13-9.9.9.jar")
    proc = _c360_tables(tmp_path, jars)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"c360 tables: error: Delta Lake jar 9.9.9 (in {jars}) and Python package delta-spark=={metadata.version('delta-spark')} "
        f"are out of step: run `make jars` after changing infra/jvm/pom.xml, or reinstall setup.py's pins"
    )
    assert "Traceback" not in proc.stderr


#: a fresh process's session (get_session from config) runs two jobs that fail on a person's value
_FAILING_JOBS = """
import sys
from customer360.config import load_config
from customer360.session import get_session
config = load_config("local", conf_dir=sys.argv[1], overrides=[f"lakehouse.root={sys.argv[2]}", f"spark.redact_jvm_logs={sys.argv[3]}",
                     "spark.conf={spark.sql.ansi.enabled: 'true'}"])
spark = get_session(config, metastore=False)
df = spark.createDataFrame([("ann.secret@example.com", "+4915112345678")], "email string, phone string")
failed = []
for job in (lambda: df.selectExpr("cast(email AS int) AS x").collect(),  # CAST_INVALID_INPUT quotes the value
            lambda: df.selectExpr("assert_true(phone IS NULL, concat('bad phone ', phone))").collect(),
            # one task fails while another runs: that one is killed, "TaskKilled (Stage cancelled: ...)"
            lambda: spark.range(0, 2, 1, 2).selectExpr(
                "if(id = 0, cast('ann.secret@example.com' AS int), length(reflect('java.lang.Thread', 'sleep', 4000L)))").collect()):
    try:
        job()
    except Exception as exc:  # the caller gets the whole exception; only the logs are redacted
        failed.append("ann.secret@example.com" in str(exc) or "+4915112345678" in str(exc))
print("jobs failed with the values in their exceptions:", failed)
"""


@pytest.mark.slow
@pytest.mark.parametrize("redact", [True, False])
def test_failed_jobs_leave_no_row_values_in_the_logs(tmp_path, redact):
    proc = subprocess.run([sys.executable, "-c", _FAILING_JOBS, str(CONF_DIR), str(tmp_path / "lh"), str(redact).lower()],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "jobs failed with the values in their exceptions: [True, True, True]" in proc.stdout, proc.stderr[-3000:]
    logs = proc.stderr
    if not redact:  # the control: Spark's own log and PySpark's query logger print both values
        assert "ann.secret@example.com" in logs and "+4915112345678" in logs
        return
    assert "ann.secret@example.com" not in logs and "+4915112345678" not in logs
    assert re.search(r"WARN TaskSetManager: Lost task [\d.]+ in stage [\d.]+ \(TID \d+\) \(", logs)
    assert "org.apache.spark.SparkNumberFormatException [CAST_INVALID_INPUT] (detail withheld: it can quote row values)" in logs
    assert '"msg": "CAST_INVALID_INPUT (detail withheld: it can quote row values)"' in logs  # PySpark's query logger
    assert "TaskKilled (Stage cancelled: [CAST_INVALID_INPUT] (detail withheld: it can quote row values)" in logs
