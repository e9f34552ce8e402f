"""Defence in depth: a ``commit_log`` row that cannot be folded is quarantined (kept as
written, reported with one line naming the session and turn) and never blocks reads or
folds of other turns and sessions -- in this process and after a restart.

The bad rows here bypass the text sanitiser on purpose (a store-level commit carrying a lone
surrogate, a row written straight into ``commit_log``, a row that is not JSON at all).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lash_nb import LashCore
from lash_nb._store.base import Lease, RuntimeCommit, TurnStart, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb._store.duckdb.journal import plan
from lash_nb.testing import scripted
from lash_nb.testing.conformance import node, turn_record

ROOT = Path(__file__).resolve().parents[1]


def _bad_commit(sid: str, tid: str, lease: Lease | None = None) -> RuntimeCommit:
    """A turn whose user message holds a lone surrogate (as before the runtime cleaned it)."""
    return RuntimeCommit(sid, lease, append_nodes=(node(f"{tid}-u", None, "broken \ud800 text", tid),),
                         leaf_node_id=f"{tid}-u", turn_started=TurnStart(tid, 1000),
                         turn=turn_record(tid), turn_index=1)


async def _good_turns(store: Any, sid: str, n: int = 1) -> None:
    core = LashCore.builder().provider(scripted("fine")).store(store).build()
    s = await core.session(sid).open()
    for k in range(n):
        out = await s.turn(f"question {k}").run()
        assert out.result.outcome.kind == "finished"
    if isinstance(store, str):
        await core.close()


def _answers(store: Any) -> dict[str, int]:
    got = store.query("SELECT session_id, count(*) AS n FROM turns WHERE status = 'committed' "
                      "GROUP BY ALL ORDER BY 1")
    return dict(zip(got["session_id"], (int(n) for n in got["n"]), strict=True))


def test_a_commit_that_cannot_fold_is_quarantined_and_everything_else_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "lash.duckdb"
    store = DuckDBStore(path, idle_release_s=None, fold_idle_s=None)
    try:
        asyncio.run(_good_turns(store, "good"))
        with caplog.at_level(logging.WARNING, logger="lash_nb.store"):
            lease = asyncio.run(store.try_acquire_lease("bad", lease_owner_id("bad")))
            asyncio.run(store.commit(_bad_commit("bad", "t-bad", lease)))  # logged, not folded
            asyncio.run(_good_turns(store, "later"))  # its commits fold with the bad one
            assert _answers(store) == {"good": 1, "later": 1}
        lines = [r.getMessage() for r in caplog.records if r.name == "lash_nb.store"]
        assert len(lines) == 1 and "'bad'" in lines[0] and "'t-bad'" in lines[0]
        assert "\n" not in lines[0]
        q = store.quarantined_commits()
        assert q[["session_id", "turn_ids"]].values.tolist() == [["bad", "t-bad"]]
        assert "ConversionException" in q["error"][0]
        assert "\\ud800" in q["body"][0]  # kept exactly as written
        assert int(store.query("SELECT count(*) AS n FROM commit_log")["n"][0]) == 0
        asyncio.run(_good_turns(store, "good"))  # the next turns still commit and fold
        assert _answers(store) == {"good": 2, "later": 1}
    finally:
        store.close_sync()
    _check_fresh_process(path, {"good": 2, "later": 1}, [["bad", "t-bad"]])


def test_bad_rows_left_in_the_log_by_a_dead_process_are_quarantined_at_the_next_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "lash.duckdb"
    asyncio.run(_good_turns(str(path), "good", n=2))
    # what a process that died before folding leaves: rows written straight into commit_log
    bad = plan(_bad_commit("bad", "t-bad"), exists=False, rev=1, next_seq=0, stored_nodes=set(),
               open_turns={}, committed={}, t=1_700_000_000_000)
    good = plan(RuntimeCommit("other", None, append_nodes=(node("o-u", None, "hello", "t-o"),),
                              leaf_node_id="o-u", turn=turn_record("t-o"), turn_index=1),
                exists=False, rev=1, next_seq=0, stored_nodes=set(), open_turns={},
                committed={}, t=1_700_000_000_000)
    con = duckdb.connect(str(path))
    try:
        log = "INSERT INTO commit_log VALUES (?, ?, now()::TIMESTAMP, ?)"
        con.execute(log, ["bad", 1, bad.body()])
        con.execute(log, ["other", 1, good.body()])
        con.execute(log, ["garbled", 1, "{this is not json"])
        con.execute(log, ["shape", 1, '{"tables": [], "turns": [{"turn_id": "t-s"}], "session": {}}'])
    finally:
        con.close()
    with pytest.raises(Exception, match="without closing the store"):
        DuckDBStore(path, read_only=True)  # unchanged rule: a writable open folds first

    with caplog.at_level(logging.WARNING, logger="lash_nb.store"):
        store = DuckDBStore(path, idle_release_s=None)  # recover: folds "other", quarantines 3
    try:
        lines = [r.getMessage() for r in caplog.records if r.name == "lash_nb.store"]
        assert len(lines) == 3
        assert any("'bad'" in m and "'t-bad'" in m for m in lines)
        assert any("'garbled'" in m for m in lines)
        assert any("'shape'" in m and "'t-s'" in m for m in lines)
        assert _answers(store) == {"good": 2, "other": 1}
        q = store.quarantined_commits()
        assert sorted(q["session_id"]) == ["bad", "garbled", "shape"]
        loaded = asyncio.run(store.load_session("other"))
        assert loaded is not None and loaded.nodes[0].message.text() == "hello"
    finally:
        store.close_sync()
    _check_fresh_process(path, {"good": 2, "other": 1},
                         [["bad", "t-bad"], ["garbled", None], ["shape", "t-s"]])


_READER = textwrap.dedent("""
    import asyncio, json, sys
    from lash_nb._store.duckdb import DuckDBStore
    store = DuckDBStore(sys.argv[1], read_only=True)
    turns = store.query("SELECT session_id, count(*) AS n FROM turns WHERE status = 'committed' "
                        "GROUP BY ALL ORDER BY 1")
    q = store.quarantined_commits().sort_values("session_id")
    sessions = [m.session_id for m in asyncio.run(store.list_sessions())]
    print(json.dumps({"turns": dict(zip(turns["session_id"], map(int, turns["n"]), strict=True)),
                      "quarantined": [[s, t if isinstance(t, str) else None]
                                      for s, t in zip(q["session_id"], q["turn_ids"], strict=True)],
                      "sessions": sorted(sessions)}))
    store.close_sync()
""")


def _check_fresh_process(path: Path, turns: dict[str, int], quarantined: list[list[Any]]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _READER, str(path)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert got["turns"] == turns
    assert got["quarantined"] == quarantined
    assert got["sessions"] == sorted(turns)
