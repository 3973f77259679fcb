"""Every value a person can give ``c360`` on the command line is checked by an allow-list before any
work starts: a bad value exits with code 2 and one line naming the option (argparse), never a
traceback; what needs the configuration (a region or source that is not configured, a table that
does not exist) is refused next with the same code (tests/test_cli.py). Parsing only: no Spark."""
from __future__ import annotations

import argparse
import contextlib
import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer360 import cli


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _value_options() -> list[tuple[tuple[str, ...], argparse.Action]]:
    skip = (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)
    return [
        (path, action)
        for path, parser in _parsers(cli.build_parser()) if path
        for action in parser._actions
        if action.nargs != 0 and not isinstance(action, skip)
    ]


OPTIONS = _value_options()
PARSER = cli.build_parser()  # parse_args keeps no state between calls
#: valid values for the required arguments of a command, so that the option under test decides
FILL = {
    ("export",): {"segment": ["--segment", "Dormant"], "out": ["--out", "audience"]},
    ("governance", "token"): {"subject": ["--subject", "ana"], "token_roles": ["--role", "finance"]},
    ("erase",): {"customer_id": ["--customer-id", "C0123456789abcdef"]},
    ("history",): {"table": ["gold.customer_360"]},
    ("vacuum",): {"table": ["gold.customer_360"]},
    ("optimize",): {"table": ["gold.customer_360"]},
}
#: options whose checked text may hold line breaks and tabs (a SQL query; --set keeps tabs)
MULTILINE = {"query", "overrides"}
HOSTILE = [
    "", " ", "nan", "-nan", "inf", "-inf", "1e309", "-1", "0", "-0", "2147483648", "9" * 400, "1_000", "0x10",
    "../../etc/passwd", "/etc/passwd\x00.yaml", "a\nb", "a\rb", "\x1b[31mred", "us\u200b", "ＵＳ", "' OR '1'='1",
    "x; DROP TABLE gold.customer_360", "$(id)", "`id`", "%s%n", "{0}", "\ud7ff", "A" * 5000, "--help", "-h", "--", "-",
]


def _argv(path: tuple[str, ...], action: argparse.Action, value: str) -> list[str]:
    fills = dict(FILL.get(path, {}))
    fills.pop(action.dest, None)
    if path == ("erase",) and action.dest == "email":  # one of --customer-id / --email
        fills = {}
    argv = [*path, *[part for fragment in fills.values() for part in fragment]]
    if action.option_strings:
        return [*argv, f"{action.option_strings[-1]}={value}"]
    return [*argv, "--", value]  # a positional: '--' so a value starting with '-' is still the value


def _parse(argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return PARSER.parse_args(argv), err.getvalue()
        except SystemExit as exc:
            assert exc.code == 2, (argv, exc.code, err.getvalue())
            return None, err.getvalue()


def _ids(option) -> str:
    path, action = option
    return " ".join([*path, action.option_strings[-1] if action.option_strings else action.dest])


def test_every_option_that_takes_a_value_has_a_checking_type_or_choices():
    assert len(OPTIONS) >= 40
    unchecked = [_ids(o) for o in OPTIONS if o[1].type is None and not o[1].choices]
    assert unchecked == []


@pytest.mark.parametrize("option", OPTIONS, ids=_ids)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)))
def test_any_value_is_accepted_as_checked_or_refused_in_one_line(option, value):
    path, action = option
    args, err = _parse(_argv(path, action, value))
    if args is None:
        last = err.strip().splitlines()[-1]
        assert re.match(rf"c360 {' '.join(path)}: error: ", last), err
        assert len(last) < 400 and not any(ord(c) < 32 for c in last), last
        return
    got = getattr(args, action.dest)
    got = got[-1] if isinstance(got, list) else got
    if action.dest not in MULTILINE and isinstance(got, str):
        assert not any(ord(c) < 32 or ord(c) == 127 for c in got), (action.dest, got)
    if action.choices:
        assert got in action.choices


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--scale", "nan"], "argument --scale: 'nan' is not a finite number"),
        (["generate", "--scale", "0"], "argument --scale: 0 is outside (0, 1,000]"),
        (["generate", "--seed", "-5"], "argument --seed: -5 is outside [0, 2,147,483,647]"),
        (["generate", "--days", "367"], "argument --days: 367 is outside [0, 366]"),
        (["ingest", "--stream", "--every", "0"], "argument --every: 0 is outside (0, 604,800]"),
        (["ingest", "--stream", "--max-files-per-trigger", "0"], "argument --max-files-per-trigger: 0 is outside [1, 1,000,000]"),
        (["deliver", "--out", "s\x00"], "argument --out: 's\\x00' is not a usable path"),
        (["sql", "--limit", "0", "SELECT 1"], "argument --limit: 0 is outside [1, 10,000,000]"),
        (["history", "gold.customer_360; DROP TABLE x"], "argument table: 'gold.customer_360; DROP TABLE x' is not a table name"),
        (["vacuum", "gold.customer_360", "--retention-hours", "-1"], "argument --retention-hours: -1 is outside [0, 87,600]"),
        (["erase", "--customer-id", "C1' OR '1'='1"], "argument --customer-id: \"C1' OR '1'='1\" is not a customer id"),
        (["ingest", "--source", "../crm_customers"], "argument --source: '../crm_customers' is not a source name"),
        (["config", "--region", "us;de"], "argument --region: 'us;de' is not region codes"),
        (["config", "--env", "../prod"], "argument --env: '../prod' is not an environment name"),
        (["config", "--set", "governance.roles.finance.pii"], "argument --set: 'governance.roles.finance.pii': expected key.path=value"),
        (["report", "--out", "r\x00.html"], "argument --out: 'r\\x00.html' is not a usable path"),
        (["export", "--segment", "Dormant\n", "--out", "a"], "argument --segment: 'Dormant\\n' is not a segment name"),
        (["governance", "token", "--subject", "ana", "--role", "finance", "--hours", "inf"], "argument --hours: 'inf' is not a finite number"),
        (["sql", "--format", "xml", "SELECT 1"], "argument --output-format/--format: invalid choice: 'xml'"),
        (["promote", "--region", "us", "--version", "0"], "argument --version: '0' is not a registered model version number"),
        (["promote", "--version", "2 OR 1=1"], "argument --version: '2 OR 1=1' is not a registered model version number"),
    ],
)
def test_hostile_values_are_named_in_the_refusal(argv, message):
    args, err = _parse(argv)
    assert args is None and message in err.strip().splitlines()[-1]


def test_the_values_people_type_are_accepted():
    args, _ = _parse(["run", "--region", "US, de", "--region", "all", "--set", "spark.shuffle_partitions=4", "--as-of", "2026-06-30"])
    assert args.region == ["US, de", "all"] and args.overrides == ["spark.shuffle_partitions=4"]
    args, _ = _parse(["export", "--segment", "At-risk big spenders", "--out", "/tmp/out dir/ü", "--role", "marketing"])
    assert args.segment == "At-risk big spenders" and args.out == "/tmp/out dir/ü"
    args, _ = _parse(["generate", "--scale", "0.05", "--seed", "7", "--days", "7"])
    assert (args.scale, args.seed, args.days) == (0.05, 7, 7)
    args, _ = _parse(["sql", "--limit", "50", "SELECT region,\n\tcount(*) FROM gold.customer_360 GROUP BY region"])
    assert args.limit == 50 and "\n\t" in args.query
    args, _ = _parse(["promote", "--region", "us", "--version", "12"])
    assert (args.region, args.model_version) == (["us"], "12")
    args, _ = _parse(["erase", "--email", "Ana.Lopez+promo@example.com"])
    assert args.email == "Ana.Lopez+promo@example.com"


@pytest.mark.parametrize("option", [o for o in OPTIONS if o[1].option_strings and o[1].nargs is None], ids=_ids)
def test_a_double_dash_is_no_option_value(option):
    # Python's argparse turns --opt=-- into an empty list that no type checks (it crashed c360)
    path, action = option
    args, err = _parse(_argv(path, action, "--"))
    assert args is None and err.strip().splitlines()[-1].endswith(f"argument {'/'.join(action.option_strings)}: '--' is not a value"), err
