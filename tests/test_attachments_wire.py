"""Provider request bodies with attachments, checked against wire scripts written from each
provider's published format (``tests/wire_scripts/attachments/``): the replay transport
refuses a request whose body does not match the script, so a passing replay proves the
native shape (data URLs, base64 blocks, inline_data). Also: a kind no provider takes is
refused before any request is sent, with one line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, TurnInput
from lash_nb._core.attachments import attachment_from
from lash_nb._core.llm import Completed, LlmRequest, LlmTransportError, ProviderFailureKind
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.google import GoogleGemini
from lash_nb._providers.openai_compat import OpenAICompatible
from lash_nb._providers.openai_responses import OpenAIResponses
from lash_nb.errors import InvalidTurnInput
from lash_nb.testing import ReplayTransport, load_wire_script

HERE = Path(__file__).resolve().parent / "wire_scripts" / "attachments"
KEY = "sk-test-attach-123"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
PDF = b"%PDF-1.4\n%%EOF\n"
CSV = b"a,b\n1,2\n"


def _provider(kind: str, transport: Any) -> tuple[Any, str]:
    if kind == "anthropic":
        return Anthropic(api_key=KEY, transport=transport), "claude-sonnet-4-20250514"
    if kind == "google":
        return GoogleGemini(api_key=KEY, model="gemini-test", transport=transport), "gemini-test"
    if kind == "openai":
        return OpenAIResponses("https://api.openai.com/v1", api_key=KEY,
                               transport=transport), "gpt-5-test"
    return OpenAICompatible("https://api.openai.com/v1", api_key=KEY,
                            transport=transport), "gpt-4o"


def _request(model: str) -> LlmRequest:
    atts = [attachment_from(PNG, name=None), attachment_from(PDF, name="report.pdf"),
            attachment_from(CSV, name="data.csv", media_type="text/csv")]
    parts = [Part("m.p0", PartKind.TEXT, "Describe the chart.")]
    parts += [Part(f"m.p{i + 1}", PartKind.ATTACHMENT, a.ref.describe(), attachment=a.ref)
              for i, a in enumerate(atts)]
    user = Message("m", Role.USER, tuple(parts))
    return LlmRequest(model=model, messages=[user],
                      attachments={a.ref.id: a.data for a in atts if a.data is not None})


async def _run(provider: Any, request: LlmRequest) -> Any:
    try:
        async for event in provider.stream(request):
            if isinstance(event, Completed):
                return event.response
    finally:
        await provider.aclose()
    raise AssertionError("no Completed event")


@pytest.mark.parametrize("name", sorted(p.stem for p in HERE.glob("*.json")))
def test_attachments_go_out_in_the_providers_native_form(name: str) -> None:
    script = load_wire_script(HERE / f"{name}.json")
    transport = ReplayTransport([script])
    provider, model = _provider(script.provider_kind, transport)
    response = asyncio.run(_run(provider, _request(model)))
    expected = script.expected_provider
    assert response.full_text == expected["text"]
    assert response.terminal_reason.value == expected["terminal_reason"]
    # the image tokens are in the provider's reported input count, kept as reported
    assert response.usage.input_tokens == expected["usage"]["input_tokens"]
    assert response.usage.output_tokens == expected["usage"]["output_tokens"]
    assert transport.remaining == 0 and len(transport.requests) == 1


def test_the_wire_scripts_cover_the_four_apis() -> None:
    kinds = sorted(load_wire_script(p).provider_kind for p in HERE.glob("*.json"))
    assert kinds == ["anthropic", "google", "openai", "openai-compatible"]


@pytest.mark.parametrize("kind", ["openai-compatible", "openai", "anthropic", "google"])
def test_an_unsupported_kind_is_refused_before_any_request(kind: str) -> None:
    transport = ReplayTransport([])  # any request would raise "no wire script left"
    provider, model = _provider(kind, transport)
    zip_att = attachment_from(b"PK\x03\x04rest-of-zip", name="data.zip",
                              media_type="application/zip")
    user = Message("m", Role.USER, (
        Part("m.p0", PartKind.TEXT, "unpack this"),
        Part("m.p1", PartKind.ATTACHMENT, zip_att.ref.describe(), attachment=zip_att.ref)))
    request = LlmRequest(model=model, messages=[user],
                         attachments={zip_att.ref.id: zip_att.data or b""})
    with pytest.raises(LlmTransportError) as e:
        asyncio.run(_run(provider, request))
    assert e.value.kind is ProviderFailureKind.UNSUPPORTED and not e.value.retryable
    assert "application/zip" in e.value.message and "\n" not in e.value.message
    assert transport.requests == []


def test_a_turn_with_an_unsupported_attachment_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    """Once in the history, a kind the provider cannot send would fail every later call of
    the session: the turn is refused up front, nothing stored, and the session goes on."""
    transport = ReplayTransport([load_wire_script(HERE / "openai-compatible.chat-image-file-parts.json")])
    provider = OpenAICompatible("https://api.openai.com/v1", api_key=KEY, transport=transport)
    path = str(tmp_path / "s.duckdb")

    async def scenario() -> None:
        core = LashCore.builder().provider(provider).model("gpt-4o").store(path).build()
        s = await core.session("s").open()
        with pytest.raises(InvalidTurnInput) as e:
            await s.turn(TurnInput.text("unpack this").attach(
                b"PK\x03\x04zip", name="data.zip", media_type="application/zip")).run()
        assert str(e.value) == (
            "the openai-compatible provider cannot take an attachment of type application/zip; "
            "attach an image (PNG, JPEG, WebP, GIF), a PDF or a text file instead; nothing was sent or stored")
        with pytest.raises(InvalidTurnInput):
            await s.enqueue(TurnInput.text("later").attach(
                b"PK\x03\x04zip", media_type="application/zip")).send()
        assert transport.requests == [] and s.read_view().messages() == []
        assert core.store.query("SELECT count(*) AS n FROM blobs").n[0] == 0
        assert await s.queued_work() == []
        # the session goes on: the next turn (an image, a PDF, a CSV) is sent as scripted
        ok = await s.turn(TurnInput.text("Describe the chart.").attach(PNG)
                          .attach(PDF, name="report.pdf")
                          .attach(CSV, name="data.csv", media_type="text/csv")).run()
        assert ok.result.assistant_message() == "A bar chart."
        await core.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("kind", "model", "media_type", "refused"), [
    ("openai-compatible", "gpt-4o", "image/png", None),
    ("openai-compatible", "o3-mini", "image/png",
     ("model o3-mini reads text only and cannot take an attachment of type image/png; use a "
     "vision model for it (e.g. --model gpt-4o) or attach text")),
    ("openai-compatible", "deepseek/deepseek-chat", "application/pdf",
     ("model deepseek/deepseek-chat reads text only and cannot take an attachment of type "
     "application/pdf; use a vision model for it (e.g. --model gpt-4o) or attach text")),
    ("openai-compatible", "o3-mini", "text/csv", None),  # text goes as text: every model reads it
    ("ollama", "llava", "image/jpeg", None),
    ("ollama", "llava", "application/pdf",
     ("Ollama's OpenAI-compatible API takes images, not PDFs; attach the pages as images or the "
     "PDF's text")),
    ("anthropic", "claude-sonnet-4-20250514", "application/pdf", None),
    ("google", "gemini-test", "audio/wav",
     ("the google provider cannot take an attachment of type audio/wav; attach an image (PNG, "
     "JPEG, WebP, GIF), a PDF or a text file instead")),
])
def test_what_a_provider_and_model_refuse_up_front(kind: str, model: str, media_type: str,
                                                    refused: str | None) -> None:
    if kind == "ollama":
        provider: Any = OpenAICompatible("http://localhost:11434/v1", api_key_env=None,
                                         kind="ollama")
    else:
        provider = _provider(kind, ReplayTransport([]))[0]
    assert provider.refuses_media(media_type, model) == refused


@pytest.mark.parametrize("name", sorted(p.stem for p in HERE.glob("*.json")))
def test_a_session_turn_sends_the_same_native_body(name: str, tmp_path: Path) -> None:
    """Through a session the history is a GraphView, which the chat and Anthropic providers
    encode through their per-message caches: the body must still match the script."""
    script = load_wire_script(HERE / f"{name}.json")
    transport = ReplayTransport([script])
    provider, model = _provider(script.provider_kind, transport)

    async def scenario() -> None:
        core = LashCore.builder().provider(provider).model(model) \
            .store(str(tmp_path / "w.duckdb")).build()
        s = await core.session("s").open()
        out = await s.turn(TurnInput.text("Describe the chart.").attach(PNG)
                           .attach(PDF, name="report.pdf")
                           .attach(CSV, name="data.csv", media_type="text/csv")).run()
        assert out.result.assistant_message() == "A bar chart."
        assert out.result.usage.input_tokens == script.expected_provider["usage"]["input_tokens"]
        await core.close()

    asyncio.run(scenario())
    assert transport.remaining == 0
