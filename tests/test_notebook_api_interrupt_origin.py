"""A Python-API turn stopped by the kernel's interrupt says so: origin ``kernel_interrupt``.

The user's situation (ADR 212): an agent engineer runs turns with the Python API in a notebook
(`out = await s.turn(...).run()`, `async for a in s.turn(...).stream()`, or
`run_sync(s.turn(...).run())` from plain code) and presses the kernel's interrupt button. The
turn is committed `stopped: cancelled`, but before this change its record (and
`turns_frame`'s `cancelled_by`, and an approval the stop closed) said `asyncio` ("the task
awaiting the turn was cancelled"), the same as `asyncio.wait_for` running out, so a report of
who stopped what could not tell the person's interrupt from a timeout in code. A `%%lash`
cell already recorded `kernel_interrupt`. A timeout in code still records `asyncio`.
"""

from __future__ import annotations

import time

import pytest
from notebook_harness import KernelHarness, wait_until

SETUP = """
import asyncio
from lash_nb import LashCore, run_sync
from lash_nb.providers import OfflineProvider
core = LashCore.builder().provider(OfflineProvider(delay_s=0.3)).store("api.duckdb").build()
s = await core.session("api").open()
LONG = "say " + " ".join(f"w{i}" for i in range(200))
"""
ORIGINS = ("recs = await s.store.load_turns('api')\n"
           "print([(t.stop_reason, (t.result.get('cancellation') or {}).get('origin')) "
           "for t in recs])")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with KernelHarness(cwd=str(tmp_path_factory.mktemp("origin"))) as k:
        k.run(SETUP)
        yield k


def _interrupted(kernel, code: str) -> str:
    before = kernel.run("print(len(await s.store.load_turns('api')))").stdout.strip()
    ex = kernel.submit(code, stop_on_error=False)
    kernel.pump_until(lambda: "started" in ex.stdout, timeout=60)
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=60)
    # a stream's turn commits just after the cell ends (its task runs on): read once it is in
    rows = wait_until("the interrupted turn's record",
                      lambda: eval(kernel.run(ORIGINS).stdout.strip())[int(before):], 60)
    return str(rows)  # the turns this cell added


def test_an_awaited_turn_interrupted_in_a_cell_records_the_kernels_interrupt(kernel):
    code = ("t = s.turn(LONG)\nprint('started', flush=True)\nout = await t.run()\n"
            "print(out.result.outcome)")
    assert _interrupted(kernel, code) == "[('cancelled', 'kernel_interrupt')]"


def test_a_streamed_turn_interrupted_in_a_cell_records_the_kernels_interrupt(kernel):
    code = ("print('started', flush=True)\nasync for a in s.turn(LONG).stream():\n    pass")
    assert _interrupted(kernel, code) == "[('cancelled', 'kernel_interrupt')]"


def test_a_run_sync_turn_interrupted_in_a_cell_records_the_kernels_interrupt(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(SETUP.replace("await core.session", "run_sync(core.session").replace(
            '"api").open()', '"api").open())'))
        ex = k.submit("print('started', flush=True)\nout = run_sync(s.turn(LONG).run())",
                      stop_on_error=False)
        k.pump_until(lambda: "started" in ex.stdout, timeout=60)
        time.sleep(2)  # pacing, not a check: the turn has begun streaming (60 s long)
        k.km.interrupt_kernel()
        k.wait(ex, timeout=60)
        assert ex.error == "KeyboardInterrupt: "  # the cell ends as an interrupted cell ends
        out = k.run("recs = run_sync(s.store.load_turns('api'))\n"
                    "print([(t.stop_reason, (t.result.get('cancellation') or {}).get('origin')) "
                    "for t in recs])").stdout.strip()
        assert out == "[('cancelled', 'kernel_interrupt')]"


def test_a_timeout_in_code_still_records_asyncio_not_the_interrupt(kernel):
    before = int(kernel.run("print(len(await s.store.load_turns('api')))").stdout.strip())
    kernel.run("out = await asyncio.wait_for(s.turn(LONG).run(), 1.0)\nprint(out.result.outcome)")
    out = eval(kernel.run(ORIGINS).stdout.strip())[before:]
    assert out == [("cancelled", "asyncio")]
