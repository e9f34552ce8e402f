"""SIGKILL a process in the middle of committing turns, 32 times; the file stays whole.

The child commits turns through the store API: a progress commit (the user node, opening the
turn) and a terminal commit (3 more nodes, 1 usage row, 2 tool calls, 60 events, the turn
record). After each kill the parent reopens the file and checks that no commit is half
written, then sends the recovery commit the runtime sends on open (``close_open_turns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lash_nb._store.base import Lease, ReadScope, RuntimeCommit, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore

pytestmark = pytest.mark.slow

KILLS = 32
EVENTS_PER_TURN = 60

# One process imports everything once, then forks a committer per kill (32 interpreters
# importing pandas, pyarrow and lash_nb were the longest test of the suite under load: 548 s).
# It reads "fork" on stdin; the forked child opens the store and commits turns until killed
# (it prints "ready PID" first); the forking process reaps it and prints "reaped PID".
CHILD = textwrap.dedent("""
    import asyncio, os, sys
    import pandas, pyarrow  # imported before "ready" (pyarrow pulls in pandas at its first
    pyarrow.array([0])       # array) so the kills land in commits, not in imports
    from lash_nb._core.events import AssistantProseDelta, TurnActivity
    from lash_nb._core.records import ToolCallRecord
    from lash_nb._core.usage import TokenUsage
    from lash_nb._store.base import (Lease, RuntimeCommit, TurnStart, UsageDelta,
                                     lease_owner_id)
    from lash_nb._store.duckdb import DuckDBStore
    from lash_nb.testing.conformance import node, turn_record

    async def main():
        store = DuckDBStore(sys.argv[1], idle_release_s=None)
        lease = await store.try_acquire_lease("s1", lease_owner_id("crash-child"))
        assert isinstance(lease, Lease), lease
        got = await store.load_session("s1")
        leaf = got.meta.leaf_node_id if got else None
        print(f"ready {os.getpid()}", flush=True)
        k = 0
        while True:
            k += 1
            tid = f"{os.getpid()}-{k}"
            user = node(f"{tid}-u", leaf, "question", tid)
            await store.commit(RuntimeCommit("s1", lease, append_nodes=(user,),
                               leaf_node_id=user.node_id, turn_started=TurnStart(tid, 1000)))
            rest = [node(f"{tid}-{i}", f"{tid}-{i - 1}" if i else user.node_id, "x", tid)
                    for i in range(3)]
            events = tuple(TurnActivity(f"{tid}-e{i}", f"{tid}-p", AssistantProseDelta("tok"),
                                        tid) for i in range({EVENTS_PER_TURN}))
            tools = tuple((tid, ToolCallRecord(f"{tid}-k{i}", "add", {{"a": i}}, i, True, 1.0))
                          for i in range(2))
            await store.commit(RuntimeCommit(
                "s1", lease, append_nodes=tuple(rest), leaf_node_id=rest[-1].node_id,
                usage_deltas=(UsageDelta(tid, "turn", "m", TokenUsage(10, 2)),),
                tool_calls=tools, events=events, turn=turn_record(tid, "h-" + tid)))
            leaf = rest[-1].node_id

    for line in sys.stdin:
        if line.strip() != "fork":
            break
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            asyncio.run(main())
            os._exit(0)
        os.waitpid(pid, 0)
        print(f"reaped {pid}", flush=True)
""").replace("{EVENTS_PER_TURN}", str(EVENTS_PER_TURN)).replace("{{", "{").replace("}}", "}")


def counts(store: DuckDBStore, table: str) -> dict[str, int]:
    frame = store.query(f"SELECT turn_id, count(*) AS n FROM {table} GROUP BY turn_id")
    return dict(zip(frame["turn_id"], frame["n"], strict=True))


def check_invariants(store: DuckDBStore, recoveries: int) -> tuple[int, int]:
    turns = store.query("SELECT turn_id, status, commit_hash FROM turns")
    assert not turns["turn_id"].duplicated().any()
    nodes, usage = counts(store, "graph_nodes"), counts(store, "usage_deltas")
    events, tools = counts(store, "turn_events"), counts(store, "tool_calls")
    finished = lost_or_open = 0
    for tid, status, commit_hash in turns.itertuples(index=False):
        got = (nodes.get(tid, 0), usage.get(tid, 0), events.get(tid, 0), tools.get(tid, 0))
        if status == "committed" and commit_hash != "process_lost":
            assert got == (4, 1, EVENTS_PER_TURN, 2), (tid, got)
            finished += 1
        else:
            assert got == (1, 0, 0, 0), (tid, status, got)
            lost_or_open += 1
    assert set(nodes) <= set(turns["turn_id"])  # no node without its turn row
    full = asyncio.run(store.load_session("s1"))
    path = asyncio.run(store.load_session("s1", ReadScope.ACTIVE_PATH))
    if full is None:
        assert finished == lost_or_open == 0
        return 0, 0
    assert path is not None and len(path.nodes) == len(full.nodes) == sum(nodes.values())
    assert full.meta.head_revision == 2 * finished + lost_or_open + recoveries
    return finished, lost_or_open


def test_killed_committer_never_leaves_half_a_commit(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    rng = random.Random(7)
    recoveries = 0
    forks = subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert forks.stdin is not None and forks.stdout is not None
    pid = None
    try:
        for _ in range(KILLS):
            forks.stdin.write("fork\n")
            forks.stdin.flush()
            ready, pid = forks.stdout.readline().split()
            assert ready == "ready"
            time.sleep(rng.uniform(0.0, 0.25))  # the random kill moment, not a synchronisation
            os.kill(int(pid), signal.SIGKILL)
            assert forks.stdout.readline().split() == ["reaped", pid]  # gone: the file is free
            pid = None
            recoveries, finished = _recover(path, recoveries)
    finally:
        if pid is not None:  # a failed check left a committer running
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        forks.stdin.close()  # the forking process ends at the end of its input
        forks.wait(timeout=60)
        forks.stdout.close()
    assert finished > 0  # the child got through whole turns between kills


def _recover(path: Path, recoveries: int) -> tuple[int, int]:
    """Check the file after a kill, then send the recovery commit the runtime sends on open."""
    store = DuckDBStore(path, idle_release_s=None)
    try:
        check_invariants(store, recoveries)
        lease = asyncio.run(store.try_acquire_lease("s1", lease_owner_id("recovery")))
        assert isinstance(lease, Lease)  # the dead child's lease is reclaimed
        head = asyncio.run(store.load_session("s1"))
        leaf = head.meta.leaf_node_id if head else None
        asyncio.run(store.commit(RuntimeCommit("s1", lease, leaf_node_id=leaf,
                                               close_open_turns=True, release_lease=True)))
        recoveries += 1
        after = asyncio.run(store.load_session("s1"))
        assert after is not None and after.open_turn_ids == ()
        open_rows = store.query("SELECT count(*) AS n FROM turns WHERE status = 'open'")
        assert open_rows["n"].tolist() == [0]
        finished, _ = check_invariants(store, recoveries)
    finally:
        store.close_sync()
    return recoveries, finished
