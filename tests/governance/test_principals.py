"""Roles come from an identity (governance/principals.py): a signed token, the lakehouse folder's
owner, or OS groups; never from the caller's say-so."""
from __future__ import annotations

import base64
import json
import os
import time
from types import SimpleNamespace

import jwt
import pytest

from customer360 import cli
from customer360.config import load_config
from customer360.errors import AccessError, ConfigError
from customer360.governance.principals import (
    AUDIENCE,
    ISSUER,
    SIGNING_KEY_ENV,
    TOKEN_ENV,
    current_principal,
    issue_token,
    lakehouse_owner,
    principal_from_token,
    resolve_role,
)
from customer360.sqlshell import SqlSession
from tests.conftest import CONF_DIR

KEY = "k" * 40
ROLES = {"analyst": "c360_analysts", "finance": "c360_finance", "marketing": "c360_marketing"}
STRANGER = 2_000_000_000  # a uid that owns nothing here


@pytest.fixture
def config(tmp_path):
    return load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}"])


def token_env(roles, *, subject="alice", hours=1.0, now=None, key=KEY):
    env = {SIGNING_KEY_ENV: key}
    env[TOKEN_ENV] = issue_token(subject=subject, roles=roles, known_roles=ROLES, env=env, hours=hours, max_hours=12, now=now)
    return env


def test_a_token_grants_its_roles_and_nothing_else(config):
    env = token_env(["finance"])
    who, role = resolve_role(config, None, env=env)
    assert (who.name, who.roles, who.source, role) == ("alice", ("finance",), "token", "finance")
    with pytest.raises(AccessError, match=r"role marketing is not granted to alice \(a signed token: expires "):
        resolve_role(config, "marketing", env=env)


def test_the_token_decides_even_for_the_lakehouse_owner(config):
    # a service running as the owner passes its client's token: the client's roles apply
    env = token_env(["finance"])
    assert current_principal(config, env=env).roles == ("finance",)
    assert current_principal(config, env={}).source == "operator"
    assert current_principal(config, env={TOKEN_ENV: ""}).source == "operator"  # an empty variable is no token


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: token_env(["finance"], now=time.time() - 7200)[TOKEN_ENV], "has expired"),
        (lambda: token_env(["finance"], key="x" * 40)[TOKEN_ENV], "not valid: Signature verification failed"),
        (lambda: "not.a.token", "not valid"),
        (lambda: jwt.encode({"sub": "alice", "roles": ["marketing"], "iss": ISSUER, "aud": AUDIENCE,
                             "iat": int(time.time()), "nbf": int(time.time()), "exp": int(time.time()) + 60},
                            key=None, algorithm="none"), "not valid"),
        (lambda: jwt.encode({"sub": "alice", "roles": ["root"], "iss": ISSUER, "aud": AUDIENCE, "iat": int(time.time()),
                             "nbf": int(time.time()), "exp": int(time.time()) + 60}, KEY, algorithm="HS256"),
         "grants unknown role"),
        (lambda: jwt.encode({"sub": "alice", "roles": ["finance"], "iss": ISSUER, "aud": AUDIENCE, "iat": int(time.time()),
                             "nbf": int(time.time()), "exp": int(time.time()) + 30 * 3600}, KEY, algorithm="HS256"),
         "lasts longer than 12 hours"),
        (lambda: jwt.encode({"sub": "alice", "roles": ["finance"], "iss": "someone-else", "aud": AUDIENCE,
                             "iat": int(time.time()), "nbf": int(time.time()), "exp": int(time.time()) + 60}, KEY,
                            algorithm="HS256"), "Invalid issuer"),
        (lambda: jwt.encode({"sub": "alice", "roles": ["finance"], "iss": ISSUER, "aud": AUDIENCE}, KEY, algorithm="HS256"),
         'is missing the "'),
        (lambda: jwt.encode({"sub": "alice", "roles": "finance marketing", "iss": ISSUER, "aud": AUDIENCE,
                             "iat": int(time.time()), "nbf": int(time.time()), "exp": int(time.time()) + 60}, KEY,
                            algorithm="HS256"), "grants no roles"),
    ],
    ids=["expired", "other-key", "garbage", "alg-none", "unknown-role", "too-long", "issuer", "no-exp", "roles-string"],
)
def test_bad_tokens_are_refused(make, message):
    token = make()
    with pytest.raises(AccessError, match=message):
        principal_from_token(token, known_roles=ROLES, env={SIGNING_KEY_ENV: KEY}, max_hours=12)


def test_a_tampered_token_is_refused():
    token = token_env(["finance"])[TOKEN_ENV]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["marketing"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(AccessError, match="Signature verification failed"):
        principal_from_token(f"{header}.{forged}.{signature}", known_roles=ROLES, env={SIGNING_KEY_ENV: KEY}, max_hours=12)


def test_the_signing_key_must_be_set_and_long():
    with pytest.raises(AccessError, match=f"{TOKEN_ENV} is set but {SIGNING_KEY_ENV} is not"):
        principal_from_token("a.b.c", known_roles=ROLES, env={}, max_hours=12)
    with pytest.raises(AccessError, match=f"{SIGNING_KEY_ENV} is not set: role tokens are signed with it"):
        issue_token(subject="a", roles=["finance"], known_roles=ROLES, env={}, hours=1, max_hours=12)
    with pytest.raises(AccessError, match="has 5 bytes; at least 32 are required"):
        issue_token(subject="a", roles=["finance"], known_roles=ROLES, env={SIGNING_KEY_ENV: "short"}, hours=1, max_hours=12)
    with pytest.raises(AccessError, match="at most 12 hours"):
        token_env(["finance"], hours=13)
    with pytest.raises(AccessError, match="token roles must be among"):
        token_env(["root"])
    with pytest.raises(AccessError, match="token subject"):
        token_env(["finance"], subject="alice; DROP")


def test_os_groups_grant_the_roles_whose_group_they_are(config):
    finance_user = (STRANGER, "bob", {"staff", "c360_finance"})
    who, role = resolve_role(config, None, env={}, os_user=finance_user)
    assert (who.source, who.roles, role) == ("os-groups", ("finance",), "finance")
    with pytest.raises(AccessError, match=r"role marketing is not granted to bob \(OS groups: c360_finance\); granted: finance"):
        resolve_role(config, "marketing", env={}, os_user=finance_user)
    both = (STRANGER, "carol", {"c360_finance", "c360_marketing"})
    with pytest.raises(AccessError, match="may take roles finance, marketing: choose one with --role"):
        resolve_role(config, None, env={}, os_user=both)
    assert resolve_role(config, "marketing", env={}, os_user=both)[1] == "marketing"
    with pytest.raises(AccessError, match=r"dave \(OS groups: none of the roles' groups\) may take no role"):
        resolve_role(config, None, env={}, os_user=(STRANGER, "dave", {"staff"}))


def test_the_lakehouse_owner_is_the_operator_and_may_take_any_role(config, tmp_path):
    me = (os.geteuid(), "me", set())
    who, role = resolve_role(config, None, env={}, os_user=me)
    assert (who.source, who.roles, role) == ("operator", ("analyst", "finance", "marketing"), "analyst")
    assert resolve_role(config, "marketing", env={}, os_user=me)[1] == "marketing"
    strict = load_config("local", conf_dir=CONF_DIR, overrides=[f"lakehouse.root={tmp_path / 'lh'}"])
    strict = strict.model_copy(update={"governance": strict.governance.model_copy(
        update={"principals": strict.governance.principals.model_copy(update={"owner_is_operator": False})})})
    with pytest.raises(AccessError, match="may take no role"):
        resolve_role(strict, None, env={}, os_user=me)


def test_lakehouse_owner_of_paths_and_uris(tmp_path):
    assert lakehouse_owner(str(tmp_path / "not" / "there")) == os.geteuid()  # its nearest existing parent
    assert lakehouse_owner(f"file:{tmp_path}") == os.geteuid()
    assert lakehouse_owner("s3a://bucket/lakehouse") is None
    assert lakehouse_owner("dbfs:/lakehouse") is None


def test_sql_sessions_and_exports_refuse_a_role_the_identity_lacks(config, tmp_path):
    env = token_env(["finance"])
    with pytest.raises(AccessError, match="role marketing is not granted to alice"):
        SqlSession(SimpleNamespace(config=config), role="marketing", env=env)
    session = SqlSession(SimpleNamespace(config=config), env=env)
    assert (session.role, session.principal.name) == ("finance", "alice")

    from customer360.governance.activation import ExportError, export

    with pytest.raises(ExportError, match="role marketing is not granted to alice"):
        export(SimpleNamespace(config=config, lakehouse=None), segment="s", fmt="csv", out=str(tmp_path / "x"),
               role="marketing", env=env)


def test_the_cli_takes_the_role_from_the_token(monkeypatch, tmp_path, capsys):
    args = ["--conf-dir", str(CONF_DIR), "--set", f"lakehouse.root={tmp_path / 'lh'}"]
    monkeypatch.setenv(SIGNING_KEY_ENV, KEY)
    assert cli.main(["governance", "token", "--subject", "alice", "--role", "finance", "--hours", "2", *args]) == 0
    token = capsys.readouterr().out.strip()
    monkeypatch.setenv(TOKEN_ENV, token)
    assert cli.main(["governance", "whoami", *args]) == 0
    assert capsys.readouterr().out.startswith("alice (a signed token: expires ")
    assert cli.main(["sql", "--role", "marketing", "SELECT 1", *args]) == 2
    assert "role marketing is not granted to alice" in capsys.readouterr().err
    assert cli.main(["governance", "token", "--subject", "bob", "--role", "marketing", "--hours", "48", *args]) == 2
    assert "at most 12 hours" in capsys.readouterr().err
    monkeypatch.delenv(SIGNING_KEY_ENV)
    assert cli.main(["sql", "SELECT 1", *args]) == 2
    assert f"{TOKEN_ENV} is set but {SIGNING_KEY_ENV} is not" in capsys.readouterr().err


def test_identity_settings_are_validated_and_not_settable(tmp_path):
    with pytest.raises(ConfigError, match="governance"):
        load_config("local", conf_dir=CONF_DIR, overrides=["governance.principals.owner_is_operator=false"])
