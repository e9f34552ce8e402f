-- The lash_nb DuckDB store schema at version 3 as its first lash_nb wrote it (commit f0bc168:
-- queue attempts; no blobs table, no usage 'estimated' nor tool_calls 'printed' columns),
-- frozen for the migration test; run after duckdb_schema_v2.sql. f0bc168's CREATE TABLEs
-- give the same columns (names, order, types, defaults) and constraints as v2's plus these
-- (compared with duckdb_columns() and duckdb_constraints()). Do not edit.
ALTER TABLE queued_work_batches ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queued_work_batches ADD COLUMN error VARCHAR;
ALTER TABLE queued_work_batches ADD COLUMN failed_at_ms BIGINT;
ALTER TABLE queue_history ADD COLUMN attempts BIGINT;
UPDATE lash_meta SET value = '3' WHERE key = 'schema_version';
