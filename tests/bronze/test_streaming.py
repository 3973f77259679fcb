"""Bronze as Structured Streaming file streams: the same rows as the batch path, only new files
later, a processing-time trigger picking up a file that lands while it runs, a listed file that
vanished, and a stream killed mid-batch that loses and duplicates nothing when restarted."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pyspark.sql.functions as F
from chispa import assert_df_equality

from customer360.bronze.ingest import ingest_sources, ingested_files
from customer360.bronze.stage import run, run_stream
from customer360.bronze.streaming import checkpoint_location
from customer360.config import load_config
from customer360.context import build_context
from customer360.tables import QUARANTINE, current_table

from tests.bronze.conftest import put
from tests.bronze.test_ingest import CRM_ROWS, crm_file
from tests.conftest import CONF_DIR

EVENTS = [
    '{"event_id":"E1","event_ts":"2026-03-01T10:00:00+01:00","event_type":"login","cookie_id":"c1","login_email":"a@x.de","region":"de"}',
    '{"event_id":"E2","event_ts":"2026-03-01 10:00:00","event_type":"page_view","region":"de","campaign":"spring"}',
    '{"event_id":"E3","event_ts":"2026-03-01T1',
    '{"event_id":"E5","event_ts":"2026-03-01T10:00:00Z","event_type":"teleport","region":"de"}',
]
SOURCES = ["crm_customers", "web_events"]
METADATA = ["_ingested_at", "_run_id"]


def _context(spark, root, landing, run_id):
    config = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={root}", f"ingest.landing_root={landing}"])
    return build_context(config, spark=spark, regions=["us", "de"], run_id=run_id)


def _tables(ctx):
    """Bronze, current-state and quarantine rows less the run's own metadata (when and by which run)."""
    out = {}
    for source in SOURCES:
        out[source] = ctx.lakehouse.read(f"bronze.{source}").drop(*METADATA)
        out[f"{source} now"] = ctx.lakehouse.read(current_table(source)).drop(*METADATA)
    out["quarantine"] = ctx.lakehouse.read(QUARANTINE).drop("ingested_at", "run_id")
    return out


def _assert_same(got, want):
    for name in want:
        assert_df_equality(got[name], want[name], ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)


def _land_first_files(landing):
    crm_file(landing)  # 8 rows: 2 good, 6 quarantined (tests/bronze/test_ingest.py)
    put(landing, "web_events", "de", "events_0001.jsonl", "\n".join(EVENTS) + "\n")


def test_stream_loads_what_batch_loads_then_only_what_lands(spark, tmp_path):
    landing = tmp_path / "landing"
    _land_first_files(landing)
    streamed = _context(spark, tmp_path / "streamed", landing, "run-s1")
    result = run_stream(streamed, sources=SOURCES)
    assert result.lines == [
        "stream (availableNow): 2 batch(es) over 4 queries",
        "crm_customers: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 8 = loaded 2 + quarantined 6",
        "web_events: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 4 = loaded 2 + quarantined 2; new columns kept: campaign",
        "bronze.crm_customers_current: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as tombstones)",
        "bronze.web_events_current: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    metrics = {(m.region, m.metric, m.table): m.value for m in result.metrics}
    assert metrics[("us", "rows_quarantined", "bronze.crm_customers")] == 6
    assert metrics[("de", "rows_loaded", "bronze.web_events")] == 2
    assert metrics[("all", "stream_batches", None)] == 2
    for source in SOURCES:
        for region in ("us", "de"):
            assert (tmp_path / "streamed" / "_streams" / "ingest" / source / region / "offsets").is_dir()
    assert checkpoint_location(streamed, "web_events", "de") == f"{tmp_path / 'streamed'}/_streams/ingest/web_events/de"

    # the batch path on the same files writes the same rows
    batch = _context(spark, tmp_path / "batch", landing, "run-b1")
    run(batch, sources=SOURCES)
    _assert_same(_tables(streamed), _tables(batch))

    # continuous: a file landing while the stream runs is loaded; nothing loaded before is read again
    second = CRM_ROWS[0].replace("CRM-1", "CRM-9")
    timer = threading.Timer(3.0, lambda: crm_file(landing, name="crm_us_0002.csv", rows=[second]))
    timer.start()
    streamed2 = _context(spark, tmp_path / "streamed", landing, "run-s2")
    result = run_stream(streamed2, sources=SOURCES, every_seconds=0.5, stop_after_seconds=20)
    timer.join()
    assert result.lines[1:] == [
        "crm_customers: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 1 = loaded 1 + quarantined 0",
        "web_events: files 0 new, 0 unchanged, 0 changed, 0 failed; rows read 0 = loaded 0 + quarantined 0",
        "bronze.crm_customers_current: 1 new bronze row(s) of 1 load(s) merged, 1 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    assert result.lines[0].startswith("stream (every 0.5 s): 1 batch(es) over 4 queries")
    run(_context(spark, tmp_path / "batch", landing, "run-b2"), sources=SOURCES)
    _assert_same(_tables(streamed2), _tables(batch))
    statuses = [(r.file, r.status) for r in ingested_files(streamed2.lakehouse).collect()]
    assert sorted(statuses) == [
        ("crm_customers/us/crm_us_0001.csv", "loaded"),
        ("crm_customers/us/crm_us_0002.csv", "loaded"),
        ("web_events/de/events_0001.jsonl", "loaded"),
    ]
    # a batch run after the stream finds nothing new: they share the ledger
    again = run(_context(spark, tmp_path / "streamed", landing, "run-b3"), sources=SOURCES)
    assert [line.split(";")[0] for line in again.lines] == [
        "crm_customers: files 0 new, 2 unchanged, 0 changed, 0 failed",
        "web_events: files 0 new, 1 unchanged, 0 changed, 0 failed",
    ]


def test_a_listed_file_that_is_gone_is_reported_not_fatal(spark, tmp_path):
    landing = tmp_path / "landing"
    crm_file(landing)
    ctx = _context(spark, tmp_path / "lh", landing, "run-1")
    listed = {"crm_customers/us/crm_us_0001.csv", "crm_customers/us/crm_us_0002.csv"}
    (report,) = ingest_sources(ctx, ["crm_customers"], now=datetime.now(timezone.utc), only={"crm_customers": listed})
    assert report.files_vanished == ["crm_customers/us/crm_us_0002.csv"]
    assert (report.files_new, report.rows_read, report.rows_loaded) == (1, 8, 2)
    assert report.line().endswith("; 1 listed file(s) gone before reading: crm_customers/us/crm_us_0002.csv")
    # a file the stream did not list is left for later
    crm_file(landing, name="crm_us_0003.csv", rows=[CRM_ROWS[0].replace("CRM-1", "CRM-3")])
    (later,) = ingest_sources(ctx, ["crm_customers"], now=datetime.now(timezone.utc), only={"crm_customers": set()})
    assert (later.files_new, later.files_unchanged, later.rows_read) == (0, 0, 0)


KILLED_MID_BATCH = """
import os, signal, sys
from customer360 import cli
from customer360.bronze import ingest

calls = []
original = ingest._record_files

def record_then_die(ctx, rows):
    calls.append(rows)
    if len(calls) == 2:  # the first batch's rows are in bronze; its files are still `loading`
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(ctx, rows)

ingest._record_files = record_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_stream_killed_mid_batch_loses_and_duplicates_nothing(spark, tmp_path):
    landing = tmp_path / "landing"
    _land_first_files(landing)
    root = tmp_path / "lh"
    argv = [
        "ingest", "--stream", "--conf-dir", str(CONF_DIR), "--region", "us,de", "--source", "crm_customers",
        "--source", "web_events", "--set", f"lakehouse.root={root}", "--set", f"ingest.landing_root={landing}",
        "--set", "lakehouse.catalog.enabled=false",
    ]
    env = {**os.environ, "C360_PII_HASH_KEY": "k" * 40, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_BATCH, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-3000:]
    ctx = _context(spark, root, landing, "run-restart")
    # the killed batch wrote its rows, and its file is still marked loading
    assert ctx.lakehouse.read("bronze.crm_customers").count() == 2
    assert [(r.file, r.status) for r in ingested_files(ctx.lakehouse).collect()] == [("crm_customers/us/crm_us_0001.csv", "loading")]

    result = run_stream(ctx, sources=SOURCES)  # restarted from the checkpoint
    assert result.lines[1:] == [
        "crm_customers: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 8 = loaded 2 + quarantined 6",
        "web_events: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 4 = loaded 2 + quarantined 2; new columns kept: campaign",
        "bronze.crm_customers_current: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as tombstones)",
        "bronze.web_events_current: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    batch = _context(spark, tmp_path / "batch", landing, "run-b")
    run(batch, sources=SOURCES)
    _assert_same(_tables(ctx), _tables(batch))
    assert ctx.lakehouse.read("bronze.crm_customers").groupBy("crm_id").count().where(F.col("count") > 1).count() == 0
    assert sorted((r.file, r.status) for r in ingested_files(ctx.lakehouse).collect()) == [
        ("crm_customers/us/crm_us_0001.csv", "loaded"),
        ("web_events/de/events_0001.jsonl", "loaded"),
    ]


def test_stream_options_go_together(capsys):
    from customer360 import cli

    assert cli.main(["ingest", "--every", "5", "--conf-dir", str(CONF_DIR)]) == 2
    assert "--every, --stop-after and --max-files-per-trigger go with --stream" in capsys.readouterr().err
    assert cli.main(["ingest", "--stream", "--stop-after", "5", "--conf-dir", str(CONF_DIR)]) == 2
    assert "--stop-after goes with --every (availableNow stops by itself)" in capsys.readouterr().err


def test_paths_spark_lists_map_to_the_ledger_names():
    from customer360.bronze.streaming import _relative

    assert _relative("crm_customers", "us", "file:/l/crm_customers/us/a.csv") == "crm_customers/us/a.csv"
    # Hadoop writes paths unencoded: '#', '?', '%' and spaces are part of the name
    assert _relative("orders", "de", "s3a://bucket/l/orders/de/o #2 ?x 100%.parquet") == "orders/de/o #2 ?x 100%.parquet"
    assert _relative("orders", "de", "file:/l/orders/de/sub/o.parquet") is None  # subfolders: skipped, as in batch
    assert _relative("orders", "de", "file:/l/orders/us/o.parquet") is None
