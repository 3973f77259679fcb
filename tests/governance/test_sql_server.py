"""``c360 sql-server``: finance over JDBC. Real clients connect to it on loopback: beeline with Hive's
JDBC driver (both from pyspark's jars) and PyHive. Every statement takes run_sql's door, so the
attack corpus of test_sqlguard is refused over the wire too, and only a role token for the
server's role opens a session."""
from __future__ import annotations

import datetime as dt
import socket
import struct
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from customer360.errors import AccessError, C360Error
from customer360.governance.access import policy_from_mapping
from customer360.governance.principals import issue_token
from customer360.sqlserver import RoleSqlService, SqlServer
from tests.governance import test_sqlguard as guard
from tests.governance.test_sqlguard import ATTACKS, FINANCE_QUERIES, GOVERNANCE, REFLECT

pyhive = pytest.importorskip("pyhive.hive")

lake, policy = guard.lake, guard.policy  # the gate tests' lakehouse and policy (module fixtures)
KEY = {"C360_ROLE_SIGNING_KEY": "server-test-signing-key-0123456789abcdef"}


def token(subject="alice", roles=("finance",), env=KEY, hours=1.0, now=None):
    return issue_token(subject=subject, roles=list(roles), known_roles=GOVERNANCE["roles"], env=env, hours=hours,
                       max_hours=24, now=now)


def start(spark, lake, policy, **kwargs):
    service = RoleSqlService(spark, lake, role="finance", policy=policy, env=KEY, token_max_hours=24)
    server = SqlServer(service, port=0, **kwargs)
    server.start()
    return server


@pytest.fixture(scope="module")
def server(spark, lake, policy):
    server = start(spark, lake, policy)
    yield server
    server.stop()


def connect(server, user="alice", password=None, **kwargs):
    return pyhive.connect(host="127.0.0.1", port=server.port, username=user,
                          password=token() if password is None else password, auth="CUSTOM", **kwargs)


def beeline(server, script: str, *, user="alice", password=None, url_options="") -> str:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    path = Path(server.service.lakehouse.config.root).parent / f"beeline-{time.monotonic_ns()}.sql"
    path.write_text(script)
    done = subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{jars}/*", "org.apache.hive.beeline.BeeLine",
         "-u", f"jdbc:hive2://127.0.0.1:{server.port}/{url_options}", "-n", user, "-p", token() if password is None else password,
         "--force=true", "--outputformat=csv2", "--showHeader=true", "-f", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    return done.stdout + done.stderr


def test_beeline_over_jdbc_runs_finance_queries_and_is_refused_raw_tables_and_escape_functions(spark, server):
    out = beeline(server, "\n".join([
        "!tables",
        "SELECT region, sum(net_revenue) AS revenue, min(month) AS first_month, max(orders) AS most "
        "FROM gold.finance_revenue_monthly GROUP BY region ORDER BY region;",
        f"SELECT {REFLECT};",
        "SELECT java_method('java.lang.System', 'setProperty', 'c360.pwned', 'yes');",
        "SELECT * FROM silver.pii_vault;",
        "SELECT * FROM bronze.crm_customers;",
        "SELECT * FROM parquet.`/tmp`;",
        "SET spark.sql.runSQLOnFiles=true;",
        "ADD JAR /tmp/x.jar;",
        "SELECT email FROM gold.customer_360;",
        "",
    ]))
    assert "Connected to: Spark SQL (customer360 role SQL)" in out and "Driver: Hive JDBC" in out
    tables = [line for line in out.splitlines() if line.startswith(",") and line.endswith("sees it")]
    assert [t.split(",")[1:3] for t in tables] == [["gold", "customer_360"], ["gold", "finance_customer_value"],
                                                  ["gold", "finance_revenue_monthly"]]
    assert "region,revenue,first_month,most\nde,130.00,2026-01-01,7\nus,370.00,2026-01-01,12\n" in out
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: function reflect is not allowed in a role query (state=42000,code=0)",
        "Error: function java_method is not allowed in a role query (state=42000,code=0)",
        "Error: table silver.pii_vault is not available to role finance (state=42000,code=0)",
        "Error: table bronze.crm_customers is not available to role finance (state=42000,code=0)",
        "Error: table parquet./tmp is not available to role finance (state=42000,code=0)",
        "Error: the statement or clause SetCommand is not allowed in a role query (state=42000,code=0)",
        "Error: the statement or clause AddJarsCommand is not allowed in a role query (state=42000,code=0)",
        errors[-1],
    ], out
    assert "UNRESOLVED_COLUMN" in errors[-1] and "first_name" not in errors[-1]
    assert spark._jvm.java.lang.System.getProperty("c360.pwned") is None
    assert "ann@example.com" not in out


def test_beeline_without_sasl_and_with_a_bad_token(server):
    out = beeline(server, "SELECT count(*) AS n FROM gold.customer_360;\n", url_options="default;auth=noSasl")
    assert "n\n4\n" in out
    refused = beeline(server, "SELECT 1;\n", password="not-a-token")
    assert "Peer indicated failure: login refused: the role token in the password is not valid" in refused
    assert "\n1\n" not in refused


def test_every_attack_of_the_corpus_is_refused_over_the_wire(spark, server):
    cursor = connect(server).cursor()
    for sql, message in ATTACKS:
        with pytest.raises(pyhive.OperationalError) as refused:
            cursor.execute(sql)
        text = refused.value.args[0].status.errorMessage
        alternatives = message if isinstance(message, tuple) else (message,)
        assert any(m in text for m in alternatives), (sql, text)
    assert spark._jvm.java.lang.System.getProperty("c360.pwned") is None
    with pytest.raises(pyhive.OperationalError) as refused:
        cursor.execute("SELECT 1 AS a; SELECT 2 AS b")
    assert "cannot parse the query" in refused.value.args[0].status.errorMessage


def test_every_legitimate_finance_query_runs_over_the_wire_with_its_types(server):
    cursor = connect(server).cursor()
    for sql in FINANCE_QUERIES:
        cursor.execute(sql.rstrip(";"))
        assert len(cursor.fetchall()) >= 1, sql
    cursor.execute("SELECT region, sum(net_revenue) AS revenue, min(month) AS first_month, max(orders) AS most, "
                   "avg(orders) AS mean, count(*) AS n FROM gold.finance_revenue_monthly GROUP BY region ORDER BY region")
    assert [d[:2] for d in cursor.description] == [("region", "STRING_TYPE"), ("revenue", "DECIMAL_TYPE"),
                                                   ("first_month", "DATE_TYPE"), ("most", "INT_TYPE"),
                                                   ("mean", "DOUBLE_TYPE"), ("n", "BIGINT_TYPE")]
    assert cursor.fetchall() == [("de", Decimal("130.00"), "2026-01-01", 7, 6.0, 2),
                                 ("us", Decimal("370.00"), "2026-01-01", 12, 31 / 3, 3)]
    cursor.execute("SELECT customer_id, churn_score FROM gold.customer_360 ORDER BY customer_id")
    assert cursor.fetchmany(2) == [("c1", 0.1), ("c2", 0.7)]  # pages of a result
    assert cursor.fetchall() == [("c3", 0.5), ("c4", 0.2)]


@pytest.mark.parametrize("user, password, reason", [
    ("alice", "", "a role token is required as the password"),
    ("alice", "not-a-token", "the role token in the password is not valid"),
    ("bob", None, "the token was issued to another user than 'bob'"),
    ("alice", "analyst", "the token does not grant role finance"),
    ("alice", "expired", "the role token in the password has expired"),
    ("alice", "other-key", "Signature verification failed"),
])
def test_only_a_valid_token_for_the_user_and_role_opens_a_session(server, user, password, reason):
    password = {
        "analyst": token(roles=("analyst", "marketing")),
        "expired": token(now=time.time() - 7200),
        "other-key": token(env={"C360_ROLE_SIGNING_KEY": "another-signing-key-0123456789abcdefgh"}),
    }.get(password, password)
    before = server.service.stats["logins_refused"]
    with pytest.raises(Exception) as refused:
        connect(server, user=user, password=password)
    assert f"login refused: {reason}" in str(refused.value) or reason in str(refused.value)
    assert server.service.stats["logins_refused"] == before + 1


def test_a_session_without_sasl_needs_the_token_too(server):
    with pytest.raises(pyhive.OperationalError, match="a role token is required as the password"):
        pyhive.connect(host="127.0.0.1", port=server.port, username="alice", auth="NOSASL")


def test_a_result_over_the_row_bound_is_refused_not_cut(spark, lake):
    small = policy_from_mapping({**GOVERNANCE, "sql": {"max_rows": 2}})
    server = start(spark, lake, small)
    try:
        out = beeline(server, "SELECT month, region FROM gold.finance_revenue_monthly ORDER BY month, region;\n"
                              "SELECT month, region FROM gold.finance_revenue_monthly ORDER BY month, region LIMIT 2;\n")
        assert ("Error: the result has more than 2 rows (governance.sql.max_rows): aggregate, or add LIMIT 2 to take "
                "only the first ones (state=42000,code=0)") in out
        assert "month,region\n2026-01-01,de\n2026-01-01,us\n" in out and "2 rows selected" in out
    finally:
        server.stop()


def test_a_query_failing_while_it_runs_gets_the_first_line_of_its_error(server, caplog):
    cursor = connect(server).cursor()
    with pytest.raises(pyhive.OperationalError) as failed, caplog.at_level("WARNING", "customer360.sqlserver"):
        cursor.execute("SELECT cast(concat('x', customer_id) AS int) AS n FROM gold.customer_360")
    message = failed.value.args[0].status.errorMessage
    assert message.startswith("the query failed: [CAST_INVALID_INPUT] The value 'xc") and "\n" not in message
    assert "a call failed with CAST_INVALID_INPUT" in caplog.text and "'xc" not in caplog.text  # the log: the class only


def test_a_client_gone_without_closing_frees_its_sessions(server):
    # by key, not by count: an earlier test's client may be closing its own session meanwhile
    before = set(server.service.sessions)
    conn = connect(server)
    mine = set(server.service.sessions) - before
    assert len(mine) == 1
    conn._transport.close()  # the connection drops; no CloseSession is sent
    deadline = time.monotonic() + 10
    while mine & set(server.service.sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mine & set(server.service.sessions) == set()


def test_protocol_garbage_closes_only_that_connection(server):
    for junk in [b"\x01" + struct.pack(">I", 1 << 30), b"\x01\x00\x00\x00\x05GSSAP", b"GET / HTTP/1.1\r\n\r\n",
                 b"\x80\x01\x00\x01" + struct.pack(">I", 1 << 30) + b"x"]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass  # the server answers (a SASL refusal) or just closes; it never hangs
    cursor = connect(server).cursor()
    cursor.execute("SELECT count(*) FROM gold.customer_360")
    assert cursor.fetchall() == [(4,)]


def test_the_server_listens_on_loopback_only_and_needs_the_signing_key(spark, lake, policy):
    service = RoleSqlService(spark, lake, role="finance", policy=policy, env=KEY, token_max_hours=24)
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(C360Error, match="loopback only"):
            SqlServer(service, host=host, port=0)
    with pytest.raises(AccessError, match="C360_ROLE_SIGNING_KEY is not set"):
        RoleSqlService(spark, lake, role="finance", policy=policy, env={}, token_max_hours=24)
    with pytest.raises(AccessError, match="unknown role 'root'"):
        RoleSqlService(spark, lake, role="root", policy=policy, env=KEY, token_max_hours=24)


def test_calls_not_offered_are_refused_by_name(server):
    from customer360.sqlserver import NOT_OFFERED

    for call, what in NOT_OFFERED.items():
        status = getattr(server.service, call)(None).status
        assert (status.statusCode, status.errorMessage) == (3, f"{what} is not offered by c360 sql-server")


def test_dates_in_results_are_iso_text():
    from customer360.sqlserver import _text

    assert _text(dt.datetime(2026, 1, 2, 3, 4, 5), "timestamp") == "2026-01-02 03:04:05"
    assert _text({"b": 1, "a": [1, 2]}, "map") == '{"a": [1, 2], "b": 1}'


def test_the_command_serves_its_role_and_refuses_to_start_without_the_key(spark, tmp_path, monkeypatch, capsys):
    import threading

    from customer360 import cli
    from customer360.config import LakehouseConfig
    from customer360.lakehouse import Lakehouse
    from tests.conftest import CONF_DIR

    # a lakehouse of one finance mart (conf/governance.yaml's PII columns name columns of the real 360)
    mart = Lakehouse(spark, LakehouseConfig(root=str(tmp_path / "lh")))
    mart.write(spark.createDataFrame(guard.VALUE_ROWS, guard.VALUE), "gold.finance_customer_value", mode="overwrite")
    args = ["sql-server", "--port", "0", "--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'lh'}"]
    monkeypatch.delenv("C360_ROLE_TOKEN", raising=False)
    monkeypatch.delenv("C360_ROLE_SIGNING_KEY", raising=False)
    assert cli.main(args) == 2
    assert "C360_ROLE_SIGNING_KEY is not set: c360 sql-server checks its clients' role tokens with it" in capsys.readouterr().err

    monkeypatch.setenv("C360_ROLE_SIGNING_KEY", KEY["C360_ROLE_SIGNING_KEY"])
    serve_forever, answered = SqlServer.serve_forever, []

    def serve_one_client(server):  # serve in the background, answer one client, then stop as Ctrl-C would
        thread = threading.Thread(target=serve_forever, args=(server,), daemon=True)
        thread.start()
        cursor = connect(server).cursor()
        cursor.execute("SELECT count(*) AS n FROM gold.finance_customer_value")
        answered.append(cursor.fetchall())
        server.stop()
        thread.join(10)

    monkeypatch.setattr(SqlServer, "serve_forever", serve_one_client)
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert answered == [[(3,)]]
    assert "role finance on jdbc:hive2://127.0.0.1:" in out
    assert "c360 sql-server stopped: 1 connections, 0 logins refused, 1 statements (0 refused)" in out
