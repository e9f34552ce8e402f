"""A store in a shared folder, opened on machines with other DuckDB versions (ADR 221).

The situations: a colleague's lash_nb runs a newer DuckDB whose storage format this one
cannot read (here: a store whose header says a future DuckDB, v2.3.0, wrote it in storage
version 1000, the way DuckDB marks a format newer than it knows); and a store kept in an
older storage format (DuckDB 1.x can read it) that ``vacuum`` copies into a fresh file."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lash_nb import LashCore
from lash_nb._errors import StoreError
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

_MASK = (1 << 64) - 1


def _duckdb_checksum(block: bytes) -> int:
    """DuckDB's block checksum (``src/common/checksum.cpp``): 5381 xor-ed with each 8-byte
    word times 0xbf58476d1ce4e5b9 (a header block is a whole number of words)."""
    out = 5381
    for (word,) in struct.iter_unpack("<Q", block):
        out ^= (word * 0xBF58476D1CE4E5B9) & _MASK
    return out


def _as_written_by_a_newer_duckdb(path: Path, version: str = "v2.3.0", number: int = 1000) -> None:
    """Make ``path``'s main header say what a future DuckDB writes: a storage version number
    past every one this DuckDB reads (1000) and its own library version; the checksum is
    recomputed so the file is otherwise sound. (An old number and version: a file of a DuckDB
    before 0.10, whose format today's DuckDB no longer reads.)"""
    data = bytearray(path.read_bytes())
    data[12:20] = struct.pack("<Q", number)
    data[52:84] = version.encode().ljust(32, b"\0")
    data[0:8] = struct.pack("<Q", _duckdb_checksum(bytes(data[8:4096])))
    path.write_bytes(bytes(data))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _core(path: Path, answer: str = "ok") -> Any:
    return LashCore.builder().provider(FunctionProvider(lambda r: answer)).store(str(path)).build()


def _write_turns(path: Path, sessions: int = 1, prompt: str = "hello", answer: str = "ok") -> None:
    async def body() -> None:
        core = _core(path, answer)
        for i in range(sessions):
            s = await core.session(f"s{i}").open()
            await s.turn(prompt).run()
        await core.close()
    asyncio.run(body())


def _storage_version(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        got = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                          "WHERE database_name = current_database()").fetchone()
    finally:
        con.close()
    assert got is not None
    return str(got[0])


@pytest.fixture
def newer_store(tmp_path: Path) -> Path:
    path = tmp_path / "lash.duckdb"
    _write_turns(path)
    _as_written_by_a_newer_duckdb(path)
    with pytest.raises(duckdb.IOException, match="newer version of DuckDB"):
        duckdb.connect(str(path), read_only=True)  # what DuckDB itself says of it
    return path


@pytest.mark.parametrize("read_only", [False, True])
def test_a_store_from_a_newer_duckdb_names_both_versions_and_stays_unchanged(
        newer_store: Path, read_only: bool) -> None:
    before = _digest(newer_store)
    with pytest.raises(StoreError) as e:
        DuckDBStore(newer_store, read_only=read_only)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(newer_store) in msg
    assert "DuckDB v2.3.0" in msg  # which DuckDB wrote it
    assert f"duckdb {duckdb.__version__}" in msg  # which one is here
    assert 'pip install -U "duckdb>=2.3.0"' in msg  # what to do
    assert "the file is unchanged" in msg
    assert "permissions" not in msg  # the old line sent the user to check the folder
    assert _digest(newer_store) == before


def test_a_store_in_a_format_older_than_this_duckdb_reads_says_export_it(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    _write_turns(path)
    _as_written_by_a_newer_duckdb(path, "v0.9.2", 51)
    before = _digest(path)
    with pytest.raises(StoreError) as e:
        DuckDBStore(path)
    msg = str(e.value)
    assert "\n" not in msg and "DuckDB v0.9.2" in msg and "no longer reads" in msg
    assert "EXPORT DATABASE" in msg and "the file is unchanged" in msg
    assert _digest(path) == before


def test_a_worker_on_a_store_from_a_newer_duckdb_says_so_in_one_line(newer_store: Path) -> None:
    before = _digest(newer_store)
    done = subprocess.run(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(newer_store),
         "--exit-when-idle", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "DuckDB v2.3.0" in line and "pip install -U" in line
    assert _digest(newer_store) == before


def test_lash_open_of_a_store_from_a_newer_duckdb_is_one_line(
        newer_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.error import UsageError
    from notebook_harness import lash_shell

    before = _digest(newer_store)
    with lash_shell(tmp_path, monkeypatch) as sh, pytest.raises(UsageError) as e:
        sh.run_cell(f"%lash open s0 --store {newer_store}")
    msg = str(e.value)
    assert "\n" not in msg and "DuckDB v2.3.0" in msg and 'pip install -U "duckdb>=2.3.0"' in msg
    assert _digest(newer_store) == before


def test_vacuum_keeps_the_storage_format_the_file_had(tmp_path: Path) -> None:
    """A store kept in DuckDB 1.x's format (``v1.0.0``; made by a DuckDB 1.x tool, or a
    colleague who reads it with one) stays in it after lash_nb writes turns and vacuums:
    the copy that replaces the file is written in the same format, not this DuckDB's latest
    (before: ``v2.0.0``, which DuckDB 1.5 refuses: "version number 69, but we can only read
    versions between 64 and 68")."""
    path = tmp_path / "lash.duckdb"
    con = duckdb.connect()
    con.execute(f"ATTACH '{path}' AS made (STORAGE_VERSION 'v1.0.0')")
    con.close()
    assert _storage_version(path) == "v1.0.0+"
    prompt, answer = " ".join(["hello"] * 400), " ".join(["ok"] * 2000)
    _write_turns(path, sessions=12, prompt=prompt, answer=answer)

    async def delete_and_vacuum() -> Any:
        core = _core(path)
        for i in range(11):
            await core.delete_session(f"s{i}")
        report = await core.vacuum()
        s = await core.session("s11").open()
        texts = [m.text() for m in s.read_view().messages()]
        await core.close()
        return report, texts
    report, texts = asyncio.run(delete_and_vacuum())
    assert report.file_bytes_after < report.file_bytes_before  # the copy did replace it
    assert texts == [prompt, answer]
    assert _storage_version(path) == "v1.0.0+"


def test_a_new_store_is_written_in_the_storage_format_of_the_lowest_duckdb_allowed(
        tmp_path: Path) -> None:
    """lash_nb allows duckdb>=2: a store a colleague's newer DuckDB creates must open on
    duckdb 2.0.0, so new files are pinned to its format (``v2.0.0``), whatever this
    DuckDB's latest."""
    path = tmp_path / "lash.duckdb"
    _write_turns(path)
    assert _storage_version(path) == "v2.0.0+"


GIF = b"GIF89a\x02\x00\x03\x00" + b"gif-body"


def test_a_store_a_newer_lash_nb_added_columns_to_keeps_working_here(tmp_path: Path) -> None:
    """Within schema version 4 a newer lash_nb may add columns (as ``tool_calls.printed``
    was: ``schema.ADDED_COLUMNS``, never dropped or renamed); a colleague's older lash_nb
    on the same file must go on writing every table. Before: the first turn failed with
    DuckDB's "table commit_log has 5 columns but 4 values were supplied" (also leases,
    blobs, queue history: their INSERTs named no columns)."""
    from lash_nb import TurnInput, tool
    from lash_nb._store.duckdb.schema import TABLES
    from lash_nb.testing import scripted, tool_call

    path = tmp_path / "lash.duckdb"
    _write_turns(path, prompt="from before", answer="stored before")
    con = duckdb.connect(str(path))  # what the newer lash_nb did to the file
    for table in TABLES[1:]:
        con.execute(f"ALTER TABLE {table} ADD COLUMN later_note VARCHAR")
        con.execute(f"UPDATE {table} SET later_note = 'newer'")
    con.close()

    @tool
    def count_words(text: str) -> int:
        """Count the words."""
        return len(text.split())

    async def body() -> Any:
        core = (LashCore.builder().tools(count_words).store(str(path))
                .provider(scripted([tool_call("count_words", '{"text": "a b c"}', "c1")], "3 words"))
                .build())
        s = await core.session("s1").open()
        await s.turn(TurnInput.text("count these").attach(GIF, name="dot.gif")).run()
        await s.enqueue("queued here")
        await s.queued_turn().run()
        gone = await core.session("s2").open()
        await gone.turn("soon deleted").run()
        await gone.close()
        await core.delete_session("s2")
        report = await core.vacuum()
        before = await core.session("s0").open()
        texts = {sid: [m.text() for m in h.read_view().messages() if m.text()]
                 for sid, h in (("s0", before), ("s1", s))}
        await core.close()
        return report, texts
    report, texts = asyncio.run(body())
    assert texts == {"s0": ["from before", "stored before"],
                     "s1": ["count these", "3 words", "queued here", "3 words"]}
    assert report.file_bytes_after > 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        notes = con.execute("SELECT session_id, later_note, count(*) FROM graph_nodes "
                            "GROUP BY ALL ORDER BY ALL").fetchall()
        counts = con.execute("SELECT (SELECT count(*) FROM queue_history), "
                             "(SELECT count(*) FROM blobs), (SELECT count(*) FROM tool_calls)"
                             ).fetchone()
    finally:
        con.close()
    # the newer lash_nb's values are kept; this lash_nb's rows leave its column NULL
    assert notes[0] == ("s0", "newer", 2) and {n[:2] for n in notes[1:]} == {("s1", None)}
    assert counts == (1, 1, 1)


_KILLED_AFTER_A_TURN = """
import asyncio, os, sys
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
async def main():
    core = LashCore.builder().provider(FunctionProvider(lambda r: "answer")).store(sys.argv[1]).build()
    s = await core.session("s").open()
    await s.turn("asked before the crash").run()
    os._exit(9)  # the commits stay in commit_log, unfolded
asyncio.run(main())
"""


def test_rows_a_newer_lash_nb_logged_before_it_died_keep_its_added_column(tmp_path: Path) -> None:
    """A newer lash_nb (a column added to ``graph_nodes`` within schema 4) died with its
    turn's commits still in ``commit_log``; this lash_nb opens the file first and folds them.
    The value the newer one logged for its column is written with the row (before: dropped,
    the fold knew only its own columns)."""
    import json

    path = tmp_path / "lash.duckdb"
    died = subprocess.run([sys.executable, "-c", _KILLED_AFTER_A_TURN, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    con = duckdb.connect(str(path))  # the newer lash_nb's column, and its rows as it logs them
    con.execute("ALTER TABLE graph_nodes ADD COLUMN later_note VARCHAR")
    logged = con.execute("SELECT session_id, head_revision, body FROM commit_log").fetchall()
    assert logged
    for sid, rev, body in logged:
        data = json.loads(body)
        nodes = data["tables"].get("graph_nodes")
        if nodes:
            nodes["later_note"] = [f"note {n}" for n in nodes["node_id"]]
            con.execute("UPDATE commit_log SET body = ? WHERE session_id = ? AND head_revision = ?",
                        [json.dumps(data), sid, rev])
    con.close()

    store = DuckDBStore(path, idle_release_s=None)
    try:
        loaded = asyncio.run(store.load_session("s"))
        assert loaded is not None
        assert [n.message.text() for n in loaded.nodes if n.message] == [
            "asked before the crash", "answer"]
        notes = store.query("SELECT node_id, later_note FROM graph_nodes ORDER BY seq")
    finally:
        store.close_sync()
    assert list(notes["later_note"]) == [f"note {n}" for n in notes["node_id"]]
