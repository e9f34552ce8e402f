"""The kernel's interrupt ends a blocking store call at once: ``%lash open`` waiting for a
file another process holds, and ``store.query(...)`` (the Python API, not awaited).

Before, ``%lash open`` ignored the interrupt: the open waited in ``DuckDBStore(...)`` on the
event loop's thread, where ipykernel's interrupt (a cancel of the cell's task) is only seen
when the loop runs again, so the cell sat out the whole lock wait and then failed with the
lock error. ``store.query`` on an idle store ran on the main thread and DuckDB stopped, but
the cell ended in a screenful of traceback ending ``RuntimeError: Query interrupted``. Now
each ends in one line, ``KeyboardInterrupt: ...`` (Run All stops there, as for a
``%lash sql`` query, ADR 184), nothing stored changed and the store answers the next call.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import pytest
from notebook_harness import KernelHarness

LONG = "SELECT count(*) AS n FROM range(100000000000) a WHERE a.range % 7 = 3"
HOLD = ("import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\n"
        "sys.stdin.readline()\ncon.close()\n")


def _one_interrupt_line(ex) -> str:
    errors = [m["content"] for m in ex.outputs if m["msg_type"] == "error"]
    assert len(errors) == 1, (ex.stderr, ex.error)
    lines = errors[0]["traceback"]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith("KeyboardInterrupt: "), lines[0]
    return str(lines[0])


@pytest.mark.slow  # a real kernel and a process holding a file; any ipykernel (the wait
# raises on SIGINT itself, whatever the kernel's handler does)
def test_the_interrupt_ends_an_open_waiting_for_a_held_file(tmp_path) -> None:
    held = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(held)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = hashlib.sha256(held.read_bytes()).hexdigest()
        with KernelHarness(cwd=str(tmp_path)) as k:
            k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
            ex = k.submit("%lash open s --store held.duckdb", stop_on_error=False)
            # the store says it waits (after 2 s of its 10 s): the interrupt lands in the wait
            k.pump_until(lambda: "still waiting for" in ex.stderr, timeout=60)
            k.km.interrupt_kernel()
            k.wait(ex, timeout=60)
            assert ex.status == "error"
            line = _one_interrupt_line(ex)  # before: the lock error after the whole wait
            assert "held.duckdb" in line and "nothing was opened" in line, line
            assert "gave up waiting" not in ex.stderr, ex.stderr
            # nothing bound; the kernel goes on
            assert k.run("print(len(get_ipython().magics_manager.registry['LashMagics']"
                         ".ctx.bindings))").stdout.strip() == "0"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
        assert hashlib.sha256(held.read_bytes()).hexdigest() == before  # the file untouched
    finally:
        if holder.poll() is None:
            holder.kill()


@pytest.mark.slow  # a real kernel
def test_the_interrupt_ends_a_blocking_query_in_one_line(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open s --store lash.duckdb")
        k.run("%lash turn keep me")
        k.run("store = get_ipython().magics_manager.registry['LashMagics'].ctx.bindings['s']"
              ".core.store")
        ex = k.submit(f"store.query({LONG!r})", stop_on_error=False)
        time.sleep(2.0)  # let the query start (not an assertion: any start point will do)
        k.km.interrupt_kernel()
        k.wait(ex, timeout=90)
        assert ex.status == "error"
        line = _one_interrupt_line(ex)  # before: RuntimeError: Query interrupted, 12 frames
        assert "stopped the query" in line and "nothing in the store changed" in line, line
        # the store answers and keeps its turn; the next turn commits
        after = k.run("print(store.query('SELECT count(*) AS n FROM turns')['n'].tolist())")
        assert after.stdout.strip() == "[1]"
        k.run("r = %lash turn and on", timeout=60)
        assert k.run("print(r.outcome)").stdout.strip() == "finished: assistant_message"


def test_ctrl_c_in_a_script_stops_store_query_and_the_store_answers_after(tmp_path) -> None:
    """A script's Ctrl-C (``_thread.interrupt_main``: SIGINT as Python sees it) during a
    blocking ``store.query``: ``StoreInterrupted``, a ``KeyboardInterrupt``; the next query
    runs."""
    code = f"""
import _thread, threading
from lash_nb.errors import StoreInterrupted
from lash_nb.stores import DuckDBStore
store = DuckDBStore({str(tmp_path / 's.duckdb')!r})
threading.Timer(1.0, _thread.interrupt_main).start()
try:
    store.query({LONG!r})
    print("not stopped")
except StoreInterrupted as e:
    print("stopped:", isinstance(e, KeyboardInterrupt), e)
print(store.query("SELECT 41 + 1 AS n")["n"].tolist())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    lines = done.stdout.splitlines()
    said = "stopped: True the interrupt stopped the query (nothing in the store changed)"
    assert lines[:2] == [said, "[42]"], (done.stdout, done.stderr[-2000:])
