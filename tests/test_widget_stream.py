"""The live turn view's traffic (issue 21): a long answer streams as appended text, not as the
whole row list again on every flush, and what a view ends up showing is exactly the turn that
was committed.

The comm is simulated: a recording comm counts the bytes the kernel would send. The view side
is the real ``lashApplyDelta`` / ``lashCopyOf`` of ``static/turn.js``, run by node over the
recorded messages (the glue around them, a few lines in ``render``, is mirrored in REPLAY).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._notebook.widgets.markdown import render_markdown
from lash_nb._notebook.widgets.snapshot import turn_html
from lash_nb._notebook.widgets.turn import TurnWidget
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, TextDelta
from lash_nb.stores import DuckDBStore

TURN_JS = Path(__file__).resolve().parent.parent / "lash_nb" / "_notebook" / "static" / "turn.js"


class RecordingComm:
    """Stands in for the kernel's comm: keeps every message the widget sends."""

    comm_id = "recording"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def on_msg(self, *_: Any) -> None:
        pass

    def send(self, data: Any = None, buffers: Any = None, **_: Any) -> None:
        self.sent.append(json.loads(json.dumps(data)))

    @property
    def bytes(self) -> int:
        return sum(len(json.dumps(m)) for m in self.sent)

    def close(self, *a: Any, **k: Any) -> None:
        pass


def _widget() -> tuple[TurnWidget, RecordingComm]:
    w = TurnWidget(session_id="s", interval_s=0.0)
    w.render_interval_s = float("inf")  # HTML only for a new row and at the end: rows alone
    comm = RecordingComm()
    w.comm = comm
    return w, comm


def _prose(i: int, text: str) -> dict[str, Any]:
    return {"id": str(i), "correlation_id": "p1", "type": "assistant_prose_delta", "text": text}


def _stream_bytes(n: int) -> int:
    w, comm = _widget()
    for i in range(n):
        w.push(_prose(i, "tok "))
        w.flush()  # the worst case: a flush after every delta
    return comm.bytes


def test_the_traffic_of_a_long_answer_grows_with_its_length_not_its_square() -> None:
    small, large = _stream_bytes(500), _stream_bytes(2000)
    # linear: 4x the deltas costs about 4x the bytes (re-sending all rows was ~16x)
    assert large <= 4.5 * small
    w, comm = _widget()
    for i in range(2000):
        w.push(_prose(i, "tok "))
        w.flush()
    appended = [a for m in comm.sent if m.get("method") == "custom"
                for a in m["content"].get("append", [])]
    assert "".join(a[2] for a in appended) == "tok " * 1999  # the first came as a new row


REPLAY = """
import { lashCopyOf, lashViewMessage } from %(module)s;
import { readFileSync } from "node:fs";
const log = JSON.parse(readFileSync(process.argv[1], "utf8"));
const LIVE = new Set(["starting", "running", "stopping"]);
// each view opens at message `from` (its first state: the traits then) and, as render() does
// on a live turn, asks for a resync at once; `answered: false` is ipykernel 6.x, which
// handles the resync only after the cell: no {type: "full"} reaches the view while it streams
const out = [];
for (const v of log.views) {
  const attrs = { ...log.initial };
  for (const m of log.messages.slice(0, v.from)) if (m.method === "update") Object.assign(attrs, m.state);
  const view = { copy: lashCopyOf(attrs), seq: 0, waiting: LIVE.has(attrs.status) };
  let resyncs = 0;
  let live = null;  // the copy as it stood when the final state arrived (built from deltas)
  for (const m of log.messages.slice(v.from)) {
    if (m.method === "update") {
      if (live === null && m.state.status && !LIVE.has(m.state.status)) live = lashCopyOf(view.copy);
      Object.assign(attrs, m.state);
      const rowsTrait = "blocks" in m.state || "html" in m.state || "html_len" in m.state;
      // render() reads the traits; a final status rebuilds from them only when they hold rows
      if (rowsTrait || (m.state.status && !LIVE.has(m.state.status) && (attrs.blocks || []).length)) {
        view.copy = lashCopyOf(attrs);
      }
    } else if (m.method === "custom" && LIVE.has(attrs.status)) {
      if (m.content.final && live === null) live = lashCopyOf(view.copy);
      if (m.content.type === "full" && !m.content.final && !v.answered) continue;
      if (lashViewMessage(view, m.content) === "resync") resyncs += 1;
    }
  }
  // what the browser counts as each prose row's length (html_len must cover all of it at the end)
  const prose = view.copy.blocks.filter((b) => b.kind === "prose");
  const jsLen = Object.fromEntries(prose.map((b) => [b.cid, b.text.length]));
  out.push({ copy: view.copy, resyncs, live, jsLen });
}
console.log(JSON.stringify(out));
"""


def _replay(tmp: Path, initial: dict[str, Any], messages: list[dict[str, Any]],
            views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (it runs static/turn.js)")
    log = tmp / "messages.json"
    log.write_text(json.dumps({"initial": initial, "messages": messages, "views": views}))
    script = REPLAY % {"module": json.dumps(TURN_JS.as_uri())}
    done = subprocess.run([node, "--input-type=module", "-e", script, str(log)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return list(json.loads(done.stdout))


def test_every_view_ends_with_exactly_the_committed_turn(tmp_path: Path) -> None:
    """A real turn (300 streamed prose deltas, then the commit) folded into the widget with a
    flush after each activity; a view from the start and one opened mid-stream
    (answered with a full copy) both end with the committed answer, and their copies while
    streaming never needed a resync."""
    # markdown with emoji (one character in Python, two in the browser's strings)
    words = ["word0"] + [(f" **w{i}** 😀" if i % 9 == 0 else f" word{i}") + ("\n\n" if i % 25 == 0 else "")
                         for i in range(1, 300)]

    async def model(request: Any) -> Any:
        for w in words:
            yield TextDelta(w)
        yield Completed(LlmResponse(parts=(LlmPart.text_part("".join(words)),)))

    async def body() -> tuple[Any, Any]:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").store(store).build()
        s = await core.session("s").open()
        out = await s.turn("write a long answer").run()
        turns = await store.load_turns("s")
        await core.close()
        await store.close()
        return out, turns

    out, turns = asyncio.run(body())
    committed = json.dumps(turns[-1].result, ensure_ascii=False)
    w, comm = _widget()
    initial = {"blocks": [], "html": {}, "html_len": {}, "status": "starting"}
    half = len(out.activities) // 2
    mid = -1
    for k, a in enumerate(out.activities):
        w.push(a)
        w.flush()
        if k == half:  # a second view opens here and asks for everything
            mid = len(comm.sent)
            w._on_custom(w, {"type": "resync"}, [])
    live = w.shown()
    w.finish(out.result)
    assert comm.sent[mid]["content"]["type"] == "full"
    # the final rows reach the views as a message, not as synced state a saved notebook's
    # widget state would keep for a widget its record replaced (ADR 182)
    assert comm.sent[-2]["content"]["final"] is True
    assert not any(k in m["state"] for m in comm.sent if m.get("method") == "update"
                   for k in ("blocks", "html", "html_len"))
    replayed = _replay(tmp_path, initial, comm.sent,
                       [{"from": 0, "answered": True}, {"from": mid, "answered": True}])
    answer = out.result.assistant_message()
    assert answer == "".join(words)
    assert json.dumps(answer, ensure_ascii=False)[1:-1] in committed  # the stored turn has it all
    for view in replayed:
        prose = "".join(b["text"] for b in view["copy"]["blocks"] if b["kind"] == "prose")
        assert prose == answer
        assert view["copy"]["blocks"] == w.blocks  # equal to the final traits
        assert view["resyncs"] == 0
        assert view["copy"]["html_len"] == view["jsLen"]  # no rendered text shown twice as plain
        # while streaming, each view showed what the kernel sent, built from the deltas alone
        assert view["live"]["blocks"] == live["blocks"] and view["live"]["html"] == live["html"]
    # the saved record (what a notebook shows the next morning) is the committed answer
    # rendered whole, byte for byte the record of the same turn folded at once
    assert w.html == {b["cid"]: render_markdown(answer) for b in w.blocks if b["kind"] == "prose"}
    at_once = TurnWidget(session_id="s")
    at_once.push_all(out.activities)
    at_once.finish(out.result)
    assert turn_html(w.state() | {"elapsed_ms": 0}) == turn_html(at_once.state() | {"elapsed_ms": 0})


def test_a_view_whose_resync_is_not_answered_while_the_cell_runs_still_streams(tmp_path: Path) -> None:
    """ipykernel 6.x handles a widget's messages only after the cell: the resync a live view
    sends when it opens is answered after the turn. The view dropped every delta until that
    answer, so a browser on 6.29 showed no streamed text at all, then the finished record
    (tests/test_browser_stop.py in the lowest-versions environment). A view from the start
    applies the deltas that follow its copy; a view opened mid-stream sees a gap and waits."""
    w, comm = _widget()
    for i in range(300):
        w.push(_prose(i, f"w{i} " + ("\n\n" if i % 40 == 39 else "")))
        w.flush()
        if i == 150:
            mid = len(comm.sent)
    live = w.shown()
    initial = {"blocks": [], "html": {}, "html_len": {}, "status": "starting"}
    first, late = _replay(tmp_path, initial, comm.sent,
                          [{"from": 0, "answered": False}, {"from": mid, "answered": False}])
    assert "".join(b["text"] for b in live["blocks"] if b["kind"] == "prose").startswith("w0 w1 ")
    assert first["copy"]["blocks"] == live["blocks"]  # streamed, from the deltas alone
    assert first["copy"]["html"] == live["html"]
    assert first["resyncs"] == 0
    assert late["copy"]["blocks"] == []  # it missed the start: nothing wrong is shown
    assert late["resyncs"] > 0


class _SlowModelClock:
    """The widget's clock for a model that streams slowly (a few tokens per second): every
    flush finds the last render long past, so every flush may re-render the prose (a render
    itself takes no time on this clock). No real time is read or waited for."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 60.0
        return self.now

    def perf_counter(self) -> float:
        return 0.0


def _paced(monkeypatch: pytest.MonkeyPatch, activities: list[dict[str, Any]]) -> tuple[TurnWidget, RecordingComm]:
    from lash_nb._notebook.widgets import turn as turn_module

    monkeypatch.setattr(turn_module, "time", _SlowModelClock())
    w = TurnWidget(session_id="s", interval_s=0.0)
    comm = RecordingComm()
    w.comm = comm
    for a in activities:
        w.push(a)
        w.flush()  # a slow model: each delta is its own flush
    w.finish(outcome="finished: assistant_message")
    return w, comm


def _one_paragraph(n: int) -> list[dict[str, Any]]:
    return [_prose(i, "**tok** " if i % 7 == 0 else "tok ") for i in range(n)]


def _many_blocks(n: int) -> list[dict[str, Any]]:
    """An answer of short markdown paragraphs (a list, a fenced code block with a blank line in
    it) in four prose rows, a tool call between them."""
    out: list[dict[str, Any]] = []
    row = 0
    for i in range(n):
        piece = ["tok ", "*tok* ", "tok.\n\n", "- item\n", "- `x`\n\n", "```py\nx = 1\n\ny = 2\n```\n\n"][i % 6]
        out.append({"id": str(i), "correlation_id": f"p{row}", "type": "assistant_prose_delta",
                    "text": piece})
        if i % (n // 4) == n // 4 - 1 and i < n - 1:
            out.append({"id": f"t{i}", "correlation_id": f"t{i}", "type": "tool_call_started",
                        "call_id": f"c{i}", "name": "lookup", "args": {"q": i}, "at_ms": 0})
            out.append({"id": f"d{i}", "correlation_id": f"t{i}", "type": "tool_call_completed",
                        "call_id": f"c{i}", "name": "lookup", "output": "ok", "at_ms": 1,
                        "duration_ms": 1})
            row += 1
    return out


@pytest.mark.parametrize("answer", [_one_paragraph, _many_blocks], ids=["one-paragraph", "many-blocks"])
def test_a_slow_models_long_answer_costs_bytes_linear_in_its_length(
        monkeypatch: pytest.MonkeyPatch, answer: Any) -> None:
    """A model streams slowly, so every flush may re-render the prose: the rendered HTML must
    not travel whole again on each flush (it did: 4x the answer cost ~16x the bytes)."""
    small_w, small = _paced(monkeypatch, answer(600))
    large_w, large = _paced(monkeypatch, answer(2400))
    assert large.bytes <= 4.4 * small.bytes, (small.bytes, large.bytes)
    # and the finished view is the whole answer rendered at once, not the pieces streamed
    for w in (small_w, large_w):
        prose = [b for b in w.blocks if b["kind"] == "prose"]
        assert w.html == {b["cid"]: render_markdown(b["text"]) for b in prose}


def test_the_live_view_renders_finished_paragraphs_while_the_answer_streams(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Markdown shows as it arrives: a finished paragraph is HTML before the answer ends, and
    the paragraph still being written is covered in part or shown as text (never lost)."""
    from lash_nb._notebook.widgets import turn as turn_module

    monkeypatch.setattr(turn_module, "time", _SlowModelClock())
    w, _ = _widget()
    w.render_interval_s = 0.2
    for i, piece in enumerate(["# Title\n\n", "Some **bold** text.\n\n", "<script>x</script> and more"]):
        w.push(_prose(i, piece))
        w.flush()
    shown = w.shown()
    html, covered = shown["html"]["p1"], shown["html_len"]["p1"]
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script>" not in html  # model text is escaped, as in the finished record
    text = shown["blocks"][0]["text"]
    assert text[:covered].endswith("text.\n\n") or covered == len(text)


def test_a_code_block_with_blank_lines_is_not_cut_while_it_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live view renders finished blocks as they close, but a blank line inside a fenced
    code block does not close it: the code shows as one block, never as code then prose."""
    from lash_nb._notebook.widgets import turn as turn_module

    monkeypatch.setattr(turn_module, "time", _SlowModelClock())
    w, _ = _widget()
    w.render_interval_s = 0.2
    pieces = ["Intro.\n\n", "```python\n", "x = 1\n", "\n", "\n", "y = 2\n", "```\n", "\n", "After"]
    for i, piece in enumerate(pieces):
        w.push(_prose(i, piece))
        w.flush()
    html = w.shown()["html"]["p1"]
    assert html.count("<pre") == 1 and html.index(">x<") < html.index(">y<") < html.index("</pre>")
    assert "<p>Intro.</p>" in html


UNSHOWN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_the_live_view_shows_a_tools_terminal_output_cleaned_as_the_record_does(tmp_path: Path) -> None:
    """A tool prints a coloured log (ANSI codes, a bell, an erase-line, a bidi override); the
    model quotes it, an escape split across two deltas; a server error carries escapes. While
    the turn runs the view showed the escapes as text (``[31;1mFAILED``) and only the finished
    record was clean. Now nothing the kernel sends carries an escape, a control or a bidi
    character, a half-received escape is never shown as its remnant (``3``), and the view built
    from the deltas shows the text the record shows."""
    w, comm = _widget()
    w.prompt = "why is it \x1b[1mred\x1b[0m?"
    steps: list[dict[str, Any]] = [
        {"id": "t", "correlation_id": "t1", "type": "tool_call_started", "call_id": "c1",
         "name": "build_log", "args": {"job": "\x1b[1mci\x1b[0m"}, "at_ms": 0},
        {"id": "d", "correlation_id": "t1", "type": "tool_call_completed", "call_id": "c1",
         "name": "build_log", "at_ms": 5, "duration_ms": 5,
         "output": "\x1b[31;1mFAILED\x1b[0m test_parse\x07\nrun \u202e7\u202c took 3s\x1b[K"},
        _prose(1, "The log says \x1b[3"), _prose(2, "1mFAILED\x1b"),
        _prose(3, "[0m for \u2066run 7\u2069"), _prose(4, "."),
        {"id": "e", "type": "error", "message": "server: \x1b[2Jbad\u202e gateway"},
    ]
    mid = -1
    for k, a in enumerate(steps):
        w.push(a)
        w.flush()
        if k == 3:  # a second view opens here and asks for everything
            mid = len(comm.sent)
            w._on_custom(w, {"type": "resync"}, [])
    live = w.shown()
    sent_while_running = list(comm.sent)
    w.finish(outcome="finished: assistant_message")

    assert [s for m in sent_while_running for s in _strings(m) if UNSHOWN.search(s)] == []
    answer = "The log says FAILED for run 7."
    prose_texts = [b["text"] for m in sent_while_running for b in _strings_rows(m)
                   if b.get("kind") == "prose"]
    assert prose_texts and all(answer.startswith(t) for t in prose_texts)  # no "3" remnant
    initial = {"blocks": [], "html": {}, "html_len": {}, "status": "starting"}
    replayed = _replay(tmp_path, initial, comm.sent,
                       [{"from": 0, "answered": True}, {"from": mid, "answered": True}])
    for view in replayed:
        tool, prose, error = view["live"]["blocks"]
        assert tool["output"] == "FAILED test_parse\nrun 7 took 3s"
        assert tool["args"] == {"job": "ci"}
        assert prose["text"] == answer
        assert error["text"] == "server: bad gateway"
        assert view["live"]["blocks"] == live["blocks"] == w.blocks  # live == the record's rows
    assert w.prompt == "why is it red?"
    page = turn_html(w.state())
    assert "FAILED test_parse" in page and answer in page


def _strings_rows(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole rows a message carries (new or changed rows, a reset, a full copy)."""
    content = message.get("content") or message.get("state") or {}
    rows = [r for _, r in content.get("rows", [])] + list(content.get("reset", []))
    return rows + list(content.get("blocks", []))
