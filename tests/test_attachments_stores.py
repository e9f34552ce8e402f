"""Attachments through every store: a data scientist attaches a plot, a photo, a PDF and a
DataFrame, closes the notebook, reopens the session the next morning and asks a follow-up;
the model must still see the same bytes, and each distinct content is stored once.

Expected bytes and ids are written here (hand-made PNG / JPEG / PDF headers; the SHA-256
from ``hashlib`` over the literal bytes), never taken from the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, TurnInput
from lash_nb._core.llm import LlmRequest
from lash_nb.providers import FunctionProvider

STORE_PARAMS = ["memory", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]

# a 2x3 PNG: signature, IHDR length + type, width 2, height 3, then filler
PNG = (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00\x00\x00\x02\x00\x00\x00\x03"
       + b"\x08\x06\x00\x00\x00" + b"png-body" * 20)
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-body" * 30
PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 10 + b"%%EOF"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Recorder:
    """A model that answers "ok" and keeps every request it was sent."""

    def __init__(self) -> None:
        self.requests: list[LlmRequest] = []

    def __call__(self, request: LlmRequest) -> str:
        self.requests.append(request)
        return "ok"


def _target(name: str, request: Any, tmp_path: Path) -> str | None:
    if name == "memory":
        return None
    if name == "duckdb":
        return str(tmp_path / "a.duckdb")
    return str(request.getfixturevalue("pg_server").create_database())


def _blob_rows(core: Any) -> list[tuple[str, str, int]]:
    store = core.store
    if hasattr(store, "blob_rows"):
        rows = store.blob_rows()
        return sorted((r["blob_id"], r["media_type"], r["byte_len"]) for r in rows)
    frame = store.query("SELECT blob_id, media_type, byte_len FROM blobs ORDER BY blob_id")
    return [(r.blob_id, r.media_type, int(r.byte_len)) for r in frame.itertuples()]


@pytest.mark.parametrize("store", STORE_PARAMS)
def test_each_kind_is_stored_once_reopened_and_replayed(store: str, request: Any,
                                                         tmp_path: Path) -> None:
    target = _target(store, request, tmp_path)
    model = Recorder()
    csv = tmp_path / "sales.csv"
    csv.write_text("region,units\nnorth,3\nsouth,5\n")

    async def scenario() -> None:
        core = LashCore.builder().provider(FunctionProvider(model)).store(target).build()
        s = await core.session("s").open()
        first = (TurnInput.text("what do these show?").attach(PNG, name="plot.png")
                 .attach(JPEG, name="photo.jpg").attach(PDF, name="report.pdf")
                 .attach(csv))
        await s.turn(first).run()
        # the same plot again in a second turn: no second blob row
        await s.turn(TurnInput.text("and this one?").attach(PNG, name="again.png")).run()
        rows = _blob_rows(core)
        assert rows == sorted([
            (sha(PNG), "image/png", len(PNG)), (sha(JPEG), "image/jpeg", len(JPEG)),
            (sha(PDF), "application/pdf", len(PDF)),
            (sha(csv.read_bytes()), "text/csv", len(csv.read_bytes())),
        ])
        sent = model.requests[0].attachments
        assert sent == {sha(PNG): PNG, sha(JPEG): JPEG, sha(PDF): PDF,
                        sha(csv.read_bytes()): csv.read_bytes()}
        if store == "memory":  # the same store object is the next morning's store
            reopen_store: Any = core.store
        else:
            await core.close()
            reopen_store = target
        core2 = LashCore.builder().provider(FunctionProvider(model)).store(reopen_store).build()
        s2 = await core2.session("s").open()
        user = s2.read_view().messages()[0]
        refs = [p.attachment for p in user.parts if p.attachment is not None]
        assert [(r.media_type, r.label, r.byte_len) for r in refs] == [
            ("image/png", "plot.png", len(PNG)), ("image/jpeg", "photo.jpg", len(JPEG)),
            ("application/pdf", "report.pdf", len(PDF)),
            ("text/csv", "sales.csv", len(csv.read_bytes())),
        ]
        assert (refs[0].width, refs[0].height) == (2, 3)
        # replay: a fresh handle's next call sends the earlier bytes, read from the store
        await s2.turn("compare them").run()
        replayed = model.requests[-1].attachments
        assert replayed[sha(PNG)] == PNG and replayed[sha(PDF)] == PDF
        assert len(replayed) == 4
        await core2.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("store", STORE_PARAMS)
def test_prune_removes_only_unreferenced_blobs(store: str, request: Any,
                                               tmp_path: Path) -> None:
    target = _target(store, request, tmp_path)

    async def scenario() -> None:
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).store(target).build()
        s = await core.session("keep").open()
        await s.turn(TurnInput.text("keep this").attach(PNG, name="kept.png")).run()
        gone = await core.session("gone").open()
        await gone.turn(TurnInput.text("drop this").attach(JPEG, name="dropped.jpg")).run()
        queued = await core.session("queued").open()
        await queued.enqueue(TurnInput.text("later").attach(PDF, name="queued.pdf")).send()
        await core.store.delete_session("gone")
        # young blobs survive a prune (a turn puts them just before its commit)
        assert await core.store.prune_blobs() == 0
        assert await core.store.prune_blobs(older_than_s=-1) == 1
        assert [r[0] for r in _blob_rows(core)] == sorted([sha(PNG), sha(PDF)])
        # the queued batch still gets its bytes when it runs
        seen: list[LlmRequest] = []
        core2 = LashCore.builder().provider(FunctionProvider(lambda r: seen.append(r) or "ok")) \
            .store(core.store if store == "memory" else target).build()
        if store != "memory":
            await core.close()
        q2 = await core2.session("queued").open()
        out = await q2.queued_turn().run()
        assert out is not None and out.result.assistant_message() == "ok"
        assert seen[0].attachments == {sha(PDF): PDF}
        await core2.close()

    asyncio.run(scenario())
