"""A prompt queued with the caller's own turn id (``TurnInput.with_trace_turn_id``: a ticket
number, a request id) and a queue worker stopped in the middle of it (SIGTERM: a deploy,
``systemctl stop``). The worker hands the batch back (docs/adr/0158), but the cut turn was
committed under the caller's id, and a turn cannot start under an id the session already
committed (docs/adr/0134). Before, the next worker's re-run was refused at its start: each
refusal spent an attempt, the batch was parked ``failed`` and the prompt never answered.

Now the first attempt runs under the caller's id and each later one under
``<id>:g<lease generation>`` (docs/adr/0168): the prompt is answered once, and every attempt's
turn id starts with the caller's id.

Real ``python -m lash_nb worker`` processes on a DuckDB file and on PostgreSQL; in process, a
handle that had not read the cut turn (a notebook opened before it) drains the batch."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
import test_worker_stop as ws
from notebook_harness import wait_until

from lash_nb import LashCore, TurnInput
from lash_nb._core.cancel import CancellationToken
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, OfflineProvider
from lash_nb.stores import MemoryStore

TRACE = "ticket-42"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    store = (str(request.getfixturevalue("pg_dsn")) if request.param == "postgres"
             else str(tmp_path / "shared.duckdb"))
    reader = ws._Reader(store)
    yield store, reader
    reader.close()


def _enqueue_traced(store: str, text: str) -> str:
    async def go() -> str:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        try:
            session = await core.session("s").open()
            return (await session.enqueue(TurnInput.text(text).with_trace_turn_id(TRACE))).batch_id
        finally:
            await core.store.close()

    return asyncio.run(go())


def _attempts(reader: Any) -> list[dict[str, Any]]:
    """The turns an observer finds for the caller's id: the id itself and ``<id>:g<N>``."""
    return reader.settled(
        f"SELECT turn_id, outcome, stop_reason, result FROM turns WHERE turn_id = '{TRACE}' "
        f"OR turn_id LIKE '{TRACE}:g%' ORDER BY turn_id")


@pytest.mark.slow
def test_a_traced_prompt_survives_two_worker_stops_and_is_answered_once(
        shared: tuple[str, Any], tmp_path: Path) -> None:
    store, reader = shared
    batch_id = _enqueue_traced(store, ws.LONG)
    for i in range(2):
        # --max-attempts 1: a refused re-run would park the batch at once
        status, log = ws._stop_mid_turn(store, reader, tmp_path / f"stop{i}.log",
                                        signal.SIGTERM, "--max-attempts", "1")
        assert status == ws.EX_TEMPFAIL, log
        queued = reader.settled("SELECT batch_id, attempts, failed_at_ms, error "
                                "FROM queued_work_batches")
        assert [(q["batch_id"], q["attempts"]) for q in queued] == [(batch_id, 0)], queued
        assert ws.pd.isna(queued[0]["failed_at_ms"]) and ws.pd.isna(queued[0]["error"])
        cut = _attempts(reader)
        assert len(cut) == i + 1, cut
        for t in cut:
            assert (t["outcome"], t["stop_reason"]) == ("stopped", "cancelled")
            assert ws._result(t)["cancellation"]["origin"] == "worker_shutdown"
    ids = [t["turn_id"] for t in _attempts(reader)]
    assert TRACE in ids  # the first attempt ran under the caller's own id
    second = next(t for t in ids if t != TRACE)
    assert second.startswith(f"{TRACE}:g") and second[len(TRACE) + 2:].isdigit()

    last = ws._worker(store, tmp_path / "last.log", "--max-attempts", "1", "--exit-when-idle", "1")
    assert last.wait(180) == 0, (tmp_path / "last.log").read_text()
    assert reader.settled("SELECT batch_id FROM queued_work_batches") == []
    history = reader.settled("SELECT batch_id, final_state, attempts, turn_id FROM queue_history")
    assert [(h["batch_id"], h["final_state"], h["attempts"]) for h in history] == [
        (batch_id, "completed", 1)], history
    attempts = _attempts(reader)
    assert len(attempts) == 3 and len({t["turn_id"] for t in attempts}) == 3
    [finished] = [t for t in attempts if t["outcome"] == "finished"]
    assert finished["turn_id"] == history[0]["turn_id"]
    assert finished["turn_id"].startswith(f"{TRACE}:g")
    answer = ws._result(finished)["assistant_output"]["safe_text"]
    assert answer.startswith(f"You said: {ws.LONG}"), answer[:200]
    assert "already taken" not in (tmp_path / "last.log").read_text()

    async def path() -> list[tuple[str, str]]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        try:
            session = await core.session("s").open()
            return [(m.role.value, m.text()) for m in session.state.graph.view()]
        finally:
            await core.store.close()

    # the model saw the prompt once: both cut attempts are side branches
    assert asyncio.run(path()) == [("user", ws.LONG), ("assistant", answer)]


def test_a_handle_that_had_not_read_the_cut_attempt_answers_the_traced_prompt_uncounted() -> None:
    """A notebook opened the session before a worker's stop cut the traced prompt there; its
    drain first tries the caller's id, is refused (nothing written, no attempt spent), and runs
    the prompt again under ``<id>:g<N>``."""

    started = asyncio.Event()
    calls: list[str] = []

    async def fn(request: Any) -> Any:
        calls.append(request.messages[-1].text())
        if len(calls) == 1:
            started.set()
            await asyncio.sleep(3600)  # the first attempt: only the worker's stop ends it
        yield Completed(LlmResponse((LlmPart.text_part("the answer"),)))

    async def body() -> None:
        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(store).build()
        notebook = await core.session("s").open()  # opened before the cut turn
        worker = await core.session("s").open()
        batch = await worker.enqueue(TurnInput.text("the question").with_trace_turn_id(TRACE)).send()
        token = CancellationToken()
        cut = asyncio.ensure_future(worker.queued_turn().cancel(token).run())
        await asyncio.wait_for(started.wait(), 30)
        token.cancel("worker_shutdown", "the worker was asked to stop")
        out = await cut
        assert out is not None and out.returned_batch_ids == (batch.batch_id,)
        assert out.result.turn_id == TRACE

        answered = await notebook.queued_turn().run()
        assert answered is not None
        assert str(answered.result.outcome) == "finished: assistant_message"
        assert answered.result.turn_id.startswith(f"{TRACE}:g")
        assert answered.result.queued_batch_ids == (batch.batch_id,)
        assert await store.list_queued_work("s", include_claimed=True) == []
        [done] = store._history  # the memory store's queue_history
        assert (done.row.batch.batch_id, done.final_state, done.row.attempts) == (
            batch.batch_id, "completed", 1)
        assert [(m.role.value, m.text()) for m in notebook.state.graph.view()] == [
            ("user", "the question"), ("assistant", "the answer")]
        assert calls == ["the question", "the question"]

    asyncio.run(body())


@pytest.mark.slow
def test_a_traced_prompt_whose_worker_was_killed_is_answered_by_the_next_worker(
        shared: tuple[str, Any], tmp_path: Path) -> None:
    """``kill -9`` of the worker in the middle of the traced prompt: its open turn is closed
    under the caller's id when the next worker opens the session, which takes the id too (docs/adr/0134); the next
    worker answers under ``<id>:g<N>``. Before, it was refused and the batch parked."""
    store, reader = shared
    batch_id = _enqueue_traced(store, ws.LONG)
    worker = ws._worker(store, tmp_path / "killed.log", "--delay", "0.2", "--max-attempts", "2")
    try:
        wait_until("the worker to be inside the turn", lambda: reader.query(
            "SELECT turn_id FROM turns WHERE status = 'open'"))
    finally:
        worker.kill()
        worker.wait(30)
    last = ws._worker(store, tmp_path / "last.log", "--max-attempts", "2")
    try:
        wait_until("the next worker to end the batch", lambda: reader.query(
            "SELECT 1 FROM queue_history"), timeout=180)
    finally:
        last.send_signal(signal.SIGTERM)
        last.wait(60)
    history = reader.settled("SELECT batch_id, final_state, attempts, turn_id FROM queue_history")
    assert [(h["batch_id"], h["final_state"], h["attempts"]) for h in history] == [
        (batch_id, "completed", 2)], history  # the killed claim counts (ADR 2), the re-run ran
    attempts = {t["turn_id"]: t["stop_reason"] for t in _attempts(reader)}
    assert attempts.pop(TRACE) != "assistant_message"  # closed as its process died
    [(answered, reason)] = attempts.items()
    assert answered == history[0]["turn_id"] and answered.startswith(f"{TRACE}:g")
    assert reason == "assistant_message"
