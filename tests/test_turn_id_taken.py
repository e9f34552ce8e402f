"""A turn run again under a turn id the session already committed (a notebook cell run twice
with the same id, a script re-run against yesterday's store) is refused before anything is
written, and the session's history stays whole.

Before: the second run wrote its user message, its final commit was answered as the duplicate
of the first turn (same id, same content) and wrote nothing, and the turn still said
``finished``. The runtime's graph then held an answer the store never got, and the next
turn was stored after it: reopened, the session's path broke and its history was gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._core.usage import TokenUsage
from lash_nb.errors import TurnCommitConflict
from lash_nb.providers import FunctionProvider, LlmPart, LlmResponse

STORE_PARAMS = ["memory", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


async def _echo(request: Any) -> LlmResponse:
    return LlmResponse(parts=(LlmPart.text_part("You said: " + request.messages[-1].text()),),
                       usage=TokenUsage(10, 3))


def _core(target: str | None) -> LashCore:
    return LashCore.builder().provider(FunctionProvider(_echo)).model("m-test") \
        .store(target).build()


@pytest.fixture(params=STORE_PARAMS)
def target(request: Any, tmp_path: Any) -> tuple[str, str | None]:
    if request.param == "memory":
        return "memory", None
    if request.param == "duckdb":
        return "duckdb", str(tmp_path / "s.duckdb")
    return "postgres", request.getfixturevalue("pg_server").create_database()


def test_a_turn_run_again_under_its_id_is_refused_and_the_history_stays_whole(target):
    kind, where = target

    async def body() -> None:
        core = _core(where)
        s = await core.session("s1").open()
        first = await s.turn("hello").turn_id("t1").run()
        assert first.result.outcome.kind == "finished"
        with pytest.raises(TurnCommitConflict, match="turn id 't1' is already taken"):
            await s.turn("hello").turn_id("t1").run()
        # different content under the taken id: refused the same way, before the model runs
        with pytest.raises(TurnCommitConflict, match="turn id 't1' is already taken"):
            await s.turn("something else").turn_id("t1").run()
        after = await s.turn("and then?").turn_id("t2").run()
        assert after.result.outcome.kind == "finished"
        assert s.read_view().transcript() == [
            {"role": "user", "text": "hello"}, {"role": "assistant", "text": "You said: hello"},
            {"role": "user", "text": "and then?"},
            {"role": "assistant", "text": "You said: and then?"}]
        if kind == "memory":
            return
        await core.close()

        again = _core(where)
        r = await again.session("s1").open()
        assert r.read_view().transcript() == [
            {"role": "user", "text": "hello"}, {"role": "assistant", "text": "You said: hello"},
            {"role": "user", "text": "and then?"},
            {"role": "assistant", "text": "You said: and then?"}]
        turns = await r.store.load_turns("s1")
        assert sorted((t.turn_id, t.outcome) for t in turns) == [
            ("t1", "finished"), ("t2", "finished")]
        await again.close()

    asyncio.run(body())
