"""Text that no store can keep (a lone surrogate, NUL, bytes decoded with surrogateescape)
is cleaned where it enters a session, the same way on every store; ids are refused.

The user's situation: a prompt pasted from a broken file, a shell tool that decodes its
output with ``errors="surrogateescape"``, a tool returning a dict with such strings inside,
a model that spells ``\\ud800`` in its tool arguments. Before the fix the DuckDB file became
unreadable for every session (also after a restart), and PostgreSQL refused the commit.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pg_fixture import PgServer

from lash_nb import LashCore, TurnInput, tool
from lash_nb._core.llm import LlmPart, LlmResponse
from lash_nb._core.text import check_id, clean_json, clean_text
from lash_nb._errors import ConfigurationError
from lash_nb.testing import scripted

ROOT = Path(__file__).resolve().parents[1]
FFFD = "\ufffd"
BAD_PROMPT = "bad \ud800 prompt \x00 end"
SHELL_OUT = b"caf\xe9 \xff done".decode("utf-8", errors="surrogateescape")  # 'caf\udce9 \udcff done'


@tool
def shell(cmd: str) -> str:
    """Run a command."""
    return f"{cmd}: {SHELL_OUT}"


@tool
def listing(path: str) -> dict:
    """List a folder."""
    return {"na\ud800me": ["x\x00y", {"k": "\udcff"}], "ok": 1}


def _provider() -> Any:
    return scripted(
        LlmResponse(parts=(
            LlmPart.reasoning("thinking \x00 hard"),
            # the model spells a lone surrogate as a JSON escape inside valid JSON text
            LlmPart.tool_call("c1", "shell", '{"cmd": "ls \\ud800"}'),
            LlmPart.tool_call("c2", "listing", '{"path": "/tmp"}'),
        )),
        "done \ud800 \x00 ok",
    )


async def _run_turns(store: Any) -> None:
    core = LashCore.builder().provider(_provider()).tools(shell, listing).store(store).build()
    other = await core.session("other").provider(scripted("plain answer")).open()
    await other.turn(TurnInput.text("plain question")).run()
    s = await core.session("s").open()
    out = await s.turn(TurnInput.text(BAD_PROMPT)).run()
    assert out.result.outcome.kind == "finished", out.result.outcome
    assert out.result.assistant_output.safe_text == f"done {FFFD} {FFFD} ok"
    if getattr(core.store, "durable", False) and hasattr(core.store, "enqueue"):
        batch = await s.enqueue(TurnInput.text("queued \udcff text")).id("q1").send()
        queued = await s.queued_turn().run()
        assert queued is not None and queued.result.queued_batch_ids == (batch.batch_id,)
    await other.turn(TurnInput.text("second plain question")).run()
    await core.close()


_READER = textwrap.dedent("""
    import asyncio, json, sys
    from lash_nb._runtime.core import open_store

    async def main(target, read_only):
        if read_only:
            from lash_nb._store.duckdb import DuckDBStore
            store = DuckDBStore(target, read_only=True)
        else:
            store = open_store(target)
        out = {}
        for sid in ("s", "other"):
            loaded = await store.load_session(sid)
            turns = await store.load_turns(sid)
            events = await store.load_events(sid)
            out[sid] = {
                "texts": [[p.kind.value, p.content] for n in loaded.nodes if n.message
                          for p in n.message.parts],
                "tool_outputs": [t["output"] for r in turns
                                 for t in r.result.get("tool_calls", [])],
                "tool_args": [t["args"] for r in turns for t in r.result.get("tool_calls", [])],
                "outcomes": [r.outcome for r in turns],
                "events": len(events),
            }
        await store.close()
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1], sys.argv[2] == "ro"))
""")


def _read_fresh_process(target: str, read_only: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _READER, target, "ro" if read_only else "rw"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _check_stored(got: dict[str, Any], *, queued: bool) -> None:
    s = got["s"]
    texts = [t for _, t in s["texts"]]
    assert f"bad {FFFD} prompt {FFFD} end" in texts
    assert f"done {FFFD} {FFFD} ok" in texts
    assert ["reasoning", f"thinking {FFFD} hard"] in s["texts"]
    assert f"ls {FFFD}: caf{FFFD} {FFFD} done" in texts  # the tool result the model saw
    assert s["tool_outputs"][:2] == [
        f"ls {FFFD}: caf{FFFD} {FFFD} done",
        {f"na{FFFD}me": [f"x{FFFD}y", {"k": FFFD}], "ok": 1},
    ]
    assert s["tool_args"][0] == {"cmd": f"ls {FFFD}"}
    if queued:
        assert f"queued {FFFD} text" in texts
    assert s["outcomes"] == ["finished"] * (2 if queued else 1)
    other = got["other"]
    assert [t for _, t in other["texts"]].count("plain question") == 1
    assert "second plain question" in [t for _, t in other["texts"]]
    assert other["outcomes"] == ["finished", "finished"]
    assert other["events"] > 0


def test_memory_store_keeps_bad_text_as_replacement_characters() -> None:
    from lash_nb._store.memory import MemoryStore

    store = MemoryStore()
    asyncio.run(_run_turns(store))

    async def read() -> dict[str, Any]:
        out = {}
        for sid in ("s", "other"):
            loaded = await store.load_session(sid)
            turns = await store.load_turns(sid)
            out[sid] = {
                "texts": [[p.kind.value, p.content] for n in loaded.nodes if n.message
                          for p in n.message.parts],
                "tool_outputs": [t["output"] for r in turns for t in r.result.get("tool_calls", [])],
                "tool_args": [t["args"] for r in turns for t in r.result.get("tool_calls", [])],
                "outcomes": [r.outcome for r in turns],
                "events": len(await store.load_events(sid)),
            }
        return out

    _check_stored(asyncio.run(read()), queued=False)


def test_duckdb_file_with_bad_text_reopens_in_a_fresh_process_also_read_only(tmp_path: Path) -> None:
    path = str(tmp_path / "lash.duckdb")
    asyncio.run(_run_turns(path))
    _check_stored(_read_fresh_process(path, read_only=True), queued=True)
    _check_stored(_read_fresh_process(path, read_only=False), queued=True)


@pytest.mark.postgres
def test_postgres_commits_turns_with_nul_and_surrogates(pg_server: PgServer) -> None:
    dsn = pg_server.create_database()
    asyncio.run(_run_turns(dsn))
    _check_stored(_read_fresh_process(dsn, read_only=False), queued=True)


# ---------------------------------------------------------------------- provider errors


def _failing_provider() -> Any:
    from lash_nb._core.llm import LlmTransportError, ProviderFailureKind
    from lash_nb.providers import FunctionProvider

    def fn(request: Any) -> Any:
        raise LlmTransportError("upstream said caf\udce9 \x00 no", kind=ProviderFailureKind.HTTP,
                                request_id="req-\ud800")

    return FunctionProvider(fn)


@pytest.mark.parametrize("kind", ["memory", "duckdb",
                                  pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_provider_error_with_bad_text_is_committed_cleaned(kind: str, tmp_path: Path,
                                                             request: Any) -> None:
    if kind == "postgres":
        target: Any = request.getfixturevalue("pg_server").create_database()
    elif kind == "duckdb":
        target = str(tmp_path / "l.duckdb")
    else:
        from lash_nb._store.memory import MemoryStore
        target = MemoryStore()

    async def run() -> tuple[Any, Any]:
        core = LashCore.builder().provider(_failing_provider()).store(target).build()
        try:
            s = await core.session("s").open()
            out = await s.turn("hello").run()
            turns = await core.store.load_turns("s")
            return out.result, turns
        finally:
            await core.close()

    result, turns = asyncio.run(run())
    assert result.outcome.reason == "provider_error"
    assert [e.message for e in result.errors] == [f"upstream said caf{FFFD} {FFFD} no"]
    assert turns[0].result["errors"][0]["message"] == f"upstream said caf{FFFD} {FFFD} no"
    attempts = turns[0].result["llm_calls"][0]["attempts"]
    assert attempts[0]["request_id"] == f"req-{FFFD}"


# ---------------------------------------------------------------------- ids are refused


@pytest.mark.parametrize("bad", ["s\x00", "s\ud800", "s\udcff"])
def test_ids_that_no_store_can_keep_are_refused_with_one_line(bad: str, tmp_path: Path) -> None:
    async def run() -> None:
        core = LashCore.builder().provider(scripted("hi")).store(str(tmp_path / "l.duckdb")).build()
        try:
            with pytest.raises(ConfigurationError) as e:
                core.session(bad)
            assert "\n" not in str(e.value) and "session id" in str(e.value)
            s = await core.session("fine").open()
            await s.turn("hello").run()
            with pytest.raises(ConfigurationError, match="turn id"):
                s.turn("hello").turn_id(bad)
            with pytest.raises(ConfigurationError, match="enqueue id"):
                s.enqueue("later").id(bad)
            with pytest.raises(ConfigurationError, match="merge key"):
                s.enqueue("later").merge_key(bad)
            with pytest.raises(ConfigurationError, match="parent session id"):
                core.session("child").parent(bad)
            assert await s.queued_work() == []
            sessions = [m.session_id for m in await core.list_sessions()]
            assert sessions == ["fine"]
        finally:
            await core.close()

    asyncio.run(run())


def test_system_prompt_is_cleaned_and_a_bad_model_name_is_refused(tmp_path: Path) -> None:
    async def run() -> str | None:
        core = (LashCore.builder().provider(scripted("hi")).system_prompt("be \x00 kind")
                .store(str(tmp_path / "l.duckdb")).build())
        try:
            s = await core.session("s").open()
            await s.turn("hello").run()
            with pytest.raises(ConfigurationError, match="model name"):
                await core.session("t").model("gpt\ud800").open()
            policy = core.store.query("SELECT policy FROM sessions")["policy"][0]
            return json.loads(policy)["system_prompt"]
        finally:
            await core.close()

    assert asyncio.run(run()) == f"be {FFFD} kind"


# ---------------------------------------------------------------------- the function itself


def test_clean_text_replaces_each_bad_code_point_and_joins_real_pairs() -> None:
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("\x00") == "\ufffd"
    assert clean_text("caf\udce9") == "caf\ufffd"
    assert clean_text("\ud83d\ude00 x\x00") == "\U0001f600 x\ufffd"  # a pair is one emoji
    assert clean_text("\ude00\ud83d") == "\ufffd\ufffd"  # the wrong order is no pair
    plain = "plain ascii"
    assert clean_text(plain) is plain
    accented = "café ✓ \U0001f600"
    assert clean_text(accented) is accented


def test_clean_json_cleans_keys_and_nested_values_and_keeps_clean_values_as_they_are() -> None:
    assert clean_json({"a\x00": ["\ud800", ("ok", {"k": "\udcff"})], "n": 1.5}) == {
        "a\ufffd": ["\ufffd", ("ok", {"k": "\ufffd"})], "n": 1.5}
    clean = {"a": ["b", {"c": 1}], "d": None}
    assert clean_json(clean) is clean
    assert check_id("ok-id", "session id") == "ok-id"
