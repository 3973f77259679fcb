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

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame

from customer360.errors import C360Error

FORMATS = ("table", "csv", "json")
PROMPT, CONTINUATION = "c360> ", "  ...> "


def split_queries(text: str) -> list[str]:
    """``;``-separated statements (a ``;`` inside quotes does not split)."""
    queries, current, quote = [], [], None
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            current.append(ch)
        elif ch == ";":
            queries.append("".join(current))
            current = []
        else:
            current.append(ch)
    queries.append("".join(current))
    return [" ".join(q.split()) for q in queries if q.strip()]


def render(df: DataFrame, fmt: str, *, limit: int) -> str:
    """The result as an aligned table (at most ``limit`` rows, and says so), CSV or JSON lines."""
    if fmt not in FORMATS:
        raise C360Error(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "table":
        frame = df.limit(limit + 1).toPandas()
        shown = frame.head(limit)
        text = shown.to_string(index=False) if len(shown.columns) else "(no columns)"
        if len(frame) > limit:
            text += f"\n(first {limit} rows; --limit N shows more)"
        elif not len(frame):
            text += "\n(0 rows)"
        return text + "\n"
    frame = df.toPandas()
    if fmt == "csv":
        return frame.to_csv(index=False)
    return frame.to_json(orient="records", lines=True, date_format="iso")


class SqlSession:
    """Runs queries as ``role`` and writes their results to ``out``."""

    def __init__(self, ctx, *, role: str, fmt: str = "table", limit: int = 1000, out: TextIO | None = None):
        from customer360.governance.activation import access_policy

        self.ctx = ctx
        self.role = role
        self.policy = access_policy(ctx.config)
        self.policy.role(role)  # an unknown role fails here
        self.fmt = fmt
        self.limit = limit
        self.out = out or sys.stdout

    def run(self, query: str) -> None:
        from customer360.governance.access import run_sql

        try:
            df = run_sql(self.ctx.spark, self.ctx.lakehouse, query, role=self.role, policy=self.policy)
            self.out.write(render(df, self.fmt, limit=self.limit))
        except AnalysisException as exc:  # a column the role does not see, a typo: the user's to fix
            raise C360Error(f"query failed for role {self.role}: {str(exc).splitlines()[0]}") from None

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
                if not self.command(line):
                    break
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if ";" not in text:
                continue
            queries = split_queries(text)
            complete = text.rstrip().endswith(";")
            pending = [] if complete else [queries.pop()] if queries else []
            for query in queries:
                try:
                    self.run(query)
                except Exception as exc:  # noqa: BLE001 - report it and keep the session
                    failed += 1
                    errors.write(f"error: {exc}\n")
            buffer = pending
        return failed


def run_batch(session: SqlSession, queries: Iterable[str]) -> None:
    for query in queries:
        session.run(query)
