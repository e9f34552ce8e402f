"""%%lash cells in a real kernel: Stop via the widget's comm message, kernel interrupt, store."""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell, prose_of

mid_cell_stop = pytest.mark.skipif(
    not kernel_serves_widgets_mid_cell(),
    reason="ipykernel < 7.4 handles a Stop click after the cell (ADR 23; test_kernel_versions.py)",
)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("nb")
    with KernelHarness(cwd=str(cwd)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05")
        k.run("%lash open s1 --store lash.duckdb --fresh")
        yield k



LONG = "%%lash -o r\n" + "please echo " + " ".join(f"word{i}" for i in range(200)) + "\n"


def _turn_rows(kernel, turn_id: str) -> str:
    ex = kernel.run(
        "b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics().ctx.bindings['s1']\n"
        f"recs = [t for t in await b.session.store.load_turns('s1') if t.turn_id == {turn_id!r}]\n"
        "print([(t.outcome, t.stop_reason) for t in recs])"
    )
    return ex.stdout.strip()


def _cancellation(kernel, turn_id: str) -> str:
    ex = kernel.run(
        "b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics().ctx.bindings['s1']\n"
        f"recs = [t for t in await b.session.store.load_turns('s1') if t.turn_id == {turn_id!r}]\n"
        "c = recs[0].result['cancellation']\n"
        "print(c['origin'], '|', c['reason'])"
    )
    return ex.stdout.strip()


@mid_cell_stop
def test_stop_button_message_cancels_a_lash_cell_and_the_store_has_the_cancelled_commit(kernel):
    ex = kernel.submit(LONG)
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 30, timeout=120)
    kernel.send_custom(model_id, {"type": "stop"})
    kernel.wait(ex, timeout=120)
    assert ex.status == "ok", ex.error
    state = kernel.state(model_id)
    assert state["outcome"] == "stopped: cancelled"
    prose = prose_of(state)
    assert prose.startswith("You said: please echo word0")
    assert "word199" not in prose
    check = kernel.run("print(str(r.outcome), r.turn_id if hasattr(r, 'turn_id') else '')")
    assert check.stdout.startswith("stopped: cancelled")
    assert _turn_rows(kernel, state["turn_id"]) == "[('stopped', 'cancelled')]"
    assert _cancellation(kernel, state["turn_id"]) == \
        "widget_stop | the Stop button of the turn widget was pressed"
    # the offline model reports usage only at the end: the cut stream's usage is an estimate
    assert state["usage"]["estimated"] is True and state["usage"]["input_tokens"] > 0
    assert kernel.run("print(1 + 1)").stdout.strip() == "2"


def test_kernel_interrupt_commits_the_turn_and_stops_the_cells_queued_after_it(kernel):
    """Run All, then the interrupt button during a turn: the turn commits ``stopped:
    cancelled`` with its record, the cell ends as an interrupted cell does (one line, no
    traceback) and the cells queued after it do not run: no further model call."""
    ex = kernel.submit(LONG)
    after = kernel.submit("%%lash -o r2\nthis cell comes after the interrupted one\n")
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 30, timeout=120)
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=120)
    kernel.wait(after, timeout=120)
    assert ex.status == "error"
    error = next(m["content"] for m in ex.outputs if m["msg_type"] == "error")
    assert error["ename"] == "TurnInterrupted"
    assert len(error["traceback"]) == 1, error["traceback"]
    assert error["traceback"][0].startswith("KeyboardInterrupt: the kernel's interrupt stopped turn")
    assert after.status == "aborted"
    assert kernel.run("print('r2' in globals())").stdout.strip() == "False"
    state = kernel.state(model_id)
    assert state["outcome"] == "stopped: cancelled"
    assert _turn_rows(kernel, state["turn_id"]) == "[('stopped', 'cancelled')]"
    assert _cancellation(kernel, state["turn_id"]) == \
        "kernel_interrupt | the kernel was interrupted (the notebook's interrupt button or SIGINT)"
    assert kernel.run("print('next cell')").stdout.strip() == "next cell"
    assert kernel.run("print(r.outcome)").stdout.strip() == "stopped: cancelled"  # -o r was kept


def test_a_finished_lash_cell_saves_its_final_state_in_widget_traits(kernel):
    ex = kernel.run("%%lash\nshort one\n")
    state = kernel.state(ex.widget_ids()[0])
    assert state["status"] == "done"
    assert state["outcome"] == "finished: assistant_message"
    assert prose_of(state).startswith("You said: short one")
    assert state["usage"]["output_tokens"] > 0


def test_a_magic_called_from_code_raises_its_argument_errors_at_once(kernel):
    ex = kernel.execute("get_ipython().run_line_magic('lash', 'frobnicate')")
    # IPython prints a UsageError as one line on stderr (no traceback) and fails the cell
    assert ex.status == "error"
    assert ex.stderr.strip() == "UsageError: unknown %lash verb 'frobnicate'; %lash help lists the verbs"
    assert "background task" not in ex.stdout
    ex = kernel.execute("get_ipython().run_line_magic('lash', 'open s1 --fesh')")
    assert ex.stderr.strip().startswith("UsageError: unknown option --fesh for %lash open; did you "
                                        "mean --fresh? its options: --fresh, --store, ")
    assert "\n" not in ex.stderr.strip() and ex.stderr.strip().endswith("; see %lash help")
    ex = kernel.execute("def f():\n    return get_ipython().run_cell_magic('lash', '', 'about {nothing_here}')\nf()")
    assert ex.stderr.startswith("UsageError: {nothing_here} in the prompt names nothing defined")
    assert "background task" not in ex.stdout
