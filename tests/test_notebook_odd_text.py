"""A hurried user's odd text in a notebook prompt: the turn runs, is stored and is shown.

A lone surrogate reaches a prompt through ``{var}`` (text decoded with ``surrogateescape``, a
bad slice of UTF-16 data); the session cleans it where it enters (ADR 12), and the widget that
shows the prompt must not be the one thing that cannot encode it.
"""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output
from notebook_harness import ReraisingShell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    shell.run_cell("%lash open odd --store odd.duckdb --fresh")
    yield shell
    shell.close()


@pytest.mark.parametrize("form", ["cell", "line"])
def test_a_lone_surrogate_in_a_prompt_variable_runs_the_turn_and_shows_it(sh, form):
    sh.user_ns["bad"] = b"caf\xff".decode("utf-8", "surrogateescape")  # 'caf\udcff'
    code = "%%lash\nrepeat this: {bad}" if form == "cell" else "r = %lash turn repeat this: {bad}"
    with capture_output() as cap:
        sh.run_cell(code)
    shown = "\n".join(o.data.get("text/plain", "") for o in cap.outputs)
    assert "repeat this: caf\ufffd" in shown
    assert not any("\udcff" in o.data.get("text/plain", "") for o in cap.outputs)
    sh.run_cell("_n = %lash sql SELECT count(*) AS n FROM turns WHERE outcome = 'finished'")
    assert int(sh.user_ns["_n"]["n"][0]) == 1


def test_a_drained_turn_shows_the_queued_prompts_it_ran(sh):
    """``%lash drain`` (and the queue panel's Drain) shows what was asked, not only batch ids."""
    sh.run_cell("%lash enqueue --slot join --merge-key notes note one: buy milk")
    sh.run_cell("%lash enqueue --slot join --merge-key notes note two: call Ada")
    sh.run_cell("%lash enqueue a question on its own")
    with capture_output() as cap:
        sh.run_cell("%lash drain --all")
    shown = [o.data.get("text/plain", "") for o in cap.outputs]
    joined = [t for t in shown if "lash turn" in t and "note one" in t]
    assert joined and "> note one: buy milk\n> note two: call Ada" in joined[-1]
    alone = [t for t in shown if "lash turn" in t and "on its own" in t]
    assert alone and "> a question on its own" in alone[-1]


def test_a_drained_turn_widget_gets_its_prompt_before_its_outcome():
    import asyncio

    from lash_nb import LashCore
    from lash_nb._notebook.runner import run_queued
    from lash_nb._notebook.widgets.turn import TurnWidget
    from lash_nb.providers import OfflineProvider

    async def body():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(":memory:").build()
        s = await core.session("q").open()
        await s.enqueue("what is queued here").send()
        widget = TurnWidget(session_id="q")
        seen: list[tuple[str, str]] = []
        widget.observe(lambda ch: seen.append((ch["new"], widget.outcome)), names="prompt")
        result = await run_queued(s, widget=widget)
        await core.close()
        assert result is not None and widget.prompt == "what is queued here"
        assert seen and seen[0] == ("what is queued here", "")  # set before the outcome

    asyncio.run(body())
