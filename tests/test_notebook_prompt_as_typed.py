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


# pasted code in a %%lash cell: lash's own {name} substitution would change it where the name
# is defined in the notebook (here `name` and `rows`), silently
CODE = 'def greet(name):\n    return f"Hello {name}, {rows}"  # \\{not} {missing}\n'


def test_a_raw_cell_sends_pasted_code_exactly_as_typed(sh):
    sh.run_cell(f"%%lash --raw\nWhy does this fail?\n{CODE}")
    assert user_prompts(sh) == [f"Why does this fail?\n{CODE}".strip()]


def test_a_raw_line_turn_and_a_raw_enqueue_keep_braces_and_backslashes(sh):
    sh.run_cell("%lash turn --raw echo {name} \\{rows} {missing}")
    sh.run_cell("%lash enqueue --raw --id k1 later {name} \\{rows}")
    sh.run_cell("q = %lash queue --df")
    assert user_prompts(sh) == ["echo {name} \\{rows} {missing}"]
    assert list(sh.user_ns["q"]["text"]) == ["later {name} \\{rows}"]


def test_a_raw_turn_keeps_its_system_text_as_typed(sh):
    from lash_nb import SessionConfigPatch
    from lash_nb.providers import FunctionProvider

    seen: list[str | None] = []

    def fn(request):
        seen.append(request.system_prompt)
        return "ok"

    sh.user_ns["_patch"] = SessionConfigPatch(provider=FunctionProvider(fn, kind="recorder"))
    sh.run_cell("await s.configure(_patch)")
    sh.run_cell('%lash turn --raw --system "Quote {name} verbatim." hi')
    assert seen == ["Quote {name} verbatim."]


def test_a_substitution_says_which_names_it_replaced(sh):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        sh.run_cell(f"%%lash\nWhy does this fail?\n{CODE.replace(' {missing}', '')}")
    assert user_prompts(sh)[0].endswith('return f"Hello Ada, [\'a\', \'b\']"  # {not}')
    assert cap.stdout.strip() == ("lash: {name}, {rows} were replaced by the "
                                  "notebook's values; --raw sends the text as typed")


def test_one_substituted_name_is_said_in_the_singular(sh):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        sh.run_cell("%lash enqueue weather for {name} and {{name}} again")
    assert cap.stdout.splitlines()[0] == ("lash: {name} was replaced by the "
                                          "notebook's value; --raw sends the text as typed")


def test_a_prompt_without_substitution_prints_nothing(sh):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        sh.run_cell("%lash turn plain words, {1: 2} and \\{name}")
    assert cap.stdout == ""


def test_a_raw_session_prompt_is_kept_as_typed(sh):
    sh.run_cell("%lash prompt --raw --set 'Format rows as {name}: {value}.'")
    assert "Format rows as {name}: {value}." in sh.user_ns["s"].rendered_prompt()


def test_an_enqueue_per_row_of_a_loop_gets_one_id_per_row(sh):
    """``--id row-{i}`` in a loop: each row is queued under its own id (the id stayed
    ``row-{i}``, so rows 1 and 2 were "already queued" as row 0); the note is said once."""
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        sh.run_cell("for i in range(3):\n"
                    "    %lash enqueue --id row-{i} --merge-key m{i} summarise row {i}")
    sh.run_cell("q = %lash queue --df")
    q = sh.user_ns["q"]
    assert list(q["text"]) == ["summarise row 0", "summarise row 1", "summarise row 2"]
    assert list(q["source_key"]) == ["host:row-0", "host:row-1", "host:row-2"]
    assert list(q["merge_key"]) == ["m0", "m1", "m2"]
    notes = [line for line in cap.stdout.splitlines() if line.startswith("lash: ")]
    assert notes == [("lash: {i} was replaced by the notebook's value; --raw sends the text "
                      "as typed")]


def test_a_turn_id_takes_a_notebook_value_and_raw_keeps_it_as_typed(sh):
    sh.run_cell("run = 7")
    r = sh.run_cell("r = %lash turn --turn-id t-{run} hello\nr")
    assert r.turn_id == "t-7"
    r = sh.run_cell("r = %lash turn --raw --turn-id t-{run} hello\nr")
    assert r.turn_id == "t-{run}"


def test_the_note_is_said_again_in_the_next_cell(sh):
    from IPython.utils.capture import capture_output

    with capture_output() as first:
        sh.run_cell("%lash turn hello {name}")
    with capture_output() as second:
        sh.run_cell("%lash turn hello {name}")
    assert first.stdout.startswith("lash: {name} was replaced")
    assert second.stdout.startswith("lash: {name} was replaced")
