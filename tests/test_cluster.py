"""The pipeline on a real Spark standalone cluster: a master and one worker started from the
installed pyspark, bound to 127.0.0.1; the job goes in with spark-submit, the code as a --py-files
zip (customer360.pyfiles) and the settings of infra/spark/spark-defaults.cluster.conf."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from customer360.lakehouse import Lakehouse
from customer360.pyfiles import build as build_pyfiles
from customer360.services import free_port
from customer360.session import CHECKOUT_JARS, find_jvm_jars

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SPARK_HOME = Path(pyspark.__file__).resolve().parent


def _state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


def _wait(what: str, check, procs, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{what}: a daemon exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (OSError, ValueError):  # not listening yet; or answering HTML before its JSON page is attached
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def standalone_cluster(tmp_path):
    """spark://127.0.0.1:PORT with one worker (2 cores, 2 GiB); both daemons always stopped."""
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1",
           "SPARK_LOG_DIR": str(tmp_path / "logs"), "PYSPARK_PYTHON": sys.executable}
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs = []
    try:
        for name, args in (
            ("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)]),
            ("worker", ["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1", "--cores", "2",
                        "--memory", "2g", "--webui-port", str(worker_ui), "--work-dir", str(tmp_path / "work")]),
        ):
            log = tmp_path / f"{name}.log"
            with open(log, "w") as out:
                procs.append((subprocess.Popen([spark_class, *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True), log))
            if name == "master":
                _wait("master", lambda: _state(ui_port)["status"] == "ALIVE", procs)
        _wait("worker registration", lambda: _state(ui_port)["aliveworkers"] == 1, procs)
        yield master_url, ui_port, tmp_path / "work"
    finally:
        for proc, _ in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc, _ in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def test_pipeline_runs_on_a_standalone_cluster(standalone_cluster, tmp_path, spark):
    master_url, ui_port, work_dir = standalone_cluster
    pyfiles = build_pyfiles(tmp_path / "dist" / "customer360.zip")
    lakehouse, sample = tmp_path / "lh", tmp_path / "sample"
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env.pop("C360_CONF_DIR", None)
    # spark-submit runs where the checkout's jars/ is (the properties file names jars/*.jar)
    (tmp_path / "jars").symlink_to(CHECKOUT_JARS, target_is_directory=True)
    proc = subprocess.run(
        [
            str(SPARK_HOME / "bin" / "spark-submit"), "--master", master_url,
            "--properties-file", str(REPO / "infra" / "spark" / "spark-defaults.cluster.conf"),
            "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.default.parallelism=2",
            "--conf", f"spark.pyspark.python={sys.executable}",
            "--py-files", str(pyfiles),
            str(REPO / "jobs" / "run_pipeline.py"),
            # no --conf-dir: the configuration comes from inside the zip (cwd has no conf/)
            "--env", "local", "--region", "us",
            "--set", f"lakehouse.root={lakehouse}", "--set", f"sample_data.dir={sample}", "--set", "sample_data.scale=0.0005",
            "--set", f"ingest.landing_root={sample / 'sources'}",
            "--set", "pipeline.stages=[ingest, identity, facts, quality, gold]",
        ],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )
    (tmp_path / "spark-submit.log").write_text(proc.stdout + proc.stderr)
    # spark-submit passes the Python driver's stderr (our log lines) on to its stdout
    ours = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "customer360" in line)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "(local): succeeded" in proc.stdout
    assert f"created Spark session (master {master_url}, from spark-submit)" in ours, ours[:3000]
    # the driver imported the code from the zip
    assert f"customer360 from {pyfiles}/customer360" in ours
    # ... and wrote the tables with Delta Lake's own engine, from the jars the submission loaded
    if find_jvm_jars().delta:
        assert "lakehouse engine: delta-spark (Delta Lake JVM classes present)" in ours, ours[:3000]
        assert f"engines: delta-spark (Delta Lake {find_jvm_jars().delta_version} in the JVM)" in proc.stdout

    # the application ran on the cluster's worker and finished
    state = _state(ui_port)
    apps = state["completedapps"] + state["activeapps"]
    assert len(apps) == 1 and apps[0]["cores"] >= 1
    executor_logs = list(work_dir.glob("app-*/*/stderr"))
    assert executor_logs, "no executor ran on the worker"

    lh = Lakehouse(spark, _lakehouse_config(lakehouse))
    c360 = lh.read("gold.customer_360")
    customers = lh.read("silver.customer_xref").select("customer_id").distinct().count()
    assert c360.count() == customers > 0
    assert {r.region for r in c360.select("region").distinct().collect()} == {"us"}
    assert lh.read("gold.finance_revenue_monthly").count() > 0


def _lakehouse_config(root: Path):
    from customer360.config import LakehouseConfig

    return LakehouseConfig(root=str(root))


_NAMES_JOB = """
import sys
from customer360.config import load_config
from customer360.lakehouse import Lakehouse
from customer360.session import get_session

config = load_config("local", overrides=[f"lakehouse.root={sys.argv[2]}"])
spark = get_session(config)
print("catalog:", spark.conf.get("spark.sql.catalogImplementation"))
if sys.argv[1] == "write":
    lakehouse = Lakehouse(spark, config.lakehouse)
    lakehouse.write(spark.createDataFrame([("us", 1), ("de", 2)], "region string, n int"), "ops.submitted")
    print("sync:", lakehouse.sync_catalog(["ops.submitted"]).describe())
else:
    print("rows:", sorted(tuple(r) for r in spark.table("ops.submitted").collect()))
"""


@pytest.mark.skipif(not find_jvm_jars().delta, reason="needs the Delta Lake jar (make jars)")
def test_local_submission_keeps_names_in_the_lakehouse_metastore(tmp_path):
    """spark-submit --master local with infra/spark/spark-defaults.local.conf: the job runs on
    delta-spark and the names it registers outlive it (the lakehouse's Derby metastore), so a
    second submission reads the table by name."""
    job = tmp_path / "names_job.py"
    job.write_text(_NAMES_JOB)
    lakehouse = tmp_path / "lh"
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": str(REPO / "lib")}
    (tmp_path / "jars").symlink_to(CHECKOUT_JARS, target_is_directory=True)

    def submit(mode: str) -> str:
        proc = subprocess.run(
            [str(SPARK_HOME / "bin" / "spark-submit"), "--properties-file",
             str(REPO / "infra" / "spark" / "spark-defaults.local.conf"), "--conf", "spark.driver.memory=1g",
             str(job), mode, str(lakehouse)],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return proc.stdout

    written = submit("write")
    assert "catalog: hive" in written
    assert "sync: 1 tables named in the Hive metastore" in written and "1 registered" in written
    assert (lakehouse / "_catalog" / "metastore_db").is_dir()
    assert not (tmp_path / "derby.log").exists()  # Derby's log goes to the metastore folder
    read = submit("read")
    assert "rows: [('de', 2), ('us', 1)]" in read
