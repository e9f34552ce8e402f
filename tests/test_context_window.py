"""A long session against a model with a small context window: "context length exceeded" is
its own failure kind for every provider, and the session keeps working by sending a window of
its newest messages (ADR 60), shown in the turn view, with nothing deleted from the graph or
the store. The window rules are checked with messages whose token estimates are worked by hand
(``ceil(characters / 4)`` per part, plus 4 per message)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from lash_nb import LashCore
from lash_nb._core.context_window import plan
from lash_nb._core.llm import ProviderFailureKind, TerminalReason
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._errors import ConfigurationError
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._providers.classify import classify_http_error, is_context_overflow
from lash_nb.providers import OpenAICompatible
from lash_nb.stores import MemoryStore


def _msg(role: Role, chars: int, kind: PartKind = PartKind.TEXT, **kw: Any) -> Message:
    return Message.build(role, [(kind, "x" * chars)], **kw)


def _user(chars: int = 400) -> Message:
    return _msg(Role.USER, chars)  # 100 + 4 = 104 tokens


def _assistant(chars: int = 400) -> Message:
    return _msg(Role.ASSISTANT, chars)


# ---------------------------------------------------------------------------- the rules
def test_a_path_that_fits_or_a_model_without_a_known_window_is_sent_whole():
    path = [_user(), _assistant(), _user()]  # 312 tokens
    assert plan(path, None) is None
    assert plan(path, 500) is None  # usable 500 - 100 = 400 > 312


def test_a_path_near_the_window_sends_the_newest_exchanges_from_a_user_prompt():
    path = [_user(), _assistant(), _user(), _assistant(), _user()]  # 5 * 104 = 520 tokens
    w = plan(path, 500)  # usable 400, keep 200: U3 (104) + A2 (208) reaches it at U2
    assert w is not None
    assert (w.start, w.left_out, w.estimated_tokens, w.sent_tokens) == (2, 2, 520, 312)


def test_the_cut_never_separates_a_tool_call_from_its_result():
    call = Message.build(Role.ASSISTANT, [(PartKind.TOOL_CALL, "x" * 400)])
    result = Message.build(Role.USER, [(PartKind.TOOL_RESULT, "x" * 400)])
    # U1, A1, U2, call, result, A2, U3: walking back, the first prompt past 200 tokens is U2,
    # the tool result (a user message) is never a starting point
    path = [_user(), _assistant(), _user(), call, result, _assistant(), _user()]
    w = plan(path, 600)  # 728 tokens; usable 480, keep 240
    assert w is not None and w.start == 2


def test_the_current_prompt_is_sent_even_when_it_alone_exceeds_the_window():
    path = [_user(), _assistant(), _user(40_000)]  # the last prompt: 10,004 tokens
    w = plan(path, 1000)
    assert w is not None and w.start == 2


# ---------------------------------------------------------------------------- classification
# the wording each provider uses (their error references; the list lash's classifier knows)
OVERFLOWS = [
    ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
     "131072 tokens. Please reduce the length of the messages."),  # OpenAI chat
    "Your input exceeds the context window of this model.",  # OpenAI Responses
    "prompt is too long: 215003 tokens > 200000 maximum",  # Anthropic
    "The input token count (1196265) exceeds the maximum number of tokens allowed (1048576).",  # Gemini
    "This endpoint's maximum context length is 128000 tokens",  # OpenRouter
    "the request exceeds the available context size, try increasing it",  # llama.cpp server
]
NOT_OVERFLOWS = [
    "Rate limit reached for gpt-4.1-mini on tokens per minute (TPM): Limit 30000",
    "Too many requests: too many tokens per minute",
    "You exceeded your current quota, please check your plan and billing details.",
    "messages: roles must alternate between \"user\" and \"assistant\"",
]


@pytest.mark.parametrize("text", OVERFLOWS)
def test_every_providers_context_length_error_is_its_own_kind(text: str):
    assert is_context_overflow(text)
    err = classify_http_error(400, httpx.Headers(), json.dumps({"error": {"message": text}}),
                              provider="p")
    assert err.kind is ProviderFailureKind.CONTEXT_OVERFLOW and not err.retryable
    assert err.terminal_reason is TerminalReason.CONTEXT_OVERFLOW
    assert "context window" in err.message and "\n" not in err.message


@pytest.mark.parametrize("text", NOT_OVERFLOWS)
def test_rate_limits_quota_and_other_validation_errors_are_not_an_overflow(text: str):
    assert not is_context_overflow(text)


# ---------------------------------------------------------------------------- the session
LIMIT_CHARS = 3500  # the test model refuses requests whose message text is longer


def _small_window_model() -> tuple[OpenAICompatible, list[int]]:
    """An OpenAI-compatible server whose model has a small window: a request with more than
    LIMIT_CHARS characters of message text gets the documented 400 context_length_exceeded."""
    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        size = sum(len(c) if isinstance(c := m.get("content") or "", str) else len(json.dumps(c))
                   for m in body["messages"])
        sizes.append(size)
        if size > LIMIT_CHARS:
            return httpx.Response(400, json={"error": {
                "message": f"This model's maximum context length is 750 tokens. However, your "
                           f"messages resulted in {size // 4} tokens. Please reduce the length "
                           "of the messages.",
                "type": "invalid_request_error", "param": "messages",
                "code": "context_length_exceeded"}})
        chunks = [{"choices": [{"index": 0, "delta": {"content": "noted."}}]},
                  {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=text.encode(),
                              headers={"content-type": "text/event-stream"})

    provider = OpenAICompatible("https://small.example/v1", api_key="k", model="small",
                                transport=httpx.MockTransport(answer))
    return provider, sizes


def _prompt(i: int) -> str:
    return f"note {i}: " + "data " * 200  # about 1,000 characters


def test_a_long_session_keeps_working_and_says_it_sent_a_window():
    provider, sizes = _small_window_model()
    store = MemoryStore()

    async def body() -> list[Any]:
        core = LashCore.builder().provider(provider).store(store).build()
        s = await core.session("long").open()
        outs = [await s.turn(_prompt(i)).run() for i in range(5)]
        await core.close()
        return outs

    outs = asyncio.run(body())
    assert [str(o.result.outcome) for o in outs] == ["finished: assistant_message"] * 5
    # each prompt is 1,008 characters, each answer 6: turns 1-3 send 1,008, 2,022 and 3,036
    # characters and fit; the 4th (4,050) is refused once and sent again as a window of its
    # last two exchanges (2,022); from then on the session windows before sending
    windowed = [[a.event for a in o.activities if a.type == "context_windowed"] for o in outs]
    assert [len(w) for w in windowed] == [0, 0, 0, 1, 1]
    assert windowed[3][0].reason == "overflow" and windowed[4][0].reason == "window"
    assert sum(1 for n in sizes if n > LIMIT_CHARS) == 1  # one refused request in all
    # the turn view says so, in words
    fold = TurnFold()
    fold.apply_all(a.to_json() for a in outs[3].activities)
    notices = [b["text"] for b in fold.blocks if b["kind"] == "notice"]
    assert any(n.startswith("context window: the provider refused the whole conversation")
               and "earlier ones stay in the session" in n for n in notices)
    # nothing was deleted: the graph and the store keep all ten messages

    async def reopen() -> int:
        core = LashCore.builder().provider(provider).store(store).build()
        s = await core.session("long").open()
        n = len(s.read_view().messages())
        await core.close()
        return n

    assert asyncio.run(reopen()) == 10


def test_on_overflow_stop_ends_the_turn_with_the_context_overflow_error():
    provider, _sizes = _small_window_model()

    async def body() -> Any:
        core = (LashCore.builder().provider(provider).context_window(None, on_overflow="stop")
                .build())
        s = await core.session("s").open()
        return [await s.turn(_prompt(i)).run() for i in range(4)]

    *fitted, out = asyncio.run(body())
    assert all(str(o.result.outcome) == "finished: assistant_message" for o in fitted)
    assert not any(a.type == "context_windowed" for a in out.activities)
    assert str(out.result.outcome) == "stopped: provider_error"
    errors = [a.event.message for a in out.activities if a.type == "error"]
    assert any("context window" in e for e in errors)


def test_a_known_window_is_used_before_anything_is_refused():
    provider, sizes = _small_window_model()

    async def body() -> list[Any]:
        core = LashCore.builder().provider(provider).context_window(900).build()
        s = await core.session("s").open()
        return [await s.turn(_prompt(i)).run() for i in range(4)]

    outs = asyncio.run(body())
    assert all(str(o.result.outcome) == "finished: assistant_message" for o in outs)
    assert max(sizes) <= LIMIT_CHARS  # never refused


def test_a_bad_context_window_is_one_line_naming_the_argument():
    with pytest.raises(ConfigurationError, match="context_window must be a positive int"):
        LashCore.builder().context_window(0)
    with pytest.raises(ConfigurationError, match="on_overflow must be 'window' or 'stop'"):
        LashCore.builder().context_window(1000, on_overflow="truncate")
