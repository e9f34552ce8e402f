"""A model reply whose tool calls share one id (or have none) still pairs every result with
its own call.

Some OpenAI-compatible servers (DeepSeek, GLM, Kimi, local servers) give parallel tool calls
of one reply the same id. The results were kept by id, so the model read the last call's
result for every call (``look("/a")`` answered "saw /b"), the record held two rows under one
id, and with ``approval="ask"`` the first call's question was hidden by the second: it could
not be answered and the turn waited until stopped. A repeated or empty id is made unique
when the reply arrives, so the stored assistant message, the results and the record agree.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from local_openai import chat_script

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider, OpenAICompatible
from lash_nb.stores import DuckDBStore
from lash_nb.testing import LoopbackServer, tool_call

RAN: list[str] = []


@tool
def look(path: str) -> str:
    """Look at a file."""
    RAN.append(path)
    return f"saw {path}"


@tool(approval="ask")
def remove(path: str) -> str:
    """Remove a file."""
    RAN.append(path)
    return f"removed {path}"


# two parallel calls of one reply, both with the id "call_0" (as DeepSeek and GLM send them)
SAME_ID = chat_script(
    "two-calls-one-id",
    '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_0","type":"function",'
    '"function":{"name":"look","arguments":"{\\"path\\": \\"/a\\"}"}}]}}]}',
    '{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_0","type":"function",'
    '"function":{"name":"look","arguments":"{\\"path\\": \\"/b\\"}"}}]}}]}',
    '{"choices":[{"finish_reason":"tool_calls","delta":{}}]}')
TEXT = chat_script("answers", '{"choices":[{"delta":{"content":"Both seen."}}]}',
                    '{"choices":[{"finish_reason":"stop","delta":{}}]}')


def test_two_calls_with_one_id_each_send_the_model_their_own_result(tmp_path: Path) -> None:
    RAN.clear()

    async def body() -> tuple[Any, list[Any], Any]:
        with LoopbackServer([SAME_ID, TEXT], time_scale=0) as srv:
            store = DuckDBStore(tmp_path / "ids.duckdb", idle_release_s=None)
            provider = OpenAICompatible(base_url=srv.base_url, api_key="k-test-000000",
                                        model="deepseek-chat")
            core = LashCore.builder().provider(provider).tools(look).store(store).build()
            s = await core.session("s").open()
            out = await s.turn("look at /a and /b").run()
            rows = store.query("SELECT call_id, args FROM tool_calls ORDER BY call_id")
            await core.close()
            assert srv.errors == []
            return out, [r.body for r in srv.requests], rows

    out, requests, rows = asyncio.run(body())
    assert str(out.result.outcome) == "finished: assistant_message"
    assert sorted(RAN) == ["/a", "/b"]
    by_id = {c.call_id: (c.args["path"], c.output) for c in out.result.tool_calls}
    assert sorted(by_id.values()) == [("/a", "saw /a"), ("/b", "saw /b")]  # two ids, two rows
    assert len(rows) == 2 and rows["call_id"].nunique() == 2
    # the request after the tools: each tool message answers the call it names
    sent = requests[1]["messages"]
    [assistant] = [m for m in sent if m["role"] == "assistant"]
    asked = {c["id"]: json.loads(c["function"]["arguments"])["path"] for c in assistant["tool_calls"]}
    assert sorted(asked.values()) == ["/a", "/b"] and len(asked) == 2
    answers = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert answers == {cid: f"saw {path}" for cid, path in asked.items()}


class Script:
    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.results: list[str] = []

    def __call__(self, request: Any) -> Any:
        self.results.extend(r.content for r in request.messages[-1].tool_results())
        return self.responses.pop(0) if self.responses else "done"


def test_two_ask_calls_with_one_id_are_two_questions_and_both_can_be_answered() -> None:
    RAN.clear()
    model = Script([tool_call("remove", '{"path": "/a"}', "c1"),
                    tool_call("remove", '{"path": "/b"}', "c1")])

    async def body() -> tuple[Any, list[Any]]:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(remove).build()
        s = await core.session("s").open()
        turn = asyncio.ensure_future(s.turn("remove /a and /b").run())
        first = await s.approvals().next(timeout=30)
        for _ in range(3000):  # both questions open (the calls run concurrently)
            if len(s.approvals().pending()) == 2:
                break
            await asyncio.sleep(0.01)
        pending = s.approvals().pending()
        asked = sorted(r.args["path"] for r in pending)
        if asked != ["/a", "/b"]:
            s.cancel_running_turns()
            await turn
            await core.close()
            return None, asked
        assert first in pending
        for r in pending:
            if r.args["path"] == "/a":
                r.approve()
            else:
                r.deny("keep /b")
        out = await asyncio.wait_for(turn, 30)  # not waiting for a question nobody can see
        await core.close()
        return out, asked

    out, asked = asyncio.run(body())
    assert asked == ["/a", "/b"]
    assert str(out.result.outcome) == "finished: assistant_message"
    assert RAN == ["/a"]
    calls = {c.args["path"]: c for c in out.result.tool_calls}
    assert calls["/a"].output == "removed /a" and calls["/a"].approval.decision == "approved"
    assert calls["/b"].approval.decision == "denied" and "keep /b" in str(calls["/b"].output)
    assert sorted(model.results)[0] == "removed /a"
    assert len(model.results) == 2 and "keep /b" in sorted(model.results)[1]


# a reply whose tool call has no id (some local servers): lash_nb names it
NO_ID = chat_script(
    "one-call-no-id",
    '{"choices":[{"delta":{"tool_calls":[{"index":0,"type":"function",'
    '"function":{"name":"look","arguments":"{\\"path\\": \\"/a\\"}"}}]}}]}',
    '{"choices":[{"finish_reason":"tool_calls","delta":{}}]}')


def test_calls_without_ids_in_two_turns_get_ids_unique_in_the_session(tmp_path: Path) -> None:
    """A server that sends no ids, two turns: the session's history must not hold two calls
    under one id (a provider the session switches to later, Anthropic among them, refuses a
    conversation whose tool_use ids repeat)."""
    RAN.clear()

    async def body() -> list[str]:
        with LoopbackServer([NO_ID, TEXT, NO_ID, TEXT], time_scale=0) as srv:
            provider = OpenAICompatible(base_url=srv.base_url, api_key="k-test-000000",
                                        model="llama")
            core = LashCore.builder().provider(provider).tools(look).build()
            s = await core.session("s").open()
            for _ in range(2):
                out = await s.turn("look at /a").run()
                assert str(out.result.outcome) == "finished: assistant_message"
            ids = [p.tool_call_id for m in s.read_view().messages() for p in m.parts
                   if p.kind.value == "tool_call"]
            await core.close()
            assert srv.errors == []
            return ids

    ids = asyncio.run(body())
    assert len(ids) == 2 and len(set(ids)) == 2, ids
    assert all(ids)
