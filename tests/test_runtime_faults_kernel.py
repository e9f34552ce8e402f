"""Tools that raise ``KeyboardInterrupt`` / ``SystemExit`` inside a real kernel.

(ipykernel turns Kernel > Interrupt during an async cell into a cancel of the cell's task,
which reaches the turn as a Stop: tests/test_notebook_kernel.py. A tool can still raise
``KeyboardInterrupt`` itself, e.g. a library that forwards a child process' SIGINT.)
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

SETUP = '''
from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

@tool
async def interrupted() -> str:
    """Raises KeyboardInterrupt, as code forwarding a SIGINT does."""
    raise KeyboardInterrupt

@tool
async def leave() -> str:
    """Calls sys.exit."""
    raise SystemExit(2)

def model(request):
    last = request.messages[-1]
    if last.tool_results():
        return "result: " + last.tool_results()[0].content
    return [tool_call(last.text().split()[-1])]

core = (LashCore.builder().provider(FunctionProvider(model)).model("m")
        .tools(interrupted, leave).store("k.duckdb").build())
s = await core.session("k").open()
'''


@pytest.fixture
def kernel(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(SETUP)
        yield k


def test_tools_raising_keyboard_interrupt_or_system_exit_in_a_kernel_end_their_turns(kernel):
    ex = kernel.execute("out = await s.turn('call interrupted').run()\n"
                        "print(out.result.outcome, out.result.cancellation['origin'])")
    assert ex.status == "ok", ex.error
    assert ex.stdout.strip() == "stopped: cancelled keyboard_interrupt"
    ex = kernel.execute("out = await s.turn('call leave').run()\n"
                        "print(out.result.outcome, '|', out.result.assistant_message())")
    assert ex.status == "ok", ex.error
    assert ex.stdout.strip() == "finished: assistant_message | result: SystemExit: 2"
    rows = kernel.run("print([(t.outcome, t.stop_reason) for t in await s.store.load_turns('k')])")
    assert rows.stdout.strip() == ("[('stopped', 'cancelled'), "
                                   "('finished', 'assistant_message')]")
    assert kernel.run("print(1 + 1)").stdout.strip() == "2"
