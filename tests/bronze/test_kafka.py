"""Web events from Kafka: a real broker (Apache Kafka's jars, KRaft mode, on loopback) started by
this module; each micro-batch kept as a landing file and loaded by the batch path, so a message
becomes a bronze row or a quarantine row with its reason, read = loaded + quarantined; later runs
take only new messages; a stream killed mid-batch and restarted from its checkpoint loses and
duplicates nothing."""
from __future__ import annotations

import os
import subprocess
import sys

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from customer360.bronze import kafka
from customer360.bronze.ingest import ingested_files
from customer360.bronze.stage import run, run_stream
from customer360.bronze.streaming import stream_ingest
from customer360.config import load_config
from customer360.context import build_context
from customer360.errors import ConfigError
from customer360.services.kafka import BROKER_JARS, KafkaBroker
from customer360.tables import QUARANTINE

from tests.conftest import CONF_DIR

GOOD = [
    '{"event_id":"K1","event_ts":"2026-03-01T10:00:00+01:00","event_type":"login","cookie_id":"c1","login_email":"a@x.de","region":"de"}',
    '{"event_id":"K2","event_ts":"2026-03-01 10:00:00","event_type":"page_view","region":"de","campaign":"spring"}',
    # pretty-printed: its line breaks are the spaces JSON allows between tokens
    '{\n  "event_id": "K3",\n  "event_ts": "2026-03-02T08:30:00Z",\n  "event_type": "add_to_cart",\n  "region": "de"\n}',
]
BAD = [
    ('{"event_id":"K4","event_ts":"2026-03-01T1', "unparseable line"),
    ('{"event_id":"K5","event_ts":"2026-03-01T10:00:00Z","event_type":"teleport","region":"de"}',
     "impossible value: event_type 'teleport' is not one of page_view, product_view, add_to_cart, login, purchase"),
    ('{"event_id":"K6","event_ts":"2026-03-01T10:00:00Z","event_type":"login","region":"us"}',
     "impossible value: region 'us' in a file of the de folder"),
    (None, "unparseable line"),  # a message without a value
    ("   ", "unparseable line"),
    (b"\xff\xfe{\"event_id\":\"K7\"}", "unparseable line"),  # not UTF-8
    ("\r\n", "unparseable line"),  # only line breaks: blank once they are spaces
    ("[1, 2]", "unparseable line"),  # JSON, not an object
]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if not any(BROKER_JARS.glob("kafka_2.13-*.jar")) and not os.environ.get("CI"):
        pytest.skip(f"no Kafka broker jars in {BROKER_JARS} (make jars); CI fails here instead")
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as running:
        yield running


def _context(spark, tmp_path, broker, run_id, *, root="lh", prefix="t1."):
    config = load_config("local", conf_dir=CONF_DIR, overrides=[
        f"lakehouse.root={tmp_path / root}", f"ingest.landing_root={tmp_path / 'landing'}",
        f"ingest.kafka.bootstrap_servers={broker.bootstrap_servers}", f"ingest.kafka.topic_prefix={prefix}",
    ])
    return build_context(config, spark=spark, regions=["us", "de"], run_id=run_id)


def _rows(ctx):
    bronze = ctx.lakehouse.read("bronze.web_events").select("event_id", "event_type", "region", "_row_number")
    quarantine = ctx.lakehouse.read(QUARANTINE).select("row_number", "raw_payload", "reason", "region")
    return bronze, quarantine


def test_messages_become_bronze_or_quarantine_rows_and_only_new_ones_later(spark, tmp_path, broker):
    values = [*GOOD, *(v for v, _ in BAD)]
    assert kafka.publish(spark, broker.bootstrap_servers, "t1.de", values) == 11
    ctx = _context(spark, tmp_path, broker, "run-1")
    result = run_stream(ctx, sources=["web_events"])
    assert result.lines == [
        "stream (availableNow): 1 batch(es) over 4 queries",
        "web_events: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 11 = loaded 3 + quarantined 8; new columns kept: campaign",
        "kafka: 11 message(s) taken from 2 topic(s), each batch kept as a file in the landing folder",        "bronze.web_events_current: 3 new bronze row(s) of 1 load(s) merged, 3 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    metrics = {(m.region, m.metric): m.value for m in result.metrics}
    assert (metrics[("de", "rows_read")], metrics[("us", "rows_read")], metrics[("all", "kafka_messages")]) == (11, 0, 11)

    (landed,) = (tmp_path / "landing" / "web_events" / "de").iterdir()
    assert landed.name.startswith("t1.de-b000000000-") and landed.suffix == ".jsonl"
    lines = landed.read_text(encoding="utf-8").splitlines()
    assert lines[2] == GOOD[2].replace("\n", " ")
    assert lines[6:] == ["null", "null", f"{kafka.NOT_UTF8}//57ImV2ZW50X2lkIjoiSzcifQ==", "null", "[1, 2]"]

    bronze, quarantine = _rows(ctx)
    assert_df_equality(
        bronze,
        spark.createDataFrame([("K1", "login", "de", 1), ("K2", "page_view", "de", 2), ("K3", "add_to_cart", "de", 3)],
                              bronze.schema),
        ignore_row_order=True, ignore_nullable=True,
    )
    want = [(4 + i, lines[3 + i], reason, "de") for i, (_, reason) in enumerate(BAD)]
    assert sorted(tuple(r) for r in quarantine.collect()) == want
    # the batch path on the landed file writes the same rows
    batch = _context(spark, tmp_path, broker, "run-b", root="batch", prefix="none.")
    run(batch, sources=["web_events"])
    for got, expected in zip(_rows(ctx), _rows(batch)):
        assert_df_equality(got, expected, ignore_row_order=True)

    # a second run takes only the new messages; the first batch's file is seen by the file stream
    # as loaded already
    kafka.publish(spark, broker.bootstrap_servers, "t1.de", [GOOD[0].replace("K1", "K8")])
    kafka.publish(spark, broker.bootstrap_servers, "t1.us", [GOOD[1].replace("K2", "K9").replace('"de"', '"us"')])
    again = run_stream(_context(spark, tmp_path, broker, "run-2"), sources=["web_events"])
    assert again.lines[1:] == [
        "web_events: files 2 new, 1 unchanged, 0 changed, 0 failed; rows read 2 = loaded 2 + quarantined 0",
        "kafka: 2 message(s) taken from 2 topic(s), each batch kept as a file in the landing folder",        "bronze.web_events_current: 2 new bronze row(s) of 2 load(s) merged, 2 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    bronze, _ = _rows(ctx)
    assert sorted(r.event_id for r in bronze.collect()) == ["K1", "K2", "K3", "K8", "K9"]
    # a scheduled batch run drains the topics too (availableNow), after the files
    kafka.publish(spark, broker.bootstrap_servers, "t1.us", [GOOD[1].replace("K2", "K10").replace('"de"', '"us"')])
    scheduled = run(_context(spark, tmp_path, broker, "run-3"), sources=["web_events"])
    assert scheduled.lines == [
        "web_events: files 1 new, 3 unchanged, 0 changed, 0 failed; rows read 1 = loaded 1 + quarantined 0",
        "kafka: 1 message(s) taken from 2 topic(s), each batch kept as a file in the landing folder",        "bronze.web_events_current: 1 new bronze row(s) of 1 load(s) merged, 1 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    assert ctx.lakehouse.read("bronze.web_events").groupBy("event_id").count().where("count > 1").count() == 0


def test_a_replayed_batch_writes_the_same_file(spark, tmp_path, broker):
    """What makes a replay after a crash safe: same batch, same name, same bytes; the ledger then
    finds the file loaded and unchanged."""
    ctx = _context(spark, tmp_path, broker, "run-1", prefix="t2.")
    batch = spark.createDataFrame(
        [(1, 7, GOOD[0].encode()), (0, 12, GOOD[1].encode()), (0, 11, None), (1, 8, b"\n{}\r\n")],
        "partition int, offset long, value binary",
    )
    first = kafka.write_batch_file(ctx, "de", batch, 3)
    path = tmp_path / "landing" / first.relative
    content = path.read_bytes()
    assert content.decode().splitlines() == ["null", GOOD[1], GOOD[0], " {}  "]
    assert (first.messages, first.ranges) == (4, {0: (11, 12), 1: (7, 8)})
    assert first.relative == f"web_events/de/{kafka.file_name('t2.de', 3, first.ranges)}"
    again = kafka.write_batch_file(ctx, "de", batch, 3)
    assert again == first and path.read_bytes() == content
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left behind
    assert kafka.write_batch_file(ctx, "us", batch.limit(0), 4) is None
    assert not any((tmp_path / "landing" / "web_events" / "us").iterdir())


KILLED_MID_BATCH = """
import os, signal, sys
from customer360 import cli
from customer360.bronze import ingest

calls = []
original = ingest._record_files

def record_then_die(ctx, rows):
    calls.append(rows)
    if len(calls) == 2:  # the Kafka batch's file and rows are written; the file is still `loading`
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(ctx, rows)

ingest._record_files = record_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_kafka_stream_killed_mid_batch_loses_and_duplicates_nothing(spark, tmp_path, broker, caplog):
    kafka.publish(spark, broker.bootstrap_servers, "t3.de", [*GOOD, BAD[1][0]])
    root = tmp_path / "lh"
    argv = [
        "ingest", "--stream", "--conf-dir", str(CONF_DIR), "--region", "us,de", "--source", "web_events",
        "--set", f"lakehouse.root={root}", "--set", f"ingest.landing_root={tmp_path / 'landing'}",
        "--set", "lakehouse.catalog.enabled=false", "--set", f"ingest.kafka.bootstrap_servers={broker.bootstrap_servers}",
        "--set", "ingest.kafka.topic_prefix=t3.",
    ]
    env = {**os.environ, "C360_PII_HASH_KEY": "k" * 40, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_BATCH, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-3000:]
    ctx = _context(spark, tmp_path, broker, "run-restart", prefix="t3.")
    assert ctx.lakehouse.read("bronze.web_events").count() == 3
    (loading,) = [(r.file, r.status) for r in ingested_files(ctx.lakehouse).collect()]
    assert loading[1] == "loading" and loading[0].startswith("web_events/de/t3.de-b000000000-")

    kafka.publish(spark, broker.bootstrap_servers, "t3.de", [GOOD[0].replace("K1", "K8")])
    # restarted from the checkpoint, the Kafka queries alone (a file stream would find the batch's
    # file too and reload it itself): batch 0 again, which rewrites the same file and reloads it, then 1
    streamed = stream_ingest(ctx, ["web_events"], files=False)
    (report,) = streamed.reports
    assert report.line() == "web_events: files 2 new, 0 unchanged, 0 changed, 0 failed; rows read 5 = loaded 4 + quarantined 1"
    assert (streamed.kafka_messages, streamed.batches) == (5, 2)
    # Spark 4.1.1 fails the replaying query after committing its batch (SPARK-55271); restarted once.
    # Should this fail after a Spark upgrade, the bug is fixed there: drop the workaround.
    assert sum("SPARK-55271" in r.getMessage() for r in caplog.records) == 1
    assert sorted(r.event_id for r in ctx.lakehouse.read("bronze.web_events").collect()) == ["K1", "K2", "K3", "K8"]
    assert ctx.lakehouse.read(QUARANTINE).where(F.col("reason").contains("teleport")).count() == 1
    assert sorted(r.status for r in ingested_files(ctx.lakehouse).collect()) == ["loaded", "loaded"]


def test_a_batch_of_only_bad_messages_is_quarantined_row_by_row(spark, tmp_path, broker):
    """Not refused as a whole file (no JSON object in it, required columns missing): each message
    is a quarantine row with its reasons."""
    kafka.publish(spark, broker.bootstrap_servers, "t4.us", [None, "[1, 2]", '{"event_type":"login"}'])
    ctx = _context(spark, tmp_path, broker, "run-1", prefix="t4.")
    streamed = stream_ingest(ctx, ["web_events"], files=False)
    assert streamed.reports[0].line() == "web_events: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 3 = loaded 0 + quarantined 3"
    reasons = [r.reason for r in ctx.lakehouse.read(QUARANTINE).orderBy("row_number").collect()]
    assert reasons[:2] == ["unparseable line", "unparseable line"]
    assert reasons[2].startswith("missing required field: event_id; missing required field: event_ts")


def test_a_message_file_must_read_as_many_rows_as_messages(spark, tmp_path):
    """The count is checked before the file is recorded loaded: a mismatch leaves it `loading`, so
    the next run removes its rows and loads it again."""
    from datetime import datetime, timezone

    from customer360.bronze.ingest import AccountingError, ingest_sources

    from tests.bronze.conftest import put

    put(tmp_path / "landing", "web_events", "us", "m.jsonl", GOOD[0].replace('"de"', '"us"') + "\n\n")
    config = load_config("local", conf_dir=CONF_DIR, overrides=[
        f"lakehouse.root={tmp_path / 'lh'}", f"ingest.landing_root={tmp_path / 'landing'}"])
    ctx = build_context(config, spark=spark, regions=["us"], run_id="run-1")
    with pytest.raises(AccountingError, match="web_events/us/m.jsonl: 2 messages but 1 rows read"):
        ingest_sources(ctx, ["web_events"], now=datetime.now(timezone.utc), only={"web_events": {"web_events/us/m.jsonl"}},
                       messages={"web_events/us/m.jsonl": 2})
    assert [(r.file, r.status) for r in ingested_files(ctx.lakehouse).collect()] == [("web_events/us/m.jsonl", "loading")]


def test_kafka_settings_are_checked(tmp_path):
    for bad in ("127.0.0.1:9092;rm", "PLAINTEXT://h:9092", "h:port"):
        with pytest.raises(ConfigError, match="ingest.kafka.bootstrap_servers"):
            load_config("local", conf_dir=CONF_DIR, overrides=[f"ingest.kafka.bootstrap_servers={bad}"])
    with pytest.raises(ConfigError, match="ingest.kafka.topic_prefix"):
        load_config("local", conf_dir=CONF_DIR, overrides=["ingest.kafka.topic_prefix=a/b"])


def test_kafka_publish_refuses_before_starting_spark(tmp_path, capsys):
    from customer360 import cli

    events = tmp_path / "e.jsonl"
    events.write_text(GOOD[0] + "\n")
    base = ["kafka-publish", "--conf-dir", str(CONF_DIR), str(events)]
    assert cli.main([*base, "--region", "us,de", "--set", "ingest.kafka.bootstrap_servers=127.0.0.1:9"]) == 2
    assert "name one region with --region (each region has its own topic), not us, de" in capsys.readouterr().err
    assert cli.main([*base, "--region", "us"]) == 2
    assert "set ingest.kafka.bootstrap_servers" in capsys.readouterr().err


def test_a_broker_without_its_jars_says_how_to_get_them(tmp_path):
    from customer360.services.kafka import KafkaBrokerError

    with pytest.raises(KafkaBrokerError, match=r"no Kafka broker jars in .*: run `make jars`"):
        KafkaBroker(tmp_path / "k", jars=tmp_path / "none").start()
