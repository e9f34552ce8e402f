"""What a session cost, out of the box: ``usage_frame(..., prices="default")`` prices known
models from the bundled (dated) snapshot, says why a cost is NaN (a model it does not know, a
tiered price whose tier was reached, a bucket without a price), and a user's own table still
wins. Every expected cost below is worked out by hand from the published prices."""

from __future__ import annotations

import asyncio
import math
import warnings
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._core.llm import LlmPart, LlmResponse
from lash_nb._core.usage import TokenUsage
from lash_nb._reports.price_snapshot import lookup, snapshot_note
from lash_nb.providers import FunctionProvider
from lash_nb.reports import usage_frame
from lash_nb.stores import MemoryStore

# session -> (model, usage of its one turn: input, output, cache read, cache write, reasoning)
TURNS = {
    "mini": ("gpt-4.1-mini", TokenUsage(1000, 500, 2000, 0, 0)),
    "prefixed": ("openai:gpt-5-mini", TokenUsage(10_000, 3000, 0, 0, 2000)),
    "claude": ("claude-sonnet-4-5", TokenUsage(100, 200, 1000, 400, 0)),
    "claude-big": ("claude-sonnet-4-5", TokenUsage(150_000, 10, 60_000, 0, 0)),
    "own": ("my-own-model", TokenUsage(100, 50, 0, 0, 0)),
    "flash": ("gemini-2.5-flash", TokenUsage(300, 20, 0, 100, 0)),
}


def _store() -> Any:
    store = MemoryStore()

    async def body() -> None:
        for sid, (model, usage) in TURNS.items():
            provider = FunctionProvider(
                lambda _r, u=usage: LlmResponse(parts=(LlmPart.text_part("ok"),), usage=u))
            core = LashCore.builder().provider(provider).store(store).build()
            session = await core.session(sid).model(model).open()
            await session.turn("hi").run()
            await core.close()

    asyncio.run(body())
    return store


@pytest.fixture(scope="module")
def store() -> Any:
    return _store()


def _by_session(frame: Any) -> dict[str, tuple[float, Any]]:
    import pandas as pd

    return {r["session_id"]: (r["cost"], None if pd.isna(r["price_note"]) else r["price_note"])
            for r in frame.to_dict("records")}


def test_default_prices_cost_known_models_and_say_why_the_rest_are_nan(store: Any) -> None:
    with pytest.warns(UserWarning, match="my-own-model"):
        rows = _by_session(usage_frame(store, by="session", prices="default"))
    # gpt-4.1-mini: $0.40 in, $1.60 out, $0.10 cached, per million tokens
    assert rows["mini"] == (pytest.approx((1000 * 0.40 + 500 * 1.60 + 2000 * 0.10) / 1e6), None)
    # gpt-5-mini under a provider:model id: $0.25 in, $2.00 out (reasoning is part of output)
    assert rows["prefixed"] == (pytest.approx((10_000 * 0.25 + 3000 * 2.00) / 1e6), None)
    # Claude Sonnet 4.5 below its 200k tier: $3 in, $15 out, $0.30 cache read, $3.75 write
    assert rows["claude"] == (pytest.approx((100 * 3 + 200 * 15 + 1000 * 0.30 + 400 * 3.75) / 1e6),
                              None)
    cost, note = rows["claude-big"]  # 150k + 60k input: the over-200k price may apply
    assert math.isnan(cost) and note == "tiered price: the input reached 200000 tokens; price it by hand"
    cost, note = rows["own"]
    assert math.isnan(cost) and note == "no price for this model"
    cost, note = rows["flash"]  # Gemini's table has no cache-write price
    assert math.isnan(cost) and note == "no price for cache_write_input_tokens"


def test_a_users_table_overrides_the_snapshot_model_by_model(store: Any) -> None:
    mine = {"my-own-model": {"input_tokens": 1.0, "output_tokens": 2.0},
            "gpt-4.1-mini": {"input_tokens": 1.0, "output_tokens": 1.0, "cache_read_input_tokens": 0.0},
            "claude-sonnet-4-5": {"input_tokens": 6.0, "output_tokens": 22.5,
                                  "cache_read_input_tokens": 0.6, "cache_write_input_tokens": 7.5}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every model is priced now
        rows = _by_session(usage_frame(store, by="session", prices=["default", mine]))
    assert rows["own"] == (pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6), None)
    assert rows["mini"] == (pytest.approx((1000 * 1.0 + 500 * 1.0) / 1e6), None)
    # the user's flat price replaces the tiered one
    assert rows["claude-big"] == (pytest.approx((150_000 * 6.0 + 10 * 22.5 + 60_000 * 0.6) / 1e6), None)
    assert rows["prefixed"][0] == pytest.approx((10_000 * 0.25 + 3000 * 2.00) / 1e6)  # still default


def test_a_roll_up_is_nan_when_one_of_its_rows_is_and_keeps_the_reason(store: Any) -> None:
    with pytest.warns(UserWarning):
        by_model = usage_frame(store, by="model", prices="default").set_index("model")
    claude = by_model.loc["claude-sonnet-4-5"]
    assert math.isnan(claude["cost"]) and claude["price_note"].startswith("tiered price")
    assert by_model.loc["gpt-4.1-mini", "cost"] == pytest.approx(1400e-6)


def test_the_snapshot_is_dated_and_names_its_source() -> None:
    note = snapshot_note()
    assert "genai-prices" in note and "MIT" in note and "snapshot 20" in note
    assert lookup("openai/gpt-4.1-mini") == lookup("gpt-4.1-mini") is not None  # OpenRouter ids
    assert lookup("models/gemini-2.5-flash") is not None
    assert lookup("no-such-model-anywhere") is None


def test_the_models_unpriced_by_design_are_the_placeholders_of_lash_nbs_own_providers() -> None:
    from lash_nb._providers.offline import OFFLINE_MODEL
    from lash_nb._reports.prices import unpriced_by_design

    assert unpriced_by_design(OFFLINE_MODEL) == "offline provider"
    assert unpriced_by_design("lash-offline-large") == "offline provider"
    assert unpriced_by_design(FunctionProvider.default_model) == "function provider"
    assert unpriced_by_design("my-own-model") is None
    assert unpriced_by_design("gpt-4.1-mini") is None
