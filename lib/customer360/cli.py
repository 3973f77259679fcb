"""``c360``: one sub-command per stage, ``run`` for the whole pipeline, and table maintenance.

Every sub-command takes the same options: ``--env``, ``--region`` (repeatable, comma lists,
``all``), ``--set key=value`` (repeatable) and ``--conf-dir``.
"""
from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date

import yaml

from customer360 import __version__
from customer360.config import load_config, resolve_root
from customer360.errors import C360Error

log = logging.getLogger("customer360")


# ------------------------------------------------------------------ option values (allow-lists)
# Every option that takes a value has one of these types (tests/test_cli_options.py checks that none is left
# plain), so a bad value stops argparse with exit code 2 and one line naming the option, before any
# work or Spark session starts. What needs the configuration (is the region configured, does the
# table exist) is checked next, with the same exit code.

def _matching(pattern: str, what: str, max_length: int = 256) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if len(text) > max_length or not compiled.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not {what}")
        return text

    check.__name__ = what  # argparse names the type in some messages
    return check


def _shown(text: str) -> str:
    """A value as an error message may echo it: at most 60 characters, control characters escaped."""
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _number(kind: type, *, low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    def check(text: str):
        try:
            value = kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not {'an integer' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not a finite number")
        if value < low or value > high or (low_open and value == low):
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{_shown(text.strip())[1:-1]} is outside {bracket}{_bound(low)}, {_bound(high)}]")
        return value

    check.__name__ = "integer" if kind is int else "number"
    return check


def _bound(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _path(text: str) -> str:
    """A file or folder: any printable name (spaces, unicode) up to 4,096 characters; no NUL or
    other control characters, which no file system we write to allows and which hide in logs."""
    if not text or len(text) > 4096 or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a usable path (empty, too long, or control characters)")
    return text


def _text(text: str) -> str:
    """Free text checked further by its command (a SQL query, an email address): no NUL, at most
    1 MB."""
    if "\x00" in text or len(text) > 1_000_000:
        raise argparse.ArgumentTypeError("text with a NUL character or over 1,000,000 characters")
    return text


def _override(text: str) -> str:
    if "=" not in text or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", text.split("=", 1)[0].strip()):
        raise argparse.ArgumentTypeError(f"{_shown(text)}: expected key.path=value, e.g. spark.shuffle_partitions=4")
    if any(ord(c) < 32 and c not in "\t" for c in text) or len(text) > 10_000:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: control characters or over 10,000 characters")
    return text


def _one_of(*values: str) -> Callable[[str], str]:
    """A choice whose refusal echoes at most 60 characters of the value (argparse's own echoes it all)."""
    def check(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"invalid choice: {_shown(text)} (choose from {', '.join(values)})")
        return text

    check.__name__ = "choice"
    return check


_ENV = _matching(r"[a-z0-9][a-z0-9_\-]{0,63}", "an environment name (lower-case letters, digits, '-' or '_')")
_REGIONS = _matching(r" *[A-Za-z]{2,3} *(, *[A-Za-z]{2,3} *)*", "region codes (e.g. us or us,de or all)")  # 'all' is 3 letters
_MODEL_VERSION = _matching(r"[1-9][0-9]{0,8}", "a registered model version number (1, 2, ...)")
_SOURCE = _matching(r"[a-z][a-z0-9_]{0,63}", "a source name (lower-case letters, digits, '_')")
_TABLE = _matching(r"[a-z][a-z0-9_]{0,63}\.[a-z_][a-z0-9_]{0,127}", "a table name <layer>.<table>")
_ROLE = _matching(r"[A-Za-z_][A-Za-z0-9_]{0,63}", "a role name")
_SUBJECT = _matching(r"[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,127}", "a user name (letters, digits, _ . @ + -)")
_CUSTOMER_ID = _matching(r"C[0-9a-f]{16}", "a customer id (C and 16 hex digits)")
_EMAIL = _matching(r"[^\x00-\x1f\x7f]{3,320}", "an email address (3 to 320 printable characters)", max_length=320)
_SEGMENT = _matching(r"[A-Za-z0-9][A-Za-z0-9 _.&/+\-]{0,79}", "a segment name (letters, digits, spaces, _ . & / + -)")
_SCALE = _number(float, low=0, high=1000, low_open=True)
_SEED = _number(int, low=0, high=2**31 - 1)
_DAYS = _number(int, low=0, high=366)
_SECONDS = _number(float, low=0, high=7 * 86400, low_open=True)
_FILES = _number(int, low=1, high=1_000_000)
_ROWS = _number(int, low=1, high=10_000_000)
_HOURS = _number(float, low=0, high=24 * 365, low_open=True)
_RETENTION_HOURS = _number(int, low=0, high=24 * 3650)
_PORT = _number(int, low=0, high=65535)
_WORST = _number(int, low=0, high=100)


class _Parser(argparse.ArgumentParser):
    """argparse, refusing ``--opt=--``: Python's argparse drops the ``--`` and hands the command an
    empty list instead of a value, unchecked by the option's type (found by the CLI fuzz test)."""

    def _get_values(self, action, arg_strings):
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            raise argparse.ArgumentError(action, "'--' is not a value")
        return super()._get_values(action, arg_strings)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("configuration")
    group.add_argument("--env", type=_ENV, default="local", help="conf/<env>.yaml to overlay on base.yaml (default: local)")
    group.add_argument(
        "--region", type=_REGIONS, action="append", default=[], metavar="CODE",
        help="region(s) to process: repeat or comma-separate; 'all' for every region file "
        "(default: pipeline.regions)",
    )
    group.add_argument(
        "--set", dest="overrides", type=_override, action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set spark.shuffle_partitions=4 or regions.de.currency=EUR",
    )
    group.add_argument("--conf-dir", type=_path, default=None, help="configuration folder (default: ./conf or the packaged copy)")
    group.add_argument("--log-level", default="INFO", type=_one_of("DEBUG", "INFO", "WARNING", "ERROR"), choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(
        prog="c360",
        description="Customer-360 lakehouse on Spark and Delta Lake.",
        epilog="Run 'c360 COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"customer360 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[common],
        help="run the whole pipeline (every stage, in order); locally it first generates the sample sources once",
    )
    run.add_argument("--as-of", type=_date, default=None, help="features as of this date, YYYY-MM-DD (default: the data's end)")
    run.add_argument("--fail-on-alert", action="store_true", help="exit non-zero when monitoring raises an alert (ops.alerts)")

    generate = sub.add_parser("generate", parents=[common], help="write the synthetic sample sources and ground truth")
    generate.add_argument("--scale", type=_SCALE, default=None, help="1 = 100k people, more than 0 and at most 1000 (default: sample_data.scale)")
    generate.add_argument("--seed", type=_SEED, default=None, help="default: sample_data.seed")
    generate.add_argument("--out", type=_path, default=None, help="folder (default: sample_data.dir); sources/ and truth/ go under it")
    generate.add_argument(
        "--days", type=_DAYS, default=None,
        help="hold the last DAYS days back under deliveries/, landed one at a time by c360 deliver (default: sample_data.days_held_back)",
    )
    deliver = sub.add_parser(
        "deliver", parents=[common], help="land the sample's next held-back day in its sources/ (see c360 generate --days)"
    )
    deliver.add_argument("--out", type=_path, default=None, help="the sample's folder (default: sample_data.dir)")

    ingest = sub.add_parser("ingest", parents=[common], help="bronze: load new source files, quarantine bad rows")
    ingest.add_argument("--source", type=_SOURCE, action="append", default=[], help="only this source (repeatable)")
    ingest.add_argument(
        "--stream", action="store_true",
        help="as Structured Streaming file streams, a checkpoint per source and region (default trigger: availableNow); "
        "web events also from Kafka where ingest.kafka.bootstrap_servers is set",
    )
    ingest.add_argument("--every", type=_SECONDS, default=None, help="with --stream: a batch every SECONDS until stopped")
    ingest.add_argument("--stop-after", type=_SECONDS, default=None, help="with --every: stop after SECONDS")
    ingest.add_argument("--max-files-per-trigger", type=_FILES, default=None, help="with --stream: at most N files a batch")
    identity = sub.add_parser(
        "identity", parents=[common],
        help="silver: resolve identities from bronze; or, with --input, resolve any file of person records",
        description="Without --input: the pipeline's identity stage (bronze -> silver). With --input, --format, "
        "--mapping and --output: resolve one file of person records into Delta tables under --output "
        "(customer_xref, customer_golden, pii_vault, customer_ids, identity_audit). The mapping is YAML naming "
        "the record id column and the column(s) of each attribute; --print-example-mapping prints a commented one.",
    )
    identity.add_argument(
        "--print-example-mapping", action="store_true", help="print a commented example mapping file and exit"
    )
    standalone = identity.add_argument_group("standalone (resolve one file, without the pipeline)")
    standalone.add_argument("--input", type=_path, default=None, help="a file or folder of person records")
    standalone.add_argument("--format", type=_one_of("csv", "parquet"), choices=["csv", "parquet"], default=None, help="the input's format")
    standalone.add_argument("--mapping", type=_path, default=None, help="YAML naming the record id and attribute columns")
    standalone.add_argument("--output", type=_path, default=None, help="folder for the Delta tables customer_xref, customer_golden, ...")
    standalone.add_argument(
        "--xref-copy", type=_one_of("csv", "parquet"), choices=["csv", "parquet"], default=None,
        help="also write the record -> customer mapping as one file, OUTPUT/customer_xref.csv or .parquet",
    )

    sub.add_parser(
        "facts", parents=[common],
        help="silver orders, web events, tickets and consent keyed by customer (after identity)",
    )
    gold = sub.add_parser(
        "gold", parents=[common], help="gold: features as of a date, customer_360, finance marts (after facts)"
    )
    gold.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default: features.as_of, else the data's end)")
    train = sub.add_parser(
        "train", parents=[common],
        help="train segmentation and churn models per region (MLflow); a model becomes champion only if it beats the current one",
    )
    train.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default: the as-of date of gold.customer_360)")
    score = sub.add_parser(
        "score", parents=[common],
        help="score with the champion models: gold.customer_segments, gold.churn_scores, ML columns of gold.customer_360",
    )
    score.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default: the as-of date of gold.customer_360)")
    promote = sub.add_parser(
        "promote", parents=[common],
        help="make each region's churn challenger (or --version) the champion; the old champion becomes the challenger",
    )
    promote.add_argument("--version", dest="model_version", type=_MODEL_VERSION, default=None,
                         help="a registered churn model version to promote instead of the challenger (one --region)")
    ml = sub.add_parser(
        "ml", parents=[common],
        help="what c360 run does after gold: train regions without a (current) champion (ml.retrain), then score",
    )
    ml.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default: the as-of date of gold.customer_360)")

    evaluate = sub.add_parser(
        "identity-eval", parents=[common],
        help="compare silver.customer_xref with the generator's ground truth: pairwise and B-cubed precision, recall, F1, and the worst false merges and misses with their comparison levels",
    )
    evaluate.add_argument(
        "--truth", type=_path, default=None,
        help="record -> person parquet (default: <sample_data.dir>/truth/record_person.parquet)",
    )
    evaluate.add_argument(
        "--worst", type=_WORST, default=5,
        help="list this many worst false merges and misses with their comparison levels (default 5; 0: none)",
    )
    sub.add_parser(
        "quality", parents=[common],
        help="run the data-quality checks of the bronze and silver tables (conf quality.checks) into ops.dq_results",
    )
    monitor = sub.add_parser(
        "monitor", parents=[common],
        help="drift (PSI), segment shift, realized churn and fairness audit; alerts to ops.alerts",
    )
    monitor.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default: the as-of date of gold.customer_360)")
    monitor.add_argument("--fail-on-alert", action="store_true", help="exit non-zero when an alert is raised")

    erase = sub.add_parser(
        "erase", parents=[common],
        help="erase a person from every table and the PII vault, keep a tombstone, vacuum the old files",
    )
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer-id", type=_CUSTOMER_ID, default=None, help="the stable customer id (silver.customer_ids)")
    who.add_argument("--email", type=_EMAIL, default=None, help="every customer with a record of this email address")
    who.add_argument("--pending", action="store_true",
                     help="only finish the erasures an interrupted run left pending (every erase and run finishes them first)")

    export = sub.add_parser(
        "export", parents=[common],
        help="write a segment's audience honouring consent and role, with a manifest of counts and exclusions",
    )
    export.add_argument("--segment", type=_SEGMENT, required=True, help="segment name (or global taxonomy name)")
    export.add_argument("--format", type=_one_of("csv", "jsonl"), choices=["csv", "jsonl"], default="csv")
    export.add_argument("--out", type=_path, required=True, help="output folder (audience/ and manifest.json)")
    export.add_argument("--role", type=_ROLE, default=None, help="governance role, one your identity may take (default: governance.principals.default_role)")

    sql = sub.add_parser(
        "sql", parents=[common],
        help="run Spark SQL over the lakehouse tables (gold.customer_360, ...) as a role sees them",
    )
    sql.add_argument(
        "query", type=_text, nargs="?", default=None,
        help="one query; none: an interactive prompt on a terminal, else ';'-separated queries from stdin",
    )
    sql.add_argument(
        "--role", type=_ROLE, default=None,
        help="governance role whose views apply: one your identity may take (a token in C360_ROLE_TOKEN, the "
             "lakehouse folder's owner, or an OS group; default: governance.principals.default_role)",
    )
    sql.add_argument("--output-format", "--format", dest="output_format", type=_one_of("table", "csv", "json"), choices=["table", "csv", "json"], default="table")
    sql.add_argument("--limit", type=_ROWS, default=1000, help="rows printed at most (every format; at most governance.sql.max_rows)")

    server = sub.add_parser(
        "sql-server", parents=[common],
        help="serve one role's SQL over JDBC/ODBC (the HiveServer2 protocol) on loopback; clients log in with a role token",
    )
    server.add_argument("--role", type=_ROLE, default="finance",
                        help="the role every client's queries run as (default: finance); clients' tokens must grant it")
    server.add_argument("--host", type=_one_of("127.0.0.1", "::1", "localhost"), default="127.0.0.1",
                        help="loopback address to listen on (remote clients: a TLS proxy in front)")
    server.add_argument("--port", type=_PORT, default=10000, help="TCP port (default: 10000; 0: any free port)")

    broker = sub.add_parser(
        "kafka-broker", parents=[common],
        help="run a single-node Kafka broker (KRaft) on loopback for trying the Kafka source (jars/kafka from make jars)",
    )
    broker.add_argument("--port", type=_PORT, default=9092, help="broker port on 127.0.0.1 (default: 9092; 0: any free port)")
    broker.add_argument("--dir", type=_path, default=".kafka", help="the broker's data and log folder (default: .kafka)")
    publish = sub.add_parser(
        "kafka-publish", parents=[common],
        help="send JSON-lines files' lines to a region's web-event topic (<ingest.kafka.topic_prefix><region>), one message a line",
    )
    publish.add_argument("files", type=_path, nargs="+", metavar="FILE", help="JSON-lines file(s); blank lines are skipped and counted")

    report = sub.add_parser(
        "report", parents=[common],
        help="one self-contained HTML file with charts: segments, RFM, churn, identity clusters, revenue, data quality",
    )
    report.add_argument("--out", type=_path, default="report.html", help="the HTML file to write (default: report.html)")
    docs = sub.add_parser("docs", parents=[common], help="document the gold tables (types, meanings) from their metadata")
    docs.add_argument("--out", type=_path, default=None, help="write here (docs/gold-tables.md) instead of printing")
    governance = sub.add_parser("governance", parents=[common], help="governance policy tools")
    governance_sub = governance.add_subparsers(dest="governance_command", required=True, metavar="ACTION")
    governance_sub.add_parser(
        "sql", parents=[common],
        help="print the Unity Catalog GRANT and column-mask statements of the access policy in conf",
    )
    token = governance_sub.add_parser(
        "token", parents=[common],
        help="print a signed role token (for C360_ROLE_TOKEN) with the key in C360_ROLE_SIGNING_KEY",
    )
    token.add_argument("--subject", type=_SUBJECT, required=True, help="who the token is for (a user name)")
    token.add_argument("--role", dest="token_roles", type=_ROLE, action="append", required=True, help="a role it grants (repeatable)")
    token.add_argument("--hours", type=_HOURS, default=8.0, help="how long it lasts (at most governance.principals.token_max_hours)")
    governance_sub.add_parser("whoami", parents=[common], help="say who you are and which roles you may take")

    sub.add_parser("config", parents=[common], help="print the resolved configuration as YAML")
    sub.add_parser("tables", parents=[common], help="list the lakehouse's tables and their versions")
    catalog = sub.add_parser(
        "catalog", parents=[common],
        help="register the lakehouse's tables by name (metastore or Unity Catalog) and list the names",
    )
    catalog.add_argument("--print-sql", action="store_true", help="print the registering statements instead of running them")

    history = sub.add_parser("history", parents=[common], help="show a table's commits")
    history.add_argument("table", type=_TABLE, help="<layer>.<table>")
    history.add_argument("--limit", type=_ROWS, default=20)

    vacuum = sub.add_parser("vacuum", parents=[common], help="delete files a table no longer references")
    vacuum.add_argument("table", type=_TABLE, help="<layer>.<table>")
    vacuum.add_argument("--retention-hours", type=_RETENTION_HOURS, default=None)
    vacuum.add_argument(
        "--no-enforce-retention", action="store_true",
        help="allow a retention below Delta's 7-day safety default (breaks time travel and running readers)",
    )

    optimize = sub.add_parser("optimize", parents=[common], help="compact a table's small files")
    optimize.add_argument("table", type=_TABLE, help="<layer>.<table>")
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a date (YYYY-MM-DD)") from None


def _print(lines: Sequence[str]) -> None:
    print("\n".join(lines), flush=True)


def _context(args: argparse.Namespace, *, metastore: bool = True):
    """The run context of a command; ``metastore=False`` for commands that never use table names
    (a local session then skips opening the Derby metastore)."""
    from customer360.context import build_context

    overrides = list(args.overrides)
    if getattr(args, "fail_on_alert", False):
        overrides.append("monitoring.fail_on_alert=true")
    config = load_config(args.env, overrides=overrides, conf_dir=args.conf_dir)
    return build_context(config, regions=args.region, as_of=getattr(args, "as_of", None), metastore=metastore)


def _cmd_run(args: argparse.Namespace) -> int:
    from customer360.pipeline import run_pipeline, summary_lines

    ctx = _context(args)
    _print(prepare_sample(ctx.config))
    summary = run_pipeline(ctx)
    _print(summary_lines(ctx, summary))
    return 0 if summary.status == "succeeded" else 1


def prepare_sample(config) -> list[str]:
    """What ``c360 run`` does to the sample before the stages (``sample_data`` enabled): generate it
    once, then, with days held back, land the next day on every later run; the lines say what."""
    sample = config.sample_data
    if not sample.enabled:
        return []
    from customer360.generate import ensure_sample_data

    data, made = ensure_sample_data(
        sample.dir, scale=sample.scale, seed=sample.seed, regions=config.pipeline.regions, days=sample.days_held_back
    )
    held = f"; the last {sample.days_held_back} day(s) held back" if sample.days_held_back else ""
    lines = [f"sample data: {data.root} (scale {sample.scale}, seed {sample.seed}, {data.people:,} people; "
             f"{'generated now' if made else 'cached'}{held})"]
    if sample.days_held_back and not made:
        lines.append(f"sample data: {_delivered(data.root)}")
    return lines


def _delivered(root) -> str:
    from customer360.generate import deliver_next_day

    delivery = deliver_next_day(root)
    return delivery.line() if delivery else "every held-back day is already delivered: nothing new lands"


def _cmd_deliver(args: argparse.Namespace) -> int:
    from pathlib import Path

    config = load_config(args.env, overrides=args.overrides, conf_dir=args.conf_dir)
    print(_delivered(Path(args.out or config.sample_data.dir)))  # refuses a folder without held-back days
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from customer360.generate import generate

    config = load_config(args.env, overrides=args.overrides, conf_dir=args.conf_dir)
    regions = config.select_regions(args.region)
    data = generate(
        args.out or config.sample_data.dir,
        scale=config.sample_data.scale if args.scale is None else args.scale,
        seed=config.sample_data.seed if args.seed is None else args.seed,
        regions=list(regions),
        consent_regimes={code: config.regions[code].consent_regime for code in regions},
        days=config.sample_data.days_held_back if args.days is None else args.days,
    )
    print(f"generated {data.people:,} people into {data.root}")
    for source, rows in data.rows.items():
        print(f"  {source}: {rows:,} rows")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from customer360.bronze.stage import run as ingest
    from customer360.bronze.stage import run_stream
    from customer360.pipeline import run_pipeline, summary_lines

    streaming = (args.every, args.stop_after, args.max_files_per_trigger)
    if not args.stream and any(v is not None for v in streaming):
        raise C360Error("--every, --stop-after and --max-files-per-trigger go with --stream")
    if args.stop_after is not None and args.every is None:
        raise C360Error("--stop-after goes with --every (availableNow stops by itself)")
    ctx = _context(args)
    if args.stream:
        def stage(c):
            return run_stream(
                c, sources=args.source or None, every_seconds=args.every, stop_after_seconds=args.stop_after,
                max_files_per_trigger=args.max_files_per_trigger,
            )
    else:
        def stage(c):
            return ingest(c, sources=args.source or None)
    summary = run_pipeline(ctx, stages=[("ingest", stage)])
    _print(summary_lines(ctx, summary))
    return 0 if summary.status == "succeeded" else 1


def _cmd_identity(args: argparse.Namespace) -> int:
    if args.print_example_mapping:
        from customer360.identity.standalone import EXAMPLE_MAPPING

        sys.stdout.write(EXAMPLE_MAPPING)
        return 0
    standalone = {"--input": args.input, "--format": args.format, "--mapping": args.mapping, "--output": args.output}
    if args.xref_copy and not any(standalone.values()):
        raise C360Error("--xref-copy goes with --input, --format, --mapping and --output (a file resolved on its own)")
    if any(standalone.values()):
        missing = [flag for flag, value in standalone.items() if not value]
        if missing:
            raise C360Error(f"resolving a file needs --input, --format, --mapping and --output; missing {', '.join(missing)}")
        return _identity_file(args)
    return _cmd_stage("identity")(args)


def _cmd_promote(args: argparse.Namespace) -> int:
    from customer360.ml.stage import promote

    result = promote(_context(args), version=args.model_version)
    _print(result.lines + [f"error: {e}" for e in result.errors])
    return 1 if result.errors else 0


def _cmd_stage(name: str):
    def command(args: argparse.Namespace) -> int:
        from customer360.pipeline import run_pipeline, stage_commands, summary_lines

        ctx = _context(args)
        summary = run_pipeline(ctx, stages=[(name, stage_commands()[name])], job=name)
        _print(summary_lines(ctx, summary))
        return 0 if summary.status == "succeeded" else 1

    return command


def _identity_file(args: argparse.Namespace) -> int:
    import uuid

    from customer360.identity.standalone import load_mapping, resolve_file
    from customer360.session import detect_capabilities, get_session

    config = load_config(args.env, overrides=args.overrides, conf_dir=args.conf_dir)
    mapping = load_mapping(args.mapping)
    spark = get_session(config, metastore=False)  # files in, files out: no table names
    report = resolve_file(
        spark,
        config,
        input_path=args.input,
        input_format=args.format,
        mapping=mapping,
        output=resolve_root(args.output),
        run_id=uuid.uuid4().hex[:16],
        graphframes_available=detect_capabilities(spark).graphframes,
        xref_copy=args.xref_copy,
    )
    _print(report.lines())
    return 0


def _cmd_identity_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from customer360.identity.evaluate import evaluate
    from customer360.tables import CUSTOMER_XREF

    ctx = _context(args, metastore=False)
    truth_path = args.truth or str(Path(ctx.config.sample_data.dir) / "truth" / "record_person.parquet")
    if "://" not in truth_path and not Path(truth_path).exists():
        raise C360Error(f"no ground truth at {truth_path}: generate sample data (c360 generate) or pass --truth")
    xref = ctx.lakehouse.read(CUSTOMER_XREF)
    xref = xref.where(xref["region"].isin(*ctx.regions))
    truth = ctx.spark.read.parquet(truth_path)
    result = evaluate(xref, truth)
    _print([f"identity evaluation against {truth_path} (regions {', '.join(ctx.regions)})", *result.lines()])
    if args.worst:
        from customer360.identity.evaluate import detokenized, error_lines, explain_pairs, worst_errors
        from customer360.tables import IDENTITY_GRAPH, IDENTITY_RECORDS, PII_VAULT

        lakehouse = ctx.lakehouse
        graph = lakehouse.read(IDENTITY_GRAPH) if lakehouse.exists(IDENTITY_GRAPH) else None
        merges, misses = worst_errors(xref, truth, links=graph, limit=args.worst)
        pairs = [e.example for e in (*merges, *misses) if e.example is not None]
        explained = {}
        if pairs and lakehouse.exists(IDENTITY_RECORDS) and lakehouse.exists(PII_VAULT):
            keys = [k for p in pairs for k in (p.left, p.right)]
            records = detokenized(lakehouse.read(IDENTITY_RECORDS), lakehouse.read(PII_VAULT), keys)
            explained = {e["pair"]: e for e in explain_pairs(pairs, records, ctx.config.identity.matching.blocking_rules)}
        _print(error_lines(merges, misses, explained))
    return 0


def _job(ctx, name: str, work):
    """Run ``work()`` as the job ``name``, recorded in ops.job_runs whatever happens."""
    from datetime import datetime, timezone

    from customer360.governance.lineage import record_job_run

    started = datetime.now(timezone.utc)
    ctx.lakehouse.lineage.reset()
    status, error = "succeeded", None
    try:
        return work()
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record_job_run(ctx, job=name, started=started, finished=datetime.now(timezone.utc), status=status, error=error)


def _cmd_erase(args: argparse.Namespace) -> int:
    from customer360.governance.erasure import erase_requests

    ctx = _context(args)
    reports = _job(ctx, "erase", lambda: erase_requests(ctx, customer_id=args.customer_id, email=args.email))
    if not reports:
        print("no erasure was pending")
    for report in reports:
        _print(report.lines())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from customer360.governance.activation import export

    ctx = _context(args, metastore=False)
    manifest = _job(ctx, "export", lambda: export(ctx, segment=args.segment, fmt=args.format, out=args.out, role=args.role))
    print(f"exported {manifest['exported']:,} of {manifest['members']:,} members of {args.segment!r} "
          f"as {manifest['role']} to {args.out} (excluded: {json.dumps(manifest['excluded'])})")
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from customer360.sqlshell import SqlSession, run_batch, split_queries

    ctx = _context(args)
    session = SqlSession(ctx, role=args.role, fmt=args.output_format, limit=args.limit)
    if args.query is not None:
        run_batch(session, [args.query])
    elif sys.stdin.isatty():
        import importlib

        try:
            importlib.import_module("readline")  # line editing and history for input()
        except ImportError:
            pass
        tables = session.tables()
        print(f"c360 sql as {session.role} ({session.principal.describe()}): {len(tables)} tables (\\dt lists them, \\d TABLE describes one); "
              f"end queries with ';', \\q or Ctrl-D quits", file=sys.stderr)
        return 1 if session.interact(input) else 0
    else:
        run_batch(session, split_queries(sys.stdin.read()))
    return 0


def _cmd_sql_server(args: argparse.Namespace) -> int:
    import signal

    from customer360.governance.principals import resolve_role
    from customer360.sqlserver import serve

    ctx = _context(args)
    who, role = resolve_role(ctx.config, args.role)  # only someone who may take the role may serve it
    server = serve(ctx, role=role, host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"c360 sql-server (started by {who.describe()}): role {role} on jdbc:hive2://{args.host}:{server.port}/ "
          "(user: a token's subject, password: its role token from c360 governance token); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    s = server.service.stats
    print(f"c360 sql-server stopped: {server.connections} connections, {s['logins_refused']} logins refused, "
          f"{s['statements']} statements ({s['statements_refused']} refused)")
    return 0


def _cmd_kafka_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from customer360.services.kafka import KafkaBroker

    broker = KafkaBroker(args.dir, port=args.port).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(f"c360 kafka-broker: {broker.bootstrap_servers} (data and server.log in {broker.data_dir}); "
          f"use --set ingest.kafka.bootstrap_servers={broker.bootstrap_servers}; Ctrl-C stops it", flush=True)
    try:
        while not stopped.wait(1.0):
            if broker.process.poll() is not None:
                raise C360Error(f"the broker exited with {broker.process.returncode}; see {broker.log_file}")
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    print("c360 kafka-broker stopped")
    return 0


def _cmd_kafka_publish(args: argparse.Namespace) -> int:
    from customer360.bronze import kafka

    config = load_config(args.env, overrides=args.overrides, conf_dir=args.conf_dir)
    regions = config.select_regions(args.region)
    if len(regions) != 1:  # refused before a Spark session starts
        raise C360Error(f"name one region with --region (each region has its own topic), not {', '.join(regions)}")
    if config.ingest.kafka.bootstrap_servers is None:
        raise C360Error("set ingest.kafka.bootstrap_servers (e.g. --set ingest.kafka.bootstrap_servers=127.0.0.1:9092)")
    lines: list[bytes] = []
    blank = 0
    for name in args.files:
        with open(name, "rb") as f:  # bytes: a line that is not UTF-8 goes as it is (bronze quarantines it)
            for line in f.read().splitlines():
                if line.strip():
                    lines.append(line)
                else:
                    blank += 1
    from customer360.context import build_context

    ctx = build_context(config, regions=regions, metastore=False)
    topic = kafka.topic(ctx, ctx.regions[0])
    sent = kafka.publish(ctx.spark, config.ingest.kafka.bootstrap_servers, topic, lines)
    print(f"sent {sent:,} message(s) to {topic} at {config.ingest.kafka.bootstrap_servers}"
          + (f"; {blank:,} blank line(s) skipped" if blank else ""))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from customer360.report import CHARTS, write_report

    ctx = _context(args, metastore=False)
    data = write_report(ctx, args.out)
    missing = sorted({section for _, section, _, _ in CHARTS if (data.get(section) or {}).get("missing")})
    print(f"wrote {args.out} ({len(CHARTS)} charts for {', '.join(ctx.regions)}"
          + (f"; without data: {', '.join(missing)})" if missing else ")"))
    return 0


def _cmd_docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from customer360.gold.docs import gold_tables_markdown

    ctx = _context(args, metastore=False)
    text = gold_tables_markdown(ctx.lakehouse)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _cmd_governance(args: argparse.Namespace) -> int:
    from customer360.governance.access import unity_catalog_sql
    from customer360.governance.activation import access_policy

    config = load_config(args.env, overrides=args.overrides, conf_dir=args.conf_dir)
    if args.governance_command == "token":
        import os

        from customer360.governance.principals import issue_token

        print(issue_token(
            subject=args.subject, roles=args.token_roles, known_roles=config.governance.roles, env=os.environ,
            hours=args.hours, max_hours=config.governance.principals.token_max_hours,
        ))
        return 0
    if args.governance_command == "whoami":
        from customer360.governance.principals import current_principal

        who = current_principal(config)
        print(f"{who.describe()}: may take {', '.join(who.roles) or 'no role'}")
        return 0
    policy = access_policy(config)
    uc = config.governance.unity_catalog
    columns, tables = _known_columns(config)
    _print(unity_catalog_sql(policy, catalog=uc.catalog, tables=tables, columns=columns, mask_function=uc.mask_function))
    return 0


def _known_columns(config) -> tuple[dict[str, list[str]], list[str]]:
    """The columns of the tables the policy names, from the code's schemas (no lakehouse needed)."""
    from customer360.gold.customer360 import column_comments
    from customer360.gold.finance import COHORT_RETENTION_COMMENTS, CUSTOMER_VALUE_COMMENTS, REVENUE_MONTHLY_COMMENTS
    from customer360.identity.golden import GOLDEN_SCHEMA
    from customer360.tables import (
        CHURN_SCORES,
        COHORT_RETENTION,
        CUSTOMER_360,
        CUSTOMER_FEATURES,
        CUSTOMER_GOLDEN,
        CUSTOMER_SEGMENTS,
        CUSTOMER_VALUE,
        FEATURE_REGISTRY,
        REVENUE_MONTHLY,
        SEGMENT_PROFILES,
    )

    windows = sorted({w for r in config.regions.values() for w in r.feature_windows_days})
    c360 = [c for c in column_comments(windows) if c != "as_of_date"]  # the features table's partition, not a 360 column
    columns = {
        CUSTOMER_360: c360,
        CUSTOMER_GOLDEN: GOLDEN_SCHEMA.fieldNames(),
        REVENUE_MONTHLY: list(REVENUE_MONTHLY_COMMENTS),
        COHORT_RETENTION: list(COHORT_RETENTION_COMMENTS),
        CUSTOMER_VALUE: list(CUSTOMER_VALUE_COMMENTS),
    }
    others = [CUSTOMER_FEATURES, FEATURE_REGISTRY, CUSTOMER_SEGMENTS, CHURN_SCORES, SEGMENT_PROFILES]
    return columns, [*columns, *others]


def _cmd_config(args: argparse.Namespace) -> int:
    config = load_config(args.env, overrides=args.overrides, conf_dir=args.conf_dir)
    regions = config.select_regions(args.region)
    data = config.model_dump(mode="json")
    data["regions"] = {code: data["regions"][code] for code in regions}
    print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    ctx = _context(args, metastore=False)
    names = ctx.lakehouse.tables()
    _print([f"{name}\tv{ctx.lakehouse.version(name)}" for name in names] or [f"no tables under {ctx.lakehouse.root}"])
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    ctx = _context(args, metastore=not args.print_sql)
    lakehouse = ctx.lakehouse
    names = lakehouse.tables()
    if not names:
        raise C360Error(f"no tables under {lakehouse.root} to name")
    if args.print_sql:
        from customer360.lakehouse.catalog import table_location

        _print([f"{s};" for name in names for s in lakehouse.catalog.statements(name, table_location(lakehouse.root, name))])
        return 0
    sync = lakehouse.sync_catalog(names)
    outcome = {n: "registered" for n in sync.registered} | {n: "re-pointed" for n in sync.repointed} | {n: "unchanged" for n in sync.unchanged}
    _print([f"{lakehouse.table_name(n).replace('`', '')}\t{outcome[n]}" for n in names if n in outcome])
    print(f"{sync.describe()}", file=sys.stderr)
    if sync.failed:
        for name, reason in sync.failed:
            print(f"c360 catalog: {name} not registered: {reason}", file=sys.stderr)
        return 2
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    ctx = _context(args, metastore=False)
    for row in ctx.lakehouse.history(args.table, limit=args.limit).collect():
        params = ", ".join(f"{k}={v}" for k, v in sorted((row.operation_parameters or {}).items()) if k != "metadata")
        print(f"v{row.version}\t{row.timestamp:%Y-%m-%d %H:%M:%S}\t{row.operation}\t{params}")
    return 0


def _cmd_vacuum(args: argparse.Namespace) -> int:
    ctx = _context(args, metastore=False)
    removed = ctx.lakehouse.vacuum(
        args.table, retention_hours=args.retention_hours, enforce_retention=not args.no_enforce_retention
    )
    print(f"{args.table}: {len(removed)} files removed")
    return 0


def _cmd_optimize(args: argparse.Namespace) -> int:
    ctx = _context(args, metastore=False)
    metrics = ctx.lakehouse.optimize(args.table, regions=ctx.regions if args.region else None)
    print(f"{args.table}: {metrics.get('numFilesRemoved', 0)} files compacted into {metrics.get('numFilesAdded', 0)}")
    return 0


COMMANDS = {
    "run": _cmd_run,
    "generate": _cmd_generate,
    "deliver": _cmd_deliver,
    "ingest": _cmd_ingest,
    "identity": _cmd_identity,
    "identity-eval": _cmd_identity_eval,
    "facts": _cmd_stage("facts"),
    "gold": _cmd_stage("gold"),
    "train": _cmd_stage("train"),
    "promote": _cmd_promote,
    "score": _cmd_stage("score"),
    "ml": _cmd_stage("ml"),
    "quality": _cmd_stage("quality"),
    "monitor": _cmd_stage("monitoring"),
    "erase": _cmd_erase,
    "export": _cmd_export,
    "sql": _cmd_sql,
    "sql-server": _cmd_sql_server,
    "kafka-broker": _cmd_kafka_broker,
    "kafka-publish": _cmd_kafka_publish,
    "docs": _cmd_docs,
    "report": _cmd_report,
    "governance": _cmd_governance,
    "config": _cmd_config,
    "tables": _cmd_tables,
    "catalog": _cmd_catalog,
    "history": _cmd_history,
    "vacuum": _cmd_vacuum,
    "optimize": _cmd_optimize,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except C360Error as exc:
        print(f"c360 {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
