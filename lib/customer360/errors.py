"""Exception types. Every error the package raises on purpose is a ``C360Error``."""


class C360Error(Exception):
    """Base class for errors a user can act on."""


class ConfigError(C360Error):
    """A configuration file, key, value or secret is wrong or missing."""


class EngineUnavailableError(C360Error):
    """The requested storage engine cannot run in this Spark session."""


class JarVersionError(EngineUnavailableError):
    """A JVM jar and its Python package are of different versions."""


class TableNameError(C360Error):
    """A table name is not of the form ``<layer>.<table>``."""


class TableNotFoundError(C360Error):
    """No Delta table exists at the path a table name resolves to."""


class SchemaMismatchError(C360Error):
    """The data's schema does not fit the table's and schema evolution was not allowed."""


class DuplicateKeyError(C360Error):
    """A merge source holds more than one row for the same key."""


class PartitionMismatchError(C360Error):
    """Rows fall outside the partitions (regions) a write was told to replace."""


class UnsupportedTableError(C360Error):
    """The table uses a Delta feature this engine cannot read correctly."""


class ConstraintViolationError(C360Error):
    """Rows break a table's CHECK or NOT NULL constraint; the write committed nothing."""


class AccessError(C360Error):
    """A role, table, query or policy is not allowed or not valid under the access policy."""


class QueryRefused(AccessError):
    """A role's SQL that the allow-list does not accept, or that exceeds a bound."""
