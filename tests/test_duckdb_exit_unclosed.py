"""A kernel shut down from the menu (or a script that ends) without closing its store keeps
its turns.

JupyterLab's "Shut Down Kernel" asks the kernel to exit; nobody awaited ``core.close()``. The
store's last fold then runs while Python is shutting down, where DuckDB refuses to run Python
code (``InvalidInputException: ... the Python interpreter is shutting down``). That is not
bad data: the commits must stay in the log and fold at the next open, never be quarantined
(quarantined, the reopened session had 0 turns).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from notebook_harness import KernelHarness

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider

ROOT = Path(__file__).resolve().parents[1]


def _reopen(path: Path, sid: str) -> tuple[list[str], int]:
    async def body():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(str(path)).build()
        s = await core.session(sid).open()
        texts = [m.text() for m in s.read_view().messages()]
        quarantined = len(core.store.quarantined_commits())
        await core.close()
        return texts, quarantined

    return asyncio.run(body())


def test_a_kernel_shut_down_gracefully_keeps_its_turns(tmp_path: Path) -> None:
    k = KernelHarness(cwd=str(tmp_path)).start()
    try:
        k.execute("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.execute("%lash open k --store k.duckdb")
        assert k.execute("%%lash\nremember this answer").status == "ok"
    finally:
        assert k.kc is not None and k.km is not None
        k.kc.stop_channels()
        k.km.shutdown_kernel(now=False)  # a shutdown_request, as the menu sends
        k.kc = k.km = None
    texts, quarantined = _reopen(tmp_path / "k.duckdb", "k")
    assert "remember this answer" in texts
    assert quarantined == 0


SCRIPT = textwrap.dedent("""
    import sys
    from IPython.core.interactiveshell import InteractiveShell
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext lash_nb")
    sh.run_cell("%config LashMagics.offline_delay_s = 0")
    sh.run_cell("%lash open s --store " + sys.argv[1])
    sh.run_cell("%%lash\\nremember this answer")
""")


def test_an_ipython_script_that_ends_without_closing_keeps_its_turn(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "commit_quarantine" not in run.stderr, run.stderr
    texts, quarantined = _reopen(path, "s")
    assert "remember this answer" in texts
    assert quarantined == 0


def test_a_fold_refused_because_python_is_shutting_down_is_not_quarantined(tmp_path: Path) -> None:
    """The race above, made certain: the fold's transaction fails the way DuckDB fails it
    during interpreter shutdown. The commit stays in the log; nothing is quarantined."""
    import duckdb
    import pytest

    from lash_nb._store.duckdb import quarantine

    con = duckdb.connect(str(tmp_path / "q.duckdb"))
    con.execute("CREATE TABLE commit_log (session_id VARCHAR, head_revision BIGINT, "
                "written_at TIMESTAMP, body VARCHAR)")
    con.execute("INSERT INTO commit_log VALUES ('s', 1, now()::TIMESTAMP, '{}')")

    class D:
        session_id, head_revision, turns, tables = "s", 1, [{"turn_id": "t1"}], {}

    def run(job):
        if job.__name__ == "one":
            raise duckdb.InvalidInputException(
                "Invalid Input Error: this query cannot run Python code: the Python "
                "interpreter is shutting down")
        job(con)

    with pytest.raises(duckdb.InvalidInputException):
        quarantine.fold_each(run, [D()])
    assert con.execute("SELECT count(*) FROM commit_log").fetchone() == (1,)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "commit_quarantine" not in tables
