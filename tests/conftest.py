"""Shared fixtures. Spark is pytest-spark's one session-scoped ``spark_session`` (see pytest.ini)."""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from customer360 import tables
from customer360.config import LakehouseConfig
from customer360.lakehouse import Lakehouse

REPO = Path(__file__).resolve().parents[1]


def load_script(path: Path, name: str):
    """A script that is not part of the package (benchmarks/, jobs/) imported as module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
CONF_DIR = REPO / "conf"

# pandas UDFs run in Python workers: they must use this interpreter (it has the package).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """The test session loads the same JVM jars as `c360` (Delta Lake, GraphFrames when fetched):
    pytest-spark's settings (pytest.ini) plus customer360.session.jvm_session_conf."""
    from pytest_spark.config import SparkConfigBuilder

    from customer360.session import check_jar_versions, find_jvm_jars, jvm_session_conf

    jars = find_jvm_jars()
    check_jar_versions(jars)
    builder = SparkConfigBuilder.get()
    partitions = int(SparkConfigBuilder.options.get("spark.sql.shuffle.partitions", 2))
    for key, value in jvm_session_conf(jars, shuffle_partitions=partitions).items():
        builder.set(key, value)
        SparkConfigBuilder.options[key] = value if key != "spark.jars" else f"{len(jars.jars)} jars from {jars.folder}"


#: session fixtures built once per test process, whose users must share one worker under
#: pytest-xdist (`make test` runs two): they also depend on running in collection order
SHARED_SAMPLES = {"pipeline_sample", "scored_sample"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Groups for ``pytest -n N --dist loadgroup``: each test module is one group (its module
    fixtures are built once), and every module using the shared sample is one group together (the
    sample is built once, and tests/gold runs before tests/ml on it, as without workers)."""
    by_module: dict[str, list] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::")[0], []).append(item)
    for module, module_items in by_module.items():
        shared = any(SHARED_SAMPLES & set(getattr(i, "fixturenames", ())) for i in module_items)
        for item in module_items:
            item.add_marker(pytest.mark.xdist_group("shared_sample" if shared else module))


#: what a test JVM prints as it ends itself (Spark exits the process on a fatal error in a task or
#: an uncaught one in a thread): every later test of that worker then fails with "Connection refused"
JVM_FATAL = re.compile(r"OutOfMemoryError|StackOverflowError|Uncaught exception in thread|"
                       r"A fatal error has been detected by the Java Runtime")
_jvm_fatal: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark the lines of a test's captured output that tell why a test JVM died on its report
    (pytest-xdist passes user properties on to the controller; passing tests' output it drops)."""
    report = yield
    for name, text in report.sections:
        if name.startswith(("Captured std", "Captured log")):
            report.user_properties.extend(("jvm_fatal", line.strip()[:400])
                                          for line in text.splitlines() if JVM_FATAL.search(line))
    return report


def pytest_runtest_logreport(report):
    _jvm_fatal.extend(f"{report.nodeid}: {line}" for key, line in report.user_properties if key == "jvm_fatal")


def pytest_terminal_summary(terminalreporter):
    """Those lines again at the end of the run, where a CI log's tail shows them."""
    if _jvm_fatal:
        terminalreporter.section("fatal errors the test JVMs printed")
        for line in list(dict.fromkeys(_jvm_fatal))[:30]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def spark(spark_session, tmp_path_factory):
    spark_session.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("checkpoints")))
    spark_session.sparkContext.setLogLevel("ERROR")
    return spark_session



@pytest.fixture(scope="module", autouse=True)
def _release_jvm_objects(request):
    """After each test module, what it left for the test JVM to keep is let go: Python objects in
    reference cycles (DataFrames, plans: each holds JVM objects until Python collects it) and Delta
    Lake's cache of table logs (every table the module wrote). Without this a worker's JVM held
    2.2 GB after a full GC three quarters through the suite (CI lost one to it).

    With C360_HEAP_LOG=FILE, a line per module: the JVM's heap in use after a full GC, and its
    largest classes."""
    yield
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:  # no session started yet: none is started for this
        return
    import gc

    gc.collect()
    try:
        context._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    except Exception:  # noqa: BLE001 - no Delta Lake jar in this session (delta-rs runs)
        pass
    target = os.environ.get("C360_HEAP_LOG")
    if not target:
        return
    import subprocess

    pid = str(context._jvm.java.lang.ProcessHandle.current().pid())
    subprocess.run(["jcmd", pid, "GC.run"], capture_output=True, timeout=120)
    heap = subprocess.run(["jcmd", pid, "GC.heap_info"], capture_output=True, text=True, timeout=60).stdout.splitlines()
    histogram = subprocess.run(["jcmd", pid, "GC.class_histogram"], capture_output=True, text=True, timeout=120).stdout.splitlines()
    used = re.search(r"used (\d+)K", " ".join(heap))
    with open(target, "a") as out:
        out.write(f"{pid} {int(used.group(1)) // 1024 if used else -1} MB {request.module.__name__} | "
                  + " | ".join(" ".join(t.split()[1:]) for t in histogram[3:6]) + "\n")

SAMPLE_REGIONS = ["us", "de"]

#: a person planted in the shared sample's de sources (tests/governance erases them); every value
#: is unique to them, so a scan of the lakehouse for these strings finds only them
PLANTED = {
    "first_name": "Zebulon", "last_name": "Quillfeather", "email": "Zebulon.Quillfeather@planted-mail.example",
    "phone": "+49 30 98765432", "street": "Quillweg 77", "loyalty": "LOY-PLANTED-7731", "cookie": "ck-planted-7731",
    "device": "dv-planted-7731",
}
#: strings no file under the lakehouse may contain after the erasure (compared case-insensitively)
PLANTED_TRACES = ("zebulon", "quillfeather", "planted", "98765432", "quillweg")


def plant_person(sources: Path, region: str = "de") -> dict[str, list[str]]:
    """Add the planted person to ``sources`` as new files next to the generated ones: a CRM record,
    a web login, two order lines (one invalid: quantity 0, so it is quarantined), a ticket (and two
    quarantined ones naming the person only by phone or by a plus-tagged address) and a marketing
    opt-in. Returns source -> files written."""
    import json

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = PLANTED
    written: dict[str, list[str]] = {}

    def first(source: str, pattern: str) -> Path:
        return sorted((sources / source / region).glob(pattern))[0]

    crm = pd.read_csv(first("crm_customers", "*.csv"), dtype=str, nrows=1, keep_default_na=False)
    crm = crm.assign(crm_id="CRM-PLANTED-1", account_type="B2C", company_name="", first_name=p["first_name"],
                     last_name=p["last_name"], email=p["email"], phone=p["phone"], street=p["street"], loyalty_number=p["loyalty"])
    target = sources / "crm_customers" / region / f"crm_customers_{region}_0902.csv"
    crm.to_csv(target, index=False)
    written["crm_customers"] = [str(target)]

    tickets = pd.read_csv(first("support_tickets", "*.csv"), dtype=str, nrows=1, keep_default_na=False)
    tickets = tickets.assign(ticket_id="T-PLANTED-1", contact_first_name=p["first_name"], contact_last_name=p["last_name"],
                             contact_email=p["email"].lower(), contact_phone=p["phone"])
    # two quarantined tickets (satisfaction 9 of 5) that name the person only by the phone number as
    # dialled at home, and only by a plus-tagged address in other case: the erasure must find both
    quarantined = tickets.assign(contact_first_name="", contact_last_name="", satisfaction="9")
    tickets = pd.concat([
        tickets,
        quarantined.assign(ticket_id="T-Q-9001", contact_email="", contact_phone="030 98765432"),
        quarantined.assign(ticket_id="T-Q-9002", contact_email="Zebulon.Quillfeather+Support@Planted-Mail.EXAMPLE", contact_phone=""),
    ], ignore_index=True)
    target = sources / "support_tickets" / region / f"support_tickets_{region}_0902.csv"
    tickets.to_csv(target, index=False)
    written["support_tickets"] = [str(target)]

    def jsonl(source: str, changes: dict, keep=lambda row: True) -> None:
        with open(first(source, "*.jsonl")) as f:
            row = next(json.loads(line) for line in f if line.strip() and keep(json.loads(line)))
        row.update(changes)
        target = sources / source / region / f"{source}_{region}_0902.jsonl"
        target.write_text(json.dumps(row) + "\n")
        written[source] = [str(target)]

    jsonl("web_events", {"event_id": "EV-PLANTED-1", "login_email": p["email"], "cookie_id": p["cookie"], "device_id": p["device"]},
          keep=lambda row: row.get("login_email"))
    jsonl("consent", {"consent_event_id": "CE-PLANTED-1", "email": p["email"], "purpose": "marketing", "action": "opt_in"})

    orders = pq.read_table(first("orders", "*.parquet")).slice(0, 1).to_pandas()
    orders = pd.concat([orders, orders], ignore_index=True)
    orders["order_line_id"] = ["OL-PLANTED-1", "OL-PLANTED-2"]
    orders["order_id"] = "O-PLANTED-1"
    orders["customer_email"] = p["email"]
    orders["loyalty_number"] = p["loyalty"]
    orders.loc[1, "quantity"] = 0  # quarantined: the erasure must find it in bronze._quarantine too
    target = sources / "orders" / region / f"orders_{region}_0902.parquet"
    pq.write_table(pa.Table.from_pandas(orders, preserve_index=False), target)
    written["orders"] = [str(target)]
    return written


def raw_contact_values(sources: Path) -> set[str]:
    """Every raw email and phone number in the generated landing files (CRM and ticket CSVs, order
    Parquet, event JSON lines), as written and in the forms the pipeline derives from them
    (lower-case email; phone digits with a leading +): what must never show in a log, a run
    summary, an ops table or an MLflow run."""
    import json
    import re

    import pandas as pd

    values: set[str] = set()
    frames = [pd.read_csv(f, dtype=str) for f in sorted(sources.rglob("*.csv"))]
    frames += [pd.read_parquet(f) for f in sorted(sources.rglob("*.parquet"))]
    for f in sorted(sources.rglob("*.jsonl")):
        rows = []
        for line in f.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a broken line the generator wrote on purpose: its addresses still count
                values |= set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", line))
                continue
            if isinstance(row, dict):
                rows.append(row)
        frames.append(pd.DataFrame(rows))
    for frame in frames:
        for column in frame.columns:
            if "email" not in column and "phone" not in column:
                continue
            for value in frame[column].dropna().astype(str):
                value = value.strip()
                if "@" in value and len(value) >= 6:
                    values |= {value, value.lower()}
                digits = re.sub(r"\D", "", value)
                # a placeholder such as 0000000000 names nobody (and shows up in any numeric dump)
                if "phone" in column and len(digits) >= 7 and len(set(digits)) > 1:
                    values |= {value, "+" + digits}
    return values


@pytest.fixture(scope="session")
def pipeline_sample(spark, tmp_path_factory):
    """About 800 people in us and de (plus ``PLANTED`` in de) through ingest, identity, facts and gold, once per test run:
    (context, generated data, facts result, gold result). tests/gold checks the stages on it, then
    re-runs de only; tests/ml (which runs later) trains and scores us."""
    from datetime import datetime

    from customer360.bronze.stage import run as ingest
    from customer360.config import load_config
    from customer360.facts import stage as facts
    from customer360.generate import generate
    from customer360.gold import stage as gold
    from customer360.identity import stage as identity
    from customer360.context import build_context

    root = tmp_path_factory.mktemp("pipeline_sample")
    data = generate(root / "sample", scale=0.008, seed=11, regions=SAMPLE_REGIONS, consent_regimes={"us": "opt_out", "de": "opt_in"})
    plant_person(data.sources, "de")
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={root / 'lh'}", f"ingest.landing_root={data.sources}", "pipeline.regions=[us, de]"],
    )
    ctx = build_context(config, spark=spark, regions=SAMPLE_REGIONS, run_id="run-1")
    ingest(ctx, now=datetime(2026, 7, 1, 12))
    identity.run(ctx, now=datetime(2026, 7, 1, 13))
    facts_result = facts.run(ctx)
    gold_result = gold.run(ctx)
    return ctx, data, facts_result, gold_result


#: settings that keep model training in tests short
ML_FAST = [
    "regions.us.segment_count={min: 3, max: 4}",
    "ml.segmentation.stability.bootstrap_samples=1",
    "ml.churn.gbt.max_iter=30",
    "ml.churn.gbt.tune={}",
    "ml.churn.logistic.tune={reg_param: [0.01, 0.1]}",
    "ml.churn.random_forest.num_trees=20",
    "ml.churn.backtest.folds=2",
]


@pytest.fixture(scope="session")
def scored_sample(spark, pipeline_sample):
    """The shared sample's us region (built through gold; tests/gold change only de) after the ml
    stage: trained, then scored, once per test run: (root, data, context, ml result). Used by
    tests/ml and the notebook tests."""
    import pyspark.sql.functions as F

    from customer360.config import load_config
    from customer360.ml import stage as ml
    from customer360.context import build_context

    sample_ctx, data, _, _ = pipeline_sample
    root = Path(sample_ctx.config.lakehouse.root).parent
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={root / 'lh'}", f"ingest.landing_root={data.sources}", "pipeline.regions=[us]", *ML_FAST],
    )
    ctx = build_context(config, spark=spark, regions=["us"], run_id="ml-1")

    def de_rows():
        return {
            name: sorted(map(tuple, ctx.lakehouse.read(name).where(F.col("region") == "de").collect()), key=repr)
            for name in (tables.CUSTOMER_360, tables.CUSTOMER_FEATURES) if ctx.lakehouse.exists(name)
        }

    before = de_rows()
    result = ml.run(ctx)
    assert result.errors == [], result.errors  # a training failure shows here, not as a missing table later
    # region isolation: training and scoring us wrote nothing of de
    assert de_rows() == before
    return root, data, ctx, result


@pytest.fixture
def conf_dir(tmp_path) -> Path:
    """A private copy of conf/ that a test may edit."""
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    return target


@pytest.fixture
def lakehouse_config(tmp_path) -> LakehouseConfig:
    return LakehouseConfig(root=str(tmp_path / "lakehouse"))


@pytest.fixture
def lakehouse(spark, lakehouse_config) -> Lakehouse:
    return Lakehouse(spark, lakehouse_config)


def catalog_mismatches(ctx) -> list[str]:
    """What the lakehouse of ``ctx`` holds that the catalog (customer360.tables) does not say."""
    import pyspark.sql.functions as F

    lakehouse, problems = ctx.lakehouse, []
    for name in lakehouse.tables():
        try:
            entry = tables.table(name)
        except KeyError as exc:
            problems.append(str(exc))
            continue
        keys = list(entry.keys)
        if entry.name == tables.BRONZE_SOURCE:
            keys[0] = ctx.config.sources[name.split(".", 1)[1]].attributes["source_record_id"]
        elif entry.name == tables.SOURCE_CURRENT:
            keys[1] = ctx.config.sources[name.split(".", 1)[1].removesuffix("_current")].attributes["source_record_id"]
        if lakehouse.partition_columns(name) != list(entry.partition_by):
            problems.append(f"{name}: partitioned by {lakehouse.partition_columns(name)}, the catalog says {list(entry.partition_by)}")
        df = lakehouse.read(name)
        missing = [k for k in keys if k not in df.columns]
        if missing:
            problems.append(f"{name}: key columns {missing} are not in the table")
            continue
        # one job a table: rows, and distinct keys (a struct counts keys with null fields too)
        counts = df.agg(F.count(F.lit(1)).alias("rows"), F.count_distinct(F.struct(*keys)).alias("keys")).first()
        repeated = counts["rows"] - counts["keys"]
        if repeated:
            problems.append(f"{name}: {repeated} rows repeat the key {keys}")
    return problems
