"""A session's tool state (every tool's manifest and membership) is written when it changes,
not with every commit: a notebook with an MCP server of forty tools logged the whole catalog
(~20 kB) twice a turn. The user's situation: a session on a DuckDB file whose tools change
mid-session (a tool switched off, a tool added later), the process killed with the commits
only in the log, the file reopened in a new process: the session comes back with the tools as
they were last, and every turn.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from lash_nb import LashCore, tool
from lash_nb._store.duckdb import DuckDBStore

CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from lash_nb import LashCore, TurnInput, tool
    from lash_nb._providers.offline import OfflineProvider
    from lash_nb._store.duckdb import DuckDBStore

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b

    @tool
    def shout(text: str) -> str:
        \"\"\"The text in capitals.\"\"\"
        return text.upper()

    @tool
    def later(x: int) -> int:
        \"\"\"Added once the session ran a while.\"\"\"
        return x

    async def main():
        store = DuckDBStore(sys.argv[1], idle_release_s=None, fold_idle_s=None)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add, shout).store(store).build()
        session = await core.session("s").open()
        for k in range(3):
            await session.turn(TurnInput.text(f"call add with a={k} and b=1")).run()
        session.tools().set_membership("shout", False)
        await session.turn(TurnInput.text("call add with a=10 and b=1")).run()
        session.tools().add_provider(later)
        await session.turn(TurnInput.text("call add with a=20 and b=1")).run()
        await session.turn(TurnInput.text("call add with a=30 and b=1")).run()
        print("done", store.unfolded_commits, flush=True)
        time.sleep(600)

    asyncio.run(main())
""")


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@tool
def later(x: int) -> int:
    """Added once the session ran a while."""
    return x


def _tools(state: dict | str) -> dict[str, bool]:
    """tool name -> member, from a stored tool state (JSON text or decoded)."""
    if isinstance(state, str):
        state = json.loads(state)
    return {row["manifest"]["name"]: row.get("member", True) for row in state["tools"].values()}


@pytest.mark.slow
def test_tool_changes_mid_session_survive_a_kill_and_unchanged_ones_are_not_logged(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        word, unfolded = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert word == "done" and int(unfolded) == 12  # six turns, two commits each, all in the log

    # what the log holds, read by DuckDB itself (no lash_nb code decodes it)
    con = duckdb.connect(str(path))
    try:
        bodies = [json.loads(b) for (b,) in con.execute(
            "SELECT body FROM commit_log ORDER BY head_revision").fetchall()]
    finally:
        con.close()
    states = [b["session"]["tool_state"] for b in bodies]
    written = [(i, _tools(s)) for i, s in enumerate(states) if s is not None]
    # the first commit, the first after the switch-off (turn 4) and after the add (turn 5)
    assert written == [
        (0, {"add": True, "shout": True}),
        (6, {"add": True, "shout": False}),
        (8, {"add": True, "later": True, "shout": False}),
    ]

    # the next process: the log folds, the session comes back as it was last
    store = DuckDBStore(path, idle_release_s=None)
    try:
        stored = store.query("SELECT tool_state FROM sessions")["tool_state"].tolist()
        assert [_tools(s) for s in stored] == [{"add": True, "later": True, "shout": False}]

        core = LashCore.builder().tools(add, shout, later).store(store).build()

        async def reopen() -> tuple[dict[str, bool], int]:
            session = await core.session("s").open()
            members = {t["name"]: t["member"] for t in session.tools().all_tools()}
            return members, len(await store.load_turns("s"))

        members, turns = asyncio.run(reopen())
        assert members == {"add": True, "later": True, "shout": False}
        assert turns == 6
    finally:
        store.close_sync()


def test_a_tool_state_a_user_changes_is_not_the_one_commits_share(tmp_path: Path) -> None:
    """``session.tools().state()`` and ``export_state()`` are the user's copies: emptying them
    changes neither the session nor what its next commit stores."""
    path = tmp_path / "lash.duckdb"

    async def body() -> dict:
        store = DuckDBStore(path, idle_release_s=None)
        try:
            core = LashCore.builder().tools(add).store(store).build()
            session = await core.session("s").open()
            await session.turn("first").run()
            session.tools().state()["tools"].clear()
            session.export_state()["tool_state"]["tools"].clear()
            await session.turn("second").run()
            return store.query("SELECT tool_state FROM sessions")["tool_state"][0]
        finally:
            await store.close()

    stored = asyncio.run(body())
    assert _tools(stored) == {"add": True}


def test_on_postgresql_tool_changes_stick_and_another_process_does_not_lose_its_own(pg_dsn: str) -> None:
    """Two processes (two stores) on one PostgreSQL session, in turn: each one's tool change is
    what the session holds after its commit, and a commit that changes nothing keeps it."""
    from lash_nb._providers.offline import OfflineProvider
    from lash_nb._store.postgres import PostgresStore

    def stored(store) -> dict[str, bool]:
        return _tools(store.query("SELECT tool_state FROM sessions")["tool_state"][0])

    async def body() -> list[dict[str, bool]]:
        seen = []
        a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
        try:
            core_a = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add, shout).store(a).build()
            core_b = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add, shout).store(b).build()
            sa = await core_a.session("s").open()
            await sa.turn("one").run()
            await sa.turn("two").run()
            seen.append(stored(a))
            sa.tools().set_membership("shout", False)
            await sa.turn("three").run()
            seen.append(stored(a))
            await sa.close()
            sb = await core_b.session("s").open()  # restores shout switched off
            sb.tools().set_membership("shout", True)
            await sb.turn("four").run()
            seen.append(stored(b))
            await sb.close()
            sa = await core_a.session("s").open()  # restores B's state: shout on
            sa.tools().set_membership("add", False)
            await sa.turn("five").run()
            seen.append(stored(a))
        finally:
            await a.close()
            await b.close()
        return seen

    assert asyncio.run(body()) == [
        {"add": True, "shout": True},
        {"add": True, "shout": False},
        {"add": True, "shout": True},
        {"add": False, "shout": True},
    ]
