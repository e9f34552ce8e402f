-- The lash_nb DuckDB store schema at version 3 as its first release wrote it (commit f0bc168:
-- queue attempts, no blobs table, no usage 'estimated' or tool_calls 'printed' columns),
-- frozen for the migration test. Do not edit: it stands for files written by that version.
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
    model VARCHAR NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_input_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_output_tokens BIGINT NOT NULL DEFAULT 0,
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
    error_kind VARCHAR,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_input_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_output_tokens BIGINT NOT NULL DEFAULT 0,
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
CREATE TABLE commit_log (
    session_id VARCHAR NOT NULL,
    head_revision BIGINT NOT NULL,
    written_at TIMESTAMP NOT NULL,
    body VARCHAR NOT NULL
);
INSERT INTO lash_meta VALUES ('schema_version', '3');
