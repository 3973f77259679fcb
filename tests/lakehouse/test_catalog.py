"""Tables by name: the lakehouse's tables registered in the session's catalog (in-memory in the test
session; Spark's Derby metastore under the root in a fresh ``c360`` process)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from chispa import assert_df_equality

from customer360.config import CatalogConfig, LakehouseConfig, load_config
from customer360.errors import ConfigError, TableNameError
from customer360.lakehouse import Lakehouse
from customer360.lakehouse.catalog import CatalogError, TableCatalog, sql_literal, table_location
from customer360.session import detect_capabilities, local_metastore_dir, metastore_busy, metastore_conf
from tests.conftest import CONF_DIR, REPO


@pytest.fixture
def delta_spark(spark):
    if not detect_capabilities(spark).delta_spark:
        pytest.skip("table names need Delta Lake's jar (run `make jars`)")
    return spark


def _lakehouse(spark, root, *, engine: str = "delta-spark") -> Lakehouse:
    return Lakehouse(spark, LakehouseConfig(root=str(root), engine=engine))


def _people(spark, lakehouse: Lakehouse, rows) -> None:
    df = spark.createDataFrame(rows, "id long, name string, region string")
    lakehouse.write(df, "silver.people", mode="overwrite", partition_by=["region"])


def test_every_table_is_named_and_reads_as_its_path(delta_spark, tmp_path):
    spark = delta_spark
    lakehouse = _lakehouse(spark, tmp_path / "lh")
    _people(spark, lakehouse, [(1, "ann", "us"), (2, "bo", "de")])
    lakehouse.write(spark.createDataFrame([(1, 9.5)], "id long, score double"), "gold.scores")

    sync = lakehouse.sync_catalog()
    assert (sync.registered, sync.repointed, sync.unchanged, sync.failed) == (["gold.scores", "silver.people"], [], [], [])
    assert_df_equality(spark.table("silver.people"), lakehouse.read("silver.people"), ignore_row_order=True)
    assert spark.sql("SELECT name FROM silver.people WHERE region = 'de'").collect()[0]["name"] == "bo"
    # the name follows the table's new versions, and a second sync changes nothing
    lakehouse.write(spark.createDataFrame([(3, "cy", "us")], "id long, name string, region string"), "silver.people", mode="append")
    assert spark.table("silver.people").count() == 3
    again = lakehouse.sync_catalog()
    assert (again.registered, again.unchanged) == ([], ["gold.scores", "silver.people"])
    assert again.describe() == "2 tables named in the session's in-memory catalog (0 registered, 0 re-pointed, 2 unchanged)"
    # the name is an external table over the lakehouse's own path
    detail = spark.sql("DESCRIBE DETAIL silver.people").first()
    assert detail["location"].rstrip("/").endswith(str(tmp_path / "lh" / "silver" / "people"))
    assert lakehouse.table_name("silver.people") == "`silver`.`people`"


def test_in_a_private_catalog_names_follow_the_last_lakehouse_and_dropping_keeps_the_files(delta_spark, tmp_path):
    spark = delta_spark
    first, second = _lakehouse(spark, tmp_path / "a"), _lakehouse(spark, tmp_path / "b")
    _people(spark, first, [(1, "ann", "us")])
    _people(spark, second, [(7, "zed", "us"), (8, "yu", "us")])
    first.sync_catalog()
    assert [r["name"] for r in spark.table("silver.people").collect()] == ["ann"]
    sync = second.sync_catalog()
    assert sync.repointed == ["silver.people"]
    assert sorted(r["name"] for r in spark.table("silver.people").collect()) == ["yu", "zed"]
    assert first.read("silver.people").count() == 1  # the old name's table is untouched


def test_a_shared_metastore_never_gives_a_name_to_another_lakehouse(delta_spark, tmp_path, monkeypatch):
    spark = delta_spark
    first, second = _lakehouse(spark, tmp_path / "a"), _lakehouse(spark, tmp_path / "b")
    _people(spark, first, [(1, "ann", "us")])
    _people(spark, second, [(7, "zed", "us")])
    first.sync_catalog()
    monkeypatch.setattr(TableCatalog, "kind", lambda self: "hive")
    with pytest.raises(CatalogError, match=r"`silver`.`people` names the table at .*/a/silver/people, not this lakehouse's .*/b/silver/people"):
        second.catalog.register("silver.people")
    sync = second.sync_catalog()
    assert [name for name, _ in sync.failed] == ["silver.people"] and sync.registered == []
    assert "1 not registered, e.g. silver.people: `silver`.`people` names the table at" in sync.describe()
    assert [r["name"] for r in spark.table("silver.people").collect()] == ["ann"]


def test_a_delta_rs_table_is_named_too(delta_spark, tmp_path):
    spark = delta_spark
    lakehouse = _lakehouse(spark, tmp_path / "lh", engine="delta-rs")
    _people(spark, lakehouse, [(1, "ann", "us")])
    sync = lakehouse.sync_catalog(["silver.people"])
    assert sync.names == ["silver.people"] and sync.failed == []
    assert spark.table("silver.people").collect()[0]["name"] == "ann"


def test_names_are_checked_before_any_catalog_call(delta_spark, tmp_path):
    lakehouse = _lakehouse(delta_spark, tmp_path / "lh")
    with pytest.raises(TableNameError, match="must be <layer>.<table>"):
        lakehouse.sync_catalog(["gold.x; DROP TABLE silver.people"])
    with pytest.raises(TableNameError, match="must be <layer>.<table>"):
        lakehouse.table_name("GOLD.x")


def test_without_delta_lakes_catalog_no_name_is_registered_and_the_reason_is_given(tmp_path):
    spark = SimpleNamespace(conf=SimpleNamespace(get=lambda key, default=None: "" if "spark_catalog" in key else "in-memory"))
    catalog = TableCatalog(spark, str(tmp_path))
    sync = catalog.sync(["gold.customer_360"])
    assert sync.registered == [] and sync.failed == [(
        "gold.customer_360",
        "table names need Delta Lake's JVM classes (run `make jars`); this session reads the tables by path only",
    )]


def test_unity_catalog_names_are_three_level_and_the_statements_quote_what_they_carry(tmp_path):
    spark = SimpleNamespace(conf=SimpleNamespace(get=lambda key, default=None: default))
    catalog = TableCatalog(spark, "s3://bucket/it's\\here", catalog_name="main")
    assert catalog.kind() == "unity" and catalog.describe() == "Unity Catalog catalog main"
    assert catalog.qualified("gold.customer_360") == "`main`.`gold`.`customer_360`"
    location = table_location("s3://bucket/it's\\here", "gold.customer_360")
    assert location == "s3://bucket/it's\\here/gold/customer_360"
    assert catalog.statements("gold.customer_360", location) == [
        "CREATE SCHEMA IF NOT EXISTS `main`.`gold`",
        "CREATE TABLE IF NOT EXISTS `main`.`gold`.`customer_360` USING DELTA LOCATION 's3://bucket/it\\'s\\\\here/gold/customer_360'",
    ]
    assert sql_literal("a'b\\c") == "'a\\'b\\\\c'"
    # a local root is recorded as an absolute path, wherever the command ran
    assert table_location("lh", "gold.x") == f"{(tmp_path.cwd() / 'lh').resolve()}/gold/x"


def test_the_named_catalog_must_be_the_governed_one():
    with pytest.raises(ConfigError, match="lakehouse.catalog.name: the tables are named in catalog 'other' but the governance statements target 'main'"):
        load_config("local", conf_dir=CONF_DIR, overrides=["lakehouse.catalog.name=other"])
    assert load_config("local", conf_dir=CONF_DIR, overrides=["lakehouse.catalog.name=main"]).lakehouse.catalog.name == "main"
    with pytest.raises(ConfigError, match="lakehouse.catalog.name"):
        load_config("local", conf_dir=CONF_DIR, overrides=["lakehouse.catalog.name=a.b"])


def test_the_local_metastore_lives_under_a_local_root_only(tmp_path):
    def folder(root, metastore="derby"):
        config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={root}", f"lakehouse.catalog.local_metastore={metastore}"])
        return local_metastore_dir(config)

    assert folder(tmp_path / "lh") == tmp_path / "lh" / "_catalog"
    assert folder(f"file://{tmp_path}/lh") == tmp_path / "lh" / "_catalog"
    assert folder("s3://bucket/lh") is None and folder("dbfs:/lh") is None
    assert folder(tmp_path / "lh", "memory") is None
    assert folder(f"{tmp_path}/a;create=false") is None  # a path a JDBC URL cannot carry
    conf = metastore_conf(tmp_path / "_catalog", java_options="-Xss4m")
    assert conf["spark.sql.catalogImplementation"] == "hive"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == f"jdbc:derby:;databaseName={tmp_path}/_catalog/metastore_db;create=true"
    assert conf["spark.driver.extraJavaOptions"] == f"-Xss4m -Dderby.system.home={tmp_path}/_catalog"
    assert CatalogConfig().local_metastore == "derby"


def test_a_metastore_another_process_holds_is_seen_as_busy(tmp_path):
    folder = tmp_path / "_catalog"
    assert not metastore_busy(folder)  # never booted
    (folder / "metastore_db").mkdir(parents=True)
    lock = folder / "metastore_db" / "dbex.lck"
    lock.write_text("")
    assert not metastore_busy(folder)  # a lock file left by a process that exited
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(lock)!r}, os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX)   # what Derby's FileChannel lock is on Linux
            print("held", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert metastore_busy(folder)
    finally:
        holder.communicate("", timeout=30)
    assert not metastore_busy(folder)


@pytest.mark.slow
def test_names_persist_in_the_derby_metastore_between_processes(delta_spark, tmp_path):
    """`c360 catalog` registers the tables in <root>/_catalog; a later process that only opens a
    session reads them by name."""
    root = tmp_path / "lh"
    lakehouse = _lakehouse(delta_spark, root)
    _people(delta_spark, lakehouse, [(1, "ann", "us"), (2, "bo", "de")])
    base = ["--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={root}"]

    proc = subprocess.run([sys.executable, "-m", "customer360.cli", "catalog", *base],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["silver.people\tregistered"]
    assert f"1 tables named in the Hive metastore (file:{root}/_catalog/warehouse) (1 registered" in proc.stderr
    assert (root / "_catalog" / "metastore_db").is_dir() and (root / "_catalog" / "derby.log").is_file()

    reader = textwrap.dedent(f"""
        from customer360.config import load_config
        from customer360.session import get_session
        config = load_config("local", conf_dir={str(CONF_DIR)!r}, overrides=["lakehouse.root={root}"])
        spark = get_session(config)
        print(sorted(r["name"] for r in spark.table("silver.people").collect()))
    """)
    proc = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['ann', 'bo']"



def test_c360_catalog_prints_its_statements_and_refuses_an_empty_lakehouse(delta_spark, tmp_path, capsys):
    from customer360.cli import main

    root = tmp_path / "lh"
    base = ["--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={root}"]
    assert main(["catalog", *base]) == 2
    assert capsys.readouterr().err.strip() == f"c360 catalog: error: no tables under {root} to name"
    _people(delta_spark, _lakehouse(delta_spark, root), [(1, "ann", "us")])
    assert main(["catalog", "--print-sql", *base]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "CREATE SCHEMA IF NOT EXISTS `silver`;",
        f"CREATE TABLE IF NOT EXISTS `silver`.`people` USING DELTA LOCATION '{root}/silver/people';",
    ]
    assert main(["catalog", *base]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() in (["silver.people\tregistered"], ["silver.people\tre-pointed"])
    assert delta_spark.table("silver.people").count() == 1
