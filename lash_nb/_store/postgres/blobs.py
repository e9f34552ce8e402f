"""The ``blobs`` table in PostgreSQL: the same rows and rules as the DuckDB store's
(``lash_nb._store.duckdb.blobs``), ``data`` as ``bytea``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._core.attachments import AttachmentRef

DDL = """CREATE TABLE IF NOT EXISTS blobs (
    blob_id TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    byte_len BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    data BYTEA NOT NULL
);"""

_REFERENCED = """
SELECT (regexp_matches(content::text, '[0-9a-f]{64}', 'g'))[1] FROM graph_nodes
UNION
SELECT (regexp_matches(items::text, '[0-9a-f]{64}', 'g'))[1] FROM queued_work_batches
"""


async def put(con: Any, blobs: Sequence[tuple[AttachmentRef, bytes]]) -> None:
    async with con.transaction():
        for ref, data in blobs:
            await con.execute(
                "INSERT INTO blobs VALUES (%s, %s, %s, now() AT TIME ZONE 'UTC', %s) "
                "ON CONFLICT (blob_id) DO NOTHING",
                [ref.id, ref.media_type, len(data), data])


async def get(con: Any, blob_ids: Sequence[str]) -> dict[str, bytes]:
    if not blob_ids:
        return {}
    cur = await con.execute("SELECT blob_id, data FROM blobs WHERE blob_id = ANY(%s)",
                            [list(blob_ids)])
    return {str(i): bytes(d) for i, d in await cur.fetchall()}


async def prune(con: Any, older_than_s: float) -> int:
    async with con.transaction():
        cur = await con.execute(
            "DELETE FROM blobs WHERE created_at < (now() AT TIME ZONE 'UTC') - "
            f"make_interval(secs => %s) AND blob_id NOT IN ({_REFERENCED}) RETURNING blob_id",
            [float(older_than_s)])
        return len(await cur.fetchall())
