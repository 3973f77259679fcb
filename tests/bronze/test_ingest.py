"""Bronze ingestion on small hand-written files: every rule, every quarantine reason, re-runs."""
from __future__ import annotations

import json
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from customer360.bronze.contracts import CONTRACTS
from customer360.bronze.ingest import ingest_source, ingested_files
from customer360.bronze.stage import run
from customer360.tables import INGESTED_FILES, QUARANTINE
from customer360.context import build_context

from tests.bronze.conftest import NOW, put

CRM_HEADER = "crm_id,account_type,company_name,first_name,last_name,email,phone,birth_date,street,city,postcode,country,loyalty_number,updated_at,region\n"
CRM_ROWS = [
    "CRM-1,B2C,,Ann,Lee,ann@x.com,+15551234567,1980-02-03,1 Main St,Boston,02101,US,L1,2026-01-15 10:00:00,us",  # 1 good
    ",B2C,,No,Id,n@x.com,,1980-01-01,,,,US,,2026-01-15 10:00:00,us",  # 2 missing id
    "CRM-3,B2C,,Fut,Ure,f@x.com,,2031-01-01,,,,US,,2026-01-15 10:00:00,us",  # 3 future birth date
    "CRM-4,B2C,,Bad,Date,b@x.com,,31/02/1980,,,,US,,2026-01-15 10:00:00,us",  # 4 wrong type
    'CRM-5,B2C,,Too,Many,t@x.com,,1980-01-01,,,,US,,2026-01-15 10:00:00,us,extra,"fields"',  # 5 unparseable
    "CRM-6,B2C,,Else,Where,e@x.com,,1980-01-01,,,,XX,,2026-01-15 10:00:00,xx",  # 6 unknown region
    "CRM-7,B2X,,Odd,Type,o@x.com,,1980-01-01,,,,US,,1985-06-01 00:00:00,us",  # 7 two reasons
    "CRM-8,B2B,Acme Inc,Bo,Biz,bo@acme.com,,,,,,US,,2026-01-15T10:00:00+01:00,us",  # 8 good, with offset
]


def crm_file(landing, name="crm_us_0001.csv", rows=CRM_ROWS, header=CRM_HEADER, region="us"):
    return put(landing, "crm_customers", region, name, header + "\n".join(rows) + "\n")


def quarantine_rows(ctx):
    return {
        r.row_number: r
        for r in ctx.lakehouse.read(QUARANTINE).where(F.col("source") == "crm_customers").collect()
    }


def test_csv_rows_split_between_bronze_and_quarantine(ctx, landing):
    crm_file(landing)
    report = ingest_source(ctx, CONTRACTS["crm_customers"], now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (8, 2, 6)

    bronze = ctx.lakehouse.read("bronze.crm_customers")
    got = bronze.select("crm_id", "birth_date", "updated_at", "region", "_source_file", "_row_number", "_run_id")
    expected = ctx.spark.createDataFrame(
        [
            # 10:00 New York wall clock in January is 15:00 UTC; an explicit +01:00 offset wins over the zone
            ("CRM-1", date(1980, 2, 3), datetime(2026, 1, 15, 15, 0), "us", "crm_customers/us/crm_us_0001.csv", 1, "run-1"),
            ("CRM-8", None, datetime(2026, 1, 15, 9, 0), "us", "crm_customers/us/crm_us_0001.csv", 8, "run-1"),
        ],
        "crm_id string, birth_date date, updated_at timestamp, region string, _source_file string, _row_number long, _run_id string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert bronze.where("crm_id = 'CRM-8'").first().company_name == "Acme Inc"
    assert {r._content_hash for r in bronze.collect()} and all(len(r._content_hash) == 64 for r in bronze.collect())

    bad = quarantine_rows(ctx)
    assert {n: r.reason for n, r in bad.items()} == {
        2: "missing required field: crm_id",
        3: "impossible value: birth_date 2031-01-01 is in the future",
        4: "wrong type: birth_date '31/02/1980' is not a date",
        5: "unparseable line",
        6: "impossible value: region 'xx' is not a configured region",
        7: "impossible value: account_type 'B2X' is not one of B2C, B2B; "
        "impossible value: updated_at 1985-06-01 00:00:00 is before 1990-01-01",
    }
    assert bad[5].raw_payload == CRM_ROWS[4]  # the raw line, as it was
    assert json.loads(bad[4].raw_payload)["birth_date"] == "31/02/1980"
    assert {r.file for r in bad.values()} == {"crm_customers/us/crm_us_0001.csv"}
    assert {r.region for r in bad.values()} == {"us"}  # the folder's region, even when the row's is wrong


def test_change_rows_need_an_operation_and_a_sequence_together(ctx, landing):
    """Change data capture columns (change_op, change_seq): both or neither, an allowed operation, a
    whole non-negative sequence; rows without them (full exports) load as before."""
    header = CRM_HEADER.rstrip("\n") + ",change_op,change_seq\n"
    good = CRM_ROWS[0]
    rows = [
        good + ",update,12",                                   # 1 good change
        good.replace("CRM-1", "CRM-2") + ",,",                 # 2 good, no change columns
        good.replace("CRM-1", "CRM-3") + ",upsert,3",          # 3 unknown operation
        good.replace("CRM-1", "CRM-4") + ",delete,",           # 4 operation without sequence
        good.replace("CRM-1", "CRM-5") + ",,7",                # 5 sequence without operation
        good.replace("CRM-1", "CRM-6") + ",update,-1",         # 6 negative sequence
        good.replace("CRM-1", "CRM-7") + ",update,seven",      # 7 not a number
    ]
    crm_file(landing, rows=rows, header=header)
    report = ingest_source(ctx, CONTRACTS["crm_customers"], now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (7, 2, 5)
    got = ctx.lakehouse.read("bronze.crm_customers").select("crm_id", "change_op", "change_seq")
    expected = ctx.spark.createDataFrame([("CRM-1", "update", 12), ("CRM-2", None, None)], "crm_id string, change_op string, change_seq long")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert {n: r.reason for n, r in quarantine_rows(ctx).items()} == {
        3: "impossible value: change_op 'upsert' is not one of insert, update, delete",
        4: "missing required field: change_seq (a row with change_op needs it)",
        5: "missing required field: change_op (a row with change_seq needs it)",
        6: "impossible value: change_seq -1 is below 0",
        7: "wrong type: change_seq 'seven' is not a bigint",
    }


def test_run_prints_accounting_and_records_metrics(ctx, landing):
    crm_file(landing)
    result = run(ctx, sources=["crm_customers"], now=NOW)
    assert result.lines == [
        "crm_customers: files 1 new, 0 unchanged, 0 changed, 0 failed; rows read 8 = loaded 2 + quarantined 6",
        "bronze.crm_customers_current: 2 new bronze row(s) of 1 load(s) merged, 2 record(s) changed (0 of them deleted, kept as tombstones)",
    ]
    metrics = {(m.region, m.metric): m.value for m in result.metrics}
    assert metrics[("us", "rows_read")] == 8
    assert metrics[("us", "rows_loaded")] == 2
    assert metrics[("us", "rows_quarantined")] == 6
    assert metrics[("de", "rows_read")] == 0
    files = ingested_files(ctx.lakehouse).collect()
    assert [(f.file, f.status, f.rows_read, f.rows_loaded, f.rows_quarantined) for f in files] == [
        ("crm_customers/us/crm_us_0001.csv", "loaded", 8, 2, 6)
    ]


def test_rerun_is_idempotent_new_files_load_and_changed_files_are_reported(ctx, landing):
    path = crm_file(landing)
    contract = CONTRACTS["crm_customers"]
    ingest_source(ctx, contract, now=NOW)
    again = ingest_source(ctx, contract, now=NOW)
    assert (again.files_new, again.files_unchanged, again.rows_read) == (0, 1, 0)
    assert ctx.lakehouse.read("bronze.crm_customers").count() == 2
    assert ctx.lakehouse.read(QUARANTINE).count() == 6

    crm_file(landing, name="crm_us_0002.csv", rows=[CRM_ROWS[0].replace("CRM-1", "CRM-9")])
    path.write_text(CRM_HEADER + CRM_ROWS[0] + "\n")  # rewritten after loading
    third = ingest_source(ctx, contract, now=NOW)
    assert (third.files_new, third.files_unchanged, third.rows_loaded) == (1, 0, 1)
    assert third.files_changed == ["crm_customers/us/crm_us_0001.csv"]
    assert sorted(r.crm_id for r in ctx.lakehouse.read("bronze.crm_customers").collect()) == ["CRM-1", "CRM-8", "CRM-9"]


def test_interrupted_load_is_cleaned_and_loaded_once(ctx, landing):
    crm_file(landing)
    contract = CONTRACTS["crm_customers"]
    ingest_source(ctx, contract, now=NOW)
    # the process died after writing bronze but before recording the file as loaded
    ctx.lakehouse.write(
        ingested_files(ctx.lakehouse).withColumn("status", F.lit("loading")).withColumn("recorded_at", F.current_timestamp()),
        INGESTED_FILES, mode="append",
    )
    report = ingest_source(ctx, contract, now=NOW)
    assert report.files_new == 1
    assert ctx.lakehouse.read("bronze.crm_customers").count() == 2
    assert ctx.lakehouse.read(QUARANTINE).count() == 6
    assert ingested_files(ctx.lakehouse).first().status == "loaded"
    # the table is the log of every status change, in order
    history = [r.status for r in ctx.lakehouse.read(INGESTED_FILES).orderBy("recorded_at").collect()]
    assert history == ["loading", "loaded", "loading", "loading", "loaded"]


def test_missing_required_column_fails_the_file_and_writes_nothing_of_it(ctx, landing):
    header = CRM_HEADER.replace("crm_id,", "")
    crm_file(landing, name="crm_us_0001.csv", header=header, rows=[r.split(",", 1)[1] for r in CRM_ROWS[:1]])
    crm_file(landing, name="crm_us_0002.csv", rows=CRM_ROWS[:1])
    result = run(ctx, sources=["crm_customers"], now=NOW)
    assert result.errors == [
        "crm_customers/us/crm_us_0001.csv: missing required column(s) ['crm_id']; file not loaded"
    ]
    assert [r._source_file for r in ctx.lakehouse.read("bronze.crm_customers").collect()] == [
        "crm_customers/us/crm_us_0002.csv"
    ]
    status = {r.file: r.status for r in ingested_files(ctx.lakehouse).collect()}
    assert status == {"crm_customers/us/crm_us_0001.csv": "failed", "crm_customers/us/crm_us_0002.csv": "loaded"}


def test_csv_drift_new_column_kept_missing_optional_null(ctx, landing):
    crm_file(landing, name="a.csv", rows=CRM_ROWS[:1])
    ingest_source(ctx, CONTRACTS["crm_customers"], now=NOW)
    header = CRM_HEADER.replace("company_name,", "").replace(",region\n", ",region,segment_hint\n")
    row = CRM_ROWS[0].replace("B2C,,", "B2C,").replace("CRM-1", "CRM-2") + ",vip"
    crm_file(landing, name="b.csv", header=header, rows=[row])
    report = ingest_source(ctx, CONTRACTS["crm_customers"], now=NOW)
    assert report.new_columns == ["segment_hint"]
    rows = {r.crm_id: r for r in ctx.lakehouse.read("bronze.crm_customers").collect()}
    assert rows["CRM-2"].segment_hint == "vip" and rows["CRM-1"].segment_hint is None
    assert rows["CRM-2"].company_name is None and rows["CRM-2"].first_name == "Ann"


def test_json_lines_unparseable_missing_allowed_and_drift(ctx, landing):
    lines = [
        '{"event_id":"E1","event_ts":"2026-03-01T10:00:00+01:00","event_type":"login","cookie_id":"c1","login_email":"a@x.de","region":"de"}',
        '{"event_id":"E2","event_ts":"2026-03-01 10:00:00","event_type":"page_view","region":"de","campaign":"spring"}',
        '{"event_id":"E3","event_ts":"2026-03-01T1',
        '{"event_id":"E4","event_type":"page_view","region":"de"}',
        '{"event_id":"E5","event_ts":"2026-03-01T10:00:00Z","event_type":"teleport","region":"de"}',
        '{"event_id":"E6","event_ts":"2027-03-01T10:00:00Z","event_type":"purchase","region":"de"}',
    ]
    put(landing, "web_events", "de", "events.jsonl", "\n".join(lines) + "\n")
    report = ingest_source(ctx, CONTRACTS["web_events"], now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (6, 2, 4)
    assert report.new_columns == ["campaign"]
    bronze = ctx.lakehouse.read("bronze.web_events").select("event_id", "event_ts", "campaign", "_row_number")
    expected = ctx.spark.createDataFrame(
        [("E1", datetime(2026, 3, 1, 9, 0), None, 1), ("E2", datetime(2026, 3, 1, 9, 0), "spring", 2)],
        "event_id string, event_ts timestamp, campaign string, _row_number long",
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)
    reasons = {r.row_number: r.reason for r in ctx.lakehouse.read(QUARANTINE).collect()}
    assert reasons == {
        3: "unparseable line",
        4: "missing required field: event_ts",
        5: "impossible value: event_type 'teleport' is not one of page_view, product_view, add_to_cart, login, purchase",
        6: "impossible value: event_ts 2027-03-01T10:00:00Z is in the future",
    }


def _orders_table(**overrides):
    data = {
        "order_line_id": ["L1", "L2", "L3"],
        "order_id": ["O1", "O1", "O2"],
        "ordered_at": pa.array([datetime(2026, 2, 1, 8, 30, 0, 123456)] * 3, pa.timestamp("us", tz="UTC")),
        "customer_email": ["a@x.com", None, "c@x.com"],
        "product_category": ["books", "toys", "home"],
        "quantity": pa.array([1, 2, 3], pa.int64()),
        "unit_price": [9.99, -5.0, 12.5],
        "currency": ["USD"] * 3,
        "is_return": [False, False, True],
        "region": ["us"] * 3,
    }
    data.update(overrides)
    return pa.table(data)


def test_parquet_types_changed_type_and_missing_optional_column(ctx, landing):
    folder = landing / "orders" / "us"
    folder.mkdir(parents=True)
    pq.write_table(_orders_table(), folder / "orders_1.parquet")  # no loyalty_number, no shipping_postcode
    pq.write_table(_orders_table(order_line_id=["L4", "L5", "L6"], quantity=["1", "two", "3"]), folder / "orders_2.parquet")
    report = ingest_source(ctx, CONTRACTS["orders"], now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (6, 4, 2)
    bronze = ctx.lakehouse.read("bronze.orders")
    assert bronze.schema["quantity"].dataType.simpleString() == "bigint"
    row = bronze.where("order_line_id = 'L1'").first()
    assert (row.ordered_at, row.quantity, row.unit_price, row.loyalty_number, row.is_return) == (
        datetime(2026, 2, 1, 8, 30, 0, 123456), 1, 9.99, None, False
    )
    reasons = {(r.file.rsplit("/", 1)[1], r.row_number): r.reason for r in ctx.lakehouse.read(QUARANTINE).collect()}
    assert reasons == {
        ("orders_1.parquet", 2): "impossible value: unit_price -5.0 is below 0",
        ("orders_2.parquet", 2): "wrong type: quantity 'two' is not a bigint; impossible value: unit_price -5.0 is below 0",
    }


def test_row_numbers_hold_across_file_splits(spark, ctx, landing):
    rows = [f"CRM-{i},B2C,,A,B,,,,,,,US,,2026-01-15 10:00:00,us" for i in range(1, 201)]
    crm_file(landing, name="big.csv", rows=rows)
    crm_file(landing, name="small.csv", rows=["CRM-X,B2C,,A,B,,,,,,,US,,2026-01-15 10:00:00,us"])
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1024")  # many blocks per file
    try:
        ingest_source(ctx, CONTRACTS["crm_customers"], now=NOW)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    got = {(r._source_file.rsplit("/", 1)[1], r._row_number): r.crm_id for r in ctx.lakehouse.read("bronze.crm_customers").collect()}
    assert got == {**{("big.csv", i): f"CRM-{i}" for i in range(1, 201)}, ("small.csv", 1): "CRM-X"}


def test_regions_select_folders(spark, tmp_path, landing, ctx):
    crm_file(landing, region="us", rows=CRM_ROWS[:1])
    crm_file(landing, region="de", name="crm_de.csv", rows=[CRM_ROWS[0].replace(",us", ",de").replace("CRM-1", "CRM-D")])
    only_de = build_context(ctx.config, spark=spark, regions=["de"], run_id="run-de")
    report = ingest_source(only_de, CONTRACTS["crm_customers"], now=NOW)
    assert report.rows_loaded == 1
    assert [r.crm_id for r in ctx.lakehouse.read("bronze.crm_customers").collect()] == ["CRM-D"]


def test_unknown_source_is_an_error(ctx):
    with pytest.raises(Exception, match=r"unknown source\(s\) \['billing'\]"):
        run(ctx, sources=["billing"], now=NOW)


# --------------------------------------------------------------------------- awkward files


def test_awkward_csv_bom_quotes_newlines_offsets_and_empty_files(ctx, landing):
    rows = [
        'CRM-1,B2B,"Acme ""Best"", Inc",Ann,Lee,,,,"1 Main St\nUnit 2",,,US,,2026-03-01T10:00:00+01,us',
        "CRM-2,B2C,,Bo,Li,,,,,,,US,,2026-03-01 10:00:00 Europe/Berlin,us",
        "CRM-3,B2C,,Cy,Wu,,,,,,,US,,2026-03-01 10:00:00 Mars/Base,us",
    ]
    put(landing, "crm_customers", "us", "bom.csv", "\ufeff" + CRM_HEADER + "\n".join(rows) + "\n")
    put(landing, "crm_customers", "us", "empty.csv", "")
    put(landing, "crm_customers", "us", "x[1].csv", CRM_HEADER + CRM_ROWS[0] + "\n")
    report = ingest_source(ctx, CONTRACTS["crm_customers"], now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 2, 1)
    assert report.files_failed == [
        "crm_customers/us/x[1].csv: file name has a glob character ([ ] * ? { } \\), which Spark would expand; rename it"
    ]
    assert "\ufeffcrm_id" not in ctx.lakehouse.schema("bronze.crm_customers").fieldNames()
    got = {r.crm_id: r for r in ctx.lakehouse.read("bronze.crm_customers").collect()}
    assert got["CRM-1"].company_name == 'Acme "Best", Inc'
    assert got["CRM-1"].street == "1 Main St\nUnit 2"
    assert got["CRM-1"].updated_at == datetime(2026, 3, 1, 9, 0)  # +01 honoured, not read as New York time
    assert got["CRM-2"].updated_at == datetime(2026, 3, 1, 9, 0)  # a zone name is honoured too
    assert ctx.lakehouse.read(QUARANTINE).first().reason == (
        "wrong type: updated_at '2026-03-01 10:00:00 Mars/Base' is not a timestamp"
    )
    status = {r.file: (r.status, r.rows_read) for r in ingested_files(ctx.lakehouse).collect()}
    assert status["crm_customers/us/empty.csv"] == ("loaded", 0)
    assert status["crm_customers/us/x[1].csv"][0] == "failed"


def test_json_lines_are_rows_whatever_they_hold(ctx, landing):
    lines = [
        '{"event_id":"E1","event_ts":"2026-03-01T10:00:00Z","event_type":"login","region":"de","meta":{"a":1}}',
        "",
        '[{"event_id":"E2"},{"event_id":"E3"}]',
        "[]",
        "42",
        '{"event_id":"E4","event_ts":"2026-03-01T10:00:00Z","event_type":"login","region":"de"}',
    ]
    put(landing, "web_events", "de", "odd.jsonl", "\n".join(lines) + "\n")
    report = ingest_source(ctx, CONTRACTS["web_events"], now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (5, 2, 3)
    bronze = {r.event_id: r for r in ctx.lakehouse.read("bronze.web_events").collect()}
    assert (bronze["E1"]._row_number, bronze["E4"]._row_number) == (1, 6)  # line numbers, blank line included
    assert json.loads(bronze["E1"].meta) == {"a": 1}
    bad = {r.row_number: (r.reason, r.raw_payload) for r in ctx.lakehouse.read(QUARANTINE).collect()}
    assert bad == {
        3: ("unparseable line", lines[2]),
        4: ("unparseable line", "[]"),
        5: ("unparseable line", "42"),
    }


def test_parquet_nan_structs_and_unreadable_files(ctx, landing):
    folder = landing / "orders" / "us"
    folder.mkdir(parents=True)
    nested = _orders_table(unit_price=[float("nan"), 1.0, float("inf")]).append_column(
        "gift", pa.array([{"wrap": True, "note": "hi"}] * 3)
    )
    pq.write_table(nested, folder / "orders_1.parquet")
    nanos = _orders_table(ordered_at=pa.array([datetime(2026, 2, 1)] * 3, pa.timestamp("ns", tz="UTC")))
    pq.write_table(nanos, folder / "orders_2.parquet")
    report = ingest_source(ctx, CONTRACTS["orders"], now=NOW)
    assert report.files_failed == [
        "orders/us/orders_2.parquet: nanosecond timestamps in ['ordered_at'], which Spark cannot read; write microseconds"
    ]
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 1, 2)
    row = ctx.lakehouse.read("bronze.orders").first()
    assert json.loads(row.gift) == {"wrap": True, "note": "hi"}
    reasons = sorted(r.reason for r in ctx.lakehouse.read(QUARANTINE).collect())
    assert reasons == [
        "impossible value: unit_price 'Infinity' is not a finite number",
        "impossible value: unit_price 'NaN' is not a finite number",
    ]
