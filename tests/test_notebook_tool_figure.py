"""A tool that returns a matplotlib figure (notebook 08's ``plot_units``): the model is sent
the picture after the tool result, and the user sees it too, as a small thumbnail under the
tool's row: in the live widget's rows, in the finished record a saved notebook keeps (no
kernel, no widget state) and in ``%lash replay`` of the stored turn (ADR 232).

Before: the answer said "attached below" and the record showed no picture at all."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output
from notebook_harness import _apply_rows, lash_shell, widgets_made

from lash_nb._notebook.widgets.attachments import THUMB_MAX_BYTES, THUMB_PX

Image = pytest.importorskip("PIL.Image")

TOOLS = '''
import matplotlib
matplotlib.use("Agg")
import pandas as pd
from matplotlib.figure import Figure
from lash_nb import tool

sales = pd.DataFrame({"month": ["Jan", "Feb", "Mar", "Apr"], "units": [120, 95, 180, 150]})

@tool
def plot_units(month: str) -> Figure:
    """Plot the units sold up to a month."""
    upto = sales.iloc[: list(sales["month"]).index(month) + 1]
    f = Figure(figsize=(3, 2), dpi=60)
    f.subplots().plot(upto["month"], upto["units"], marker="o")
    return f

@tool
def big_noise(seed: str) -> object:
    """A photo-sized noisy picture (about 1 MB of PNG)."""
    from PIL import Image
    return Image.effect_noise((1200, 900), 80).convert("RGB")
'''
THUMB = re.compile(r'<img class="lash-thumb" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
TOOL_ROW_THEN_PICTURE = re.compile(
    r'<span class="lash-tool-name">plot_units</span>.*?</details>'
    r'<div class="lash-attachments"><figure class="lash-attachment"><img class="lash-thumb" '
    r'src="data:image/png;base64,', re.DOTALL)


def _png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw.startswith(b"\x89PNG") and len(raw) <= THUMB_MAX_BYTES
    with Image.open(io.BytesIO(raw)) as im:
        return im.size


def _record(cap: Any) -> str:
    """The finished turn's own record: the HTML bundle that replaced the widget."""
    htmls = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data
             and "lash-tool-name" in o.data["text/html"]]
    assert htmls, [list(o.data) for o in cap.outputs]
    return str(htmls[-1])


def figure_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A notebook with notebook 08's tools and a fresh session on a DuckDB file."""
    with lash_shell(tmp_path, monkeypatch, TOOLS) as shell:
        shell.run_cell("session = %lash open attach-demo --fresh --store attach.duckdb "
                       "--provider offline")
        yield shell


@pytest.fixture
def sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from figure_shell(tmp_path, monkeypatch)


def test_a_tools_figure_shows_under_its_row_live_in_the_record_and_in_replay(sh, monkeypatch):
    from lash_nb._notebook.widgets.turn import TurnWidget

    sent: list[Any] = []
    real_send = TurnWidget.send
    monkeypatch.setattr(TurnWidget, "send", lambda self, msg, buffers=None: (
        sent.append(msg), real_send(self, msg, buffers))[1])
    with capture_output() as cap, widgets_made() as made:
        sh.run_cell("r = %lash turn call plot_units for Mar")
    r = sh.user_ns["r"]
    assert r.tool_calls[0].output.startswith("an image [image plot_units output: image/png, ")
    assert "attached below" in r.tool_calls[0].output

    # the live widget: the rows its view was sent carry the tool's picture on the tool's row
    [w] = [x for x in made if type(x).__name__ == "TurnWidget"]
    view: dict[str, Any] = {}
    for msg in sent:
        _apply_rows(view, msg)
    [row] = [b for b in view["blocks"] if b["kind"] == "tool"]
    [card] = row["images"]
    assert card["label"] == "plot_units output" and card["media_type"] == "image/png"
    # the size the model was told (a 3 x 2 inch figure at 60 dpi, cropped to its drawing)
    assert f', {card["width"]}x{card["height"]}]' in r.tool_calls[0].output
    assert 100 < card["width"] <= 180 and 100 < card["height"] <= 120
    assert card["thumb"].startswith("data:image/png;base64,")
    assert max(_png_size(card["thumb"].split(",", 1)[1])) <= THUMB_PX

    # the finished record (what a saved notebook shows with no kernel): under the tool's row
    record = _record(cap)
    assert TOOL_ROW_THEN_PICTURE.search(record), record[:3000]
    assert "plot_units output · image/png" in record
    assert f'{card["width"]}x{card["height"]}</figcaption>' in record
    assert w.comm is None  # the widget closed: the record is all the saved notebook keeps

    # the next morning: the stored turn replayed shows it from the store's bytes
    replay = sh.run_cell("%lash replay")._repr_mimebundle_()["text/html"]
    assert TOOL_ROW_THEN_PICTURE.search(replay), replay[:3000]


def test_a_tools_large_image_is_a_small_preview_never_its_bytes(sh):
    with capture_output() as cap:
        sh.run_cell("r = %lash turn call big_noise for 1")
    assert "1200x900" in sh.user_ns["r"].tool_calls[0].output
    record = _record(cap)
    [thumb] = THUMB.findall(record)
    assert max(_png_size(thumb)) <= THUMB_PX
    assert len(record) < 4 * THUMB_MAX_BYTES  # the ~1 MB PNG is not inline
