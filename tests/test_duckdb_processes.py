"""Two real processes on one DuckDB file: waiting for the lock, giving up, leases."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lash_nb._errors import StoreLockedError
from lash_nb._store.base import Lease, LeaseBusy, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import asyncio, sys, threading
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb._store.duckdb import DuckDBStore

    path, mode, arg = sys.argv[1], sys.argv[2], float(sys.argv[3])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    async def main():
        store = DuckDBStore(path, idle_release_s=arg if mode != "forever" else 0.2)
        if mode == "lease":
            lease = await store.try_acquire_lease("s1", lease_owner_id("child"))
            print("lease", lease.owner_id, flush=True)
            await asyncio.to_thread(stop.wait)
        elif mode == "busy":  # commit back to back for `arg` seconds, then go idle
            held = await store.try_acquire_lease("s1", lease_owner_id("child"))
            await store.commit(RuntimeCommit("s1", held))
            print("holding", flush=True)
            loop = asyncio.get_running_loop()
            end, n = loop.time() + 1.0, 1
            while loop.time() < end:
                await store.commit(RuntimeCommit("s1", held))
                n += 1
            print("commits", n, flush=True)
            await asyncio.to_thread(stop.wait)
        elif mode == "stuck":  # one job that holds the file until told to stop
            held = await store.try_acquire_lease("s1", lease_owner_id("child"))
            await store.commit(RuntimeCommit("s1", held))
            job = store._worker.submit(lambda con: (print("holding", flush=True), stop.wait()))
            await asyncio.wrap_future(job)
        else:  # "forever": keep working until told to stop
            held = await store.try_acquire_lease("s1", lease_owner_id("child"))
            await store.commit(RuntimeCommit("s1", held))
            print("holding", flush=True)
            while not stop.is_set():
                await store.commit(RuntimeCommit("s1", held))
        await store.close()

    asyncio.run(main())
""")


def spawn(path: Path, mode: str, arg: float = 0.3) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode, str(arg)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def finish(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(timeout=120) == 0


def test_second_process_waits_until_the_first_goes_idle(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    a = spawn(path, "busy", 0.3)
    try:
        assert a.stdout is not None
        assert a.stdout.readline().split() == ["holding"]
        store = DuckDBStore(path, lock_timeout_s=120)  # waits while A commits back to back
        try:
            commits = int(a.stdout.readline().split()[1])
            got = asyncio.run(store.load_session("s1"))
            assert got is not None and got.meta.head_revision == commits
            assert commits > 1
        finally:
            store.close_sync()
    finally:
        finish(a)


def test_waiting_process_gives_up_naming_the_holder_pid(tmp_path: Path) -> None:
    """A lash holder hands the file over between jobs; one stuck inside a single job cannot,
    and the waiter then gives up with a message naming it."""
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    a = spawn(path, "stuck")
    try:
        assert a.stdout is not None
        assert a.stdout.readline().split() == ["holding"]
        with pytest.raises(StoreLockedError) as e:
            DuckDBStore(path, lock_timeout_s=0.5)
        assert e.value.pid == a.pid
        assert f"held by process pid {a.pid}" in str(e.value)
        waited = re.search(r"waited (\d+\.\d) s", str(e.value))
        assert waited is not None and float(waited.group(1)) >= 0.5
    finally:
        finish(a)


def test_lease_held_by_another_process_is_busy_until_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    a = spawn(path, "lease", 0.05)
    try:
        assert a.stdout is not None
        words = a.stdout.readline().split()
        assert words[0] == "lease" and f":{a.pid}:" in words[1]
        store = DuckDBStore(path, idle_release_s=0.05)
        try:
            me = lease_owner_id("parent")
            busy = asyncio.run(store.try_acquire_lease("s1", me))
            assert isinstance(busy, LeaseBusy) and busy.holder_owner_id == words[1]
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=10)
            taken = asyncio.run(store.try_acquire_lease("s1", me))
            assert isinstance(taken, Lease) and taken.fencing == 2
        finally:
            store.close_sync()
    finally:
        if a.poll() is None:
            finish(a)
