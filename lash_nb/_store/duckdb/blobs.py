"""The ``blobs`` table: attachment bytes by content id (see ``schema.py``).

Puts are idempotent (``ON CONFLICT DO NOTHING``: the same bytes have the same id). Pruning
keeps every blob whose id appears in a graph node's content or a queued batch's items (a
64-hex-digit string anywhere in the JSON counts: a false match only keeps a blob longer)
and every blob younger than the grace period (a turn puts its blobs just before the
commit that references them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._core.attachments import AttachmentRef
from .arrow import need_bindable

BLOB_GRACE_S = 3600.0  # a blob younger than this is kept: its turn may be about to commit

_REFERENCED = """
SELECT DISTINCT unnest(regexp_extract_all(content::VARCHAR, '[0-9a-f]{64}')) AS id
FROM graph_nodes
UNION
SELECT DISTINCT unnest(regexp_extract_all(items::VARCHAR, '[0-9a-f]{64}')) FROM queued_work_batches
"""


def put(con: Any, blobs: Sequence[tuple[AttachmentRef, bytes]]) -> None:
    if blobs:
        need_bindable()  # bytes (arrow.py)
    for ref, data in blobs:
        con.execute(
            "INSERT INTO blobs (blob_id, media_type, byte_len, created_at, data) "
            "VALUES (?, ?, ?, now()::TIMESTAMP, ?) ON CONFLICT DO NOTHING",
            [ref.id, ref.media_type, len(data), data])


def get(con: Any, blob_ids: Sequence[str]) -> dict[str, bytes]:
    if not blob_ids:
        return {}
    need_bindable()  # a list (arrow.py)
    rows = con.execute("SELECT blob_id, data FROM blobs WHERE list_contains(?, blob_id)",
                       [list(blob_ids)]).fetchall()
    return {str(i): bytes(d) for i, d in rows}


def prune(con: Any, older_than_s: float) -> int:
    got = con.execute(
        f"DELETE FROM blobs WHERE created_at < now()::TIMESTAMP - to_milliseconds(?) "
        f"AND blob_id NOT IN ({_REFERENCED}) RETURNING blob_id",
        [int(older_than_s * 1000)]).fetchall()
    return len(got)
