"""``%%lash --system "..."`` (a turn prompt layer) and ``%lash prompt`` (show the rendered
prompt, set the session layer), through an IPython shell that re-raises cell errors.

The user's situation: a data scientist wants "answer in one line" for one cell only, checks
what the model is told with ``%lash prompt``, sets a persona for the session, and mistypes
an option or a slot name on the way.
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell

from lash_nb import SessionConfigPatch
from lash_nb.providers import FunctionProvider


@pytest.fixture
def sh(tmp_path: Any, monkeypatch: Any) -> Any:
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    shell.run_cell("%config LashMagics.store = ':memory:'")
    yield shell
    shell.close()


def recording_session(sh: Any) -> list[str | None]:
    """Open a session and switch it (``configure``) to a provider that records the system
    prompt of each request."""
    seen: list[str | None] = []

    def fn(request: Any) -> str:
        seen.append(request.system_prompt)
        return "ok"

    sh.run_cell("%lash open s1")
    sh.user_ns["_patch"] = SessionConfigPatch(provider=FunctionProvider(fn, kind="recorder"))
    sh.run_cell("_s = %lash turn warm up")
    m = sh.ip.magics_manager.registry["LashMagics"]
    session = m.ctx.bindings["s1"].session
    sh.user_ns["_session"] = session
    sh.run_cell("await _session.configure(_patch)")
    return seen


def test_system_option_is_for_one_turn_only(sh: Any) -> None:
    seen = recording_session(sh)
    sh.run_cell('%%lash --system "Answer in one line."\nwhat is a p-value?\n')
    sh.run_cell("%%lash\nand a t-test?\n")
    assert seen == ["Answer in one line.", None]


def test_prompt_verb_shows_sets_adds_and_clears_the_session_layer(sh: Any, capsys: Any) -> None:
    seen = recording_session(sh)
    sh.run_cell("%lash prompt")
    assert capsys.readouterr().out.strip().endswith(
        '(no system prompt: set one with %lash prompt --set "...")')
    sh.run_cell("who = 'a careful statistician'")
    sh.run_cell('%lash prompt --set "You are {who}."')
    sh.run_cell('%lash prompt --add "Cite the test you used." --slot guidance --title Rules')
    shown = sh.run_cell("p = %lash prompt") or sh.user_ns["p"]
    assert shown == "You are a careful statistician.\n\n## Guidance\n\n### Rules\n\nCite the test you used."
    sh.run_cell("%%lash\nis this significant?\n")
    sh.run_cell("%lash prompt --clear")
    sh.run_cell("%%lash\nand now?\n")
    assert seen == [shown, None]


def test_prompt_verb_mistakes_are_one_line_with_did_you_mean(sh: Any) -> None:
    sh.run_cell("%lash open s1")
    with pytest.raises(UsageError, match=r"unknown %lash verb 'promt'; did you mean %lash prompt\?"):
        sh.run_cell("%lash promt")
    with pytest.raises(UsageError, match=r"unknown option --sett for %lash prompt; did you mean --set\?"):
        sh.run_cell('%lash prompt --sett "x"')
    with pytest.raises(UsageError, match=r"--slot 'guidence' is not one of .*did you mean guidance\?"):
        sh.run_cell('%lash prompt --add "x" --slot guidence')
    with pytest.raises(UsageError, match="takes one of --set, --add, --clear"):
        sh.run_cell('%lash prompt --set "x" --clear')
    with pytest.raises(UsageError, match="--system is empty"):
        sh.run_cell('%%lash --system ""\nhello\n')
