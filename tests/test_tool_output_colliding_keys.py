"""A tool's dict whose keys are one text once written as JSON (``{1: "a", "1": "b"}``) loses
no value (docs/adr/0219).

JSON keys are text: ``1`` and ``"1"`` both become ``"1"``, and one value silently replaced the
other. Before, a ``@tool`` returning a count per id, some ids ints and some strings (rows read
from two sources), gave the model, the record and the store ``{"1": "str one"}``: "int one"
was nowhere, and nothing said so. Now such a dict is kept as Python writes it (its ``repr``),
which holds both, as any other value JSON cannot hold is (``str()``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from lash_nb import LashCore, tool
from lash_nb._core.tools import ToolManifest
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._notebook.widgets.snapshot import tool_row_html
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


@tool
def counts() -> dict[Any, str]:
    """Rows per id, as two sources spell the ids."""
    return {1: "int one", "1": "str one", "2": "two"}


@tool
def nested() -> list[Any]:
    """Rows per id inside a list."""
    return [{"source": "a", "rows": {7: "seven as int", "7": "seven as text"}}]


class Plain:
    """A tool provider of its own (not ``@tool``): its output goes in as it is returned."""

    def tool_manifests(self) -> list[ToolManifest]:
        return [ToolManifest("plain", "plain", "Rows per id.", {"type": "object"})]

    async def execute(self, name: str, args: Any, context: Any) -> Any:
        return {3: "three as int", "3": "three as text"}


def _turn(tmp_path: Path, calls: list[Any], *tools: Any) -> tuple[Any, list[str], Any]:
    seen: list[str] = []

    def model(request: Any) -> Any:
        results = request.messages[-1].tool_results()
        if results:
            seen.extend(str(r.content) for r in results)
            return "done"
        return calls

    async def body() -> tuple[Any, Any]:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            *tools).store(str(tmp_path / "x.duckdb")).build()
        s = await core.session("s").open()
        out = await s.turn("count the rows").run()
        stored = core.store.query("SELECT call_id, output FROM tool_calls ORDER BY call_id")
        await core.close()
        return out, stored

    out, stored = asyncio.run(body())
    return out, seen, stored


def test_a_tools_dict_with_keys_one_as_json_keeps_every_value(tmp_path: Path) -> None:
    out, seen, stored = _turn(tmp_path, [tool_call("counts", "{}", "c1"),
                                         tool_call("nested", "{}", "c2"),
                                         tool_call("plain", "{}", "c3")],
                              counts, nested, Plain())
    wanted = {"c1": ("int one", "str one", "two"), "c2": ("seven as int", "seven as text"),
              "c3": ("three as int", "three as text")}
    # what the model read
    assert len(seen) == 3
    for said, values in zip(seen, wanted.values(), strict=True):
        assert all(v in said for v in values), said
    # the store
    for call_id, output in zip(stored["call_id"], stored["output"], strict=True):
        assert all(v in str(output) for v in wanted[call_id]), output
    # the record (the turn's result) and the row the widget and the saved record show
    fold = TurnFold()
    fold.apply_all(out.activities)
    rows = [b for b in fold.blocks if b["kind"] == "tool"]
    for call, row in zip(out.result.tool_calls, rows, strict=True):
        assert all(v in str(call.output) for v in wanted[call.call_id]), call.output
        assert all(v in tool_row_html(row) for v in wanted[call.call_id]), row


def test_a_dict_with_int_keys_that_do_not_collide_is_still_json(tmp_path: Path) -> None:
    @tool
    def ids() -> dict[int, str]:
        """Names per id."""
        return {1: "one", 2: "two"}

    out, seen, stored = _turn(tmp_path, [tool_call("ids", "{}", "c1")], ids)
    assert out.result.tool_calls[0].output == {"1": "one", "2": "two"}  # a guard: as before
    assert seen == ['{"1": "one", "2": "two"}']
    assert json.loads(stored["output"][0]) == {"1": "one", "2": "two"}
