"""Erasure (right to be forgotten): ``c360 erase --customer-id ID | --email ADDRESS``.

1. **Find the person.** By email: the address is standardized and tokenized exactly as the
   identity stage does it, and every customer with a record of that token is erased. By customer
   id: that customer. The person is every record ``silver.customer_xref`` maps to those customers,
   plus the web events stitched to them.
2. **Delete everywhere.** Each bronze source's rows of those records, and its current state's (by the source's record id
   column); bronze quarantine rows whose raw payload names the person in any spelling a source may
   use (``quarantine_match``: an email that standardizes to one of theirs, plus-tags and case
   included; a phone number in any national or international format whose digits end in one of
   their numbers; a loyalty, cookie, device or other id, or one of their record ids of that
   source, ignoring case, spaces, dots and dashes); every silver and gold row keyed by the
   customer ids, identity records and graph edges by their record keys, audit rows naming the
   ids, household references to them (set to null), and the vault entries of the person's tokens
   that no remaining record uses.
0. **Mark the request** (``ops.erasure_requests``, one commit before anything is deleted): the
   person as found - customer ids, regions, record ids, identifier tokens - under status
   ``pending``. An erasure killed at any later point is finished by the next ``c360 erase``
   (``--pending`` finishes only those) and the next pipeline run, from that row, even after the
   tables that find the person are gone. Every step below can be repeated. When it is done the
   row keeps only its id, regions, status ``done`` and times, and the table's old versions are
   purged like the others (4).
3. **Tombstone** (written first). ``ops.erasure_tombstones`` keeps tokens only - HMAC of
   ``source:record id`` for every erased record, HMAC of the content hash of every erased
   quarantined row, and the tokens of the configured identifiers (email by default) - so ingesting
   the old files again loads none of those rows (``bronze.ingest`` drops them and counts them as
   ``rows_erased``). The identity records and the xref, which find the person, are deleted last.
4. **Leave no copy.** Every table touched is vacuumed with retention 0 and its Delta log is
   checkpointed and truncated: old data files, the delete predicates (which name the ids) and
   file statistics of earlier versions are gone. Time travel before the erasure is gone with them.
   Reliable checkpoints that finished Spark applications left under ``<root>/_checkpoints``
   (identity graph rounds on a cluster) are removed.
5. **Name what it cannot erase.** The landing files are the source systems' drop, not ours:
   ``ops.erasure_source_files`` records, per request, every landing file that held one of the
   person's rows (path, source, region, rows; no personal data), and the run summary prints
   them, so the source owner can be told. Re-ingesting those files loads none of the rows (3).
   MLflow holds no per-person data (models, parameters and aggregate artifacts only;
   tests/ml/test_stage.py keeps it so), so there is nothing to erase there.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import reduce

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from customer360.errors import C360Error
from customer360.identity.records import PII_ATTRIBUTES
from customer360.identity.standardize import standardize_email_for
from customer360.identity.tokenize import hmac_token, python_token
from customer360.lakehouse.common import uri_to_path
from customer360.lakehouse.core import described_columns, sql_string_list
from customer360.tables import (
    CUSTOMER_XREF,
    ERASURE_FILES,
    ERASURE_REQUESTS,
    ERASURE_TOMBSTONES,
    IDENTITY_AUDIT,
    IDENTITY_RECORDS,
    PII_VAULT,
    QUARANTINE,
    SILVER_WEB_EVENTS,
    bronze_table,
    current_table,
)

log = logging.getLogger(__name__)

PENDING, DONE = "pending", "done"
#: tables whose rows name a customer in another column than customer_id
HOUSEHOLD_COLUMN = "household_id"
RECORD_KIND = "erased_record"
#: tombstone kind of an erased quarantined row: HMAC of its content hash (sha256 of the raw payload)
RAW_ROW_KIND = "erased_raw_row"
#: what may be an email address or a phone number inside a raw payload (JSON of the raw columns, or
#: an unparseable line); each candidate is then standardized as the identity stage does it
EMAIL_CANDIDATE = r"[A-Za-z0-9._%+'\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+"
PHONE_CANDIDATE = r"\+?[0-9(][0-9 ().\-/]{5,}[0-9]"

TOMBSTONE_SCHEMA, TOMBSTONE_COMMENTS = described_columns(
    ("token", T.StringType(), False, "HMAC token of an erased record key (source:record id) or identifier; no personal data"),
    ("kind", T.StringType(), False, "erased_record, erased_raw_row (a quarantined row), or the identifier kind (email, loyalty_id)"),
    ("request_id", T.StringType(), False, "the erasure that wrote it"),
    ("erased_at", T.TimestampType(), False, "when, UTC"),
    ("region", T.StringType(), False, "region (partition)"),
)


ERASURE_FILES_SCHEMA, ERASURE_FILES_COMMENTS = described_columns(
    ("request_id", T.StringType(), False, "the erasure (ops.erasure_tombstones.request_id)"),
    ("source", T.StringType(), False, "the source system whose landing file it is"),
    ("file", T.StringType(), False, "landing file (source/region/name) that held rows of the erased person: its owner must erase them"),
    ("rows", T.LongType(), False, "rows of the person in the file (loaded and quarantined); re-ingesting the file loads none of them"),
    ("erased_at", T.TimestampType(), False, "when, UTC"),
    ("region", T.StringType(), False, "region (partition)"),
)


class ErasureError(C360Error):
    """The person to erase cannot be found, or the request is malformed."""


@dataclass
class Person:
    customer_ids: list[str]
    regions: list[str]
    #: source -> record ids (every source the person has records in, plus stitched web events)
    records: dict[str, set[str]]
    #: identity attribute kind -> tokens of the person's records
    tokens: dict[str, set[str]]


@dataclass
class ErasureReport:
    request_id: str
    customers: int
    regions: list[str]
    records: int
    rows_deleted: dict[str, int] = field(default_factory=dict)
    files_removed: int = 0
    tombstones: int = 0
    #: landing files (source/region/name) -> rows of the person in them: the source owner's to erase
    source_files: dict[str, int] = field(default_factory=dict)
    #: stale reliable-checkpoint folders removed
    checkpoints_removed: int = 0
    #: finished from its marked request, after an earlier run was interrupted
    resumed: bool = False
    #: who was erased (never printed: the summary line counts them)
    person: Person | None = field(default=None, repr=False)

    def lines(self) -> list[str]:
        lines = [
            f"erasure {self.request_id}{' (interrupted earlier, finished now)' if self.resumed else ''}: {self.customers} customer id(s) in {', '.join(self.regions)}, "
            f"{self.records:,} source records; {sum(self.rows_deleted.values()):,} rows deleted from "
            f"{sum(1 for n in self.rows_deleted.values() if n)} tables, {self.files_removed:,} old files vacuumed, "
            f"{self.tombstones} tombstone tokens kept",
        ]
        lines += [f"  {table}: {n:,} rows" for table, n in sorted(self.rows_deleted.items()) if n]
        if self.checkpoints_removed:
            lines.append(f"  {self.checkpoints_removed} stale checkpoint folder(s) removed")
        if self.source_files:
            lines.append(
                f"  {len(self.source_files)} landing file(s) still hold the person's rows; their source owners must erase "
                f"them (recorded in {ERASURE_FILES}; ingesting them again loads none of these rows):"
            )
            lines += [f"    {path}: {n:,} row(s)" for path, n in sorted(self.source_files.items())]
        return lines


REQUESTS_SCHEMA, REQUESTS_COMMENTS = described_columns(
    ("request_id", T.StringType(), False, "the erasure (ops.erasure_tombstones.request_id)"),
    ("status", T.StringType(), False, "pending (marked, not finished: the next c360 erase or pipeline run finishes it) or done"),
    ("regions", T.ArrayType(T.StringType(), False), False, "regions the person had records in"),
    ("customer_ids", T.ArrayType(T.StringType(), False), False, "while pending: the customer ids to erase; empty once done"),
    ("records", T.MapType(T.StringType(), T.ArrayType(T.StringType(), False)), False,
     "while pending: source -> the person's record ids; empty once "
     "done"),
    ("tokens", T.MapType(T.StringType(), T.ArrayType(T.StringType(), False)), False,
     "while pending: identifier kind -> HMAC tokens of the person's values; empty once "
     "done"),
    ("requested_at", T.TimestampType(), False, "when the request was marked, UTC"),
    ("finished_at", T.TimestampType(), True, "when it was done, UTC (null while pending)"),
)


def record_token(source: str, record_id: str, *, key: bytes) -> str:
    return python_token(f"{source}:{record_id}", key=key, kind=RECORD_KIND)


def email_token(ctx, email: str) -> str | None:
    """The identity stage's token of ``email`` (standardized with the same settings), or None for
    an address the standardization rejects."""
    row = (
        ctx.spark.createDataFrame([(email,)], "email string")
        .select(standardize_email_for(F.col("email"), ctx.config.identity).alias("email"))
        .first()
    )
    if row is None or row["email"] is None:
        return None
    return python_token(row["email"], key=ctx.config.pii_hash_key(), kind="email")


def find_person(ctx, *, customer_id: str | None = None, email: str | None = None) -> Person:
    if (customer_id is None) == (email is None):
        raise ErasureError("name the person with exactly one of --customer-id or --email")
    lakehouse = ctx.lakehouse
    for table in (CUSTOMER_XREF, IDENTITY_RECORDS):
        if not lakehouse.exists(table):
            raise ErasureError(f"{table} does not exist: nothing to erase (run the identity stage first)")
    xref = lakehouse.read(CUSTOMER_XREF)
    records = lakehouse.read(IDENTITY_RECORDS)
    if email is not None:
        token = email_token(ctx, email)
        if token is None:
            raise ErasureError(f"{email!r} is not a valid email address")
        keys = records.where(F.col("email") == token).select("region", "source", "source_record_id")
        ids = sorted({r[0] for r in xref.join(keys, ["region", "source", "source_record_id"]).select("customer_id").distinct().collect()})
        if not ids:
            raise ErasureError("no record has that email address (already erased, or not yet through the identity stage)")
    else:
        ids = [customer_id]
    mine = xref.where(F.col("customer_id").isin(*ids)).select("region", "source", "source_record_id").collect()
    if not mine:
        raise ErasureError(f"customer {customer_id} is not in {CUSTOMER_XREF}")
    by_source: dict[str, set[str]] = {}
    for r in mine:
        by_source.setdefault(r["source"], set()).add(r["source_record_id"])
    regions = sorted({r["region"] for r in mine})
    if lakehouse.exists(SILVER_WEB_EVENTS):
        stitched = lakehouse.read(SILVER_WEB_EVENTS).where(F.col("region").isin(*regions) & F.col("customer_id").isin(*ids))
        by_source.setdefault("web_events", set()).update(r[0] for r in stitched.select("event_id").collect())
    by_source = {source: ids for source, ids in by_source.items() if ids}
    keys = ctx.spark.createDataFrame([(r["region"], r["source"], r["source_record_id"]) for r in mine], "region string, source string, source_record_id string")
    person_records = records.join(keys, ["region", "source", "source_record_id"])
    attribute_tokens = person_records.select(
        F.explode(F.array(*[F.struct(F.lit(a).alias("kind"), F.col(a).alias("token")) for a in PII_ATTRIBUTES])).alias("t")
    ).select("t.kind", "t.token")
    empty = F.create_map().cast("map<string,string>")
    other_tokens = person_records.select(
        F.lit("other_id").alias("kind"), F.explode(F.map_values(F.coalesce(F.col("other_ids"), empty))).alias("token")
    )
    token_rows = attribute_tokens.unionByName(other_tokens).where(F.col("token").isNotNull()).distinct().collect()
    tokens: dict[str, set[str]] = {}
    for r in token_rows:
        tokens.setdefault(r["kind"], set()).add(r["token"])
    return Person(customer_ids=ids, regions=regions, records=by_source, tokens=tokens)


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({sql_string_list(sorted(values))})"


def _records_predicate(records: Mapping[str, set[str]], *, source: str = "source", record_id: str = "source_record_id") -> str:
    """``(source = 's' AND record_id IN (...)) OR ...`` over the person's records."""
    return " OR ".join(f"({source} = '{s}' AND {_in(record_id, ids)})" for s, ids in sorted(records.items()))


def _regex_any(values: Iterable[str]) -> str:
    """A Java regex matching any value as a whole token (not inside a longer identifier)."""
    alternatives = "|".join(re.escape(v.lower()) for v in sorted(values) if v)
    return rf"(^|[^a-z0-9]){'(' + alternatives + ')'}([^a-z0-9]|$)"


def _normal(value: str) -> str:
    """An identifier as ``quarantine_match`` compares it: lower case, no whitespace, dots, dashes or slashes."""
    return re.sub(r"[\s.\-/]", "", value.lower())


def phone_spellings(e164_numbers: Iterable[str]) -> set[str]:
    """The digit strings a person may write each E.164 number as: the national significant number
    alone or after a trunk 0, after the country code, after 00 / 011 and the country code, with or
    without the trunk 0 (``+493098765432``: ``3098765432``, ``03098765432``, ``493098765432``,
    ``4903098765432``, ``00493098765432``, ...). Numbers shorter than 6 digits are left out."""
    import phonenumbers

    out: set[str] = set()
    for value in e164_numbers:
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            continue
        national, code = phonenumbers.national_significant_number(parsed), str(parsed.country_code)
        if len(national) < 6:
            continue
        for body in (national, "0" + national):
            out |= {body, code + body, "00" + code + body, "011" + code + body}
    return out


def quarantine_match(
    payload: Column,
    source: Column,
    *,
    identity,
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
    identifiers: Iterable[str] = (),
    records: Mapping[str, set[str]] | None = None,
) -> Column:
    """True where a raw payload (JSON of a row's raw columns, or an unparseable line) names the
    person, in whatever spelling the source used:

    - an email-like run that standardizes (``standardize_email_for``: case, plus-tags, dotless
      domains, aliases) to one of ``emails`` (standardized addresses);
    - a phone-like run whose digits are one of the spellings (``phone_spellings``) of one of
      ``phones`` (E.164): ``030 98765432``, ``+49 (0)30 987 654 32`` and ``0049 30 98765432`` all
      name ``+493098765432``;
    - one of ``identifiers`` (loyalty, cookie, device and other ids) or, in a row of source ``s``,
      one of ``records[s]``, as a whole token ignoring case, whitespace, dots, dashes and slashes.

    Never null."""
    conditions: list[Column] = []
    emails = sorted(set(emails))
    if emails:
        candidates = F.transform(F.regexp_extract_all(payload, F.lit(EMAIL_CANDIDATE), 0), lambda c: standardize_email_for(c, identity))
        conditions.append(F.exists(candidates, lambda e: F.coalesce(e.isin(*emails), F.lit(False))))
    spellings = sorted(phone_spellings(phones))
    if spellings:
        digits = F.transform(F.regexp_extract_all(payload, F.lit(PHONE_CANDIDATE), 0), lambda c: F.regexp_replace(c, "[^0-9]", ""))
        conditions.append(F.exists(digits, lambda d: d.isin(*spellings)))
    normal = F.regexp_replace(F.lower(payload), r"[\s.\-/]", "")
    values = {_normal(v) for v in identifiers} - {""}
    if values:
        conditions.append(normal.rlike(_regex_any(values)))
    for name, ids in sorted((records or {}).items()):
        values = {_normal(v) for v in ids} - {""}
        if values:
            conditions.append((source == F.lit(name)) & normal.rlike(_regex_any(values)))
    if not conditions:
        return F.lit(False)
    return F.coalesce(reduce(lambda a, b: a | b, conditions), F.lit(False))


def remove_stale_checkpoints(spark, checkpoint_root: str, *, idle_hours: float, now: datetime) -> tuple[int, int]:
    """Remove the folders under ``checkpoint_root`` (one per Spark application that set it as its
    checkpoint directory) that are not this application's and were last changed more than
    ``idle_hours`` ago; returns (removed, left because they may belong to a running job). Uses the
    Hadoop file system of the session, so object stores work as local folders do; without a
    SparkContext (Spark Connect) local folders only."""
    cutoff_ms = (now.timestamp() - idle_hours * 3600) * 1000
    try:
        context = spark.sparkContext
        current = (context.getCheckpointDir() or "").rstrip("/").rsplit("/", 1)[-1]
        jvm = context._jvm
        root = jvm.org.apache.hadoop.fs.Path(checkpoint_root)
        fs = root.getFileSystem(context._jsc.hadoopConfiguration())
    except Exception:  # noqa: BLE001 - Spark Connect: no JVM handle; local folders only
        return _remove_stale_local(uri_to_path(checkpoint_root), idle_hours=idle_hours, now=now)
    if not fs.exists(root):
        return 0, 0
    removed = left = 0
    for status in fs.listStatus(root):
        child = status.getPath()
        if not status.isDirectory() or child.getName() == current:
            continue
        if status.getModificationTime() > cutoff_ms:
            left += 1
            continue
        fs.delete(child, True)
        removed += 1
    return removed, left


def _remove_stale_local(root: str, *, idle_hours: float, now: datetime) -> tuple[int, int]:
    if not os.path.isdir(root):
        return 0, 0
    cutoff = now.timestamp() - idle_hours * 3600
    removed = left = 0
    for entry in os.scandir(root):
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.stat(follow_symlinks=False).st_mtime > cutoff:
            left += 1
            continue
        shutil.rmtree(entry.path)
        removed += 1
    return removed, left


def _of_request(lakehouse, name: str, request_id: str, columns: Sequence[str]) -> list:
    """The rows ``request_id`` wrote to ``name`` (a person's few), empty when it wrote none."""
    if not lakehouse.exists(name):
        return []
    return lakehouse.read(name).where(F.col("request_id") == request_id).select(*columns).collect()


def _rewrite(lakehouse, name: str, regions: Sequence[str], change: Callable[[DataFrame], DataFrame]) -> int:
    """Replace the regions' partitions with ``change`` of them; returns rows removed. For edits a
    plain delete predicate cannot say portably (arrays, regexes, updates)."""
    before = lakehouse.read(name).where(F.col("region").isin(*regions)).localCheckpoint(eager=True)
    after = change(before).localCheckpoint(eager=True)
    removed = before.count() - after.count()
    if removed or before.exceptAll(after).limit(1).count():
        lakehouse.write(after, name, regions=list(regions))
    before.unpersist()
    after.unpersist()
    return removed


def _vault_values(lakehouse, regions: Sequence[str], tokens: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The clear values of the person's identifiers, by kind (to find their quarantined rows): one
    read of the vault for every kind."""
    wanted = {t for ts in tokens.values() for t in ts}
    if not wanted or not lakehouse.exists(PII_VAULT):
        return {}
    vault = lakehouse.read(PII_VAULT).where(F.col("region").isin(*regions) & F.col("token").isin(*wanted))
    value_of = {r["token"]: r["value"] for r in vault.select("token", "value").distinct().collect() if r["value"]}
    return {kind: {value_of[t] for t in ts if t in value_of} for kind, ts in tokens.items()}


def _person_in_quarantine(ctx, person: Person) -> Column:
    """``quarantine_match`` for ``person``: their clear standardized emails, phones and other ids
    from the vault, and their record ids."""
    values = _vault_values(ctx.lakehouse, person.regions, person.tokens)
    identifiers = {v for kind in ("loyalty_id", "cookie_id", "device_id", "other_id") for v in values.get(kind, ())}
    return quarantine_match(
        F.col("raw_payload"), F.col("source"),
        identity=ctx.config.identity,
        emails=values.get("email", set()),
        phones=values.get("phone", set()),
        identifiers={v.split(":", 1)[1] if ":" in v else v for v in identifiers},
        records=person.records,
    )


def erase(ctx, *, customer_id: str | None = None, email: str | None = None, now: datetime | None = None) -> ErasureReport:
    """Erase the person with ``customer_id`` or ``email`` (erasures an earlier run left pending
    are finished first); the person's report."""
    if (customer_id is None) == (email is None):
        raise ErasureError("name the person with exactly one of --customer-id or --email")
    return erase_requests(ctx, customer_id=customer_id, email=email, now=now)[-1]


def erase_requests(ctx, *, customer_id: str | None = None, email: str | None = None,
                   now: datetime | None = None) -> list[ErasureReport]:
    """Finish the erasures an earlier run left pending, then erase the person named, if one is:
    every report, the person's last. A person a pending erasure covered is not looked for again
    (``c360 erase`` run again after a kill finishes the same request)."""
    now = now or datetime.now(timezone.utc)
    reports = finish_pending(ctx, now=now)
    if customer_id is None and email is None:
        return reports
    token = email_token(ctx, email) if email is not None else None
    for report in reports:
        person = report.person
        if person is not None and (customer_id in person.customer_ids or (token is not None and token in person.tokens.get("email", ()))):
            return [r for r in reports if r is not report] + [report]
    person = find_person(ctx, customer_id=customer_id, email=email)
    request_id = uuid.uuid4().hex[:16]
    _mark(ctx, request_id, person, now)
    report = _carry_out(ctx, request_id, person, now)
    _close(ctx, request_id, person, now)
    return [*reports, report]


def pending_erasures(lakehouse) -> list[tuple[str, Person]]:
    """Requests marked but not finished (an erasure killed or failed half-way), oldest first."""
    if not lakehouse.exists(ERASURE_REQUESTS):
        return []
    rows = lakehouse.read(ERASURE_REQUESTS).where(F.col("status") == PENDING).orderBy("requested_at", "request_id").collect()
    return [
        (r["request_id"], Person(
            customer_ids=list(r["customer_ids"]), regions=list(r["regions"]),
            records={k: set(v) for k, v in (r["records"] or {}).items()},
            tokens={k: set(v) for k, v in (r["tokens"] or {}).items()},
        ))
        for r in rows
    ]


def finish_pending(ctx, *, now: datetime | None = None) -> list[ErasureReport]:
    """Finish every erasure left pending, from its marked request: each step is repeated (those
    already done change nothing) and every table it touches is purged and vacuumed again."""
    now = now or datetime.now(timezone.utc)
    reports = []
    for request_id, person in pending_erasures(ctx.lakehouse):
        log.warning("erasure %s was left pending (interrupted): finishing it", request_id)
        report = _carry_out(ctx, request_id, person, now)
        report.resumed = True
        _close(ctx, request_id, person, now)
        reports.append(report)
    if not reports and ctx.lakehouse.exists(ERASURE_REQUESTS) and ctx.lakehouse.history(ERASURE_REQUESTS, limit=2).count() > 1:
        _purge(ctx.lakehouse, ERASURE_REQUESTS)  # a run killed after its request was closed, before this purge
    return reports


def _request_row(request_id: str, status: str, person: Person | None, requested_at: datetime, finished_at: datetime | None,
                 regions: Sequence[str]) -> tuple:
    records = {k: sorted(v) for k, v in person.records.items()} if person else {}
    tokens = {k: sorted(v) for k, v in person.tokens.items()} if person else {}
    return (request_id, status, list(regions), list(person.customer_ids) if person else [], records, tokens, requested_at, finished_at)


def _mark(ctx, request_id: str, person: Person, now: datetime) -> None:
    from customer360.lakehouse.core import with_comments

    row = _request_row(request_id, PENDING, person, now, None, person.regions)
    df = with_comments(ctx.spark.createDataFrame([row], REQUESTS_SCHEMA), REQUESTS_COMMENTS)
    ctx.lakehouse.write(df, ERASURE_REQUESTS, mode="append")
    log.info("erasure %s marked: customer id(s) %s in %s", request_id, ", ".join(person.customer_ids), ", ".join(person.regions))


def _close(ctx, request_id: str, person: Person, now: datetime) -> None:
    """The request done, with nothing of the person left in it or in the table's old versions."""
    from customer360.lakehouse.core import with_comments

    requested = ctx.lakehouse.read(ERASURE_REQUESTS).where(F.col("request_id") == request_id).select("requested_at").first()
    row = _request_row(request_id, DONE, None, requested["requested_at"] if requested else now, now, person.regions)
    df = with_comments(ctx.spark.createDataFrame([row], REQUESTS_SCHEMA), REQUESTS_COMMENTS)
    ctx.lakehouse.merge(df, ERASURE_REQUESTS, keys=["request_id"])
    _purge(ctx.lakehouse, ERASURE_REQUESTS)


def _purge(lakehouse, name: str) -> int:
    """Deleted rows purged from files, old files vacuumed, the log truncated; files removed."""
    lakehouse.purge_deleted_rows(name)
    removed = len(lakehouse.vacuum(name, retention_hours=0, enforce_retention=False))
    lakehouse.purge_history(name)
    return removed


def _carry_out(ctx, request_id: str, person: Person, now: datetime) -> ErasureReport:
    """Steps 1-4 for a marked request. Each can be repeated: a second pass deletes nothing more,
    writes no second tombstone, and purges and vacuums every table the erasure touches."""
    lakehouse, config = ctx.lakehouse, ctx.config
    key = config.pii_hash_key()
    report = ErasureReport(request_id, len(person.customer_ids), person.regions, sum(len(v) for v in person.records.values()),
                           person=person)
    region_sql = _in("region", person.regions)
    ids_sql = _in("customer_id", person.customer_ids)
    tables = lakehouse.tables()
    touched: list[str] = []

    def delete(name: str, where: str) -> None:
        result = lakehouse.delete(name, f"{region_sql} AND ({where})")
        report.rows_deleted[name] = report.rows_deleted.get(name, 0) + int(result.rows_deleted or 0)
        touched.append(name)

    # everything read before anything is written: the person's quarantined rows (their content
    # hashes are tombstoned) and the landing files that held their rows
    quarantined: list = []
    if QUARANTINE in tables:
        match = _person_in_quarantine(ctx, person)
        quarantined = (
            lakehouse.read(QUARANTINE)
            .where(F.col("region").isin(*person.regions) & match)
            .select("region", "source", "file", F.sha2("raw_payload", 256).alias("content_hash"))
            .collect()
        )
    files = Counter((r["region"], r["source"], r["file"]) for r in quarantined)
    for source, mapping in config.sources.items():
        name, ids = bronze_table(source), person.records.get(source)
        if ids and name in tables:
            held = (
                lakehouse.read(name).where(F.col("region").isin(*person.regions) & F.col(mapping.attributes["source_record_id"]).isin(*sorted(ids)))
                .groupBy("region", "_source_file").count().collect()
            )
            for r in held:
                files[(r["region"], source, r["_source_file"])] += r["count"]
    report.source_files = {file: n for (_, _, file), n in sorted(files.items())}

    # 0. tombstones first (tokens only): from here on a re-ingest cannot bring the person back,
    # even if a later step fails (the erasure can be run again by customer id)
    rows = [
        (record_token(source, rid, key=key), RECORD_KIND, request_id, now, region)
        for source, ids in person.records.items() for rid in ids for region in person.regions
    ]
    rows += [(python_token(r["content_hash"], key=key, kind=RAW_ROW_KIND), RAW_ROW_KIND, request_id, now, r["region"])
             for r in quarantined if r["content_hash"] and r["region"]]
    for kind in config.governance.erasure.tombstone_attributes:
        rows += [(t, kind, request_id, now, region) for t in person.tokens.get(kind, ()) for region in person.regions]
    rows = list({(r[0], r[1], r[4]): r for r in rows}.values())
    from customer360.lakehouse.core import with_comments

    # one commit each, once per request: a repeated pass finds them written and reports them
    written = _of_request(lakehouse, ERASURE_TOMBSTONES, request_id, ["request_id"])
    if written:
        report.tombstones = len(written)
    elif rows:
        df = with_comments(ctx.spark.createDataFrame(rows, TOMBSTONE_SCHEMA), TOMBSTONE_COMMENTS).coalesce(1)
        lakehouse.write(df, ERASURE_TOMBSTONES, mode="append", partition_by=["region"])
        report.tombstones = len(rows)
    listed_before = _of_request(lakehouse, ERASURE_FILES, request_id, ["file", "rows"])
    if listed_before:
        report.source_files = {r["file"]: r["rows"] for r in listed_before}
    elif files:
        listed = [(request_id, source, file, n, now, region) for (region, source, file), n in sorted(files.items())]
        df = with_comments(ctx.spark.createDataFrame(listed, ERASURE_FILES_SCHEMA), ERASURE_FILES_COMMENTS).coalesce(1)
        lakehouse.write(df, ERASURE_FILES, mode="append", partition_by=["region"])

    # 1. bronze: each source's rows of the person's records (every load, and the current state,
    # tombstones too), and their quarantined rows
    for source, mapping in config.sources.items():
        ids = person.records.get(source)
        for name in (bronze_table(source), current_table(source)):
            if ids and name in tables:
                delete(name, _in(mapping.attributes["source_record_id"], ids))
    if quarantined:
        removed = _rewrite(lakehouse, QUARANTINE, person.regions, lambda df: df.where(~match))
        report.rows_deleted[QUARANTINE] = removed
    if QUARANTINE in tables:  # also when an earlier pass removed the rows but not the old files
        touched.append(QUARANTINE)

    # 2. silver and gold by customer id or record key; the identity records and the xref (what
    # finds the person) last, so a failed erasure can be run again
    id_set = set(person.customer_ids)
    for name in tables:
        if name.startswith("bronze.") or name in (IDENTITY_RECORDS, PII_VAULT, ERASURE_TOMBSTONES, CUSTOMER_XREF) or name.startswith("ops."):
            continue
        columns = set(lakehouse.schema(name).fieldNames())
        if "region" not in columns:
            continue
        if name == IDENTITY_AUDIT:
            ids_array = F.array(*[F.lit(i) for i in sorted(id_set)])
            removed = _rewrite(
                lakehouse, name, person.regions,
                lambda df: df.where(~(F.coalesce(F.col("new_id").isin(*id_set), F.lit(False)) | F.arrays_overlap("old_ids", ids_array))),
            )
            report.rows_deleted[name] = removed
            touched.append(name)
        elif HOUSEHOLD_COLUMN in columns:
            removed = _rewrite(
                lakehouse, name, person.regions,
                lambda df: df.where(~F.col("customer_id").isin(*id_set)).withColumn(
                    HOUSEHOLD_COLUMN, F.when(~F.col(HOUSEHOLD_COLUMN).isin(*id_set), F.col(HOUSEHOLD_COLUMN))
                ),
            )
            report.rows_deleted[name] = removed
            touched.append(name)
        elif "customer_id" in columns:
            delete(name, ids_sql)
        elif {"src_source", "src_record_id", "dst_source", "dst_record_id"} <= columns:  # the identity graph's edges
            delete(name, " OR ".join(
                _records_predicate(person.records, source=f"{end}_source", record_id=f"{end}_record_id") for end in ("src", "dst")
            ))
        elif name.endswith("._quarantine") and {"source", "record_id"} <= columns:
            delete(name, _records_predicate(person.records, record_id="record_id"))

    delete(IDENTITY_RECORDS, _records_predicate(person.records))

    # 3. the vault: the person's tokens no remaining record uses; then the xref
    if PII_VAULT in tables and person.tokens:
        remaining = lakehouse.read(IDENTITY_RECORDS).where(F.col("region").isin(*person.regions))
        all_tokens = {t for ts in person.tokens.values() for t in ts}
        used = remaining.select(
            F.explode(F.array_union(F.array(*[F.col(a) for a in PII_ATTRIBUTES]),
                                    F.coalesce(F.map_values("other_ids"), F.array().cast("array<string>")))).alias("token")
        ).where(F.col("token").isin(*all_tokens)).distinct()
        in_use = {r[0] for r in used.collect()}
        doomed = all_tokens - in_use
        if doomed:
            delete(PII_VAULT, _in("token", doomed))
    delete(CUSTOMER_XREF, ids_sql)

    # 4. no old copies: deletion vectors purged into rewritten files (REORG ... APPLY (PURGE)),
    # vacuum (old data files and Change Data Feed files), then the log truncated to a checkpoint
    for name in dict.fromkeys(touched):
        report.files_removed += _purge(lakehouse, name)
    from customer360.session import checkpoint_dir

    removed, left = remove_stale_checkpoints(
        ctx.spark, checkpoint_dir(config), idle_hours=config.governance.erasure.checkpoint_idle_hours, now=now
    )
    report.checkpoints_removed = removed
    if left:
        log.warning(
            "erasure %s: %d checkpoint folder(s) under %s changed in the last %s hours were left (they may belong to a "
            "running job); run the erasure again by customer id once it has finished",
            request_id, left, checkpoint_dir(config), config.governance.erasure.checkpoint_idle_hours,
        )
    log.info("erasure %s done: %s", request_id, report.lines()[0])
    return report


# ---------------------------------------------------------------------------------- ingestion


def tombstoned(lakehouse, regions: Sequence[str]) -> DataFrame | None:
    """The tombstones of ``regions`` (token, kind, region), or None when there are none."""
    if not lakehouse.exists(ERASURE_TOMBSTONES):
        return None
    df = lakehouse.read(ERASURE_TOMBSTONES).where(F.col("region").isin(*regions)).select("token", "kind", "region")
    return df if df.limit(1).count() else None


def with_erased_flag(
    df: DataFrame,
    *,
    tombstones: DataFrame | None,
    source: str,
    record_id: str,
    identifiers: Mapping[str, Column],
    key: bytes,
    content_hash: Column | None = None,
) -> DataFrame:
    """``_erased``: the row's record key (``source:record_id``), one of its ``identifiers``
    (kind -> standardized column) or its ``content_hash`` (sha256 of the raw payload: an erased
    quarantined row) has a tombstone. Without tombstones the flag is a constant false and nothing
    is hashed."""
    if tombstones is None:
        return df.withColumn("_erased", F.lit(False))
    kinds = {r[0] for r in tombstones.select("kind").distinct().collect()}
    checks = [(RECORD_KIND, hmac_token(F.concat(F.lit(f"{source}:"), F.trim(F.col(record_id).cast("string"))), key=key, kind=RECORD_KIND))]
    checks += [(kind, hmac_token(column, key=key, kind=kind)) for kind, column in identifiers.items() if kind in kinds]
    if content_hash is not None and RAW_ROW_KIND in kinds:
        checks.append((RAW_ROW_KIND, hmac_token(content_hash, key=key, kind=RAW_ROW_KIND)))
    hits = F.broadcast(tombstones.select("kind", "token", F.lit(True).alias("_hit")).distinct())
    out = df.withColumn("_erased", F.lit(False))
    for i, (kind, token) in enumerate(checks):
        column = f"_tomb_{i}"
        out = (
            out.withColumn(column, token)
            .join(hits.where(F.col("kind") == kind).select(F.col("token").alias(column), F.col("_hit").alias(f"{column}_hit")), column, "left")
            .withColumn("_erased", F.col("_erased") | F.coalesce(F.col(f"{column}_hit"), F.lit(False)))
            .drop(column, f"{column}_hit")
        )
    return out
