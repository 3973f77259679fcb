"""infra/: spark-defaults for local and cluster runs, the Kubernetes SparkApplication and the
Databricks cluster policy parse, agree with the code, and name entry points that exist."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyspark
import yaml

from customer360 import cli, jobs
from customer360.config import load_config
from customer360.session import DELTA_CATALOG, DELTA_EXTENSION, JvmJars, jvm_session_conf, local_session_conf

from tests.conftest import CONF_DIR, REPO

INFRA = REPO / "infra"
SETUP = (REPO / "setup.py").read_text()
DELTA = re.search(r'"delta-spark==([\d.]+)"', SETUP).group(1)
GRAPHFRAMES = re.search(r'"graphframes-py==([\d.]+)"', SETUP).group(1)
SPARK = ".".join(pyspark.__version__.split(".")[:2])
PACKAGES = f"io.delta:delta-spark_{SPARK}_2.13:{DELTA},io.graphframes:graphframes-spark4_2.13:{GRAPHFRAMES}"


def _properties(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(settings, commented-out settings) of a spark-defaults file."""
    active, commented = {}, {}
    for line in (INFRA / "spark" / name).read_text().splitlines():
        text = line.strip()
        target = active
        if text.startswith("#"):
            text, target = text.lstrip("# "), commented
        match = re.fullmatch(r"(spark\.[\w.]+)\s+(\S.*)", text)
        if match:
            target[match.group(1)] = match.group(2).strip()
        else:
            assert line.startswith("#") or not text, f"{name}: not 'key value': {line!r}"
    return active, commented


def test_local_spark_defaults_are_the_local_session_settings():
    active, _ = _properties("spark-defaults.local.conf")
    config = load_config("local", conf_dir=CONF_DIR)
    expected = local_session_conf(config)
    expected.pop("spark.app.name")  # spark-submit names the application after the script
    # no catalog setting: a local submission with Delta's catalog keeps names in the Derby metastore
    assert expected.pop("spark.sql.catalogImplementation") == "in-memory"
    jars = JvmJars(Path("jars"), (Path("jars/delta-spark.jar"),), delta_version=DELTA, graphframes_version=None)
    expected |= jvm_session_conf(jars, shuffle_partitions=config.spark.shuffle_partitions)
    expected["spark.jars"] = "jars/*.jar"  # the folder `make jars` fills, relative to the checkout
    expected["spark.driver.extraJavaOptions"] = "-Xss8m -Dlog4j2.configurationFile=lib/customer360/log4j2-redacted.properties"
    assert active == expected


def test_cluster_spark_defaults():
    active, commented = _properties("spark-defaults.cluster.conf")
    assert active["spark.sql.session.timeZone"] == "UTC"
    assert active["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert "spark.master" not in active  # the cluster comes from --master
    # the jars `make jars` copies, with Delta's extension and catalog
    assert active["spark.jars"] == "jars/*.jar"
    assert active["spark.sql.extensions"] == DELTA_EXTENSION
    assert active["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG


def test_kubernetes_spark_application_runs_a_real_job():
    app = yaml.safe_load((INFRA / "kubernetes" / "sparkapplication.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
    spec = app["spec"]
    assert spec["type"] == "Python" and spec["sparkVersion"] == pyspark.__version__
    job = re.fullmatch(r"local:///opt/customer360/jobs/(\w+)\.py", spec["mainApplicationFile"]).group(1)
    assert (REPO / "jobs" / f"{job}.py").is_file() and job in jobs.JOBS
    args = cli.build_parser().parse_args(jobs.job_argv(job, spec["arguments"]))
    config = load_config(args.env, conf_dir=CONF_DIR, overrides=args.overrides)
    assert config.select_regions(args.region) == config.select_regions(["all"])
    # hadoop-aws must match the Hadoop that pyspark ships
    hadoop = next((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")).name
    version = hadoop.removeprefix("hadoop-client-api-").removesuffix(".jar")
    assert spec["sparkConf"]["spark.jars.packages"] == f"{PACKAGES},org.apache.hadoop:hadoop-aws:{version}"
    # pyarrow (ingest's file listing) has no s3a scheme: s3:// served to Spark by S3A
    assert all(not a.startswith(("lakehouse.root=s3a", "ingest.landing_root=s3a")) for a in spec["arguments"])
    assert spec["sparkConf"]["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    assert spec["sparkConf"]["spark.sql.session.timeZone"] == "UTC"
    key = {e["name"]: e for e in spec["driver"]["env"]}["C360_PII_HASH_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "customer360", "key": "pii_hash_key"}


def test_databricks_cluster_policy_fits_the_bundle():
    policy = json.loads((INFRA / "databricks" / "cluster-policy.json").read_text())
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())["variables"]
    assert bundle["spark_version"]["default"] in policy["spark_version"]["values"]
    assert bundle["node_type_id"]["default"] in policy["node_type_id"]["values"]
    assert policy["num_workers"]["minValue"] <= bundle["num_workers"]["default"] <= policy["num_workers"]["maxValue"]
    assert policy["spark_conf.spark.sql.session.timeZone"] == {"type": "fixed", "value": "UTC"}
    assert policy["spark_env_vars.C360_PII_HASH_KEY"]["value"] == "{{secrets/customer360/pii_hash_key}}"
    for rule in policy.values():
        assert rule["type"] in {"fixed", "allowlist", "range", "blocklist", "regex", "unlimited", "forbidden"}
