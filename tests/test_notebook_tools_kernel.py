"""Notebook tools across a real kernel restart: the card says what the model is offered."""

from __future__ import annotations

from notebook_harness import KernelHarness

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
        assert ("no tools offered to the model · **not implemented in this kernel** (stored, not offered): `weather`; define them "
                "with `@tool` and run `%lash open` again") in card
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
