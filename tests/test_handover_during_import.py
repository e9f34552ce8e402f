"""Two processes share one DuckDB file (README "hand-over"): a process that holds it must
hand it over while it imports pandas and pyarrow (0.3-3 s on a quiet laptop, 10 s and more
on a busy one), not keep it through the import. Before, a script's first ``query`` and a
worker's first hand-over (its fold) imported them while holding the file, and a notebook
waiting in line gave up after its 10 s ("waited 10.4 s without a hand-over"; ADR 0213).

The import is made as slow as the test needs, not timed: a stand-in ``pandas`` first on the
holder's path stays "importing" until the test says go, then loads the real one. The test
checks that another process gets the file while the holder is inside the import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_harness import Execution, KernelHarness, wait_until

from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# stays in its import until the file ``go`` appears in SLOW_IMPORT_DIR (at most 300 s, so a
# process of a failed run ends), then puts the real pandas in its place
SLOW_PANDAS = '''
import os, sys, time
_dir = os.environ["SLOW_IMPORT_DIR"]
open(os.path.join(_dir, "importing"), "w").close()
_end = time.monotonic() + 300
while not os.path.exists(os.path.join(_dir, "go")) and time.monotonic() < _end:
    time.sleep(0.01)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
del sys.modules["pandas"]
import pandas as _real
sys.modules["pandas"] = _real
'''


def _slow_import_env(tmp_path: Path) -> dict[str, str]:
    stub = tmp_path / "slow_import"
    stub.mkdir()
    (stub / "pandas.py").write_text(SLOW_PANDAS)
    return dict(os.environ, PYTHONPATH=f"{stub}{os.pathsep}{ROOT}", SLOW_IMPORT_DIR=str(tmp_path))


def _session_s(path: Path, *, turn: str = "", queued: str = "") -> None:
    """Session ``s`` of a new store at ``path``: a finished ``turn``, or a ``queued`` prompt."""
    import asyncio

    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider

    async def body() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(DuckDBStore(path)).build()
        s = await core.session("s").open()
        if turn:
            await s.turn(turn).run()
        if queued:
            await s.enqueue(queued).send()
        await core.close()

    asyncio.run(body())


def _read_while_it_imports(tmp_path: Path, holder: subprocess.Popen[bytes] | subprocess.Popen[str],
                           path: Path, sql: str) -> tuple[int, bool]:
    """``n`` of ``sql``, read as the notebook does (waiting in the file's line, 60 s at most)
    while ``holder`` is inside its pandas import, and whether it still was once the read was
    done; then its import goes on."""
    try:
        wait_until("the other process to be importing pandas", (tmp_path / "importing").exists)
        store = DuckDBStore(path, lock_timeout_s=60)
        try:
            n = int(store.query(sql)["n"].iloc[0])
        finally:
            store.close_sync()
        return n, holder.poll() is None
    finally:
        (tmp_path / "go").touch()


def test_a_scripts_first_query_hands_the_file_over_while_it_imports_pandas(tmp_path: Path) -> None:
    """A colleague's script opens the store and queries it (its first query imports pandas
    and pyarrow for the DataFrame); the notebook reads the store meanwhile."""
    path = tmp_path / "shared.duckdb"
    _session_s(path, turn="a first question")
    script = subprocess.Popen(
        [sys.executable, "-c", ("import sys; from lash_nb.stores import DuckDBStore; "
                                "s = DuckDBStore(sys.argv[1], lock_timeout_s=120); "
                                "print(s.query('SELECT count(*) AS n FROM turns')['n'].iloc[0]); "
                                "s.close_sync()"), str(path)],
        cwd=ROOT, env=_slow_import_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        seen, importing = _read_while_it_imports(tmp_path, script, path,
                                                 "SELECT count(*) AS n FROM turns")
    finally:
        out, err = script.communicate(timeout=120)
    assert importing  # the notebook read the file while the script's import went on
    assert seen == 1
    assert script.returncode == 0, err
    assert out.strip() == "1", err  # the script's query ran too, once its import was done


def test_a_starting_worker_leaves_the_file_free_while_it_imports_pandas(tmp_path: Path) -> None:
    """``python -m lash_nb worker`` beside a notebook: the worker's commits need pandas and
    pyarrow; it imports them before it takes the file, so the notebook reads the store
    meanwhile. Before, it took the file first and its first queue queries then waited for the
    import (DuckDB binds a list parameter only once pandas is imported), holding the file.
    Its turn is then run and saved once."""
    path = tmp_path / "shared.duckdb"
    _session_s(path, queued="a queued question")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--session", "s",
         "--poll", "0.05", "--exit-when-idle", "1"],
        cwd=ROOT, env=_slow_import_env(tmp_path), stderr=log.open("wb"))
    try:
        queued, importing = _read_while_it_imports(tmp_path, worker, path,
                                                   "SELECT count(*) AS n FROM queued_work_batches")
    finally:
        code = worker.wait(timeout=120)
    said = log.read_text()
    assert importing and queued == 1
    assert code == 0, said
    assert "worker done: 1 turns {'finished: assistant_message': 1}" in said, said
    check = DuckDBStore(path, read_only=True)
    try:
        turns = check.query("SELECT status FROM turns")
        answers = check.query("SELECT count(*) AS n FROM graph_nodes WHERE role = 'assistant'")
    finally:
        check.close_sync()
    assert list(turns["status"]) == ["committed"], said  # the turn the worker ran, saved once
    assert int(answers["n"].iloc[0]) == 1, said


def _turns_by_session(path: Path) -> dict[str, list[str]]:
    """Each session's turns as a colleague opening the file afterwards reads them: writable,
    so the commits the killed kernel left in ``commit_log`` are folded in first (the harness
    ends its kernel with SIGKILL; a read-only open refuses such a file, by design)."""
    check = DuckDBStore(path)
    try:
        rows = check.query("SELECT session_id, status FROM turns ORDER BY session_id, started_at")
    finally:
        check.close_sync()
    out: dict[str, list[str]] = {}
    for sid, status in zip(rows["session_id"], rows["status"], strict=True):
        out.setdefault(str(sid), []).append(str(status))
    return out


def _notebook_importing(k: KernelHarness, tmp_path: Path, *, delay_s: float) -> Execution:
    """The user's notebook beside ``lash.duckdb``: ``%load_ext lash_nb``, then a first
    ``%%lash`` cell (it opens session ``default`` of ./lash.duckdb), left running once its
    first lease started the pandas import (which stays in it until the test touches ``go``)."""
    k.run(f"%load_ext lash_nb\n%config LashMagics.offline_delay_s = {delay_s}")
    cell = k.submit("%%lash\na first question")
    wait_until("the notebook's first turn to import pandas", (tmp_path / "importing").exists)
    return cell


def test_a_workers_turn_runs_while_a_notebooks_first_cell_imports_pandas(tmp_path: Path) -> None:
    """An agent engineer's ``lash_nb worker`` drains session ``s`` of lash.duckdb; they open
    a notebook on the same file and run a first ``%%lash`` cell, whose first lease starts the
    pandas/pyarrow import. The worker, asking for the file meanwhile, must get it, run its
    turn and exit while the notebook's import is still going on. Before, the notebook's
    store bound a parameter DuckDB checks against pandas' types while pandas was being
    imported, and waited on pandas' module lock holding the file: the worker waited for the
    rest of the import (here: for ever, it gave up "without a hand-over"). Then the cell's
    turn is stored too: nothing lost on either side."""
    path = tmp_path / "lash.duckdb"
    _session_s(path, queued="a queued question")
    log = tmp_path / "worker.log"
    with KernelHarness(cwd=str(tmp_path), env=_slow_import_env(tmp_path)) as k:
        cell = _notebook_importing(k, tmp_path, delay_s=0.2)
        try:
            worker = subprocess.Popen(
                [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--session", "s",
                 "--poll", "0.05", "--exit-when-idle", "1"],
                cwd=ROOT, stderr=log.open("wb"))
            try:
                code = worker.wait(timeout=120)
            except subprocess.TimeoutExpired:
                worker.kill()
                code = worker.wait()
        finally:
            (tmp_path / "go").touch()  # the notebook's import goes on
        k.wait(cell, timeout=120)
    said = log.read_text()
    assert code == 0, said  # its turn ran while the notebook's import was held back
    assert "worker done: 1 turns {'finished: assistant_message': 1}" in said, said
    assert cell.status == "ok", cell.error + cell.stderr
    assert _turns_by_session(path) == {"default": ["committed"], "s": ["committed"]}


def test_a_scripts_read_meets_a_notebooks_first_cell_committing_while_it_imports(
        tmp_path: Path) -> None:
    """The other side: the notebook's first turn commits (no model delay: its lease, claims
    and commits follow each other) while pandas is being imported; a colleague's script
    reading the file meanwhile gets it, and the cell's turn is stored whole once the import
    is over."""
    path = tmp_path / "lash.duckdb"
    _session_s(path, turn="an earlier question")
    with KernelHarness(cwd=str(tmp_path), env=_slow_import_env(tmp_path)) as k:
        cell = _notebook_importing(k, tmp_path, delay_s=0)
        try:
            store = DuckDBStore(path, lock_timeout_s=60)
            try:
                turns = int(store.query("SELECT count(*) AS n FROM turns")["n"].iloc[0])
            finally:
                store.close_sync()
        finally:
            (tmp_path / "go").touch()
        k.wait(cell, timeout=120)
    assert turns in (1, 2)  # the earlier turn, and the cell's if it was committed before
    assert cell.status == "ok", cell.error + cell.stderr
    assert _turns_by_session(path) == {"default": ["committed"], "s": ["committed"]}
