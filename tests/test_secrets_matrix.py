"""A server that echoes the API key back cannot get it into anything lash_nb keeps or shows.

The matrix: every place a server can put the key (a data line that is not JSON, a JSON error
body, a plain-text error body, the ``Retry-After`` and request-id headers, an error event
inside the stream, the request id and model name of a successful answer, the model's prose
with the key split across two deltas) x the provider kinds
(OpenAI-compatible, Anthropic, OpenAI Responses, Google) x both persistent stores (a DuckDB file, a real PostgreSQL
server). Each case runs the provider alone (the exception it raises) and then a whole turn
through the runtime over the loopback server (real sockets), then looks for the key, in each of
its echoed encodings, and for other credential-shaped strings the server sent, in: the
exception's text, the turn result, the live events, the stored events / turns / llm_calls rows,
every table of the store read back with SQL, the raw bytes of the DuckDB file and of its WAL,
and the log records.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pg_fixture import PgServer

from lash_nb import LashCore
from lash_nb._core.llm import LlmRequest, LlmTransportError
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._core.secrets import Scrubber, StreamScrub, scrub
from lash_nb._providers.google import GoogleGemini
from lash_nb._providers.openai_responses import OpenAIResponses
from lash_nb.providers import Anthropic, FunctionProvider, OpenAICompatible, RetryPolicy
from lash_nb.stores import DuckDBStore
from lash_nb.testing import LoopbackServer

ECHO = Path(__file__).resolve().parent / "wire_scripts" / "key-echo"
KEY = "lnb/ECHO+k3y_9f2c7a41d05e"  # the key the scripts echo; shaped like no known key
# every form of KEY the scripts send, written out by hand
FORMS = [
    KEY,
    "lnb%2FECHO%2Bk3y_9f2c7a41d05e",
    base64.b64encode(KEY.encode()).decode(),
    base64.b64encode(b":" + KEY.encode()).decode(),
]
# credential-shaped strings of someone else that the scripts also send
FOREIGN = ["sk-ant-api03-FOREIGNsecretVALUE0123456789", "sk-proj-FOREIGN0123456789abcdef",
           "hunter2hunter2", "dXNlcjpodW50ZXIyaHVudGVyMg=="]
SECRETS = FORMS + FOREIGN
PATHS = {  # script -> (retryable, does the turn succeed)
    "non-json-sse-line": (False, False),
    "error-body-401": (False, False),
    "error-body-500-text": (True, False),
    "retry-after-and-request-id-headers": (True, False),
    "request-id-header-on-success": (False, True),
    "stream-error-event": (True, False),
    "key-split-across-prose-deltas": (False, True),
}
SPLIT_ANSWER = "Your key is [redacted], keep it safe."
KINDS = ["openai-compatible", "anthropic", "openai-responses", "google"]


def test_the_forms_written_by_hand_are_the_ones_in_the_scripts() -> None:
    text = "".join(p.read_text() for p in ECHO.glob("*.json"))
    assert all(json.dumps(form)[1:-1] in text for form in SECRETS if form != KEY)
    assert "lnb/ECHO+k3y_9f2c7a41d05e" in text.replace("\\/", "/")
    assert quote(KEY, safe="") == FORMS[1]


def _provider(kind: str, base_url: str) -> Any:
    if kind == "anthropic":
        return Anthropic(api_key=KEY, model="claude-test", base_url=base_url,
                         timeout=10.0, chunk_timeout=10.0)
    if kind == "google":
        return GoogleGemini(api_key=KEY, model="gemini-test", base_url=base_url + "/v1beta",
                            timeout=10.0, chunk_timeout=10.0)
    if kind == "openai-responses":
        return OpenAIResponses(base_url + "/v1", api_key=KEY, model="gpt-test", timeout=10.0,
                               chunk_timeout=10.0)
    return OpenAICompatible(base_url + "/v1", api_key=KEY, model="gpt-test", timeout=10.0,
                            chunk_timeout=10.0)


def _leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {secret!r}" for secret in SECRETS if secret in text]


def _leaks_bytes(where: str, blob: bytes) -> list[str]:
    return [f"{where}: {secret!r}" for secret in SECRETS if secret.encode() in blob]


async def _provider_alone(kind: str, script: Path) -> str:
    """Everything the provider itself hands back: the exception or the response."""
    with LoopbackServer([script], time_scale=0) as srv:
        provider = _provider(kind, srv.base_url)
        user = Message.build(Role.USER, [(PartKind.TEXT, "hi")])
        shown: list[str] = []
        prose: list[str] = []
        try:
            async for item in provider.stream(LlmRequest(model="", messages=[user])):
                shown.append(repr(item))
                prose.append(getattr(item, "text", ""))
        except LlmTransportError as err:
            shown += [str(err), repr(err), repr(vars(err)), repr(err.args)]
        finally:
            await provider.aclose()
        assert srv.errors == []
    return "\n".join([*shown, "".join(prose)])


async def _turn(kind: str, script: Path, store: Any, retryable: bool) -> tuple[Any, str]:
    scripts = [script, script] if retryable else [script]
    with LoopbackServer(scripts, time_scale=0) as srv:
        provider = _provider(kind, srv.base_url)
        core = (LashCore.builder().provider(provider).store(store)
                .retry_policy(RetryPolicy(max_attempts=2, base_delay_s=0.0, jitter=0.0)).build())
        s = await core.session("leak").open()
        out = await s.turn("hello").run()
        events = await store.load_events("leak")
        turns = await store.load_turns("leak")
        shown = "\n".join([
            repr(out), repr(out.result), json.dumps(out.result.to_json(), default=str),
            json.dumps([a.to_json() for a in out.activities], default=str),
            json.dumps([e.to_json() for e in events], default=str),
            json.dumps([t.result for t in turns], default=str),
            json.dumps(s.export_state(), default=str),
            repr(s.usage_report()),
        ])
        assert srv.errors == []
        assert len(srv.requests) == len(scripts)
        await core.close()
    return out, shown


def _check_turn(out: Any, path: str) -> None:
    retryable, succeeds = PATHS[path]
    attempts = out.result.llm_calls[0].attempts
    if path == "request-id-header-on-success":
        assert attempts[0].request_id == "req-[redacted]"
        assert attempts[0].served_model == "model-[redacted]"
    if path == "key-split-across-prose-deltas":
        deltas = [a.event.text for a in out.activities if a.type == "assistant_prose_delta"]
        assert "".join(deltas) == SPLIT_ANSWER
        assert out.result.assistant_message() == SPLIT_ANSWER
    if succeeds:
        assert out.result.is_success()
    else:
        assert str(out.result.outcome) == "stopped: provider_error"
        assert len(attempts) == (2 if retryable else 1)
        assert all(a.outcome == "failed" for a in attempts)


def _duckdb_rows(path: Path) -> str:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        assert "llm_calls" in tables and "turn_events" in tables
        return "\n".join(repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    finally:
        con.close()


def _postgres_rows(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()]
        assert "llm_calls" in tables and "turn_events" in tables
        return "\n".join(
            repr(con.execute(f'SELECT row_to_json(t)::text FROM "{t}" t').fetchall()) for t in tables)


def _stored_errors(rows: str) -> bool:
    return "[redacted]" in rows


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", list(PATHS))
def test_an_echoed_key_reaches_no_duckdb_file_row_event_result_or_log(
        path: str, kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = ECHO / f"{kind}.{path}.json"
    retryable = PATHS[path][0]
    file = tmp_path / "leak.duckdb"

    async def body() -> tuple[str, Any, str, bytes]:
        alone = await _provider_alone(kind, script)
        store = DuckDBStore(file)
        out, shown = await _turn(kind, script, store, retryable)
        live = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())  # file + WAL
        await store.close()
        return alone, out, shown, live

    alone, out, shown, live = asyncio.run(body())
    _check_turn(out, path)
    rows = _duckdb_rows(file)
    assert _stored_errors(rows)
    closed = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"[redacted]" in live + closed  # the grep reads the rows' bytes, not only a header
    leaks = (_leaks("provider", alone) + _leaks("turn", shown) + _leaks("sql", rows)
             + _leaks_bytes("open files", live) + _leaks_bytes("closed file", closed)
             + _leaks("logs", caplog.text + "".join(repr(r.args) for r in caplog.records)))
    assert leaks == []


@pytest.mark.postgres
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", list(PATHS))
def test_an_echoed_key_reaches_no_postgres_row_event_result_or_log(
        path: str, kind: str, pg_server: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    from lash_nb.stores import PostgresStore

    caplog.set_level(logging.DEBUG)
    script = ECHO / f"{kind}.{path}.json"
    retryable = PATHS[path][0]
    dsn = pg_server.create_database()

    async def body() -> tuple[Any, str]:
        store = PostgresStore(dsn)
        out, shown = await _turn(kind, script, store, retryable)
        await store.close()
        return out, shown

    out, shown = asyncio.run(body())
    _check_turn(out, path)
    rows = _postgres_rows(dsn)
    assert _stored_errors(rows)
    leaks = (_leaks("turn", shown) + _leaks("sql", rows)
             + _leaks("logs", caplog.text + "".join(repr(r.args) for r in caplog.records)))
    assert leaks == []


# ----------------------------------------------------------------------------- other providers


class _KeyedProvider:
    """A custom provider that knows its key and offers ``scrub``, and fails with it."""

    kind = "custom"

    def scrub(self, text: str) -> str:
        return Scrubber([KEY]).scrub(text)

    async def stream(self, request: LlmRequest) -> Any:
        raise RuntimeError(f"upstream rejected {KEY}")
        yield  # pragma: no cover  (an async generator)


def test_a_provider_exception_is_scrubbed_with_the_providers_own_key(tmp_path: Path) -> None:
    async def body() -> tuple[Any, str]:
        store = DuckDBStore(tmp_path / "c.duckdb")
        core = LashCore.builder().provider(_KeyedProvider()).model("m").store(store).build()
        s = await core.session("c").open()
        out = await s.turn("hello").run()
        rows = json.dumps([e.to_json() for e in await store.load_events("c")], default=str)
        await core.close()
        return out, rows

    out, rows = asyncio.run(body())
    assert str(out.result.outcome) == "stopped: provider_error"
    assert "upstream rejected [redacted]" in json.dumps(out.result.to_json(), default=str)
    assert _leaks("turn", repr(out.result) + rows) == []
    assert _leaks("sql", _duckdb_rows(tmp_path / "c.duckdb")) == []


def test_a_provider_without_scrub_still_loses_credential_shapes() -> None:
    def model(request: LlmRequest) -> str:
        raise ValueError("proxy said: Authorization: Bearer sk-proj-FOREIGN0123456789abcdef")

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).build()
        s = await core.session("f").open()
        return await s.turn("hello").run()

    out = asyncio.run(body())
    text = json.dumps(out.result.to_json(), default=str)
    assert "Authorization: [redacted]" in text
    assert "sk-proj-FOREIGN" not in text and "FOREIGN0123456789" not in text


# ----------------------------------------------------------------------------- the scrubber


@pytest.mark.parametrize(("text", "expected"), [
    ("no secret here", "no secret here"),
    (f"key {KEY}!", "key [redacted]!"),
    (f"Bearer {KEY}", "Bearer [redacted]"),
    (f"u?k={FORMS[1]}&x=1", "u?k=[redacted]&x=1"),
    (f"b64 {FORMS[2]} basic {FORMS[3]}", "b64 [redacted] basic [redacted]"),
    ("openai sk-proj-FOREIGN0123456789abcdef end", "openai [redacted] end"),
    ("anthropic sk-ant-api03-FOREIGNsecretVALUE0123456789", "anthropic [redacted]"),
    ("authorization: Basic dXNlcjpodW50ZXIyaHVudGVyMg==", "authorization: [redacted]"),
    ("x-api-key: abcdef123456", "x-api-key: [redacted]"),
    ("GET /v1?api_key=hunter2hunter2&q=1", "GET /v1?api_key=[redacted]&q=1"),
    ('{"password": "hunter2hunter2"}', '{"password": "[redacted]"}'),
    ("token Bearer abc.def-ghi_jkl", "token Bearer [redacted]"),
    ("risk-assessment and sk-learn stay", "risk-assessment and sk-learn stay"),
    ("max_tokens: 4096, prompt_tokens=12", "max_tokens: 4096, prompt_tokens=12"),
])
def test_the_scrubber_removes_known_values_and_credential_shapes(text: str, expected: str) -> None:
    assert Scrubber([KEY]).scrub(text) == expected


def test_the_default_scrubber_knows_no_values_but_removes_shapes() -> None:
    assert scrub(f"key {KEY}") == f"key {KEY}"
    assert scrub("Bearer abcdef123456") == "Bearer [redacted]"


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Scrubber(["k", "abc"]).scrub("a kind abc") == "a kind abc"


@pytest.mark.parametrize("cut", range(1, len("say " + KEY + " ok")))
def test_a_key_split_anywhere_across_two_deltas_is_removed(cut: int) -> None:
    text = "say " + KEY + " ok"
    stream = StreamScrub(Scrubber([KEY]))
    pieces = [stream.feed("text", text[:cut]), stream.feed("text", text[cut:]), stream.flush("text")]
    assert "".join(pieces) == "say [redacted] ok"
    assert not any(KEY[:6] in p for p in pieces)


def test_delta_streams_are_held_apart_and_text_without_secrets_passes_whole() -> None:
    stream = StreamScrub(Scrubber([KEY]))
    assert stream.feed("text", "plain words") == "plain words"
    assert stream.feed("text", "ends with ln") == "ends with "  # "ln" may start the key
    assert stream.feed("reasoning", "b/ECHO+k3y_9f2c7a41d05e") == "b/ECHO+k3y_9f2c7a41d05e"  # not joined
    assert stream.feed("text", "g") == "lng"
    assert stream.flush("text") == "" and stream.flush("reasoning") == ""
