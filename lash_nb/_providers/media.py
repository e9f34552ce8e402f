"""Attachments on the wire: the one rule every HTTP provider follows.

- An image (PNG, JPEG, WebP, GIF) goes in the provider's native image form (a data URL
  for OpenAI, a base64 source block for Anthropic, ``inline_data`` for Gemini).
- A PDF goes in its native document / file form.
- A text file (``text/*``, JSON; a DataFrame is one) goes as a text block: a header line
  (``[file name: text/csv, N bytes]``) and the text, so every model reads it.
- Anything else is refused before the request is sent: ``LlmTransportError`` of kind
  ``unsupported`` (the turn stops ``provider_error`` with that one line; no 400 after a call).

``request.attachments`` maps an attachment id to its bytes (the runtime reads them from the
store before the call); a ref whose bytes are missing is sent as its header line only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from .._core.attachments import IMAGE_TYPES, AttachmentRef
from .._core.llm import LlmTransportError, ProviderFailureKind
from .._core.records import Message, PartKind
from .._core.text import clean_text

Block = dict[str, Any]
MediaEncoder = Callable[[AttachmentRef, bytes], Block]


def has_attachments(message: Message) -> bool:
    return any(p.kind is PartKind.ATTACHMENT for p in message.parts)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def data_url(ref: AttachmentRef, data: bytes) -> str:
    return f"data:{ref.media_type};base64,{b64(data)}"


def file_name(ref: AttachmentRef) -> str:
    if ref.label:
        return ref.label
    return f"attachment-{ref.id[:12]}" + (".pdf" if ref.media_type == "application/pdf" else "")


def text_of(ref: AttachmentRef, data: bytes | None) -> str:
    """The text block of a text attachment (or of any ref whose bytes are missing)."""
    head = ref.describe()
    if data is None:
        return f"{head} (its bytes are not in the store)"
    return f"{head}\n{clean_text(data.decode('utf-8', 'replace'))}"


def content_blocks(
    message: Message, blobs: Mapping[str, bytes], *, provider: str,
    text: Callable[[str], Block], image: MediaEncoder, pdf: MediaEncoder,
) -> list[Block]:
    """The text and attachment parts of ``message`` as provider blocks, in part order."""
    out: list[Block] = []
    for p in message.parts:
        if p.kind in (PartKind.TEXT, PartKind.PROSE) and p.content:
            out.append(text(p.content))
        elif p.kind is PartKind.ATTACHMENT and p.attachment is not None:
            ref = p.attachment
            data = blobs.get(ref.id)
            if data is None or ref.is_text:
                out.append(text(text_of(ref, data)))
            elif ref.media_type in IMAGE_TYPES:
                out.append(image(ref, data))
            elif ref.media_type == "application/pdf":
                out.append(pdf(ref, data))
            else:
                raise unsupported(ref, provider)
    return out


def unsupported(ref: AttachmentRef, provider: str) -> LlmTransportError:
    return LlmTransportError(
        f"{provider} cannot take an attachment of type {ref.media_type} "
        f"({ref.label or ref.id[:12]}); attach an image (PNG, JPEG, WebP, GIF), a PDF or a text file instead",
        kind=ProviderFailureKind.UNSUPPORTED, retryable=False)


# model ids (after an optional "vendor/" prefix) known to read text only: an image or a PDF
# sent to them is a 400 after the call, so it is refused before; not a complete list
TEXT_ONLY_MODELS = ("gpt-3.5", "o1-mini", "o3-mini", "deepseek-chat", "deepseek-reasoner",
                    "deepseek-r1")


def check_media(media_type: str, provider: str, *, kind: str = "", model: str = "") -> str | None:
    """Why ``provider`` (of ``kind``) cannot take ``media_type`` for ``model`` (None: it can)."""
    if media_type.startswith("text/") or media_type in ("application/json", "application/csv"):
        return None  # a text part: every model reads it
    if media_type not in IMAGE_TYPES and media_type != "application/pdf":
        return (f"{provider} cannot take an attachment of type {media_type}; attach an image "
                "(PNG, JPEG, WebP, GIF), a PDF or a text file instead")
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(TEXT_ONLY_MODELS):
        return (f"model {model} reads text only and cannot take an attachment of type "
                f"{media_type}; use a vision model for it (e.g. --model gpt-4o) or attach text")
    if media_type == "application/pdf" and kind == "ollama":
        return ("Ollama's OpenAI-compatible API takes images, not PDFs; attach the pages as "
                "images or the PDF's text")
    return None


__all__ = ["b64", "check_media", "content_blocks", "data_url", "file_name", "has_attachments",
           "text_of"]
