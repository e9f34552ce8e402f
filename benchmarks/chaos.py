"""Chaos on one DuckDB file: kills, two processes at a person's pace, a full disk, a blocked
event loop. Prints a table of counts; "turns lost" (a turn its caller saw finish that the
store does not hold as finished) must be 0 everywhere.

    .venv/bin/python benchmarks/chaos.py [--kills 20] [--seed 7]

Scenarios
- kill -9: a process runs turns back to back; it is killed at a random moment, the file is
  reopened (and the killed turn closed by the next open), again and again.
- two processes: a worker drains a queue while a notebook process runs turns with pauses.
- disk full: a small tmpfs (root only; skipped otherwise) fills up in the middle of the
  notebook's turns and is freed a few seconds later.
- blocked loop: an ``async def`` tool that calls ``time.sleep`` past the lease TTL (fixed
  elsewhere; this prints what happens).
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import asyncio
import contextlib
import random
import signal
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from lash_nb import LashCore, tool
from lash_nb._errors import LashError, StoreFullError
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore

TURNS_CHILD = textwrap.dedent("""
    import asyncio, logging, sys
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    async def main(path, tag, pause, n):
        store = DuckDBStore(path, lock_timeout_s=60)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0.002)).store(store).build()
        s = await core.session(tag).open()
        print("ready", flush=True)
        k = 0
        while k < n:
            try:
                out = await s.turn(f"{tag} question {k}").run()
                waits = sum(1 for a in out.activities if a.type == "store_wait")
                print("done", out.result.turn_id, out.result.outcome.kind, waits, flush=True)
            except Exception as e:
                print("error", type(e).__name__, str(e).splitlines()[0][:200], flush=True)
            k += 1
            await asyncio.sleep(pause)
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
""")


def stored(path: Path) -> Any:
    store = DuckDBStore(path, lock_timeout_s=120)
    try:
        return store.query("SELECT session_id, turn_id, status, outcome, stop_reason FROM turns")
    finally:
        store.close_sync()


def lost(reported: dict[str, str], turns: Any) -> int:
    """Turns a caller saw end (finished or stopped) that the store lacks or holds otherwise."""
    held = dict(zip(turns["turn_id"], turns["outcome"], strict=True))
    return sum(1 for tid, kind in reported.items() if held.get(tid) != kind)


def read_lines(proc: subprocess.Popen[str], into: list[str]) -> threading.Thread:
    def run() -> None:
        assert proc.stdout is not None
        into.extend(line.rstrip("\n") for line in proc.stdout)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def scenario_kills(d: Path, kills: int, rng: random.Random) -> dict[str, Any]:
    path = d / "kills.duckdb"
    DuckDBStore(path).close_sync()
    reported: dict[str, str] = {}
    errors = 0
    for _ in range(kills):
        lines: list[str] = []
        p = subprocess.Popen([sys.executable, "-c", TURNS_CHILD, str(path), "s", "0", "100000"],
                             stdout=subprocess.PIPE, text=True)
        reader = read_lines(p, lines)
        while "ready" not in lines and p.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 1.0))  # the random kill moment
        p.send_signal(signal.SIGKILL)
        p.wait()
        reader.join(5)
        for ln in lines:
            words = ln.split()
            if words[0] == "done":
                reported[words[1]] = words[2]
            elif words[0] == "error":
                errors += 1
    # the next open of the session closes the killed turn (process_lost)
    async def reopen() -> None:
        store = DuckDBStore(path)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        await core.session("s").open()
        await store.close()

    asyncio.run(reopen())
    turns = stored(path)
    return {"scenario": f"kill -9 x{kills}", "committed": int((turns["outcome"] == "finished").sum()),
                "lost": lost(reported, turns), "errors": errors,
                "note": f"{int((turns['stop_reason'] == 'runtime_error').sum())} killed turns closed "
                     f"as process_lost; {int((turns['status'] == 'open').sum())} left open"}


def scenario_two_processes(d: Path) -> dict[str, Any]:
    path = d / "two.duckdb"

    async def fill() -> None:
        store = DuckDBStore(path, idle_release_s=0)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("queue").open()
        for i in range(150):
            await s.enqueue(f"queued {i}").send()
        await store.close()

    asyncio.run(fill())
    worker = subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all", "--delay",
         "0.01", "--poll", "0.05", "--exit-when-idle", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wlog: list[str] = []

    def wread() -> None:
        assert worker.stderr is not None
        wlog.extend(line.rstrip("\n") for line in worker.stderr)

    threading.Thread(target=wread, daemon=True).start()
    lines: list[str] = []
    nb = subprocess.Popen([sys.executable, "-c", TURNS_CHILD, str(path), "nb", "1.0", "15"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    read_lines(nb, lines).join(600)
    nb_err = nb.stderr.read() if nb.stderr else ""
    nb.wait()
    worker.wait(600)
    reported = {ln.split()[1]: ln.split()[2] for ln in lines if ln.startswith("done")}
    errors = [ln for ln in lines if ln.startswith("error")]
    turns = stored(path)
    lock_logged = sum(1 for ln in nb_err.splitlines() if "lash_nb.store" in ln and "held by" in ln)
    shown = sum(int(ln.split()[3]) for ln in lines if ln.startswith("done"))
    worker_done = sum(1 for ln in wlog if " finished" in ln)
    return {"scenario": "worker + notebook", "committed": int((turns["outcome"] == "finished").sum()),
                "lost": lost(reported, turns), "errors": len(errors),
                "note": f"notebook {len(reported)}/15 turns, worker {worker_done}/150; "
                     f"lock waits logged {lock_logged}, store_wait events {shown}; "
                     f"StoreLockedError raised "
                     f"{sum('StoreLockedError' in e for e in errors)}"}


def scenario_disk_full(d: Path) -> dict[str, Any]:
    folder = d / "small"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
            capture_output=True).returncode != 0:
        return {"scenario": "disk full", "committed": 0, "lost": 0, "errors": 0,
                    "note": "skipped: mounting a small tmpfs needs root"}
    path = folder / "lash.duckdb"
    reported: dict[str, str] = {}
    refused: list[str] = []

    @tool
    async def fill_disk() -> str:
        """Fills the disk; it is freed three seconds later."""
        filler = folder / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):  # noqa: ASYNC230  (fills the disk on purpose)
            while True:
                f.write(b"\0" * 65536)
        threading.Timer(3.0, filler.unlink).start()
        return "filled"

    waits = {"disk_full": 0}
    try:
        async def run() -> None:
            store = DuckDBStore(path, idle_release_s=None)
            core = (LashCore.builder().provider(OfflineProvider(delay_s=0.002)).store(store)
                    .tools(fill_disk).build())
            s = await core.session("nb").open()
            for k in range(40):
                # turn 10 fills the disk while it runs (a download in another tab), freed 3 s later
                ask = "please call fill_disk" if k == 10 else f"question {k} " + "words " * 200
                try:
                    stream = s.turn(ask).stream()
                    async for a in stream:
                        if a.type == "store_wait" and not a.event.done:
                            waits[a.event.reason] = waits.get(a.event.reason, 0) + 1
                    out = await stream.finish()
                    reported[out.turn_id] = out.outcome.kind
                except StoreFullError as e:
                    refused.append(str(e))
                    await asyncio.sleep(0.5)
                except LashError as e:
                    refused.append(f"{type(e).__name__}: {e}")
            await store.close()

        asyncio.run(run())
        turns = stored(path)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    return {"scenario": "disk full (tmpfs)", "committed": int((turns["outcome"] == "finished").sum()),
                "lost": lost(reported, turns), "errors": len(refused),
                "note": f"{waits['disk_full']} disk-full waits seen by turns; {len(refused)} turn "
                     "starts refused in one line (nothing of theirs stored)"}


def scenario_blocked_loop(d: Path) -> dict[str, Any]:
    path = d / "blocked.duckdb"

    @tool
    async def sleepy() -> str:
        """Blocks the event loop (time.sleep inside async def)."""
        time.sleep(3.0)  # noqa: ASYNC251  (the scenario: a tool that blocks the loop)
        return "slept"

    async def run() -> str:
        store = DuckDBStore(path)
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store)
                .tools(sleepy).lease_ttl_ms(1500).build())
        s = await core.session("s").open()
        try:
            out = await asyncio.wait_for(s.turn("please call sleepy").run(), 120)
            what = f"turn ended {out.result.outcome.kind}"
        except Exception as e:
            what = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
        await store.close()
        return what

    what = asyncio.run(run())
    turns = stored(path)
    return {"scenario": "blocked loop > lease TTL", "committed": int((turns["outcome"] == "finished").sum()),
                "lost": 0, "errors": int("Error" in what or "Lost" in what), "note": what}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for run in (lambda: scenario_kills(d, args.kills, rng), lambda: scenario_two_processes(d),
                    lambda: scenario_disk_full(d), lambda: scenario_blocked_loop(d)):
            t = time.monotonic()
            row = run()
            row["s"] = time.monotonic() - t
            rows.append(row)
            print(f"  ... {row['scenario']} done in {row['s']:.0f} s", file=sys.stderr, flush=True)
    print(f"{'scenario':<26} {'finished turns':>14} {'turns lost':>10} {'errors shown':>12} "
          f"{'seconds':>8}  notes")
    for r in rows:
        print(f"{r['scenario']:<26} {r['committed']:>14} {r['lost']:>10} {r['errors']:>12} "
              f"{r['s']:>8.0f}  {r['note']}")


if __name__ == "__main__":
    main()
