"""A notebook run with nobody watching (nbclient, ``jupyter nbconvert --execute``) saves the
final record of a ``%%lash --background`` turn.

A data scientist schedules ``jupyter nbconvert --execute --to notebook --inplace
nightly.ipynb``; one cell runs a turn with ``%%lash --background`` and later cells go on. The
saved file kept the turn's first view (the prompt and an empty widget) and the cut-turn note
("this turn did not end..."), never the answer: ipykernel 7 sends a background task's output
under the parent header of the cell that started it, and nbclient reads only the messages of
the cell it runs now. The final record is now sent under the cell running when the turn ends;
a turn that ends while no cell runs has its record sent again when the next cell starts; and
``%lash wait`` as the last cell keeps the run going until the background turns ended. A turn
still running when the run ended says so in its note (ADR 191).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow  # a real kernel per test

WORDS = " ".join(f"word{i}" for i in range(40))
SETUP = ["%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02",
         "%lash open nightly --store nightly.duckdb --fresh"]
BACKGROUND = f"%%lash --background\nplease echo {WORDS}\n"
AWAIT_IT = ("import asyncio\nfrom lash_nb._notebook.extension import _magics\n"
            "await asyncio.wait(list(_magics().ctx.background.values()))\nprint('later cell')")


def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, path)


def _run(path: Path, **client: object) -> None:
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}, **client).execute()
    nbformat.write(nb, path)


def _outputs(path: Path, index: int) -> list[dict]:
    """The cell's outputs as the saved file holds them (its strings joined, as nbformat reads)."""
    assert json.loads(path.read_text(encoding="utf-8"))["nbformat"] == 4
    return nbformat.read(path, as_version=4).cells[index]["outputs"]


def _assert_final_record(outputs: list[dict]) -> None:
    """The cell holds the finished turn's record, as JupyterLab saves it: the static bundle in
    place of the widget (the answer, the outcome) and the cut-turn note emptied."""
    record, note = outputs[0]["data"], outputs[1]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in record
    assert "word39" in record["text/plain"]  # the whole answer
    assert "lash-static" in record["text/html"]
    assert "finished: assistant_message" in record["text/html"]
    assert 'data-status="done"' in record["text/html"]
    assert "did not end" not in note["text/plain"] and "lash-gone" in note["text/html"]


def test_a_background_turn_that_ends_while_a_later_cell_runs_is_saved_by_nbclient(tmp_path):
    path = tmp_path / "nightly.ipynb"
    _notebook(path, [*SETUP, BACKGROUND, AWAIT_IT, "1 + 1"])
    _run(path)
    _assert_final_record(_outputs(path, 2))
    later = _outputs(path, 3)  # the later cell shows only its own output
    assert [o["output_type"] for o in later] == ["stream"] and later[0]["text"] == "later cell\n"


def test_a_background_turn_that_ends_between_two_cells_is_saved_by_nbclient(tmp_path):
    """The turn ends while the kernel is idle (nbclient between two cells: here a hook holds
    the run after the background cell until the turn is done): its record is sent again
    with the next cell, which nbclient reads."""
    path = tmp_path / "nightly.ipynb"
    done = tmp_path / "done"
    cell = (f"t = %lash turn --background please echo {WORDS}\n"
            f"t.add_done_callback(lambda _: open({str(done)!r}, 'w').close())")
    _notebook(path, [*SETUP, cell, "1 + 1"])

    def hold(cell: object, cell_index: int, **_: object) -> None:
        if cell_index == 2:  # the kernel is idle while the run waits here
            end = time.monotonic() + 120
            while not done.exists() and time.monotonic() < end:
                time.sleep(0.05)
            assert done.exists(), "the background turn did not end"
            time.sleep(0.5)  # the done callback runs just after the record was sent

    _run(path, on_cell_executed=hold)
    _assert_final_record(_outputs(path, 2))
    assert [o["output_type"] for o in _outputs(path, 3)] == ["execute_result"]


@pytest.mark.floor
def test_jupyter_nbconvert_execute_inplace_saves_the_records_and_lash_wait_ends_the_run(tmp_path):
    """The scheduled command itself: two background turns, the second one started by the last
    cell but for ``%lash wait``, which holds the run until both ended. In the floor set too:
    with jupyter_client 8.0.0 (then the lowest version the ``code`` and ``test`` extras
    allowed) ``jupyter nbconvert --execute`` hung at the kernel's start, before any cell ran,
    even for a notebook without lash (fixed in jupyter_client 8.0.2, now the floor)."""
    path = tmp_path / "nightly.ipynb"
    second = BACKGROUND.replace("please echo", "please echo second")
    _notebook(path, [*SETUP, BACKGROUND, AWAIT_IT, second, "%lash wait"])
    exe = Path(sys.executable).parent / "jupyter-nbconvert"
    subprocess.run([str(exe), "--execute", "--to", "notebook", "--inplace", str(path)],
                   check=True, cwd=tmp_path, capture_output=True, timeout=300)
    _assert_final_record(_outputs(path, 2))
    _assert_final_record(_outputs(path, 4))
    assert "second" in _outputs(path, 4)[0]["data"]["text/plain"]
    waited = "".join(o.get("text", "") for o in _outputs(path, 5))
    assert waited == "waited for 1 background turn: it ended (see its record above)\n"


def test_a_turn_still_running_when_the_run_ended_says_so_in_the_saved_file(tmp_path):
    """No ``%lash wait``: nbclient shuts the kernel down after the last cell, the turn with
    it. The note under the turn says it was still running when the last cell ended, and how
    to keep its record."""
    path = tmp_path / "nightly.ipynb"
    long = "%%lash --background\nplease echo " + " ".join(f"w{i}" for i in range(400)) + "\n"
    _notebook(path, [*SETUP, long, "1 + 1"])
    _run(path)
    note = _outputs(path, 2)[1]["data"]
    turns = _stored_turns(tmp_path / "nightly.duckdb")
    turn_id = turns[0]["turn_id"]
    assert note["text/plain"] == (
        f"lash · nightly · {turn_id}: this turn was still running when cell [4] ended, the last "
        "cell that ended before this notebook was saved; a run of the whole notebook shuts the "
        "kernel down after its last cell: end the notebook with a %lash wait cell to keep the "
        "turn's record in it. The store knows: "
        f"%lash replay {turn_id} --session nightly shows the turn as stored: stopped by the "
        "kernel's restart, shutdown or interrupt (what it had streamed is kept), finished (the "
        "turn ended after this notebook was saved), or, if the kernel was killed or crashed, "
        "closed by the next %lash open with what it had committed (its prompt at least)")
    assert "still running when cell [4] ended" in note["text/html"]
    # what the store holds of the run's shutdown (ADR 195, ADR 198)
    assert [(t["outcome"], t["stop_reason"]) for t in turns] == [("stopped", "cancelled")]
    result = json.loads(turns[0]["result"])
    assert result["cancellation"]["origin"] in ("kernel_shutdown", "kernel_interrupt")
    # the shutdown cut the answer: what had streamed is a start of it, never the whole (how
    # much streamed before the kernel went down depends on the machine's load)
    whole = "You said: please echo " + " ".join(f"w{i}" for i in range(400))
    streamed = result["assistant_output"]["safe_text"]
    assert whole.startswith(streamed) and len(streamed) < len(whole), streamed


def _stored_turns(path: Path) -> list[dict]:
    import asyncio

    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider

    async def body() -> list[dict]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(str(path)).build()
        try:
            df = core.store.query("SELECT turn_id, outcome, stop_reason, result FROM turns ORDER BY seq")
            return [dict(r) for r in df.to_dict("records")]
        finally:
            await core.close()

    return asyncio.run(body())


def test_a_background_turn_left_not_saved_reads_not_saved_in_the_file_nbclient_wrote(tmp_path):
    """The turn answers, its store file is moved away by its own tool and its final commit is
    refused after a 1 s wait: the saved file shows its answer marked NOT saved, and ``%lash
    wait`` names the error."""
    from test_unsaved_final_commit import MOVE_TOOL

    path = tmp_path / "nightly.ipynb"
    store, moved = tmp_path / "nightly.duckdb", tmp_path / "moved.duckdb"
    _notebook(path, [SETUP[0] + "\n%config LashMagics.commit_wait_s = 1",
                     MOVE_TOOL.format(path=str(store), moved=str(moved)),
                     "%lash open nightly --store nightly.duckdb --fresh --tools tidy_the_folder",
                     "%%lash --background\nplease call tidy_the_folder", "%lash wait"])
    _run(path)
    record = _outputs(path, 3)[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in record
    assert "NOT saved" in record["text/html"] and "NOT saved" in record["text/plain"]
    assert "the store file was moved" in record["text/plain"]  # the tool's row, as answered
    waited = "".join(o.get("text", "") for o in _outputs(path, 4))
    assert waited.startswith("waited for 1 background turn: it ended (see its record above); "
                             "ended with an error: TurnNotSaved: "), waited
    assert waited.count("\n") == 1
