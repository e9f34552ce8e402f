"""Stores (public namespace; re-exports only).

- ``MemoryStore``: this process only (the default).
- ``DuckDBStore(path)``: the embedded default for durable sessions; one file, many sessions.
  ``migrate_duckdb(path)`` moves a file of an older schema version forward.
- ``PostgresStore(dsn)``: a shared server store for many processes and machines.
- ``BlobStore``: what a store implements to keep attachment bytes (all three do).
"""

import typing as _typing

from ._store.base import (
    BlobStore,
    CommitResult,
    Lease,
    LeaseBusy,
    PersistedSession,
    ReadScope,
    RuntimeCommit,
    SessionMeta,
    SessionStore,
    TurnRecord,
)
from ._store.memory import MemoryStore

if _typing.TYPE_CHECKING:  # imported on first use (duckdb / psycopg load with them)
    from ._store.duckdb import DuckDBStore, migrate_duckdb
    from ._store.postgres import PostgresStore

_LAZY = {
    "DuckDBStore": ("._store.duckdb", "DuckDBStore"),
    "migrate_duckdb": ("._store.duckdb", "migrate_duckdb"),
    "PostgresStore": ("._store.postgres", "PostgresStore"),
}

__all__ = [
    "BlobStore",
    "CommitResult",
    "DuckDBStore",
    "Lease",
    "LeaseBusy",
    "MemoryStore",
    "PersistedSession",
    "PostgresStore",
    "ReadScope",
    "RuntimeCommit",
    "SessionMeta",
    "SessionStore",
    "TurnRecord",
    "migrate_duckdb",
]


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, __package__), attr)
    raise AttributeError(f"module 'lash_nb.stores' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
