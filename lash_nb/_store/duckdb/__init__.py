"""The DuckDB store: one file, many sessions, held only while working. See ``store.py``."""

from .lock import migrate as migrate_duckdb
from .store import DuckDBStore

__all__ = ["DuckDBStore", "migrate_duckdb"]
