"""A tool's output holding a bare carriage return (text a subprocess wrote for a terminal,
returned as the result) is shown as a terminal shows it, as its printed text is (ADR 210,
docs/adr/0219); the store, the result and what the model read keep it as it came.

Before, the row showed the output as it came. The live widget sets it as text, and a browser
draws a carriage return as nothing: ``downloading  10%downloading 100%`` on one line. The
saved record's HTML is parsed, and HTML reads a carriage return as a line end: the same row
read two lines once the notebook was reopened. A bare ``%lash sql`` row of the same text put
the raw carriage return in its ``text/plain`` form (a terminal goes back to the line's start
and writes the next cell over the first).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import lash_shell
from test_tool_prints_progress import _fold

from lash_nb import tool
from lash_nb._notebook.widgets.snapshot import tool_row_html
from lash_nb.testing import tool_call

CAME = "downloading  10%\rdownloading 100%\nsaved to out.csv\r\n"
SHOWN = "downloading 100%\nsaved to out.csv\n"


@tool
def download() -> str:
    """Download the file, as the command line tool reports it."""
    return CAME


def test_a_tools_output_with_a_carriage_return_reads_on_its_row_as_a_terminal_shows_it() -> None:
    seen: list[str] = []
    out, fold = _fold([tool_call("download", "{}", "c1")], [download], seen)
    (row,) = [b for b in fold.blocks if b["kind"] == "tool"]
    assert row["output"] == SHOWN  # the live widget's row
    html = tool_row_html(row)  # the saved record's row
    assert "\r" not in html and "downloading 100%\nsaved to out.csv" in html, html
    assert "downloading  10%" not in html
    # kept as it came: the result and what the model read
    assert out.result.tool_calls[0].output == CAME
    assert seen == [CAME]


TOOL = (
    "from lash_nb import tool\n"
    "@tool\n"
    "def check(job: str) -> str:\n"
    "    '''Check a job.'''\n"
    "    print('step 1 of 3\\rstep 3 of 3')\n"
    f"    return {CAME!r}\n"
)


def test_a_bare_sql_row_shows_a_carriage_return_as_a_terminal_and_the_frame_keeps_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch, TOOL) as sh:
        sh.run_cell("%lash open s --store nb.duckdb")
        sh.run_cell("%%lash\nplease check job=nightly")
        query = "SELECT output ->> '$' AS output, printed FROM tool_calls"
        shown = sh.run_cell(f"%lash sql {query}")
        kept = sh.run_cell(f"df = %lash sql {query}\ndf")
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "await _magics().ctx.close()")
    assert kept["output"][0] == CAME and kept["printed"][0] == "step 1 of 3\rstep 3 of 3\n"
    assert shown["output"][0] == SHOWN and shown["printed"][0] == "step 3 of 3\n"
    for text in (shown._repr_html_(), repr(shown)):
        assert "\r" not in text and "downloading 100%" in text and "step 3 of 3" in text
