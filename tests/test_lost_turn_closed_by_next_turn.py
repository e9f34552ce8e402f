"""A turn whose process was killed, closed by the next turn's first commit, counts as a turn.

The user's situation (ADR 212): a worker on another machine (or a kernel whose owner cannot be
proved dead from here) is killed mid-turn. The notebook opens the session before that
process's lease has run out, so the open cannot close the lost turn; the notebook's next turn,
once the lease expired, closes it with its first commit (``stopped: runtime_error``,
``process_lost``). Before, that closing did not count the lost turn in ``turn_index``: the
session said 1 turn where the store held 2, on that handle and on every later open (ADR 198
left it). A turn closed by the open itself already counted (ADR 198).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lash_nb import LashCore
from lash_nb.errors import SessionExecutionBusy
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore

# a process whose lease owner names another host: nothing here can prove it dead
CHILD = textwrap.dedent("""
    import asyncio, sys
    import lash_nb._store.base as base
    base._HOST = "another-machine"
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    async def main():
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0.2)).lease_ttl_ms(10_000)
                .store(DuckDBStore(sys.argv[1], idle_release_s=0.2)).build())
        s = await core.session("w").open()
        await s.turn("first question").run()
        stream = s.turn("please echo " + " ".join(f"word{i}" for i in range(500))).stream()
        async for a in stream:
            if a.type == "assistant_prose_delta":
                # the prompt is committed; the store lets the file go after 0.2 s idle,
                # writing the live lease into it: then kill me
                await asyncio.sleep(1.5)
                open(sys.argv[2], "w").close()
                await asyncio.sleep(600)

    asyncio.run(main())
""")


def test_a_lost_turn_closed_by_the_next_turns_commit_counts_among_the_turns(tmp_path: Path):
    path, mark = tmp_path / "w.duckdb", tmp_path / "streaming"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(mark)])
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), "the child's turn never streamed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

    async def main() -> tuple[int, int, list[tuple[str, str]], int]:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0))
                .store(DuckDBStore(str(path))).build())
        s = await core.session("w").open()
        assert s.state.lost_turns == ()  # the open could not close it: the lease was live
        while True:  # the killed process's lease runs out after its 10 s
            try:
                await s.turn("after the crash").run()
                break
            except SessionExecutionBusy:
                await asyncio.sleep(0.5)
        here = s.state.turn_index
        recs = await s.store.load_turns("w")
        await core.close()  # lets the file go for the next open
        again = await (LashCore.builder().provider(OfflineProvider(delay_s=0))
                       .store(DuckDBStore(str(path))).build()).session("w").open()
        codes = [(r.stop_reason, ((r.result.get("errors") or [{}])[0]).get("code", ""))
                 for r in recs]
        return here, len(recs), codes, again.state.turn_index

    here, stored, reasons, reopened = asyncio.run(main())
    assert reasons == [("assistant_message", ""), ("runtime_error", "process_lost"),
                       ("assistant_message", "")]
    assert (here, reopened) == (stored, stored) == (3, 3)
