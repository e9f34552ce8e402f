"""A tool's picture in the views of a turn this cell did not run itself (ADR 234): the queue
panel's Drain (a click, no cell: the panel streams the running turn as it goes) and the
turn's markdown / text form (what nbconvert or GitHub shows of a saved record).

Before: the panel's turn showed ``plot_units``' row with a caption and no thumbnail (its
activities reached the panel as JSON: the image's ref without its bytes), and the markdown
form named no picture."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
from test_notebook_tool_figure import TOOL_ROW_THEN_PICTURE, TOOLS, figure_shell

from lash_nb._notebook.widgets.attachments import THUMB_MAX_BYTES, THUMB_PX

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from figure_shell(tmp_path, monkeypatch)


def _thumb_px(html: str) -> int:
    [b64] = re.findall(r'<img class="lash-thumb" src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                       html)
    raw = base64.b64decode(b64)
    assert len(raw) <= THUMB_MAX_BYTES
    with Image.open(io.BytesIO(raw)) as im:
        return max(im.size)


def test_the_queue_panels_drained_turn_shows_the_tools_figure_under_its_row(sh):
    sh.run_cell("%lash enqueue call plot_units for Mar")
    w = sh.run_cell("w = %lash queue") or sh.user_ns["w"]
    sh.run_cell("await w._drain()")  # what the panel's Drain button runs
    [ran] = w.ran
    assert TOOL_ROW_THEN_PICTURE.search(ran["html"]), ran["html"][:3000]
    assert 0 < _thumb_px(ran["html"]) <= THUMB_PX
    # the panel's own record (the saved notebook, no widget state) keeps it too
    assert TOOL_ROW_THEN_PICTURE.search(w.snapshot_html())


def test_the_turns_markdown_names_the_tools_picture_under_its_row(sh):
    sh.run_cell("r = %lash turn call plot_units for Mar")
    card = sh.user_ns["r"].tool_calls[0].output
    dims = re.search(r", (\d+x\d+)\]", card).group(1)
    for view in (sh.run_cell("%lash replay"),):
        text = view.to_markdown()
        row = text.index("- tool `plot_units` done")
        pic = re.search(rf"\n  - returned a picture: plot_units output · image/png, [\d.]+ KB, "
                        rf"{dims}\n", text).start()
        assert row < pic < text.index("**finished"), text
        # named once, under its row: not also as an attachment of the prompt
        assert text.count("plot_units output · image/png") == 1, text
        assert "base64" not in text


@pytest.mark.slow  # a worker process
def test_a_turn_a_worker_ran_shows_the_tools_figure_from_the_stores_blobs(sh, tmp_path):
    """The notebook queues the prompt, ``python -m lash_nb worker`` (another process) runs it;
    the notebook's view of that turn reads the picture's bytes from the store's blobs."""
    import os
    import subprocess
    import sys

    (tmp_path / "figtools.py").write_text(TOOLS)
    sh.run_cell("%lash enqueue call plot_units for Mar")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "lash_nb", "worker", "--store", "attach.duckdb", "--session",
         "attach-demo", "--provider", "offline", "--tools", "figtools:plot_units",
         "--exit-when-idle", "0.5", "--poll", "0.05"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "1 turn" in done.stderr, done.stderr
    view = sh.run_cell("%lash replay")
    html = view._repr_mimebundle_()["text/html"]
    assert TOOL_ROW_THEN_PICTURE.search(html), html[:3000]
    assert 0 < _thumb_px(html) <= THUMB_PX  # one thumbnail: under the row, not the prompt
    assert "  - returned a picture: plot_units output · image/png" in view.to_markdown()


def _next_morning() -> None:
    """A new kernel: no thumbnail made yet (they are kept per process)."""
    from lash_nb._notebook.widgets import tool_pictures

    tool_pictures._THUMBS.clear()


def test_a_stored_picture_is_scaled_once_and_off_the_event_loop(sh, monkeypatch):
    import threading

    sh.run_cell("%lash enqueue call big_noise for 1")
    scaled: list[str] = []
    real = Image.Image.thumbnail
    monkeypatch.setattr(Image.Image, "thumbnail", lambda self, *a, **k: (
        scaled.append(threading.current_thread().name), real(self, *a, **k))[1])
    sh.run_cell("%lash drain")  # folded live, then again from the run's own list
    assert len(scaled) == 1, scaled
    _next_morning()
    scaled.clear()
    for _ in range(2):
        html = sh.run_cell("%lash replay")._repr_mimebundle_()["text/html"]
        assert 0 < _thumb_px(html) <= THUMB_PX
        assert len(html) < 4 * THUMB_MAX_BYTES  # the ~1 MB PNG read is not inline
    # the stored 1200x900 PNG was scaled once, in a thread: the kernel's loop went on
    assert len(scaled) == 1 and scaled[0] != threading.main_thread().name, scaled


def test_a_picture_whose_bytes_are_gone_shows_its_caption(sh):
    sh.run_cell("r = %lash turn call plot_units for Mar")
    # the blobs lost (a store copied without them, a hand-run DELETE): through the store's
    # own connection, as another process cannot take the file from this idle kernel at once
    sh.run_cell("await session.store._run_held(lambda con, hold: con.execute('DELETE FROM blobs'))")
    assert sh.run_cell("%lash sql SELECT count(*) AS n FROM blobs")["n"].iloc[0] == 0
    _next_morning()
    html = sh.run_cell("%lash replay")._repr_mimebundle_()["text/html"]
    assert "lash-thumb" not in html
    assert re.search(r'<span class="lash-tool-name">plot_units</span>.*?</details>'
                     r'<div class="lash-attachments"><figure class="lash-attachment">'
                     r'<figcaption>plot_units output · image/png, [\d.]+ KB, \d+x\d+</figcaption>',
                     html, re.DOTALL), html[:3000]
