"""The real HTTP provider path through the runtime: a stream that drops after prose is
retried, the retracted rows are named by model_attempt_reset, and usage is counted once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lash_nb import LashCore
from lash_nb._core.usage import TokenUsage
from lash_nb.providers import OpenAICompatible, RetryPolicy
from lash_nb.testing import ReplayTransport

SCRIPTS = Path(__file__).resolve().parent / "wire_scripts"


def test_a_dropped_stream_is_retried_and_its_streamed_prose_is_retracted():
    transport = ReplayTransport([
        SCRIPTS / "openai-compatible.disconnect-after-prose.json",
        SCRIPTS / "openai-compatible.usage-cached-reasoning-repeated.json",
    ])
    provider = OpenAICompatible(base_url="https://api.example.test/v1", api_key="k",
                                model="gpt-test", transport=transport)

    async def body():
        core = (LashCore.builder().provider(provider)
                .retry_policy(RetryPolicy(max_attempts=3, base_delay_s=0.0)).build())
        s = await core.session("s").open()
        return await s.turn("what is the answer?").run()

    out = asyncio.run(body())
    acts = out.activities
    dropped = [a for a in acts if a.type == "assistant_prose_delta"
               and acts.index(a) < next(i for i, x in enumerate(acts) if x.type == "model_attempt_reset")]
    reset = next(a for a in acts if a.type == "model_attempt_reset")
    assert "".join(a.event.text for a in dropped) == "Half an answer"
    assert reset.event.assistant_prose_correlation_ids == sorted({a.correlation_id for a in dropped})
    retry = next(a for a in acts if a.type == "retry_status")
    assert (retry.event.attempt, retry.event.max_attempts) == (1, 3)
    assert out.result.assistant_message() == "Forty-two."
    assert out.result.usage == TokenUsage(200, 150, 800, 0, 100)  # once, though repeated on the wire
    assert [a.outcome for a in out.result.llm_calls[0].attempts] == ["failed", "completed"]
    assert transport.remaining == 0 and transport.open_streams == 0
