"""Providers under faults: a ``Retry-After`` that is not a wait, retries that do not march in
lockstep, a stream kept alive by comments forever, a 200 that is a login page, and events too
large to be real. Each case is what an unlucky user meets behind a proxy or a broken gateway."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lash_nb import LashCore
from lash_nb._core.llm import LlmRequest, LlmTransportError, ProviderFailureKind
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._providers.classify import retry_after_from
from lash_nb._providers.sse import SseDecoder, SseEvent, SseEventTooLarge
from lash_nb.providers import Anthropic, OpenAICompatible, RetryPolicy
from lash_nb.testing import LoopbackServer, ReplayTransport

SCRIPTS = Path(__file__).resolve().parent / "wire_scripts"
SOON = SCRIPTS / "openai-compatible.rate-limit-429-retry-after-soon.json"
ANSWER = SCRIPTS / "openai-compatible.usage-cached-reasoning-repeated.json"  # model gpt-test
HTML = SCRIPTS / "openai-compatible.html-200-login-page.json"
HTML_LABELLED = SCRIPTS / "anthropic.html-200-labelled-event-stream.json"
KEEPALIVE = SCRIPTS / "faults" / "openai-compatible.keepalive-forever.json"


def _user() -> list[Message]:
    return [Message.build(Role.USER, [(PartKind.TEXT, "hi")])]


async def _turn(provider: Any, policy: RetryPolicy) -> Any:
    core = LashCore.builder().provider(provider).retry_policy(policy).build()
    s = await core.session("f").open()
    out = await s.turn("what is the answer?").run()
    await core.close()
    return out


async def _error_of(provider: Any) -> LlmTransportError:
    try:
        async for _ in provider.stream(LlmRequest(model="", messages=_user())):
            pass
    except LlmTransportError as err:
        return err
    finally:
        await provider.aclose()
    raise AssertionError("the stream did not fail")


# ----------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("value", "expected"), [
    ("12", 12.0),
    ("0", 0.0),
    ("-3", 0.0),
    ("soon", None),
    ("", None),
    ("nan", None),
    ("inf", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),   # a date in the past: retry now
    ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
    ("Wed, 99 Foo 2015 77:28:00 GMT", None),
])
def test_retry_after_is_seconds_a_date_or_nothing(value: str, expected: float | None) -> None:
    assert retry_after_from(httpx.Headers({"retry-after": value})) == expected


def test_retry_after_as_a_future_http_date_is_the_seconds_until_then() -> None:
    value = email.utils.formatdate(time.time() + 3600, usegmt=True)
    wait = retry_after_from(httpx.Headers({"retry-after": value}))
    assert wait is not None and 3000 < wait <= 3600


def test_a_429_with_retry_after_soon_is_retried_after_the_default_backoff() -> None:
    transport = ReplayTransport([SOON, ANSWER])
    provider = OpenAICompatible("https://api.example.test/v1", api_key="k", model="gpt-test",
                                transport=transport)
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.2, jitter=0.5, random=lambda: 0.5)
    out = asyncio.run(_turn(provider, policy))
    assert out.result.is_success(), out.result
    assert out.result.assistant_message() == "Forty-two."
    retry = next(a for a in out.activities if a.type == "retry_status")
    assert retry.event.wait_seconds == pytest.approx(0.15)  # 0.2 * (1 - 0.5 * 0.5)
    attempts = out.result.llm_calls[0].attempts
    assert [a.outcome for a in attempts] == ["failed", "completed"]
    assert attempts[0].error_kind == "rate_limit"


# ----------------------------------------------------------------------------- jitter


@pytest.mark.parametrize(("r", "expected"), [
    (0.0, [1.0, 2.0, 4.0, 8.0, 10.0]),
    (0.5, [0.75, 1.5, 3.0, 6.0, 7.5]),
    (0.999, [0.5005, 1.001, 2.002, 4.004, 5.005]),
])
def test_backoff_is_exponential_capped_and_jittered_down_by_at_most_half(
        r: float, expected: list[float]) -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter=0.5, random=lambda: r)
    assert [policy.delay(n, None) for n in range(1, 6)] == pytest.approx(expected)


def test_a_server_wait_is_never_shortened_and_at_most_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=1.0, jitter=0.5, retry_after_cap_s=60.0, random=lambda: 0.5)
    assert policy.delay(1, 12.0) == pytest.approx(12.25)
    assert policy.delay(1, 0.0) == pytest.approx(0.25)
    assert policy.delay(1, 100.0) == 60.0
    assert policy.delay(1, 59.9) == 60.0


def test_without_jitter_the_ladder_is_the_plain_exponential() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=10.0, jitter=0.0, random=lambda: 0.7)
    assert [policy.delay(n, None) for n in range(1, 4)] == [0.5, 1.0, 2.0]


def test_workers_that_failed_together_do_not_retry_together() -> None:
    policy = RetryPolicy()  # the default random source
    delays = {policy.delay(2, None) for _ in range(50)}
    assert len(delays) > 1
    assert all(0.5 <= d <= 1.0 for d in delays)  # attempt 2: within [half, whole] of 1.0 s


# ----------------------------------------------------------------------------- keepalive


def test_a_stream_kept_alive_by_comments_ends_at_the_attempt_deadline() -> None:
    """Pings every 200 ms keep the per-read timeout (2 s) happy forever; the attempt
    deadline (4 s) ends it. Before the fix the stream ran until the server stopped. (The
    per-read timeout is 10 pings long: with 0.5 s a loaded machine could hold the server's
    thread past it, and the attempt would end on the read timeout instead.)"""
    with LoopbackServer([KEEPALIVE, KEEPALIVE]) as srv:
        provider = OpenAICompatible(srv.base_url + "/v1", api_key="k", model="gpt-test",
                                    chunk_timeout=2.0, attempt_timeout=4.0)
        policy = RetryPolicy(max_attempts=3, base_delay_s=0.0)
        out = asyncio.run(asyncio.wait_for(_turn(provider, policy), timeout=60))
        assert srv.remaining == 1 and srv.errors == []
    assert str(out.result.outcome) == "stopped: provider_error"
    attempts = out.result.llm_calls[0].attempts
    assert len(attempts) == 1  # a spent time budget is not retried
    assert attempts[0].error_kind == "timeout" and attempts[0].request_id == "req-ping"
    assert "attempt_timeout=4 s" in attempts[0].error and "\n" not in attempts[0].error


def test_the_attempt_deadline_is_classified_with_its_request_id() -> None:
    with LoopbackServer([KEEPALIVE]) as srv:
        provider = OpenAICompatible(srv.base_url + "/v1", api_key="k", model="gpt-test",
                                    chunk_timeout=2.0, attempt_timeout=3.0)
        err = asyncio.run(asyncio.wait_for(_error_of(provider), timeout=60))
    assert (err.kind, err.code, err.retryable) == (ProviderFailureKind.TIMEOUT, "attempt_timeout", False)
    assert err.request_id == "req-ping"


# ----------------------------------------------------------------------------- not a stream


@pytest.mark.parametrize(("script", "kind"), [(HTML, "openai-compatible"), (HTML_LABELLED, "anthropic")])
def test_a_200_login_page_ends_the_turn_after_one_attempt_with_one_line(script: Path, kind: str) -> None:
    transport = ReplayTransport([script] * 4)
    if kind == "anthropic":
        provider: Any = Anthropic(api_key="k", model="claude-test", transport=transport)
    else:
        provider = OpenAICompatible("https://api.example.test/v1", api_key="k", model="gpt-test",
                                    transport=transport)
    out = asyncio.run(_turn(provider, RetryPolicy(max_attempts=4, base_delay_s=0.0)))
    assert str(out.result.outcome) == "stopped: provider_error"
    attempts = out.result.llm_calls[0].attempts
    assert len(attempts) == 1 and transport.remaining == 3
    error = attempts[0].error or ""
    assert "instead of an event stream" in error and "base_url" in error and "\n" not in error
    assert "Sign in - Corporate Proxy" in error  # the user sees what answered


def _inline(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": "lash.provider-wire-script.v1", "name": "inline", "provider_kind": "openai-compatible",
            "endpoint": {"method": "POST", "path": "/chat/completions"}, "timeline": timeline}


def test_a_200_json_error_document_is_classified_as_that_error() -> None:
    body = json.dumps({"error": {"message": "Overloaded", "type": "overloaded_error"}})
    script = _inline([
        {"at": 0, "event": "response_start", "status": 200,
         "headers": [{"name": "content-type", "value": "application/json"}]},
        {"at": 0, "event": "body", "data": body}, {"at": 0, "event": "end"}])
    provider = OpenAICompatible("https://h/v1", api_key="k", model="m",
                                transport=ReplayTransport([script]))
    err = asyncio.run(_error_of(provider))
    assert err.kind is ProviderFailureKind.OVERLOADED and err.retryable


def test_an_event_past_max_event_bytes_is_one_non_retryable_error() -> None:
    script = _inline([
        {"at": 0, "event": "response_start", "status": 200, "headers": []},
        {"at": 0, "event": "chunk", "data": "data: " + "x" * 3000},
        {"at": 0, "event": "chunk", "data": "\n\n"}, {"at": 0, "event": "end"}])
    provider = OpenAICompatible("https://h/v1", api_key="k", model="m", max_event_bytes=1024,
                                transport=ReplayTransport([script]))
    err = asyncio.run(_error_of(provider))
    assert (err.code, err.retryable) == ("event_too_large", False)
    assert "max_event_bytes=1024" in err.message and "\n" not in err.message


# ----------------------------------------------------------------------------- the decoder


def _decode(pieces: list[bytes], **kw: Any) -> list[SseEvent]:
    decoder = SseDecoder(**kw)
    out: list[SseEvent] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    return out + decoder.flush()


def _cut(wire: bytes, size: int) -> list[bytes]:
    return [wire[i:i + size] for i in range(0, len(wire), size)]


LONG = b"data: " + b"ab" * 100_000 + b"\r\ndata: tail\r\n\r\ndata: next\n\n"
LONG_EVENTS = [SseEvent("ab" * 100_000 + "\ntail"), SseEvent("next")]


@pytest.mark.parametrize("size", [1, 2, 7, 4095, 65536, len(LONG)])
def test_a_long_line_split_into_any_chunks_decodes_to_the_same_events(size: int) -> None:
    assert _decode(_cut(LONG, size)) == LONG_EVENTS


def test_a_long_line_of_multibyte_characters_survives_odd_chunk_sizes() -> None:
    wire = ("data: " + "\u00e9\U0001f600" * 20_000 + "\n\n").encode()
    assert _decode(_cut(wire, 4095)) == [SseEvent("\u00e9\U0001f600" * 20_000)]


def test_a_carriage_return_ending_one_chunk_and_a_line_feed_starting_the_next_are_one_break() -> None:
    assert _decode([b"data: a\r", b"\n", b"\r", b"\ndata: b\r", b"data: c\n\n"]) == [
        SseEvent("a"), SseEvent("b\nc")]


def test_an_event_past_the_maximum_raises_a_one_line_error() -> None:
    decoder = SseDecoder(max_event_bytes=1000)
    assert decoder.feed(b"data: " + b"x" * 600) == []
    with pytest.raises(SseEventTooLarge, match="max_event_bytes=1000") as caught:
        decoder.feed(b"x" * 600)
    assert "\n" not in str(caught.value)


def test_many_data_lines_count_toward_one_events_maximum() -> None:
    decoder = SseDecoder(max_event_bytes=1000)
    line = b"data: " + b"y" * 300 + b"\n"
    for _ in range(3):
        assert decoder.feed(line) == []
    with pytest.raises(SseEventTooLarge):
        decoder.feed(line)


def test_events_under_the_maximum_pass_and_the_count_restarts_per_event() -> None:
    event = b"data: " + b"z" * 900 + b"\n\n"
    assert _decode([event] * 5, max_event_bytes=1000) == [SseEvent("z" * 900)] * 5


def test_comment_lines_do_not_count_toward_the_maximum_once_ended() -> None:
    wire = (b": " + b"p" * 5000 + b"\n") + b"data: ok\n\n"
    assert _decode(_cut(wire, 100), max_event_bytes=6000) == [SseEvent("ok")]


def test_a_leading_byte_order_mark_does_not_hide_the_first_event() -> None:
    wire = "\ufeffdata: first\n\ndata: second\n\n".encode()
    assert _decode(_cut(wire, 1)) == [SseEvent("first"), SseEvent("second")]
    assert _decode([wire]) == [SseEvent("first"), SseEvent("second")]
