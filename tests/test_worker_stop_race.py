"""A worker asked to stop at the moment its lane is between reading the queue and starting the
turn (the stop's sweep of running turns has already passed): the worker must not start the
turn. Before, it did, after the sweep, so nothing cut it: the stop waited up to 30 s for
it, then closed the store under the running turn, and the batch's claim died with the process
(an attempt counted, docs/adr/0158). And a stop that reaches a queued turn still waiting for
the writer lock or its claim must not claim a batch only to cut it: no turn is started, the
batch stays as it was.

In process (``Worker`` as ``python -m lash_nb worker`` runs it): a store that holds the lane
at the chosen await until the stop's sweep has run, so the moment is exact."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._runtime.session import LashSession
from lash_nb._runtime.worker import Worker
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse
from lash_nb.stores import MemoryStore


class _HeldStore(MemoryStore):
    """Holds the first call of ``method`` made after ``arm()`` until ``release``."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method
        self.armed = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def _hold(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.release.wait()

    async def list_queued_work(self, *a: Any, **kw: Any) -> Any:
        if self.method == "list_queued_work":
            await self._hold()
        return await super().list_queued_work(*a, **kw)

    async def claim_queued_work(self, *a: Any, **kw: Any) -> Any:
        if self.method == "claim_queued_work" and not kw.get("commands"):
            await self._hold()
        return await super().claim_queued_work(*a, **kw)


@pytest.mark.parametrize("at", ["list_queued_work", "claim_queued_work"])
def test_a_stop_while_the_lane_is_about_to_start_a_turn_starts_none(
        at: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def fn(request: Any) -> Any:
        calls.append(request.messages[-1].text())
        await asyncio.sleep(3600)  # a long turn: only a cut ends it
        yield Completed(LlmResponse((LlmPart.text_part("never"),)))

    async def body() -> None:
        store = _HeldStore(at)
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(store).build()
        batch = await (await core.session("s").open()).enqueue("the question").send()
        store.armed = True
        swept = asyncio.Event()
        sweep = LashSession.cancel_running_turns

        def sweep_then_let_go(self: Any, *a: Any, **kw: Any) -> int:
            n = sweep(self, *a, **kw)
            swept.set()
            store.release.set()
            return n

        monkeypatch.setattr(LashSession, "cancel_running_turns", sweep_then_let_go)
        lines: list[str] = []
        worker = Worker(core, grace_s=0, poll_s=0.01, log=lines.append)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(store.entered.wait(), 30)
        worker.stop()
        stats = await asyncio.wait_for(running, 120)
        assert swept.is_set()
        assert calls == []  # the model was never asked
        assert stats.turns == 0 and stats.returned == []
        check = MemoryStore.list_queued_work
        [back] = await check(store, "s", include_claimed=True)
        assert (back.batch_id, back.status, back.attempts, back.error) == (
            batch.batch_id, "pending", 0, None)
        assert await store.load_turns("s") == []  # no turn started, none cut
        assert not [line for line in lines if "Error" in line], lines

    asyncio.run(body())
