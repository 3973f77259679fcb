"""``c360 sql-server``: the role SQL of ``c360 sql`` over JDBC and ODBC, for finance's BI tools.

It speaks the HiveServer2 Thrift protocol, the one Spark's own Thrift server speaks, so Hive's JDBC
driver (``jdbc:hive2://127.0.0.1:10000/``; beeline and the driver ship in pyspark's jars), the
Simba/Databricks Spark ODBC drivers, PyHive and every BI tool built on them connect to it. It is
not Spark's Thrift server: that one runs any statement on Spark directly (``reflect``, path
relations, ``SET``, ``ADD JAR``), so its role views would protect nothing. Here every statement
takes the door ``c360 sql`` takes, ``governance.access.run_sql``: one read-only query, checked
against the allow-lists of ``sqlguard``, over the views of the one role the server serves, within
the row, time and scan bounds of ``governance.sql``.

Who may connect: a user name and a password, sent with SASL PLAIN (the drivers' default) or in the
session request (``;auth=noSasl``). The password is a role token (``c360 governance token --subject
NAME --role finance``, signed with ``C360_ROLE_SIGNING_KEY``); the user name must be its subject and
it must grant the server's role. Nothing else is accepted: not the OS user, not the lakehouse owner.
The server listens on loopback only (TLS and remote clients are a reverse proxy's job).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from customer360.errors import AccessError, C360Error

log = logging.getLogger("customer360.sqlserver")

LOOPBACK = ("127.0.0.1", "::1", "localhost")
#: the newest protocol version answered (columnar result sets, V6 and later)
PROTOCOL = 7  # HIVE_CLI_SERVICE_PROTOCOL_V8
SASL_START, SASL_OK, SASL_BAD, SASL_ERROR, SASL_COMPLETE = 1, 2, 3, 4, 5
#: bytes a client frame or SASL message may have (statements are bounded by governance.sql.max_query_chars)
MAX_FRAME = 1 << 20
#: the one statement besides role queries: what PyHive and JDBC URLs naming a database send
_USE_DEFAULT = re.compile(r"\s*USE\s+(?:default|`default`)\s*;?\s*", re.I)
#: JDBC type codes (java.sql.Types) of the metadata calls
_JDBC_TYPES = {"boolean": 16, "tinyint": -6, "smallint": 5, "int": 4, "bigint": -5, "float": 6, "double": 8,
               "string": 12, "date": 91, "timestamp": 93, "timestamp_ntz": 93, "binary": -2, "decimal": 3}


class ProtocolError(Exception):
    """A client that does not speak the protocol (or exceeds its bounds): the connection is closed."""


# --------------------------------------------------------------------------- transport


class ClientTransport:
    """One client's connection, as a Thrift transport: SASL PLAIN (length-framed messages after
    the handshake) or the unframed binary protocol (``auth=noSasl``), told apart by the first byte.

    ``login`` is the (user, password) the SASL handshake carried, or None without SASL."""

    def __init__(self, sock: socket.socket, *, check_login, max_frame: int = MAX_FRAME):
        self.sock = sock
        self.check_login = check_login
        self.max_frame = max_frame
        self.framed = False
        self.login: tuple[str, str] | None = None
        self._pending = b""  # bytes read ahead (the first byte, or the rest of a frame)
        self._out: list[bytes] = []

    # the TTransportBase interface
    def isOpen(self) -> bool:  # noqa: N802 - thrift's name
        return True

    def open(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 65536))
            if not chunk:
                from thrift.transport.TTransport import TTransportException

                raise TTransportException(TTransportException.END_OF_FILE, "client closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def handshake(self) -> None:
        """Read the first byte; on SASL, run the PLAIN handshake (refusing a bad login in it)."""
        first = self._recv_exact(1)
        if first[0] != SASL_START:
            self._pending = first  # the binary protocol's first byte (0x80 of a strict message)
            return
        mechanism = self._sasl_message(first[0])
        if mechanism != b"PLAIN":
            self._sasl_send(SASL_BAD, f"only the PLAIN mechanism is offered, not {mechanism[:20]!r}")
            raise ProtocolError("SASL mechanism refused")
        status = self._recv_exact(1)[0]
        if status not in (SASL_OK, SASL_COMPLETE):
            raise ProtocolError(f"unexpected SASL status {status}")
        parts = self._sasl_message(status).split(b"\x00")
        if len(parts) != 3:
            self._sasl_send(SASL_BAD, "malformed PLAIN response")
            raise ProtocolError("malformed PLAIN response")
        try:
            user, password = parts[1].decode("utf-8"), parts[2].decode("utf-8")
            self.check_login(user, password)
        except (UnicodeDecodeError, AccessError) as exc:
            reason = str(exc) if isinstance(exc, AccessError) else "the user name and password must be UTF-8"
            self._sasl_send(SASL_BAD, f"login refused: {reason}")
            raise ProtocolError("login refused") from None
        self.login = (user, password)
        self._sasl_send(SASL_COMPLETE, "")
        self.framed = True

    def _sasl_message(self, status: int) -> bytes:
        (length,) = struct.unpack(">I", self._recv_exact(4))
        if length > 65536:
            raise ProtocolError("SASL message too long")
        return self._recv_exact(length)

    def _sasl_send(self, status: int, message: str) -> None:
        payload = message.encode("utf-8")
        self.sock.sendall(struct.pack(">BI", status, len(payload)) + payload)

    def read(self, sz: int) -> bytes:
        if not self._pending:
            if self.framed:
                (length,) = struct.unpack(">I", self._recv_exact(4))
                if length > self.max_frame:
                    raise ProtocolError(f"a frame of {length:,} bytes (at most {self.max_frame:,})")
                self._pending = self._recv_exact(length)
            else:
                self._pending = self.sock.recv(65536)
                if not self._pending:
                    from thrift.transport.TTransport import TTransportException

                    raise TTransportException(TTransportException.END_OF_FILE, "client closed the connection")
        out, self._pending = self._pending[:sz], self._pending[sz:]
        return out

    def readAll(self, sz: int) -> bytes:  # noqa: N802 - thrift's name
        buf = b""
        while len(buf) < sz:
            buf += self.read(sz - len(buf))
        return buf

    def write(self, buf: bytes) -> None:
        self._out.append(bytes(buf))

    def flush(self) -> None:
        data, self._out = b"".join(self._out), []
        if self.framed:
            data = struct.pack(">I", len(data)) + data
        self.sock.sendall(data)


# --------------------------------------------------------------------------- result sets


def _text(value, type_name: str) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, Decimal)):
        return str(value)
    if type_name in ("array", "map", "struct"):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


@dataclass
class ResultSet:
    """Rows fetched in full (within the role's row bound), served page by page."""

    columns: list[tuple[str, str]]  # name, Spark simple type (decimal(18,2), array<string>, ...)
    rows: list[tuple]
    cursor: int = 0
    notices: list[str] = field(default_factory=list)

    @classmethod
    def of_frame(cls, df, rows) -> ResultSet:
        return cls([(f.name, f.dataType.simpleString()) for f in df.schema.fields], [tuple(r) for r in rows])

    def schema(self):
        from TCLIService import ttypes as t

        columns = []
        for position, (name, type_text) in enumerate(self.columns, start=1):
            base = type_text.split("(", 1)[0].split("<", 1)[0]
            type_id = {
                "boolean": t.TTypeId.BOOLEAN_TYPE, "tinyint": t.TTypeId.TINYINT_TYPE, "smallint": t.TTypeId.SMALLINT_TYPE,
                "int": t.TTypeId.INT_TYPE, "bigint": t.TTypeId.BIGINT_TYPE, "float": t.TTypeId.FLOAT_TYPE,
                "double": t.TTypeId.DOUBLE_TYPE, "date": t.TTypeId.DATE_TYPE, "timestamp": t.TTypeId.TIMESTAMP_TYPE,
                "timestamp_ntz": t.TTypeId.TIMESTAMP_TYPE, "binary": t.TTypeId.BINARY_TYPE, "decimal": t.TTypeId.DECIMAL_TYPE,
            }.get(base, t.TTypeId.STRING_TYPE)  # strings, and arrays, maps and structs as JSON text
            qualifiers = None
            if base == "decimal":
                precision, scale = re.findall(r"\d+", type_text)
                qualifiers = t.TTypeQualifiers({"precision": t.TTypeQualifierValue(i32Value=int(precision)),
                                                 "scale": t.TTypeQualifierValue(i32Value=int(scale))})
            entry = t.TTypeEntry(primitiveEntry=t.TPrimitiveTypeEntry(type=type_id, typeQualifiers=qualifiers))
            columns.append(t.TColumnDesc(columnName=name, typeDesc=t.TTypeDesc(types=[entry]), position=position,
                                         comment=None))
        return t.TTableSchema(columns=columns)

    def page(self, max_rows: int, *, first: bool = False):
        from TCLIService import ttypes as t

        if first:
            self.cursor = 0
        start, end = self.cursor, min(len(self.rows), self.cursor + max(0, max_rows))
        self.cursor = end
        rows = self.rows[start:end]
        columns = []
        for i, (_, type_text) in enumerate(self.columns):
            base = type_text.split("(", 1)[0].split("<", 1)[0]
            values = [r[i] for r in rows]
            nulls = bytearray((len(values) + 7) // 8)
            for j, v in enumerate(values):
                if v is None:
                    nulls[j // 8] |= 1 << (j % 8)
            nulls = bytes(nulls)
            if base == "boolean":
                column = t.TColumn(boolVal=t.TBoolColumn([bool(v) if v is not None else False for v in values], nulls))
            elif base == "tinyint":
                column = t.TColumn(byteVal=t.TByteColumn([v if v is not None else 0 for v in values], nulls))
            elif base == "smallint":
                column = t.TColumn(i16Val=t.TI16Column([v if v is not None else 0 for v in values], nulls))
            elif base == "int":
                column = t.TColumn(i32Val=t.TI32Column([v if v is not None else 0 for v in values], nulls))
            elif base == "bigint":
                column = t.TColumn(i64Val=t.TI64Column([v if v is not None else 0 for v in values], nulls))
            elif base in ("float", "double"):
                column = t.TColumn(doubleVal=t.TDoubleColumn([float(v) if v is not None else 0.0 for v in values], nulls))
            elif base == "binary":
                column = t.TColumn(binaryVal=t.TBinaryColumn([bytes(v) if v is not None else b"" for v in values], nulls))
            else:
                column = t.TColumn(stringVal=t.TStringColumn(
                    [_text(v, base) if v is not None else "" for v in values], nulls))
            columns.append(column)
        return t.TRowSet(startRowOffset=start, rows=[], columns=columns)


# --------------------------------------------------------------------------- the service


def _like(pattern: str | None) -> re.Pattern:
    """A JDBC metadata pattern (``%`` any run, ``_`` one character, ``\\`` escapes) as a regex."""
    if pattern in (None, "", "*"):
        return re.compile(r".*", re.S)
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch in "%*" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S | re.I)


@dataclass
class _Session:
    user: str
    role: str
    operations: OrderedDict = field(default_factory=OrderedDict)
    opened: float = field(default_factory=time.monotonic)


class RoleSqlService:
    """The HiveServer2 calls, each answered as the server's role (``TCLIService.Iface``).

    ``spark``/``lakehouse``/``policy`` are those of ``c360 sql``; ``env`` holds the signing key."""

    def __init__(self, spark, lakehouse, *, role: str, policy, env: Mapping[str, str], token_max_hours: float,
                 max_sessions: int = 64, max_operations: int = 16):
        from customer360.governance.principals import SIGNING_KEY_ENV, _signing_key

        policy.role(role)  # a known role, or AccessError
        if not env.get(SIGNING_KEY_ENV):
            raise AccessError(f"{SIGNING_KEY_ENV} is not set: c360 sql-server checks its clients' role tokens with it")
        _signing_key(env)  # long enough, or AccessError now rather than at the first login
        self.spark, self.lakehouse, self.role, self.policy = spark, lakehouse, role, policy
        self.env, self.token_max_hours = dict(env), token_max_hours
        self.max_sessions, self.max_operations = max_sessions, max_operations
        self.sessions: dict[bytes, _Session] = {}
        self.lock = threading.Lock()
        self.local = threading.local()  # the connection's SASL login, set by the server per thread
        self.stats = {"logins_refused": 0, "statements": 0, "statements_refused": 0}

    # ---- identity
    def check_login(self, user: str, password: str) -> str:
        """The user's name if ``password`` is a valid token for ``user`` granting the role."""
        from customer360.governance.principals import principal_from_token

        try:
            if not password:
                raise AccessError("a role token is required as the password (c360 governance token)")
            who = principal_from_token(password, known_roles=self.policy.roles, env=self.env,
                                       max_hours=self.token_max_hours, source="the password")
            if who.name != user:
                raise AccessError(f"the token was issued to another user than {user[:64]!r}")
            if self.role not in who.roles:
                raise AccessError(f"the token does not grant role {self.role}, the role this server serves")
        except AccessError:
            with self.lock:
                self.stats["logins_refused"] += 1
            log.warning("login refused for user %r", user[:64])
            raise
        return who.name

    # ---- helpers
    @staticmethod
    def _ok(**kwargs):
        from TCLIService import ttypes as t

        return t.TStatus(statusCode=t.TStatusCode.SUCCESS_STATUS, **kwargs)

    @staticmethod
    def _error(message: str, state: str = "42000"):
        from TCLIService import ttypes as t

        return t.TStatus(statusCode=t.TStatusCode.ERROR_STATUS, errorMessage=message[:1000], sqlState=state, errorCode=0)

    def _session(self, handle) -> _Session:
        key = bytes(handle.sessionId.guid) if handle is not None and handle.sessionId is not None else b""
        with self.lock:
            session = self.sessions.get(key)
        if session is None:
            raise C360Error("invalid or closed session")
        return session

    def _operation(self, handle) -> ResultSet:
        key = bytes(handle.operationId.guid) if handle is not None and handle.operationId is not None else b""
        with self.lock:
            for session in self.sessions.values():
                if key in session.operations:
                    return session.operations[key]
        raise C360Error("invalid or closed operation")

    def _add_operation(self, session: _Session, result: ResultSet, op_type: int):
        from TCLIService import ttypes as t

        guid = uuid.uuid4().bytes
        with self.lock:
            session.operations[guid] = result
            while len(session.operations) > self.max_operations:  # a client that never closes: oldest go
                session.operations.popitem(last=False)
        return t.TOperationHandle(operationId=t.THandleIdentifier(guid=guid, secret=uuid.uuid4().bytes),
                                  operationType=op_type, hasResultSet=True)

    def _guard(self, response_type, call):
        """Run ``call``; any error becomes the response's status (a C360 error's own message, never
        a traceback: those may quote values)."""
        try:
            return call()
        except C360Error as exc:
            return response_type(status=self._error(str(exc)))
        except Exception as exc:  # noqa: BLE001
            from pyspark.errors import PySparkException

            condition = getattr(exc, "getCondition", None)
            what = (condition() if callable(condition) else None) or type(exc).__name__
            log.warning("a call failed with %s", what)  # the log: the class only (the message can quote a value)
            if isinstance(exc, PySparkException):  # a query that failed running: the client sees its first line,
                # which can quote a value of the role's own view (a bad cast), never the plan
                first = (str(exc).strip().splitlines() or ["(no message)"])[0][:300]
                return response_type(status=self._error(f"the query failed: {first}", "22000"))
            return response_type(status=self._error(f"internal error ({what})", "HY000"))

    # ---- sessions
    def OpenSession(self, req):  # noqa: N802 - the protocol's names
        from TCLIService import ttypes as t

        def call():
            login = getattr(self.local, "login", None)
            if login is None:  # no SASL: the request carries them (auth=noSasl)
                login = (req.username or "", req.password or "")
            user = self.check_login(*login)
            with self.lock:
                if len(self.sessions) >= self.max_sessions:
                    raise C360Error(f"the server has {self.max_sessions} sessions open, its most; try again later")
                guid = uuid.uuid4().bytes
                self.sessions[guid] = _Session(user, self.role)
            opened = getattr(self.local, "opened", None)
            if opened is not None:
                opened.add(guid)  # closed with the connection, if the client does not close it
            log.info("session opened for %s as %s", user, self.role)
            version = min(req.client_protocol if req.client_protocol is not None else PROTOCOL, PROTOCOL)
            return t.TOpenSessionResp(
                status=self._ok(), serverProtocolVersion=version, configuration={},
                sessionHandle=t.TSessionHandle(sessionId=t.THandleIdentifier(guid=guid, secret=uuid.uuid4().bytes)))

        return self._guard(t.TOpenSessionResp, call)

    def CloseSession(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        with self.lock:
            self.sessions.pop(bytes(req.sessionHandle.sessionId.guid), None)
        return t.TCloseSessionResp(status=self._ok())

    def GetInfo(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        def call():
            self._session(req.sessionHandle)
            kinds = t.TGetInfoType
            values = {kinds.CLI_DBMS_NAME: "Spark SQL (customer360 role SQL)", kinds.CLI_DBMS_VER: self.spark.version,
                      kinds.CLI_SERVER_NAME: "c360 sql-server"}
            if req.infoType in values:
                return t.TGetInfoResp(status=self._ok(), infoValue=t.TGetInfoValue(stringValue=values[req.infoType]))
            if req.infoType == kinds.CLI_MAX_STATEMENT_LEN:
                return t.TGetInfoResp(status=self._ok(), infoValue=t.TGetInfoValue(lenValue=self.policy.sql_bounds.max_query_chars))
            raise C360Error(f"information {kinds._VALUES_TO_NAMES.get(req.infoType, req.infoType)} is not offered")

        return self._guard(t.TGetInfoResp, call)

    # ---- statements
    def ExecuteStatement(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        from customer360.governance.access import run_sql
        from customer360.governance.sqlguard import fetch_bounded

        def call():
            session = self._session(req.sessionHandle)
            statement = req.statement or ""
            if _USE_DEFAULT.fullmatch(statement):  # drivers send it on connecting: it changes nothing here
                return t.TExecuteStatementResp(status=self._ok(), operationHandle=self._add_operation(
                    session, ResultSet([], []), t.TOperationType.EXECUTE_STATEMENT))
            with self.lock:
                self.stats["statements"] += 1
            try:
                bounds = self.policy.sql_bounds
                df = run_sql(self.spark, self.lakehouse, statement, role=session.role, policy=self.policy)
                rows = fetch_bounded(self.spark, df, bounds, as_rows=True)
            except C360Error:
                with self.lock:
                    self.stats["statements_refused"] += 1
                raise
            except Exception as exc:  # AnalysisException while running: its first line, never the plan
                from pyspark.errors import AnalysisException

                if not isinstance(exc, AnalysisException):
                    raise
                with self.lock:
                    self.stats["statements_refused"] += 1
                first = (str(exc).strip().splitlines() or ["(no message)"])[0][:300]
                raise C360Error(f"query failed for role {session.role}: {first}") from None
            if len(rows) > bounds.max_rows:
                # JDBC drivers drop a warning on the floor: a silently cut result is refused instead
                with self.lock:
                    self.stats["statements_refused"] += 1
                raise C360Error(f"the result has more than {bounds.max_rows:,} rows (governance.sql.max_rows): "
                                f"aggregate, or add LIMIT {bounds.max_rows} to take only the first ones")
            handle = self._add_operation(session, ResultSet.of_frame(df, rows), t.TOperationType.EXECUTE_STATEMENT)
            return t.TExecuteStatementResp(status=self._ok(), operationHandle=handle)

        return self._guard(t.TExecuteStatementResp, call)

    def GetOperationStatus(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        def call():
            self._operation(req.operationHandle)  # statements run to the end inside ExecuteStatement
            return t.TGetOperationStatusResp(status=self._ok(), operationState=t.TOperationState.FINISHED_STATE,
                                             hasResultSet=True)

        return self._guard(t.TGetOperationStatusResp, call)

    def GetResultSetMetadata(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        return self._guard(t.TGetResultSetMetadataResp, lambda: t.TGetResultSetMetadataResp(
            status=self._ok(), schema=self._operation(req.operationHandle).schema()))

    def FetchResults(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        def call():
            result = self._operation(req.operationHandle)
            if req.fetchType == 1:  # the operation's log: none is kept (it could quote values)
                return t.TFetchResultsResp(status=self._ok(), hasMoreRows=False,
                                           results=ResultSet([("log", "string")], []).page(0))
            first = req.orientation == t.TFetchOrientation.FETCH_FIRST
            page = result.page(min(int(req.maxRows or 0), 10_000), first=first)
            return t.TFetchResultsResp(status=self._ok(), hasMoreRows=result.cursor < len(result.rows), results=page)

        return self._guard(t.TFetchResultsResp, call)

    def CloseOperation(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        key = bytes(req.operationHandle.operationId.guid)
        with self.lock:
            for session in self.sessions.values():
                session.operations.pop(key, None)
        return t.TCloseOperationResp(status=self._ok())

    def CancelOperation(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        self.CloseOperation(req)
        return t.TCancelOperationResp(status=self._ok())

    # ---- metadata: the role's tables only, layers as schemas
    def _tables(self) -> list[tuple[str, str]]:
        tables = self.policy.readable(self.role, self.lakehouse.tables())
        return [tuple(name.split(".", 1)) for name in tables]

    def _metadata(self, response_type, req, op_type, columns, rows_of):
        def call():
            session = self._session(req.sessionHandle)
            result = ResultSet(columns, rows_of())
            return response_type(status=self._ok(), operationHandle=self._add_operation(session, result, op_type))

        return self._guard(response_type, call)

    def GetCatalogs(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        return self._metadata(t.TGetCatalogsResp, req, t.TOperationType.GET_CATALOGS, [("TABLE_CAT", "string")],
                              lambda: [])

    def GetSchemas(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        def rows():
            wanted = _like(req.schemaName)
            return [(layer, "") for layer in sorted({layer for layer, _ in self._tables()}) if wanted.fullmatch(layer)]

        return self._metadata(t.TGetSchemasResp, req, t.TOperationType.GET_SCHEMAS,
                              [("TABLE_SCHEM", "string"), ("TABLE_CATALOG", "string")], rows)

    def GetTableTypes(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        return self._metadata(t.TGetTableTypesResp, req, t.TOperationType.GET_TABLE_TYPES, [("TABLE_TYPE", "string")],
                              lambda: [("VIEW",)])

    def GetTables(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        def rows():
            schema, table = _like(req.schemaName), _like(req.tableName)
            return [("", layer, name, "VIEW", f"{layer}.{name} as role {self.role} sees it")
                    for layer, name in self._tables() if schema.fullmatch(layer) and table.fullmatch(name)]

        return self._metadata(t.TGetTablesResp, req, t.TOperationType.GET_TABLES,
                              [("TABLE_CAT", "string"), ("TABLE_SCHEM", "string"), ("TABLE_NAME", "string"),
                               ("TABLE_TYPE", "string"), ("REMARKS", "string")], rows)

    def GetColumns(self, req):  # noqa: N802
        from TCLIService import ttypes as t

        from customer360.governance.access import run_sql

        def rows():
            schema, table, column = _like(req.schemaName), _like(req.tableName), _like(req.columnName)
            out = []
            for layer, name in self._tables():
                if not (schema.fullmatch(layer) and table.fullmatch(name) or table.fullmatch(f"{layer}.{name}")):
                    continue  # (beeline's !columns sends the qualified name as the table pattern)
                # the role's view, through the same door as a query: its columns are what the role sees
                fields = run_sql(self.spark, self.lakehouse, f"SELECT * FROM {layer}.{name}", role=self.role,
                                 policy=self.policy).schema.fields
                for position, f in enumerate(fields, start=1):
                    if column.fullmatch(f.name):
                        type_text = f.dataType.simpleString()
                        base = type_text.split("(", 1)[0].split("<", 1)[0]
                        out.append(("", layer, name, f.name, _JDBC_TYPES.get(base, 12), type_text.upper(), None, None,
                                    1 if f.nullable else 0, "", position, "YES" if f.nullable else "NO"))
            return out

        return self._metadata(t.TGetColumnsResp, req, t.TOperationType.GET_COLUMNS, [
            ("TABLE_CAT", "string"), ("TABLE_SCHEM", "string"), ("TABLE_NAME", "string"), ("COLUMN_NAME", "string"),
            ("DATA_TYPE", "int"), ("TYPE_NAME", "string"), ("COLUMN_SIZE", "int"), ("DECIMAL_DIGITS", "int"),
            ("NULLABLE", "int"), ("REMARKS", "string"), ("ORDINAL_POSITION", "int"), ("IS_NULLABLE", "string")], rows)


#: the calls answered "not offered", and what their refusal names (each answers ``T<call>Resp``)
NOT_OFFERED = {
    "GetTypeInfo": "GetTypeInfo", "GetFunctions": "GetFunctions", "GetPrimaryKeys": "GetPrimaryKeys",
    "GetCrossReference": "GetCrossReference", "GetLog": "GetLog", "GetDelegationToken": "delegation tokens",
    "CancelDelegationToken": "delegation tokens", "RenewDelegationToken": "delegation tokens",
}


def _not_offered(call: str, what: str):
    def answer(self, req):
        from TCLIService import ttypes as t

        return getattr(t, f"T{call}Resp")(status=self._error(f"{what} is not offered by c360 sql-server", "0A000"))

    answer.__name__ = call
    return answer


for _call, _what in NOT_OFFERED.items():
    setattr(RoleSqlService, _call, _not_offered(_call, _what))


# --------------------------------------------------------------------------- the server


class SqlServer:
    """Accepts connections on loopback, one thread per connection (at most ``max_connections``)."""

    def __init__(self, service: RoleSqlService, *, host: str = "127.0.0.1", port: int = 10000,
                 max_connections: int = 32, idle_seconds: float = 3600.0):
        if host not in LOOPBACK:
            raise C360Error(f"c360 sql-server listens on loopback only ({', '.join(LOOPBACK)}), not {host!r}: "
                            "put a TLS-terminating proxy in front for remote clients")
        if not 0 <= port <= 65535:
            raise C360Error(f"port must be between 0 and 65535, not {port}")
        self.service = service
        self.max_connections, self.idle_seconds = max_connections, idle_seconds
        family = socket.AF_INET6 if host == "::1" else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1" if host == "localhost" else host, port))
        except OSError as exc:
            self.sock.close()
            raise C360Error(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.slots = threading.BoundedSemaphore(max_connections)
        self.stopping = threading.Event()
        self.connections = 0

    def serve_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                raise
            if not self.slots.acquire(blocking=False):
                client.close()  # at capacity: refused at once rather than queued
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), name="c360-sql-client", daemon=True).start()

    def start(self) -> threading.Thread:
        """Serve from a background thread (tests, notebooks); ``stop()`` ends it."""
        thread = threading.Thread(target=self.serve_forever, name="c360-sql-server", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _serve(self, client: socket.socket) -> None:
        from thrift.protocol.TBinaryProtocol import TBinaryProtocol
        from thrift.Thrift import TException
        from TCLIService import TCLIService

        service = self.service
        transport = ClientTransport(client, check_login=service.check_login)
        try:
            client.settimeout(30.0)  # the handshake
            transport.handshake()
            client.settimeout(self.idle_seconds)
            service.local.login = transport.login
            service.local.opened = set()
            protocol = TBinaryProtocol(transport, string_length_limit=MAX_FRAME, container_length_limit=100_000)
            processor = TCLIService.Processor(service)
            while not self.stopping.is_set():
                processor.process(protocol, protocol)
        except (ProtocolError, TException, OSError, EOFError, struct.error):
            pass  # the client left, timed out, or broke the protocol: close its connection
        finally:
            with service.lock:  # a client gone without CloseSession must not hold a session slot
                for guid in getattr(service.local, "opened", None) or ():
                    service.sessions.pop(guid, None)
            service.local.login = service.local.opened = None
            transport.close()
            self.slots.release()


def serve(ctx, *, role: str, host: str, port: int, env: Mapping[str, str] | None = None) -> SqlServer:
    """The server of ``c360 sql-server`` for a run context (not started)."""
    from customer360.governance.activation import access_policy

    config = ctx.config
    service = RoleSqlService(ctx.spark, ctx.lakehouse, role=role, policy=access_policy(config),
                             env=os.environ if env is None else env,
                             token_max_hours=config.governance.principals.token_max_hours)
    return SqlServer(service, host=host, port=port)
