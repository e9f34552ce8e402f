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
        time.sleep(seconds)  # noqa: ASYNC251  (the fault under test: a tool blocks the loop)
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


# ---------------------------------------------------------------------------- item: poison batches
def _store_of(target, opener):
    return target if not isinstance(target, str) else opener()


def _poison_commits(store, marker="poison", slow_s=0.0):
    """Make every commit that carries a user message containing ``marker`` fail, as a store
    error would (the batch can never run), after ``slow_s`` seconds."""
    real = store.commit
    refused = []

    async def commit(c):
        for n in c.append_nodes:
            if n.message is not None and marker in n.message.text():
                refused.append(c.turn_started.turn_id if c.turn_started else None)
                from lash_nb._errors import StoreError

                await asyncio.sleep(slow_s)

                raise StoreError(f"cannot store {marker!r} (simulated)")
        return await real(c)

    store.commit = commit
    return refused


def test_a_batch_that_keeps_failing_is_parked_failed_after_three_attempts(any_store, caplog):
    target, opener = any_store
    from lash_nb.reports import queue_frame

    target_name = target if isinstance(target, str) else ""

    async def body():
        store = _store_of(target, opener)
        refused = _poison_commits(store)
        core = core_with(FunctionProvider(lambda r: "done"), store=store)
        s = await core.session("s").open()
        poison = await s.enqueue("poison pill").send()
        good = await s.enqueue("good work").send()
        for attempt in (1, 2, 3):
            with pytest.raises(Exception, match="simulated"):
                await s.queued_turn().run()
            [head, _] = await s.queued_work()
            assert (head.batch_id, head.attempts) == (poison.batch_id, attempt)
        assert head.status == "failed"
        assert head.error == "StoreError: cannot store 'poison' (simulated)"
        parked = [r.getMessage() for r in caplog.records if r.name == "lash_nb.queue"]
        assert parked == [(f"queued batch {poison.batch_id} of session s failed 3 times and is "
                          "parked: StoreError: cannot store 'poison' (simulated) (cancel it, or "
                          "enqueue it again once fixed)")]
        out = await s.queued_turn().run()  # the queue moves on
        assert out.result.assistant_message() == "done"
        assert out.result.queued_batch_ids == (good.batch_id,)
        assert await s.queued_turn().run() is None  # and never tries the poison again
        assert len(refused) == 3
        listed = await s.queued_work()
        assert [(b.batch_id, b.status, b.attempts) for b in listed] == [(poison.batch_id, "failed", 3)]
        await s.await_queued_work_batch(poison.batch_id, timeout=10)  # failed is not pending
        if not target_name.startswith("postgres"):  # (report SQL is DuckDB's dialect)
            frame = queue_frame(s)
            row = frame[frame["batch_id"] == poison.batch_id].iloc[0]
            assert (row["state"], row["attempts"], row["error"]) == (
                "failed", 3, "StoreError: cannot store 'poison' (simulated)")
        if target_name and not target_name.startswith("postgres"):  # memory keeps no history
            done = frame[frame["batch_id"] == good.batch_id].iloc[0]
            assert (done["state"], done["attempts"]) == ("completed", 1)
        # the user removes it
        assert (await s.cancel_queued_work_batch(poison.batch_id)).batch_id == poison.batch_id
        assert await s.queued_work() == []
        await core.close()
    run(body())


def test_a_worker_does_not_retry_a_failing_batch_forever(any_store):
    target, opener = any_store
    from lash_nb._runtime.worker import Worker

    async def body():
        store = _store_of(target, opener)
        refused = _poison_commits(store)
        core = (LashCore.builder().provider(FunctionProvider(lambda r: "done")).model("m")
                .store(store).max_batch_attempts(2).build())
        s = await core.session("s").open()
        poison = await s.enqueue("poison pill").send()
        await s.enqueue("good work").send()
        logs = []
        stats = await Worker(core, poll_s=0.02, log=logs.append).run(max_idle_s=1.0)
        assert stats.turns == 1 and stats.outcomes == {"finished: assistant_message": 1}
        assert len(refused) == 2
        check = await core.session("s").store(opener() if isinstance(target, str) else store).open()
        [parked] = await check.queued_work()
        assert (parked.batch_id, parked.status, parked.attempts) == (poison.batch_id, "failed", 2)
        await check.store.close()
    run(body())


def test_a_worker_exiting_when_idle_does_not_leave_work_behind_a_slow_failing_batch(any_store):
    # a loaded machine once made the two failing attempts outlast --exit-when-idle's second:
    # the worker left with the good batch never run. A failed attempt is work, not idleness.
    target, opener = any_store
    from lash_nb._runtime.worker import Worker

    async def body():
        store = _store_of(target, opener)
        refused = _poison_commits(store, slow_s=0.7)
        core = (LashCore.builder().provider(FunctionProvider(lambda r: "done")).model("m")
                .store(store).max_batch_attempts(2).build())
        s = await core.session("s").open()
        await s.enqueue("poison pill").send()
        await s.enqueue("good work").send()
        stats = await Worker(core, poll_s=0.02, log=lambda _: None).run(max_idle_s=1.0)
        assert len(refused) == 2
        assert stats.turns == 1 and stats.outcomes == {"finished: assistant_message": 1}
    run(body())


def test_max_batch_attempts_must_be_a_positive_int():
    from lash_nb._errors import ConfigurationError

    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(ConfigurationError, match="max_batch_attempts"):
            LashCore.builder().max_batch_attempts(bad)


# ---------------------------------------------------------------------------- schema moves
def test_a_version_2_duckdb_file_with_queued_work_migrates_and_its_batch_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import duckdb

    from lash_nb._errors import StoreSchemaError

    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    con.execute((Path(__file__).parent / "data" / "duckdb_schema_v2.sql").read_text())
    con.execute(
        "INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
        "slot_policy, merge_key, available_at_ms, enqueued_at_ms, items) VALUES ('qwb:old', "
        "'s', NULL, 'after_current_turn_commit', 'exclusive', NULL, 0, 1, ?)",
        [('[{"item_id": "qwb:old:item:0", "kind": "turn_input", '
         '"payload": {"items": [{"type": "text", "text": "from before"}]}}]')])
    con.close()
    with pytest.raises(StoreSchemaError, match="migrate-store"):
        DuckDBStore(path)
    cli = [sys.executable, "-m", "lash_nb", "migrate-store", str(path)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: schema version 2 -> 4; ")

    async def body():
        core = core_with(FunctionProvider(lambda r: "ok"), store=str(path))
        s = await core.session("s").open()
        [b] = await s.queued_work()
        assert (b.batch_id, b.status, b.attempts, b.error) == ("qwb:old", "pending", 0, None)
        out = await s.queued_turn().run()
        assert out.result.queued_batch_ids == ("qwb:old",)
        hist = core.store.query("SELECT final_state, attempts FROM queue_history")
        assert hist.to_dict("records") == [{"final_state": "completed", "attempts": 1}]
        await core.close()
    run(body())


def test_a_version_1_postgres_database_is_moved_forward_at_open_idempotently(pg_server):
    pytest.importorskip("psycopg")
    import psycopg

    from lash_nb.stores import PostgresStore

    dsn = pg_server.create_database()

    async def make():
        store = PostgresStore(dsn)
        core = core_with(FunctionProvider(lambda r: "ok"), store=store)
        s = await core.session("s").open()
        await s.enqueue("queued before the upgrade").send()
        await core.close()
    run(make())
    with psycopg.connect(dsn, autocommit=True) as con:  # as lash_nb wrote it at version 1
        for col in ("attempts", "error", "failed_at_ms"):
            con.execute(f"ALTER TABLE queued_work_batches DROP COLUMN {col}")
        con.execute("ALTER TABLE queue_history DROP COLUMN attempts")
        con.execute("UPDATE lash_meta SET value = '1' WHERE key = 'schema_version'")

    async def reopen():
        for _ in range(2):  # the second open finds version 2 and changes nothing
            store = PostgresStore(dsn)
            core = core_with(FunctionProvider(lambda r: "ok"), store=store)
            s = await core.session("s").open()
            [b] = await s.queued_work()
            assert (b.text, b.status, b.attempts) == ("queued before the upgrade", "pending", 0)
            await core.close()
        store = PostgresStore(dsn)
        core = core_with(FunctionProvider(lambda r: "ok"), store=store)
        s = await core.session("s").open()
        out = await s.queued_turn().run()
        assert out.result.assistant_message() == "ok"
        await core.close()
    run(reopen())
    with psycopg.connect(dsn, autocommit=True) as con:
        assert con.execute("SELECT value FROM lash_meta WHERE key = 'schema_version'").fetchone() == ("3",)


# ---------------------------------------------------------------------------- item: re-run after kill
HANGING_WORKER = """
import asyncio, sys
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb._runtime.worker import Worker

async def hang(request):
    with open(sys.argv[2], "w") as f:  # the progress commit is durable by now
        f.write("in the model call")
    await asyncio.sleep(3600)

async def main():
    core = LashCore.builder().provider(FunctionProvider(hang)).model("m").store(sys.argv[1]).build()
    await Worker(core, poll_s=0.05).run()

asyncio.run(main())
"""


def _kill_a_worker_mid_turn(target, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    flag = tmp_path / "in-model-call"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(__import__("pathlib").Path(__file__).parents[1]),
                    os.environ.get("PYTHONPATH")) if p)}
    victim = subprocess.Popen([sys.executable, "-c", HANGING_WORKER, target, str(flag)],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "victim.log", "wb"),  # noqa: SIM115
                              env=env)
    try:
        from browser_harness import wait_until

        # a generous wait for an event (the flag file), not a bound on how long it takes
        wait_until(lambda: flag.exists() or victim.poll() is not None, timeout=120,
                   what="the worker to reach the model call")
        assert victim.poll() is None, (tmp_path / "victim.log").read_text()[-2000:]
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_a_batch_re_run_after_its_worker_was_killed_shows_the_model_its_prompt_once(
        backend, tmp_path, request):
    if backend == "duckdb":
        target = str(tmp_path / "lash.duckdb")
    else:
        pytest.importorskip("psycopg")
        target = request.getfixturevalue("pg_server").create_database()
    seen = []

    def model(req):
        seen.append([m.text() for m in req.messages if m.role.value == "user"])
        return "answered"

    async def enqueue():
        core = core_with(FunctionProvider(model), store=target)
        s = await core.session("s").open()
        batch = await s.enqueue("the prompt").send()
        await core.close()
        return batch.batch_id

    batch_id = run(enqueue())
    _kill_a_worker_mid_turn(target, tmp_path)

    async def rerun():
        core = core_with(FunctionProvider(model), store=target)
        s = await core.session("s").open()  # closes the dead turn (ADR 4)
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (batch_id,)
        assert seen == [["the prompt"]]  # once, not twice
        assert _user_texts(s) == ["the prompt"]
        turns = sorted(r for _, *r in await _stored_turns(core, "s"))
        assert turns == [["finished", "assistant_message"], ["stopped", "runtime_error"]]
        # the dead attempt's message is kept, off the active path
        loaded = await core.store.load_session("s")
        texts = [n.message.text() for n in loaded.nodes if n.message is not None]
        assert texts.count("the prompt") == 2
        await core.close()
        again = core_with(FunctionProvider(model), store=target)
        reopened = await again.session("s").open()
        assert _user_texts(reopened) == ["the prompt"]
        await again.close()
    run(rerun())


# ---------------------------------------------------------------------------- item: runaway turns
@tool
async def poke() -> str:
    """Pokes (returns at once, never awaits)."""
    return "poked"


def test_a_model_that_always_calls_a_tool_is_stopped_at_50_calls_by_default():
    calls = {"n": 0}

    def model(request):
        calls["n"] += 1
        if calls["n"] > 500:  # a guard so the unbounded version fails instead of running on
            return "gave up"
        return [tool_call("poke")]

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(poke).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert str(out.result.outcome) == "stopped: max_turns"
        assert calls["n"] == 50
        assert [e.code for e in out.result.errors] == ["max_turns"]
        unbounded = (LashCore.builder().provider(FunctionProvider(model)).model("m").tools(poke)
                     .max_turns(None).build())
        calls["n"] = 0
        s2 = await unbounded.session("s").open()
        out2 = await s2.turn("go").run()
        assert out2.result.assistant_message() == "gave up" and calls["n"] == 501
    run(body())


def test_a_stop_from_the_event_loop_reaches_a_turn_whose_model_and_tools_never_await(store_target):
    """A local model and tools that never await kept the loop busy for the whole turn, so a
    Stop (a widget message, handled by the loop) could not arrive."""
    calls = {"n": 0}
    holder = {}

    def model(request):
        calls["n"] += 1
        if calls["n"] == 10:  # the user presses Stop: the loop will deliver it
            asyncio.get_running_loop().call_soon(holder["token"].cancel, "stop_button")
        if calls["n"] > 3000:  # guard: without the fix the turn ends here, not cancelled
            return "ran to the end"
        return [tool_call("poke")]

    async def body():
        core = core_with(FunctionProvider(model), poke, store=store_target, max_turns=None)
        s = await core.session("s").open()
        builder = s.turn("go")
        holder["token"] = builder.token
        out = await builder.run()
        assert str(out.result.outcome) == "stopped: cancelled"
        assert out.result.cancellation["origin"] == "stop_button"
        assert calls["n"] < 3000
        turns = await _stored_turns(core, "s")
        assert [(o, r) for _, o, r in turns] == [("stopped", "cancelled")]
        await core.close()
    run(body())


def test_a_stop_lands_before_the_next_call_of_a_local_model_that_keeps_the_loop_long(monkeypatch):
    """The turn lets the loop run before a model call once it has kept the loop
    ``LOOP_TURN_EVERY_S``; a slow local model (here: the bound is 0, every call counts as
    slow) gets a loop round before each call, so a Stop pressed during call 10 is the last
    call made."""
    from lash_nb._runtime import turn_run

    monkeypatch.setattr(turn_run, "LOOP_TURN_EVERY_S", 0.0)
    calls = {"n": 0}
    holder = {}

    def model(request):
        calls["n"] += 1
        if calls["n"] == 10:
            asyncio.get_running_loop().call_soon(holder["token"].cancel, "stop_button")
        if calls["n"] > 100:
            return "ran on"
        return [tool_call("poke")]

    async def body():
        core = core_with(FunctionProvider(model), poke, max_turns=None)
        s = await core.session("s").open()
        builder = s.turn("go")
        holder["token"] = builder.token
        out = await builder.run()
        assert str(out.result.outcome) == "stopped: cancelled"
        assert calls["n"] == 10
        await core.close()
    run(body())


def test_a_batch_whose_turn_lost_its_lease_runs_again_with_its_prompt_shown_once(any_store):
    target, opener = any_store
    seen = []

    async def take_and_commit(store):
        from lash_nb._store.base import RuntimeCommit

        got = await store.try_acquire_lease("s", OTHER)
        await store.commit(RuntimeCommit("s", got, close_open_turns=True, release_lease=True))

    done = []

    def once():
        if not done:
            done.append(_in_other_thread(opener, take_and_commit))

    def model(request):
        seen.append([m.text() for m in request.messages if m.role.value == "user"
                     and not m.tool_results()])
        return _call_once_then_report("crunch")(request)

    async def body():
        core = core_with(FunctionProvider(model), _blocking_tool(1.0, then=once), store=target,
                         lease_ttl_ms=300)
        s = await core.session("s").open()
        batch = await s.enqueue("the prompt").send()
        lost = await s.queued_turn().run()
        assert str(lost.result.outcome) == "stopped: runtime_error"
        [pending] = await s.queued_work()
        assert (pending.batch_id, pending.status, pending.attempts) == (batch.batch_id, "pending", 1)
        assert "another runtime took this session over" in pending.error
        seen.clear()
        again = await s.queued_turn().run()
        assert again.result.queued_batch_ids == (batch.batch_id,)
        assert seen and all(texts == ["the prompt"] for texts in seen)
        assert await s.queued_work() == []
        await core.close()
    run(body())
