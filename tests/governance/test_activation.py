"""Activation: segment audiences with consent exclusions, per-role exports and manifests, and the
``c360 export`` / ``c360 sql`` / ``c360 governance sql`` commands that front them."""
from __future__ import annotations

import io
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from customer360 import cli
from customer360.config import RoleConfig, load_config
from customer360.governance.activation import ExportError, audience, export
from customer360.context import build_context

from tests.conftest import CONF_DIR

CURRENT = date(2026, 6, 30)
OLDER = date(2026, 5, 31)
NOW = datetime(2026, 7, 1, 9, 30, tzinfo=timezone.utc)

CONTACT = ["first_name", "last_name", "email", "phone"]
#: PII columns of gold.customer_360 in conf/governance.yaml besides the contact columns
OTHER_PII = ["date_of_birth", "street", "city", "postcode", "loyalty_id", "company_name"]
C360 = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        *[T.StructField(c, T.StringType()) for c in CONTACT + OTHER_PII],
        T.StructField("marketing_consent", T.BooleanType()),
        T.StructField("profiling_consent", T.BooleanType()),
        T.StructField("erasure_requested", T.BooleanType()),
        T.StructField("features_as_of", T.DateType()),
        T.StructField("churn_score", T.DoubleType()),
        T.StructField("region", T.StringType()),
    ]
)


def _person(customer_id, region, *, marketing=True, profiling=True, erasure=False, email=True, score=0.5, as_of=CURRENT):
    n = customer_id[1:]
    return (
        customer_id, f"tok-fn-{n}", f"tok-ln-{n}", f"tok-email-{n}" if email else None, f"tok-phone-{n}",
        *[f"tok-{c}-{n}" for c in OTHER_PII],
        marketing, profiling, erasure, as_of, score, region,
    )


# segment "champions" (global taxonomy name) holds c01-c04 in us (local name loyal_high) and
# c06-c09 in de (local name stammkunden); every exclusion reason appears, in both regions
C360_ROWS = [
    _person("c01", "us", score=0.12),                                   # exported
    _person("c02", "us", erasure=True, score=0.22),                     # erasure_requested
    _person("c03", "us", profiling=False, marketing=False, score=0.32),  # no_profiling_consent (before marketing)
    _person("c04", "us", marketing=False, score=0.42),                  # no_marketing_consent
    _person("c05", "us", score=0.52),                                   # in the segment only on the older date
    _person("c06", "de", score=0.62),                                   # exported; phone token not in the vault
    _person("c07", "de", email=False, score=0.72),                      # exported; no_contact_email for marketing
    _person("c08", "de", erasure=True, profiling=False, score=0.82),    # erasure_requested (first reason wins)
    _person("c09", "de", marketing=None, score=0.92),                   # no_marketing_consent (null consent)
    _person("c10", "de", score=0.15),                                   # dormant now, champion on the older date
    _person("c11", "fr", score=0.25),                                   # a champion outside the exported regions
]

SEGMENTS = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("segment", T.StringType()),
        T.StructField("global_segment", T.StringType()),
        T.StructField("region", T.StringType()),
        T.StructField("as_of_date", T.DateType()),
    ]
)
SEGMENT_ROWS = [
    *[(c, "loyal_high", "champions", "us", CURRENT) for c in ("c01", "c02", "c03", "c04")],
    ("c05", "steady", "regulars", "us", CURRENT),
    *[(c, "stammkunden", "champions", "de", CURRENT) for c in ("c06", "c07", "c08", "c09")],
    ("c10", "dormant", "dormant", "de", CURRENT),
    ("c11", "fidelite", "champions", "fr", CURRENT),
    # the older scoring date: never part of today's audience
    ("c01", "loyal_high", "champions", "us", OLDER),
    ("c05", "loyal_high", "champions", "us", OLDER),
    ("c10", "stammkunden", "champions", "de", OLDER),
    ("c10", "veterans", "veterans", "de", OLDER),
]

VAULT = T.StructType(
    [
        T.StructField("token", T.StringType()),
        T.StructField("kind", T.StringType()),
        T.StructField("value", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("region", T.StringType()),
    ]
)
CLEAR = {
    "tok-fn-01": "Annabel", "tok-ln-01": "Archerton", "tok-email-01": "annabel.archerton@mail.example",
    "tok-phone-01": "+1 555 0101",
    "tok-fn-02": "Bartholomew", "tok-email-02": "bartholomew@mail.example",
    "tok-fn-04": "Cordelia", "tok-email-04": "cordelia@mail.example",
    "tok-fn-06": "Dietlinde", "tok-ln-06": "Dreyfuss", "tok-email-06": "dietlinde@post.example",
    "tok-fn-07": "Eberhard", "tok-ln-07": "Eichwald", "tok-phone-07": "+49 30 7777777",
    "tok-fn-09": "Friederike", "tok-email-09": "friederike@post.example",
    "tok-fn-11": "Gaspard", "tok-email-11": "gaspard@courriel.example",
}
KIND = {"fn": "first_name", "ln": "last_name", "email": "email", "phone": "phone"}


def _vault_rows():
    region = {"01": "us", "02": "us", "04": "us", "11": "fr"}
    rows = []
    for token, value in CLEAR.items():
        _, kind, n = token.split("-")
        rows.append((token, KIND[kind], value, "run-1", region.get(n, "de")))
    return rows


FEATURE_DATE = CURRENT.isoformat()
ANALYST_COLUMNS = [
    "customer_id", "region", "segment", "global_segment", "as_of_date", "churn_score",
    "first_name", "last_name", "email", "phone",
]
REASONS = ["erasure_requested", "no_profiling_consent", "no_marketing_consent"]


def _config(root: Path, *overrides: str):
    return load_config(
        "local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={root}", "pipeline.regions=[us, de]", *overrides]
    )


def _cli_args(root: Path, *extra: str) -> list[str]:
    return ["--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={root}", "--set", "pipeline.regions=[us, de]", *extra]


@pytest.fixture(scope="module")
def lakehouse_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("activation") / "lh"


@pytest.fixture(scope="module")
def ctx(spark, lakehouse_root):
    """A lakehouse with gold.customer_360, gold.customer_segments and silver.pii_vault; tests only read it."""
    ctx = build_context(_config(lakehouse_root), spark=spark, regions=["us", "de"], run_id="exp-1")
    ctx.lakehouse.write(spark.createDataFrame(C360_ROWS, C360), "gold.customer_360", mode="overwrite", partition_by=["region"])
    ctx.lakehouse.write(
        spark.createDataFrame(SEGMENT_ROWS, SEGMENTS), "gold.customer_segments", mode="overwrite",
        partition_by=["region", "as_of_date"],
    )
    ctx.lakehouse.write(spark.createDataFrame(_vault_rows(), VAULT), "silver.pii_vault", mode="overwrite", partition_by=["region"])
    return ctx


def _read_csv(out: Path, manifest: dict) -> pd.DataFrame:
    [part] = manifest["files"]
    return pd.read_csv(out / part, dtype=str, keep_default_na=False)


def _read_jsonl(out: Path, manifest: dict) -> list[dict]:
    [part] = manifest["files"]
    return [json.loads(line) for line in (out / part).read_text().splitlines() if line.strip()]


def _all_output_text(out: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in out.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- audience


AUDIENCE = T.StructType(
    [
        T.StructField("region", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("_excluded", T.StringType()),
    ]
)


@pytest.mark.parametrize(
    "contact, c07",
    [(False, None), (True, "no_contact_email")],
    ids=["tokens", "contact-export"],
)
def test_audience_gives_each_member_of_the_current_date_its_first_exclusion_reason(spark, contact, c07):
    c360 = spark.createDataFrame(C360_ROWS, C360)
    segments = spark.createDataFrame(SEGMENT_ROWS, SEGMENTS)

    actual = audience(c360, segments, "champions", contact=contact).select("region", "customer_id", "_excluded")

    expected = spark.createDataFrame(
        [
            ("us", "c01", None),
            ("us", "c02", "erasure_requested"),
            ("us", "c03", "no_profiling_consent"),
            ("us", "c04", "no_marketing_consent"),
            ("de", "c06", None),
            ("de", "c07", c07),
            ("de", "c08", "erasure_requested"),
            ("de", "c09", "no_marketing_consent"),
            ("fr", "c11", None),  # audience() is region-agnostic; export() narrows to the run's regions
        ],
        AUDIENCE,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_audience_matches_the_local_segment_name_and_ignores_older_dates(spark):
    c360 = spark.createDataFrame(C360_ROWS, C360)
    segments = spark.createDataFrame(SEGMENT_ROWS, SEGMENTS)

    loyal = audience(c360, segments, "loyal_high", contact=False).select("region", "customer_id", "as_of_date", "_segment", "_global")
    veterans = audience(c360, segments, "veterans", contact=False)

    row_schema = T.StructType(
        [
            T.StructField("region", T.StringType()),
            T.StructField("customer_id", T.StringType()),
            T.StructField("as_of_date", T.DateType()),
            T.StructField("_segment", T.StringType()),
            T.StructField("_global", T.StringType()),
        ]
    )
    expected = spark.createDataFrame(
        [("us", c, CURRENT, "loyal_high", "champions") for c in ("c01", "c02", "c03", "c04")], row_schema
    )
    # c01 is also loyal_high on the older date and c05 only then: neither adds a row
    assert_df_equality(loyal, expected, ignore_row_order=True, ignore_nullable=True)
    assert veterans.collect() == []


# --------------------------------------------------------------------------- export as analyst


@pytest.fixture(scope="module")
def analyst_csv(ctx, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyst_csv") / "champions"
    manifest = export(ctx, segment="champions", fmt="csv", out=str(out), role="analyst", now=NOW)
    return out, manifest


def test_analyst_csv_export_holds_the_exported_members_with_tokens(analyst_csv):
    out, manifest = analyst_csv

    frame = _read_csv(out, manifest)

    assert list(frame.columns) == ANALYST_COLUMNS
    assert frame.to_dict("records") == [
        {"customer_id": "c06", "region": "de", "segment": "stammkunden", "global_segment": "champions",
         "as_of_date": FEATURE_DATE, "churn_score": "0.62", "first_name": "tok-fn-06", "last_name": "tok-ln-06",
         "email": "tok-email-06", "phone": "tok-phone-06"},
        {"customer_id": "c07", "region": "de", "segment": "stammkunden", "global_segment": "champions",
         "as_of_date": FEATURE_DATE, "churn_score": "0.72", "first_name": "tok-fn-07", "last_name": "tok-ln-07",
         "email": "", "phone": "tok-phone-07"},
        {"customer_id": "c01", "region": "us", "segment": "loyal_high", "global_segment": "champions",
         "as_of_date": FEATURE_DATE, "churn_score": "0.12", "first_name": "tok-fn-01", "last_name": "tok-ln-01",
         "email": "tok-email-01", "phone": "tok-phone-01"},
    ]


def test_analyst_export_writes_no_clear_value_and_no_other_pii(analyst_csv):
    out, _ = analyst_csv

    text = _all_output_text(out)

    assert [value for value in CLEAR.values() if value in text] == []
    # only the contact columns leave the lakehouse, and nobody outside the audience
    assert "tok-street" not in text and "tok-date_of_birth" not in text
    # as whole values: the manifest's run id is random hex, and "c02" turns up in one now and then
    assert [c for c in ("c02", "c03", "c04", "c05", "c08", "c09", "c10", "c11") if re.search(rf"\b{c}\b", text)] == []


def test_analyst_manifest_counts_members_exclusions_and_regions(analyst_csv):
    out, manifest = analyst_csv

    on_disk = json.loads((out / "manifest.json").read_text())

    assert on_disk == manifest
    [part] = manifest["files"]
    assert part.startswith("audience/part-") and part.endswith(".csv") and (out / part).is_file()
    assert manifest == {
        "segment": "champions",
        "role": "analyst",
        "contact_details": False,
        "pii": "token",
        "format": "csv",
        "columns": ANALYST_COLUMNS,
        "files": [part],
        "generated_at": "2026-07-01T09:30:00+00:00",
        "run_id": "exp-1",
        "members": 8,
        "exported": 3,
        "excluded": {"erasure_requested": 2, "no_profiling_consent": 1, "no_marketing_consent": 2},
        "by_region": {
            "de": {"members": 4, "exported": 2,
                   "excluded": {"erasure_requested": 1, "no_profiling_consent": 0, "no_marketing_consent": 1}},
            "us": {"members": 4, "exported": 1,
                   "excluded": {"erasure_requested": 1, "no_profiling_consent": 1, "no_marketing_consent": 1}},
        },
        "rules": "members of the segment on the region's current scoring date; excluded, first reason wins: "
        "erasure_requested, no_profiling_consent, no_marketing_consent",
    }
    assert manifest["members"] == manifest["exported"] + sum(manifest["excluded"].values())


def test_analyst_jsonl_export_by_local_segment_name(ctx, tmp_path):
    out = tmp_path / "loyal"

    manifest = export(ctx, segment="loyal_high", fmt="jsonl", out=str(out), role="analyst", now=NOW)

    assert _read_jsonl(out, manifest) == [
        {"customer_id": "c01", "region": "us", "segment": "loyal_high", "global_segment": "champions",
         "as_of_date": FEATURE_DATE, "churn_score": 0.12, "first_name": "tok-fn-01", "last_name": "tok-ln-01",
         "email": "tok-email-01", "phone": "tok-phone-01"},
    ]
    assert manifest["format"] == "jsonl"
    assert manifest["files"][0].startswith("audience/part-")
    assert (manifest["members"], manifest["exported"]) == (4, 1)
    assert list(manifest["by_region"]) == ["us"]
    assert manifest["by_region"]["us"]["excluded"] == {
        "erasure_requested": 1, "no_profiling_consent": 1, "no_marketing_consent": 1,
    }
    assert [value for value in CLEAR.values() if value in _all_output_text(out)] == []


# --------------------------------------------------------------------------- export as marketing


@pytest.fixture(scope="module")
def marketing_csv(ctx, tmp_path_factory):
    out = tmp_path_factory.mktemp("marketing_csv") / "champions"
    manifest = export(ctx, segment="champions", fmt="csv", out=str(out), role="marketing", now=NOW)
    return out, manifest


def test_marketing_export_has_clear_contact_values_from_the_vault(marketing_csv):
    out, manifest = marketing_csv

    frame = _read_csv(out, manifest)

    assert list(frame.columns) == ANALYST_COLUMNS
    assert frame.to_dict("records") == [
        # c06's phone token is not in the vault: an empty value, never the token
        {"customer_id": "c06", "region": "de", "segment": "stammkunden", "global_segment": "champions",
         "as_of_date": FEATURE_DATE, "churn_score": "0.62", "first_name": "Dietlinde", "last_name": "Dreyfuss",
         "email": "dietlinde@post.example", "phone": ""},
        {"customer_id": "c01", "region": "us", "segment": "loyal_high", "global_segment": "champions",
         "as_of_date": FEATURE_DATE, "churn_score": "0.12", "first_name": "Annabel", "last_name": "Archerton",
         "email": "annabel.archerton@mail.example", "phone": "+1 555 0101"},
    ]
    assert "tok-" not in _all_output_text(out)


def test_marketing_manifest_excludes_members_without_an_email(marketing_csv):
    _, manifest = marketing_csv

    assert (manifest["role"], manifest["contact_details"], manifest["pii"]) == ("marketing", True, "clear")
    assert (manifest["members"], manifest["exported"]) == (8, 2)
    assert manifest["excluded"] == {
        "erasure_requested": 2, "no_profiling_consent": 1, "no_marketing_consent": 2, "no_contact_email": 1,
    }
    assert manifest["by_region"]["de"] == {
        "members": 4, "exported": 1,
        "excluded": {"erasure_requested": 1, "no_profiling_consent": 0, "no_marketing_consent": 1, "no_contact_email": 1},
    }
    assert manifest["by_region"]["us"]["excluded"]["no_contact_email"] == 0
    assert manifest["rules"].endswith("erasure_requested, no_profiling_consent, no_marketing_consent, no_contact_email")


def test_marketing_jsonl_export_keeps_every_column_of_the_manifest(ctx, tmp_path):
    out = tmp_path / "champions"

    manifest = export(ctx, segment="champions", fmt="jsonl", out=str(out), role="marketing", now=NOW)
    rows = _read_jsonl(out, manifest)

    assert [r["customer_id"] for r in rows] == ["c06", "c01"]
    # every row carries every column the manifest lists; a missing clear value is null
    assert [sorted(r) for r in rows] == [sorted(manifest["columns"])] * 2
    assert rows[0]["phone"] is None
    assert rows[0]["email"] == "dietlinde@post.example"
    assert rows[1]["phone"] == "+1 555 0101"


@pytest.mark.parametrize(
    "pii, shown",
    [("clear", lambda token: token), ("mask", lambda token: "***" if token else "")],
    ids=["clear-without-contact-export-gets-tokens", "mask"],
)
def test_a_role_without_contact_export_sees_its_own_treatment_never_clear_values(ctx, spark, lakehouse_root, tmp_path, pii, shown):
    # the policy comes from configuration files only (--set governance.roles... is refused): a copy
    # of the loaded config with one more role stands for a governance.yaml that names it
    config = _config(lakehouse_root)
    roles = {**config.governance.roles, "auditor": RoleConfig(
        tables=("gold.customer_360", "gold.customer_segments"), pii=pii, group="c360_auditors")}
    config = config.model_copy(update={"governance": config.governance.model_copy(update={"roles": roles})})
    auditing = build_context(config, spark=spark, regions=["us", "de"], run_id="exp-3")
    out = tmp_path / "audit"

    manifest = export(auditing, segment="champions", fmt="csv", out=str(out), role="auditor", now=NOW)

    frame = _read_csv(out, manifest)
    assert (manifest["pii"], manifest["contact_details"]) == ("token" if pii == "clear" else "mask", False)
    assert list(manifest["excluded"]) == REASONS
    assert frame[["customer_id", *CONTACT]].to_dict("records") == [
        {"customer_id": "c06", "first_name": shown("tok-fn-06"), "last_name": shown("tok-ln-06"),
         "email": shown("tok-email-06"), "phone": shown("tok-phone-06")},
        {"customer_id": "c07", "first_name": shown("tok-fn-07"), "last_name": shown("tok-ln-07"),
         "email": shown(""), "phone": shown("tok-phone-07")},
        {"customer_id": "c01", "first_name": shown("tok-fn-01"), "last_name": shown("tok-ln-01"),
         "email": shown("tok-email-01"), "phone": shown("tok-phone-01")},
    ]
    assert [value for value in CLEAR.values() if value in _all_output_text(out)] == []


# --------------------------------------------------------------------------- export errors


def test_a_role_that_may_not_read_the_segments_cannot_export(ctx, tmp_path):
    with pytest.raises(ExportError, match=r"^role finance may not read gold\.customer_segments, so it cannot export audiences$"):
        export(ctx, segment="champions", fmt="csv", out=str(tmp_path / "out"), role="finance")
    assert not (tmp_path / "out").exists()


def test_an_unknown_role_is_refused_with_the_known_roles(ctx, tmp_path):
    with pytest.raises(ExportError, match=r"^unknown role 'intern'; known roles: analyst, finance, marketing$"):
        export(ctx, segment="champions", fmt="csv", out=str(tmp_path / "out"), role="intern")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("segment", ["nope", "veterans"], ids=["unknown", "only-on-an-older-date"])
def test_a_segment_without_current_members_is_refused_with_the_known_segments(ctx, tmp_path, segment):
    with pytest.raises(ExportError) as raised:
        export(ctx, segment=segment, fmt="csv", out=str(tmp_path / "out"), role="analyst")

    # the exported regions' segment and global names of every date; fr's "fidelite" is not one
    assert str(raised.value) == (
        f"no customer is in segment {segment!r} in us, de; "
        "segments: champions, dormant, loyal_high, regulars, stammkunden, steady, veterans"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["parquet", "CSV", "json"])
def test_a_format_other_than_csv_or_jsonl_is_refused(ctx, tmp_path, fmt):
    with pytest.raises(ExportError, match=rf"^format must be csv or jsonl, not '{fmt}'$"):
        export(ctx, segment="champions", fmt=fmt, out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_missing_tables_are_refused_naming_the_table(spark, tmp_path):
    empty = build_context(_config(tmp_path / "lh"), spark=spark, regions=["us", "de"], run_id="exp-2")
    with pytest.raises(ExportError, match=r"^gold\.customer_360 does not exist: run the gold and ml stages first$"):
        export(empty, segment="champions", fmt="csv", out=str(tmp_path / "out"))

    empty.lakehouse.write(spark.createDataFrame(C360_ROWS[:1], C360), "gold.customer_360", partition_by=["region"])
    with pytest.raises(ExportError, match=r"^gold\.customer_segments does not exist: run the gold and ml stages first$"):
        export(empty, segment="champions", fmt="csv", out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the c360 commands


def test_cli_export_prints_the_summary_and_writes_the_audience(ctx, lakehouse_root, tmp_path, capsys):
    out = tmp_path / "cli"

    code = cli.main(["export", "--segment", "champions", "--format", "csv", "--out", str(out), *_cli_args(lakehouse_root)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == (
        f"exported 3 of 8 members of 'champions' as analyst to {out} "
        '(excluded: {"erasure_requested": 2, "no_profiling_consent": 1, "no_marketing_consent": 2})\n'
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(_read_csv(out, manifest)["customer_id"]) == ["c06", "c07", "c01"]


def test_cli_export_of_an_unknown_segment_exits_2_with_the_error(ctx, lakehouse_root, tmp_path, capsys):
    code = cli.main(["export", "--segment", "nope", "--out", str(tmp_path / "out"), *_cli_args(lakehouse_root)])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "c360 export: error: no customer is in segment 'nope' in us, de; segments: champions" in captured.err


def test_cli_sql_as_finance_drops_the_pii_columns(ctx, lakehouse_root, capsys):
    code = cli.main(["sql", "--role", "finance", "--format", "csv", "SELECT * FROM gold.customer_360", *_cli_args(lakehouse_root)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    frame = pd.read_csv(io.StringIO(captured.out), dtype=str, keep_default_na=False)
    assert list(frame.columns) == [
        "customer_id", "marketing_consent", "profiling_consent", "erasure_requested", "features_as_of", "churn_score", "region",
    ]
    # run_sql reads the whole table, every region
    assert sorted(frame["customer_id"]) == [f"c{n:02d}" for n in range(1, 12)]
    assert frame.set_index("customer_id").loc["c09", "marketing_consent"] == ""
    assert "tok-" not in captured.out


def test_cli_sql_as_analyst_shows_tokens(ctx, lakehouse_root, capsys):
    query = "SELECT customer_id, first_name, email FROM gold.customer_360 WHERE region = 'us' ORDER BY customer_id"

    code = cli.main(["sql", "--role", "analyst", "--format", "csv", query, *_cli_args(lakehouse_root)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == (
        "customer_id,first_name,email\n"
        "c01,tok-fn-01,tok-email-01\n"
        "c02,tok-fn-02,tok-email-02\n"
        "c03,tok-fn-03,tok-email-03\n"
        "c04,tok-fn-04,tok-email-04\n"
        "c05,tok-fn-05,tok-email-05\n"
    )


def test_cli_sql_as_marketing_shows_clear_values(ctx, lakehouse_root, capsys):
    query = "SELECT customer_id, first_name, email, phone FROM gold.customer_360 WHERE customer_id IN ('c01', 'c06') ORDER BY customer_id"

    code = cli.main(["sql", "--role", "marketing", "--format", "json", query, *_cli_args(lakehouse_root)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [json.loads(line) for line in captured.out.splitlines()] == [
        {"customer_id": "c01", "first_name": "Annabel", "email": "annabel.archerton@mail.example", "phone": "+1 555 0101"},
        {"customer_id": "c06", "first_name": "Dietlinde", "email": "dietlinde@post.example", "phone": None},
    ]


@pytest.mark.parametrize(
    "role, query, message",
    [
        ("finance", "SELECT * FROM gold.customer_segments", "table gold.customer_segments is not available to role finance"),
        ("analyst", "SELECT * FROM silver.pii_vault", "table silver.pii_vault is not available to role analyst"),
        ("intern", "SELECT * FROM gold.customer_360", "unknown role 'intern'; known roles: analyst, finance, marketing"),
        ("finance", "SELECT email FROM gold.customer_360", "query failed for role finance: [UNRESOLVED_COLUMN"),
    ],
    ids=["finance-segments", "analyst-vault", "unknown-role", "finance-dropped-column"],
)
def test_cli_sql_refuses_what_the_role_may_not_read(ctx, lakehouse_root, capsys, role, query, message):
    code = cli.main(["sql", "--role", role, "--format", "csv", query, *_cli_args(lakehouse_root)])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert f"c360 sql: error: {message}" in captured.err


def test_cli_governance_sql_prints_grants_and_masks_but_never_grants_the_vault(tmp_path, capsys):
    code = cli.main(["governance", "sql", *_cli_args(tmp_path / "lh")])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    mask = "`main`.`governance`.`mask_pii`"
    assert f"ALTER TABLE `main`.`gold`.`customer_360` ALTER COLUMN `email` SET MASK {mask};" in lines
    assert f"ALTER TABLE `main`.`gold`.`customer_360` ALTER COLUMN `phone` SET MASK {mask};" in lines
    assert "GRANT SELECT ON TABLE `main`.`gold`.`customer_360` TO `c360_analysts`;" in lines
    assert "GRANT SELECT ON TABLE `main`.`gold`.`customer_segments` TO `c360_marketing`;" in lines
    assert "GRANT SELECT ON VIEW `main`.`governance`.`finance__customer_360` TO `c360_finance`;" in lines
    [view] = [line for line in lines if line.startswith("CREATE OR REPLACE VIEW `main`.`governance`.`finance__customer_360`")]
    assert "`customer_id`" in view and "`churn_score`" in view
    assert [c for c in CONTACT + OTHER_PII if f"`{c}`" in view] == []
    # finance reads customer_360 only through the view, and never the segments
    assert [line for line in lines if line.startswith("GRANT SELECT") and "c360_finance" in line and "`gold`" in line] == [
        "GRANT SELECT ON TABLE `main`.`gold`.`finance_revenue_monthly` TO `c360_finance`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`finance_cohort_retention` TO `c360_finance`;",
        "GRANT SELECT ON TABLE `main`.`gold`.`finance_customer_value` TO `c360_finance`;",
    ]
    assert [line for line in lines if line.startswith("GRANT") and "pii_vault" in line] == []
