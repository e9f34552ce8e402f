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


def _asked(n: int, text: str, event_id: str) -> list[dict]:
    """A cell's ``llm_query`` child turn ``s.t1.q<n>`` as the parent's stream forwards it."""
    sid = f"s.t1.q{n}"
    inner = [{"id": f"{sid}-1", "correlation_id": "p", "turn_id": "k", "type":
              "assistant_prose_delta", "text": text},
             {"id": f"{sid}-2", "correlation_id": "k", "turn_id": "k", "type": "turn_outcome",
              "outcome": {"finished": {"assistant_message": {"text": text}}}}]
    return [{"id": f"{event_id}-{i}", "correlation_id": CID, "type": "child_activity",
             "call_id": f"q{n}", "child_session_id": sid, "activity": a}
            for i, a in enumerate(inner)]


def test_llm_query_child_turns_nest_under_their_cell_in_order():
    """Two ``llm_query`` calls of one cell: each child turn nests under the cell row (not a
    stray tool row), in the order asked; the cell's completion keeps them; the saved HTML
    and the markdown show them after the cell's code, escaped."""
    fold = TurnFold()
    fold.apply_all([*ACTIVITIES, *_asked(1, "POSITIVE <i>", "c1"), *_asked(2, "NEGATIVE", "c2"),
                    DONE])
    assert [b["kind"] for b in fold.blocks] == ["prose", "cell"]
    assert fold.tool_rows() == []
    kids = fold.blocks[1]["children"]
    assert [(k["session_id"], k["outcome"]) for k in kids] == [
        ("s.t1.q1", "finished: assistant_message"), ("s.t1.q2", "finished: assistant_message")]
    assert [[b["text"] for b in k["blocks"]] for k in kids] == [["POSITIVE <i>"], ["NEGATIVE"]]
    assert fold.blocks[1]["status"] == "ok"
    assert fold.prose == "Let me look."  # the children's prose is not the turn's
    html = turn_html({"blocks": fold.blocks, "status": "done",
                      "outcome": "finished: final_value"})
    code_at, child_at = html.index('class="lash-cell-code"'), html.index('class="lash-child"')
    assert code_at < child_at < html.index("s.t1.q2")
    assert "POSITIVE &lt;i&gt;" in html and "<i>" not in html
    assert "  > child session `s.t1.q1` · finished: assistant_message: POSITIVE <i>" \
        in fold.to_markdown()


def test_a_cells_progress_line_reads_as_a_terminal_shows_it_live_and_saved():
    """A model's cell that prints a progress line (``\\r`` and the line again) shows the last
    state on its row while it runs, when it ends, in the saved HTML and in the markdown, as a
    tool's printed text does (ADR 210, 219); the completion's output (what the model read)
    keeps every state. Before, the row held ``10%\\r50%\\r100%`` as it came: drawn as
    ``10%50%100%`` live and as three lines in the saved HTML."""
    cid = "cell:t1:2"
    came = ["rows  10%", "\rrows  50%", "\rrows 100%\n", "done\n"]
    fold = TurnFold()
    fold.apply_all([{"id": "b1", "correlation_id": cid, "type": "code_cell_started", "cell": 2,
                     "code": "load()"}])
    for i, text in enumerate(came[:2]):
        fold.apply_all([{"id": f"b2{i}", "correlation_id": cid, "type": "code_cell_output",
                         "cell": 2, "text": text}])
    (row,) = [b for b in fold.blocks if b["kind"] == "cell"]
    assert row["output"] == "rows  50%"  # live: the bar moved, written over
    for i, text in enumerate(came[2:]):
        fold.apply_all([{"id": f"b3{i}", "correlation_id": cid, "type": "code_cell_output",
                         "cell": 2, "text": text}])
    assert row["output"] == "rows 100%\ndone\n"
    fold.apply_all([{"id": "b4", "correlation_id": cid, "type": "code_cell_completed",
                     "cell": 2, "code": "load()", "status": "ok", "output": "".join(came),
                     "duration_ms": 5.0}])
    (row,) = [b for b in fold.blocks if b["kind"] == "cell"]
    assert row["output"] == "rows 100%\ndone\n"
    html = turn_html({"blocks": fold.blocks, "status": "done", "outcome": "finished"})
    assert '<pre class="lash-cell-output">rows 100%\ndone\n</pre>' in html, html
    assert "rows 100%\ndone" in fold.to_markdown() and "\r" not in fold.to_markdown()
