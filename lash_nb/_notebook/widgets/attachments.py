"""What a turn's widget and its saved record show of the attachments: a small thumbnail of
each image and the first lines of each table or text file, with its label, MIME and size.

The record must stay small (a saved notebook keeps it): a thumbnail is at most
``THUMB_PX`` pixels on its longer side and ``THUMB_MAX_BYTES`` bytes; an image that cannot be
scaled down to that (no Pillow, or a format it does not read) is shown as its caption only,
never as the full image. Table previews keep ``PREVIEW_LINES`` lines of ``PREVIEW_CHARS``
characters at most. All text is escaped; an image is shown only as a ``data:image/png`` /
``data:image/jpeg`` URL built here from bytes, never from outside text.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._core.attachments import Attachment
from .snapshot import esc

THUMB_PX = 160
THUMB_MAX_BYTES = 48_000
PREVIEW_LINES = 8
PREVIEW_CHARS = 120
_THUMB_TYPES = ("image/png", "image/jpeg")


def _thumb_bytes(a: Attachment) -> tuple[bytes, str] | None:
    if isinstance(a.preview, bytes) and len(a.preview) <= THUMB_MAX_BYTES:
        return a.preview, "image/png"
    data = a.data
    if data is None or a.ref.kind != "image":
        return None
    small = (a.ref.width or THUMB_PX + 1) <= THUMB_PX and (a.ref.height or THUMB_PX + 1) <= THUMB_PX
    if small and a.ref.media_type in _THUMB_TYPES and len(data) <= THUMB_MAX_BYTES:
        return data, a.ref.media_type
    try:  # Pillow is optional: without it a large image gets its caption only
        from PIL import Image

        img = Image.open(io.BytesIO(data))
        img.thumbnail((THUMB_PX, THUMB_PX))
        buf = io.BytesIO()
        img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB").save(buf, format="PNG")
    except Exception:
        return None
    out = buf.getvalue()
    return (out, "image/png") if len(out) <= THUMB_MAX_BYTES else None


def _table_preview(a: Attachment) -> str:
    text = a.preview if isinstance(a.preview, str) else None
    if text is None and a.data is not None and a.ref.is_text:
        text = a.data[: PREVIEW_LINES * (PREVIEW_CHARS + 1)].decode("utf-8", "replace")
    if not text:
        return ""
    lines = text.splitlines()[:PREVIEW_LINES]
    return "\n".join(line if len(line) <= PREVIEW_CHARS else line[:PREVIEW_CHARS - 1] + "…"
                     for line in lines)


def attachment_cards(attachments: Iterable[Attachment]) -> list[dict[str, Any]]:
    """One JSON-able card per attachment (the widget's ``attachments`` trait)."""
    cards = []
    for a in attachments:
        ref = a.ref
        thumb = _thumb_bytes(a)
        cards.append({
            "label": ref.label or "", "kind": ref.kind, "media_type": ref.media_type,
            "byte_len": ref.byte_len, "width": ref.width, "height": ref.height,
            "thumb": (f"data:{thumb[1]};base64,{base64.b64encode(thumb[0]).decode('ascii')}"
                      if thumb else ""),
            "table": _table_preview(a),
        })
    return cards


def caption(card: Mapping[str, Any]) -> str:
    dims = f", {card['width']}x{card['height']}" if card.get("width") and card.get("height") else ""
    label = f"{card['label']} · " if card.get("label") else ""
    return f"{label}{card.get('media_type')}, {_size(int(card.get('byte_len') or 0))}{dims}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def cards_html(cards: Sequence[Mapping[str, Any]]) -> str:
    if not cards:
        return ""
    items = []
    for c in cards:
        thumb = str(c.get("thumb") or "")
        body = ""
        if thumb.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")):
            body = f'<img class="lash-thumb" src="{esc(thumb)}" alt="{esc(c.get("label"))}">'
        elif c.get("table"):
            body = f'<pre class="lash-table-preview">{esc(c.get("table"))}</pre>'
        items.append(f'<figure class="lash-attachment">{body}'
                     f'<figcaption>{esc(caption(c))}</figcaption></figure>')
    return f'<div class="lash-attachments">{"".join(items)}</div>'


def cards_markdown(cards: Sequence[Mapping[str, Any]], said: str = "- attached") -> str:
    return "\n".join(f"{said}: {caption(c)}" for c in cards)


__all__ = ["attachment_cards", "cards_html", "cards_markdown"]
