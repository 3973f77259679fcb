"""Tables by name: the lakehouse's Delta tables registered in the session's catalog.

Every ``<layer>.<table>`` under the root becomes an external table over its path, so
``spark.table("gold.customer_360")``, ``%sql`` cells, ``c360 sql`` and spark-submit jobs address
the same tables by the same names. The names live where the session keeps its catalog: locally
Spark's Derby-backed Hive metastore under ``<root>/_catalog`` (``customer360.session``), on a
cluster its metastore, on Databricks Unity Catalog (``<catalog>.<layer>.<table>`` when
``lakehouse.catalog.name`` is set). Dropping a name never touches the files (the tables are
external); the paths stay the pipeline's source of truth.

Registering needs Delta Lake's JVM classes (Spark must read the table's schema from its log); a
session without them says so and keeps paths only.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from customer360.errors import C360Error
from customer360.session import DELTA_CATALOG

log = logging.getLogger(__name__)


class CatalogError(C360Error):
    """A name cannot be registered (or is registered to another lakehouse's table)."""


def sql_literal(value: str) -> str:
    """A Spark SQL string literal (Spark reads backslash escapes; doubled quotes would concatenate)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _normalize(location: str) -> str:
    """A location comparable with another: ``file:/a/b/``, ``file:///a/b`` and ``/a/b`` agree."""
    text = location.rstrip("/")
    for prefix in ("file://", "file:"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return text if "://" in text else "/" + text.lstrip("/")


def table_location(root: str, name: str) -> str:
    """Where ``<layer>.<table>`` lives, as the catalog should record it (local paths absolute)."""
    layer, table = name.split(".")
    base = root.rstrip("/")
    if "://" not in base and not base.startswith(("file:", "dbfs:")):
        base = str(Path(base).expanduser().resolve())
    return f"{base}/{layer}/{table}"


@dataclass
class CatalogSync:
    """What one sync did, name by name."""

    catalog: str
    registered: list[str] = field(default_factory=list)
    repointed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: (name, reason) of the names left unregistered
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return sorted(self.registered + self.repointed + self.unchanged)

    def describe(self) -> str:
        """The run summary's line."""
        counts = f"{len(self.registered)} registered, {len(self.repointed)} re-pointed, {len(self.unchanged)} unchanged"
        text = f"{len(self.names)} tables named in {self.catalog} ({counts})"
        if self.failed:
            name, reason = self.failed[0]
            text += f"; {len(self.failed)} not registered, e.g. {name}: {reason}"
        return text


class TableCatalog:
    """The lakehouse's names in the session's catalog."""

    def __init__(self, spark: SparkSession, root: str, *, catalog_name: str | None = None):
        self.spark = spark
        self.root = root.rstrip("/")
        self.catalog_name = catalog_name

    # ------------------------------------------------------------------ what the session offers

    def kind(self) -> str:
        """``unity`` (a named catalog), ``hive`` (a persistent metastore) or ``memory``."""
        if self.catalog_name:
            return "unity"
        try:
            implementation = self.spark.conf.get("spark.sql.catalogImplementation", "in-memory")
        except Exception:  # noqa: BLE001 - Connect may hide static settings: a cluster's catalog persists
            implementation = "hive"
        return "memory" if implementation == "in-memory" else "hive"

    def describe(self) -> str:
        kind = self.kind()
        if kind == "unity":
            return f"Unity Catalog catalog {self.catalog_name}"
        if kind == "memory":
            return "the session's in-memory catalog"
        warehouse = self.spark.conf.get("spark.sql.warehouse.dir", "")
        return f"the Hive metastore ({warehouse})" if warehouse else "the Hive metastore"

    def unavailable(self) -> str | None:
        """Why names cannot be registered in this session, or None when they can."""
        import os

        if "DATABRICKS_RUNTIME_VERSION" in os.environ:
            return None
        try:
            catalog = self.spark.conf.get("spark.sql.catalog.spark_catalog", "")
        except Exception:  # noqa: BLE001
            catalog = ""
        if catalog != DELTA_CATALOG and not self.catalog_name:
            return (
                "table names need Delta Lake's JVM classes (run `make jars`); this session reads the "
                "tables by path only"
            )
        return None

    # ------------------------------------------------------------------ names

    def qualified(self, name: str) -> str:
        """``gold.customer_360`` -> ``gold.customer_360``, or ``<catalog>.gold.customer_360``."""
        layer, table = name.split(".")
        parts = ([self.catalog_name] if self.catalog_name else []) + [layer, table]
        return ".".join(f"`{p}`" for p in parts)

    def location(self, name: str) -> str | None:
        """Where the catalog says ``name`` lives; None when the name is not registered."""
        layer, table = name.split(".")
        jsession = getattr(self.spark, "_jsparkSession", None)
        if jsession is not None and not self.catalog_name:
            external = jsession.sessionState().catalog().externalCatalog()
            if not external.databaseExists(layer) or not external.tableExists(layer, table):
                return None
            return str(external.getTable(layer, table).location().toString())
        qualified = self.qualified(name)
        if not self.spark.catalog.tableExists(qualified.replace("`", "")):
            return None
        rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {qualified}").collect()
        return next((str(r["data_type"]) for r in rows if r["col_name"] == "Location"), None)

    def statements(self, name: str, path: str) -> list[str]:
        """The SQL that registers ``name`` over ``path`` (also what Databricks users may run)."""
        layer = name.split(".")[0]
        schema = ".".join(f"`{p}`" for p in ([self.catalog_name] if self.catalog_name else []) + [layer])
        return [
            f"CREATE SCHEMA IF NOT EXISTS {schema}",
            f"CREATE TABLE IF NOT EXISTS {self.qualified(name)} USING DELTA LOCATION {sql_literal(path)}",
        ]

    def register(self, name: str, *, location_of: Callable[[str], str] | None = None) -> str:
        """Register ``name`` over its path: ``registered``, ``unchanged`` or ``repointed``.

        A name registered over another path is re-pointed only in a session-private (in-memory)
        catalog; in a shared metastore that would take the name from another lakehouse, so it is
        refused with both paths named."""
        path = (location_of or (lambda n: table_location(self.root, n)))(name)
        current = self.location(name)
        if current is not None and _normalize(current) == _normalize(path):
            return "unchanged"
        outcome = "registered"
        if current is not None:
            if self.kind() != "memory":
                raise CatalogError(
                    f"{self.qualified(name)} names the table at {current}, not this lakehouse's {path}; "
                    f"drop that name or use another catalog (lakehouse.catalog.name)"
                )
            self.spark.sql(f"DROP TABLE {self.qualified(name)}")  # external: the files stay
            outcome = "repointed"
        for statement in self.statements(name, path):
            self.spark.sql(statement)
        return outcome

    def sync(self, names: Iterable[str], *, location_of: Callable[[str], str] | None = None) -> CatalogSync:
        """Register every name in ``names``; a name that fails is reported, the others go on."""
        result = CatalogSync(catalog=self.describe())
        reason = self.unavailable()
        names = list(names)
        if reason is not None:
            result.failed.extend((n, reason) for n in names)
            return result
        for name in names:
            try:
                outcome = self.register(name, location_of=location_of)
            except CatalogError as exc:
                result.failed.append((name, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - the metastore's own refusal, reported by name
                result.failed.append((name, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
                continue
            getattr(result, outcome).append(name)
        if result.failed:
            log.warning("catalog: %s", result.describe())
        return result

    def use(self) -> None:
        """Make two-level names resolve in the configured catalog (``USE CATALOG``)."""
        if self.catalog_name:
            self.spark.catalog.setCurrentCatalog(self.catalog_name)

