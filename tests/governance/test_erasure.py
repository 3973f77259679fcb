"""Erasure end to end on a copy of the shared sample: the planted person (tests/conftest.py) is
erased by email (and, on one more copy, an erasure interrupted twice is finished from
its marked request); afterwards no file under the lakehouse - Parquet contents, footers, Delta logs,
checkpoints, stale Spark checkpoint folders - holds any of their identifiers or customer ids
(their quarantined rows are found by any spelling of their phone or email), other customers are
untouched, the tombstone holds tokens only, the landing files still holding their rows are named
for the source owner, and ingesting those files again loads none of their rows."""
from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pyspark.sql.functions as F
from pyspark.sql import types as T
import pytest

from customer360.bronze.stage import run as ingest
from customer360.config import load_config
from customer360.cli import main
from customer360.governance import erasure
from customer360.governance.erasure import (
    ErasureError,
    erase,
    find_person,
    pending_erasures,
    phone_spellings,
    quarantine_match,
)
from customer360.context import build_context
from customer360.tables import ERASURE_FILES, ERASURE_REQUESTS, ERASURE_TOMBSTONES
from tests.conftest import CONF_DIR, PLANTED, PLANTED_TRACES, catalog_mismatches

pytestmark = pytest.mark.slow


def _context(spark, lakehouse_root: Path, landing: Path):
    config = load_config(
        "local", conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={lakehouse_root}", f"ingest.landing_root={landing}", "pipeline.regions=[us, de]"],
    )
    return build_context(config, spark=spark, regions=["us", "de"], run_id="erase-test")


def file_text(path: Path) -> str:
    """What a file says, lower-cased: a Parquet file's decoded values and footer metadata, any
    other file's bytes."""
    if path.suffix == ".parquet":
        table = pq.ParquetFile(path).read()  # this file alone: no partition columns from its folder names
        footer = pq.read_metadata(path).metadata or {}
        return (repr(table.to_pylist()) + repr(footer)).lower()
    return path.read_bytes().decode("utf-8", errors="replace").lower()


def traces(root: Path, needles) -> dict[str, list[str]]:
    needles = [n.lower() for n in needles]
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = file_text(path)
        hits = [n for n in needles if n in text]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


@pytest.fixture(scope="module")
def erased(spark, pipeline_sample, tmp_path_factory):
    sample_ctx, data, _, _ = pipeline_sample
    root = tmp_path_factory.mktemp("erasure")
    shutil.copytree(sample_ctx.config.lakehouse.root, root / "lh")
    ctx = _context(spark, root / "lh", data.sources)
    person = find_person(ctx, email=PLANTED["email"])
    needles = [*PLANTED_TRACES, *person.customer_ids]
    # a reliable-checkpoint folder a finished application left on a cluster (graph rounds keyed by
    # the person's id), and one a job running now may still be writing
    stale = root / "lh" / "_checkpoints" / "0a1b-finished-app" / "rdd-12"
    stale.mkdir(parents=True)
    (stale / "part-00000").write_text(f"{person.customer_ids[0]}\tCRM-PLANTED-1\n")
    old = datetime(2026, 6, 30).timestamp()
    os.utime(stale, (old, old))
    os.utime(stale.parent, (old, old))
    (root / "lh" / "_checkpoints" / "9f8e-running-app").mkdir()
    before = traces(root / "lh", needles)
    c360_before = ctx.lakehouse.read("gold.customer_360").count()
    # another spelling of the address finds the same person (standardized as identity does)
    report = erase(ctx, email="  ZEBULON.quillfeather@Planted-Mail.example ", now=datetime(2026, 7, 2, 9))
    return ctx, root, data, person, needles, before, c360_before, report


def test_the_scan_sees_the_person_before_the_erasure(erased):
    _, _, _, person, _, before, _, _ = erased
    assert len(person.customer_ids) == 1 and person.regions == ["de"]
    assert person.records["crm_customers"] == {"CRM-PLANTED-1"} and person.records["orders"] == {"OL-PLANTED-1"}
    places = {path.split("/")[0] + "/" + path.split("/")[1] for path in before}
    # clear values in bronze (records and the quarantined order line) and the vault; ids in silver and gold
    assert {"bronze/crm_customers", "bronze/_quarantine", "bronze/orders", "silver/pii_vault", "silver/customer_xref",
            "gold/customer_360", "_checkpoints/0a1b-finished-app"} <= places


def test_no_file_under_the_lakehouse_names_the_person_afterwards(erased):
    _, root, _, _, needles, _, _, report = erased
    assert traces(root / "lh", needles) == {}
    assert report.customers == 1 and report.files_removed > 0
    # the invalid order line, and the two tickets naming the person only by phone or a plus-tagged address
    assert report.rows_deleted["bronze.crm_customers"] == 1 and report.rows_deleted["bronze._quarantine"] == 3
    assert report.checkpoints_removed == 1 and (root / "lh" / "_checkpoints" / "9f8e-running-app").is_dir()
    # crm, web login, valid order line, ticket, consent event
    assert report.rows_deleted["gold.customer_360"] == 1 and report.rows_deleted["silver.customer_xref"] == 5


def test_everyone_else_is_untouched_and_tables_still_read(erased):
    ctx, _, _, person, _, _, c360_before, _ = erased
    lh = ctx.lakehouse
    assert lh.read("gold.customer_360").count() == c360_before - 1
    assert lh.read("silver.customer_xref").where(F.col("customer_id").isin(*person.customer_ids)).count() == 0
    # history before the erasure is gone: only the checkpointed version remains readable
    versions = [r.version for r in lh.history("silver.pii_vault").collect()]
    assert versions == [lh.version("silver.pii_vault")]
    # the erasure's own tables and every rewritten one still fit the table catalog
    assert {"ops.erasure_requests", "ops.erasure_tombstones", "ops.erasure_source_files"} <= set(lh.tables())
    assert catalog_mismatches(ctx) == []


def test_the_tombstone_holds_tokens_only(erased):
    ctx, _, _, person, _, _, _, report = erased
    tombstones = ctx.lakehouse.read(ERASURE_TOMBSTONES).collect()
    assert len(tombstones) == report.tombstones
    kinds = {r["kind"] for r in tombstones}
    assert kinds == {"erased_record", "erased_raw_row", "email"}
    assert sum(r["kind"] == "erased_raw_row" for r in tombstones) == 3  # the three quarantined rows
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["token"]) for r in tombstones)
    assert {r["region"] for r in tombstones} == {"de"}


def test_ingesting_the_old_files_again_loads_none_of_their_rows(erased, spark):
    ctx, root, data, _, needles, _, _, _ = erased
    landing = root / "landing"
    copies = 0
    # the planted files again under new names (new files to ingest), alone in a landing folder
    for path in data.sources.rglob("*_0902.*"):
        target = landing / path.relative_to(data.sources)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target.with_name(path.name.replace("_0902", "_0903")))
        copies += 1
    assert copies == 5
    again = _context(spark, root / "lh", landing)
    result = ingest(again, now=datetime(2026, 7, 3, 12))
    erased_rows = {m.table: m.value for m in result.metrics if m.metric == "rows_erased" and m.region == "de"}
    loaded = {m.table: m.value for m in result.metrics if m.metric == "rows_loaded" and m.region == "de"}
    # the quarantined tickets too: by their content hash (the phone-only one has no other tombstone)
    assert erased_rows == {"bronze.crm_customers": 1, "bronze.web_events": 1, "bronze.orders": 2, "bronze.support_tickets": 3, "bronze.consent": 1}
    assert set(loaded.values()) == {0}
    assert "erased 2 (tombstones)" in "\n".join(result.lines)
    assert traces(root / "lh", needles) == {}


def test_bad_requests_fail_with_a_reason(erased):
    ctx = erased[0]
    with pytest.raises(ErasureError, match="no record has that email"):
        find_person(ctx, email="nobody@nowhere.example")
    with pytest.raises(ErasureError, match="not a valid email"):
        find_person(ctx, email="not-an-email")
    with pytest.raises(ErasureError, match="exactly one"):
        find_person(ctx, email="a@b.example", customer_id="C1")
    with pytest.raises(ErasureError, match="is not in silver.customer_xref"):
        find_person(ctx, customer_id="C0000000000000000")


def test_a_customer_id_finds_all_of_that_customers_records(erased):
    ctx = erased[0]
    some = ctx.lakehouse.read("silver.customer_xref").where("region = 'us'").groupBy("customer_id").count().orderBy(F.desc("count")).first()
    person = find_person(ctx, customer_id=some["customer_id"])
    assert person.customer_ids == [some["customer_id"]] and person.regions == ["us"]
    assert sum(len(v) for k, v in person.records.items() if k != "web_events") <= some["count"] <= sum(len(v) for v in person.records.values())
    assert person.tokens["email"]


def test_the_landing_files_still_holding_the_person_are_named_for_their_owner(erased):
    ctx, _, _, _, _, _, _, report = erased
    expected = {
        "crm_customers/de/crm_customers_de_0902.csv": 1,
        "consent/de/consent_de_0902.jsonl": 1,
        "orders/de/orders_de_0902.parquet": 2,  # the loaded line and the quarantined one
        "support_tickets/de/support_tickets_de_0902.csv": 3,
        "web_events/de/web_events_de_0902.jsonl": 1,
    }
    assert report.source_files == expected
    recorded = ctx.lakehouse.read(ERASURE_FILES).collect()
    assert {r["file"]: r["rows"] for r in recorded} == expected
    assert {(r["request_id"], r["region"]) for r in recorded} == {(report.request_id, "de")}
    said = "\n".join(report.lines())
    assert "5 landing file(s) still hold the person's rows" in said and "support_tickets/de/support_tickets_de_0902.csv: 3 row(s)" in said
    assert "1 stale checkpoint folder(s) removed" in said


@pytest.mark.parametrize(
    "payload, found",
    [
        ('{"contact_phone":"030 98765432"}', True),
        ('{"contact_phone":"+49 (0)30 987 654 32"}', True),
        ('{"contact_phone":"0049-30-98765432"}', True),
        ('{"contact_phone":"+4930 98765432","x":"1"}', True),
        ('T-9,,,,030/98765432,web', True),  # an unparseable CSV line
        ('{"contact_phone":"+1 303 098 765 432"}', False),  # another country's number ending in the same digits
        ('{"contact_phone":"98765432"}', False),  # too short to be the person's number
        ('{"amount":"3098765432.50"}', False),
        ('{"email":"Zebulon.Quillfeather+Promo@Planted-Mail.EXAMPLE"}', True),
        ('{"email":"  zebulon.quillfeather@planted-mail.example "}', True),
        ('{"email":"zebulon.quillfeather2@planted-mail.example"}', False),
        ('{"email":"xzebulon.quillfeather@planted-mail.example"}', False),
        ('{"loyalty_number":"loy planted 7731"}', True),
        ('{"loyalty_number":"LOY-PLANTED-77310"}', False),
        ('{"ticket_id":"t-planted-1"}', True),  # a record id of this source
        ('{"order_id":"T-PLANTED-1"}', None),  # the same id in another source's row is not theirs
        ("", False),
        (None, False),
    ],
)
def test_the_quarantine_match_knows_the_spellings_sources_use(spark, payload, found):
    source = "support_tickets" if found is not None else "orders"
    match = quarantine_match(
        F.col("payload"), F.col("source"), identity=load_config("local", conf_dir=CONF_DIR).identity,
        emails=["zebulon.quillfeather@planted-mail.example"], phones=["+493098765432"],
        identifiers=["LOY-PLANTED-7731"], records={"support_tickets": {"T-PLANTED-1"}},
    )
    got = spark.createDataFrame([(payload, source)], "payload string, source string").select(match.alias("m")).first()["m"]
    assert got is bool(found)


def test_phone_spellings_are_the_ways_a_number_is_dialled():
    assert phone_spellings(["+493098765432"]) == {
        "3098765432", "03098765432", "493098765432", "4903098765432", "00493098765432", "004903098765432",
        "011493098765432", "0114903098765432",
    }
    assert phone_spellings(["+4912345", "not a number"]) == set()


def _interrupt_at(monkeypatch, function: str) -> None:
    """The erasure dies at the first call of ``erasure.<function>`` (what a kill at that moment leaves)."""
    def killed(*args, **kwargs):
        raise KeyboardInterrupt(f"killed at {function}")

    monkeypatch.setattr(erasure, function, killed)


def test_an_interrupted_erasure_stays_marked_and_the_next_one_finishes_it(erased, pipeline_sample, spark, tmp_path, capsys):
    """Killed twice, then finished. First at ``_person_in_quarantine``: after the request is
    marked, before anything is deleted. Then the same request again is resumed (not a second one
    started) and killed at ``_purge``: after every delete (the xref, which finds the person,
    included), before any old file is vacuumed, so the person can no longer be found yet their old
    files remain. ``c360 erase --pending`` finishes it from the marked request."""
    sample_ctx, data, _, _ = pipeline_sample
    _, _, _, person, needles, _, c360_before, done = erased
    shutil.copytree(sample_ctx.config.lakehouse.root, tmp_path / "lh")
    ctx = _context(spark, tmp_path / "lh", data.sources)
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_at(patch, "_person_in_quarantine")
        with pytest.raises(KeyboardInterrupt, match="killed at _person_in_quarantine"):
            erase(ctx, email=PLANTED["email"], now=datetime(2026, 7, 2, 9))
    [(request_id, marked)] = pending_erasures(ctx.lakehouse)
    assert marked == person  # the person as found, kept while the request is pending
    assert traces(tmp_path / "lh", needles)  # still on disk
    assert find_person(ctx, email=PLANTED["email"]) == person  # nothing deleted yet

    with pytest.MonkeyPatch.context() as patch:
        _interrupt_at(patch, "_purge")
        with pytest.raises(KeyboardInterrupt, match="killed at _purge"):
            erase(ctx, email=PLANTED["email"], now=datetime(2026, 7, 2, 10))
    assert pending_erasures(ctx.lakehouse) == [(request_id, person)]  # the same request, still marked
    assert traces(tmp_path / "lh", needles)  # old files not vacuumed yet
    with pytest.raises(ErasureError, match="no record has that email"):
        find_person(ctx, email=PLANTED["email"])

    base = ["--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'lh'}",
            "--set", f"ingest.landing_root={data.sources}", "--set", "pipeline.regions=[us, de]"]
    capsys.readouterr()
    assert main(["erase", "--pending", *base]) == 0
    said = capsys.readouterr().out
    assert f"erasure {request_id} (interrupted earlier, finished now): 1 customer id(s) in de" in said
    assert main(["erase", "--pending", *base]) == 0
    assert capsys.readouterr().out.strip() == "no erasure was pending"
    assert pending_erasures(ctx.lakehouse) == []
    assert traces(tmp_path / "lh", needles) == {}
    lh = ctx.lakehouse
    assert lh.read("gold.customer_360").count() == c360_before - 1
    [row] = lh.read(ERASURE_REQUESTS).collect()
    assert (row.request_id, row.status, row.regions, row.customer_ids, row.records, row.tokens) == (request_id, "done", ["de"], [], {}, {})
    assert [r.version for r in lh.history(ERASURE_REQUESTS).collect()] == [lh.version(ERASURE_REQUESTS)]
    # one set of tombstones, the same tokens as the uninterrupted erasure's
    tokens = sorted((r.token, r.kind, r.region) for r in lh.read(ERASURE_TOMBSTONES).collect())
    assert tokens == sorted((r.token, r.kind, r.region) for r in erased[0].lakehouse.read(ERASURE_TOMBSTONES).collect())
    # every other table equals the uninterrupted erasure's, row for row
    for name in lh.tables():
        if name.startswith("ops."):
            continue
        got, expected = _comparable(lh.read(name)), _comparable(erased[0].lakehouse.read(name))
        assert got.columns == expected.columns, name
        assert got.exceptAll(expected).count() == 0 and expected.exceptAll(got).count() == 0, name


def _comparable(df):
    """Map columns as sorted entries (Spark cannot compare maps)."""
    return df.select(*[
        F.array_sort(F.map_entries(f"`{f.name}`")).alias(f.name) if isinstance(f.dataType, T.MapType) else F.col(f"`{f.name}`")
        for f in df.schema.fields
    ])
