"""A turn run with the Python API in a notebook survives Kernel > Restart / Shut Down.

An agent engineer opens a session with ``LashCore`` in a notebook, no ``%load_ext lash_nb``,
and awaits or streams a turn (or lets it run as a task, or lets the session's drainer answer
a queued prompt). Kernel > Restart mid-turn used to lose the answer streamed so far: the
kernel exited before the turn's final commit, and the next open closed the turn
``stopped: runtime_error`` (``process_lost``) with its prompt only (on ipykernel 7.4 for every
kind of turn; on 6.29 an awaited turn was kept, as the interrupt jupyter_client sends before
the shutdown request cancelled the cell, but a streamed turn, a task and a drain were lost).
ADR 195's shutdown hook covered the sessions ``%lash open`` opened only. Now opening any
session in a running kernel hooks its shutdown (ADR 198).

An awaited or streamed turn may be stopped by that interrupt first (origin
``kernel_interrupt``: the cell's await was cancelled by it, ADR 212) or by the shutdown
(``kernel_shutdown``); either way the store keeps what it had streamed. A task or a drain
is not the cell's: only the shutdown stops it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from notebook_harness import KernelHarness

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider

LONG = "please echo " + " ".join(f"word{i}" for i in range(400))
# 0.2 s a word: the 200 paced words outlast the test's shutdown on a loaded machine
OPEN = textwrap.dedent("""
    import asyncio
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    core = LashCore.builder().provider(OfflineProvider(delay_s=0.2)).store("k.duckdb").build()
    session = await core.session("k").open()

    async def say_when_streamed(deltas=20):
        # the test's signal: 20 deltas ("You said: please echo word0 ... word15") streamed
        obs = session.observe()
        seen = 0
        async for ev in obs.subscribe_from_cursor(obs.current_observation().cursor):
            if getattr(ev, "kind", "") == "turn_activity" and \\
                    ev.activity.type == "assistant_prose_delta":
                seen += 1
                if seen == deltas:
                    print("streamed", flush=True)
                    return
""")
CELLS = {
    "awaited": f"watch = asyncio.ensure_future(say_when_streamed())\n"
               f"out = await session.turn({LONG!r})",
    "streamed": f"n = 0\nasync for a in session.turn({LONG!r}).stream():\n"
                "    n += a.type == 'assistant_prose_delta'\n"
                "    if n == 20:\n        print('streamed', flush=True)",
    "task": f"watch = asyncio.ensure_future(say_when_streamed())\n"
            f"task = asyncio.ensure_future(session.turn({LONG!r}).run())",
    "drain": f"await session.enqueue({LONG!r}).id('later').send()\n"
             "watch = asyncio.ensure_future(say_when_streamed())\nsession.drainer.enable()",
}


def _read(path: Path, sql: str) -> list[dict]:
    async def body() -> list[dict]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(str(path)).build()
        try:
            return [dict(r) for r in core.store.query(sql).to_dict("records")]
        finally:
            await core.close()

    return asyncio.run(body())


def _stop_kernel_mid_turn(tmp_path: Path, kind: str, *, restart: bool) -> None:
    """Open a session with the API (no extension), start the ``kind`` turn, and once it
    streamed 20 deltas ask the kernel to restart (shut down), as the Kernel menu does."""
    k = KernelHarness(cwd=str(tmp_path)).start()
    try:
        k.run(OPEN, timeout=180)
        ex = k.submit(CELLS[kind])
        k.pump_until(lambda: "streamed" in ex.stdout, timeout=180)
    finally:
        assert k.kc is not None and k.km is not None
        k.kc.stop_channels()
        if restart:
            k.km.restart_kernel(now=False)  # an interrupt, then a shutdown_request (restart)
        k.km.shutdown_kernel(now=False)
        k.kc = k.km = None


def _the_stopped_turn(tmp_path: Path) -> dict:
    turns = _read(tmp_path / "k.duckdb", "SELECT turn_id, outcome, stop_reason, result "
                                         "FROM turns WHERE session_id = 'k' ORDER BY seq")
    assert [(t["outcome"], t["stop_reason"]) for t in turns] == [("stopped", "cancelled")], turns
    result = json.loads(turns[0]["result"])
    # what had streamed when the kernel was asked to stop is in the store
    assert "You said: please echo word0 word1" in result["assistant_output"]["safe_text"]
    assert "word15" in result["assistant_output"]["safe_text"]
    return result


@pytest.mark.parametrize(("kind", "restart"), [("awaited", True), ("streamed", False)])
def test_an_api_turn_of_a_cell_keeps_its_streamed_answer_when_the_kernel_stops(
        tmp_path: Path, kind: str, restart: bool) -> None:
    _stop_kernel_mid_turn(tmp_path, kind, restart=restart)
    result = _the_stopped_turn(tmp_path)
    # the interrupt jupyter_client sends first is the kernel's interrupt (ADR 212)
    assert result["cancellation"]["origin"] in ("kernel_shutdown", "kernel_interrupt")


def test_an_api_turn_running_as_a_task_is_committed_by_a_kernel_restart(tmp_path: Path) -> None:
    _stop_kernel_mid_turn(tmp_path, "task", restart=True)
    result = _the_stopped_turn(tmp_path)
    assert result["cancellation"]["origin"] == "kernel_shutdown"


def test_an_api_drain_cut_by_a_kernel_restart_gives_its_batch_back(tmp_path: Path) -> None:
    """The drainer's prompt is pending again, its attempt not counted (no person stopped
    it), and the drainer did not claim it again while the kernel was going."""
    _stop_kernel_mid_turn(tmp_path, "drain", restart=True)
    result = _the_stopped_turn(tmp_path)
    assert result["cancellation"]["origin"] == "kernel_shutdown"
    pending = _read(tmp_path / "k.duckdb", "SELECT source_key, attempts FROM queued_work_batches")
    done = _read(tmp_path / "k.duckdb", "SELECT source_key FROM queue_history")
    assert [(p["source_key"].endswith("later"), p["attempts"]) for p in pending] == [(True, 0)]
    assert done == []


SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import ipykernel.kernelapp  # imported, as in a process that starts kernels, none running
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider

    async def main():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).build()
        session = await core.session("s").open()
        out = await session.turn("hello").run()
        second = await session.turn("again").run()
        print(out.result.outcome.kind, second.result.outcome.kind,
              ipykernel.kernelapp.IPKernelApp.initialized())
        await core.close()

    asyncio.run(main())
""")


def test_a_script_without_a_running_kernel_runs_its_turns_as_before(tmp_path: Path) -> None:
    """No kernel is made up: the kernel app is looked up, never instantiated."""
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         cwd=tmp_path, check=True, timeout=300)
    assert out.stdout.split() == ["finished", "finished", "False"], out.stderr
