"""What the model sees after a worker's stop handed a queued prompt back (docs/adr/0158,
0165). The cut turn's prompt and partial answer are committed (the record says what ran), but
the batch is still waiting in the queue: they are not part of the conversation. A turn that
runs before the batch is answered (the user, seeing no answer, types a prompt in the notebook)
must not see them, and the re-run of the batch afterwards must show the prompt once.

Before, only the re-run of the batch itself branched before the cut turn, and only when the cut
turn's nodes were still at the end of the path: a direct turn in between was sent the cut
prompt and its partial answer, and the re-run then sent the prompt a second time."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import test_worker_stop as ws

from lash_nb import LashCore
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, OfflineProvider, TextDelta
from lash_nb.stores import MemoryStore


class _Recording(OfflineProvider):
    """The offline model (the worker's), keeping the messages of every request it gets."""

    def __init__(self) -> None:
        super().__init__(delay_s=0)
        self.requests: list[list[tuple[str, str]]] = []

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        self.requests.append([(m.role.value, m.text()) for m in request.messages])
        async for event in super().stream(request):
            yield event


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The store a worker process and the notebook share, and a reader of its tables."""
    store = (str(request.getfixturevalue("pg_dsn")) if request.param == "postgres"
             else str(tmp_path / "shared.duckdb"))
    reader = ws._Reader(store)
    yield store, reader
    reader.close()


@pytest.mark.slow
def test_after_a_worker_stop_a_direct_turn_does_not_see_the_cut_prompt_and_the_rerun_sees_it_once(
        shared: tuple[str, Any], tmp_path: Path) -> None:
    """A real ``python -m lash_nb worker`` (DuckDB file, PostgreSQL) is stopped (SIGTERM) in
    the middle of the user's queued prompt; the user then asks something directly, then
    drains."""
    store, reader = shared
    batch_id = ws._enqueue(store, ws.LONG)
    status, log = ws._stop_mid_turn(store, reader, tmp_path / "stopped.log", signal.SIGTERM)
    assert status == ws.EX_TEMPFAIL, log
    model = _Recording()

    async def notebook() -> None:
        core = LashCore.builder().provider(model).store(store).build()
        try:
            s = await core.session("s").open()
            direct = (await s.turn("what is 2 + 2?").run()).result
            assert str(direct.outcome) == "finished: assistant_message"
            assert model.requests == [[("user", "what is 2 + 2?")]]
            out = await s.queued_turn().run()
            assert out is not None and out.result.queued_batch_ids == (batch_id,)
            answer = direct.assistant_output.safe_text
            assert model.requests[1] == [("user", "what is 2 + 2?"), ("assistant", answer),
                                         ("user", ws.LONG)]
        finally:
            await core.store.close()

    asyncio.run(notebook())


def _hanging(hang: dict[str, bool], seen: list[list[tuple[str, str]]]) -> FunctionProvider:
    async def fn(request: Any) -> Any:
        seen.append([(m.role.value, m.text()) for m in request.messages])
        if hang["on"]:
            yield TextDelta("a partial ")
            await asyncio.sleep(3600)
        answer = f"answered: {request.messages[-1].text()}"
        yield TextDelta(answer)
        yield Completed(LlmResponse((LlmPart.text_part(answer),)))

    return FunctionProvider(fn)


@pytest.fixture(params=["memory", "duckdb"])
def local_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return MemoryStore() if request.param == "memory" else str(tmp_path / "q.duckdb")


@pytest.mark.parametrize("first", [False, True], ids=["after-a-turn", "first-turn"])
def test_turns_before_the_rerun_leave_the_handed_back_attempt_aside(local_store: Any,
                                                                    first: bool) -> None:
    """In process, every store: the batch cut by a worker's stop is the session's first turn,
    or follows an answered one. A direct turn, then another queued prompt targeted by id, run
    before the handed-back batch: none of them sees the cut prompt or its partial answer;
    the re-run sees its prompt once, after them."""
    hang, seen, store = {"on": False}, [], local_store

    async def body() -> None:
        core = LashCore.builder().provider(_hanging(hang, seen)).model("m").store(store).build()
        s = await core.session("s").open()
        before: list[tuple[str, str]] = []
        if not first:
            await s.turn("hello").run()
            before = [("user", "hello"), ("assistant", "answered: hello")]
        hang["on"] = True
        cut_batch = await s.enqueue("the question").send()
        task = asyncio.ensure_future(s.queued_turn().run())
        while not seen or seen[-1][-1] != ("user", "the question"):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the partial answer streamed
        assert s.cancel_running_turns("worker_shutdown") == 1
        cut = await asyncio.wait_for(task, 30)
        assert cut is not None and cut.returned_batch_ids == (cut_batch.batch_id,)
        hang["on"] = False
        seen.clear()
        await s.turn("a direct one").run()
        assert seen[-1] == [*before, ("user", "a direct one")]
        other = await s.enqueue("another").send()
        await s.queued_turn().batch_ids([other.batch_id]).run()
        conversation = [*before, ("user", "a direct one"), ("assistant", "answered: a direct one")]
        assert seen[-1] == [*conversation, ("user", "another")]
        conversation += [("user", "another"), ("assistant", "answered: another")]
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (cut_batch.batch_id,)
        assert seen[-1] == [*conversation, ("user", "the question")]
        await core.close()
        # a reopened handle reads the same conversation
        core = LashCore.builder().provider(_hanging(hang, seen)).model("m").store(store).build()
        again = await core.session("s").open()
        assert [(m.role.value, m.text()) for m in again.state.graph.view()] == [
            *conversation, ("user", "the question"), ("assistant", "answered: the question")]
        await core.close()

    asyncio.run(body())
