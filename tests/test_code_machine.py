"""The code-mode rules (lash's RLM protocol) as a pure machine: no kernel, no event loop."""

from __future__ import annotations

import pytest

from lash_nb._core import turn_machine as tm
from lash_nb._core.code_mode import (
    SUBMIT_REMINDER,
    AppendProtocolNote,
    CellDone,
    CodeTurnMachine,
    CodeUnavailable,
    ExecCell,
    InvalidCell,
    SettleCell,
    extract_cell,
    render_value,
)


def drain(m: CodeTurnMachine) -> list[object]:
    out = []
    while (e := m.poll_effect()) is not None:
        out.append(e)
        if isinstance(e, tm.Done):
            break
    return out


def started(max_turns: int | None = None) -> CodeTurnMachine:
    m = CodeTurnMachine(max_turns)
    assert drain(m) == [tm.ProgressCommit()]
    m.handle_response(tm.ProgressCommitted())
    assert drain(m) == [tm.LlmCall(0)]
    return m


def test_a_reply_with_a_cell_keeps_the_reply_and_asks_to_run_the_code():
    m = started()
    m.handle_response(tm.LlmReplied("Looking.\n<python>\nprint(1)\n</python>"))
    assert drain(m) == [tm.AppendProse("Looking.\n<python>\nprint(1)\n</python>"),
                        ExecCell(1, "print(1)", 0)]
    m.handle_response(CellDone())
    assert drain(m) == [tm.Checkpoint("after_work")]
    m.handle_response(tm.CheckpointDone(claimed=False))
    assert drain(m) == [tm.LlmCall(1)]


def test_submit_finishes_final_value_after_the_before_completion_checkpoint():
    m = started()
    m.handle_response(tm.LlmReplied("<python>\nsubmit([1, 2])\n</python>"))
    drain(m)
    m.handle_response(CellDone(submitted=True, value=[1, 2]))
    assert drain(m) == [tm.Checkpoint("before_completion")]
    m.handle_response(tm.CheckpointDone(claimed=False))
    assert drain(m) == [tm.AppendProse("[\n  1,\n  2\n]"), tm.Seal()]
    m.handle_response(tm.Sealed(True))
    (done,) = drain(m)
    assert str(done.outcome) == "finished: final_value"
    assert done.outcome.value == [1, 2]


def test_input_claimed_at_the_final_checkpoint_sends_the_model_back_to_work():
    m = started()
    m.handle_response(tm.LlmReplied("<python>\nsubmit(1)\n</python>"))
    drain(m)
    m.handle_response(CellDone(submitted=True, value=1))
    drain(m)
    m.handle_response(tm.CheckpointDone(claimed=True))
    assert drain(m) == [tm.LlmCall(1)]


def test_prose_without_a_cell_gets_the_submit_reminder_and_counts_an_iteration():
    m = started(max_turns=2)
    m.handle_response(tm.LlmReplied("The answer is 4."))
    assert drain(m) == [tm.AppendProse("The answer is 4."), AppendProtocolNote(SUBMIT_REMINDER),
                        tm.Checkpoint("after_work")]
    m.handle_response(tm.CheckpointDone(claimed=False))
    drain(m)
    m.handle_response(tm.LlmReplied("Still 4."))
    effects = drain(m)
    assert tm.Seal() in effects
    m.handle_response(tm.Sealed(True))
    assert str(drain(m)[-1].outcome) == "stopped: max_turns"


def test_an_unclosed_cell_is_fed_back_and_nothing_runs():
    m = started()
    m.handle_response(tm.LlmReplied("<python>\nprint(1)"))
    effects = drain(m)
    assert not any(isinstance(e, ExecCell) for e in effects)
    (note,) = [e for e in effects if isinstance(e, AppendProtocolNote)]
    assert "no </python> line" in note.text


def test_stop_while_a_cell_runs_records_the_cell_then_ends_cancelled():
    m = started()
    m.handle_response(tm.LlmReplied("<python>\nwhile True: pass\n</python>"))
    drain(m)
    m.handle_response(tm.Cancelled())
    effects = drain(m)
    assert effects[0] == SettleCell()
    assert str(effects[-1].outcome) == "stopped: cancelled"


@pytest.mark.parametrize("during_cell", [False, True])
def test_a_sandbox_that_cannot_run_code_stops_the_turn_runtime_error(during_cell):
    m = started()
    if during_cell:
        m.handle_response(tm.LlmReplied("<python>\nx = 1\n</python>"))
        drain(m)
    m.handle_response(CodeUnavailable("the kernel did not start"))
    effects = drain(m)
    (issue,) = [e.issue for e in effects if isinstance(e, tm.RecordIssue)]
    assert (issue.kind, issue.code) == ("code_execution", "code_execution_unavailable")
    m.handle_response(tm.Sealed(True))
    assert str(drain(m)[-1].outcome) == "stopped: runtime_error"


def test_a_cell_result_outside_a_running_cell_is_a_driver_bug():
    m = started()
    with pytest.raises(tm.TurnMachineError):
        m.handle_response(CellDone())


def test_an_empty_reply_stops_provider_error_even_after_a_cell():
    m = started()
    m.handle_response(tm.LlmReplied("<python>\nx = 1\n</python>"))
    drain(m)
    m.handle_response(CellDone())
    drain(m)
    m.handle_response(tm.CheckpointDone(claimed=False))
    drain(m)
    m.handle_response(tm.LlmReplied(""))
    drain(m)
    m.handle_response(tm.Sealed(True))
    assert str(drain(m)[-1].outcome) == "stopped: provider_error"


@pytest.mark.parametrize(("text", "code"), [
    ("no code here", None),
    ("<python>\nx = 1\n</python>", "x = 1"),
    ("  <python>  \n  y = 2\n </python>\nafter", "  y = 2"),
    ("<python>\na = 1\n</python>\nand\n<python>\nb = 2\n</python>", "a = 1\n\nb = 2"),
    ("inline <python>x</python> is not a cell", None),
])
def test_cells_are_the_lines_between_tag_lines(text, code):
    assert extract_cell(text) == code


def test_an_opening_tag_without_its_closing_line_is_invalid():
    with pytest.raises(InvalidCell):
        extract_cell("<python>\nx = 1\n")


def test_a_submitted_str_is_the_answer_and_other_values_are_json():
    assert render_value("Oslo sold most") == "Oslo sold most"
    assert render_value({"a": 1}) == '{\n  "a": 1\n}'
