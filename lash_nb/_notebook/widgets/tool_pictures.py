"""The thumbnails of the pictures a tool returned, under its row (ADR 232, 234).

A tool's ``ToolCallCompleted`` carries its pictures as ``Attachment``s (bytes and all) in
the process that ran it, and as refs only (``AttachmentRef.to_json``) once stored: a turn a
worker ran, or one replayed the next day, has the refs, the bytes being in the store's
``blobs`` table. :func:`read_thumbnails` reads those bytes (only the images' own, one read
for the turn) and makes each thumbnail in a thread, off the kernel's event loop, keeping
the thumbnail (at most ``THUMB_PX`` px / ``THUMB_MAX_BYTES``), never the bytes. The fold
then builds a row's cards with :func:`tool_cards`, which takes a made thumbnail from here by
the image's id (its bytes' sha256): each image is scaled once, however often a view folds
the turn again (a drain folds it live, then once more from the run's own list). A ref whose
bytes are gone (pruned) has no thumbnail: its card is its caption.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..._core.attachments import Attachment, AttachmentRef
from ..._core.events import ToolCallCompleted
from ..._store.base import stores_blobs
from .attachments import attachment_cards

KEPT = 64  # thumbnails kept (each <= 64 KB of base64): the pictures of the recent turns
_THUMBS: OrderedDict[str, str] = OrderedDict()  # image id -> its card's "thumb" ("" none)


def _attachments(images: Iterable[Any]) -> list[Attachment]:
    got = [i if isinstance(i, Attachment) else Attachment(AttachmentRef.from_json(i))
           for i in images if isinstance(i, (Attachment, Mapping))]
    return [a for a in got if a.ref.kind == "image"]  # a tool's card never shows its text


def _card(a: Attachment) -> dict[str, Any]:
    thumb = _THUMBS.get(a.ref.id)
    if thumb is None and a.data is None:  # no bytes here, none read: the caption only
        [card] = attachment_cards([a])
        return card
    [card] = attachment_cards([Attachment(a.ref)] if thumb is not None else [a])
    if thumb is None:
        thumb = _keep(a.ref.id, card["thumb"])
    card["thumb"] = thumb
    return card


def _keep(image_id: str, thumb: str) -> str:
    _THUMBS[image_id] = thumb
    _THUMBS.move_to_end(image_id)
    while len(_THUMBS) > KEPT:
        _THUMBS.popitem(last=False)
    return thumb


def tool_cards(images: Iterable[Any]) -> list[dict[str, Any]]:
    """The cards of the pictures a tool returned: ``Attachment``s with bytes, or refs whose
    thumbnail :func:`read_thumbnails` made (else their caption)."""
    return [_card(a) for a in _attachments(images)]


def _tool_images(events: Iterable[Any]) -> Iterator[Attachment]:
    """The pictures the turn's tools returned (stored refs or attachments), in order."""
    for a in events:
        ev = getattr(a, "event", None)
        if isinstance(ev, ToolCallCompleted):
            yield from _attachments(ev.images or ())


def _refs(events: Iterable[Any]) -> dict[str, AttachmentRef]:
    return {i.ref.id: i.ref for i in _tool_images(events)
            if i.data is None and i.ref.id not in _THUMBS}


def tool_image_ids(events: Iterable[Any]) -> frozenset[str]:
    """The ids of the pictures the turn's tools returned (stored refs or attachments)."""
    return frozenset(i.ref.id for i in _tool_images(events))


async def read_thumbnails(store: Any, events: Iterable[Any]) -> None:
    """Make the thumbnails of the stored pictures the turn's tools returned, from the
    store's blobs, for :func:`tool_cards`: one read, scaled in a thread."""
    refs = _refs(events)
    if not refs or not stores_blobs(store):
        return
    data = await store.get_blobs(list(refs))
    found = [Attachment(r, data[i]) for i, r in refs.items() if data.get(i) is not None]
    if not found:
        return
    cards = await asyncio.to_thread(attachment_cards, found)
    for a, card in zip(found, cards, strict=True):
        _keep(a.ref.id, card["thumb"])


__all__ = ["KEPT", "read_thumbnails", "tool_cards", "tool_image_ids"]
