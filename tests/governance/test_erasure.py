"""Erasure end to end on a copy of the shared sample: the planted person (tests/conftest.py) is
erased by email; afterwards no file under the lakehouse - Parquet contents, footers, Delta logs,
checkpoints - holds any of their identifiers or customer ids, other customers are untouched, the
tombstone holds tokens only, and ingesting their old files again loads none of their rows."""
from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pyspark.sql.functions as F
import pytest

from customer360.bronze.ingest import run as ingest
from customer360.config import load_config
from customer360.governance.erasure import TOMBSTONES, ErasureError, erase, find_person
from customer360.pipeline import build_context
from tests.conftest import CONF_DIR, PLANTED, PLANTED_TRACES

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
            "gold/customer_360"} <= places


def test_no_file_under_the_lakehouse_names_the_person_afterwards(erased):
    _, root, _, _, needles, _, _, report = erased
    assert traces(root / "lh", needles) == {}
    assert report.customers == 1 and report.files_removed > 0
    assert report.rows_deleted["bronze.crm_customers"] == 1 and report.rows_deleted["bronze._quarantine"] == 1
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


def test_the_tombstone_holds_tokens_only(erased):
    ctx, _, _, person, _, _, _, report = erased
    tombstones = ctx.lakehouse.read(TOMBSTONES).collect()
    assert len(tombstones) == report.tombstones
    kinds = {r["kind"] for r in tombstones}
    assert kinds == {"erased_record", "email"}
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
    assert erased_rows == {"bronze.crm_customers": 1, "bronze.web_events": 1, "bronze.orders": 2, "bronze.support_tickets": 1, "bronze.consent": 1}
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
