"""Runtime faults: tools that exit or interrupt, outputs that cannot be shown, lost leases,
batches that keep failing, re-runs after a killed worker, runaway tool loops."""

from __future__ import annotations

import asyncio

import pytest

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider, RetryPolicy
from lash_nb.stores import DuckDBStore
from lash_nb.testing import tool_call


def run(coro):
    return asyncio.run(coro)


def core_with(provider, *tools, store=None, **kw):
    b = LashCore.builder().provider(provider).model("m-test").retry_policy(
        RetryPolicy(max_attempts=3, base_delay_s=0.0))
    if tools:
        b = b.tools(*tools)
    if store is not None:
        b = b.store(store)
    if "max_turns" in kw:
        b = b.max_turns(kw["max_turns"])
    if "lease_ttl_ms" in kw:
        b = b.lease_ttl_ms(kw["lease_ttl_ms"])
    return b.build()


@pytest.fixture(params=["memory", "duckdb"])
def store_target(request, tmp_path):
    if request.param == "memory":
        return None
    return str(tmp_path / "lash.duckdb")


def _call_once_then_report(name):
    """A model that calls ``name`` once, then answers with what the tool result said."""
    def model(request):
        last = request.messages[-1]
        if last.tool_results():
            r = last.tool_results()[0]
            return f"error={r.is_error} result={r.content}"
        return [tool_call(name)]
    return model


async def _stored_turns(core, sid):
    return [(t.turn_id, t.outcome, t.stop_reason) for t in await core.store.load_turns(sid)]


# ---------------------------------------------------------------------------- item: tools that exit
@pytest.mark.parametrize("sync", [False, True])
def test_a_tool_raising_system_exit_gives_an_error_result_and_the_turn_finishes(store_target, sync):
    if sync:
        @tool
        def leave() -> str:
            """Exits."""
            raise SystemExit(3)
    else:
        @tool
        async def leave() -> str:
            """Exits."""
            raise SystemExit(3)

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("leave")), leave, store=store_target)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "finished: assistant_message"
        assert out.result.assistant_message() == "error=True result=SystemExit: 3"
        assert out.result.tool_calls[0].success is False
        turns = await _stored_turns(core, "s")
        assert [(o, r) for _, o, r in turns] == [("finished", "assistant_message")]
        # the loop is alive: a second turn runs
        again = await s.turn("again").run()
        assert again.result.tool_calls[0].success is False
        await core.close()
    run(body())


@pytest.mark.parametrize("sync", [False, True])
def test_a_tool_raising_keyboard_interrupt_cancels_the_turn_and_it_commits(store_target, sync):
    if sync:
        @tool
        def interrupted() -> str:
            """Interrupted."""
            raise KeyboardInterrupt
    else:
        @tool
        async def interrupted() -> str:
            """Interrupted."""
            raise KeyboardInterrupt

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("interrupted")), interrupted,
                         store=store_target)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "stopped: cancelled"
        assert out.result.cancellation["origin"] == "keyboard_interrupt"
        [call] = out.result.tool_calls
        assert (call.success, call.interrupted) == (False, True)
        turns = await _stored_turns(core, "s")
        assert [(o, r) for _, o, r in turns] == [("stopped", "cancelled")]
        # every tool call has a result in the graph, so the next turn is valid
        view = s.read_view().messages()
        assert view[-1].tool_results()[0].interrupted
        again = await s.turn("again").run()
        assert str(again.result.outcome) == "stopped: cancelled"
        await core.close()
    run(body())


class _Unprintable:
    def __str__(self):
        raise ValueError("no text for you")

    __repr__ = __str__


def test_a_tool_output_whose_str_raises_becomes_an_error_result(store_target):
    @tool
    async def odd() -> object:
        """Returns something that cannot be printed."""
        return _Unprintable()

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("odd")), odd, store=store_target)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "finished: assistant_message"
        text = out.result.assistant_message()
        assert text.startswith("error=True result=")
        assert "_Unprintable" in text and "ValueError" in text
        assert out.result.tool_calls[0].success is False
        turns = await _stored_turns(core, "s")
        assert [(o, r) for _, o, r in turns] == [("finished", "assistant_message")]
        await core.close()
    run(body())


def test_a_tool_exception_whose_str_raises_still_gives_an_error_result(store_target):
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("str of the error fails too")

    @tool
    async def weird() -> str:
        """Raises an unprintable error."""
        raise Weird()

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("weird")), weird, store=store_target)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "finished: assistant_message"
        assert out.result.assistant_message().startswith("error=True result=Weird")
        await core.close()
    run(body())
