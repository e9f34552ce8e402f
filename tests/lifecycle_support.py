"""Helpers shared by the lifecycle, retention and children tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore, MemoryStore


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def echo_core(store: Any) -> Any:
    """A core whose model answers ``echo: <last message>``."""
    provider = FunctionProvider(lambda r: "echo: " + r.messages[-1].text(), kind="function")
    return LashCore.builder().provider(provider).model("m").store(store).build()


def texts(session: Any) -> list[str]:
    return [m.text() for m in session.read_view().messages()]


STORE_KINDS = ["memory", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def store_for(kind: str, tmp_path: Any, request: Any = None) -> Any:
    """A fresh store of ``kind`` (``postgres`` needs pytest's ``request`` for the server)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "duckdb":
        return DuckDBStore(str(tmp_path / f"{kind}.duckdb"))
    from lash_nb.stores import PostgresStore

    return PostgresStore(request.getfixturevalue("pg_server").create_database())
