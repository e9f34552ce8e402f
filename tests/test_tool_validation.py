"""A model's tool arguments are validated and coerced before the tool runs; a bad call comes
back to the model as an error result it can correct, a bounded number of times per turn."""

from __future__ import annotations

import asyncio
import datetime
import json
from dataclasses import dataclass

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


@dataclass
class Point:
    x: int
    y: int


def run(coro):
    return asyncio.run(coro)


def session_with(model, *tools):
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(*tools).build()
    return core.session("s").open()


def test_arguments_are_coerced_to_the_declared_types_before_the_tool_runs():
    received = []

    @tool
    def place(n: int, p: Point, when: datetime.date, pair: tuple[int, str]) -> str:
        received.append((n, p, when, pair))
        return "ok"

    def model(request):
        if request.messages[-1].tool_results():
            return "done"
        return [tool_call("place", json.dumps({"n": "3", "p": {"x": 1, "y": "2"},
                                               "when": "2026-11-30", "pair": ["7", "b"]}), "c1")]

    async def body():
        s = await session_with(model, place)
        out = await s.turn("go").run()
        assert out.result.tool_calls[0].success
    run(body())
    assert received == [(3, Point(1, 2), datetime.date(2026, 11, 30), (7, "b"))]
    n, p, _when, pair = received[0]
    assert type(n) is int and type(p) is Point and type(pair) is tuple


def test_a_bad_call_reaches_the_model_as_an_error_and_the_corrected_call_runs():
    ran = []
    seen = []

    @tool
    def scale(p: Point, factor: int) -> dict:
        ran.append((p, factor))
        return {"x": p.x * factor, "y": p.y * factor}

    def model(request):
        last = request.messages[-1]
        results = last.tool_results()
        if not results:
            return [tool_call("scale", '{"p": {"x": 1}, "factor": "two"}', "bad")]
        seen.append((results[0].content, results[0].is_error))
        if len(seen) == 1:
            return [tool_call("scale", '{"p": {"x": 1, "y": 2}, "factor": 2}', "good")]
        return "scaled"

    async def body():
        s = await session_with(model, scale)
        out = await s.turn("scale it").run()
        assert out.result.assistant_message() == "scaled"
        calls = out.result.tool_calls
        assert [(c.call_id, c.success) for c in calls] == [("bad", False), ("good", True)]
    run(body())
    assert ran == [(Point(1, 2), 2)]  # the bad call never ran
    error, is_error = seen[0]
    assert is_error
    assert "invalid arguments for tool 'scale'" in error
    assert "p.y: Field required" in error
    assert "factor: Input should be a valid integer" in error and "'two'" in error
    assert "2 tries left" in error
    assert json.loads(seen[1][0]) == {"x": 2, "y": 4} and not seen[1][1]


def test_unknown_arguments_are_refused_with_their_name():
    @tool
    def add(a: int, b: int = 0) -> int:
        return a + b

    seen = []

    def model(request):
        results = request.messages[-1].tool_results()
        if results:
            seen.append(results[0].content)
            return "ok"
        return [tool_call("add", '{"a": 1, "bb": 2}', "c1")]

    async def body():
        s = await session_with(model, add)
        await s.turn("add").run()
    run(body())
    assert "bb: Extra inputs are not permitted" in seen[0]


def test_the_retry_bound_stops_a_model_that_keeps_sending_bad_arguments():
    ran = []

    @tool(max_retries=2)
    def count(n: int) -> int:
        ran.append(n)
        return n

    script = {"bad": 3}  # bad calls to send, then one valid call, then an answer

    def model(request):
        if request.messages[-1].tool_results() and script["bad"] < 0:
            return "gave up"
        if script["bad"] > 0:
            script["bad"] -= 1
            return [tool_call("count", '{"n": "many"}', f"b{script['bad']}")]
        script["bad"] -= 1
        return [tool_call("count", '{"n": 1}', "valid")]

    async def body():
        s = await session_with(model, count)
        out = await s.turn("count").run()
        assert out.result.assistant_message() == "gave up"
        # after the bound even the valid call is refused in this turn
        assert [c.success for c in out.result.tool_calls] == [False, False, False, False]
        assert ran == []
        script["bad"] = 0  # a new turn starts with a fresh budget: the valid call runs
        out2 = await s.turn("count again").run()
        assert [c.success for c in out2.result.tool_calls] == [True]
    run(body())
    assert ran == [1]


def test_the_retry_bound_messages_in_order():
    @tool(max_retries=2)
    def count(n: int) -> int:
        return n

    results = []

    def model(request):
        got = request.messages[-1].tool_results()
        if got:
            results.append(got[0].content)
        if len(results) < 3:
            return [tool_call("count", '{"n": "many"}', f"c{len(results)}")]
        return [tool_call("count", '{"n": 1}', "ok")] if len(results) == 3 else "end"

    async def body():
        s = await session_with(model, count)
        await s.turn("count").run()
    run(body())
    assert "1 try left in this turn" in results[0]
    assert "that was the last try: do not call 'count' again in this turn" in results[1]
    assert "is not run again in this turn after 2 calls with invalid arguments" in results[2]
    assert "is not run again in this turn" in results[3]  # a valid call, refused all the same
