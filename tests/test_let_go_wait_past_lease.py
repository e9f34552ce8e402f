"""A finished turn whose store was let go waits for its file (moved away, ADR 181) longer
than the turn's execution lease lasts in the file (30 s; 1 s here, through
``LashCore.builder().lease_ttl_ms``): once the file is back the turn is saved once, and when
another process took the session meanwhile the answer is kept, NOT saved, never written over
that process's turn (docs/adr/0185). No timed assertions: the test goes on once the store's
own wait events say the wait outlasted the lease."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_duckdb_store_under_hands import _questions_in
from test_unsaved_final_commit import _turn_rows

from lash_nb import LashCore
from lash_nb.errors import TurnNotSaved
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
LEASE_MS = 1000


def _waited_past_the_lease(waits: list[Any]) -> bool:
    return any(getattr(a.event, "reason", None) == "moved"
               and (getattr(a.event, "waited_s", 0) or 0) * 1000 >= 3 * LEASE_MS for a in waits)


def _session(path: Path, store: DuckDBStore, moved: Path) -> Any:
    async def model(request: Any) -> str:
        if "slow" in request.messages[-1].text():
            await store.release_file()  # a hand-over to a worker does this
            path.rename(moved)
        return "an answer that cost money"

    return (LashCore.builder().provider(FunctionProvider(model)).store(store)
            .lease_ttl_ms(LEASE_MS).build())


@pytest.mark.slow
def test_a_let_go_wait_longer_than_the_lease_is_saved_once_the_file_is_back(
        tmp_path: Path) -> None:
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    store = DuckDBStore(path)

    async def notebook() -> tuple[Any, list[str]]:
        core = _session(path, store, moved)
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        waits: list[Any] = []
        task = asyncio.ensure_future(s.turn("a slow question").stream().follow(waits.append))
        while not _waited_past_the_lease(waits):
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        moved.rename(path)
        result = await task
        await s.turn("a question after it").run()  # the session goes on, lease and all
        seen = [m.text() for m in s.read_view().messages()]
        await core.close()
        return result, seen

    result, seen = asyncio.run(notebook())
    assert result.text == "an answer that cost money" and result.head_revision is not None
    assert seen.count("an answer that cost money") == 3
    assert _questions_in(path, "nb") == ["a first question", "a slow question",
                                         "a question after it"]
    assert [o for o, _ in _turn_rows(path)] == ["finished"] * 3


TAKE_OVER = """
import asyncio, sys
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

async def main():
    core = (LashCore.builder().provider(FunctionProvider(lambda r: "the colleague's answer"))
            .store(DuckDBStore(sys.argv[1])).build())
    s = await core.session("nb").open()
    await s.turn("a colleague's question").run()
    await core.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_let_go_wait_past_the_lease_whose_session_another_process_took_keeps_the_answer_unsaved(
        tmp_path: Path) -> None:
    """While the file is away (moved), a colleague opens it where it is now, finds the
    turn's lease expired and commits a turn of their own to the session. Put back, the
    waiting turn must not be written over theirs: its answer is kept, NOT saved."""
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    store = DuckDBStore(path)

    async def notebook() -> BaseException | Any:
        core = _session(path, store, moved)
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        waits: list[Any] = []
        task = asyncio.ensure_future(s.turn("a slow question").stream().follow(waits.append))
        while not _waited_past_the_lease(waits):
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", TAKE_OVER, str(moved)],
                                check=True, cwd=ROOT, timeout=120)
        moved.rename(path)
        try:
            return await task
        except BaseException as e:
            return e
        finally:
            await core.close()

    got = asyncio.run(notebook())
    assert isinstance(got, TurnNotSaved), got
    said = str(got)
    assert "\n" not in said and "NOT saved" in said, said
    # why, in the user's terms: not "use a new turn id" (the user chose none)
    assert "use a new turn id" not in said, said
    assert "another process committed to session 'nb'" in said, said
    assert "run the prompt again" in said, said
    assert got.result.text == "an answer that cost money"
    answers = [r for _, r in _turn_rows(path)]
    assert sum("the colleague's answer" in r for r in answers) == 1, answers
    assert sum("an answer that cost money" in r for r in answers) == 1, answers  # the first
