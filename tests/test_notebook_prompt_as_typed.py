"""A prompt reaches the model as the user typed it, wherever the ``%lash`` line stands.

A data scientist pastes code into a prompt: ``echo $HOME``, ``f"{len(rows)}"``, ``$x``. At the
top of a cell the ``%lash`` line is rewritten before IPython sees it, so only lash's own
documented ``{name}`` substitution applies. The same line inside a ``for`` or ``if`` block, or
through ``run_line_magic``, went through IPython's variable expansion first: ``$x`` became the
value of ``x``, ``{len(rows)}`` was evaluated, and ``\\{name}`` (lash's escape for literal
braces) lost its braces, so the prompt the model got depended on the line's indentation
(ADR 160).
"""

from __future__ import annotations

import pytest
from notebook_harness import lash_shell

# pasted shell and Python: nothing here is lash's {name} form except the escaped \{name}
PASTED = r"why does echo $HOME print $x, and f'{len(rows)}' give {rows[0]}? not \{name}"
SENT = r"why does echo $HOME print $x, and f'{len(rows)}' give {rows[0]}? not {name}"


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch, "s = %lash open pasted --store p.duckdb",
                    "x = 5; HOME = '/root'; rows = ['a', 'b']; name = 'Ada'") as shell:
        yield shell


def user_prompts(sh) -> list[str]:
    return [m.text() for m in sh.user_ns["s"].read_view().messages() if m.role == "user"]


@pytest.mark.parametrize("cell", [
    f"%lash turn {PASTED}",
    f"for _ in range(1):\n    %lash turn {PASTED}",
    f"if True:\n    r = %lash turn {PASTED}",
    f"get_ipython().run_line_magic('lash', {'turn ' + PASTED!r})",
    f"def ask():\n    r = %lash turn {PASTED}\n    return r\nask()",
], ids=["top-level", "in-a-for-loop", "assigned-in-an-if", "run_line_magic", "in-a-function"])
def test_a_line_turn_sends_the_prompt_as_typed(sh, cell):
    sh.run_cell(cell)
    assert user_prompts(sh) == [SENT]


def test_lash_substitutes_a_name_once_in_a_block_as_at_the_top(sh):
    sh.run_cell("for _ in range(1):\n    %lash turn hello {name}, not {{x}} twice")
    assert user_prompts(sh) == ["hello Ada, not 5 twice"]


def test_an_enqueued_prompt_in_a_block_is_queued_as_typed(sh):
    sh.run_cell(f"if True:\n    %lash enqueue --id k1 {PASTED}")
    sh.run_cell("q = %lash queue --df")
    assert list(sh.user_ns["q"]["text"]) == [SENT]


def test_a_system_prompt_set_in_a_block_is_kept_as_typed(sh):
    sh.run_cell("if True:\n    %lash prompt --set 'Answer in $x USD, never {rows[0]}.'")
    assert "Answer in $x USD, never {rows[0]}." in sh.user_ns["s"].rendered_prompt()
