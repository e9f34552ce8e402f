"""Notebook tools across a real kernel restart: the card says what the model is offered."""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell

mid_cell_stop = pytest.mark.skipif(
    not kernel_serves_widgets_mid_cell(),
    reason="ipykernel < 7.4 handles a Stop click after the cell (ADR 23; test_kernel_versions.py)",
)

WEATHER = '''from lash_nb import tool

@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny in " + city
'''


def _card(ex) -> str:
    return "\n".join(ex.data("text/markdown"))


def test_after_a_kernel_restart_the_card_names_tools_without_implementation(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run(WEATHER)
        card = _card(k.run("%lash open s1 --store lash.duckdb"))
        assert "tools offered to the model: `weather`" in card
        out = k.run("r = %lash turn What does weather say for 'Paris'?\nprint(r.tool_calls[0].output)")
        assert out.stdout.strip().endswith("sunny in Paris")

        k.km.restart_kernel(now=True)
        k.kc.wait_for_ready(timeout=60)
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        card = _card(k.run("%lash open s1 --store lash.duckdb"))
        assert ("no tools offered to the model · **not implemented in this kernel** (stored, not offered): "
                "`weather`; define them with `@tool` and run `%lash open` again") in card
        k.run(WEATHER)
        card = _card(k.run("%lash open s1 --store lash.duckdb"))
        assert "tools offered to the model: `weather`" in card
        assert "not implemented" not in card


def test_a_lash_cell_without_an_open_session_says_what_it_opened(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        ex = k.run("%%lash\nhello there\n")
        assert ex.stdout.startswith("no session was open: opened session 'default' in "
                                    "'lash.duckdb' (provider offline)")
        assert (tmp_path / "lash.duckdb").exists()


SLOW = '''import threading
from lash_nb import tool
entered = threading.Event()
release = threading.Event()

@tool
def slow_lookup(city: str) -> str:
    """Looks a city up, slowly."""
    entered.set()
    release.wait(300)  # the test releases it; the Stop must come first however slow the machine
    return "late"
'''


@mid_cell_stop
def test_a_tool_row_stopped_mid_call_reads_interrupted_with_its_running_time(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run(SLOW)
        k.run("%lash open s1 --store lash.duckdb")
        ex = k.submit("%%lash\nWhat does slow_lookup say for 'Oslo'?\n")
        mid = k.wait_for_widget(ex, name="TurnWidget")
        k.pump_until(lambda: any(b.get("kind") == "tool" for b in k.state(mid).get("blocks", [])),
                     timeout=120)
        k.pump(0.5)  # the tool has been running for a while
        k.send_custom(mid, {"type": "stop"})
        k.wait(ex, timeout=120)
        [row] = [b for b in k.state(mid)["blocks"] if b["kind"] == "tool"]
        assert row["status"] == "cancelled"
        assert row["duration_ms"] > 0
        # the cell says the function itself was not stopped (a thread cannot be)
        assert ("tool 'slow_lookup' was stopped while its function ran on a thread: Python "
                "cannot stop a thread") in ex.stderr
        k.run("release.set()")
        out = k.run(
            "s = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics().ctx.bindings['s1'].session\n"
            "print(s.store.query('SELECT interrupted, success, duration_ms > 0 AS ran FROM tool_calls')"
            ".to_dict('records'))")
        assert out.stdout.strip() == "[{'interrupted': True, 'success': False, 'ran': True}]"
