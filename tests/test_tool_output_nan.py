"""A tool that returns NaN or an infinity (a data scientist's ``df.describe()``, the mean of
an empty column) does not lose the turn on any store, and every store keeps the same values.

NaN and infinities are not JSON: PostgreSQL ``jsonb`` refused the final commit (the turn stayed
``open``, ``run()`` raised psycopg's ``InvalidTextRepresentation``) while DuckDB and the
memory store kept a float. They enter the session as the strings ``"NaN"``, ``"Infinity"``
and ``"-Infinity"`` (ADR 139), in the tool's output and in a model's tool arguments (Python's
``json`` reads ``NaN`` in a model's argument text).
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmPart, LlmResponse
from lash_nb._core.text import clean_json
from lash_nb.testing import scripted


@tool
def describe(column: str, scale: float = 1.0) -> dict:
    """Summary statistics of a column."""
    empty: list[float] = []
    return {"column": column, "count": 0, "scale": scale,
            "mean": float(sum(empty)) / len(empty) if empty else math.nan,
            "max": math.inf, "min": -math.inf, "rows": [1.5, math.nan]}


EXPECTED = {"column": "price", "count": 0, "scale": "NaN", "mean": "NaN", "max": "Infinity",
            "min": "-Infinity", "rows": [1.5, "NaN"]}


def _provider() -> Any:
    return scripted(
        LlmResponse(parts=(LlmPart.tool_call("c1", "describe", '{"column": "price", "scale": NaN}'),)),
        "The column is empty.",
        "second answer",
    )


@pytest.mark.parametrize("kind", ["memory", "duckdb",
                                  pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_tool_returning_nan_commits_its_turn_the_same_on_every_store(
        kind: str, tmp_path: Path, request: Any) -> None:
    if kind == "postgres":
        target: Any = request.getfixturevalue("pg_server").create_database()
    elif kind == "duckdb":
        target = str(tmp_path / "nan.duckdb")
    else:
        from lash_nb._store.memory import MemoryStore
        target = MemoryStore()

    async def run() -> tuple[Any, Any, list[str]]:
        core = LashCore.builder().provider(_provider()).tools(describe).store(target).build()
        s = await core.session("s").open()
        out = await s.turn("describe the price column").run()
        turns = await core.store.load_turns("s")
        await core.close()
        # the next morning: the session opens again and a turn runs after the stored one
        core = LashCore.builder().provider(scripted("next day")).store(target).build()
        s = await core.session("s").open()
        later = await s.turn("and now?").run()
        outcomes = [str(t.outcome) for t in await core.store.load_turns("s")]
        await core.close()
        assert str(later.result.outcome) == "finished: assistant_message"
        return out.result, turns, outcomes

    result, turns, outcomes = asyncio.run(run())
    assert str(result.outcome) == "finished: assistant_message"
    (call,) = result.tool_calls
    assert call.success is True
    assert call.args == {"column": "price", "scale": "NaN"}
    assert call.output == EXPECTED
    stored = turns[0].result["tool_calls"][0]
    assert stored["output"] == EXPECTED
    assert stored["args"] == {"column": "price", "scale": "NaN"}
    assert outcomes == ["finished", "finished"]


def test_clean_json_spells_non_finite_floats_and_keeps_finite_ones() -> None:
    np = pytest.importorskip("numpy")
    assert clean_json(math.nan) == "NaN"
    assert clean_json([math.inf, -math.inf, 0.5, 2]) == ["Infinity", "-Infinity", 0.5, 2]
    assert clean_json({"a": {"b": (np.float64("nan"), 1.0)}}) == {"a": {"b": ("NaN", 1.0)}}
    clean = {"a": [1.0, 2.5], "b": "text"}
    assert clean_json(clean) is clean  # nothing to change: the same object
    assert json.dumps(clean_json({"x": [math.nan]}), allow_nan=False) == '{"x": ["NaN"]}'
