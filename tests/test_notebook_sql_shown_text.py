"""What a bare ``%lash sql`` shows of stored text has no escapes or bidi controls (ADR 211).

A tool printed for a terminal (ANSI colours, a bell) or returned text holding a right-to-left
override, a "Trojan source" that reorders what the reader sees (``2 - 1`` drawn for
``1 - 2``). The live widget and the saved record show it without them (ADR 135, 142), and the
store keeps the text as it came. A bare ``%lash sql SELECT output ->> '$', printed FROM tool_calls``
showed the stored text as it came: JupyterLab renders the escapes of a ``text/plain`` output
as colours and the override reorders the table's HTML, so the one place a user goes to read
what exactly a tool said showed it reordered. The rows shown are now cleaned the way the
record is; ``df = %lash sql ...`` (the data) still holds the text as stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import lash_shell

TOOL = (
    "from lash_nb import tool\n"
    "@tool\n"
    "def check(job: str) -> str:\n"
    "    '''Check a job.'''\n"
    "    print('\\x1b[31mFAILED\\x1b[0m step 2\\x07 total = 1 \\u202e- 2\\u202c')\n"
    "    return 'total = 1 \\u202e- 2\\u202c ok'\n"
)
CONTROLS = ("\x1b", "\x07", "\u202e", "\u202c")


def test_a_bare_query_shows_stored_tool_text_without_escapes_and_the_assigned_frame_keeps_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch, TOOL) as sh:
        sh.run_cell("%lash open s --store nb.duckdb")
        sh.run_cell("%%lash\nplease check job=nightly")
        shown = sh.run_cell("%lash sql SELECT name, output ->> '$' AS output, printed "
                           "FROM tool_calls")
        kept = sh.run_cell("df = %lash sql SELECT name, output ->> '$' AS output, "
                           "printed FROM tool_calls\ndf")
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "await _magics().ctx.close()")
    # the data is as the tool wrote it (the store keeps text as it came)
    assert kept["printed"][0] == "\x1b[31mFAILED\x1b[0m step 2\x07 total = 1 \u202e- 2\u202c\n"
    assert "\u202e- 2\u202c" in kept["output"][0]
    # what the cell shows: each form Jupyter may render
    html, plain = shown._repr_html_(), repr(shown)
    for text in (html, plain):
        assert "FAILED step 2" in text and "total = 1 - 2 ok" in text
        for c in CONTROLS:
            assert c not in text, (c, text)
    assert shown["printed"][0] == "FAILED step 2 total = 1 - 2\n"
    assert str(shown["printed"].dtype) == str(kept["printed"].dtype)  # still a text column
