"""Untrusted text in a finished turn's record: no terminal escapes, no control characters,
no live markup from the model or a tool, in any form of the record.

The user's situation: a tool prints a coloured build log (ANSI colour codes, a terminal
hyperlink, a bell) and the model's answer quotes raw HTML. The saved notebook showed
``[31mFAILED[0m`` and kept the BEL and ESC characters in its HTML, and the record's
markdown form (``text/markdown``, shown where HTML is not; ``text/plain`` beside it) kept
the model's ``<img ... onerror=...>`` as raw HTML, live markup for any renderer that passes
HTML through (JupyterLab does for outputs of a trusted notebook).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from IPython.utils.capture import capture_output
from markdown_it import MarkdownIt
from notebook_harness import ReraisingShell

BUILD_LOG = '''
from lash_nb import tool

@tool
def build_log(job: str) -> str:
    """The last build log of a CI job."""
    return ("\\x1b[31;1mFAILED\\x1b[0m test_parse\\x07\\n"
            "\\x1b]8;;https://ci.example/run/7\\x1b\\\\run 7\\x1b]8;;\\x1b\\\\ took 3s\\x1b[K\\n"
            "</pre><script>alert('log')</script>")
'''
ASK = ("What does build_log say for 'ci'? \x1b[1mplease\x1b[0m\x07 "
       "<img src=x onerror=alert(1)> <b>now</b>")
# what a terminal would show of BUILD_LOG's output, and of the model's echo of ASK
SHOWN_LOG = ("FAILED test_parse", "run 7 took 3s", "</pre><script>alert('log')</script>")
SHOWN_ASK = "please <img src=x onerror=alert(1)> <b>now</b>"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
GARBAGE = ("[31;1m", "[0m", "[1m", "[K", "]8;;")


class Tags(HTMLParser):
    """Every element and attribute name a browser would build from the HTML, and its text."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def record(tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell(BUILD_LOG)
        sh.run_cell("%lash open ci --store ci.duckdb")
        sh.user_ns["ask"] = ASK
        with capture_output() as cap:
            sh.run_cell("r = %lash turn {ask}")
        # the store keeps the output as the tool wrote it; only what is shown is cleaned
        assert sh.user_ns["r"].tool_calls[0].output.startswith("\x1b[31;1mFAILED")
    finally:
        sh.close()
    finished = [o.data for o in cap.outputs if "lash-static" in o.data.get("text/html", "")]
    assert finished, "the turn's record was displayed"
    return finished[-1]


def test_the_html_record_has_no_escapes_or_control_characters_and_no_live_model_markup(
        record: dict[str, str]) -> None:
    page = record["text/html"]
    assert CONTROL.findall(page) == []
    assert [g for g in GARBAGE if g in page] == []
    tags = Tags(page)
    assert {"script", "img", "b"} & tags.tags == set()
    assert [a for a in tags.attrs if a.startswith("on")] == []
    text = "".join(tags.text)
    assert all(line in text for line in SHOWN_LOG)  # the words are all there, as text
    assert SHOWN_ASK in text


def test_the_text_copy_has_no_escapes_and_no_markdown_copy_can_build_the_raw_html(
        record: dict[str, str]) -> None:
    # the record has no text/markdown (ADR 182): no renderer that passes raw HTML through
    # builds the model's <img onerror> from it; the plain text is never markup
    assert "text/markdown" not in record
    plain = record["text/plain"]
    assert CONTROL.findall(plain) == []
    assert [g for g in GARBAGE if g in plain] == []
    assert SHOWN_ASK in plain  # kept as written


# ------------------------------------------------------------------- the two functions
def test_visible_drops_terminal_escapes_and_controls_and_keeps_text_layout() -> None:
    from lash_nb._notebook.widgets.untrusted import visible

    assert visible("\x1b[1;32mok\x1b[0m\tdone\r\nnext\n") == "ok\tdone\r\nnext\n"
    assert visible("\x1b]8;;https://x.example\x07link\x1b]8;;\x07 after") == "link after"
    assert visible("\x1b]0;window title\x1b\\prompt$ ") == "prompt$ "
    assert visible("\x9b31mred\x9b0m bell\x07 del\x7f nul\x00 vt\x0b") == "red bell del nul vt"
    assert visible("\x1bPq#0;2;0;0;0\x1b\\sixel gone") == "sixel gone"
    assert visible("\x1b(Bcharset \x1b=keypad") == "charset keypad"
    assert visible("tab\t é 中文 🙂 \u2028 plain") == "tab\t é 中文 🙂 \u2028 plain"


@pytest.mark.parametrize("markdown", [
    "use `<div>` or\n\n```html\n<p>kept</p>\n```\n\n    <i>indented code</i>\n",
    "a < b and b > c, and \\<not a tag>\n",
    "| op | means |\n|---|---|\n| `<` | less |\n",
])
def test_inert_markdown_leaves_markdown_without_raw_html_as_it_is(markdown: str) -> None:
    from lash_nb._notebook.widgets.untrusted import inert_markdown

    assert inert_markdown(markdown) == markdown


@pytest.mark.parametrize("markdown,tag", [
    ("<div>\n```\n</div>\n\n```\n<script>alert(1)</script>\n```\n", "script"),  # a fence moves
    ("text \\\\<img src=x onerror=alert(1)>\n", "img"),  # an escaped backslash, then HTML
    ("| a | <img src=x onerror=alert(1)> |\n|---|---|\n", "img"),
    ("> quote\n> <script>alert(1)</script>\n", "script"),
    ("- item\n\n  <iframe src=https://x.example></iframe>\n", "iframe"),
    ("<!-- a comment -->\n<?php echo 1 ?>\n<![CDATA[x]]>\n", "!--"),
])
def test_inert_markdown_leaves_no_raw_html_for_a_renderer_to_build(markdown: str, tag: str) -> None:
    from lash_nb._notebook.widgets.untrusted import inert_markdown

    out = inert_markdown(markdown)
    tokens = MarkdownIt("commonmark", {"html": True}).enable(["table"]).parse(out)
    raw = [t for t in tokens if t.type == "html_block"]
    raw += [c for t in tokens if t.type == "inline" for c in t.children or ()
            if c.type == "html_inline"]
    assert raw == []
    rendered = MarkdownIt("commonmark", {"html": True}).enable(["table"]).render(out)
    assert f"<{tag}" not in rendered


# ------------------------------------------------------------- bidirectional controls
# A "Trojan source" tool output: the bidi overrides and isolates make a browser draw the
# comment over the check, so the user reads `if access_level != "user": # Check if admin`
# where the text says the string is 'user<RLO> <LRI>// Check if admin<PDI> <LRI>'; the marks
# (RLM around "1 - 2") make it read "2 - 1".
CHECK_CODE = '''
from lash_nb import tool

@tool
def check_code(path: str) -> str:
    """The code of a file under review."""
    return ('if access_level != "user\\u202e \\u2066// Check if admin\\u2069 \\u2066":\\n'
            "    total = \\u200f1 - 2\\u200f\\u202a\\u202b\\u202c\\u202d\\u2067\\u2068 \\u200e")
'''
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SHOWN_CODE = ('if access_level != "user // Check if admin ":', "total = 1 - 2")


@pytest.fixture
def bidi_outputs(tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell(CHECK_CODE)
        sh.run_cell("%lash open review --store review.duckdb")
        with capture_output() as cap:
            sh.run_cell("r = %lash turn What does check_code say for 'auth.py'?")
        # the store keeps the output as the tool wrote it; only what is shown is neutralised
        assert "\u202e" in sh.user_ns["r"].tool_calls[0].output
        graph = str(sh.run_cell("%lash graph"))
    finally:
        sh.close()
    finished = [o.data for o in cap.outputs if "lash-static" in o.data.get("text/html", "")]
    assert finished, "the turn's record was displayed"
    return {**finished[-1], "graph": graph}


def test_a_trojan_source_tool_output_has_no_bidi_controls_wherever_it_is_shown(
        bidi_outputs: dict[str, str]) -> None:
    for form in ("text/html", "text/plain", "graph"):
        assert BIDI.findall(bidi_outputs[form]) == [], form
    text = "".join(Tags(bidi_outputs["text/html"]).text)
    assert all(line in text for line in SHOWN_CODE)  # the words are there, in their order
    assert all(line in bidi_outputs["text/plain"] for line in SHOWN_CODE)
    assert "check_code returned" in bidi_outputs["graph"]


def test_visible_drops_bidi_controls_and_keeps_right_to_left_text() -> None:
    from lash_nb._notebook.widgets.untrusted import visible

    assert visible("a\u202eb\u202cc \u2067d\u2069 \u200fe\u200e f\u061c") == "abc d e f"
    assert visible("שלום עולם, مرحبا") == "שלום עולם, مرحبا"
