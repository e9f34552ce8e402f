"""A person's Stop of a queued turn and the worker's own stop (SIGTERM, ``--grace 0``) reach
the same turn together: someone presses Stop on a prompt a worker runs just as a deploy stops
that worker. The outcome must be one consistent record: the person's Stop ends the batch (it
is completed, the record says the person stopped it); the worker's stop alone hands it back
(docs/adr/0158). Never both, never neither: one committed turn, no prompt lost, no batch both
completed and queued again.

Before, when the worker's cut reached the turn first, the person's Stop was dropped (the first
origin won): the batch went back to the queue and the next worker ran the prompt the person
had stopped (docs/adr/0172).

In process (``Worker`` as ``python -m lash_nb worker`` runs it), the two arrive in the same
loop tick in the chosen order: the worker's sweep of its running turns is wrapped so the
person's Stop comes just before or just after it. Then real processes on PostgreSQL (a Stop
from another process, ``request_turn_cancel``, and SIGTERM back to back): whichever wins, the
record and the queue agree."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
import test_worker_stop as ws
from notebook_harness import wait_until

from lash_nb import LashCore
from lash_nb._runtime.session import LashSession
from lash_nb._runtime.worker import Worker
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse
from lash_nb.stores import DuckDBStore, MemoryStore, PostgresStore


@pytest.fixture(params=["memory", "duckdb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStore
    return lambda: DuckDBStore(str(tmp_path / "race.duckdb"))


@pytest.mark.parametrize("first", ["person", "worker"])
def test_a_persons_stop_and_the_workers_stop_together_end_the_batch_once(
        make_store: Any, first: str, monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()
    calls: list[str] = []

    async def fn(request: Any) -> Any:
        calls.append(request.messages[-1].text())
        started.set()
        await asyncio.sleep(3600)  # a long turn: only a stop ends it
        yield Completed(LlmResponse((LlmPart.text_part("never"),)))

    sweep = LashSession.cancel_running_turns

    def both(self: Any, origin: str | None = "api", reason: str | None = None) -> int:
        if origin != "worker_shutdown":
            return sweep(self, origin, reason)
        if first == "person":
            sweep(self, "magic", "%lash stop was run")
            return sweep(self, origin, reason)
        n = sweep(self, origin, reason)
        sweep(self, "magic", "%lash stop was run")  # the person's Stop, just after the cut
        return n

    monkeypatch.setattr(LashSession, "cancel_running_turns", both)

    async def body() -> None:
        store = make_store()
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(store).build()
        batch = await (await core.session("s").open()).enqueue("the question").send()
        lines: list[str] = []
        worker = Worker(core, grace_s=0, poll_s=0.01, log=lines.append)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(started.wait(), 30)
        worker._signalled()  # SIGTERM
        stats = await asyncio.wait_for(running, 120)

        assert stats.returned == [], lines  # the batch was not handed back
        assert stats.outcomes == {"stopped: cancelled": 1}
        check = store if isinstance(store, MemoryStore) else make_store()  # after the close
        try:
            assert await check.list_queued_work("s", include_claimed=True) == []
            [turn] = await check.load_turns("s")  # one committed turn
            assert turn.turn_id.startswith(f"{batch.batch_id}:g")
            assert (turn.outcome, turn.stop_reason) == ("stopped", "cancelled")
            assert turn.result["cancellation"]["origin"] == "magic"  # the person stopped it
            assert turn.result["queued_batch_ids"] == [batch.batch_id]  # and it ended the batch
        finally:
            await check.close()
        assert calls == ["the question"]

    asyncio.run(body())


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("first", ["stop", "sigterm"])
def test_a_stop_from_another_process_and_sigterm_back_to_back_agree_with_the_queue(
        pg_dsn: str, first: str, tmp_path: Path) -> None:
    """Real processes: a worker on PostgreSQL runs the prompt; another process sends the
    person's Stop (``request_turn_cancel``) and SIGTERM reaches the worker, back to back in
    either order. One turn is committed, and what its record says matches the queue: stopped
    by the person and the batch completed (exit 0), or cut by the worker's stop and the batch
    pending, uncounted (exit 75)."""
    store = str(pg_dsn)
    reader = ws._Reader(store)
    try:
        batch_id = ws._enqueue(store, ws.LONG)
        worker = ws._worker(store, tmp_path / "w.log", "--delay", "0.2", "--grace", "0")
        try:
            [open_turn] = wait_until("the worker to be inside the turn", lambda: reader.query(
                "SELECT turn_id FROM turns WHERE status = 'open'"))

            async def stop() -> None:
                other = PostgresStore(store)  # the person's process (a notebook's Stop)
                try:
                    await other.request_turn_cancel("s", open_turn["turn_id"])
                finally:
                    await other.close()

            if first == "sigterm":
                worker.send_signal(signal.SIGTERM)
            asyncio.run(stop())
            if first == "stop":
                worker.send_signal(signal.SIGTERM)
            status = worker.wait(120)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
        log = (tmp_path / "w.log").read_text()
        turns = reader.settled("SELECT turn_id, status, outcome, stop_reason, result FROM turns")
        assert len(turns) == 1, turns  # one committed turn, no double commit
        [turn] = turns
        assert (turn["status"], turn["outcome"], turn["stop_reason"]) == (
            "committed", "stopped", "cancelled")
        origin = ws._result(turn)["cancellation"]["origin"]
        queued = reader.settled("SELECT batch_id, attempts FROM queued_work_batches")
        history = reader.settled("SELECT batch_id, final_state, turn_id FROM queue_history")
        if origin == "remote":  # the person's Stop decided: the batch is ended
            assert queued == [] and [(h["batch_id"], h["final_state"]) for h in history] == [
                (batch_id, "completed")], (queued, history)
            assert ws._result(turn)["queued_batch_ids"] == [batch_id]
            assert status == 0, log
        else:  # the worker's stop alone: handed back, uncounted, not ended
            assert origin == "worker_shutdown", origin
            assert [(q["batch_id"], q["attempts"]) for q in queued] == [(batch_id, 0)]
            assert history == [] and ws._result(turn)["queued_batch_ids"] == []
            assert status == ws.EX_TEMPFAIL, log
    finally:
        reader.close()
