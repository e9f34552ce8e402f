"""Turn input: the items of one turn (text and attachments), checked and bounded.

Re-exported by :mod:`lash_nb._core.records`, the records of the session layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .attachments import (
    DEFAULT_LIMITS,
    Attachment,
    AttachmentLimits,
    AttachmentRef,
    attachment_from,
    too_large,
)
from .secrets import scrub_known_keys
from .text import check_id, clean_text


@dataclass(frozen=True, slots=True)
class InputItem:
    """One item of turn input. ``type`` is ``text``, or ``attachment`` (``attachment`` set,
    ``text`` empty; lash ``InputItem::Attachment``: an image or a file, by its media type)."""

    text: str
    type: str = "text"
    attachment: Attachment | None = None

    def __post_init__(self) -> None:  # text enters a session here (core/text.py)
        if type(self.text) is str:  # a key pasted into a prompt is not stored or sent (ADR 196)
            object.__setattr__(self, "text", scrub_known_keys(clean_text(self.text)))

    @classmethod
    def of_attachment(cls, attachment: Attachment) -> InputItem:
        return cls("", "attachment", attachment)

    def to_json(self) -> dict[str, Any]:
        if self.attachment is not None:  # lash's stored source: the bytes are in the blobs table
            return {"type": "attachment", "source": {
                "source": "stored", "attachment_ref": self.attachment.ref.to_json()}}
        return {"type": self.type, "text": self.text}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputItem:
        kind = data.get("type", "text")
        source = data.get("source")
        if kind == "attachment" and isinstance(source, Mapping) and isinstance(
                source.get("attachment_ref"), Mapping):
            ref = AttachmentRef.from_json(source["attachment_ref"])
            return cls("", "attachment", Attachment(ref))
        if kind != "text":
            raise ValueError(f"unsupported input item type {data.get('type')!r}")
        return cls(text=str(data["text"]))


@dataclass(frozen=True, slots=True)
class TurnInput:
    """What a user gives a turn: ordered items, optionally a trace turn id."""

    items: tuple[InputItem, ...] = ()
    trace_turn_id: str | None = None

    def __post_init__(self) -> None:
        if self.trace_turn_id is not None:
            check_id(self.trace_turn_id, "trace turn id")

    @classmethod
    def text(cls, text: str) -> TurnInput:
        if not isinstance(text, str):
            raise TypeError(
                f"TurnInput.text() takes a str, got {type(text).__name__}; pass the prompt text"
            )
        return cls(items=(InputItem(text),))

    @classmethod
    def empty(cls) -> TurnInput:
        return cls()

    @classmethod
    def of(cls, items: Sequence[InputItem | str]) -> TurnInput:
        return cls(items=tuple(InputItem(i) if isinstance(i, str) else i for i in items))

    def with_trace_turn_id(self, turn_id: str) -> TurnInput:
        return TurnInput(self.items, turn_id)

    def attach(
        self, obj: Any, *, name: str | None = None, media_type: str | None = None,
        limits: AttachmentLimits = DEFAULT_LIMITS,
    ) -> TurnInput:
        """This input with ``obj`` attached after its items: bytes, a path, a matplotlib
        figure, a PIL image, a DataFrame or anything with ``_repr_png_`` (see
        ``lash_nb._core.attachments``). Refused past ``limits`` with a one-line error."""
        item = InputItem.of_attachment(
            attachment_from(obj, name=name, media_type=media_type, limits=limits))
        total = sum(a.ref.byte_len for a in self.attachments()) + (
            item.attachment.ref.byte_len if item.attachment else 0)
        if total > limits.max_turn_bytes:
            raise too_large("", total, limits.max_turn_bytes, per_turn=True)
        return TurnInput((*self.items, item), self.trace_turn_id)

    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(i.attachment for i in self.items if i.attachment is not None)

    def is_blank(self) -> bool:
        return not any(i.text.strip() or i.attachment is not None for i in self.items)

    def joined_text(self) -> str:
        return "\n\n".join(i.text for i in self.items if i.text)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"items": [i.to_json() for i in self.items]}
        if self.trace_turn_id:
            out["trace_turn_id"] = self.trace_turn_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TurnInput:
        return cls(
            items=tuple(InputItem.from_json(i) for i in data.get("items", ())),
            trace_turn_id=data.get("trace_turn_id"),
        )

    @staticmethod
    def merge(inputs: Sequence[TurnInput]) -> TurnInput:
        """Concatenate items in order; the first trace id wins (lash ``materialize_for_turn``)."""
        items: list[InputItem] = []
        trace = None
        for i in inputs:
            items.extend(i.items)
            trace = trace or i.trace_turn_id
        return TurnInput(tuple(items), trace)
