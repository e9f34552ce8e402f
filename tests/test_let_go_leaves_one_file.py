"""A store the notebook let go is one whole file: a user who then moves or copies the
``.duckdb`` alone (``mv agent.duckdb shared/``, an e-mail attachment) takes every committed
turn with it, never leaving the last ones in a ``.wal`` at the old path (docs/adr/0193).

The let-gos are the product's: a hand-over to another process waiting in the file's line (a
colleague's read-only notebook, a worker that is then killed while it holds the file) and an
idle release. The store's checkpoint at rest (1 s after the last job) is put off here, so
what the file holds is the let-go's doing: the other process arrives within that second."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lash_nb import LashCore
from lash_nb._store.duckdb import worker
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["first question", "second question", "third question"]
# another process, imported and waiting: on "go" it opens the file (waiting in its line, so
# the notebook hands it over), says what it sees, then closes it or is killed holding it
OTHER = (
    "import sys\n"
    "from lash_nb.stores import DuckDBStore\n"
    "read_only = sys.argv[2] == 'read_only'\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "s = DuckDBStore(sys.argv[1], lock_timeout_s=60, read_only=read_only)\n"
    "print('turns', s.query('SELECT count(*) AS n FROM turns')['n'][0], flush=True)\n"
    "if read_only:\n"
    "    s.close_sync()\n"
    "else:\n"
    "    sys.stdin.readline()  # holds the file until killed\n"
)


def _questions(path: Path, session: str = "nb") -> list[str]:
    """The user questions of ``session`` as a newly opened store at ``path`` shows them."""
    async def read() -> list[str]:
        core = LashCore.builder().provider(FunctionProvider(lambda r: "x")).store(
            DuckDBStore(path)).build()
        try:
            s = await core.session(session).open()
            return [m.text() for m in s.read_view().messages() if m.role.value == "user"]
        finally:
            await core.close()

    return asyncio.run(read())


def _wal(path: Path) -> int:
    wal = Path(f"{path}.wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.parametrize("let_go", ["hand_over_to_a_reader", "hand_over_to_a_killed_writer",
                                    "idle_release"])
def test_a_let_go_store_moved_without_its_wal_keeps_every_committed_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, let_go: str) -> None:
    monkeypatch.setattr(worker, "REST_CHECKPOINT_S", 3600.0)
    path, elsewhere = tmp_path / "agent.duckdb", tmp_path / "shared"
    elsewhere.mkdir()
    other: subprocess.Popen[str] | None = None
    if let_go != "idle_release":
        other = subprocess.Popen(
            [sys.executable, "-c", OTHER, str(path),
             "read_only" if let_go == "hand_over_to_a_reader" else "write"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert other.stdout is not None and other.stdin is not None
        assert other.stdout.readline().split() == ["ready"]

    async def notebook() -> tuple[bool, str]:
        store = DuckDBStore(path, idle_release_s=0.3 if let_go == "idle_release" else None)
        core = LashCore.builder().provider(FunctionProvider(lambda r: "an answer")).store(
            store).build()
        s = await core.session("nb").open()
        for q in QUESTIONS:
            await s.turn(q).run()
        seen = ""
        if other is None:
            while store.holding_file:  # the idle release
                await asyncio.sleep(0.05)
        else:
            assert other.stdin is not None and other.stdout is not None
            other.stdin.write("go\n")
            other.stdin.flush()
            seen = await asyncio.to_thread(other.stdout.readline)
        holding = store.holding_file
        await core.close()  # (nothing to close: the file is let go)
        return holding, seen

    try:
        holding, seen = asyncio.run(notebook())
        if let_go == "hand_over_to_a_killed_writer":
            assert other is not None
            other.send_signal(signal.SIGKILL)  # while it holds the file
            other.wait(timeout=30)
        elif other is not None:
            other.wait(timeout=60)
    finally:
        if other is not None and other.poll() is None:
            other.kill()
    assert not holding
    if other is not None:
        assert seen.split() == ["turns", "3"]  # it read the three turns where they were
    os.rename(path, elsewhere / "agent.duckdb")  # the .wal, if any, stays behind
    assert _questions(elsewhere / "agent.duckdb") == QUESTIONS
    if let_go != "hand_over_to_a_killed_writer":  # (its own writes may be in a .wal)
        assert _wal(path) == 0  # one file: nothing of the store was left beside it


# a kernel that runs turns at a person's pace (its store checkpoints at rest between them)
# and is killed (kill -9) right after its last turn: that turn is only in the .wal
KILLED = (
    "import asyncio, sys, time\n"
    "from lash_nb import LashCore\n"
    "from lash_nb._store.duckdb import worker\n"
    "from lash_nb.providers import FunctionProvider\n"
    "async def main():\n"
    "    core = LashCore.builder().provider(FunctionProvider(lambda r: 'an answer'))"
    ".store(sys.argv[1]).build()\n"
    "    s = await core.session('nb').open()\n"
    "    for i, q in enumerate(sys.argv[2:]):\n"
    "        if i == len(sys.argv) - 3:\n"
    "            worker.REST_CHECKPOINT_S = 3600.0  # killed before it would rest\n"
    "        await s.turn(q).run()\n"
    "        time.sleep(1.5)  # the person reads the answer\n"
    "    print('done', flush=True)\n"
    "    time.sleep(600)\n"
    "asyncio.run(main())\n"
)


def test_a_store_reopened_after_a_kill_then_handed_over_and_moved_keeps_every_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The killed kernel's last turn is in its .wal; the next open (the kernel restarted a
    moment later) replays it. That store then hands the file to a colleague and the user
    moves the file: every turn goes with it."""
    monkeypatch.setattr(worker, "REST_CHECKPOINT_S", 3600.0)
    path, elsewhere = tmp_path / "agent.duckdb", tmp_path / "shared"
    elsewhere.mkdir()
    killed = subprocess.Popen([sys.executable, "-c", KILLED, str(path), *QUESTIONS],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    reader = subprocess.Popen([sys.executable, "-c", OTHER, str(path), "read_only"],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout is not None and reader.stdout is not None
        assert reader.stdin is not None
        assert killed.stdout.readline().split() == ["done"]
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert _wal(path) > 0  # the last turn is in it
        assert reader.stdout.readline().split() == ["ready"]

        async def restarted_kernel() -> tuple[list[str], str, bool]:
            store = DuckDBStore(path)
            core = LashCore.builder().provider(FunctionProvider(lambda r: "x")).store(
                store).build()
            s = await core.session("nb").open()
            shown = [m.text() for m in s.read_view().messages() if m.role.value == "user"]
            reader.stdin.write("go\n")  # type: ignore[union-attr]  # (asserted above)
            reader.stdin.flush()  # type: ignore[union-attr]
            seen = await asyncio.to_thread(reader.stdout.readline)  # type: ignore[union-attr]
            holding = store.holding_file
            await core.close()
            return shown, seen, holding

        shown, seen, holding = asyncio.run(restarted_kernel())
        reader.wait(timeout=60)
    finally:
        for p in (killed, reader):
            if p.poll() is None:
                p.kill()
    assert shown == QUESTIONS  # the reopen replayed the .wal
    assert seen.split() == ["turns", "3"] and not holding  # handed over
    os.rename(path, elsewhere / "agent.duckdb")
    assert _questions(elsewhere / "agent.duckdb") == QUESTIONS
    assert _wal(path) == 0
