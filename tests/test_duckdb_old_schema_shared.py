"""Yesterday's store in a shared folder, today's lash_nb (ADR 221): a file as the first lash_nb
of schema 3 wrote it (no ``blobs`` table, no usage ``estimated`` nor ``tool_calls.printed``
columns: ``tests/data/duckdb_schema_v3.sql`` over ``_v2.sql``) is refused with the command that migrates it,
and both that line and the command's own say what the migration means for a colleague whose
lash_nb still uses schema 3 (it will refuse the file: upgrade there, and do not delete it, as
lash_nb before schema 3.1 advised for a newer file). Migrated, every stored thing is there:
messages, the queued batch (it runs), the usage with its tokens."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from lash_nb import LashCore
from lash_nb._errors import StoreSchemaError
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

DATA = Path(__file__).parent / "data"


def _v3_file(path: Path, provider: str = "function", model: str = "function-model") -> None:
    con = duckdb.connect(str(path))
    for step in ("duckdb_schema_v2.sql", "duckdb_schema_v3.sql"):
        con.execute((DATA / step).read_text())
    con.execute("INSERT INTO sessions VALUES ('old', ?, ?, NULL, '{}', 2, 'n2', 1, NULL, now(), "
                "now(), 5)", [provider, model])
    for seq, (nid, parent, role, text) in enumerate(
            (("n1", None, "user", "hello"), ("n2", "n1", "assistant", "hi there")), start=1):
        content = (f'{{"id":"{nid}","role":"{role}","parts":[{{"id":"{nid}.p0","kind":"text",'
                   f'"content":"{text}"}}]}}')
        con.execute("INSERT INTO graph_nodes VALUES ('old', ?, ?, ?, 'message', ?, ?, now(), "
                    "'t1', false)", [seq, nid, parent, role, content])
    con.execute("INSERT INTO usage_deltas VALUES ('old', 't1', 3, 'llm', ?, 120, 30, 0, 0, 0, "
                "now())", [model])
    con.execute(
        "INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
        "slot_policy, merge_key, available_at_ms, enqueued_at_ms, items) VALUES ('qwb:old', "
        "'old', NULL, 'after_current_turn_commit', 'exclusive', NULL, 0, 1, ?)",
        [('[{"item_id": "qwb:old:item:0", "kind": "turn_input", '
          '"payload": {"items": [{"type": "text", "text": "queued yesterday"}]}}]')])
    con.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_first_schema_3_store_is_refused_migrated_with_the_colleague_told_and_keeps_all(
        tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    _v3_file(path)
    before = _digest(path)
    for read_only in (False, True):
        with pytest.raises(StoreSchemaError) as e:
            DuckDBStore(path, read_only=read_only)
        msg = str(e.value)
        assert "\n" not in msg and f"python -m lash_nb migrate-store {path}" in msg
        assert "a lash_nb still at schema 3" in msg  # what migrating does to a colleague
    assert _digest(path) == before

    done = subprocess.run([sys.executable, "-m", "lash_nb", "migrate-store", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.strip().splitlines()
    assert line.startswith(f"{path}: schema version 3 -> 4; ")
    assert "a lash_nb still at schema 3" in line and "upgrade lash_nb there" in line
    assert "do not delete" in line

    async def today() -> None:
        core = (LashCore.builder().provider(FunctionProvider(lambda r: "today's answer"))
                .store(str(path)).build())
        s = await core.session("old").open()
        assert [m.text() for m in s.read_view().messages()] == ["hello", "hi there"]
        [batch] = await s.queued_work()
        assert (batch.batch_id, batch.status) == ("qwb:old", "pending")
        out = await s.queued_turn().run()
        assert out.result.queued_batch_ids == ("qwb:old",)
        assert [m.text() for m in s.read_view().messages()][-2:] == [
            "queued yesterday", "today's answer"]
        usage = s.usage_report().usage
        assert (usage.input_tokens, usage.output_tokens) == (120, 30)
        await core.close()
    asyncio.run(today())


def test_rerunning_yesterdays_notebook_after_the_upgrade(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook's cells, re-run the morning after the upgrade: the open is one line with
    the migration, given as a line the kernel runs itself (``!python`` may be another Python,
    without lash_nb or with an older one), and what it means for the colleague; migrated so,
    the same cells go on with yesterday's session."""
    from IPython.core.error import UsageError
    from notebook_harness import lash_shell

    _v3_file(tmp_path / "lash.duckdb", "offline", "lash-offline")
    with lash_shell(tmp_path, monkeypatch) as sh:
        with pytest.raises(UsageError) as e:
            sh.run_cell("%lash open old --store lash.duckdb")
        msg = str(e.value)
        assert "\n" not in msg and "`%run -m lash_nb migrate-store lash.duckdb`" in msg
        assert "a lash_nb still at schema 3" in msg
        sh.run_cell("%run -m lash_nb migrate-store lash.duckdb")
        sh.run_cell("%lash open old --store lash.duckdb")
        sh.run_cell("%%lash\nand today?")
        frame = sh.run_cell("%%lash sql\nSELECT role, content->>'$.parts[0].content' AS text "
                            "FROM graph_nodes WHERE kind = 'message' ORDER BY seq")
    assert list(frame["text"])[:3] == ["hello", "hi there", "and today?"]
