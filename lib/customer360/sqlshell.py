"""``c360 sql``: Spark SQL over the lakehouse tables, registered by their names
(``gold.customer_360``, ``gold.finance_revenue_monthly``, ...) as the chosen role sees them.

One query as an argument, ``;``-separated queries on stdin, or, on a terminal, an interactive
prompt: queries end with ``;`` and may span lines; ``\\dt`` lists the tables, ``\\d <table>``
shows a table's columns with their types and meanings, ``\\format table|csv|json`` switches the
output, ``\\q`` (or Ctrl-D) quits. In the prompt a failing query prints its error and the session
goes on; in the other modes it stops the command (exit 2).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame

from customer360.errors import C360Error

FORMATS = ("table", "csv", "json")
PROMPT, CONTINUATION = "c360> ", "  ...> "


def _scan(text: str) -> tuple[list[str], bool]:
    """Split at each ``;`` outside quotes and comments. Returns the pieces (the last one after the
    final ``;``) and whether the text ends inside a quote or block comment."""
    pieces, current = [], []
    i, quote, n = 0, None, len(text)
    while i < n:
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < n:  # Spark string escapes: \' and \\
                current.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            current.append(ch)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            current.append(text[i:end])
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                current.append(text[i:])
                return pieces + ["".join(current)], True
            current.append(text[i:end + 2])
            i = end + 2
            continue
        elif ch == ";":
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    return pieces + ["".join(current)], quote is not None


def _is_blank(statement: str) -> bool:
    """Only whitespace and comments."""
    pieces = []
    for line in statement.splitlines():
        pieces.append(line.split("--", 1)[0])
    text = "\n".join(pieces)
    while "/*" in text and "*/" in text:
        start = text.index("/*")
        text = text[:start] + text[text.index("*/", start) + 2:]
    return not text.strip()


def split_queries(text: str) -> list[str]:
    """``;``-separated statements, as written (a ``;`` in quotes or comments does not split;
    statements of only comments are dropped)."""
    pieces, _ = _scan(text)
    return [p.strip() for p in pieces if not _is_blank(p)]


def render_frame(frame, fmt: str, *, limit: int) -> tuple[str, bool]:
    """A fetched result (pandas, up to ``limit + 1`` rows) as an aligned table, CSV or JSON lines,
    at most ``limit`` rows; returns the text and whether rows were cut. The table says so itself."""
    if fmt not in FORMATS:
        raise C360Error(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    cut = len(frame) > limit
    shown = frame.head(limit)
    if fmt == "table":
        text = shown.to_string(index=False) if len(shown.columns) else "(no columns)"
        if cut:
            text += f"\n(first {limit} rows; --limit N shows more)"
        elif not len(shown):
            text += "\n(0 rows)"
        return text + "\n", cut
    if fmt == "csv":
        return shown.to_csv(index=False), cut
    return shown.to_json(orient="records", lines=True, date_format="iso"), cut


def render(df: DataFrame, fmt: str, *, limit: int) -> str:
    """``df``'s first ``limit`` rows as ``render_frame`` writes them (unbounded in time: for trusted
    frames; role queries go through ``SqlSession``)."""
    return render_frame(df.limit(limit + 1).toPandas(), fmt, limit=limit)[0]


class SqlSession:
    """Runs queries as ``role`` and writes their results to ``out``."""

    def __init__(self, ctx, *, role: str | None = None, fmt: str = "table", limit: int = 1000,
                 out: TextIO | None = None, notices: TextIO | None = None, env=None):
        from customer360.governance.activation import access_policy
        from customer360.governance.principals import resolve_role

        self.ctx = ctx
        # the role must be one the caller's identity may take (a signed token, the lakehouse's
        # owner, or an OS group); none named: the caller's default role
        self.principal, self.role = resolve_role(ctx.config, role, env=env)
        self.policy = access_policy(ctx.config)
        self.policy.role(self.role)
        self.fmt = fmt
        most = self.policy.sql_bounds.max_rows
        if not isinstance(limit, int) or not 1 <= limit <= most:
            raise C360Error(f"--limit must be between 1 and {most:,} (governance.sql.max_rows), not {limit}")
        self.limit = limit
        self.out = out or sys.stdout
        self.notices = notices or sys.stderr

    def run(self, query: str) -> None:
        from customer360.governance.access import run_sql
        from customer360.governance.sqlguard import fetch_bounded

        spark = self.ctx.spark
        try:
            df = run_sql(spark, self.ctx.lakehouse, query, role=self.role, policy=self.policy)
            frame = fetch_bounded(spark, df, self.policy.sql_bounds, rows=self.limit)
        except PySparkException as exc:  # raised while analysing or running (a bad cast): the first line, never the plan
            first = (str(exc).strip().splitlines() or ["(no message)"])[0][:300]
            raise C360Error(f"query failed for role {self.role}: {first}") from None
        text, cut = render_frame(frame, self.fmt, limit=self.limit)
        self.out.write(text)
        if cut and self.fmt != "table":
            self.notices.write(f"(first {self.limit} rows; --limit N shows more)\n")

    def tables(self) -> list[str]:
        return self.policy.readable(self.role, self.ctx.lakehouse.tables())

    def describe(self, table: str) -> str:
        if table not in self.tables():
            raise C360Error(f"table {table} is not available to role {self.role} (\\dt lists them)")
        lakehouse = self.ctx.lakehouse
        comments = lakehouse.column_comments(table)
        rows = [(f.name, f.dataType.simpleString(), comments.get(f.name, "")) for f in lakehouse.schema(table).fields]
        width = [max(len(r[i]) for r in rows) for i in range(2)]
        return "".join(f"{n:<{width[0]}}  {t:<{width[1]}}  {c}".rstrip() + "\n" for n, t, c in rows)

    def command(self, line: str) -> bool:
        """A backslash command; False when the session should end."""
        name, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        if name in ("\\q", "\\quit"):
            return False
        if name == "\\dt":
            self.out.write("".join(f"{t}\n" for t in self.tables()))
        elif name == "\\d" and argument:
            self.out.write(self.describe(argument))
        elif name == "\\format" and argument in FORMATS:
            self.fmt = argument
            self.out.write(f"output format: {argument}\n")
        else:
            self.out.write(
                "\\dt                 tables you may query\n"
                "\\d <table>          its columns, types and meanings\n"
                "\\format table|csv|json\n"
                "\\q                  quit (or Ctrl-D)\n"
                "queries end with ';'\n"
            )
        return True

    def interact(self, read_line: Callable[[str], str], errors: TextIO | None = None) -> int:
        """The prompt: ``read_line(prompt)`` returns a line and raises EOFError at the end. Returns
        the number of queries that failed."""
        errors = errors or sys.stderr
        failed = 0
        buffer: list[str] = []
        while True:
            try:
                line = read_line(CONTINUATION if buffer else PROMPT)
            except EOFError:
                break
            except KeyboardInterrupt:  # Ctrl-C drops the statement being typed
                buffer = []
                errors.write("\n")
                continue
            if not buffer and line.strip().startswith("\\"):
                try:
                    if not self.command(line):
                        break
                except Exception as exc:  # noqa: BLE001 - report it and keep the session
                    failed += 1
                    errors.write(f"error: {exc}\n")
                continue
            buffer.append(line)
            pieces, open_quote = _scan("\n".join(buffer))
            if len(pieces) == 1 or open_quote:  # no statement ended yet (or one is inside a quote)
                continue
            for query in (p.strip() for p in pieces[:-1] if not _is_blank(p)):
                try:
                    self.run(query)
                except KeyboardInterrupt:
                    failed += 1
                    errors.write("cancelled\n")
                except Exception as exc:  # noqa: BLE001 - report it and keep the session
                    failed += 1
                    errors.write(f"error: {exc}\n")
            rest = pieces[-1]
            buffer = [rest] if not _is_blank(rest) else []
        return failed


def run_batch(session: SqlSession, queries: Iterable[str]) -> None:
    for query in queries:
        session.run(query)
