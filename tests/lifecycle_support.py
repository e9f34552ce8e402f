"""Helpers shared by the lifecycle, retention and children tests."""

from __future__ import annotations

import asyncio
from typing import Any

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


def store_for(kind: str, tmp_path: Any) -> Any:
    return MemoryStore() if kind == "memory" else DuckDBStore(str(tmp_path / f"{kind}.duckdb"))
