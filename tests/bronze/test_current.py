"""Each source's current state (bronze.current): loads taken in once with MERGE, by change sequence
not arrival, deletes kept as tombstones, a crash between the merge and its record harmless, and
loads no stage took in yet taken in by the stage that reads them."""
from __future__ import annotations

import csv
import dataclasses
from datetime import datetime

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from customer360 import tables
from customer360.bronze import current
from customer360.bronze.ingest import ingest_sources
from customer360.bronze.stage import run as ingest
from customer360.config import load_config
from customer360.context import build_context
from customer360.identity.stage import bronze_records
from tests.conftest import CONF_DIR

HEADER = ["crm_id", "account_type", "first_name", "last_name", "email", "updated_at", "region"]
COLUMNS = ["region", "crm_id", "email", "change_op", "change_seq", "_source_file", "_run_id"]
SCHEMA = "region string, crm_id string, email string, change_op string, change_seq long, _source_file string, _run_id string"
CRM = tables.current_table("crm_customers")


def _file(landing, name: str, rows: list[dict], *, changes: bool = False) -> None:
    folder = landing / "crm_customers" / "us"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER + (["change_op", "change_seq"] if changes else []))
        writer.writeheader()
        for row in rows:
            writer.writerow({"account_type": "B2C", "first_name": "A", "last_name": "B", "region": "us",
                             "updated_at": "2026-06-01 10:00:00", **row})


@pytest.fixture
def ctx(spark, tmp_path):
    landing = tmp_path / "landing"
    config = load_config("local", conf_dir=CONF_DIR, overrides=[
        f"lakehouse.root={tmp_path / 'lh'}", f"ingest.landing_root={landing}", "pipeline.regions=[us]",
    ])
    return build_context(config, spark=spark, regions=["us"], run_id="run-1"), landing


def _state(ctx):
    return ctx.lakehouse.read(CRM).select(*COLUMNS).orderBy("crm_id")


def test_loads_are_taken_in_once_by_sequence_and_a_delete_stays_as_a_tombstone(ctx, spark):
    ctx, landing = ctx
    _file(landing, "a.csv", [{"crm_id": "X", "email": "x1@example.org"}, {"crm_id": "Y", "email": "y1@example.org"}])
    first = ingest(ctx, sources=["crm_customers"], now=datetime(2026, 7, 1, 12))
    assert (f"{CRM}: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as "
            "tombstones)") in first.lines

    # the later file carries the older changes: X's stale email (seq 4) and Y's update (seq 2)
    # from before its delete (seq 3) must both lose
    _file(landing, "b.csv", [{"crm_id": "X", "email": "x2@example.org", "change_op": "update", "change_seq": "5"},
                             {"crm_id": "Y", "email": "", "change_op": "delete", "change_seq": "3"}], changes=True)
    _file(landing, "c.csv", [{"crm_id": "X", "email": "x-stale@example.org", "change_op": "update", "change_seq": "4"},
                             {"crm_id": "Y", "email": "y2@example.org", "change_op": "update", "change_seq": "2"}],
          changes=True)
    run2 = dataclasses.replace(ctx, run_id="run-2")
    second = ingest(run2, sources=["crm_customers"], now=datetime(2026, 7, 2, 12))
    assert (f"{CRM}: 4 new bronze row(s) of 2 load(s) merged, 2 record(s) changed (1 of them deleted, kept as "
            "tombstones)") in second.lines
    expected = spark.createDataFrame([
        ("us", "X", "x2@example.org", "update", 5, "crm_customers/us/b.csv", "run-2"),
        ("us", "Y", None, "delete", 3, "crm_customers/us/b.csv", "run-2"),
    ], SCHEMA)
    assert_df_equality(_state(ctx), expected, ignore_nullable=True)
    assert_df_equality(current.live(run2, "crm_customers").select(*COLUMNS), expected.where("crm_id = 'X'"),
                       ignore_nullable=True)
    applied = {(r.file, r.run_id, r.rows, r.applied_by_run_id) for r in ctx.lakehouse.read(tables.CURRENT_APPLIED).collect()}
    assert applied == {("crm_customers/us/a.csv", "run-1", 2, "run-1"), ("crm_customers/us/b.csv", "run-2", 2, "run-2"),
                       ("crm_customers/us/c.csv", "run-2", 2, "run-2")}

    # nothing pending: a third run takes nothing in and writes nothing
    version = ctx.lakehouse.version(CRM)
    third = ingest(dataclasses.replace(ctx, run_id="run-3"), sources=["crm_customers"], now=datetime(2026, 7, 3, 12))
    assert not [line for line in third.lines if line.startswith(CRM)]
    assert current.pending(ctx, ["crm_customers"]) == {}
    assert ctx.lakehouse.version(CRM) == version


def test_a_crash_between_the_merge_and_its_record_takes_the_loads_in_again_unchanged(ctx):
    ctx, landing = ctx
    _file(landing, "a.csv", [{"crm_id": "X", "email": "x1@example.org"}])
    ingest(ctx, sources=["crm_customers"], now=datetime(2026, 7, 1, 12))
    _file(landing, "b.csv", [{"crm_id": "X", "email": "x2@example.org", "change_op": "update", "change_seq": "1"},
                             {"crm_id": "Z", "email": "z@example.org", "change_op": "insert", "change_seq": "1"}],
          changes=True)
    run2 = dataclasses.replace(ctx, run_id="run-2")
    ingest(run2, sources=["crm_customers"], now=datetime(2026, 7, 2, 12))
    before = _state(ctx).localCheckpoint(eager=True)
    # the crash: the merge committed, the record of what it took in did not
    ctx.lakehouse.delete(tables.CURRENT_APPLIED, "run_id = 'run-2'")
    assert current.pending(ctx, ["crm_customers"]) == {"crm_customers": [("us", "crm_customers/us/b.csv", "run-2", 2)]}
    [report] = current.refresh(dataclasses.replace(ctx, run_id="run-3"), ["crm_customers"])
    assert (report.loads, report.rows_in) == (1, 2)
    assert_df_equality(_state(ctx), before, ignore_nullable=True)
    assert current.pending(ctx, ["crm_customers"]) == {}


def test_identity_takes_in_the_loads_no_stage_took_in_yet(ctx):
    """A load the ingest stage did not take in (ingest_sources alone, as a stream's batch that died
    before the stage's end) is taken in by the identity stage before it reads."""
    ctx, landing = ctx
    _file(landing, "a.csv", [{"crm_id": "X", "email": "x1@example.org"}, {"crm_id": "W", "email": "w@example.org"}])
    ingest_sources(ctx, ["crm_customers"], now=datetime(2026, 7, 1, 12))
    assert not ctx.lakehouse.exists(CRM)
    records, lines = bronze_records(ctx)
    assert (f"{CRM}: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as "
            "tombstones)") in lines
    assert sorted(r.source_record_id for r in records.where(F.col("source") == "crm_customers").collect()) == ["W", "X"]
