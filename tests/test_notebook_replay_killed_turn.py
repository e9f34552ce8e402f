"""A turn whose process was killed reads as such when replayed the next morning (ADR 211).

A data scientist's script (or a kernel) ran a turn; the model called a tool that took long;
the process was killed (``kill -9``, the out-of-memory killer, a closed laptop). The next
morning they open the store in a notebook: the session card says one turn did not finish and
names ``%lash replay turn-...``. That replay said "stopped before it reached the model: the
model never saw it and nothing was spent", which is false (the model had answered with the
tool call, and a paid model had been paid): the note was meant for a turn stopped while it
waited. It now says the process was lost before the turn's final commit, so what the turn
did after its prompt (model calls, tool calls, tokens) is not in the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from notebook_harness import KernelHarness

pytestmark = pytest.mark.slow  # a script killed, then a kernel

SCRIPT = """
import asyncio, time
from lash_nb import LashCore, tool

@tool
def load_sales(year: int) -> str:
    '''Load a year of sales (slow).'''
    print("working", flush=True)
    time.sleep(300)
    return "loaded"

async def main():
    core = LashCore.builder().model("lash-offline").tools(load_sales).store("night.duckdb").build()
    s = await core.session("night").open()
    await s.turn("please load_sales year=2025").run()

asyncio.run(main())
"""


def _killed_mid_tool(tmp_path: Path) -> None:
    (tmp_path / "night.py").write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "night.py"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the tool's first line: the model has called it
        assert line == "working\n", line + proc.stdout.read()
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def test_replaying_a_turn_whose_process_was_killed_says_so_and_not_that_nothing_was_spent(
        tmp_path: Path) -> None:
    _killed_mid_tool(tmp_path)
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb")
        card = k.run("%lash open night --store night.duckdb").data("text/markdown")[-1]
        assert "1 of these did not finish" in card  # what sends the user to the replay
        replay = k.run("%lash replay")
        forms = [replay.data("text/plain")[-1], replay.data("text/html")[-1]]
    for form in forms:
        assert "please load_sales year=2025" in form
        assert "nothing was spent" not in form and "never saw it" not in form
        assert "killed" in form and "final commit" in form
