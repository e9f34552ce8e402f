"""What a store given as text names: a PostgreSQL DSN, the in-memory store or a DuckDB file.
One reading for every surface (the API, the magics, the worker's command line, reports), so
none of them takes a path for a DSN another one would have opened."""

from __future__ import annotations

DSN_SCHEMES = ("postgresql://", "postgres://")
MEMORY = ":memory:"


def is_dsn(target: str) -> bool:
    """A PostgreSQL connection string (``postgresql://`` or ``postgres://``)."""
    return target.startswith(DSN_SCHEMES)


def is_duckdb_path(target: str) -> bool:
    """A DuckDB file's path: neither a DSN nor ``":memory:"``."""
    return target != MEMORY and not is_dsn(target)
