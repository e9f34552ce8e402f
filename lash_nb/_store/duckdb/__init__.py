"""The DuckDB store: one file, many sessions, held only while working. See ``store.py``."""

from .store import DuckDBStore

__all__ = ["DuckDBStore"]
