"""A long prompt and a long answer in a saved notebook (ADR 151).

The user's situation: a tool returned a large log, and the offline model answered by echoing
it; a data scientist pasted a 300,000-character CSV into a prompt (``%lash turn {csv}``),
which the model echoed back too. The finished turn's record kept the answer whole in its
``text/html``, ``text/markdown`` and ``text/plain`` forms and the prompt twice more: a
15 MB cell, a notebook that opens slowly the next morning, and one GitHub will not render.
A long but readable answer (tens of thousands of characters) must stay whole.
"""

from __future__ import annotations

import re

import pytest
from IPython.utils.capture import capture_output
from markdown_it import MarkdownIt
from notebook_harness import lash_shell

READ_LOG = '''
from lash_nb import tool

@tool(max_output=2_000_000)  # the whole log reaches the model, which echoes it (ADR 174)
def read_log(name: str) -> str:
    """The whole log of a job."""
    return "log of ci:\\n```python\\n" + "".join(f"step {i}: ok & <fine>\\n" for i in range(40_000))
'''
NOTE = re.compile(r"… ([\d,]+) more characters not shown here; the whole (answer|prompt) is "
                  r"stored: %lash sql (SELECT .*)$", re.MULTILINE)


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch, READ_LOG, "%lash open s1 --store t.duckdb") as shell:
        yield shell


def _record(sh, cell: str) -> dict[str, str]:
    with capture_output() as cap:
        sh.run_cell(cell)
    finished = [o.data for o in cap.outputs if "lash-static" in o.data.get("text/html", "")]
    assert finished, "the turn's record was displayed"
    return finished[-1]


def _query(sh, sql: str) -> str:
    frame = sh.run_cell(f"%lash sql {sql}")
    return str(frame.iloc[0, 0])


def test_an_echoed_megabyte_answer_is_saved_cut_with_a_note_and_the_store_keeps_it(sh):
    record = _record(sh, "r = %lash turn What does read_log say for 'ci'?")
    whole = sh.user_ns["r"].assistant_message()
    assert len(whole) > 900_000  # the model echoed the whole log (as the store keeps it)
    assert "text/markdown" not in record  # one copy fewer (ADR 182)
    for form in ("text/html", "text/plain"):
        assert len(record[form]) < 250_000, form  # was 15 MB in all for the user's turn
    plain = record["text/plain"]
    notes = [m for m in NOTE.finditer(plain) if m.group(2) == "answer"]
    assert len(notes) == 1
    count, query = int(notes[0].group(1).replace(",", "")), notes[0].group(3)
    # the note's query reads the whole answer back, and the count is what the record left out
    assert _query(sh, query) == whole
    shown = plain[plain.index("read_log returned"):notes[0].start()].rstrip("\n`")
    assert whole.startswith(shown)
    assert count == len(whole) - len(shown)
    assert notes[0].group(1) in record["text/html"]


def test_a_cut_inside_a_code_fence_leaves_the_rest_of_the_markdown_and_html_as_markdown(sh):
    record = _record(sh, "r = %lash turn What does read_log say for 'ci'?")
    # the text form read as markdown (raw HTML off: plain text is never markup)
    page = MarkdownIt("commonmark", {"html": False}).render(record["text/plain"])
    # the note is a paragraph and the footer is bold, not code the open fence swallowed
    assert re.search(r"<p>… [\d,]+ more characters not shown here", page)
    assert "<strong>finished: assistant_message</strong>" in page
    assert "&amp;lt;fine&gt;" not in page and "<fine>" not in page  # still escaped, once
    html = record["text/html"]
    assert re.search(r"<p>… [\d,]+ more characters not shown here", html)
    assert html.count("<pre") == html.count("</pre>")
    assert "<fine>" not in html


def test_a_300000_character_prompt_is_saved_once_cut_and_the_store_keeps_it(sh):
    csv = "".join(f"2026-12-{i % 28 + 1:02d},Oslo,{i}\n" for i in range(15_000))
    assert len(csv) > 300_000
    sh.user_ns["csv"] = csv
    record = _record(sh, "r = %lash turn {csv}")
    for form in ("text/html", "text/plain"):
        assert len(record[form]) < 250_000, form  # was 610,000 characters each
    notes = {m.group(2): m for m in NOTE.finditer(record["text/plain"])}
    assert set(notes) == {"prompt", "answer"}  # the model's echo of it is cut as well
    assert _query(sh, notes["prompt"].group(3)) == csv
    left_out = int(notes["prompt"].group(1).replace(",", ""))
    end = len(csv) - left_out
    assert csv[end] == "\n"  # cut at a line end
    assert csv[:end] in record["text/html"]  # its <pre>: the lines as they were


def test_an_answer_of_tens_of_thousands_of_characters_stays_whole(sh):
    essay = " ".join(f"Sentence {i} of a long but readable answer." for i in range(1_500))
    assert 60_000 < len(essay) < 80_000
    sh.user_ns["essay"] = essay
    record = _record(sh, "r = %lash turn {essay}")
    answer = sh.user_ns["r"].assistant_message()
    assert essay in answer
    assert answer in record["text/plain"]  # whole, and only the prompt has a note
    assert [m.group(2) for m in NOTE.finditer(record["text/plain"])] == ["prompt"]


def test_the_live_widget_sends_the_cut_prompt_and_answer_not_the_whole(sh):
    from lash_nb._notebook.widgets.turn import TurnWidget

    sent: list[dict] = []
    seen: list[TurnWidget] = []
    original = TurnWidget.send

    def spy(self, content, buffers=None):
        seen.append(self)
        sent.append(content)
        return original(self, content, buffers)

    TurnWidget.send = spy
    try:
        sh.user_ns["big"] = "word " * 80_000
        sh.run_cell("r = %lash turn {big}")
    finally:
        TurnWidget.send = original
    widget = seen[-1]
    assert len(widget.prompt) < 21_000 and "more characters not shown here" in widget.prompt
    longest = max(len(b.get("text") or "") for b in widget.blocks)
    assert 99_000 < longest < 101_000
    whole = sh.user_ns["r"].assistant_message()
    assert len(whole) > 400_000
    assert max(len(str(m)) for m in sent) < 250_000  # the cut text and its HTML at most


# ------------------------------------------------------------------ where the cut falls
def test_a_cut_never_splits_a_surrogate_pair_an_entity_or_an_escape():
    from lash_nb._notebook.widgets.long_text import cut_point

    pair = "\ud83d\ude00"  # an emoji as two code points (JSON's "\\ud83d\\ude00" kept apart)
    assert cut_point("a" * 9 + pair + "b" * 20, 10) == 9
    assert cut_point("a" * 7 + "&amp;" + "b" * 20, 10) == 7
    assert cut_point("a" * 7 + "&#128512;" + "b" * 20, 10) == 7
    assert cut_point("a" * 6 + "\x1b[31m" + "b" * 20, 10) == 6
    assert cut_point("a" * 6 + "\x1b[31m" + "b" * 20, 11) == 11  # a whole escape may stay
    assert cut_point("one two three four", 12) == 7  # at a space, not in a word
    assert cut_point("line one\nline two\nline three", 22) == 17  # at a line end
    assert cut_point("short", 10) == 5


@pytest.mark.parametrize("markdown,last", [
    ("intro\n\n````js\nlet a = 1;\nlet b", "````"),
    ("intro\n\n~~~\ncode", "~~~"),
    ("- item\n\n  ```\n  code", "  code"),  # the list ends at the note: nothing to close
    ("> quote\n> ```\n> code", "> code"),
])
def test_a_cut_markdown_is_closed_so_that_the_note_stands_alone(markdown, last):
    from lash_nb._notebook.widgets.long_text import closed_markdown

    closed = closed_markdown(markdown)
    assert closed.startswith(markdown)
    assert closed.endswith(last)
    tokens = MarkdownIt("commonmark").parse(closed + "\n\nthe note")
    assert [t.type for t in tokens[-3:]] == ["paragraph_open", "inline", "paragraph_close"]
    assert tokens[-3].level == 0


@pytest.fixture(params=["duckdb", "postgresql"])
def store_arg(request, tmp_path):
    if request.param == "duckdb":
        return "t.duckdb"
    return request.getfixturevalue("pg_dsn")


def test_the_notes_queries_read_the_whole_text_on_duckdb_and_postgresql(tmp_path, monkeypatch,
                                                                         store_arg):
    """The note's query is run through ``%lash sql`` on the store the turn is in, which may be
    PostgreSQL (``%lash open --store postgresql://...``), and which may hold another session
    whose turn has the same id."""
    csv = "".join(f"2026-12-{i % 28 + 1:02d},Oslo,{i}\n" for i in range(15_000))
    other = "".join(f"2026-11-{i % 28 + 1:02d},Bergen,{i}\n" for i in range(15_000))
    with lash_shell(tmp_path, monkeypatch, READ_LOG, f"%lash open s0 --store {store_arg}") as sh:
        sh.user_ns["other"] = other
        _record(sh, "%lash turn {other}")  # s0's turn t1, also long: the same ids as s1's
        sh.run_cell(f"%lash open s1 --store {store_arg}")
        sh.user_ns["csv"] = csv
        record = _record(sh, "r = %lash turn {csv}")
        answer = sh.user_ns["r"].assistant_message()
        notes = {m.group(2): m.group(3) for m in NOTE.finditer(record["text/plain"])}
        assert set(notes) == {"prompt", "answer"}
        assert _query(sh, notes["prompt"]) == csv
        assert _query(sh, notes["answer"]) == answer


ASK_HELPER = '''
from lash_nb import ToolContext, run_child, tool

@tool
async def ask_helper(job: str, context: ToolContext) -> str:
    """Ask a helper agent to summarise a job's log."""
    log = "".join(f"step {i} of {job}: ok & <fine>\\n" for i in range(40_000))
    result = await run_child(context, "Summarise this log:\\n" + log)
    return f"the helper read {len(result.assistant_message()):,} characters"
'''


def test_a_child_sessions_echoed_log_is_saved_cut_under_its_tool_row(tmp_path, monkeypatch):
    """A tool ran a helper agent (``run_child``) on a whole log, which the offline model
    echoed: the parent's answer is short, but the child's answer nests under the tool row in
    the widget and the record (1.6 MB of HTML). It is cut as the parent's answer is, and its
    note's query reads it whole from the child session."""
    from lash_nb._notebook.widgets.turn import TurnWidget

    sent: list[dict] = []
    original = TurnWidget.send

    def spy(self, content, buffers=None):
        sent.append(content)
        return original(self, content, buffers)

    with lash_shell(tmp_path, monkeypatch, READ_LOG, ASK_HELPER,
                    "%lash open s1 --store t.duckdb") as sh:
        TurnWidget.send = spy
        try:
            record = _record(sh, "r = %lash turn What does ask_helper say for 'ci'?")
        finally:
            TurnWidget.send = original
        assert "the helper read" in sh.user_ns["r"].assistant_message()
        for form in ("text/html", "text/plain"):
            assert len(record[form]) < 250_000, form
        assert max(len(str(m)) for m in sent) < 250_000  # the live widget's messages too
        notes = [m for m in NOTE.finditer(record["text/plain"]) if m.group(2) == "answer"]
        assert len(notes) == 1
        whole = _query(sh, notes[0].group(3).rstrip())
        assert len(whole) > 900_000 and "step 39999 of ci: ok & <fine>" in whole
        assert f"{len(whole):,}" in sh.user_ns["r"].assistant_message()
        assert "s1.call_" in notes[0].group(3)  # the child session's rows, not the parent's
        assert notes[0].group(1) in record["text/html"]
