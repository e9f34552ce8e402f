"""A batch that joined a running turn at a checkpoint goes back to the queue when a person
stops that turn: the person stopped their own question, not the one a script queued.

The user's situation (ADR 212): a notebook's turn is running a tool; meanwhile a script (or a
colleague's process) enqueues a question with `delivery_policy("earliest_safe_boundary")`.
The running turn takes it at its next checkpoint. The person then presses Stop (the widget's,
`%lash stop`, the kernel's interrupt). Before, the stopped turn completed the script's batch
with it: the queue was empty, `await_queued_work_batch` returned, and the script's question was
never answered, by anyone. Now that batch is handed back uncounted (as a worker's stop hands
back its batch, ADR 158) and the next drain answers it; the turn's own input (a queued turn's
first batch too: the person saw it) is done, as before.
"""

from __future__ import annotations

import asyncio

from lash_nb import CancellationToken, LashCore, tool
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore

LONG = " ".join(f"w{i}" for i in range(80))


def _core(path: str, started: asyncio.Event) -> LashCore:
    @tool
    async def crunch(n: int) -> str:
        """Crunch a number."""
        started.set()
        await asyncio.sleep(0.5)  # the script enqueues meanwhile
        return "crunched"

    return (LashCore.builder().provider(OfflineProvider(delay_s=0.05)).tools(crunch)
            .store(DuckDBStore(path)).build())


async def _stop_after_join(s, turn, started: asyncio.Event) -> tuple[object, str]:
    await started.wait()
    batch = await s.enqueue("script: what is two plus two").id("script-1") \
        .delivery_policy("earliest_safe_boundary").send()
    async for a in turn:
        if a.type == "queued_input_accepted":
            break
    # the turn took the script's question; the person stops the turn while it answers
    async for a in turn:
        if a.type == "assistant_prose_delta":
            turn.token.cancel("widget_stop", None)
            break
    return await turn.finish(), batch.batch_id


def test_a_persons_stop_hands_back_a_batch_that_joined_the_turn(tmp_path):
    async def main():
        started = asyncio.Event()
        core = _core(str(tmp_path / "j.duckdb"), started)
        s = await core.session("nb").open()
        turn = s.turn(f"please crunch 3 then talk about {LONG}").stream()
        result, script_batch = await _stop_after_join(s, turn, started)
        assert str(result.outcome) == "stopped: cancelled"
        pending = [b.batch_id for b in await s.queued_work()]
        assert pending == [script_batch]  # back in the queue, not done unanswered
        out = await s.queued_turn().run()  # the next drain (a worker, %lash drain) answers it
        assert out.result.queued_batch_ids == (script_batch,)
        assert "You said: script: what is two plus two" in out.text
        assert await s.queued_work(include_claimed=True) == []
        await s.await_queued_work_batch("script-1", timeout=5)

    asyncio.run(main())


def test_a_stopped_queued_turn_keeps_its_own_batch_done_and_hands_back_the_joined_one(tmp_path):
    async def main():
        started = asyncio.Event()
        core = _core(str(tmp_path / "q.duckdb"), started)
        s = await core.session("nb").open()
        own = await s.enqueue(f"please crunch 3 then talk about {LONG}").send()
        token = CancellationToken()
        task = asyncio.ensure_future(s.queued_turn().cancel(token).run())
        await started.wait()
        script = await s.enqueue("script: what is two plus two").id("script-1") \
            .delivery_policy("earliest_safe_boundary").send()
        while await s.queued_work():  # until the running turn took the script's batch
            await asyncio.sleep(0.05)
        token.cancel("widget_stop", None)  # the person stops the drained turn (panel, cell)
        result = (await task).result
        assert str(result.outcome) == "stopped: cancelled"
        assert result.queued_batch_ids == (own.batch_id,)  # the person's stop: it is done
        assert [b.batch_id for b in await s.queued_work()] == [script.batch_id]

    asyncio.run(main())
