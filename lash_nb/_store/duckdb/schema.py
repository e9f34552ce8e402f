"""The lash_nb DuckDB store schema, version ``SCHEMA_VERSION`` (4).

One file holds many sessions; every table except ``lash_meta`` carries ``session_id``.
Users query these tables directly (``store.query(...)``, ``%lash sql``), so the names are
lash's vocabulary and the columns are stable within a schema version.
See ``docs/store-schema.md`` for the same description with example queries.

``lash_meta(key, value)``
    ``schema_version`` = ``4``. A file without this table is not a lash store. Older files
    (1: no ``commit_log``; 2: no queue attempts; 3: no ``blobs``) are moved forward by
    :func:`migrate` (``python -m lash_nb migrate-store PATH``).
``sessions``
    One row per session: ``session_id`` (PK), ``provider_id``, ``model``,
    ``parent_session_id``, ``policy`` JSON, ``head_revision`` (+1 per commit),
    ``leaf_node_id``, ``turn_index``, ``tool_state`` JSON, ``created_at`` / ``updated_at``
    TIMESTAMP (UTC), ``next_seq`` (the next value of the session's row order counter).
``graph_nodes``
    The session graph: ``seq`` (insertion order), ``node_id``, ``parent_node_id``, ``kind``
    (message | event), ``role``, ``content`` JSON (the message or event payload),
    ``created_at``, ``turn_id``, ``tombstoned``.
``turns``
    One row per turn: ``status`` ``open`` (progress commit seen) or ``committed``
    (terminal record written), ``outcome`` (finished | stopped | agent_frame_switch),
    ``stop_reason`` (assistant_message, cancelled, runtime_error, ...), ``started_at``,
    ``duration_ms``, ``commit_hash`` (``process_lost`` for turns closed after a crash),
    ``result`` JSON, ``seq``, ``committed_at``. PK ``(session_id, turn_id)``.
``usage_deltas``
    Append-only token usage: ``turn_id``, ``seq``, ``source``, ``model``, the five buckets
    (``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
    ``cache_write_input_tokens``, ``reasoning_output_tokens``), ``created_at``,
    ``estimated`` (true: the tokens are an estimate for a stream cut by a cancel that reported
    no usage, ``ceil(chars / 4)``; see ``lash_nb._core.usage``).
    The session's token ledger is these rows summed per ``(source, model)``.
``llm_calls``
    One row per attempt of each model call: ``call_id``, ``model``, ``protocol_iteration``,
    ``attempt`` (ordinal), ``started_at``, ``duration_ms``, ``outcome``, ``request_id``,
    ``served_model``, ``error``, ``error_kind``, the five buckets (zero when the attempt
    reported no usage), ``seq``, ``estimated`` (the buckets of an ``interrupted`` attempt
    that reported nothing are an estimate).
``tool_calls``
    ``call_id``, ``name``, ``args`` JSON, ``output`` JSON, ``success``, ``duration_ms``,
    ``started_at``, ``interrupted``, ``seq``, ``printed`` (what the call printed, bounded;
    NULL: nothing, or a call stored before lash_nb kept it; ADR 197).
``turn_events``
    The turn activity stream: ``seq``, ``activity_id``, ``correlation_id``, ``type``,
    ``payload`` JSON (the event fields), ``created_at`` (commit time).
``queued_work_batches``
    Pending and claimed queued work: ``enqueue_seq`` (PK, from SEQUENCE ``enqueue_seq``),
    ``batch_id``, ``session_id``, ``source_key`` (UNIQUE with ``session_id``),
    ``delivery_policy``, ``slot_policy``, ``merge_key``, ``available_at_ms``,
    ``enqueued_at_ms``, ``claim_id``, ``claim_generation`` (lease fencing of the claimer),
    ``claimed_at_ms``, ``items`` JSON, ``attempts`` (claims that did not complete it),
    ``error`` (the last attempt's error), ``failed_at_ms`` (set when it was parked failed
    after ``max_attempts``: never claimed again). Completed and cancelled batches are deleted.
``queue_history``
    A row per batch that left the queue: ``final_state`` completed | cancelled, the policies,
    ``enqueued_at_ms``, ``claimed_at_ms``, ``finished_at_ms``, ``turn_id`` (the turn that
    completed it), ``enqueued_at`` / ``finished_at`` TIMESTAMP, ``attempts`` (claims it
    took; NULL for batches finished before schema version 3).
``execution_leases``
    ``session_id`` (PK), ``owner_id``, ``token``, ``fencing``, ``expires_at_ms``. A released
    lease keeps its fencing number (the next holder gets fencing + 1).
``blobs``
    Attachment bytes, content-addressed: ``blob_id`` (PK, the SHA-256 hex of ``data``),
    ``media_type``, ``byte_len``, ``created_at``, ``data`` BLOB. One row per distinct
    content, whatever number of graph nodes reference it (a message part's ``attachment``
    JSON carries the id). ``store.prune_blobs()`` deletes the rows nothing references.
``commit_log``
    Turn commits not yet written to the tables above: ``session_id``, ``head_revision``,
    ``written_at``, ``body`` (JSON of the rows). Empty whenever no process holds the file,
    except after a crash; the next writer folds it in (see ``journal.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 4  # of this DuckDB schema (the PostgreSQL store keeps its own)

TABLES = (
    "lash_meta",
    "sessions",
    "graph_nodes",
    "turns",
    "usage_deltas",
    "llm_calls",
    "tool_calls",
    "turn_events",
    "queued_work_batches",
    "queue_history",
    "execution_leases",
    "commit_log",
    "blobs",
)

COMMIT_LOG_DDL = """CREATE TABLE commit_log (
    session_id VARCHAR NOT NULL,
    head_revision BIGINT NOT NULL,
    written_at TIMESTAMP NOT NULL,
    body VARCHAR NOT NULL
);"""

# Columns added within schema version 2 (additive: older lash_nb versions insert BY NAME and
# keep working; each has a default). A writable open adds the missing ones to an older v2
# file (``lock.ensure_schema``); ``migrate-store`` does too. Never dropped or renamed.
ADDED_COLUMNS = (
    ("usage_deltas", "estimated", "BOOLEAN DEFAULT false"),
    ("llm_calls", "estimated", "BOOLEAN DEFAULT false"),
    ("tool_calls", "printed", "VARCHAR"),  # ADR 197
)
ADDED_DEFAULTS: dict[tuple[str, str], Any] = {
    (table, column): False if "BOOLEAN" in ddl else None for table, column, ddl in ADDED_COLUMNS}
ADD_COLUMNS_DDL = "\n".join(
    f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} {d};" for t, c, d in ADDED_COLUMNS)
ADDED_PROBE = " UNION ALL ".join(
    f"SELECT NULL FROM (SELECT {c} FROM {t} WHERE false)" for t, c, _ in ADDED_COLUMNS)
# the added columns the reads need (a read-only open of a file without them is refused; a
# file lacking only ``tool_calls.printed`` opens read-only, its calls printed nothing known)
READ_PROBE = " UNION ALL ".join(
    f"SELECT NULL FROM (SELECT {c} FROM {t} WHERE false)" for t, c, _ in ADDED_COLUMNS[:2])
QUEUE_ATTEMPTS_DDL = """ALTER TABLE queued_work_batches ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queued_work_batches ADD COLUMN error VARCHAR;
ALTER TABLE queued_work_batches ADD COLUMN failed_at_ms BIGINT;
ALTER TABLE queue_history ADD COLUMN attempts BIGINT;"""

# the columns every INSERT names (a newer lash_nb may add columns within this schema version:
# an INSERT without a column list would then fail here, ADR 221)
HISTORY_COLUMNS = (
    "batch_id, session_id, source_key, delivery_policy, slot_policy, enqueue_seq, "
    "enqueued_at_ms, claimed_at_ms, finished_at_ms, final_state, turn_id, enqueued_at, "
    "finished_at, attempts")

BLOBS_DDL = """CREATE TABLE blobs (
    blob_id VARCHAR PRIMARY KEY,
    media_type VARCHAR NOT NULL,
    byte_len BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    data BLOB NOT NULL
);"""


def migrate_3_to_4(con: Any) -> None:
    """Schema 3 -> 4: the ``blobs`` table (attachments); nothing else changes."""
    con.execute(BLOBS_DDL)
    con.execute("UPDATE lash_meta SET value = '4' WHERE key = 'schema_version'")


# version -> the statements (or the step function) that move a file of that version to the
# next one
MIGRATIONS: dict[int, str | Callable[[Any], None]] = {
    1: COMMIT_LOG_DDL + "\nUPDATE lash_meta SET value = '2' WHERE key = 'schema_version';",
    2: QUEUE_ATTEMPTS_DDL + "\nUPDATE lash_meta SET value = '3' WHERE key = 'schema_version';",
    3: migrate_3_to_4,
}

_BUCKETS_DDL = """
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_input_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_output_tokens BIGINT NOT NULL DEFAULT 0"""

DDL = f"""
CREATE SEQUENCE enqueue_seq START 1;
CREATE TABLE lash_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE sessions (
    session_id VARCHAR PRIMARY KEY,
    provider_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    parent_session_id VARCHAR,
    policy JSON NOT NULL,
    head_revision BIGINT NOT NULL,
    leaf_node_id VARCHAR,
    turn_index BIGINT NOT NULL,
    tool_state JSON,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    next_seq BIGINT NOT NULL
);
CREATE TABLE graph_nodes (
    session_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    node_id VARCHAR NOT NULL,
    parent_node_id VARCHAR,
    kind VARCHAR NOT NULL,
    role VARCHAR,
    content JSON NOT NULL,
    created_at TIMESTAMP NOT NULL,
    turn_id VARCHAR,
    tombstoned BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE turns (
    session_id VARCHAR NOT NULL,
    turn_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    outcome VARCHAR,
    stop_reason VARCHAR,
    started_at TIMESTAMP NOT NULL,
    duration_ms DOUBLE,
    commit_hash VARCHAR,
    result JSON,
    seq BIGINT NOT NULL,
    committed_at TIMESTAMP,
    PRIMARY KEY (session_id, turn_id)
);
CREATE TABLE usage_deltas (
    session_id VARCHAR NOT NULL,
    turn_id VARCHAR,
    seq BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    model VARCHAR NOT NULL,{_BUCKETS_DDL},
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE llm_calls (
    session_id VARCHAR NOT NULL,
    turn_id VARCHAR,
    call_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    protocol_iteration BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    duration_ms DOUBLE NOT NULL,
    outcome VARCHAR NOT NULL,
    request_id VARCHAR,
    served_model VARCHAR,
    error VARCHAR,
    error_kind VARCHAR,{_BUCKETS_DDL},
    seq BIGINT NOT NULL
);
CREATE TABLE tool_calls (
    session_id VARCHAR NOT NULL,
    turn_id VARCHAR,
    call_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    args JSON,
    output JSON,
    success BOOLEAN NOT NULL,
    duration_ms DOUBLE NOT NULL,
    started_at TIMESTAMP NOT NULL,
    interrupted BOOLEAN NOT NULL,
    seq BIGINT NOT NULL
);
CREATE TABLE turn_events (
    session_id VARCHAR NOT NULL,
    turn_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    activity_id VARCHAR NOT NULL,
    correlation_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    payload JSON NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE queued_work_batches (
    enqueue_seq BIGINT PRIMARY KEY DEFAULT nextval('enqueue_seq'),
    batch_id VARCHAR NOT NULL UNIQUE,
    session_id VARCHAR NOT NULL,
    source_key VARCHAR,
    delivery_policy VARCHAR NOT NULL,
    slot_policy VARCHAR NOT NULL,
    merge_key VARCHAR,
    available_at_ms BIGINT NOT NULL,
    enqueued_at_ms BIGINT NOT NULL,
    claim_id VARCHAR,
    claim_generation BIGINT NOT NULL DEFAULT 0,
    claimed_at_ms BIGINT,
    items JSON NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    error VARCHAR,
    failed_at_ms BIGINT,
    UNIQUE (session_id, source_key)
);
CREATE TABLE queue_history (
    batch_id VARCHAR NOT NULL,
    session_id VARCHAR NOT NULL,
    source_key VARCHAR,
    delivery_policy VARCHAR NOT NULL,
    slot_policy VARCHAR NOT NULL,
    enqueue_seq BIGINT NOT NULL,
    enqueued_at_ms BIGINT NOT NULL,
    claimed_at_ms BIGINT,
    finished_at_ms BIGINT NOT NULL,
    final_state VARCHAR NOT NULL,
    turn_id VARCHAR,
    enqueued_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    attempts BIGINT
);
CREATE TABLE execution_leases (
    session_id VARCHAR PRIMARY KEY,
    owner_id VARCHAR,
    token VARCHAR,
    fencing BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
{COMMIT_LOG_DDL}
{BLOBS_DDL}
{ADD_COLUMNS_DDL}
INSERT INTO lash_meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


def _pa() -> Any:
    import pyarrow as pa

    return pa


def arrow_schemas() -> dict[str, Any]:
    """Arrow schemas of the row batches a commit inserts (column order = insert order)."""
    pa = _pa()
    ts = pa.timestamp("ms")
    s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    buckets = [
        ("input_tokens", i), ("output_tokens", i), ("cache_read_input_tokens", i),
        ("cache_write_input_tokens", i), ("reasoning_output_tokens", i),
    ]
    return {
        "graph_nodes": pa.schema([
            ("session_id", s), ("seq", i), ("node_id", s), ("parent_node_id", s), ("kind", s),
            ("role", s), ("content", s), ("created_at", ts), ("turn_id", s),
        ]),
        "usage_deltas": pa.schema([
            ("session_id", s), ("turn_id", s), ("seq", i), ("source", s), ("model", s),
            *buckets, ("created_at", ts), ("estimated", b),
        ]),
        "llm_calls": pa.schema([
            ("session_id", s), ("turn_id", s), ("call_id", s), ("model", s),
            ("protocol_iteration", i), ("attempt", i), ("started_at", ts), ("duration_ms", f),
            ("outcome", s), ("request_id", s), ("served_model", s), ("error", s),
            ("error_kind", s), *buckets, ("seq", i), ("estimated", b),
        ]),
        "tool_calls": pa.schema([
            ("session_id", s), ("turn_id", s), ("call_id", s), ("name", s), ("args", s),
            ("output", s), ("success", b), ("duration_ms", f), ("started_at", ts),
            ("interrupted", b), ("seq", i), ("printed", s),
        ]),
        "turn_events": pa.schema([
            ("session_id", s), ("turn_id", s), ("seq", i), ("activity_id", s),
            ("correlation_id", s), ("type", s), ("payload", s), ("created_at", ts),
        ]),
        "turns": pa.schema([
            ("session_id", s), ("turn_id", s), ("status", s), ("outcome", s),
            ("stop_reason", s), ("started_at", ts), ("duration_ms", f), ("commit_hash", s),
            ("result", s), ("seq", i), ("committed_at", ts),
        ]),
        "sessions": pa.schema([
            ("session_id", s), ("provider_id", s), ("model", s), ("parent_session_id", s),
            ("policy", s), ("head_revision", i), ("leaf_node_id", s), ("turn_index", i),
            ("tool_state", s), ("created_at", ts), ("updated_at", ts), ("next_seq", i),
        ]),
    }
