"""The README's code blocks run as written, the way a new user runs them: copied into the cells of
a notebook, executed top to bottom in a fresh kernel with no API key (nbclient, as
``jupyter nbconvert --execute`` does).

The blocks are read from README.md itself, so a block edited there is the block tested here. The
expected strings follow from the offline provider's documented rules
(``lash_nb/_providers/offline.py``: it calls a tool the prompt names, with the first quoted
string as its argument, then answers ``"<tool> returned <output>."``) and from the tool the
README defines (``return "sunny"``), not from running the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "GOOGLE_API_KEY",
                 "GEMINI_API_KEY", "LASH_OLLAMA_BASE_URL", "OLLAMA_HOST", "LASH_MODEL")
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```\n", re.S | re.M)


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next ``## `` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else len(README)]


def blocks(title: str) -> list[str]:
    """The fenced code blocks of a section, in order, except shell ones."""
    return [body for lang, body in FENCE.findall(section(title)) if lang not in ("bash", "sh")]


def run_cells(cells: list[str], cwd: Path) -> list[str]:
    """Run the cells in one fresh kernel; return each cell's text outputs (streams, text/plain,
    errors), one string per cell. A cell that raises is a test failure naming it."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    texts = []
    for cell in nb.cells:
        out: list[str] = []
        for o in cell.outputs:
            if o.output_type == "stream":
                out.append(o.text)
            elif o.output_type == "error":
                out.append(f"ERROR {o.ename}: {o.evalue}")
            else:
                out.append(o.get("data", {}).get("text/plain", ""))
        texts.append("".join(out))
    for cell, text in zip(cells, texts, strict=True):
        assert "ERROR" not in text and "UsageError" not in text, (cell, text)
    return texts


def test_the_blocks_are_found() -> None:
    # the section titles the test reads by: renaming one must not silently test nothing
    assert blocks("In a notebook")[-1].startswith("%%lash\n")
    assert len(blocks("Python API in ten lines")) == 1
    assert any(b.startswith("%%lash sql") for b in blocks("The store and its SQL"))


@pytest.mark.slow  # a kernel runs the README's cells
def test_the_readme_blocks_run_as_written_in_a_notebook(
    tmp_path: Path, monkeypatch: Any
) -> None:
    for var in KEY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    notebook = blocks("In a notebook")  # the tool, the open, the %%lash prompt cell
    (api_cell,) = blocks("Python API in ten lines")
    (sql_cell,) = [b for b in blocks("The store and its SQL") if b.startswith("%%lash sql")]
    texts = run_cells([*notebook, "%lash sessions", sql_cell, api_cell], tmp_path)
    answered, sessions, sql, api = texts[-4:]
    # the open ran in its cell (a %lash line in the cell that loads the extension is not
    # rewritten and runs as a background task), so the turn went to the session it named,
    # not to a 'default' session opened in its place
    assert not any("background task" in t for t in texts), texts
    assert "no session was open" not in answered, answered
    assert "demo" in sessions and "default" not in sessions, sessions
    # the notebook's weather tool was attached by %lash open and called with 'Paris'
    assert "weather returned sunny." in answered, answered
    assert "finished: assistant_message" in answered
    # the SQL block reads the usage the turn stored, under the offline model's name
    assert "lash-offline" in sql, sql
    # the Python API block: streamed activity types, then the outcome and the usage frame
    assert "assistant_prose_delta" in api and "turn_outcome" in api, api
    assert "finished: assistant_message" in api
    assert "total_tokens" in api
    assert (tmp_path / "lash.duckdb").exists()


@pytest.mark.slow  # a kernel runs the README's cells
def test_the_extension_and_the_open_in_one_cell_still_open_the_session_the_next_cell_uses(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A user puts the setup in one cell: ``%load_ext lash_nb`` and ``%lash open demo``. That
    cell's ``%lash`` line is not rewritten into an await (the extension was not loaded when
    the cell was read): it runs as a background task, and the next cell's turn found no
    session yet and opened a 'default' one in its place (ADR 230)."""
    for var in KEY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    tool_cell, *_rest = blocks("In a notebook")
    texts = run_cells([tool_cell, "%load_ext lash_nb\n%lash open demo --store lash.duckdb",
                       "%%lash\nWhat does weather say for 'Paris'?", "%lash sessions"], tmp_path)
    setup, answered, sessions = texts[1:]
    assert "background task" in setup  # still said: the line ran unawaited
    assert "no session was open" not in answered, answered
    assert "weather returned sunny." in answered
    assert "demo" in sessions and "default" not in sessions, sessions
