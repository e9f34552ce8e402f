"""The next morning, after the kernel died in the middle of a turn (killed, out of memory, the
laptop closed): ``%lash open`` closes that turn as ``stopped: runtime_error`` (its process is
gone) and the session card says so, naming the turn, instead of "0 turn(s) so far" as if the
question had never been asked.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from IPython.utils.capture import capture_output
from notebook_harness import lash_shell

CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from lash_nb import LashCore, TurnInput, tool
    from lash_nb._providers.offline import OfflineProvider
    from lash_nb._store.duckdb import DuckDBStore

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        print("in the tool", flush=True)
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
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "work.duckdb")],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "in the tool"  # the prompt is committed
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
        assert "1 turn did not finish" in card, card
        assert lost.turn_id in card
        assert f"%lash replay {lost.turn_id}" in card
        # what the card offers: the lost turn's record, its prompt and how it ended
        record = sh.run_cell(f"%lash replay {lost.turn_id}")
        data = record._repr_mimebundle_()
        data = data[0] if isinstance(data, tuple) else data
        assert "call add with a=1 and b=2" in data["text/plain"]
        assert "runtime_error" in data["text/plain"]
