"""Attachments: images and files a turn shows the model (lash ``AttachmentRef``).

An attachment is bytes with a media type. Its id is the SHA-256 of the bytes (lash
``content_id``), so the same figure attached twice is stored once. A session's graph keeps
only the :class:`AttachmentRef` (id, media type, size, label, image width / height); the
bytes live in the store's ``blobs`` table and are read back when a request needs them.

What :func:`attachment_from` accepts (duck typed: no matplotlib, Pillow or pandas import):

- ``bytes`` (the media type is sniffed from the first bytes, or pass ``media_type=``);
- a path (``str`` or ``os.PathLike``) to a file: media type from the bytes, else the suffix;
- a matplotlib figure (anything with ``savefig``): PNG;
- a Pillow image (``save`` + ``size`` + ``mode``): PNG;
- anything with ``_repr_png_`` / ``_repr_jpeg_`` (IPython display protocol);
- a pandas DataFrame (``to_csv`` + ``describe`` + ``dtypes``): a text table, see
  :func:`table_text` for the size rule.

Limits (:class:`AttachmentLimits`): at most ``max_bytes`` per attachment and
``max_turn_bytes`` for all attachments of one turn input; past them a one-line
:class:`~lash_nb.errors.InvalidTurnInput` says which limit and how to raise it.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidTurnInput
from .text import clean_text

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")

# the DataFrame rule: a frame whose CSV is at most TABLE_MAX_CHARS and that has at most
# TABLE_MAX_ROWS rows is sent whole as CSV; a larger one is sent as its shape, its schema
# (column: dtype), the first TABLE_HEAD_ROWS rows and ``describe()``
TABLE_MAX_ROWS = 200
TABLE_MAX_CHARS = 20_000
TABLE_HEAD_ROWS = 20


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """Bytes allowed per attachment and per turn input (all of its attachments)."""

    max_bytes: int = 5_000_000
    max_turn_bytes: int = 20_000_000


DEFAULT_LIMITS = AttachmentLimits()


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """What a session graph keeps of an attachment: everything but the bytes."""

    id: str  # sha256 hex of the bytes
    media_type: str
    byte_len: int
    label: str | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if type(self.label) is str:
            object.__setattr__(self, "label", clean_text(self.label))

    @property
    def kind(self) -> str:
        """``image`` for the image types every provider takes, else ``file``."""
        return "image" if self.media_type in IMAGE_TYPES else "file"

    @property
    def is_text(self) -> bool:
        return self.media_type.startswith("text/") or self.media_type in (
            "application/json", "application/csv")

    def describe(self) -> str:
        """One line for humans and the offline provider: kind, label, MIME, size."""
        dims = f", {self.width}x{self.height}" if self.width and self.height else ""
        label = f" {self.label}" if self.label else ""
        return f"[{self.kind}{label}: {self.media_type}, {self.byte_len} bytes{dims}]"

    def to_json(self) -> dict[str, Any]:
        """lash's ``AttachmentRef`` JSON: ``id``, ``media_type``, ``byte_len``, then
        ``type_metadata`` (``{"type": "image", "width", "height"}``) and ``label`` if known."""
        out: dict[str, Any] = {"id": self.id, "media_type": self.media_type,
                               "byte_len": self.byte_len}
        if self.width is not None or self.height is not None:
            dims = {k: v for k, v in (("width", self.width), ("height", self.height)) if v}
            out["type_metadata"] = {"type": "image", **dims}
        if self.label is not None:
            out["label"] = self.label
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AttachmentRef:
        raw = d.get("type_metadata")
        meta: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        return cls(str(d["id"]), str(d["media_type"]), int(d["byte_len"]), d.get("label"),
                   meta.get("width"), meta.get("height"))


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment in hand: its ref and, until it is stored, its bytes. ``preview`` is a
    small PNG (images) or the first lines of a table, for the notebook record only."""

    ref: AttachmentRef
    data: bytes | None = field(default=None, repr=False)
    preview: bytes | str | None = field(default=None, repr=False, compare=False)


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff_media_type(data: bytes) -> str | None:
    """The media type the first bytes prove, or None."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def image_size(data: bytes, media_type: str) -> tuple[int | None, int | None]:
    """Width and height read from a PNG or GIF header (None when not known)."""
    if media_type == "image/png" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if media_type == "image/gif" and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    return None, None


def too_large(what: str, size: int, limit: int, *, per_turn: bool = False) -> InvalidTurnInput:
    """The one-line error of a limit passed; ``err.limit`` names the limit
    (``"max_bytes"`` / ``"max_turn_bytes"``), ``err.size`` what was asked, and ``err.fact``
    is the message without the advice, for a front end with its own way to raise it."""
    if per_turn:
        fact = (f"the attachments of this turn have {size} bytes, more than the {limit} "
                "allowed per turn")
        advice = "attach fewer or pass limits=AttachmentLimits(max_turn_bytes=...)"
    else:
        fact = f"attachment {what} has {size} bytes, more than the {limit} allowed"
        advice = "attach a smaller one or pass limits=AttachmentLimits(max_bytes=...)"
    err = InvalidTurnInput(f"{fact}; {advice}")
    err.limit, err.size, err.fact = ("max_turn_bytes" if per_turn else "max_bytes"), size, fact
    return err


def make_attachment(
    data: bytes, media_type: str, *, label: str | None = None,
    preview: bytes | str | None = None, limits: AttachmentLimits = DEFAULT_LIMITS,
) -> Attachment:
    if len(data) > limits.max_bytes:
        raise too_large(label or media_type, len(data), limits.max_bytes)
    if not data:
        raise InvalidTurnInput(f"attachment {label or media_type} is empty; attach something")
    mt = media_type.strip().lower()
    if "/" not in mt or ";" in mt or " " in mt:
        raise InvalidTurnInput(
            f"media type {media_type!r} is not a type/subtype such as image/png; pass "
            "media_type=")
    w, h = image_size(data, mt) if mt.startswith("image/") else (None, None)
    ref = AttachmentRef(content_id(data), mt, len(data), label, w, h)
    return Attachment(ref, bytes(data), preview)


def attachment_from(
    obj: Any, *, name: str | None = None, media_type: str | None = None,
    limits: AttachmentLimits = DEFAULT_LIMITS,
) -> Attachment:
    """An :class:`Attachment` of ``obj`` (see the module docstring for what it takes)."""
    if isinstance(obj, Attachment):
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        mt = media_type or sniff_media_type(data)
        if mt is None:
            raise InvalidTurnInput(
                "cannot tell the media type of these bytes; pass media_type= (e.g. "
                "'image/png', 'application/pdf', 'text/csv')")
        return make_attachment(data, mt, label=name, limits=limits)
    if isinstance(obj, (str, os.PathLike)):
        return _from_path(os.fspath(obj), name, media_type, limits)
    if _is_frame(obj):
        text = table_text(obj)
        mt = "text/csv" if not text.startswith("# DataFrame") else "text/plain"
        preview = "\n".join(text.splitlines()[:12])
        return make_attachment(text.encode("utf-8"), media_type or mt,
                               label=name or "dataframe", preview=preview, limits=limits)
    png = _png_of(obj)
    if png is not None:
        return make_attachment(png, "image/png", label=name, preview=_thumbnail(obj),
                               limits=limits)
    jpeg = _call(obj, "_repr_jpeg_")
    if isinstance(jpeg, bytes):
        return make_attachment(jpeg, "image/jpeg", label=name, limits=limits)
    raise InvalidTurnInput(
        f"cannot attach a {type(obj).__name__}; attach bytes, a file path, a matplotlib "
        "figure, a PIL image, a DataFrame or an object with _repr_png_")


@dataclass(frozen=True, slots=True)
class TextWithImages:
    """A tool result made of text and images (an MCP result with image content): the model
    reads ``text`` and is shown ``images`` after the results, as a Python tool's picture."""

    text: str
    images: tuple[Attachment, ...]


def is_image_like(obj: Any) -> bool:
    """True for what a tool may return as an image: an :class:`Attachment` of an image, a
    matplotlib figure, a PIL image, or an object with ``_repr_png_`` (not text or data)."""
    if isinstance(obj, Attachment):
        return obj.ref.kind == "image"
    if isinstance(obj, (str, bytes, dict, list, tuple, int, float, bool)) or obj is None:
        return False
    t = type(obj)
    return (callable(getattr(t, "savefig", None)) or _is_pil(obj)
            or callable(getattr(t, "_repr_png_", None)))


def _from_path(path: str, name: str | None, media_type: str | None,
               limits: AttachmentLimits) -> Attachment:
    if not os.path.isfile(path):
        raise InvalidTurnInput(f"attachment path {path} is not a file; check the path")
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise too_large(name or path, size, limits.max_bytes)
    with open(path, "rb") as f:
        data = f.read()
    mt = media_type or sniff_media_type(data) or mimetypes.guess_type(path)[0]
    if mt is None:
        raise InvalidTurnInput(
            f"cannot tell the media type of {path}; pass media_type= (e.g. 'text/plain')")
    return make_attachment(data, mt, label=name or os.path.basename(path), limits=limits)


def _call(obj: Any, method: str) -> Any:
    fn = getattr(type(obj), method, None)
    return fn(obj) if callable(fn) else None


def _is_frame(obj: Any) -> bool:
    t = type(obj)
    return all(callable(getattr(t, m, None)) for m in ("to_csv", "describe")) and hasattr(
        obj, "dtypes") and hasattr(obj, "shape")


def is_table(obj: Any) -> bool:
    """A two-dimensional frame (pandas or alike) that :func:`table_text` can write."""
    return _is_frame(obj) and len(getattr(obj, "shape", ())) == 2


def _is_pil(obj: Any) -> bool:
    return callable(getattr(type(obj), "save", None)) and hasattr(obj, "mode") and hasattr(
        obj, "size")


def _png_of(obj: Any) -> bytes | None:
    buf = io.BytesIO()
    if callable(getattr(type(obj), "savefig", None)):  # a matplotlib figure
        obj.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()
    if _is_pil(obj):
        obj.save(buf, format="PNG")
        return buf.getvalue()
    png = _call(obj, "_repr_png_")
    return png if isinstance(png, bytes) else None


def _thumbnail(obj: Any) -> bytes | None:
    """A small PNG for the notebook record (a figure at low dpi, a PIL image scaled down)."""
    buf = io.BytesIO()
    try:
        if callable(getattr(type(obj), "savefig", None)):
            w, h = obj.get_size_inches()
            obj.savefig(buf, format="png", dpi=max(8, int(160 / max(w, h, 1))))
            return buf.getvalue()
        if _is_pil(obj):
            small = obj.copy()
            small.thumbnail((160, 160))
            small.save(buf, format="PNG")
            return buf.getvalue()
    except Exception:  # a preview is optional: the attachment itself was made
        return None
    return None


NA = "NaN"  # a missing value in the CSV the model reads


def table_text(frame: Any) -> str:
    """A DataFrame as text the model reads. Whole as CSV when it has at most
    ``TABLE_MAX_ROWS`` rows and its CSV has at most ``TABLE_MAX_CHARS`` characters;
    otherwise a summary: shape, schema (column: dtype), the first ``TABLE_HEAD_ROWS`` rows as
    CSV and ``describe()`` as CSV (each part cut at ``TABLE_MAX_CHARS``). A missing value is
    ``NaN``, as the notebook shows it and as a tool's JSON spells it (ADR 139): pandas'
    default blank would read as an empty text (ADR 219)."""
    rows, cols = frame.shape
    if rows <= TABLE_MAX_ROWS:
        whole = str(frame.to_csv(na_rep=NA))
        if len(whole) <= TABLE_MAX_CHARS:
            return whole
    schema = "\n".join(f"{c}: {t}" for c, t in frame.dtypes.items())
    head = str(frame.head(TABLE_HEAD_ROWS).to_csv(na_rep=NA))[:TABLE_MAX_CHARS]
    try:
        desc = str(frame.describe(include="all").to_csv(na_rep=NA))[:TABLE_MAX_CHARS]
    except (TypeError, ValueError):
        desc = "(describe() failed for this frame)"
    return (f"# DataFrame: {rows} rows x {cols} columns (summarised: more than "
            f"{TABLE_MAX_ROWS} rows or {TABLE_MAX_CHARS} characters of CSV)\n"
            f"## schema\n{schema}\n## first {min(rows, TABLE_HEAD_ROWS)} rows\n{head}\n"
            f"## describe()\n{desc}")


__all__ = [
    "DEFAULT_LIMITS",
    "IMAGE_TYPES",
    "Attachment",
    "AttachmentLimits",
    "AttachmentRef",
    "attachment_from",
    "content_id",
    "is_image_like",
    "is_table",
    "make_attachment",
    "sniff_media_type",
    "table_text",
    "too_large",
]
