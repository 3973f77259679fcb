"""Hostile files in the landing folders: a generator of malformed, misnamed and random files per
source format, one ingestion over all of them, and the invariant for every file: it is rejected
whole with a clear reason in the run's errors, or rows read = rows in bronze + rows quarantined
with a reason. Nothing crashes the run and nothing is dropped silently."""
from __future__ import annotations

import gzip
import io
import json
import random

import pyarrow.parquet as pq
import pyspark.sql.functions as F

from customer360.bronze.ingest import UNTERMINATED, ingested_files
from customer360.bronze.stage import run
from customer360.tables import QUARANTINE

from tests.bronze.conftest import NOW
from tests.bronze.test_ingest import CRM_HEADER, CRM_ROWS, _orders_table

GOOD = CRM_ROWS[0]  # CRM-1, us, a good row
EVENT = '{"event_id":"E%d","event_ts":"2026-03-01T10:00:00Z","event_type":"login","region":"de"}'
SOURCES = ["crm_customers", "web_events", "orders"]


def _parquet_bytes(table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def crm(*rows, header=CRM_HEADER, end="\n") -> bytes:
    return (header + "\n".join(rows) + end).encode("utf-8")


# (source, region, file name, bytes, expected): expected is a message fragment for a file refused
# whole, or (rows read, loaded, quarantined) and the quarantine reasons' fragments
CASES = [
    ("crm_customers", "us", "dup_header.csv", crm(GOOD, header=CRM_HEADER.replace("phone", "email")),
     "duplicate column name(s) ['email'] in the header"),
    ("crm_customers", "us", "no_header.csv", crm(GOOD, GOOD.replace("CRM-1", "CRM-2"), header=""),
     "a column of the header has no name"),  # the first row taken as the header: company_name is blank
    ("crm_customers", "us", "no_header_full.csv", crm(GOOD.replace(",,", ",Acme,"), header=""),
     "missing required column(s)"),
    ("crm_customers", "us", "semicolons.csv", crm(GOOD.replace(",", ";"), header=CRM_HEADER.replace(",", ";")),
     "missing required column(s)"),
    ("crm_customers", "us", "blank_name.csv", crm(GOOD + ",", header=CRM_HEADER.strip() + ",\n"),
     "a column of the header has no name"),
    ("crm_customers", "us", "latin1.csv", crm(GOOD).replace(b"Ann", "Änn".encode("latin-1")),
     f"not valid UTF-8 (first bad byte at offset {len(CRM_HEADER) + len('CRM-1,B2C,,')})"),
    ("crm_customers", "us", "gzip_inside.csv", gzip.compress(crm(GOOD)), "not valid UTF-8 (first bad byte at offset 1)"),
    ("crm_customers", "us", "junk.csv", random.Random(7).randbytes(5000), "not valid UTF-8"),
    ("crm_customers", "us", "cut_utf8.csv", crm(GOOD, end="") + "é".encode("utf-8")[:1], "not valid UTF-8"),
    ("crm_customers", "us", "upper.CSV", crm(GOOD), "not loaded: crm_customers takes .csv files"),
    ("crm_customers", "us", "zipped.csv.gz", gzip.compress(crm(GOOD)), "not loaded: crm_customers takes .csv files"),
    ("crm_customers", "us", "notes.txt", b"hello\n", "not loaded: crm_customers takes .csv files"),
    ("crm_customers", "us", "line\nbreak.csv", crm(GOOD), "file name has a control character"),
    ("crm_customers", "us", "empty.csv", b"", (0, 0, 0, [])),
    ("crm_customers", "us", "header_only.csv", crm(), (0, 0, 0, [])),
    ("crm_customers", "us", "truncated.csv",
     crm(GOOD.replace("CRM-1", "CRM-T1"), GOOD.replace("CRM-1", "CRM-T2")[:-1], end=""),  # "...,u": cut in the region
     (2, 1, 1, [UNTERMINATED])),
    ("crm_customers", "us", "odd name 'ü' (1) %20;.csv", crm(GOOD.replace("CRM-1", "CRM-ODD")), (1, 1, 0, [])),
    ("crm_customers", "us", "other_region.csv", crm(GOOD.replace("CRM-1", "CRM-R1"), GOOD.replace("CRM-1", "CRM-R2")[:-2] + "de"),
     (2, 1, 1, ["impossible value: region 'de' in a file of the us folder"])),
    ("crm_customers", "us", "huge_field.csv", crm(GOOD.replace(",Boston,", ',"' + "B" * 10_000_000 + '",')), (1, 1, 0, [])),
    ("web_events", "de", "plain.jsonl", b"this is not json\nnor this\n", "no line is a JSON object"),
    ("web_events", "de", "latin1.jsonl", (EVENT % 1 + "\n").encode().replace(b"login", "l\xf6gin".encode("latin-1")),
     "not valid UTF-8"),
    ("web_events", "de", "deep.jsonl", (EVENT % 2 + "\n" + '{"event_id":"E3","x":' + "[" * 5000 + "]" * 5000 + "}\n").encode(),
     (2, 1, 1, ["unparseable line"])),
    ("web_events", "de", "truncated.jsonl", (EVENT % 4 + "\n" + (EVENT % 5)[:40]).encode(), (2, 1, 1, ["unparseable line"])),
    ("web_events", "de", "empty.jsonl", b"", (0, 0, 0, [])),
    ("orders", "us", "not_parquet.parquet", b"PAR1 but not really", "not a readable Parquet file"),
    ("orders", "us", "cut.parquet", _parquet_bytes(_orders_table())[:300], "not a readable Parquet file"),
    ("orders", "us", "empty.parquet", b"", "empty file is not Parquet"),
]


def mutations(seed: int = 20261206, n: int = 24) -> list[tuple[str, str, str, bytes]]:
    """Seeded random damage to good files: cut at a random byte, random bytes spliced in, a line
    repeated, delimiters swapped, quotes unbalanced."""
    rng = random.Random(seed)
    good = {
        "crm_customers": crm(*[GOOD.replace("CRM-1", f"CRM-M{i}") for i in range(20)]),
        "web_events": "\n".join(EVENT % (100 + i) for i in range(20)).encode() + b"\n",
        "orders": _parquet_bytes(_orders_table()),
    }
    region = {"crm_customers": "us", "web_events": "de", "orders": "us"}
    extension = {"crm_customers": "csv", "web_events": "jsonl", "orders": "parquet"}
    out = []
    for i in range(n):
        source = SOURCES[i % 3]
        data = bytearray(good[source])
        kind = rng.choice(["cut", "splice", "repeat", "delimiter", "quote"])
        at = rng.randrange(1, len(data))
        if kind == "cut":
            data = data[:at]
        elif kind == "splice":
            data[at:at] = rng.randbytes(rng.randrange(1, 40))
        elif kind == "repeat":
            lines = bytes(data).split(b"\n")
            j = rng.randrange(len(lines))
            data = bytearray(b"\n".join(lines[: j + 1] + lines[j:]))
        elif kind == "delimiter":
            data = bytearray(bytes(data).replace(b",", b"\t", rng.randrange(1, 30)))
        else:
            data[at:at] = b'"'
        out.append((source, region[source], f"mutated_{i:02d}_{kind}.{extension[source]}", bytes(data)))
    return out


def test_every_hostile_file_is_refused_with_a_reason_or_accounted_row_by_row(ctx, landing):
    written = {}
    for source, region, name, data, *_ in [*CASES, *mutations()]:
        folder = landing / source / region
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        written[f"{source}/{region}/{name}"] = data

    result = run(ctx, sources=SOURCES, now=NOW)  # nothing raises

    status = {r.file: r for r in ingested_files(ctx.lakehouse).collect()}
    assert sorted(status) == sorted(written)  # every file has an outcome, none is passed over
    bronze = {}
    for source in SOURCES:
        if ctx.lakehouse.exists(f"bronze.{source}"):
            for r in ctx.lakehouse.read(f"bronze.{source}").groupBy("_source_file").count().collect():
                bronze[r["_source_file"]] = r["count"]
    quarantine = ctx.lakehouse.read(QUARANTINE)
    assert quarantine.where(F.coalesce(F.length("reason"), F.lit(0)) == 0).count() == 0  # every row has its reason
    quarantined = {r.file: r["count"] for r in quarantine.groupBy("file").count().collect()}
    reasons = {}
    for r in quarantine.select("file", "reason").collect():
        reasons.setdefault(r.file, []).append(r.reason)

    failed = loaded = 0
    for file, row in status.items():
        assert row.status in ("loaded", "failed"), (file, row.status)
        if row.status == "failed":
            failed += 1
            assert row.message and row.message in result.errors, file  # said in the run summary
            assert bronze.get(file, 0) == 0 and quarantined.get(file, 0) == 0, file  # nothing of it written
        else:
            loaded += 1
            assert row.rows_read == row.rows_loaded + row.rows_quarantined, file
            assert (bronze.get(file, 0), quarantined.get(file, 0)) == (row.rows_loaded, row.rows_quarantined), file

    for source, region, name, _, expected in CASES:
        row = status[f"{source}/{region}/{name}"]
        if isinstance(expected, str):
            assert row.status == "failed" and expected in row.message, (name, row.status, row.message)
        else:
            read, good, bad, fragments = expected
            assert (row.status, row.rows_read, row.rows_loaded, row.rows_quarantined) == ("loaded", read, good, bad), name
            got = reasons.get(f"{source}/{region}/{name}", [])
            assert all(any(f in reason for reason in got) for f in fragments), (name, got)
    assert failed >= 17 and loaded >= 8
    # the truncated CSV's cut row is the one quarantined, with its raw line
    cut = quarantine.where(F.col("file") == "crm_customers/us/truncated.csv").first()
    assert cut.row_number == 2 and cut.raw_payload and json.loads(cut.raw_payload)["crm_id"] == "CRM-T2"


def test_a_rerun_over_the_same_hostile_files_changes_nothing(ctx, landing):
    for source, region, name, data, *_ in CASES[:6]:
        folder = landing / source / region
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    first = run(ctx, sources=["crm_customers"], now=NOW)
    second = run(ctx, sources=["crm_customers"], now=NOW)
    assert sorted(first.errors) == sorted(second.errors) and len(first.errors) == 6
    assert not ctx.lakehouse.exists("bronze.crm_customers") or ctx.lakehouse.read("bronze.crm_customers").count() == 0
