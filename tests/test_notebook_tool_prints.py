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
import os
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
duckdb = pytest.importorskip("duckdb")

pytestmark = pytest.mark.slow  # a kernel, three turns

KEY = "envkey-notebook-3Fv8Qa1Lm6Zs"  # a provider key of the kernel's environment
TOOLS = '''import os, sys, asyncio, logging, threading, warnings
from lash_nb import tool
tool_halfway, cell_halfway = threading.Event(), threading.Event()

@tool
def crunch(job: str) -> str:
    """Crunch a job, telling how it goes."""
    print("PROGRESS 1/2", job)
    print("  col | n\\n    a | 1")
    sys.stderr.write("STDERR careful with " + job + "\\n")
    warnings.warn("WARNED " + job, UserWarning, stacklevel=1)
    logging.getLogger("mytool").warning("LOGGED %s", job)
    print("token", os.environ["ANTHROPIC_API_KEY"])
    if job == "delta":  # the background call and the next cell print in turns
        print("SLOW 0", job)
        tool_halfway.set()
        cell_halfway.wait(60)
        print("SLOW 1", job)
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
("while not tool_halfway.is_set():\n    await asyncio.sleep(0.05)\n"
     "for i in range(8):\n    print('FOREGROUND', i)\n    await asyncio.sleep(0.05)\n"
     "    if i == 3:\n        cell_halfway.set()"),
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

    # the cell that ran while the background call printed keeps its own lines, and only them
    assert _streams(saved[5]) == "".join(f"FOREGROUND {i}\n" for i in range(8))
    assert "FOREGROUND" not in bg and "SLOW 0 delta\nSLOW 1 delta" in bg

    # a turn of the Python API keeps them on its records, and, with no widget to show them,
    # under its cell as before
    assert "API PRINTED 'APRINT gamma\\n'" in _streams(saved[7])
    assert _streams(saved[7]).startswith("APRINT gamma\n")

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
        assert "token [redacted]\n" in printed and printed.endswith(f"PROGRESS 2/2 {job}\n")
        assert "FOREGROUND" not in printed
        other = "delta" if job == "alpha" else "alpha"
        assert other not in printed


LIVE_TOOL = '''import os, time
from lash_nb import tool

@tool
def load(name: str) -> str:
    """Load a data set, telling how far it got."""
    print("loading", name, "part 1 of 2")
    while not os.path.exists("go-on"):  # the test lets it finish once it saw the line
        time.sleep(0.05)
    print("loading", name, "part 2 of 2")
    return "loaded " + name
'''


def test_a_running_tools_printed_lines_show_on_its_row_in_the_live_widget(tmp_path: Path) -> None:
    """The row of a call still running shows the lines it printed so far (the widget's rows
    as the browser receives them), and the finished row all of them; nothing goes under
    the cell. Before: the lines were stream output of the cell, the row had none."""
    from notebook_harness import KernelHarness

    with KernelHarness(cwd=str(tmp_path)) as k:
        for cell in ("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0", LIVE_TOOL,
                     "%lash open live --fresh --tools load"):
            assert k.run(cell).status == "ok"
        ex = k.submit("%%lash\nplease load name=sales")
        model_id = k.wait_for_widget(ex, name="TurnWidget")

        def row() -> dict[str, Any]:
            rows = [b for b in k.state(model_id).get("blocks") or () if b.get("kind") == "tool"]
            return rows[0] if rows else {}

        k.pump_until(lambda: bool(row().get("printed")), timeout=120)
        running = row()
        (tmp_path / "go-on").write_text("")
        k.wait(ex, timeout=120)
    assert running["status"] == "running"
    assert running["printed"] == "loading sales part 1 of 2\n"
    assert row()["status"] == "done"
    assert row()["printed"] == "loading sales part 1 of 2\nloading sales part 2 of 2\n"
    assert "loading" not in ex.stdout + ex.stderr


FD_TOOL = '''import os, subprocess
from lash_nb import tool

@tool
def shell(cmd: str) -> str:
    """Run a command, as a tool that shells out does."""
    print("PY before", cmd)
    subprocess.run(["echo", "SUBPROCESS " + cmd], check=True)
    os.write(2, b"FD2 " + cmd.encode() + b"\\n")  # as a C library writing to stderr does
    print("PY after", cmd)
    return "ran " + cmd
'''


def test_what_a_tool_writes_to_the_file_descriptors_is_loose_under_the_cell(tmp_path: Path) -> None:
    """What ADR 210 says a user sees of a subprocess's output (or a C library's) in a
    ``%%lash`` cell: not taken per call (a file descriptor is the process's, shared by every
    call running at once), not on the row nor stored, but not lost either: ipykernel
    forwards it as the cell's stream output; Python's own prints stay on the row."""
    from notebook_harness import KernelHarness

    # ipykernel forwards the descriptors' output unless it runs under pytest (it reads
    # PYTEST_CURRENT_TEST): the kernel is started as a user's is, without it
    under_pytest = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        k = KernelHarness(cwd=str(tmp_path)).start()
    finally:
        if under_pytest is not None:
            os.environ["PYTEST_CURRENT_TEST"] = under_pytest
    try:
        for cell in ("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0", FD_TOOL,
                     "%lash open fd --fresh --tools shell"):
            assert k.run(cell).status == "ok"
        ex = k.submit("%%lash\nplease shell cmd=ls")
        model_id = k.wait_for_widget(ex, name="TurnWidget")
        k.wait(ex, timeout=120)
        k.pump_until(lambda: "FD2 ls" in ex.stderr and "SUBPROCESS ls" in ex.stdout, timeout=30)
        (row,) = [b for b in k.state(model_id).get("blocks") or () if b.get("kind") == "tool"]
        stored = k.run("x = %lash sql SELECT printed FROM tool_calls\nprint(x.printed[0])")
    finally:
        k.stop()
    assert row["printed"] == "PY before ls\nPY after ls\n"
    assert "SUBPROCESS ls\n" in ex.stdout and "PY" not in ex.stdout + ex.stderr
    assert "FD2 ls\n" in ex.stderr
    assert stored.stdout.strip().splitlines()[-2:] == ["PY before ls", "PY after ls"]
