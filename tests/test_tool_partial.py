"""A notebook binds a connection into a function with ``functools.partial`` (or keeps its
state in a callable object) and passes that as a tool.

``tool(partial(query, conn=warehouse))`` failed with "its type hints cannot be resolved ...
define the types it names before decorating it" (and ``tool(partial(...))`` without a name
with an AttributeError): neither says what is wrong nor what to do. Now the underlying
function gives the name, the docstring and the types; the bound arguments are not offered
to the model and cannot be replaced by it.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


def query(sql: str, limit: int, conn: Any = None) -> str:
    """Run a read query on the warehouse.

    Args:
        sql: the SELECT to run
        limit: the most rows to return
    """
    return f"{sql} limit {limit} on {conn}"


class CityLookup:
    """Look a city up in the gazetteer."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def __call__(self, city: str) -> str:
        return self.table.get(city, "unknown")


def test_a_partial_is_a_tool_named_and_described_by_its_function_without_the_bound_args() -> None:
    t = tool(functools.partial(query, conn="warehouse-1"))
    m = t.manifest
    assert (m.name, m.description) == ("query", "Run a read query on the warehouse.")
    assert m.input_schema == {
        "type": "object", "additionalProperties": False,
        "properties": {"sql": {"type": "string", "description": "the SELECT to run"},
                       "limit": {"type": "integer", "description": "the most rows to return"}},
        "required": ["sql", "limit"]}


def test_a_callable_object_is_a_tool_named_after_its_class() -> None:
    t = tool(CityLookup({"Oslo": "Norway"}), name="lookup")
    assert t.manifest.description == "Look a city up in the gazetteer."
    assert t.manifest.input_schema["properties"] == {"city": {"type": "string"}}
    assert tool(CityLookup({})).manifest.name == "CityLookup"


def test_a_model_call_runs_the_partial_with_its_bound_connection() -> None:
    replies = iter([[tool_call("query", '{"sql": "select 1", "limit": "5"}', "c1"),
                     tool_call("query", '{"sql": "select 2", "limit": 1, "conn": "evil"}', "c2")],
                    "done"])

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(lambda _r: next(replies))).model(
            "m").tools(functools.partial(query, conn="warehouse-1")).build()
        s = await core.session("s").open()
        out = await s.turn("count").run()
        await core.close()
        return out

    out = asyncio.run(body())
    calls = {c.call_id: c for c in out.result.tool_calls}
    first, second = calls["c1"], calls["c2"]
    assert first.output == "select 1 limit 5 on warehouse-1"
    assert not second.success and "conn" in str(second.output)  # the model cannot rebind it
