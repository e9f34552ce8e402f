"""A script whose stopped turn left a plain ``def`` tool running can still exit.

A plain function runs on a thread, and Python cannot stop a thread: after a Stop the function
runs on (a warning says so). It ran on the event loop's default executor, whose threads the
interpreter waits for at exit: ``asyncio.run(...)`` waited for the executor to shut down,
and the script (or worker) that stopped a turn hung until the tool returned, however long
that was. The tool's thread is now a daemon thread: the script ends when its work does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import asyncio, time
from lash_nb import LashCore, tool
from lash_nb.testing import scripted, tool_call

@tool
def stuck(x: str = "a") -> str:
    \"\"\"Waits on a server that never answers.\"\"\"
    time.sleep(600)
    return "late"

async def main():
    core = LashCore.builder().provider(scripted([tool_call("stuck", "{}")], "done")).tools(
        stuck).build()
    s = await core.session("s").open()
    turn = asyncio.create_task(s.turn("go").run())
    await asyncio.sleep(1.0)  # the tool is running by then (a stop before it is also a stop)
    s.cancel_running_turns()
    out = await turn
    print("outcome", out.result.outcome, flush=True)
    await core.close()

asyncio.run(main())
print("the script ended", flush=True)
"""


def test_a_script_exits_after_stopping_a_turn_whose_tool_runs_on() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)  # the tool sleeps 600 s
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the script did not end while the tool ran on: {out}{err}") from None
    assert proc.returncode == 0, err
    assert "outcome stopped: cancelled" in out
    assert "the script ended" in out
    assert "was stopped while its function ran on a thread" in err  # the warning still says so
