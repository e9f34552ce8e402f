"""Chaos for the queue (issue 13, "Leases, retries and the queue"): counts, not timings.

Three scenarios on one DuckDB file each; every line printed is a count a durable queue must
get right:

- ``blocked-loop``: a worker whose tool blocks the event loop past the lease TTL (a sync
  ``time.sleep`` inside ``async def``). Before the fix every turn raised
  ``SessionExecutionLeaseLost`` and the batch was retried for ever.
- ``kill``: workers (real processes) killed with SIGKILL at random moments while they drain,
  restarted until the queue is empty. Counts batches completed, turns closed as
  ``process_lost``, batches parked failed, and prompts the model would see twice.
- ``poison``: one batch whose commit always fails among good ones. Counts how often it was
  tried and whether the good ones ran.

    python benchmarks/chaos_queue.py [--batches 20] [--kills 10] [--seed 1] [--only kill]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/queue.py would shadow the standard library's queue module

from lash_nb import LashCore, tool
from lash_nb._errors import StoreError
from lash_nb._runtime.worker import Worker
from lash_nb.providers import FunctionProvider, OfflineProvider
from lash_nb.stores import DuckDBStore


def _user_prompts(session) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text() for m in session.read_view().messages()
            if m.role.value == "user" and not m.tool_results()]


async def _summary(path: str, label: str) -> dict[str, int]:
    store = DuckDBStore(path, idle_release_s=None)
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
    try:
        turns = store.query("SELECT outcome, stop_reason, commit_hash FROM turns")
        left = await store.list_queued_work("s", include_claimed=True)
        done = store.query("SELECT count(*) AS n FROM queue_history WHERE final_state = 'completed'")
        session = await core.session("s").open()
        prompts = _user_prompts(session)
        return {
            f"{label}: batches completed": int(done["n"][0]),
            f"{label}: batches parked failed": sum(b.status == "failed" for b in left),
            f"{label}: batches still queued": sum(b.status != "failed" for b in left),
            f"{label}: turns finished": int((turns["outcome"] == "finished").sum()),
            f"{label}: turns closed as process_lost": int((turns["commit_hash"] == "process_lost").sum()),
            f"{label}: other stopped turns": int(((turns["outcome"] == "stopped")
                                                  & (turns["commit_hash"] != "process_lost")).sum()),
            f"{label}: prompts on the active path twice": len(prompts) - len(set(prompts)),
        }
    finally:
        await core.close()


async def _enqueue(path: str, texts: list[str]) -> None:
    store = DuckDBStore(path, idle_release_s=0.05)
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
    session = await core.session("s").open()
    for i, text in enumerate(texts):
        await session.enqueue(text).id(f"b{i}").send()
    await core.close()


# ---------------------------------------------------------------------------- scenarios
async def blocked_loop(folder: Path, batches: int) -> dict[str, int]:
    path = str(folder / "blocked.duckdb")
    await _enqueue(path, [f"task {i}: crunch the numbers" for i in range(batches)])

    @tool
    async def crunch() -> str:
        """Blocks the event loop past the lease TTL."""
        time.sleep(0.6)  # noqa: ASYNC251  (the scenario: a tool that blocks the loop)
        return "crunched"

    def model(request):  # type: ignore[no-untyped-def]
        if request.messages[-1].tool_results():
            return "done"
        return [__import__("lash_nb.testing", fromlist=["tool_call"]).tool_call("crunch")]

    core = (LashCore.builder().provider(FunctionProvider(model)).model("m").tools(crunch)
            .store(path).lease_ttl_ms(300).build())
    errors: list[str] = []
    await Worker(core, poll_s=0.05, log=errors.append).run(max_idle_s=1.0)
    out = await _summary(path, "blocked-loop")
    out["blocked-loop: worker errors logged"] = sum("Error" in e for e in errors)
    return out


def _start_worker(path: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", path, "--all", "--delay", "0.01",
         "--poll", "0.05"], stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


async def kill(folder: Path, batches: int, kills: int, rng: random.Random) -> dict[str, int]:
    path = str(folder / "kill.duckdb")
    words = " ".join(f"w{j}" for j in range(30))  # ~0.3 s of streaming per turn
    await _enqueue(path, [f"task {i}: {words}" for i in range(batches)])
    log = folder / "kill-workers.log"
    for _ in range(kills):
        victim = _start_worker(path, log)
        time.sleep(rng.uniform(0.5, 2.0))  # noqa: ASYNC251  (nothing else runs on this loop)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
    with open(log, "ab") as err:  # noqa: ASYNC230  (nothing else runs on this loop)
        finisher = subprocess.run(  # noqa: ASYNC221
            [sys.executable, "-m", "lash_nb", "worker", "--store", path, "--all", "--delay", "0",
             "--poll", "0.05", "--exit-when-idle", "1.5"],
            stdout=subprocess.DEVNULL, stderr=err, timeout=600)
    out = await _summary(path, "kill")
    out["kill: workers killed"] = kills
    out["kill: finishing worker exit code"] = finisher.returncode
    return out


async def poison(folder: Path, batches: int) -> dict[str, int]:
    path = str(folder / "poison.duckdb")
    await _enqueue(path, ["poison pill"] + [f"good {i}" for i in range(batches - 1)])
    store = DuckDBStore(path)
    real = store.commit
    refused = {"n": 0}

    async def commit(c):  # type: ignore[no-untyped-def]
        if any(n.message is not None and "poison" in n.message.text() for n in c.append_nodes):
            refused["n"] += 1
            raise StoreError("the store refuses this text (simulated)")
        return await real(c)

    store.commit = commit  # type: ignore[method-assign]
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
    await Worker(core, poll_s=0.05, log=lambda _: None).run(max_idle_s=1.0)
    out = await _summary(path, "poison")
    out["poison: commits of the poison batch tried"] = refused["n"]
    return out


async def main_async(batches: int, kills: int, seed: int, only: str | None) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results: dict[str, int] = {}
        if only in (None, "blocked-loop"):
            results.update(await blocked_loop(folder, min(batches, 8)))
        if only in (None, "kill"):
            results.update(await kill(folder, batches, kills, rng))
        if only in (None, "poison"):
            results.update(await poison(folder, batches))
    for key, value in results.items():
        print(f"{key:55s} {value}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=("blocked-loop", "kill", "poison"), default=None)
    a = ap.parse_args()
    asyncio.run(main_async(a.batches, a.kills, a.seed, a.only))


if __name__ == "__main__":
    main()
