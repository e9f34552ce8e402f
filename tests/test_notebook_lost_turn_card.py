"""The next morning, after the kernel died in the middle of a turn (killed, out of memory, the
laptop closed): ``%lash open`` closes that turn as ``stopped: runtime_error`` (its process is
gone) and the session card says so, naming the turn, instead of "0 turn(s) so far" as if the
question had never been asked.

The card then read "0 turn(s) so far" beside "1 turn did not finish": it counted the turns
that ended with their own final commit only. The lost turn now counts among the session's
turns (ADR 198), on that open and every later one.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from IPython.utils.capture import capture_output
from notebook_harness import KernelHarness, lash_shell, prose_of

CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from lash_nb import LashCore, TurnInput, tool
    from lash_nb._providers.offline import OfflineProvider
    from lash_nb._store.duckdb import DuckDBStore

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        open(sys.argv[2], "w").close()  # not print: a tool's prints go to its row (ADR 197)
        time.sleep(600)  # the kernel dies here
        return a + b

    async def main():
        store = DuckDBStore(sys.argv[1])
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add).store(store).build()
        session = await core.session("work").open()
        await session.turn(TurnInput.text("call add with a=1 and b=2")).run()

    asyncio.run(main())
""")


@pytest.mark.slow
def test_the_card_of_a_session_reopened_after_its_kernel_died_mid_turn_names_the_lost_turn(
        tmp_path: Path, monkeypatch) -> None:
    in_tool = tmp_path / "in-the-tool"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "work.duckdb"),
                              str(in_tool)])
    try:
        deadline = time.monotonic() + 120
        while not in_tool.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_tool.exists(), "the child's turn never reached its tool"  # prompt committed
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

    with lash_shell(tmp_path, monkeypatch) as sh:
        with capture_output() as cap:
            sh.run_cell("%lash open work --store work.duckdb")
        card = "\n".join(o.data.get("text/markdown", o.data.get("text/plain", ""))
                         for o in cap.outputs)
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "b = _magics().ctx.bindings['work']\n"
                    "turns = await b.session.store.load_turns('work')")
        [lost] = sh.user_ns["turns"]
        assert (lost.outcome, lost.stop_reason) == ("stopped", "runtime_error")
        assert "1 turn(s) so far" in card and "**1 of these did not finish**" in card, card
        assert lost.turn_id in card
        assert f"%lash replay {lost.turn_id}" in card
        # what the card offers: the lost turn's record, its prompt and how it ended
        record = sh.run_cell(f"%lash replay {lost.turn_id}")
        data = record._repr_mimebundle_()
        data = data[0] if isinstance(data, tuple) else data
        assert "call add with a=1 and b=2" in data["text/plain"]
        assert "runtime_error" in data["text/plain"]


def _card(ex) -> str:
    return "\n".join(ex.data("text/markdown"))


def test_a_kernel_killed_mid_turn_leaves_a_card_whose_count_holds_the_lost_turn(
        tmp_path: Path) -> None:
    """kill -9 of the kernel while a ``%%lash`` turn streams (not a menu restart, which
    commits the turn): the next kernel's card counts that turn and says it did not finish;
    opened again, it still counts it."""
    k = KernelHarness(cwd=str(tmp_path)).start()
    try:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.2")
        k.run("%lash open k --store k.duckdb")
        ex = k.submit("%%lash\nplease echo " + " ".join(f"word{i}" for i in range(300)))
        model_id = k.wait_for_widget(ex, name="TurnWidget", timeout=120)
        k.pump_until(lambda: "word3 " in prose_of(k.state(model_id)), timeout=120)
        notes = [t for t in ex.data("text/plain") if "did not end" in t]
    finally:
        assert k.kc is not None and k.km is not None
        k.kc.stop_channels()
        k.km.signal_kernel(signal.SIGKILL)  # kill -9: nothing of the kernel runs any more
        k.km.shutdown_kernel(now=True)  # reaps the dead process, frees its ports
        k.kc = k.km = None

    with KernelHarness(cwd=str(tmp_path)) as k2:
        k2.run("%load_ext lash_nb")
        first = _card(k2.run("%lash open k --store k.duckdb"))
        assert "1 turn(s) so far" in first, first
        assert "**1 of these did not finish**" in first, first
        assert "stopped: runtime_error" in first, first
        again = _card(k2.run("%lash open k --store k.duckdb"))
        assert "1 turn(s) so far" in again and "did not finish" not in again, again
        # the cut turn's note, as a notebook saved then keeps it: it cannot know of the kill,
        # and says so; it names the turn the card names, whose replay says the process died
        # (ADR 217)
        turn_id = re.search(r"%lash replay ([\w-]+)", first)
        assert turn_id, first
        assert notes and "cannot tell which, nor how the turn ended" in notes[-1], notes
        assert f"%lash replay {turn_id[1]} --session k" in notes[-1], notes
        replayed = "\n".join(k2.run(f"%lash replay {turn_id[1]} --session k").data("text/plain"))
        assert "was killed or exited before the turn's final commit" in replayed, replayed
