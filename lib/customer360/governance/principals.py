"""Who is asking, and which roles they may take: a role comes from an identity, never from the
caller's say-so.

Three sources, checked in this order:

* a **signed token** in ``C360_ROLE_TOKEN``: a JWT (HS256) issued by ``c360 governance token``
  with the key in ``C360_ROLE_SIGNING_KEY`` (from the environment or a secret scope, never from a
  file of the repo); it names its subject, the roles it grants and when it expires. A service that
  runs queries for others (the JDBC endpoint, the API) passes its client's token, so the token
  decides even when the process itself is the operator;
* the **operator**: the OS user that owns the local lakehouse folder. They can read every file with
  any Parquet reader, so a role is no boundary for them: they may take any role, explicitly with
  ``--role`` (``governance.principals.default_role`` when they name none). Set
  ``governance.principals.owner_is_operator: false`` to treat them like anyone else;
* **OS groups**: the roles whose ``group`` (conf/governance.yaml) is one of the user's groups.

Nobody else gets a role. The policy (roles, groups, these settings) comes from the configuration
files only: ``--set governance...`` is refused by ``load_config``.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from customer360.errors import AccessError

TOKEN_ENV = "C360_ROLE_TOKEN"
SIGNING_KEY_ENV = "C360_ROLE_SIGNING_KEY"
ISSUER = "customer360"
AUDIENCE = "c360-role-sql"
ALGORITHM = "HS256"
#: a shorter HMAC key can be guessed offline from one token
MIN_KEY_BYTES = 32
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


@dataclass(frozen=True)
class Principal:
    """An identity and the roles it may take."""

    name: str
    roles: tuple[str, ...]
    #: token, operator or os-groups
    source: str
    detail: str = ""

    def describe(self) -> str:
        how = {"token": "a signed token", "operator": "the owner of the lakehouse folder",
               "os-groups": "OS groups"}[self.source]
        return f"{self.name} ({how}{': ' + self.detail if self.detail else ''})"


def _signing_key(env: Mapping[str, str], *, issuing: bool = False) -> bytes:
    key = env.get(SIGNING_KEY_ENV, "")
    if not key and issuing:
        raise AccessError(f"{SIGNING_KEY_ENV} is not set: role tokens are signed with it (a secret of the operator)")
    if not key:
        raise AccessError(f"{TOKEN_ENV} is set but {SIGNING_KEY_ENV} is not: a role token cannot be checked without its key")
    raw = key.encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise AccessError(f"{SIGNING_KEY_ENV} has {len(raw)} bytes; at least {MIN_KEY_BYTES} are required")
    return raw


def issue_token(*, subject: str, roles: list[str] | tuple[str, ...], known_roles, env: Mapping[str, str],
                hours: float, max_hours: float, now: float | None = None) -> str:
    """A signed token for ``subject`` granting ``roles`` for ``hours`` (``c360 governance token``)."""
    import jwt

    if not isinstance(subject, str) or not _SUBJECT_RE.match(subject):
        raise AccessError(f"token subject {subject!r} must match {_SUBJECT_RE.pattern}")
    unknown = sorted(set(roles) - set(known_roles))
    if not roles or unknown:
        raise AccessError(f"token roles must be among {', '.join(sorted(known_roles))}; got {', '.join(roles) or 'none'}")
    if not 0 < hours <= max_hours:
        raise AccessError(f"a token may last more than 0 and at most {max_hours:g} hours (governance.principals.token_max_hours), not {hours:g}")
    issued = int(now if now is not None else time.time())
    claims = {"sub": subject, "roles": sorted(set(roles)), "iss": ISSUER, "aud": AUDIENCE,
              "iat": issued, "nbf": issued, "exp": issued + int(hours * 3600)}
    return jwt.encode(claims, _signing_key(env, issuing=True), algorithm=ALGORITHM)


def principal_from_token(token: str, *, known_roles, env: Mapping[str, str], max_hours: float,
                         source: str = TOKEN_ENV) -> Principal:
    """The principal a signed token names; ``source`` says in errors where the token came from
    (an environment variable, or a client's password on the JDBC endpoint)."""
    import jwt

    key = _signing_key(env)
    try:
        claims = jwt.decode(
            token.strip(), key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["sub", "roles", "iat", "exp", "nbf"]},
        )
    except jwt.ExpiredSignatureError:
        raise AccessError(f"the role token in {source} has expired") from None
    except jwt.InvalidTokenError as exc:
        raise AccessError(f"the role token in {source} is not valid: {exc}") from None
    subject, roles = claims["sub"], claims["roles"]
    if not isinstance(subject, str) or not _SUBJECT_RE.match(subject):
        raise AccessError(f"the role token in {source} has an invalid subject")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise AccessError(f"the role token in {source} grants no roles")
    if claims["exp"] - claims["iat"] > max_hours * 3600:
        raise AccessError(f"the role token in {source} lasts longer than {max_hours:g} hours (governance.principals.token_max_hours)")
    unknown = sorted(set(roles) - set(known_roles))
    if unknown:
        raise AccessError(f"the role token in {source} grants unknown role(s) {', '.join(unknown)}")
    return Principal(subject, tuple(sorted(set(roles))), "token", f"expires {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(claims['exp']))}")


def _os_user() -> tuple[int, str, set[str]]:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    groups = set()
    for gid in {os.getegid(), *os.getgroups()}:
        try:
            groups.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return uid, name, groups


def lakehouse_owner(root: str) -> int | None:
    """The uid that owns a local lakehouse folder (None for a URI or a folder not there yet)."""
    if "://" in root or root.startswith("dbfs:"):
        return None
    path = Path(root[len("file:"):] if root.startswith("file:") else root)
    while not path.exists() and path != path.parent:
        path = path.parent  # a lakehouse not created yet: whoever may create it
    try:
        return path.stat().st_uid
    except OSError:
        return None


def principal(*, role_groups: Mapping[str, str], env: Mapping[str, str], lakehouse_root: str,
              owner_is_operator: bool, token_max_hours: float, os_user=None) -> Principal:
    """Who runs this command. ``role_groups`` maps each role to its group; ``os_user`` (uid, name,
    groups) is for tests."""
    if env.get(TOKEN_ENV):
        return principal_from_token(env[TOKEN_ENV], known_roles=role_groups, env=env, max_hours=token_max_hours)
    uid, name, groups = os_user or _os_user()
    if owner_is_operator and lakehouse_owner(lakehouse_root) == uid:
        return Principal(name, tuple(sorted(role_groups)), "operator")
    roles = tuple(sorted(role for role, group in role_groups.items() if group in groups))
    shown = sorted(groups & set(role_groups.values()))
    return Principal(name, roles, "os-groups", ", ".join(shown) or "none of the roles' groups")


def choose_role(who: Principal, requested: str | None, *, default_role: str) -> str:
    """The role this command runs as: ``requested`` if ``who`` may take it; with none requested,
    the principal's only role, or ``default_role`` when it may take that."""
    if not who.roles:
        raise AccessError(f"{who.describe()} may take no role: ask for a role token ({TOKEN_ENV}) or membership of a role's group")
    if requested is None:
        if len(who.roles) == 1:
            return who.roles[0]
        if default_role in who.roles:
            return default_role
        raise AccessError(f"{who.describe()} may take roles {', '.join(who.roles)}: choose one with --role")
    if requested not in who.roles:
        raise AccessError(f"role {requested} is not granted to {who.describe()}; granted: {', '.join(who.roles)}")
    return requested


def current_principal(config, *, env: Mapping[str, str] | None = None, os_user=None) -> Principal:
    """The principal running this command, by the configuration's policy."""
    governance = config.governance
    return principal(
        role_groups={name: role.group for name, role in governance.roles.items()},
        env=os.environ if env is None else env, lakehouse_root=config.lakehouse.root,
        owner_is_operator=governance.principals.owner_is_operator,
        token_max_hours=governance.principals.token_max_hours, os_user=os_user,
    )


def resolve_role(config, requested: str | None, *, env: Mapping[str, str] | None = None,
                 os_user=None) -> tuple[Principal, str]:
    """The principal running this command and the role it runs as."""
    known = config.governance.roles
    if requested is not None and requested not in known:
        raise AccessError(f"unknown role {requested!r}; known roles: {', '.join(sorted(known))}")
    who = current_principal(config, env=env, os_user=os_user)
    return who, choose_role(who, requested, default_role=config.governance.principals.default_role)
