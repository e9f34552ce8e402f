"""The lash_nb PostgreSQL schema: the DuckDB store's tables and columns, in PostgreSQL types.

Same tables, same column names and meanings as ``lash_nb._store.duckdb.schema`` (read its
docstring for each table), so ``lash_nb.reports`` and ``%lash sql`` see the same columns.
Differences: JSON columns are ``jsonb``; timestamps are ``timestamp`` (UTC, no zone); one
extra table, ``turn_cancel_requests(session_id, turn_id, requested_at_ms)``, records Stop
requests so a turn that starts after the request still sees it.

SQL helpers created with the schema: ``epoch_ms(timestamp) -> bigint`` and
``epoch_ms(bigint) -> timestamp`` (as in DuckDB), and ``lash_now_ms()``: the server clock in
ms. Every lease expiry and claim time is read from the server clock, so workers on machines
with skewed clocks agree.

``lash_meta.schema_version`` must equal ``SCHEMA_VERSION`` (3); an empty database gets the
schema; an older lash database is moved forward at open, in one transaction under the
schema lock, by statements that are safe to run twice (``MIGRATIONS``; 1 -> 2 adds the queue
attempt columns, 2 -> 3 the ``blobs`` table of attachments); anything else is refused with
``StoreSchemaError``. Columns (``ADD_COLUMNS_DDL``) and indexes (``ADD_INDEXES_DDL``) added
within version 3 are created at an open that finds one missing, so a database an older
lash_nb made gains them, and an older lash_nb still opens a database that has them.
"""

from __future__ import annotations

import logging
from typing import Any

from ..._errors import StoreSchemaError
from .blobs import DDL as BLOBS_DDL

SCHEMA_VERSION = 3  # of this PostgreSQL schema (the DuckDB store keeps its own)
log = logging.getLogger("lash_nb.store")

# version -> idempotent statements that move a database of that version to the next one
MIGRATIONS = {
    1: """
ALTER TABLE queued_work_batches ADD COLUMN IF NOT EXISTS attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queued_work_batches ADD COLUMN IF NOT EXISTS error TEXT;
ALTER TABLE queued_work_batches ADD COLUMN IF NOT EXISTS failed_at_ms BIGINT;
ALTER TABLE queue_history ADD COLUMN IF NOT EXISTS attempts BIGINT;
UPDATE lash_meta SET value = '2' WHERE key = 'schema_version';
""",
    2: BLOBS_DDL + """
UPDATE lash_meta SET value = '3' WHERE key = 'schema_version';
""",
}

_BUCKETS = """
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_input_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_output_tokens BIGINT NOT NULL DEFAULT 0"""

DDL = f"""
CREATE OR REPLACE FUNCTION epoch_ms(ts timestamp) RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$ SELECT (extract(epoch FROM ts) * 1000)::bigint $$;
CREATE OR REPLACE FUNCTION epoch_ms(ms bigint) RETURNS timestamp
    LANGUAGE sql IMMUTABLE AS $$ SELECT to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC' $$;
CREATE OR REPLACE FUNCTION lash_now_ms() RETURNS bigint
    LANGUAGE sql VOLATILE AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
CREATE TABLE lash_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    model TEXT NOT NULL,
    parent_session_id TEXT,
    policy JSONB NOT NULL,
    head_revision BIGINT NOT NULL,
    leaf_node_id TEXT,
    turn_index BIGINT NOT NULL,
    tool_state JSONB,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    next_seq BIGINT NOT NULL
);
CREATE TABLE graph_nodes (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    node_id TEXT NOT NULL,
    parent_node_id TEXT,
    kind TEXT NOT NULL,
    role TEXT,
    content JSONB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    turn_id TEXT,
    tombstoned BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (session_id, node_id)
);
CREATE INDEX graph_nodes_seq ON graph_nodes (session_id, seq);
CREATE TABLE turns (
    session_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    stop_reason TEXT,
    started_at TIMESTAMP NOT NULL,
    duration_ms DOUBLE PRECISION,
    commit_hash TEXT,
    result JSONB,
    seq BIGINT NOT NULL,
    committed_at TIMESTAMP,
    PRIMARY KEY (session_id, turn_id)
);
CREATE TABLE usage_deltas (
    session_id TEXT NOT NULL,
    turn_id TEXT,
    seq BIGINT NOT NULL,
    source TEXT NOT NULL,
    model TEXT NOT NULL,{_BUCKETS},
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX usage_deltas_session ON usage_deltas (session_id, seq);
CREATE TABLE llm_calls (
    session_id TEXT NOT NULL,
    turn_id TEXT,
    call_id TEXT NOT NULL,
    model TEXT NOT NULL,
    protocol_iteration BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    served_model TEXT,
    error TEXT,
    error_kind TEXT,{_BUCKETS},
    seq BIGINT NOT NULL
);
CREATE INDEX llm_calls_session ON llm_calls (session_id, seq);
CREATE TABLE tool_calls (
    session_id TEXT NOT NULL,
    turn_id TEXT,
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    args JSONB,
    output JSONB,
    success BOOLEAN NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    started_at TIMESTAMP NOT NULL,
    interrupted BOOLEAN NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX tool_calls_session ON tool_calls (session_id, seq);
CREATE TABLE turn_events (
    session_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    activity_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload JSONB NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX turn_events_session ON turn_events (session_id, turn_id, seq);
CREATE SEQUENCE enqueue_seq START 1;
CREATE TABLE queued_work_batches (
    enqueue_seq BIGINT PRIMARY KEY DEFAULT nextval('enqueue_seq'),
    batch_id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    source_key TEXT,
    delivery_policy TEXT NOT NULL,
    slot_policy TEXT NOT NULL,
    merge_key TEXT,
    available_at_ms BIGINT NOT NULL,
    enqueued_at_ms BIGINT NOT NULL,
    claim_id TEXT,
    claim_generation BIGINT NOT NULL DEFAULT 0,
    claimed_at_ms BIGINT,
    items JSONB NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    failed_at_ms BIGINT,
    UNIQUE (session_id, source_key)
);
CREATE INDEX queued_work_ready ON queued_work_batches (session_id, enqueue_seq);
CREATE TABLE queue_history (
    batch_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    source_key TEXT,
    delivery_policy TEXT NOT NULL,
    slot_policy TEXT NOT NULL,
    enqueue_seq BIGINT NOT NULL,
    enqueued_at_ms BIGINT NOT NULL,
    claimed_at_ms BIGINT,
    finished_at_ms BIGINT NOT NULL,
    final_state TEXT NOT NULL,
    turn_id TEXT,
    enqueued_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    attempts BIGINT
);
CREATE INDEX queue_history_session ON queue_history (session_id);
CREATE TABLE execution_leases (
    session_id TEXT PRIMARY KEY,
    owner_id TEXT,
    token TEXT,
    fencing BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE turn_cancel_requests (
    session_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, turn_id)
);
{BLOBS_DDL}
INSERT INTO lash_meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""

# Columns added within this schema version (as in the DuckDB store's ``ADDED_COLUMNS``):
# idempotent; run at an open that finds one missing, so a database made by an older
# lash_nb gains them.
ADD_COLUMNS_DDL = """
ALTER TABLE usage_deltas ADD COLUMN IF NOT EXISTS estimated BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS estimated BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE tool_calls ADD COLUMN IF NOT EXISTS printed TEXT;
"""

# Indexes added within this schema version, the same way: a claim's probes and its head read
# go through them, so a drain reads the rows it may take, not every queued row of the session
# (ADR 207). Each predicate is written in the claim's statements word for word (the planner
# uses a partial index only for a query whose WHERE implies it). ``queued_work_pending``: the
# rows not parked, in queue order; ``queued_work_claimed``: the rows claimed at least once and
# not parked (the only rows that can have used up their attempts: a claim is what counts one);
# ``queued_work_early``: the rows a checkpoint or a command claim may take ahead of the queue.
# A worker's poll reads the other two (ADR 218): ``queued_work_at_once``, the rows not parked
# that were due when enqueued, in queue order (one step per session to its head), and
# ``queued_work_scheduled``, the due time of the rows not parked enqueued for later (NULL for
# every other row), so that only those now due are read. It is an expression index, not a
# partial one: the planner uses the statistics of an index's expression only when the index
# has no WHERE, and without them it takes the rows enqueued at once (due time 0) for due
# scheduled rows, expects thousands, and may read the table whole.
EARLY_SQL = ("(delivery_policy = 'earliest_safe_boundary' "
             "OR items @> '[{\"kind\": \"session_command\"}]'::jsonb)")
AT_ONCE_SQL = "failed_at_ms IS NULL AND available_at_ms <= enqueued_at_ms"
SCHEDULED_AT_SQL = ("(CASE WHEN failed_at_ms IS NULL AND available_at_ms > enqueued_at_ms "
                    "THEN available_at_ms END)")
ADDED_INDEXES = ("queued_work_pending", "queued_work_claimed", "queued_work_early",
                 "queued_work_at_once", "queued_work_scheduled")
ADD_INDEXES_DDL = f"""
CREATE INDEX IF NOT EXISTS queued_work_pending ON queued_work_batches (session_id, enqueue_seq)
    WHERE failed_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS queued_work_claimed ON queued_work_batches (session_id)
    WHERE failed_at_ms IS NULL AND attempts > 0;
CREATE INDEX IF NOT EXISTS queued_work_early ON queued_work_batches (session_id, enqueue_seq)
    WHERE failed_at_ms IS NULL AND {EARLY_SQL};
CREATE INDEX IF NOT EXISTS queued_work_at_once ON queued_work_batches (session_id, enqueue_seq)
    WHERE {AT_ONCE_SQL};
CREATE INDEX IF NOT EXISTS queued_work_scheduled ON queued_work_batches ({SCHEDULED_AT_SQL});
"""

# one advisory lock key, so two processes opening an empty database create the schema once
_SCHEMA_LOCK = 0x1A5B_0001


async def ensure_schema(con: Any, where: str) -> None:
    """Create the schema in an empty database, or check the version of an existing one (an
    older one is moved forward, and the other installs it shuts out named: ADR 221)."""
    moved = await _ensure_schema(con, where)
    if moved is not None:
        start, version = moved
        log.warning(
            "moved %s from lash_nb schema %s to %s; a lash_nb still at schema %s (a worker or "
            "notebook on another machine) now refuses it: upgrade lash_nb there (pip install "
            "-U lash-nb-core)", where, start, version, start)


async def _ensure_schema(con: Any, where: str) -> tuple[int, int] | None:
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
        cur = await con.execute("SELECT to_regclass('lash_meta') IS NOT NULL")
        row = await cur.fetchone()
        if row and row[0]:
            cur = await con.execute("SELECT value FROM lash_meta WHERE key = 'schema_version'")
            got = await cur.fetchone()
            version = start = int(got[0]) if got and str(got[0]).isdigit() else None
            while version is not None and version < SCHEMA_VERSION and version in MIGRATIONS:
                await con.execute(MIGRATIONS[version])
                version += 1
                got = (str(version),)
            if got is None or got[0] != str(SCHEMA_VERSION):
                newer = version is not None and version > SCHEMA_VERSION
                raise StoreSchemaError(
                    f"{where} holds lash_nb schema version {got[0] if got else 'unknown'}, this "
                    f"lash_nb reads version {SCHEMA_VERSION}; " + (
                        "it was written by a newer lash_nb: upgrade lash_nb here (pip install "
                        "-U lash-nb-core); the database is unchanged" if newer else
                        "use a new database or a matching lash_nb")
                )
            cur = await con.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND (table_name, column_name) IN (('usage_deltas', "
                "'estimated'), ('llm_calls', 'estimated'), ('tool_calls', 'printed'))")
            have = await cur.fetchone()
            if not have or have[0] < 3:  # ALTER locks the table: only when a column is missing
                await con.execute(ADD_COLUMNS_DDL)
            cur = await con.execute(
                "SELECT count(to_regclass(i)) FROM unnest(%s::text[]) AS i", [list(ADDED_INDEXES)])
            have = await cur.fetchone()
            if not have or have[0] < len(ADDED_INDEXES):  # a build locks the table's writes
                await con.execute(ADD_INDEXES_DDL)
                # the statistics of queued_work_scheduled's expression, for the poll's plan
                await con.execute("ANALYZE queued_work_batches")
            moved = start is not None and start != SCHEMA_VERSION
            return (start, SCHEMA_VERSION) if moved and start is not None else None
        cur = await con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name = ANY(%s)",
            [["sessions", "turns", "graph_nodes", "queued_work_batches"]],
        )
        clash = await cur.fetchone()
        if clash and clash[0]:
            raise StoreSchemaError(
                f"{where} has tables named like lash_nb's but no lash_meta table; it is not a "
                "lash store: use an empty database"
            )
        await con.execute(DDL)
        await con.execute(ADD_COLUMNS_DDL)
        await con.execute(ADD_INDEXES_DDL)
    return None
