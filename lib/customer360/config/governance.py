"""``governance`` (governance.yaml) and ``pii`` (base.yaml): the access policy (roles, PII columns,
Unity Catalog, SQL bounds, principals), erasure, and where the PII hashing key comes from."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from customer360.config.base import TABLE_PATTERN, FrozenModel


class PiiConfig(FrozenModel):
    hash_key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    #: Local runs may fall back to a fixed, publicly known key; never allowed in prod.
    allow_dev_key: bool = False


_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class RoleConfig(FrozenModel):
    #: fnmatch patterns of the tables the role may read, e.g. gold.* or gold.finance_*
    tables: tuple[Annotated[str, Field(pattern=TABLE_PATTERN)], ...] = Field(min_length=1)
    #: PII columns: clear (the vault's value), token (as stored), mask ("***"), drop (column removed)
    pii: Literal["clear", "token", "mask", "drop"]
    #: the Unity Catalog account group that holds the role
    group: str = Field(pattern=_NAME)
    #: may export contact details (c360 export)
    contact_export: bool = False


class UnityCatalogConfig(FrozenModel):
    catalog: str = Field(default="main", pattern=_NAME)
    mask_function: str = Field(default="governance.mask_pii", pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


class ErasureConfig(FrozenModel):
    #: identity attributes whose tokens the tombstone keeps besides the records' keys (a record with
    #: one of them is not ingested again)
    tombstone_attributes: tuple[Literal["email", "loyalty_id"], ...] = ("email",)
    #: checkpoint folders (under <root>/_checkpoints) of other Spark applications unchanged this
    #: long are removed by an erasure; newer ones may belong to a running job and are left (logged)
    checkpoint_idle_hours: float = Field(default=6.0, ge=0, le=24 * 30)


class SqlBoundsConfig(FrozenModel):
    """Bounds on each role query (c360 sql and every other door to role SQL)."""

    max_query_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    #: parentheses and brackets open at once
    max_nesting: int = Field(default=64, ge=4, le=500)
    #: plan and expression nodes of the parsed query
    max_plan_nodes: int = Field(default=5_000, ge=50, le=100_000)
    #: rows one query may return
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    #: seconds before the query's Spark jobs are cancelled
    timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    #: Spark's estimate of the bytes the query's tables hold, checked before it runs
    max_scan_bytes: int = Field(default=10 * 1024**3, ge=1)


class PrincipalsConfig(FrozenModel):
    """Who may take a role (governance/principals.py): a signed token, the lakehouse's owner, OS groups."""

    #: the OS user that owns the local lakehouse folder may take any role (they can read the files anyway)
    owner_is_operator: bool = True
    #: the role of a principal that may take several and names none
    default_role: str = Field(default="analyst", pattern=_NAME)
    #: the longest a role token (c360 governance token) may last
    token_max_hours: float = Field(default=12.0, gt=0, le=24 * 30)


class GovernanceConfig(FrozenModel):
    #: table -> its PII columns (tokens in the tables; the vault holds the values)
    pii_columns: dict[Annotated[str, Field(pattern=TABLE_PATTERN)], tuple[str, ...]] = Field(default_factory=dict)
    roles: dict[Annotated[str, Field(pattern=_NAME)], RoleConfig] = Field(min_length=1)
    unity_catalog: UnityCatalogConfig = Field(default_factory=UnityCatalogConfig)
    erasure: ErasureConfig = Field(default_factory=ErasureConfig)
    sql: SqlBoundsConfig = Field(default_factory=SqlBoundsConfig)
    principals: PrincipalsConfig = Field(default_factory=PrincipalsConfig)

    @model_validator(mode="after")
    def _default_role_is_a_role(self):
        if self.principals.default_role not in self.roles:
            raise ValueError(f"governance.principals.default_role {self.principals.default_role!r} is not one of the roles")
        return self
