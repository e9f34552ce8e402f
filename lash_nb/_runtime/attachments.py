"""Attachments in a running session: the user message that carries them, their bytes
written to the store before the turn's progress commit, and read back for a model call.

Order of writes (lash's write-ahead intent, simplified): the blobs of a turn's input are
put (idempotently, by content id) before the progress commit that references them; a crash
in between leaves an unreferenced blob, which ``prune_blobs`` removes once it is older than
its grace period. A text-only turn does none of this (no store call, no scan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .._core.attachments import Attachment
from .._core.graph import GraphView
from .._core.llm import refused_media
from .._core.records import InputItem, Message, Part, PartKind, Role, TurnInput, fresh_id
from .._errors import InvalidTurnInput
from .._store.base import SessionStore, stores_blobs


def input_message(items: Sequence[InputItem], *, origin: str | None = None) -> Message:
    """The user message of turn input items: a text part per text item, an attachment
    part (its ref, and a one-line description as content) per attachment."""
    mid = fresh_id("m")
    parts = []
    for i, item in enumerate(items):
        a = item.attachment
        if a is not None:
            parts.append(Part(f"{mid}.p{i}", PartKind.ATTACHMENT, a.ref.describe(),
                              attachment=a.ref))
        else:
            parts.append(Part(f"{mid}.p{i}", PartKind.TEXT, item.text))
    return Message(mid, Role.USER, tuple(parts) or (Part(f"{mid}.p0", PartKind.TEXT, ""),),
                   origin)


def check_attachments(turn_input: TurnInput, provider: object, model: str) -> None:
    """Refuse, before anything is written, an attachment the provider (or its model) cannot
    take: once in the history it would fail every later call of the session."""
    for a in turn_input.attachments():
        why = refused_media(provider, a.ref.media_type, model)
        if why is not None:
            raise InvalidTurnInput(f"{why}; nothing was sent or stored")


class BlobCache:
    """Bytes of the attachments this session handle has put or read, by content id."""

    def __init__(self) -> None:
        self._bytes: dict[str, bytes] = {}
        # the last history scanned: its list, how far, the attachment ids found up to there
        # (a turn's GraphView list only grows in place, so a later call scans only the tail)
        self._scanned: tuple[list[Message], int, list[str]] | None = None

    async def put(self, store: SessionStore, attachments: Iterable[Attachment]) -> None:
        """Write the bytes of ``attachments`` to the store (no-op for refs already there)."""
        fresh = [(a.ref, a.data) for a in attachments
                 if a.data is not None and a.ref.id not in self._bytes]
        if not fresh:
            return
        if stores_blobs(store):
            await store.put_blobs(fresh)
        for ref, data in fresh:
            self._bytes[ref.id] = data

    async def for_messages(self, store: SessionStore, messages: Iterable[Message]
                           ) -> Mapping[str, bytes]:
        """Bytes of every attachment part in ``messages`` (read from the store when this
        handle has not seen them); empty, without a store call, when there are none."""
        ids = self._ids(messages)
        if not ids:
            return {}
        missing = [i for i in ids if i not in self._bytes]
        if missing and stores_blobs(store):
            self._bytes.update(await store.get_blobs(sorted(set(missing))))
        return {i: self._bytes[i] for i in ids if i in self._bytes}

    def _ids(self, messages: Iterable[Message]) -> list[str]:
        if not isinstance(messages, GraphView):
            return [p.attachment.id for m in messages for p in m.parts if p.attachment is not None]
        msgs, n = messages.backing()
        got = self._scanned
        if got is None or got[0] is not msgs or got[1] > n:
            got = (msgs, 0, [])
        found = got[2] + [p.attachment.id for m in msgs[got[1]:n] for p in m.parts
                          if p.attachment is not None]
        self._scanned = (msgs, n, found)
        return found


__all__ = ["BlobCache", "check_attachments", "input_message"]
