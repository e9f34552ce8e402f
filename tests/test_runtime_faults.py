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


# ---------------------------------------------------------------------------- item: leases
import threading  # noqa: E402
import time  # noqa: E402

from lash_nb._store.base import Lease, lease_owner_id  # noqa: E402

OTHER = lease_owner_id("someone-else")


@pytest.fixture(params=["memory", "duckdb", "postgres"])
def any_store(request, tmp_path):
    """(target for LashCore.builder().store, opener of a second handle on the same data)."""
    if request.param == "memory":
        from lash_nb.stores import MemoryStore

        store = MemoryStore()
        return store, lambda: store
    if request.param == "duckdb":
        path = str(tmp_path / "lash.duckdb")
        return path, lambda: DuckDBStore(path)
    pytest.importorskip("psycopg")
    server = request.getfixturevalue("pg_server")
    dsn = server.create_database()
    from lash_nb.stores import PostgresStore

    return dsn, lambda: PostgresStore(dsn)


from pg_fixture import pg_server  # noqa: E402,F401


def _in_other_thread(opener, job):
    """Run ``await job(store)`` on a second handle of the store, from another thread and
    event loop, while this loop is blocked (as another process would)."""
    box = {}

    async def go():
        store = opener()
        try:
            box["value"] = await job(store)
        finally:
            if opener() is not store:  # memory: the same instance, keep it open
                await store.close()

    def main():
        try:
            asyncio.run(go())
        except BaseException as err:  # surfaced below
            box["error"] = err

    t = threading.Thread(target=main)
    t.start()
    t.join(120)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _blocking_tool(seconds, then=None):
    @tool
    async def crunch() -> str:
        """Blocks the event loop (a sync call inside async def)."""
        time.sleep(seconds)
        if then is not None:
            then()
        return "crunched"
    return crunch


def _user_texts(session):
    return [m.text() for m in session.read_view().messages() if m.role.value == "user"
            and not m.tool_results()]


def test_a_tool_blocking_the_loop_past_the_lease_ttl_still_commits_its_turn(any_store):
    target, _ = any_store

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("crunch")), _blocking_tool(1.0),
                         store=target, lease_ttl_ms=300)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "finished: assistant_message"
        assert out.result.assistant_message() == "error=False result=crunched"
        assert [(o, r) for _, o, r in await _stored_turns(core, "s")] == [
            ("finished", "assistant_message")]
        await core.close()
    run(body())


def test_a_queued_batch_whose_tool_blocks_past_the_ttl_runs_once(any_store):
    target, _ = any_store
    seen = []

    def model(request):
        seen.append([m.text() for m in request.messages if m.role.value == "user"
                     and not m.tool_results()])
        return _call_once_then_report("crunch")(request)

    async def body():
        core = core_with(FunctionProvider(model), _blocking_tool(1.0), store=target,
                         lease_ttl_ms=300)
        s = await core.session("s").open()
        await s.enqueue("queued work").send()
        out = await s.queued_turn().run()
        assert str(out.result.outcome) == "finished: assistant_message"
        assert await s.store.list_queued_work("s", include_claimed=True) == []
        assert await s.queued_turn().run() is None  # nothing left to retry
        assert [(o, r) for _, o, r in await _stored_turns(core, "s")] == [
            ("finished", "assistant_message")]
        assert all(texts == ["queued work"] for texts in seen)
        await core.close()
    run(body())


def test_a_session_taken_over_during_the_block_then_released_commits_under_a_new_lease(any_store):
    target, opener = any_store

    async def take_and_release(store):
        got = await store.try_acquire_lease("s", OTHER)
        assert isinstance(got, Lease), got
        await store.release_lease(got)
        return got.fencing

    fencings = []
    tool_ = _blocking_tool(1.0, then=lambda: fencings.append(_in_other_thread(opener, take_and_release)))

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("crunch")), tool_, store=target,
                         lease_ttl_ms=300)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert fencings == [2]  # the other owner did take the session over
        assert str(out.result.outcome) == "finished: assistant_message"
        assert [(o, r) for _, o, r in await _stored_turns(core, "s")] == [
            ("finished", "assistant_message")]
        mine = await core.store.try_acquire_lease("s", s.owner_id)
        assert mine.fencing == 4  # ours (1), theirs (2), ours again to commit (3), now (4)
        await core.close()
    run(body())


def test_a_session_taken_over_and_committed_by_another_ends_the_turn_with_an_outcome(any_store):
    """Fencing holds: the other runtime committed meanwhile, so this turn's work is not
    committed; it ends stopped: runtime_error (lease_lost) instead of raising, and its turn
    row is closed."""
    target, opener = any_store

    async def take_and_commit(store):
        from lash_nb._store.base import RuntimeCommit

        got = await store.try_acquire_lease("s", OTHER)
        assert isinstance(got, Lease), got
        await store.commit(RuntimeCommit("s", got, close_open_turns=True, release_lease=True,
                                         leaf_node_id=None))
        return got.fencing

    done = []

    def once():
        if not done:
            done.append(_in_other_thread(opener, take_and_commit))

    tool_ = _blocking_tool(1.0, then=once)

    async def body():
        core = core_with(FunctionProvider(_call_once_then_report("crunch")), tool_, store=target,
                         lease_ttl_ms=300)
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "stopped: runtime_error"
        assert [e.code for e in out.result.errors] == ["lease_lost"]
        turns = await _stored_turns(core, "s")
        assert len(turns) == 1 and turns[0][1:] == ("stopped", "runtime_error")
        loaded = await core.store.load_session("s")
        assert loaded.open_turn_ids == ()
        # the session goes on
        again = await s.turn("again").run()
        assert again.result.is_success()
        await core.close()
    run(body())
