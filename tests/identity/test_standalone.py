"""``c360 identity --input --format --mapping --output`` on files that look nothing like ours."""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer360 import cli
from customer360.config import LakehouseConfig
from customer360.errors import ConfigError
from customer360.identity.standalone import MAPPABLE, StandaloneMapping, load_mapping
from customer360.lakehouse import Lakehouse

from tests.conftest import CONF_DIR

CSV = """PatientNo,Name,Born,Addr,Zip,Town,Tel,Member
007,"Smith, John",03/04/1985,12 High Street,02134,Boston,(617) 555-0134,
008,Jon Smith,03/04/1985,12 High St.,2134,boston,617.555.0134,
009,Mary Jones,12/11/1970,4 Oak Avenue,10001,New York,,M-1
010,"Jones, Mary",12/11/1970,,,,,M1
011,Peter Jones,01/02/1990,4 Oak Avenue,10001,New York,,
012,Ann Lee,28/02/1962,9 Pine Street,98101,Seattle,,
013,Anne Lee,28/02/1962,9 Pine St,98101,Seattle,,
"""


def _mapping(tmp_path, text: str):
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MAPPING = """
record_id: PatientNo
source: clinic
region: us
columns:
  full_name: Name
  date_of_birth: {column: Born, format: dd/MM/yyyy}
  street: Addr
  postcode: Zip
  city: Town
  phone: Tel
  loyalty_id: Member
matching:
  threshold: 0.95    # seven rows teach EM little: its posteriors stay modest
"""


def _tables(spark, out):
    lakehouse = Lakehouse(spark, LakehouseConfig(root=str(out)))
    read = lambda name: lakehouse.engine.read(f"{out}/{name}", version=None, as_of=None)  # noqa: E731
    return read


def _run(tmp_path, *extra):
    return cli.main(["identity", *extra, "--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'unused'}"])


def test_resolves_a_foreign_csv_and_keeps_ids_on_a_rerun(spark, tmp_path, capsys):
    source = tmp_path / "patients.csv"
    source.write_text(CSV, encoding="utf-8")
    out = tmp_path / "out"
    args = ["--input", str(source), "--format", "csv", "--mapping", str(_mapping(tmp_path, MAPPING)), "--output", str(out)]
    assert _run(tmp_path, *args) == 0
    printed = capsys.readouterr().out
    assert "7 records -> 4 customers" in printed
    read = _tables(spark, out)
    xref = {r.source_record_id: r for r in read("customer_xref").collect()}
    assert set(xref) == {"007", "008", "009", "010", "011", "012", "013"}  # ids keep their zeros
    assert {r.source for r in xref.values()} == {"clinic"}
    same = lambda a, b: xref[a].customer_id == xref[b].customer_id  # noqa: E731
    assert same("007", "008") and xref["007"].match_rule == "deterministic:phone"
    assert same("009", "010") and xref["010"].match_rule == "deterministic:loyalty_id"  # M-1 == M1
    assert not same("009", "011")  # same address, different person
    assert same("012", "013") and xref["013"].match_rule.startswith("probabilistic:")  # no shared identifier
    assert xref["013"].match_confidence >= 0.95

    golden = read("customer_golden")
    vault = {(r.kind, r.token): r.value for r in read("pii_vault").collect()}
    smith = golden.where(golden.customer_id == xref["007"].customer_id).first()
    assert vault[("last_name", smith.last_name)] == "smith"
    assert vault[("date_of_birth", smith.date_of_birth)] == "1985-04-03"
    assert vault[("postcode", smith.postcode)] == "02134"
    assert vault[("phone", smith.phone)] == "+16175550134"

    # a second run on the same output keeps every id and records no merge or split
    assert _run(tmp_path, *args) == 0
    again = {r.source_record_id: r.customer_id for r in read("customer_xref").collect()}
    assert again == {k: v.customer_id for k, v in xref.items()}
    assert read("identity_audit").count() == 0


def test_parquet_with_numeric_ids_and_few_attributes(spark, tmp_path, capsys):
    path = tmp_path / "people.parquet"
    pq.write_table(
        pa.table({
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "mail": ["A.B@Example.com", "a.b@example.com ", None, "c@d.org"],
            "nm": ["Al Bee", "Albert Bee", "Cy Dee", "Cy Dee"],
        }),
        path,
    )
    mapping = _mapping(tmp_path, "record_id: id\ncolumns: {email: mail, full_name: nm}\n")
    out = tmp_path / "out"
    assert _run(tmp_path, "--input", str(path), "--format", "parquet", "--mapping", str(mapping), "--output", str(out)) == 0
    assert "4 records -> 3 customers" in capsys.readouterr().out
    xref = {r.source_record_id: r.customer_id for r in _tables(spark, out)("customer_xref").collect()}
    assert xref["1"] == xref["2"] and len({xref["1"], xref["3"], xref["4"]}) == 3


def test_bad_mappings_and_inputs_fail_clearly(spark, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("id,name\n1,Al Bee\n1,Al Bee\n,Cy\n", encoding="utf-8")
    out = str(tmp_path / "out")

    with pytest.raises(ConfigError, match=r"columns: .*unknown attribute\(s\) \['nickname'\]"):
        load_mapping(_mapping(tmp_path, "record_id: id\ncolumns: {nickname: name}\n"))
    with pytest.raises(ConfigError, match="record_id: Field required"):
        load_mapping(_mapping(tmp_path, "columns: {full_name: name}\n"))
    with pytest.raises(ConfigError, match="mapping file not found"):
        load_mapping(tmp_path / "nope.yaml")

    def run(mapping_text, *, input_path=source):
        code = _run(tmp_path, "--input", str(input_path), "--format", "csv", "--mapping", str(_mapping(tmp_path, mapping_text)), "--output", out)
        return code, capsys.readouterr().err

    code, err = run("record_id: id\ncolumns: {full_name: fullname}\n")
    assert code == 2 and "mapping names column(s) ['fullname'] that the input does not have" in err
    code, err = run("record_id: id\ncolumns: {full_name: name}\n")
    assert code == 2 and "1 of 3 input rows have no record id" in err
    source.write_text("id,name\n1,Al Bee\n1,Al Bee\n", encoding="utf-8")
    code, err = run("record_id: id\ncolumns: {full_name: name}\n")
    assert code == 2 and "record ids are not unique: 1 duplicate rows (e.g. ['1'])" in err
    code, err = run("record_id: id\nregion: xx\ncolumns: {full_name: name}\n")
    assert code == 2 and "mapping region 'xx' is not configured" in err

    assert _run(tmp_path, "--input", str(source), "--format", "csv") == 2
    assert "missing --mapping, --output" in capsys.readouterr().err


def test_headers_with_dots_and_backticks_and_records_that_share_nothing(spark, tmp_path, capsys):
    # a dot or backtick in a header is part of the name, not a struct path or a quote; two records
    # with nothing in common give two customers (this once failed inside Spark: an empty edge set)
    source = tmp_path / "in.csv"
    source.write_text("id,first.name,`last`\n1,Al,Bee\n2,Cy,Dee\n", encoding="utf-8")
    mapping = _mapping(tmp_path, "record_id: id\ncolumns: {first_name: first.name, last_name: '`last`'}\n")
    out = tmp_path / "out"
    # a glob, as Spark reads it
    assert _run(tmp_path, "--input", str(tmp_path / "i*.csv"), "--format", "csv", "--mapping", str(mapping), "--output", str(out)) == 0
    assert "2 records -> 2 customers" in capsys.readouterr().out
    vault = {r.value for r in _tables(spark, out)("pii_vault").collect()}
    assert {"al", "bee", "cy", "dee"} <= vault


def test_hostile_inputs_are_refused_in_one_line_before_any_work(spark, tmp_path, capsys):
    mapping = _mapping(tmp_path, "record_id: id\ncolumns: {first_name: name}\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = {
        "ragged.csv": (b"id,name\n1,Al,extra\n2\n3,Cy\n", "csv", "2 malformed CSV row(s)"),
        "latin1.csv": ("id,name\n1,Jos\u00e9\n".encode("latin-1"), "csv", "not UTF-8 text (byte 13)"),
        "dup.csv": (b"id,name,name\n1,Al,Bee\n", "csv", "duplicate header column(s) ['name']"),
        "empty.csv": (b"", "csv", "no header row"),
        "junk.parquet": (b"PAR1 not really", "parquet", "not a Parquet file"),
        "csv_as.parquet": (b"id,name\n1,Al\n", "parquet", "not a Parquet file"),
    }
    for name, (data, fmt, message) in cases.items():
        (folder / name).write_bytes(data)
        code = _run(tmp_path, "--input", str(folder / name), "--format", fmt, "--mapping", str(mapping), "--output", str(tmp_path / "out"))
        err = capsys.readouterr().err
        assert code == 2 and message in err, (name, err[-500:])
        assert "Traceback" not in err and "Al" not in err.split("error:")[-1]  # no row content in the message
    structs = tmp_path / "struct.parquet"
    pq.write_table(pa.table({"id": pa.array([{"a": 1}]), "name": ["Al"]}), structs)
    assert _run(tmp_path, "--input", str(structs), "--format", "parquet", "--mapping", str(mapping), "--output", str(tmp_path / "o")) == 2
    assert "mapped column(s) ['id (struct<a:bigint>)'] are not text, numbers or dates" in capsys.readouterr().err
    assert _run(tmp_path, "--input", str(tmp_path / "missing.csv"), "--format", "csv", "--mapping", str(mapping), "--output", str(tmp_path / "o")) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert _run(tmp_path, "--input", str(tmp_path / "nothing*.csv"), "--format", "csv", "--mapping", str(mapping), "--output", str(tmp_path / "o")) == 2
    assert "no file matches" in capsys.readouterr().err
    good = tmp_path / "good.csv"
    good.write_text("id,name,born\n1,Al,01/02/1990\n", encoding="utf-8")
    bad_format = _mapping(tmp_path, "record_id: id\ncolumns: {first_name: name, date_of_birth: {column: born, format: 'qqq[['}}\n")
    assert _run(tmp_path, "--input", str(good), "--format", "csv", "--mapping", str(bad_format), "--output", str(tmp_path / "o")) == 2
    assert "mapping columns.date_of_birth.format 'qqq[[' is not a datetime pattern" in capsys.readouterr().err


MAPPING_KEYS = ["record_id", "source", "region", "default_phone_country", "columns", "other_ids", "matching", "threshold",
                "blocking_rules", "max_block_size", "first_name", "full_name", "date_of_birth", "format", "column", "keys", "name"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.one_of(st.sampled_from(MAPPING_KEYS), st.text(max_size=8)), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.one_of(
    st.dictionaries(st.sampled_from(MAPPING_KEYS), _values, max_size=7),
    _values,
    st.binary(max_size=200),
))
def test_any_mapping_file_loads_or_is_refused_with_a_config_error(tmp_path, document):
    path = tmp_path / "fuzz.yaml"
    if isinstance(document, bytes):
        path.write_bytes(document)  # raw bytes: not always UTF-8, not always YAML
    else:
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        mapping = load_mapping(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and len(message) < 2000 and "\n" not in message.split(": ", 1)[1][:300]
    else:
        assert isinstance(mapping, StandaloneMapping) and mapping.record_id and mapping.columns
        assert set(mapping.columns) <= set(MAPPABLE)


def test_mapping_files_that_are_not_files_or_too_big(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_mapping(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("record_id: id\ncolumns: {first_name: a}\n# " + "x" * 300_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="at most 262,144 bytes"):
        load_mapping(big)
    deep = tmp_path / "deep.yaml"
    deep.write_text("record_id: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_mapping(deep)


def test_example_mapping_is_printed_valid_and_described_by_help(tmp_path, capsys):
    from customer360.identity.standalone import EXAMPLE_MAPPING

    assert _run(tmp_path, "--print-example-mapping") == 0
    printed = capsys.readouterr().out
    assert printed == EXAMPLE_MAPPING
    mapping = StandaloneMapping.model_validate(yaml.safe_load(printed))
    assert mapping.source_columns("street") == ["street_number", "address_1"]
    assert mapping.date_format("date_of_birth") == "yyyyMMdd"
    with pytest.raises(SystemExit):
        cli.main(["identity", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--print-example-mapping prints a commented one" in help_text
    assert "--xref-copy" in help_text


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"street": []}, "a list of 1 to 8 non-empty column names"),
        ({"street": ["a", ""]}, "a list of 1 to 8 non-empty column names"),
        ({"street": [f"c{i}" for i in range(9)]}, "a list of 1 to 8 non-empty column names"),
        ({"date_of_birth": ["d", "m", "y"]}, "one column (with a format), not a list"),
    ],
)
def test_attribute_column_lists_are_checked(columns, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        StandaloneMapping.model_validate({"record_id": "id", "columns": columns})


def test_febrl_style_file_with_a_street_from_two_columns_and_an_xref_copy(spark, tmp_path, capsys):
    """FEBRL-style records (our generator, no national id): the street joined from number and
    name, the generic region (no country), the mapping as CSV and as Parquet beside the Delta tables."""
    import pandas as pd

    from customer360.identity.synthetic import febrl_like, to_identity_mapping

    data = febrl_like(originals=300, duplicates=300, seed=5, with_national_id=False)
    source = tmp_path / "febrl.csv"
    data.records.to_csv(source, index=False)
    mapping = _mapping(tmp_path, yaml.safe_dump(to_identity_mapping(False)))
    out = tmp_path / "out"
    args = ["--input", str(source), "--format", "csv", "--mapping", str(mapping), "--output", str(out)]
    assert _run(tmp_path, *args, "--xref-copy", "csv") == 0
    printed = capsys.readouterr().out
    assert f"record -> customer mapping also in {out}/customer_xref.csv" in printed
    # what blocking found, rule by rule, and the prior the model scored with
    rules = re.findall(r"^matching rule (\w+): ([\d,]+) pairs \(([\d,]+) no earlier rule found\)", printed, re.M)
    assert [r for r, _, _ in rules] == ["surname_birth_date", "first_name_birth_date", "surname_postcode", "names_any_order",
                                        "birth_date", "postcode", "street"]
    distinct = int(re.search(r"^matching: ([\d,]+) distinct candidate pairs scored; prior that two random records match: all 1 in ",
                             printed, re.M).group(1).replace(",", ""))
    assert distinct == sum(int(new.replace(",", "")) for _, _, new in rules) > 0
    delta = _tables(spark, out)("customer_xref").toPandas()
    copy = pd.read_csv(out / "customer_xref.csv", dtype={"source_record_id": str, "customer_id": str})
    assert list(copy.columns) == ["source", "source_record_id", "customer_id", "match_rule", "match_confidence"]
    assert len(copy) == len(delta) == 600
    assert dict(copy[["source_record_id", "customer_id"]].values) == dict(delta[["source_record_id", "customer_id"]].values)
    assert set(delta["region"]) == {"all"}
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no staging left behind

    # street = number + name: the vault holds the joined value
    vault = _tables(spark, out)("pii_vault").toPandas()
    first = data.records.dropna(subset=["street_number", "address_1"]).iloc[0]
    assert f"{first.street_number} {first.address_1}" in set(vault.loc[vault.kind == "street", "value"])

    # accuracy end to end against the generator's truth
    person = dict(data.truth[["rec_id", "person_id"]].values)
    customer = dict(delta[["source_record_id", "customer_id"]].values)
    cells = pd.Series([(customer[r], p) for r, p in person.items()]).value_counts()
    pairs = lambda counts: int((counts * (counts - 1) // 2).sum())  # noqa: E731
    true_positive = pairs(cells)
    predicted = pairs(pd.Series(list(customer.values())).value_counts())
    actual = pairs(pd.Series(list(person.values())).value_counts())
    assert true_positive / predicted >= 0.999
    assert true_positive / actual >= 0.97

    # parquet copy on a rerun (same ids), replacing nothing but itself
    assert _run(tmp_path, *args, "--xref-copy", "parquet") == 0
    again = pd.read_parquet(out / "customer_xref.parquet")
    assert dict(again[["source_record_id", "customer_id"]].values) == customer
    assert (out / "customer_xref.csv").exists()


def test_xref_copy_needs_a_file_to_resolve(tmp_path, capsys):
    assert _run(tmp_path, "--xref-copy", "csv") == 2
    assert "--xref-copy goes with --input" in capsys.readouterr().err


def test_side_by_side_writes_all_run_and_the_first_failure_is_raised():
    import threading

    from customer360.identity.standalone import _write_side_by_side

    started = threading.Barrier(3, timeout=10)  # all three run at once, or the barrier breaks
    done = []

    def write(name, error=None):
        def run():
            started.wait()
            done.append(name)
            if error:
                raise error
            return f"{name} written"
        return run

    assert _write_side_by_side({"a": write("a"), "b": write("b"), "c": write("c")}) == {
        "a": "a written", "b": "b written", "c": "c written",
    }
    done.clear()
    started.reset()
    with pytest.raises(OSError, match="first"):
        _write_side_by_side({"a": write("a"), "b": write("b", OSError("first")), "c": write("c", ValueError("second"))})
    assert sorted(done) == ["a", "b", "c"]  # a failure stops none of the others
