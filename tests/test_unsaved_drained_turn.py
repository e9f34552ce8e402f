"""``%lash drain`` runs a queued turn whose final commit the store refuses (its file moved
away while the turn ran): the cell shows what a direct ``%%lash`` turn shows (docs/adr/0181,
0185): the waiting row while it waits, then, once the user gives up, the answer kept under a
``NOT saved`` badge with the store's one line as its last row, one ``UsageError`` line under
the cell and no store warning; ``%lash drain`` binds the unsaved result like ``%lash last``
would, and the batch stays queued for a later drain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell
from test_duckdb_store_under_hands import _rows
from test_unsaved_final_commit import MOVE_TOOL, _prose

from lash_nb.stores import DuckDBStore


@pytest.mark.parametrize("how", ["stop", "interrupt"])
def test_a_drained_turn_whose_final_commit_is_refused_shows_the_not_saved_record_and_one_line(
        tmp_path: Path, how: str) -> None:
    path, moved = tmp_path / "team.duckdb", tmp_path / "moved.duckdb"
    stop_button = how == "stop"
    if stop_button and not kernel_serves_widgets_mid_cell():
        pytest.skip("this ipykernel hands a widget's Stop to the cell only after it")
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run(MOVE_TOOL.format(path=str(path), moved=str(moved)))
        k.run("%lash open team --store team.duckdb --tools tidy_the_folder")
        k.run("%%lash\na first question")
        k.run("%lash enqueue please call tidy_the_folder")
        ex = k.submit("%lash drain", stop_on_error=False)
        k.pump_until(lambda: any("not saved yet" in r for r in _rows(k, ex)), timeout=60)
        gives_up = "Stop" if kernel_serves_widgets_mid_cell() else "the kernel's interrupt"
        assert any(f"({gives_up} leaves it unsaved)" in r for r in _rows(k, ex)), _rows(k, ex)
        if stop_button:
            k.send_custom(ex.widget_ids()[0], {"type": "stop"})
        else:
            k.km.interrupt_kernel()
        k.wait(ex, timeout=60)
        turn: dict[str, Any] = next(
            s for s in (k.state(w) for w in ex.widget_ids()) if "blocks" in s)
        moved.rename(path)  # the user puts the file back: the session goes on
        k.run("%%lash\na question after putting it back")
    assert ex.status == "error"
    said = "UsageError" if stop_button else "KeyboardInterrupt"
    shown = "\n".join([ex.stderr] + [line for m in ex.outputs if m["msg_type"] == "error"
                                     for line in m["content"]["traceback"]])
    assert "Traceback" not in shown, shown
    assert "lash_nb" not in ex.stderr and "put back" not in ex.stderr, ex.stderr  # no warning
    errors = [line for line in shown.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(said), shown  # the error in one line
    assert "NOT saved" in errors[0] and "put the file back" in errors[0], errors
    # the turn's view: its answer, the NOT saved badge, the store's line as its last row
    assert "tidy_the_folder returned the store file was moved." in _prose(turn)
    assert turn["status"] == "failed" and turn["outcome"].startswith("NOT saved"), turn
    assert not any(b.get("cid") == "~store_wait" for b in turn["blocks"]), turn["blocks"]
    last = turn["blocks"][-1]
    assert last["kind"] == "error" and "NOT saved" in last["text"], last
    assert "TurnNotSaved" not in last["text"], last  # the line a direct turn shows
    record = [d for d in ex.data("text/html") if "lash-static" in d][-1]
    assert "NOT saved" in record and "tidy_the_folder returned" in record
    store = DuckDBStore(path)  # writable: it folds what the killed kernel logged
    try:
        history = len(store.query("SELECT final_state FROM queue_history"))
        queued = len(store.query("SELECT batch_id FROM queued_work_batches"))
        results = [str(r) for r in store.query("SELECT result FROM turns")["result"]]
    finally:
        store.close_sync()
    # the store as it was: the batch still queued (a later drain runs it), no answer stored
    assert (queued, history) == (1, 0), (queued, history)
    assert not any("store file was moved" in r for r in results), results
