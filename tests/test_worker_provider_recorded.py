"""A notebook and a worker process on one DuckDB file, each with its own provider.

An agent engineer's session talks to OpenAI (stored provider ``openai-compatible``); they
start ``python -m lash_nb worker --store lash.duckdb`` beside the notebook and forget
``--provider``. Before (docs/adr/0201) the worker answered the session's queued prompt with
the offline model, into the conversation, and the batch was done: a plain turn with that
provider was refused (``ProviderUnavailable``), a queued one was not. Now the worker leaves the
batch queued, spends no attempt and says in one line which ``--provider`` would run it.

The other way round: a notebook that names its provider when it opens a session
(``core.session(id).provider(p)``) stored by another one was refused at its next turn once a
worker had committed to the session meanwhile, as if the worker had rebound the session
(``ProviderUnavailable``, advising ``open_fresh()``, which starts the conversation over).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.testing import scripted

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _worker(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A worker with the default provider (offline) that exits once idle."""
    return subprocess.run(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--poll", "0.05",
         "--exit-when-idle", "2", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_worker_with_another_provider_leaves_the_sessions_work_queued_and_says_which(
        tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"

    async def notebook() -> str:
        core = (LashCore.builder().provider(scripted("from openai", kind="openai-compatible"))
                .model("gpt-4.1-mini").store(path).build())
        s = await core.session("agent").open()
        await s.turn("first").run()
        batch = await s.enqueue("summarise the report").id("later").send()
        await s.close()
        return batch.batch_id

    batch_id = asyncio.run(notebook())
    done = _worker(path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "'agent'" in line]
    assert len(said) == 1, done.stderr  # one line, not one per poll
    assert "openai-compatible" in said[0] and "--provider" in said[0], said

    async def next_morning() -> tuple[list[tuple[str, int]], list[str], str | None]:
        core = (LashCore.builder().provider(scripted("from openai", kind="openai-compatible"))
                .model("gpt-4.1-mini").store(path).build())
        s = await core.session("agent").open()
        queued = [(b.status, b.attempts) for b in await s.queued_work(include_claimed=True)
                  if b.batch_id == batch_id]
        texts = [m.text() for m in s.read_view().messages()]
        out = await s.queued_turn().run()  # the notebook's own provider runs it
        await s.close()
        return queued, texts, out.result.assistant_message() if out else None

    queued, texts, answer = asyncio.run(next_morning())
    assert queued == [("pending", 0)]
    assert texts == ["first", "from openai"]  # no offline answer in the conversation
    assert answer == "from openai"


def test_a_notebook_that_named_its_provider_runs_on_after_a_worker_committed(
        tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    seen: list[list[str]] = []

    def model(request):  # a FunctionProvider's function: it reads what the model is sent
        seen.append([p.content for m in request.messages for p in m.parts])
        return "from the notebook"

    async def body() -> str | None:
        # the session was started offline (as a worker without --provider runs it)
        offline = LashCore.builder().model("lash-offline").store(path).build()
        s = await offline.session("agent").open()
        await s.turn("hello").run()
        await s.close()
        # the next day the notebook names its own provider for it and queues work
        core = LashCore.builder().store(path).build()
        s = await core.session("agent").provider(FunctionProvider(model)).open()
        batch = await s.enqueue("queued for the worker").id("w").send()
        done = await asyncio.to_thread(_worker, path, "--provider", "offline")
        assert done.returncode == 0, done.stderr
        await s.await_queued_work_batch(batch.batch_id, timeout=60)
        out = await s.turn("what did the worker answer?").run()
        return out.result.assistant_message()

    assert asyncio.run(body()) == "from the notebook"
    assert "queued for the worker" in seen[0]  # the worker's turn is in what the model read
