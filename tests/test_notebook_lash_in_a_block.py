"""``%lash`` inside a ``for`` / ``if`` / ``with`` block of a cell, in a real kernel.

A data scientist asks the same question for each item: ``for city in cities:`` then
``%lash turn weather for {city}``. Only a ``%lash`` line at the top of a cell was rewritten
into an ``await``; an indented one went through IPython's ``run_line_magic``, which in a kernel
(a running event loop) scheduled each turn as a background task and printed a notice per
iteration: the cell ended at once, showed none of the answers, the turns ran after it, and
``r = %lash turn ...`` in an ``if`` gave a Task, not the result (ADR 160).
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, prose_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("nb")
    with KernelHarness(cwd=str(cwd)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02")
        k.run("%lash open loop --store loop.duckdb --fresh")
        yield k


def shown(ex) -> str:
    """The finished records the cell itself shows (their text form)."""
    return "\n".join(d["text/plain"] for d in (m["content"]["data"] for m in ex.outputs
                                                if m["msg_type"].endswith("display_data"))
                     if "lash-static" in d.get("text/html", ""))


def test_a_turn_per_item_of_a_for_loop_runs_in_the_cell_and_shows_each_answer(kernel):
    ex = kernel.run("for city in ['Oslo', 'Rome']:\n    %lash turn weather for {city}",
                    timeout=120)
    assert "background task" not in ex.stdout
    text = shown(ex)
    assert "You said: weather for Oslo" in text and "You said: weather for Rome" in text
    assert text.index("weather for Oslo") < text.index("weather for Rome")
    # both committed before the cell ended, one after the other
    rows = kernel.run(
        "b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics()"
        ".ctx.bindings['loop']\n"
        "print([t.outcome for t in await b.session.store.load_turns('loop')])")
    assert rows.stdout.strip() == "['finished', 'finished']"


def test_an_assigned_turn_in_an_if_block_gives_the_result(kernel):
    ex = kernel.run("if True:\n    r = %lash turn hello\nprint(type(r).__name__, r.outcome)",
                    timeout=120)
    assert ex.stdout.strip() == "TurnResult finished: assistant_message"


def test_the_kernel_interrupt_stops_the_turn_and_ends_the_loop(kernel):
    """Interrupt means stop the cell: the running turn commits ``stopped: cancelled`` (as at
    the top of a cell) and the loop does not go on to start the next item's turn."""
    words = " ".join(f"w{i}" for i in range(400))
    ex = kernel.submit(f"for i in range(3):\n    %lash turn please echo {words}\nprint('after')",
                       stop_on_error=False)
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 30, timeout=120)
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=120)
    assert ex.status == "error" and ex.error.startswith("TurnInterrupted: the kernel's interrupt"), ex.error
    assert "after" not in ex.stdout
    assert [kernel.state(w).get("outcome") for w in ex.widget_ids()] == ["stopped: cancelled"]
    rows = kernel.run(
        "b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics()"
        ".ctx.bindings['loop']\n"
        "print([(t.outcome, t.result['cancellation']['origin']) for t in "
        "await b.session.store.load_turns('loop') if t.outcome != 'finished'])")
    assert rows.stdout.strip() == "[('stopped', 'kernel_interrupt')]"


def test_a_lash_cell_below_a_blank_line_is_awaited_too(kernel):
    ex = kernel.run("\n%%lash\nhello after a blank line", timeout=120)
    assert "background task" not in ex.stdout
    assert "You said: hello after a blank line" in shown(ex)


def test_a_lash_line_inside_a_function_still_runs(kernel):
    """A function body cannot await: the line stays a magic call there (a background task in
    a kernel, with its notice), as before."""
    ex = kernel.run("def ask():\n    t = %lash turn from a function\n    return t\n"
                    "t = ask()\nr = await t\nprint(r.outcome)", timeout=120)
    assert ex.stdout.strip().endswith("finished: assistant_message")
    assert "a for/if/with block of it, not in a function (or await the task)" in ex.stdout


def test_the_rewrite_leaves_strings_and_function_bodies_alone():
    from lash_nb._notebook.extension import ENTRY, await_lash_in_blocks

    call = "get_ipython().run_line_magic('lash', 'turn hi é')"
    cell = [f"note = {call!r}\n", "for i in range(2):\n", f"    r = {call}\n",
            "    if i:\n", f"        {call}\n", "def f():\n", f"    return {call}\n"]
    out = await_lash_in_blocks(cell)
    assert out[0] == cell[0] and out[5:] == cell[5:]
    assert out[2] == f"    r = (await {ENTRY}.run_block_line('turn hi é', True))\n"
    assert out[4] == f"        (await {ENTRY}.run_block_line('turn hi é', False))\n"
