"""Delta Lake storage behind one interface, on delta-spark or delta-rs."""
from customer360.lakehouse.core import (
    HISTORY_SCHEMA,
    LAYERS,
    REGION_COLUMN,
    Constraints,
    Lakehouse,
    StorageEngine,
    WriteResult,
    choose_engine,
    parse_table_name,
)

__all__ = [
    "HISTORY_SCHEMA",
    "LAYERS",
    "REGION_COLUMN",
    "Constraints",
    "Lakehouse",
    "StorageEngine",
    "WriteResult",
    "choose_engine",
    "parse_table_name",
]
