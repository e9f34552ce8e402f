"""A record carries only the rules of turn.css its own markup can use (ADR 189), and looks as
it did with the whole sheet: measured in Chromium, element by element.

Records of every kind of row (prose with a table, code, a quote and a link; reasoning; tool
rows done, failed, cancelled, denied, with a child session; code-mode cells; a notice, an
error, a retry; attachments; a stopped and a failed turn) and the two panels' snapshots. The
reference is each one alone on a page with the whole sheet, as every record carried it before.
Then all of them on one page, each with its own rules, in the notebook's order and reversed (a
record's rules also reach the others: a later record's ``.lash-tool`` must not reset an earlier
record's done-row colour): every computed style of every element is the reference's (what is
drawn: a custom property no rule of the record uses is not carried). Once with
no ``--jp-*`` variables (the fallbacks: VS Code, nbconvert) and once with JupyterLab Dark's.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from browser_harness import CHROMIUM, chromium

from lash_nb._notebook.widgets.assets import compact_css
from lash_nb._notebook.widgets.snapshot import NOTE_GONE, queue_html, tools_html, turn_html

pytestmark = [pytest.mark.browser]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401  (browser_harness.chromium() drives it)
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
       "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PROSE = ("Here is **the** answer with `code`:\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
         "> a quote\n\n```python\nx = 'hi'  # note\nprint(x + 1)\n```\n\n"
         "- one\n  - two\n\n[a link](https://example.org)")


def _turn(status: str, outcome: str, blocks: list[dict], **extra: object) -> str:
    state = {"session_id": "s1", "turn_id": f"t-{status}-{len(blocks)}", "prompt": "what now?\n"
             "second line", "status": status, "outcome": outcome, "blocks": blocks,
             "usage": {"input_tokens": 10, "output_tokens": 5}, "iterations": 1,
             "elapsed_ms": 1200.0, **extra}
    return turn_html(state)


def _tool(status: str, **extra: object) -> dict:
    return {"cid": f"c-{status}", "kind": "tool", "name": "weather", "args": {"city": "Paris"},
            "output": "sunny\n" * 3, "status": status, "duration_ms": 12.0, **extra}


def records() -> list[str]:
    child = {"session_id": "kid", "outcome": "finished: assistant_message",
             "blocks": [{"cid": "k1", "kind": "prose", "text": "child says hi"}]}
    cell = {"cid": "cell1", "kind": "cell", "cell": 1, "code": "print(1)", "output": "1\n",
            "status": "ok", "duration_ms": 3.0, "displays": [{"image/png": PNG.split(",")[1]}]}
    bad_cell = {"cid": "cell2", "kind": "cell", "cell": 2, "code": "1/0", "output": "",
                "error": "ZeroDivisionError", "note": "the cell failed", "status": "error"}
    return [
        _turn("done", "finished: assistant_message", [{"cid": "p", "kind": "prose", "text": "hi"}]),
        _turn("done", "finished: assistant_message",
              [{"cid": "r", "kind": "reasoning", "text": "thinking"}, _tool("done"),
               {"cid": "p2", "kind": "prose", "text": PROSE}]),
        _turn("failed", "stopped: error",
              [_tool("failed"), {"cid": "e", "kind": "error", "text": "it broke"}],
              retries=[{"attempt": 1, "max_attempts": 3, "wait_seconds": 2, "reason": "429"}]),
        _turn("stopped", "stopped: cancelled",
              [_tool("cancelled"), {"cid": "p3", "kind": "prose", "text": "half", "interrupted": True},
               {"cid": "n", "kind": "notice", "text": "waiting for the store"}]),
        _turn("done", "finished: assistant_message",
              [_tool("denied", approval={"state": "denied", "by": "policy", "reason": "no"}),
               _tool("done", child=child)],
              attachments=[{"label": "plot.png", "mime": "image/png", "size": 70, "thumb": PNG},
                           {"label": "t.csv", "mime": "text/csv", "size": 9, "table": "a,b\n1,2"}],
              cost={"text": "$0.01"}),
        _turn("done", "finished: assistant_message", [cell, bad_cell]),
        tools_html("panel1", [{"name": "weather", "member": True, "group": "g", "approval": "ask",
                               "input_schema": {"properties": {"city": {"type": "string"}},
                                                "required": ["city"]},
                               "description": "the weather", "implemented": False}]),
        queue_html("panel2", "s1", [{"batch_id": "b1", "text": "first", "delivery_policy": "queue",
                                     "slot_policy": "next", "status": "failed", "error": "x"}],
                   "ran 1 turn", [{"html": _turn("done", "finished: assistant_message",
                                                 [_tool("done")])}]),
    ]


def _whole_sheet(record: str) -> str:
    """The record as every record was before ADR 189: the whole sheet in its style block."""
    return re.sub(r"<style>.*?</style>", lambda _m: f"<style>{compact_css('turn.css')}</style>",
                  record, count=1, flags=re.S)


# one JSON string, not a tree of ~117,000 values: Playwright hands an object over value by
# value (its driver and its Python side walk each one), a string whole (ADR 208)
STYLES_JS = """() => JSON.stringify([...document.querySelectorAll('.rec')].map(rec =>
  [...rec.querySelectorAll('*')].filter(e => e.tagName !== 'STYLE').map(e => {
    const s = getComputedStyle(e), out = {};
    for (const p of s) if (!p.startsWith('--')) out[p] = s.getPropertyValue(p);
    return [e.tagName + '.' + e.className, out];
  })))"""


def _styles(page) -> list:
    """Each record's elements on ``page``: [tag.class, {property: computed value}] each."""
    return json.loads(page.evaluate(STYLES_JS))
DARK = ("--jp-content-font-color1: rgba(255,255,255,1); --jp-content-font-color2: "
        "rgba(255,255,255,0.7); --jp-border-color2: #424242; --jp-layout-color2: #424242; "
        "--jp-success-color1: #388e3c; --jp-error-color1: #d32f2f; --jp-warn-color1: #f57c00; "
        "--jp-brand-color1: #1976d2; background: #111; color: #eee;")


def _page(parts: list[str], theme: str) -> str:
    # each record in an output row as JupyterLab puts it (the panels' rules hide a row by it)
    rows = "".join(f'<div class="jp-OutputArea-child"><div class="rec">{p}</div></div>'
                   for p in parts)
    gone = f'<div class="jp-OutputArea-child" id="gone"><div>{NOTE_GONE}</div></div>'
    return (f'<!doctype html><html><body style="{theme}"><div style="width:1000px">'
            f"{rows}{gone}</div></body></html>")


def test_each_record_looks_as_with_the_whole_sheet_alone_and_among_the_others():
    recs = records()
    assert all("<style>" in r for r in recs)
    for r in recs:  # each carries fewer rules than the whole sheet
        own = r[r.index("<style>") + 7:r.index("</style>")]
        assert len(own) < len(compact_css("turn.css")), own[:200]
    with chromium() as browser:
        try:
            page = browser.new_page()
            for theme in ("", DARK):
                reference = []
                for r in recs:
                    page.set_content(_page([_whole_sheet(r)], theme))
                    reference += _styles(page)
                for order in (list(range(len(recs))), list(reversed(range(len(recs))))):
                    page.set_content(_page([recs[i] for i in order], theme))
                    got = dict(zip(order, _styles(page), strict=True))
                    for i in order:
                        assert len(got[i]) == len(reference[i]) > 5
                        for (tag, style), (rtag, rstyle) in zip(got[i], reference[i], strict=True):
                            assert tag == rtag
                            differ = {p: (style.get(p), v) for p, v in rstyle.items()
                                      if style.get(p) != v}
                            assert not differ, (i, tag, html.unescape(json.dumps(differ)[:800]))
                    # the emptied cut-turn note hides its own output row
                    assert page.evaluate(
                        "() => getComputedStyle(document.getElementById('gone')).display") == "none"
        finally:
            browser.close()
