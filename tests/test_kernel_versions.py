"""What lash_nb does on each ipykernel line (ADR 23), in a real kernel of this environment.

ipykernel >= 7.4 hands a widget's Stop to a cell that awaits the turn. ipykernel 6.x (VS Code and
many managed environments) handles one message at a time: the turn still streams, the kernel's
interrupt still stops it, and a Stop click is handled after the cell, where it must change
nothing (above all, not cancel the next cell's turn). CI runs this file on ipykernel 6.29 (the
lowest-versions run) and on the newest 7.x.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell, prose_of

LONG = "%%lash -o r\n" + "please echo " + " ".join(f"word{i}" for i in range(120)) + "\n"
NEW_KERNEL = kernel_serves_widgets_mid_cell()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("nb")
    with KernelHarness(cwd=str(cwd)) as k:
        # the widget libraries when the load cell ends: after it, once the kernel is idle,
        # lash_nb imports what the first turn needs in the background (ADR 116)
        k.run("import sys\n_widgets = {}\n"
              "def _at_end(result):\n"
              "    if result.info.raw_cell.startswith('%load_ext') and not _widgets:\n"
              "        _widgets['load'] = [m for m in ('anywidget', 'ipywidgets') if m in sys.modules]\n"
              "get_ipython().events.register('post_run_cell', _at_end)")
        loaded = k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02")
        k.loaded_stderr = loaded.stderr
        k.widgets_after_load = k.run("print(_widgets['load'])").stdout.strip()
        k.run("%lash open s1 --store lash.duckdb --fresh")
        yield k


def test_loading_names_the_kernel_version_in_one_line_only_where_stop_waits(kernel):
    notices = [line for line in kernel.loaded_stderr.splitlines() if line.startswith("lash_nb:")]
    if NEW_KERNEL:
        assert notices == []
        return
    import ipykernel

    assert len(notices) == 1
    assert f"ipykernel {ipykernel.__version__}" in notices[0]
    assert "interrupt" in notices[0] and "ipykernel>=7.4" in notices[0]


def test_loading_imports_no_widget_library_until_a_widget_is_shown(kernel):
    # anywidget + ipywidgets cost ~0.35 s of every %load_ext (benchmarks/load_ext.py)
    assert kernel.widgets_after_load == "[]"


@pytest.mark.skipif(NEW_KERNEL, reason="ipykernel >= 7.4 handles the click mid-cell (test_notebook_kernel.py)")
def test_on_ipykernel_6_a_late_stop_click_changes_nothing_and_spares_the_next_turn(kernel):
    first = kernel.submit(LONG)
    model_id = kernel.wait_for_widget(first, name="TurnWidget")
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 30, timeout=60)
    second = kernel.submit("%%lash -o r2\nplease echo the next cell\n")
    kernel.send_custom(model_id, {"type": "stop"})  # reaches the kernel after both cells
    kernel.wait(first, timeout=120)
    kernel.wait(second, timeout=120)
    assert first.status == "ok" and second.status == "ok", first.error or second.error
    assert kernel.state(model_id)["outcome"] == "finished: assistant_message"
    assert "word119" in prose_of(kernel.state(model_id))
    check = kernel.run("print(str(r.outcome)); print(str(r2.outcome))")
    assert check.stdout.split("\n")[:2] == ["finished: assistant_message"] * 2
    assert kernel.run("print(1 + 1)").stdout.strip() == "2"


def test_the_kernel_interrupt_stops_a_turn_on_every_supported_kernel(kernel):
    ex = kernel.submit(LONG, stop_on_error=False)
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 30, timeout=60)
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=60)
    # the cell ends as an interrupted cell does, in one line (ADR 167)
    assert ex.status == "error" and ex.error.startswith("TurnInterrupted: the kernel's interrupt")
    error = next(m["content"] for m in ex.outputs if m["msg_type"] == "error")
    assert len(error["traceback"]) == 1, error["traceback"]
    assert kernel.state(model_id)["outcome"] == "stopped: cancelled"
    assert "word119" not in prose_of(kernel.state(model_id))
    assert kernel.run("print('next cell')").stdout.strip() == "next cell"


def test_a_background_turn_is_stopped_by_its_widget_on_every_supported_kernel(kernel):
    # the way to keep the Stop button on ipykernel 6.x: the cell returns and the turn streams
    # as a task, so the click is handled while it runs
    ex = kernel.submit(LONG.replace("%%lash -o r", "%%lash --background -o rb", 1))
    kernel.wait(ex, timeout=60)
    assert ex.status == "ok", ex.error
    model_id = kernel.wait_for_widget(ex, name="TurnWidget", timeout=60)
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 30, timeout=60)
    kernel.send_custom(model_id, {"type": "stop"})
    kernel.pump_until(lambda: kernel.state(model_id).get("status") == "stopped", timeout=60)
    assert kernel.state(model_id)["outcome"] == "stopped: cancelled"
    assert "word119" not in prose_of(kernel.state(model_id))
    assert kernel.run("print(str(rb.outcome))").stdout.strip() == "stopped: cancelled"
