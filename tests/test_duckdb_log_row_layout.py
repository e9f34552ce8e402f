"""The layout of a turn's ``commit_log`` rows, pinned (the format a crash recovery and every
fold read back; a speed change to how the rows are built must not move a column).

A user runs a turn with one tool call on a DuckDB file. Its final commit's log row holds
each table's rows as columns, in the tables' and columns' order written out here by hand, with
the values the turn produced: the rows' ``seq`` numbers one after another across the tables,
each usage bucket under its own name, the tool's arguments and output as JSON text.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmPart, LlmResponse, TerminalReason
from lash_nb._core.records import PartKind
from lash_nb._core.usage import TokenUsage
from lash_nb._store.duckdb import commit as commits
from lash_nb.providers import FunctionProvider

BUCKETS = ["input_tokens", "output_tokens", "cache_read_input_tokens",
           "cache_write_input_tokens", "reasoning_output_tokens"]


def _log_bodies(tmp_path: Path) -> list[dict[str, Any]]:
    @tool
    async def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    def model(request: Any) -> LlmResponse:
        last = request.messages[-1]
        if last.parts and last.parts[-1].kind is PartKind.TOOL_RESULT:
            return LlmResponse(parts=(LlmPart.text_part("Sunny."),),
                               usage=TokenUsage(1, 2, 3, 4, 5))
        return LlmResponse(parts=(LlmPart.tool_call("c1", "weather", '{"city": "Oslo"}'),),
                           usage=TokenUsage(10, 20, 30, 40, 50),
                           terminal_reason=TerminalReason.TOOL_USE)

    bodies: list[str] = []
    apply = commits._apply

    class Spy:
        def __init__(self, con: Any) -> None:
            self._con = con

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT INTO commit_log"):
                bodies.append(args[0][3])
            return self._con.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

    async def main() -> None:
        core = (LashCore.builder().provider(FunctionProvider(model)).model("m").tools(weather)
                .store(str(tmp_path / "s.duckdb")).build())
        session = await core.session("s").open()
        await session.turn("weather in Oslo?").run()
        await core.store.close()

    commits._apply = lambda con, hold, c, *, direct: apply(Spy(con), hold, c, direct=direct)
    try:
        asyncio.run(main())
    finally:
        commits._apply = apply
    return [json.loads(b) for b in bodies]


def test_a_turns_log_rows_keep_their_tables_columns_and_values(tmp_path: Path) -> None:
    progress, final = _log_bodies(tmp_path)
    assert list(progress) == ["tables", "turns", "session"]
    nodes = progress["tables"]["graph_nodes"]
    assert list(nodes) == ["session_id", "seq", "node_id", "parent_node_id", "kind", "role",
                           "content", "created_at", "turn_id"]
    assert nodes["seq"] == [1] and nodes["role"] == ["user"] and nodes["kind"] == ["message"]
    assert [t["status"] for t in progress["turns"]] == ["open"]

    tables = final["tables"]
    assert list(tables) == ["graph_nodes", "usage_deltas", "llm_calls", "tool_calls",
                            "turn_events"]
    assert tables["graph_nodes"]["seq"] == [3, 4, 5]  # 2: the open turn row
    assert tables["graph_nodes"]["role"] == ["assistant", "user", "assistant"]

    usage = tables["usage_deltas"]
    assert list(usage) == ["session_id", "turn_id", "seq", "source", "model", "created_at",
                           "estimated", *BUCKETS]
    assert usage["seq"] == [6]
    assert [usage[b] for b in BUCKETS] == [[11], [22], [33], [44], [55]]

    calls = tables["llm_calls"]
    assert list(calls) == ["session_id", "turn_id", "call_id", "model", "protocol_iteration",
                           "attempt", "started_at", "duration_ms", "outcome", "request_id",
                           "served_model", "error", "error_kind", "seq", "estimated", *BUCKETS]
    assert calls["seq"] == [7, 8]
    assert calls["protocol_iteration"] == [0, 1] and calls["attempt"] == [1, 1]
    assert calls["outcome"] == ["completed", "completed"]
    assert calls["estimated"] == [False, False]
    assert [calls[b] for b in BUCKETS] == [[10, 1], [20, 2], [30, 3], [40, 4], [50, 5]]
    assert all(isinstance(d, float) for d in calls["duration_ms"])

    tools = tables["tool_calls"]
    assert list(tools) == ["session_id", "turn_id", "call_id", "name", "args", "output",
                           "success", "duration_ms", "started_at", "interrupted", "seq", "printed"]
    assert tools["printed"] == [None]  # the tool printed nothing (ADR 197)
    assert (tools["call_id"], tools["name"], tools["args"], tools["output"]) == (
        ["c1"], ["weather"], ['{"city":"Oslo"}'], ['"sunny in Oslo"'])
    assert (tools["success"], tools["interrupted"], tools["seq"]) == ([True], [False], [9])

    events = tables["turn_events"]
    assert list(events) == ["session_id", "turn_id", "seq", "activity_id", "correlation_id",
                            "type", "payload", "created_at"]
    assert events["seq"] == list(range(10, 10 + len(events["type"])))
    assert events["type"][0] == "model_request_started"
    assert events["type"][-1] == "turn_outcome"
    assert [json.loads(p)["type"] for p in events["payload"]] == events["type"]
    assert events["correlation_id"][2:4] == ["tool:c1", "tool:c1"]

    assert [t["status"] for t in final["turns"]] == ["committed"]
    assert final["turns"][0]["seq"] == 10 + len(events["type"])
    assert final["session"]["next_seq"] == final["turns"][0]["seq"] + 1
