"""A worker beside a notebook whose session has Python tools the worker was not given.

The notebook's session offers ``weather``; ``python -m lash_nb worker --store lash.duckdb``
without ``--tools`` runs its queued prompt with no tools at all (they are orphaned in the
worker's process). Before (docs/adr/0201) nothing said so: the answer simply lacked the tool.
Now the worker says once, in one line, which tools it lacks and how to give them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from lash_nb import LashCore, tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


def test_a_worker_without_the_sessions_tools_names_them_once(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"

    async def notebook() -> None:
        core = LashCore.builder().model("lash-offline").tools(weather).store(path).build()
        s = await core.session("agent").open()
        await s.turn("weather for 'Rome'").run()  # the session's tools are stored with a turn
        s.drainer.pause()
        await s.enqueue("weather for 'Paris'").id("a").send()
        await s.enqueue("weather for 'Oslo'").id("b").send()
        await s.close()

    asyncio.run(notebook())
    done = subprocess.run(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--poll", "0.05",
         "--exit-when-idle", "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 turns" in done.stderr, done.stderr  # it still runs them
    said = [line for line in done.stderr.splitlines() if "weather" in line]
    assert len(said) == 1, done.stderr
    assert "'agent'" in said[0] and "--tools" in said[0], said
