"""What a notebook tool prints is shown with its call in the saved notebook and kept in the
DuckDB file (docs/adr/0197), in a real kernel run by nbclient.

A data scientist's tool prints progress lines and a small table, writes to stderr, warns and
logs. Before: in a ``%%lash`` cell the lines went under the cell as stream output, apart from
the tool's row and the record; a ``--background`` turn's lines were lost (sent under a cell
nbclient no longer read); nothing was stored, so ``%lash sql`` and a reopened session had
none of it, and a key the tool printed was in the cell's output. Now the tool row holds them
(live and in the record saved in the file), the ``tool_calls`` row holds them, without the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
duckdb = pytest.importorskip("duckdb")

pytestmark = pytest.mark.slow  # a kernel, three turns

KEY = "envkey-notebook-3Fv8Qa1Lm6Zs"  # a provider key of the kernel's environment
TOOLS = '''import os, sys, asyncio, logging, warnings
from lash_nb import tool

@tool
def crunch(job: str) -> str:
    """Crunch a job, telling how it goes."""
    print("PROGRESS 1/2", job)
    print("  col | n\\n    a | 1")
    sys.stderr.write("STDERR careful with " + job + "\\n")
    warnings.warn("WARNED " + job, UserWarning, stacklevel=1)
    logging.getLogger("mytool").warning("LOGGED %s", job)
    print("token", os.environ["ANTHROPIC_API_KEY"])
    print("PROGRESS 2/2", job)
    return "done " + job

@tool
async def acrunch(job: str) -> str:
    """Crunch a job, the async way."""
    print("APRINT", job)
    await asyncio.sleep(0)
    return "adone " + job
'''
API = ("from lash_nb import LashCore\n"
       "core = LashCore.builder().model('offline:lash-offline').tools(acrunch).build()\n"
       "s = await core.session('api').open()\n"
       "out = await s.turn('please acrunch job=gamma').run()\n"
       "print('API PRINTED', repr(out.result.tool_calls[0].printed))\n"
       "await core.close()")
CELLS = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0",
    TOOLS,
    "%lash open p --store p.duckdb --fresh --tools crunch,acrunch",
    "%%lash\nplease crunch job=alpha",
    "%%lash --background\nplease crunch job=delta",
    "%lash wait",
    API,
]


def _record(cell: Any) -> dict[str, Any]:
    (record,) = [o["data"] for o in cell["outputs"]
                 if "lash-static" in "".join(o.get("data", {}).get("text/html", ""))]
    return {k: "".join(v) if isinstance(v, list) else v for k, v in record.items()}


def _streams(cell: Any) -> str:
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


def test_what_a_tool_printed_is_on_its_row_in_the_saved_notebook_and_in_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # the kernel's environment has the key
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "p.ipynb")
    file = (tmp_path / "p.ipynb").read_text(encoding="utf-8")
    saved = json.loads(file)["cells"]

    # the %%lash cell: the lines are in the tool row of the record, in order, and not also
    # loose under the cell
    fg = _record(saved[3])
    html = fg["text/html"]
    assert 'class="lash-tool-printed"' in html and "· printed" in html
    for line in ("PROGRESS 1/2 alpha", "  col | n\n    a | 1", "STDERR careful with alpha",
                 "WARNED alpha", "LOGGED alpha", "token [redacted]", "PROGRESS 2/2 alpha"):
        assert line in html, html[-3000:]
    assert html.index("PROGRESS 1/2 alpha") < html.index("STDERR") < html.index("PROGRESS 2/2")
    assert "PROGRESS" not in _streams(saved[3])
    assert "printed:\n```\nPROGRESS 1/2 alpha" in fg["text/plain"]  # the markdown form too

    # the background turn's lines are saved with its record (they were lost)
    bg = _record(saved[4])["text/html"]
    assert "PROGRESS 1/2 delta" in bg and "PROGRESS 2/2 delta" in bg and "alpha" not in bg

    # a turn of the Python API keeps them on its records
    assert "API PRINTED 'APRINT gamma\\n'" in _streams(saved[6])
    assert "APRINT" not in _streams(saved[6]).replace("API PRINTED 'APRINT", "")

    # the key the tool printed is nowhere in the notebook or the store
    assert KEY not in file
    store = tmp_path / "p.duckdb"
    assert KEY.encode() not in store.read_bytes()

    # the store, read as %lash sql reads it after the kernel is gone: each call its own lines
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute("SELECT args->>'job', printed FROM tool_calls ORDER BY seq").fetchall()
    finally:
        con.close()
    assert [job for job, _ in rows] == ["alpha", "delta"]
    for job, printed in rows:
        assert printed.startswith(f"PROGRESS 1/2 {job}\n  col | n\n    a | 1\n")
        assert f"STDERR careful with {job}\n" in printed and f"LOGGED {job}" in printed
        assert printed.endswith(f"token [redacted]\nPROGRESS 2/2 {job}\n")
        other = "delta" if job == "alpha" else "alpha"
        assert other not in printed
