"""Code-mode cells in the turn view: the fold makes one row per cell, the reply's prose keeps
only the text before its cell, and the saved HTML record shows code and output escaped."""

from __future__ import annotations

from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._notebook.widgets.snapshot import turn_html

CID = "cell:t1:1"
ACTIVITIES = [
    {"id": "a1", "correlation_id": "p1", "type": "assistant_prose_delta",
     "text": "Let me look.\n<python>\nprint('<b>hi</b>')\n</python>\n"},
    {"id": "a2", "correlation_id": CID, "type": "code_cell_started", "cell": 1,
     "code": "print('<b>hi</b>')"},
    {"id": "a3", "correlation_id": CID, "type": "code_cell_output", "cell": 1, "text": "<b>hi"},
    {"id": "a4", "correlation_id": CID, "type": "code_cell_output", "cell": 1, "text": "</b>\n"},
]
DONE = {"id": "a5", "correlation_id": CID, "type": "code_cell_completed", "cell": 1,
        "code": "print('<b>hi</b>')", "status": "ok", "output": "<b>hi</b>\n",
        "duration_ms": 12.0, "displays": [{"image/png": "iVBORw0KGgo=", "text/plain": "<Fig>"},
                                          {"image/png": "\"><script>x</script>"}]}


def test_a_cell_streams_into_one_row_and_the_prose_drops_the_code():
    fold = TurnFold()
    fold.apply_all(ACTIVITIES)
    assert [b["kind"] for b in fold.blocks] == ["prose", "cell"]
    assert fold.blocks[0]["text"] == "Let me look."
    assert fold.blocks[1]["status"] == "running"
    assert fold.blocks[1]["output"] == "<b>hi</b>\n"


def test_the_saved_record_shows_the_cell_escaped_with_its_png_only():
    fold = TurnFold()
    fold.apply_all([*ACTIVITIES, DONE])
    html = turn_html({"blocks": fold.blocks, "status": "done",
                      "outcome": "finished: final_value"})
    assert '<pre class="lash-cell-code">print(&#x27;&lt;b&gt;hi&lt;/b&gt;&#x27;)</pre>' in html
    assert '<pre class="lash-cell-output">&lt;b&gt;hi&lt;/b&gt;\n</pre>' in html
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html
    assert "<script>" not in html  # a display that is not base64 is not shown
    assert "cell 1 · ok" in fold.to_markdown()
