"""A turn whose tool returned a 3.3 MB build log, run in a real kernel (nbclient), saved and
read back as a user reads the file (ADR 182).

The session keeps the log's two ends (65,536 characters, ADR 174) and the offline model
echoes what it was sent. Before: the tool row showed 20,000 characters cut mid-word, said
"the whole output is stored" (it is not), and the saved cell held the answer three times
(``text/html``, ``text/markdown``, ``text/plain``) and twice more in the widget state
nbclient saves. The note's ``%lash sql`` is run as the user would copy it, in the same
kernel.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow  # a kernel, two turns

CELLS = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0",
    ('from lash_nb import tool\n\n@tool\ndef build_log(job: str) -> str:\n'
     '    """The whole build log of a CI job."""\n'
     '    return "".join(f"{i:06d} compiling module_{i} ok\\n" for i in range(100_000))'),
    "%lash open ci --store ci.duckdb --fresh --tools build_log",
    "%%lash\nhello there",
    "r = %lash turn What does build_log say for 'ci'?",
]
BUILD_LOG = "".join(f"{i:06d} compiling module_{i} ok\n" for i in range(100_000))
LAST_LINE = "099999 compiling module_99999 ok"  # in the answer (the log's end), not in the row
NOTE = re.compile(r"\n… ([\d,]+) more characters not shown here; lash kept ([\d,]+) of the "
                  r"([\d,]+) characters this tool returned \(its start and end, what the model "
                  r"read\), stored: %lash sql (SELECT output FROM tool_calls WHERE call_id = "
                  r"'[^']+')\n(\[… lash left out [^\n]*…\])$")
TOOL_OUTPUT = re.compile(r'<pre class="lash-tool-output"[^>]*>(.*?)</pre>', re.DOTALL)


def _outputs_text(cell: Any) -> str:
    return "\n".join(v if isinstance(v, str) else json.dumps(v)
                     for o in cell.get("outputs", ()) for v in o.get("data", {}).values())


def test_a_big_tool_outputs_turn_saves_its_start_what_the_store_kept_and_the_answer_twice(
        tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        client.set_widgets_metadata()  # what client.execute() does at its end
        nbformat.write(nb, tmp_path / "ci.ipynb")
        saved = json.loads((tmp_path / "ci.ipynb").read_text(encoding="utf-8"))
        turn = saved["cells"][4]
        (record,) = [o["data"] for o in turn["outputs"] if "lash-static" in
                     "".join(o.get("data", {}).get("text/html", ""))]

        # the tool row: whole lines of the log, then what the store holds and how to read it
        (row,) = TOOL_OUTPUT.findall("".join(record["text/html"]))
        shown = html.unescape(row)
        note = NOTE.search(shown)
        assert note is not None, shown[-700:]
        head = shown[:note.start()]
        assert BUILD_LOG.startswith(head + "\n") and 18_000 < len(head) <= 20_000
        assert "whole output is stored" not in shown
        rest, kept, total = (int(note.group(i).replace(",", "")) for i in (1, 2, 3))
        assert total == len(BUILD_LOG)

        # the note's query, copied into a new cell, reads what lash kept: those characters
        query = note.group(4)
        probe = nbformat.v4.new_code_cell(
            f"kept = %lash sql {query}\n"
            "import json\ntext = json.loads(kept.iloc[0, 0])\n"
            "print(len(kept), len(text), text == r.tool_calls[0].output)")
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
    rows, length, same = "".join(o.get("text", "") for o in probe.outputs).split()
    assert (rows, same) == ("1", "True")
    assert int(length) == len(head) + rest  # the row's start and the characters not shown
    assert int(length) == kept + len(note.group(5)) + 2  # the two ends and the line between

    # the saved cell holds the answer in the HTML and the plain text, not a third time
    assert "text/markdown" not in record
    assert _outputs_text(turn).count(LAST_LINE) == 2
    plain = "".join(record["text/plain"])
    assert plain.count(LAST_LINE) == 1 and "build_log returned 000000 compiling" in plain
    assert "- tool `build_log` done" in plain  # the terminal's markdown text, rows and all
    short = _outputs_text(saved["cells"][3])
    assert short.count("You said: hello there") == 2
    # nor in the widget state nbclient saves: the turn widgets' final rows were messages to
    # their views, which the records replaced (their outcome is there, not their rows)
    file = (tmp_path / "ci.ipynb").read_text(encoding="utf-8")
    assert file.count(LAST_LINE) == 2 and file.count("You said: hello there") == 2
    states = [m["state"] for m in saved["metadata"]["widgets"][
        "application/vnd.jupyter.widget-state+json"]["state"].values()]
    turns = [s for s in states if "outcome" in s]
    assert sorted(s["outcome"] for s in turns) == ["finished: assistant_message"] * 2
    assert all(s.get("blocks", []) == [] and s.get("html", {}) == {} for s in turns)
