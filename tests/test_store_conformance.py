"""The public store conformance suite, run against every store lash_nb ships."""

from __future__ import annotations

from pathlib import Path

from lash_nb._store.duckdb import DuckDBStore
from lash_nb._store.memory import MemoryStore
from lash_nb.testing.conformance import StoreOpener, store_conformance_tests


def memory_factory(folder: Path) -> StoreOpener:
    store = MemoryStore()
    return lambda: store


def duckdb_factory(folder: Path) -> StoreOpener:
    return lambda: DuckDBStore(folder / "lash.duckdb", idle_release_s=None)


globals().update(store_conformance_tests(memory_factory, prefix="memory"))
globals().update(store_conformance_tests(duckdb_factory, prefix="duckdb"))
