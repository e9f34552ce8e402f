"""What an operator's log handler sees under ``logging.getLogger("lash_nb")``: a retried model
call (once per retry, with the provider's text scrubbed), the worker's turns (it used to print),
and DuckDB folds, and never a key, even when the server echoed it in every encoding."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._runtime.worker import Worker
from lash_nb.providers import OfflineProvider, OpenAICompatible, RetryPolicy
from lash_nb.stores import DuckDBStore
from lash_nb.testing import ReplayTransport

ECHO = Path(__file__).resolve().parent / "wire_scripts" / "key-echo"
KEY = "lnb/ECHO+k3y_9f2c7a41d05e"  # what the key-echo scripts echo (test_secrets_matrix.py)
FORMS = [KEY, "lnb%2FECHO%2Bk3y_9f2c7a41d05e", "bG5iL0VDSE8razN5XzlmMmM3YTQxZDA1ZQ",
         "OmxuYi9FQ0hPK2szeV85ZjJjN2E0MWQwNWU", "sk-ant-api03-FOREIGNsecretVALUE0123456789",
         "hunter2hunter2"]


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "".join(f"{r.getMessage()}{r.args!r}" for r in caplog.records)


def test_a_retry_is_logged_once_scrubbed_and_nothing_logs_the_key(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everyone's DEBUG too: httpx, httpcore, the stores
    script = ECHO / "openai-compatible.error-body-500-text.json"
    transport = ReplayTransport([script, script])
    provider = OpenAICompatible("https://api.example.test/v1", api_key=KEY, model="gpt-test",
                                transport=transport)

    async def body() -> Any:
        core = (LashCore.builder().provider(provider)
                .retry_policy(RetryPolicy(max_attempts=2, base_delay_s=0.0, jitter=0.0)).build())
        s = await core.session("s").open()
        out = await s.turn("hello").run()
        await core.close()
        return out

    out = asyncio.run(body())
    assert str(out.result.outcome) == "stopped: provider_error"
    retries = [r for r in caplog.records if r.name == "lash_nb.retry"]
    assert len(retries) == 1 and retries[0].levelno == logging.WARNING
    message = retries[0].getMessage()
    assert f"turn {out.result.turn_id}" in message and "attempt 1/2 failed (http)" in message
    assert "[redacted]" in message
    assert [f for f in FORMS if f in _everything_logged(caplog)] == []


def test_the_worker_logs_its_turns_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lash_nb")

    async def body() -> str:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).build()
        s = await core.session("w").open()
        await s.enqueue("hello there")
        stats = await Worker(core, poll_s=0.01).run(max_idle_s=0.2)
        assert stats.turns == 1
        turn_ids = [t.turn_id for t in await core.store.load_turns("w")]
        await core.close()
        return turn_ids[-1]

    turn_id = asyncio.run(body())
    lines = [r.getMessage() for r in caplog.records if r.name == "lash_nb.worker"]
    assert lines == [f"w {turn_id} finished: assistant_message"]


def test_a_duckdb_fold_is_logged_with_its_sessions(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lash_nb.store")

    async def body() -> None:
        store = DuckDBStore(tmp_path / "f.duckdb")
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("folded").open()
        await s.turn("hi").run()
        await core.close()
        await store.close()

    asyncio.run(body())
    folds = [r.getMessage() for r in caplog.records if r.getMessage().startswith("folding ")]
    assert folds and all("folded" in m for m in folds)


def test_lease_events_are_logged_with_session_and_generation(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lash_nb.lease")

    async def body() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).build()
        s = await core.session("leased").open()
        await s.turn("hi").run()
        await core.close()

    asyncio.run(body())
    lines = [r.getMessage() for r in caplog.records if r.name == "lash_nb.lease"]
    assert any(m.startswith("session leased: lease ") and " acquired by " in m for m in lines)
    assert any(m.startswith("session leased: lease ") and " released by " in m for m in lines)
