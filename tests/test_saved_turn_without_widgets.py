"""A saved notebook read where no widget JavaScript runs: ``jupyter nbconvert --to html`` and a
page that sanitises HTML as GitHub does (ADR 217).

A data scientist runs a notebook (a turn that calls a tool which prints, then a
``--background`` turn still running when the run ends) and saves it; a colleague reads it as
nbconvert's HTML, or on GitHub, which drops ``<style>`` and ``<script>`` with their content and
most attributes (``class``, ``style``, ``hidden``). The file is read both as nbclient wrote it
(with the widget state) and as JupyterLab saves it by default (without). Each turn must read as
its own text there: the finished turn its prompt, tool row, answer and outcome; the cut turn
its prompt once, with what its note says; no CSS as text, no empty output.

Before: the cut turn's widget output kept the turn's markdown at display time (its prompt) as
its text form, which nbconvert and GitHub show, then the note showed the prompt again.
"""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow  # a kernel, nbconvert

TOOL = '''from lash_nb import tool

@tool
def crunch(job: str) -> str:
    """Crunch a job, telling how it goes."""
    print("PROGRESS 1/2", job)
    print("PROGRESS 2/2", job)
    return "done " + job
'''
LONG = "please echo " + " ".join(f"w{i}" for i in range(400))
CELLS = ["%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02", TOOL,
         "%lash open n --store n.duckdb --fresh --tools crunch",
         "%%lash\nplease crunch job=alpha",
         f"%%lash --background\n{LONG}",
         "1 + 1"]
DONE, CUT = 3, 4
# what GitHub's sanitizer keeps (html-pipeline's allowlist, the part these records can use)
GITHUB_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "br", "b", "i", "strong", "em", "a", "pre",
               "code", "img", "tt", "div", "ins", "del", "sup", "sub", "p", "ol", "ul", "table",
               "thead", "tbody", "tfoot", "blockquote", "dl", "dt", "dd", "kbd", "q", "samp",
               "var", "hr", "li", "tr", "td", "th", "s", "strike", "summary", "details",
               "caption", "figure", "figcaption", "abbr", "mark", "small", "span", "time", "wbr"}
DROPPED_WITH_CONTENT = {"style", "script"}


class Reader(HTMLParser):
    """The text a reader sees of some HTML. ``github``: as GitHub sanitises it first (no
    style or script, no class, style or hidden attribute, other tags unwrapped); else as it is
    (``<style>`` and ``<script>`` content is not text, a ``hidden`` element is not seen).
    A closed ``<details>`` shows its summary only."""

    def __init__(self, *, github: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.github = github
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, hides, closed details)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        hides = tag in DROPPED_WITH_CONTENT or (not self.github and "hidden" in names)
        closed = tag == "details" and "open" not in names  # its summary alone shows
        if tag not in ("br", "img", "hr", "wbr", "meta", "link", "input"):
            self.stack.append((tag, hides, closed))
        if tag in ("div", "p", "pre", "tr", "li", "summary", "br"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def _hidden(self) -> bool:
        for i, (_tag, hides, closed) in enumerate(self.stack):
            if hides or (closed and "summary" not in [t for t, _, _ in self.stack[i + 1:]]):
                return True
        return False

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def _seen(html: str, *, github: bool) -> str:
    r = Reader(github=github)
    r.feed(html)
    r.close()
    return r.text()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The notebook as nbclient saved it (widget state kept) and as JupyterLab saves it by
    default (no widget state)."""
    folder = tmp_path_factory.mktemp("saved")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()
    with_state = folder / "with_state.ipynb"
    nbformat.write(nb, with_state)
    nb.metadata.pop("widgets", None)
    without = folder / "without_state.ipynb"
    nbformat.write(nb, without)
    return {"with widget state": with_state, "without widget state": without}


def _outputs(path: Path, index: int) -> list[dict[str, Any]]:
    return list(nbformat.read(path, as_version=4).cells[index]["outputs"])


def _nbconvert(path: Path) -> str:
    exe = Path(sys.executable).parent / "jupyter-nbconvert"
    subprocess.run([str(exe), "--to", "html", str(path)], check=True, capture_output=True,
                   timeout=300, cwd=path.parent)
    return path.with_suffix(".html").read_text(encoding="utf-8")


def _cell_outputs_html(page: str, index: int) -> list[str]:
    """The output rows (``jp-OutputArea-child``) of the page's cell ``index``."""
    cells = page.split('<div class="jp-Cell ')[1:]
    area = cells[index].split('<div class="jp-OutputArea jp-Cell-outputArea">', 1)[1]
    return [row.split(">", 1)[1] for row in area.split('<div class="jp-OutputArea-child')[1:]]


def _rendered(output: dict[str, Any]) -> str:
    """What a page without widgets shows of a saved output: its HTML, else its text."""
    data = output.get("data", {})
    if "text/html" in data:
        return str(data["text/html"])
    if "text/markdown" in data:  # (rendered as markdown; its words are what count here)
        return str(data["text/markdown"])
    return "<pre>" + str(data.get("text/plain", "")) + "</pre>"


def _css_as_text(text: str) -> bool:
    """A style block read as words: its selectors (lash's classes, JupyterLab's) or rules."""
    return any(mark in text for mark in (".lash-", ".jp-", "--jp-", "display:", "border:"))


def _assert_finished_turn(text: str) -> None:
    assert "please crunch job=alpha" in text, text
    assert "crunch" in text and "done" in text and "printed" in text, text
    assert "finished" in text, text
    assert not _css_as_text(text), text


@pytest.mark.parametrize("kind", ["with widget state", "without widget state"])
def test_a_saved_turn_reads_as_its_own_text_on_a_github_like_page(saved, kind):
    path = saved[kind]
    done = [_seen(_rendered(o), github=True) for o in _outputs(path, DONE)]
    _assert_finished_turn(done[0])
    assert done[1:] == [""], done  # the emptied note: nothing, not a stray line
    cut = [_seen(_rendered(o), github=True) for o in _outputs(path, CUT)]
    whole = " ".join(cut)
    assert whole.count("please echo w0 w1 w2") == 1, cut  # the prompt once, in the note
    assert "still running when cell [6] ended" in cut[-1], cut
    assert "%lash replay" in cut[-1], cut
    assert all(t.strip() for t in cut), cut  # no output reads as nothing
    assert not _css_as_text(whole), cut


@pytest.mark.parametrize("kind", ["with widget state", "without widget state"])
def test_a_saved_turn_reads_as_its_own_text_in_nbconverts_html(saved, kind):
    page = _nbconvert(saved[kind])
    done = _cell_outputs_html(page, DONE)
    _assert_finished_turn(_seen(done[0], github=False))
    cut = [_seen(row, github=False) for row in _cell_outputs_html(page, CUT)]
    assert " ".join(cut).count("please echo w0 w1 w2") == 1, cut
    assert "still running when cell [6] ended" in cut[-1], cut


# the rows of a cell of nbconvert's page a reader sees (laid out, not display: none), and
# their text
ROWS_JS = r"""
(i) => [...document.querySelectorAll('.jp-Cell')[i].querySelectorAll('.jp-OutputArea-child')]
  .filter((row) => getComputedStyle(row).display !== 'none' && row.getBoundingClientRect().height > 0)
  .map((row) => row.innerText.trim())
"""


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["with widget state", "without widget state"])
def test_nbconverts_html_shows_no_empty_row_beside_the_cut_turns_note(saved, kind):
    """The same page in Chromium, offline (its CDN scripts do not load): the styles apply, no
    script draws a widget. The widget output of a file saved with widget state holds only its
    scripts, a row of no height (this case passed before too); without, its text form."""
    import browser_harness as bh

    bh.playwright_or_skip()
    html = saved[kind].with_suffix(".html")
    if not html.exists():
        _nbconvert(saved[kind])
    with bh.chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.route("http*://**", lambda route: route.abort())  # offline: what GitHub's copy has
        page.goto(html.as_uri(), wait_until="domcontentloaded")
        rows = page.evaluate(ROWS_JS, CUT)
        assert all(rows), rows  # no row that reads as nothing
        assert " ".join(rows).count("please echo w0 w1 w2") == 1, rows
        assert "still running when cell [6] ended" in rows[-1], rows
        done = page.evaluate(ROWS_JS, DONE)
        assert len(done) == 1 and "please crunch job=alpha" in done[0], done  # the note is gone
