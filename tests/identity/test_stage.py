"""The identity stage end to end: bronze -> silver identity tables, against the generator's truth,
then incremental runs that must keep customer ids (and audit the merge a bridging record causes,
and the split when change rows delete the bridge)."""
from __future__ import annotations

import csv
import dataclasses
import re
from datetime import datetime
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import Window
import pytest

from customer360 import tables
from customer360.bronze.stage import run as ingest
from customer360.config import load_config
from customer360.generate import generate
from customer360.identity import stage
from customer360.identity.evaluate import evaluate
from customer360.identity.tokenize import python_token
from customer360.context import build_context

from tests.conftest import CONF_DIR

pytestmark = pytest.mark.slow

CRM_HEADER = [
    "crm_id", "account_type", "company_name", "first_name", "last_name", "email", "phone", "birth_date", "street",
    "city", "postcode", "country", "loyalty_number", "updated_at", "region",
]
DEV_KEY = b"customer360-development-key-not-secret"


def _crm_file(landing, name: str, rows: list[dict], *, changes: bool = False) -> None:
    folder = landing / "crm_customers" / "us"
    with open(folder / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CRM_HEADER + (["change_op", "change_seq"] if changes else []))
        writer.writeheader()
        for row in rows:
            writer.writerow({"account_type": "B2C", "country": "US", "region": "us", "updated_at": "2026-06-01 10:00:00", **row})


@pytest.fixture(scope="module")
def resolved(spark, tmp_path_factory):
    """100 people in the us region, ingested and resolved once for the module's tests."""
    root = tmp_path_factory.mktemp("identity_stage")
    data = generate(root / "sample", scale=0.001, seed=7, regions=["us"], consent_regimes={"us": "opt_out"})
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=[f"lakehouse.root={root / 'lh'}", f"ingest.landing_root={data.sources}", "pipeline.regions=[us]"],
    )
    ctx = build_context(config, spark=spark, regions=["us"], run_id="run-1")
    ingest(ctx, now=datetime(2026, 7, 1, 12))
    result = stage.run(ctx, now=datetime(2026, 7, 1, 13))
    return ctx, data, result


def test_every_identity_record_gets_exactly_one_customer(resolved):
    ctx, _, result = resolved
    lh = ctx.lakehouse
    records = lh.read(tables.IDENTITY_RECORDS)
    xref = lh.read(tables.CUSTOMER_XREF)
    assert result.errors == []
    assert xref.count() == records.count() == xref.select("source", "source_record_id").distinct().count()
    assert records.join(xref, ["source", "source_record_id"], "left_anti").count() == 0
    # web events enter only through logins (conf/sources.yaml identity_filter)
    logins = lh.read("bronze.web_events").where("login_email IS NOT NULL").count()
    assert records.where("source = 'web_events'").count() == logins
    rules = {r[0] for r in xref.select("match_rule").distinct().collect()}
    assert {"deterministic:email", "deterministic:other:order"} <= rules
    assert all(re.fullmatch(r"deterministic:[a-z_:]+|probabilistic:[a-z_]+|singleton", rule) for rule in rules)
    confidences = xref.where("match_rule LIKE 'probabilistic:%'").agg(F.min("match_confidence")).first()[0]
    assert confidences is None or confidences >= ctx.config.identity.matching.threshold
    assert re.search(r"us: [\d,]+ records -> [\d,]+ customers", "\n".join(result.lines))


def test_resolution_matches_the_ground_truth(resolved, spark):
    ctx, data, _ = resolved
    truth = spark.read.parquet(str(data.truth / "record_person.parquet"))
    result = evaluate(ctx.lakehouse.read(tables.CUSTOMER_XREF), truth)
    assert result.records_without_truth == 0
    assert result.precision >= 0.99, result.lines()
    assert result.recall >= 0.95, result.lines()


def test_silver_carries_tokens_and_only_the_vault_holds_values(resolved):
    ctx, _, _ = resolved
    lh = ctx.lakehouse
    row = lh.read(tables.IDENTITY_RECORDS).where("source = 'crm_customers' AND email IS NOT NULL").first()
    assert re.fullmatch(r"[0-9a-f]{64}", row.email) and re.fullmatch(r"[0-9a-f]{64}", row.last_name)
    vault = {(r.kind, r.token): r.value for r in lh.read(tables.PII_VAULT).collect()}
    email = vault[("email", row.email)]
    assert "@" in email and email == email.lower().strip()
    assert python_token(email, key=DEV_KEY, kind="email") == row.email
    golden = lh.read(tables.CUSTOMER_GOLDEN)
    assert golden.count() == lh.read(tables.CUSTOMER_XREF).select("customer_id").distinct().count()
    sample = golden.where("email IS NOT NULL").first()
    assert ("email", sample.email) in vault and sample.customer_type in ("B2B", "B2C")
    # placeholder emails never reach the graph
    hub_reasons = {r.reason for r in lh.read(tables.IDENTITY_HUBS).collect()}
    assert all(re.match(r"more than \d+ record profiles|used by more than \d+ login email", r) for r in hub_reasons)


def test_incremental_runs_keep_ids_and_audit_a_merge(resolved, spark):
    ctx, data, _ = resolved
    lh = ctx.lakehouse
    before = {(r.source, r.source_record_id): r.customer_id for r in lh.read(tables.CUSTOMER_XREF).collect()}
    vault = {(r.kind, r.token): r.value for r in lh.read(tables.PII_VAULT).collect()}
    golden = lh.read(tables.CUSTOMER_GOLDEN).where("email IS NOT NULL").orderBy("customer_id").limit(2).collect()
    first, second = ({"id": g.customer_id, "email": vault[("email", g.email)]} for g in golden)

    # run 2: one more record of an existing customer, and a new person
    _crm_file(data.sources, "crm_customers_us_9001.csv", [
        {"crm_id": "CRM-NEW-1", "first_name": "Ann", "last_name": "Other", "email": first["email"].upper()},
        {"crm_id": "CRM-NEW-2", "first_name": "Zed", "last_name": "Newcomer", "email": "zed.newcomer@example.org"},
    ])
    run2 = dataclasses.replace(ctx, run_id="run-2")
    ingest(run2, now=datetime(2026, 7, 2, 12))
    result = stage.run(run2, now=datetime(2026, 7, 2, 13))
    after = {(r.source, r.source_record_id): r.customer_id for r in lh.read(tables.CUSTOMER_XREF).collect()}
    assert {k: after[k] for k in before} == before  # nobody renumbered
    assert after[("crm_customers", "CRM-NEW-1")] == first["id"]
    assert after[("crm_customers", "CRM-NEW-2")] not in set(before.values())
    assert lh.read(tables.IDENTITY_AUDIT).where("run_id = 'run-2'").count() == 0
    assert any("0 merges, 0 splits" in line for line in result.lines)

    # run 3: a record carrying both customers' emails? No: one email per record, so bridge them
    # through a loyalty number shared with the first and an email of the second.
    _crm_file(data.sources, "crm_customers_us_9002.csv", [
        {"crm_id": "CRM-BRIDGE-A", "first_name": "Ann", "last_name": "Other", "email": first["email"], "loyalty_number": "BRIDGE-77"},
        {"crm_id": "CRM-BRIDGE-B", "first_name": "Bo", "last_name": "Other", "email": second["email"], "loyalty_number": "BRIDGE-77"},
        # a re-export of run 2's newcomer with a changed email: the latest version replaces the old one
        {"crm_id": "CRM-NEW-2", "first_name": "Zed", "last_name": "Newcomer", "email": "zed.n@example.org"},
    ])
    run3 = dataclasses.replace(ctx, run_id="run-3")
    ingested3 = ingest(run3, now=datetime(2026, 7, 3, 12))
    # the current state takes the three rows in: two new records, and the newcomer's new version
    assert ("bronze.crm_customers_current: 3 new bronze row(s) of 1 load(s) merged, 3 record(s) changed "
            "(0 of them deleted, kept as tombstones)") in ingested3.lines
    stage.run(run3, now=datetime(2026, 7, 3, 13))
    xref3 = lh.read(tables.CUSTOMER_XREF)
    assert xref3.count() == xref3.select("source", "source_record_id").distinct().count()
    newcomer = lh.read(tables.IDENTITY_RECORDS).where("source_record_id = 'CRM-NEW-2'").collect()
    assert [r.email for r in newcomer] == [python_token("zed.n@example.org", key=DEV_KEY, kind="email")]
    merged = {(r.source, r.source_record_id): r.customer_id for r in lh.read(tables.CUSTOMER_XREF).collect()}
    survivor = min(first["id"], second["id"])  # both created in run 1: the tie goes to the smaller id
    assert merged[("crm_customers", "CRM-BRIDGE-A")] == merged[("crm_customers", "CRM-BRIDGE-B")] == survivor
    for key, old in before.items():
        assert merged[key] == (survivor if old in (first["id"], second["id"]) else old)
    audit = lh.read(tables.IDENTITY_AUDIT).where("run_id = 'run-3'").collect()
    assert [(a.event, a.old_ids, a.new_id) for a in audit] == [("merge", sorted([first["id"], second["id"]]), survivor)]
    registry = {r.customer_id: r for r in lh.read(tables.CUSTOMER_IDS).collect()}
    loser = max(first["id"], second["id"])
    assert (registry[loser].retired_run_id, registry[loser].retired_reason) == ("run-3", "merge")
    assert registry[survivor].retired_at is None

    # run 4: change rows (change data capture), applied by sequence, not arrival. The bridge's second
    # record is deleted (a split); the newcomer's email changes. The later file carries older changes
    # of both (a late update of the deleted record, a stale email), which must lose; two bad change
    # rows are quarantined.
    _crm_file(data.sources, "crm_customers_us_9003.csv", [
        {"crm_id": "CRM-BRIDGE-B", "first_name": "Bo", "last_name": "Other", "change_op": "delete", "change_seq": "20"},
        {"crm_id": "CRM-NEW-2", "first_name": "Zed", "last_name": "Newcomer", "email": "zed.cdc@example.org",
         "change_op": "update", "change_seq": "30"},
    ], changes=True)
    _crm_file(data.sources, "crm_customers_us_9004.csv", [
        {"crm_id": "CRM-BRIDGE-B", "first_name": "Bo", "last_name": "Other", "email": second["email"],
         "loyalty_number": "BRIDGE-77", "change_op": "update", "change_seq": "15"},
        {"crm_id": "CRM-NEW-2", "first_name": "Zed", "last_name": "Newcomer", "email": "zed.stale@example.org",
         "change_op": "update", "change_seq": "25"},
        {"crm_id": "CRM-BAD-1", "first_name": "Bad", "last_name": "Op", "change_op": "upsert", "change_seq": "1"},
        {"crm_id": "CRM-BAD-2", "first_name": "No", "last_name": "Sequence", "change_op": "update"},
    ], changes=True)
    run4 = dataclasses.replace(ctx, run_id="run-4")
    ingested = ingest(run4, now=datetime(2026, 7, 4, 12))
    quarantined = {r.raw_payload.split('"crm_id":"')[1].split('"')[0]: r.reason
                   for r in lh.read(tables.QUARANTINE).where("run_id = 'run-4'").collect()}
    assert quarantined == {
        "CRM-BAD-1": "impossible value: change_op 'upsert' is not one of insert, update, delete",
        "CRM-BAD-2": "missing required field: change_seq (a row with change_op needs it)",
    }, ingested.lines
    # four good change rows of two records: CRM-BRIDGE-B's delete (seq 20) beats the late update
    # (seq 15) and stays as a tombstone; CRM-NEW-2 takes seq 30, not the stale seq 25
    assert ("bronze.crm_customers_current: 4 new bronze row(s) of 2 load(s) merged, 2 record(s) changed "
            "(1 of them deleted, kept as tombstones)") in ingested.lines
    state = {r.crm_id: (r.change_op, r.change_seq, r.email) for r in lh.read(tables.current_table("crm_customers"))
             .where(F.col("crm_id").isin("CRM-BRIDGE-B", "CRM-NEW-2")).collect()}
    assert state == {"CRM-BRIDGE-B": ("delete", 20, None), "CRM-NEW-2": ("update", 30, "zed.cdc@example.org")}
    current = lh.read(tables.current_table("crm_customers"))
    assert current.count() == current.select("region", "crm_id").distinct().count()
    stage.run(run4, now=datetime(2026, 7, 4, 13))
    split = {(r.source, r.source_record_id): r.customer_id for r in lh.read(tables.CUSTOMER_XREF).collect()}
    assert ("crm_customers", "CRM-BRIDGE-B") not in split
    newcomer = lh.read(tables.IDENTITY_RECORDS).where("source_record_id = 'CRM-NEW-2'").collect()
    assert [r.email for r in newcomer] == [python_token("zed.cdc@example.org", key=DEV_KEY, kind="email")]
    # the bridge gone, the first and second customers' records fall apart again
    firsts = {split[k] for k, old in before.items() if old == first["id"]} | {split[("crm_customers", "CRM-BRIDGE-A")]}
    seconds = {split[k] for k, old in before.items() if old == second["id"]}
    assert len(firsts) == 1 and len(seconds) == 1 and firsts != seconds
    audit4 = lh.read(tables.IDENTITY_AUDIT).where("run_id = 'run-4'").collect()
    assert sorted((a.event, a.old_ids, a.new_id) for a in audit4) == sorted(
        [("split", [survivor], *firsts), ("split", [survivor], *seconds)]
    )


def test_resolution_does_not_depend_on_row_order_or_partitioning(resolved, spark):
    """Vertex ids come from the record keys, so every tie (identifier-group anchors, neighbourhood
    windows, the u sample, edge direction) falls the same way: the same records in another order and
    partitioning give the same components, rules, confidences and links."""
    from chispa import assert_df_equality

    from customer360.identity.resolve import resolve_identities, vertex_ids
    from customer360.identity.records import standardize_records

    ctx, _, _ = resolved
    canonical, _ = stage.bronze_records(ctx)
    clear = standardize_records(canonical, regions={"us": ctx.config.regions["us"]}, identity=ctx.config.identity,
                                today=datetime(2026, 7, 1).date()).localCheckpoint(eager=True)
    shuffled = clear.repartition(5, "source_record_id").orderBy(F.desc("source_record_id")).localCheckpoint(eager=True)

    def outcome(frame):
        result = resolve_identities(frame, ctx.config.identity)
        by_component = Window.partitionBy("component")
        # component labels are vertex ids: compare each record's cluster by its smallest record key
        components = result.components.withColumn(
            "cluster", F.min(F.concat_ws("/", "source", "source_record_id")).over(by_component)
        ).drop("component")
        out = (components.orderBy("source", "source_record_id").localCheckpoint(eager=True),
               result.links.orderBy(*result.links.columns).localCheckpoint(eager=True))
        result.release()
        return out

    (components_a, links_a), (components_b, links_b) = outcome(clear), outcome(shuffled)
    assert components_a.select("cluster").distinct().count() < components_a.count()  # some records merged
    assert links_a.where("link_type = 'probabilistic'").count() > 0
    assert_df_equality(components_a, components_b)
    assert_df_equality(links_a, links_b)

    # a shared hash (forced here) falls back to the keys' sorted rank: still one id per key
    ranked = vertex_ids(clear, hashed=F.lit(7)).select("source", "source_record_id", "vid")
    assert ranked.select("vid").distinct().count() == clear.count()
    first = ranked.orderBy("vid").first()
    assert (first.source, first.source_record_id) == tuple(clear.select("source", "source_record_id")
                                                          .orderBy("region", "source", "source_record_id").first())


def test_no_clear_personal_data_outside_the_vault(resolved, spark, tmp_path_factory):
    """Checkpoint files and every silver/ops table but the vault hold tokens, never values."""
    ctx, _, _ = resolved
    lh = ctx.lakehouse
    emails = [r.value for r in lh.read(tables.PII_VAULT).where("kind = 'email'").limit(20).collect()]
    assert emails
    assert "profile_key" not in lh.read(tables.IDENTITY_RECORDS).columns
    roots = [Path(ctx.lakehouse.root)]
    checkpoint_dir = spark.sparkContext.getCheckpointDir()
    if checkpoint_dir:
        roots.append(Path(checkpoint_dir.removeprefix("file:")))
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or "pii_vault" in path.parts or "bronze" in path.parts:
                continue
            data = path.read_bytes()
            leaked = [e for e in emails if e.encode() in data]
            assert not leaked, f"{path} holds clear emails {leaked[:2]}"
