"""A tool that returns a pydantic model, a dataclass or a dict holding dates reaches the model
as JSON, as pydantic-ai sends it, not as Python's repr.

One date in a dict used to turn the whole value into ``str()``: the model read
``{'when': datetime.date(2024, 2, 3), ...}`` and the store held that text instead of a JSON
object ``%lash sql`` can take apart; a pydantic model read ``sku='A' qty=2``. Now the function's
return is converted the way pydantic writes JSON (dates as ISO text, enums as their values,
sets as lists); what pydantic cannot write (a DataFrame, a figure) is shown as before.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


class Colour(enum.Enum):
    RED = "red"


class Order(BaseModel):
    sku: str
    qty: int
    when: datetime.date | None = None


@dataclass
class Slot:
    room: str
    starts: datetime.datetime


@tool
def place(sku: str) -> Order:
    """Place an order."""
    return Order(sku=sku, qty=2, when=datetime.date(2024, 2, 3))


@tool
def book(room: str) -> Slot:
    """Book a room."""
    return Slot(room, datetime.datetime(2024, 2, 3, 9, 30))


@tool
def paint(room: str) -> dict[str, Any]:
    """Paint a room."""
    return {"room": room, "colour": Colour.RED, "tags": {"fresh"},
            "done": datetime.date(2024, 2, 4)}


ARGS = {"place": '{"sku": "A"}', "book": '{"room": "blue"}', "paint": '{"room": "blue"}'}


def _turn(tmp_path: Any, name: str) -> tuple[Any, str, Any]:
    seen: list[str] = []

    def model(request: Any) -> Any:
        results = request.messages[-1].tool_results()
        if results:
            seen.append(results[0].content)
            return "done"
        return [tool_call(name, ARGS[name], "c1")]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            place, book, paint).store(str(tmp_path / "s.duckdb")).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        stored = core.store.query("SELECT output FROM tool_calls").iloc[0, 0]
        await core.close()
        return out, stored

    out, stored = asyncio.run(body())
    return out, seen[0], stored


def test_a_pydantic_model_reaches_the_model_as_json(tmp_path: Any) -> None:
    out, sent, stored = _turn(tmp_path, "place")
    assert json.loads(sent) == {"sku": "A", "qty": 2, "when": "2024-02-03"}
    assert out.result.tool_calls[0].output == {"sku": "A", "qty": 2, "when": "2024-02-03"}
    assert json.loads(stored) == {"sku": "A", "qty": 2, "when": "2024-02-03"}


def test_a_dataclass_reaches_the_model_as_json(tmp_path: Any) -> None:
    _out, sent, _stored = _turn(tmp_path, "book")
    assert json.loads(sent) == {"room": "blue", "starts": "2024-02-03T09:30:00"}


def test_a_dict_holding_a_date_an_enum_and_a_set_stays_a_json_object(tmp_path: Any) -> None:
    _out, sent, stored = _turn(tmp_path, "paint")
    expected = {"room": "blue", "colour": "red", "tags": ["fresh"], "done": "2024-02-04"}
    assert json.loads(sent) == expected
    assert json.loads(stored) == expected
