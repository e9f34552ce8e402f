"""A worker left idle on a DuckDB file beside a notebook: it does not reopen the file at every
poll (each reopen took the file from the notebook and cost ~20-25 ms of CPU, five times a
second), and it still runs what another process enqueues, or what falls due, at its next poll.

Counts of polls, not times: a loaded machine makes fewer polls, never more.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

ENQUEUE = """
import asyncio, sys, time
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

async def main():
    core = (LashCore.builder().provider(FunctionProvider(lambda r: "never called")).model("m")
            .store(DuckDBStore(sys.argv[1])).build())
    s = await core.session("s").open()
    b = s.enqueue(sys.argv[2])
    if len(sys.argv) > 3:  # due that many ms from now: printed
        due = int(time.time() * 1000) + int(sys.argv[3])
        b = b.available_at_ms(due)
        print(due)
    await b.send()
    await core.close()

asyncio.run(main())
"""

POLL_S = 0.01
IDLE_POLLS = 40  # ~0.4 s at least; before: one open of the file per poll
AFTER_BOUND = 4  # polls from "there is work" to its turn: the next poll, give or take one


def _enqueue_elsewhere(path: Path, prompt: str, in_ms: int | None = None) -> int | None:
    """A notebook in another process enqueues (due ``in_ms`` from then) and closes its store;
    the batch's due time (ms since the epoch)."""
    args = [sys.executable, "-c", ENQUEUE, str(path), prompt]
    if in_ms is not None:
        args.append(str(in_ms))
    out = subprocess.run(args, check=True, timeout=120, capture_output=True, text=True).stdout
    return int(out.split()[-1]) if in_ms is not None else None


async def _idle_worker(path: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    from lash_nb._runtime.worker import Worker

    store = DuckDBStore(str(path))
    core = (LashCore.builder().provider(FunctionProvider(lambda r: "worked")).model("m")
            .store(store).build())
    seen: dict[str, Any] = {"polls": 0, "first_due_poll": None, "due_ms": None}
    original = store.sessions_with_ready_work

    async def counted() -> list[str]:
        seen["polls"] += 1
        if (seen["due_ms"] is not None and seen["first_due_poll"] is None
                and time.time() * 1000 >= seen["due_ms"]):
            seen["first_due_poll"] = seen["polls"]
        return await original()

    store.sessions_with_ready_work = counted  # type: ignore[method-assign]
    worker = Worker(core, poll_s=POLL_S, log=lambda m: None)
    task = asyncio.ensure_future(worker.run())
    return worker, task, store, seen


# a hang guard counted in the worker's polls, not by a clock (a slower machine makes fewer polls
# in the same time); far past the 3 s a scheduled batch waits and the 5 s safety re-read
GIVE_UP_POLLS = 5000


async def _until(cond: Any, what: str, seen: dict[str, Any]) -> None:
    give_up = seen["polls"] + GIVE_UP_POLLS
    while not cond():
        assert seen["polls"] < give_up, f"gave up waiting after {GIVE_UP_POLLS} polls: {what}"
        await asyncio.sleep(POLL_S)


def test_an_idle_worker_keeps_off_the_file_and_runs_what_a_notebook_enqueues_next_poll(
        tmp_path: Path) -> None:
    path = tmp_path / "team.duckdb"
    _enqueue_elsewhere(path, "a first question")  # the notebook's store, with one batch

    async def body() -> None:
        worker, task, store, seen = await _idle_worker(path)
        await _until(lambda: worker.stats.turns == 1, "the first batch", seen)
        opens_idle, polls_idle = store._worker.opens, seen["polls"]
        await _until(lambda: seen["polls"] >= polls_idle + IDLE_POLLS, "idle polls", seen)
        idle_opens = store._worker.opens - opens_idle
        # before: one reopen per poll (40+); now the file is read again only when it changed
        # (our own release's checkpoint after the turn may change it once)
        assert idle_opens <= 2, f"{idle_opens} opens of the file in {IDLE_POLLS}+ idle polls"

        _enqueue_elsewhere(path, "a second question")  # another process writes the file
        enqueued_at = seen["polls"]
        await _until(lambda: worker.stats.turns == 2, "the batch enqueued elsewhere", seen)
        assert seen["polls"] - enqueued_at <= AFTER_BOUND, (
            f"the worker took {seen['polls'] - enqueued_at} polls to see the enqueue")
        worker.stop()
        await asyncio.wait_for(task, 60)
        await store.close()

    asyncio.run(body())


def test_a_batch_scheduled_for_later_runs_at_the_first_poll_after_it_falls_due(
        tmp_path: Path) -> None:
    """Nothing is written when a scheduled batch falls due: the worker must know the moment
    from its last read, not wait for a write or its safety re-read (``idle_poll.RECHECK_S``,
    hundreds of polls here). The code before read the file at every poll, so it passed this
    too; a mark that forgot the due time fails it."""
    path = tmp_path / "team.duckdb"
    _enqueue_elsewhere(path, "a first question")

    async def body() -> None:
        worker, task, store, seen = await _idle_worker(path)
        await _until(lambda: worker.stats.turns == 1, "the first batch", seen)
        seen["due_ms"] = _enqueue_elsewhere(path, "at the top of the hour", 3000)
        await _until(lambda: worker.stats.turns == 2, "the scheduled batch", seen)
        # polls begun once it was due (a poll begun just before may already find it due)
        late = 0 if seen["first_due_poll"] is None else seen["polls"] - seen["first_due_poll"]
        assert late <= AFTER_BOUND, f"the scheduled batch ran {late} polls after it fell due"
        worker.stop()
        await asyncio.wait_for(task, 60)
        await store.close()

    asyncio.run(body())
