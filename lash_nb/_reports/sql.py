"""The report SQL, written once against the store schema (``_store/duckdb/schema.py``).

Every query aggregates inside the database; pandas only receives the result.
Sums are cast to BIGINT (DuckDB sums BIGINT into HUGEINT, which pandas cannot hold).
``{sid}`` marks where a session filter (``AND session_id = $sid``) goes.

One text runs on DuckDB (the DuckDB store, and the in-memory database that holds a memory
store's or a trace's rows) and on PostgreSQL: only what both dialects read the same way is
used (no ``GROUP BY ALL``, ``any_value``, ``DOUBLE``, ``make_timestamp`` or
``json_extract_string``; ``epoch_ms(bigint)`` exists in DuckDB and in the PostgreSQL schema).
The two things that differ are the ``dialect`` argument of :func:`tool_calls` and
:func:`graph` (see ADR 24). Text sort keys are ordered ``COLLATE "C"`` (byte order, DuckDB's
own), so a PostgreSQL database with a language collation lists rows in the same order.

Usage rows follow the ledger rule: a delta whose ``total()`` is zero is left out, so a frame
sums to ``SessionUsageReport.usage``. ``estimated`` is true for a group holding any estimated
tokens (a stream cut by a cancel that reported no usage).
"""

from __future__ import annotations

from .._core.usage import BUCKETS

TOTAL = " + ".join(f"u.{b}" for b in BUCKETS[:4])
SUMS = ",\n    ".join(f"sum(u.{b})::BIGINT AS {b}" for b in BUCKETS)
SUM_TOTAL = f"sum({TOTAL})::BIGINT AS total_tokens"
COST = ("CASE WHEN count(*) = count(u.cost) THEN sum(u.cost) END AS cost,\n"
        "    min(u.price_note) AS price_note")

DUCKDB, POSTGRES = "duckdb", "postgres"
C = ' COLLATE "C"'

ROLLUP_KEYS = {
    "model": "u.model",
    "source": "u.source",
    "session": "u.session_id",
    "day": "CAST(date_trunc('day', u.created_at) AS TIMESTAMP)",
}
ROLLUP_NAMES = {"model": "model", "source": "source", "session": "session_id", "day": "day"}


def usage_rows_cte(sid: str, prices: str | None, cost: str, note: str = "NULL") -> str:
    join = f" LEFT JOIN {prices} p ON p.model = u.model" if prices else ""
    cost_col = f", {cost} AS cost, {note} AS price_note" if prices else ""
    return f"""u AS (
    SELECT u.session_id, u.turn_id, u.source, u.model, u.seq, u.created_at, u.estimated,
        {', '.join('u.' + b for b in BUCKETS)}{cost_col}
    FROM usage_deltas u{join}
    WHERE {TOTAL} > 0{sid.replace('session_id', 'u.session_id')}
)"""


def usage_by_turn(sid: str, prices: str | None, cost: str, note: str = "NULL") -> str:
    cost_col = f",\n    {COST}" if prices else ""
    return f"""
WITH {usage_rows_cte(sid, prices, cost, note)},
c AS (
    SELECT session_id, turn_id, model, count(DISTINCT call_id) AS n
    FROM llm_calls WHERE true{sid} GROUP BY session_id, turn_id, model
)
SELECT u.session_id, u.turn_id, u.source, u.model,
    {SUMS},
    {SUM_TOTAL},
    CASE WHEN u.turn_id IS NULL THEN 0 ELSE 1 END::BIGINT AS turns,
    coalesce(bool_or(u.estimated), false) AS estimated,
    coalesce(max(c.n), 0)::BIGINT AS llm_calls,
    max(t.started_at) AS started_at,
    max(t.duration_ms) AS duration_ms{cost_col}
FROM u
LEFT JOIN turns t ON t.session_id = u.session_id AND t.turn_id = u.turn_id
LEFT JOIN c ON c.session_id = u.session_id AND c.turn_id = u.turn_id AND c.model = u.model
    AND u.source = 'turn'
GROUP BY u.session_id, u.turn_id, u.source, u.model
ORDER BY started_at NULLS LAST, u.session_id{C}, min(u.seq), u.source{C}, u.model{C}
"""


def usage_rollup(by: str, sid: str, prices: str | None, cost: str, note: str = "NULL") -> str:
    """One pass over the usage rows, nothing joined but the (tiny) price table.

    ``turns`` counts usage rows that belong to a turn: the runtime writes one usage delta
    per turn and (source, model) with its terminal commit (trace import groups the same
    way), so this is the number of turns whenever one source is present.
    """
    key = ROLLUP_KEYS[by]
    name = ROLLUP_NAMES[by]
    order = key if by == "day" else key + C
    join = f" LEFT JOIN {prices} p ON p.model = u.model" if prices else ""
    cost_col = (
        f",\n    CASE WHEN count(*) = count({cost}) THEN sum({cost}) END AS cost,"
        f"\n    min({note}) AS price_note" if prices else ""
    )
    sums = ",\n    ".join(f"sum(u.{b})::BIGINT AS {b}" for b in BUCKETS)
    return f"""
SELECT {key} AS {name},
    {sums},
    {SUM_TOTAL},
    count(u.turn_id)::BIGINT AS turns,
    coalesce(bool_or(u.estimated), false) AS estimated,
    min(u.created_at) AS started_at{cost_col}
FROM usage_deltas u{join}
WHERE {TOTAL} > 0{sid.replace('session_id', 'u.session_id')}
GROUP BY 1
ORDER BY {order} NULLS LAST
"""


def estimated_flags(sid: str) -> str:
    return f"""
SELECT u.source, u.model, bool_or(coalesce(u.estimated, false)) AS estimated
FROM usage_deltas u WHERE {TOTAL} > 0{sid.replace('session_id', 'u.session_id')}
GROUP BY u.source, u.model
"""


def used_models(sid: str) -> str:
    return f"""
SELECT DISTINCT u.model FROM usage_deltas u
WHERE {TOTAL} > 0{sid.replace('session_id', 'u.session_id')}
ORDER BY 1
"""


def unpriced_models(sid: str, prices: str) -> str:
    return f"""
SELECT DISTINCT u.model FROM usage_deltas u LEFT JOIN {prices} p ON p.model = u.model
WHERE p.model IS NULL AND {TOTAL} > 0{sid.replace('session_id', 'u.session_id')}
ORDER BY 1
"""


def turns(sid: str) -> str:
    return f"""
WITH c AS (
    SELECT session_id, turn_id, count(DISTINCT call_id) AS n FROM llm_calls
    WHERE true{sid} GROUP BY session_id, turn_id
),
tc AS (
    SELECT session_id, turn_id, count(*) AS n,
        count(*) FILTER (WHERE NOT success AND NOT interrupted) AS failed,
        count(*) FILTER (WHERE interrupted) AS cancelled
    FROM tool_calls WHERE true{sid} GROUP BY session_id, turn_id
),
ud AS (
    SELECT session_id, turn_id, sum({TOTAL}) AS total FROM usage_deltas u
    WHERE true{sid} GROUP BY session_id, turn_id
)
SELECT t.session_id, t.turn_id, t.status, t.outcome, t.stop_reason, t.started_at,
    t.duration_ms,
    coalesce(c.n, 0)::BIGINT AS llm_calls,
    coalesce(tc.n, 0)::BIGINT AS tool_calls,
    coalesce(tc.failed, 0)::BIGINT AS failed_tool_calls,
    coalesce(tc.cancelled, 0)::BIGINT AS cancelled_tool_calls,
    coalesce(ud.total, 0)::BIGINT AS total_tokens,
    t.result -> 'errors' -> 0 ->> 'message' AS error,
    t.result -> 'cancellation' ->> 'origin' AS cancelled_by,
    t.result -> 'cancellation' ->> 'reason' AS cancel_reason
FROM turns t
LEFT JOIN c ON c.session_id = t.session_id AND c.turn_id = t.turn_id
LEFT JOIN tc ON tc.session_id = t.session_id AND tc.turn_id = t.turn_id
LEFT JOIN ud ON ud.session_id = t.session_id AND ud.turn_id = t.turn_id
WHERE true{sid.replace('session_id', 't.session_id')}
ORDER BY t.started_at, t.session_id{C}, t.seq
"""


def tool_calls(sid: str, dialect: str = DUCKDB, *, printed: bool = True) -> str:
    """On PostgreSQL ``args`` and ``output`` come back as text (``args_json``,
    ``output_json``) and their size is measured in Python: ``jsonb`` prints JSON with spaces
    and unescaped non-ASCII characters, so its text is not the text lash_nb wrote.
    ``printed=False``: a file written before ``tool_calls.printed`` (ADR 197), opened read-only,
    has no such column; its calls read NULL."""
    if dialect == POSTGRES:
        sizes = "args::text AS args_json, output::text AS output_json"
    else:
        sizes = ("coalesce(strlen(CAST(args AS VARCHAR)), 0)::BIGINT AS args_bytes,\n    "
                 "coalesce(strlen(CAST(output AS VARCHAR)), 0)::BIGINT AS output_bytes")
    return f"""
SELECT session_id, turn_id, call_id, name,
    {sizes},
    success, interrupted,
    CASE WHEN interrupted THEN 'cancelled' WHEN success THEN 'success' ELSE 'failure' END
        AS status,
    started_at, duration_ms, {"printed" if printed else "CAST(NULL AS VARCHAR) AS printed"}
FROM tool_calls WHERE true{sid}
ORDER BY started_at, session_id{C}, seq
"""


def approved_turns(sid: str) -> str:
    """The turn records that hold a tool call's approval (most hold none: skipped unread)."""
    return f"""
SELECT session_id, turn_id, CAST(result AS VARCHAR) AS result FROM turns
WHERE status = 'committed' AND strpos(CAST(result AS VARCHAR), '"approval"') > 0{sid}
"""


def llm_calls(sid: str) -> str:
    return f"""
SELECT session_id, turn_id, call_id, model, protocol_iteration, attempt, started_at,
    duration_ms, outcome, served_model, error_kind, error,
    {', '.join(BUCKETS)},
    ({' + '.join(BUCKETS[:4])})::BIGINT AS total_tokens, coalesce(estimated, false) AS estimated
FROM llm_calls WHERE true{sid}
ORDER BY started_at, session_id{C}, seq
"""


def queue(sid: str) -> str:
    return f"""
WITH live AS (
    SELECT session_id, fencing FROM execution_leases
    WHERE token IS NOT NULL AND expires_at_ms > $now
),
waiting AS (
    SELECT b.session_id, b.batch_id,
        (b.claim_id IS NOT NULL AND l.fencing IS NOT DISTINCT FROM b.claim_generation) AS held,
        b.delivery_policy, b.slot_policy, b.source_key, b.enqueue_seq, b.enqueued_at_ms,
        b.claimed_at_ms, b.available_at_ms, b.attempts, b.error, b.failed_at_ms
    FROM queued_work_batches b LEFT JOIN live l ON l.session_id = b.session_id
    WHERE true{sid.replace('session_id', 'b.session_id')}
),
rows AS (
    SELECT session_id, batch_id,
        CASE WHEN failed_at_ms IS NOT NULL THEN 'failed'
             WHEN held THEN 'claimed' ELSE 'pending' END AS state,
        delivery_policy, slot_policy, source_key, enqueue_seq, enqueued_at_ms,
        CASE WHEN held THEN claimed_at_ms END AS claimed_at_ms,
        failed_at_ms AS finished_at_ms, available_at_ms, NULL::VARCHAR AS turn_id,
        attempts, error
    FROM waiting
    UNION ALL (
        SELECT session_id, batch_id, final_state, delivery_policy, slot_policy, source_key,
            enqueue_seq, enqueued_at_ms, claimed_at_ms, finished_at_ms, NULL::BIGINT, turn_id,
            coalesce(attempts, 0), NULL::VARCHAR
        FROM queue_history WHERE true{sid}
        ORDER BY finished_at_ms DESC, enqueue_seq DESC LIMIT $finished_limit
    )
)
SELECT session_id, batch_id, state, delivery_policy, slot_policy, source_key, enqueue_seq,
    epoch_ms(enqueued_at_ms) AS enqueued_at,
    epoch_ms(claimed_at_ms) AS claimed_at,
    epoch_ms(finished_at_ms) AS finished_at,
    (coalesce(finished_at_ms, $now) - enqueued_at_ms)::DOUBLE PRECISION AS age_ms,
    (claimed_at_ms - enqueued_at_ms)::DOUBLE PRECISION AS wait_ms,
    turn_id, attempts, error
FROM rows
ORDER BY enqueue_seq
"""


def _part_label(field: str, flag: str) -> str:
    """What one part of a message node reads as in the graph: a tool call and a tool result
    say so and name their tool (``(unnamed tool)`` for a call a provider sent without one);
    reasoning and text a stop cut say so. ``field`` reads a part's key as text, ``flag`` tests
    a boolean key."""
    def f(key: str) -> str:
        return field.format(key=key)

    tool = f"coalesce(nullif({f('tool_name')}, ''), '(unnamed tool)')"
    content = f"coalesce({f('content')}, '')"
    cut, failed = flag.format(key="interrupted"), flag.format(key="is_error")
    return (
        f"CASE {f('kind')}"
        f" WHEN 'tool_call' THEN 'call ' || {tool} || ' ' || {content}"
        f" WHEN 'tool_result' THEN {tool} || CASE WHEN {cut} THEN ': '"
        f" WHEN {failed} THEN ' failed: ' ELSE ' returned: ' END || {content}"
        f" WHEN 'reasoning' THEN 'reasoning: ' || {content}"
        f" ELSE CASE WHEN {cut} THEN 'stopped: ' ELSE '' END || {f('content')} END"
    )


# a message's parts as DuckDB structs, read once (a key read per use cost twice as much)
_PARTS = ("json_transform(json_extract(g.content, '$.parts'), '[{\"kind\": \"VARCHAR\", "
          "\"content\": \"VARCHAR\", \"tool_name\": \"VARCHAR\", \"interrupted\": "
          "\"BOOLEAN\", \"is_error\": \"BOOLEAN\"}]')")

# the text of a message node: its parts' labels joined by spaces, cut to 200 characters
_NODE_TEXT = {
    DUCKDB: f"array_to_string([{_part_label('p.{key}', 'p.{key}')} FOR p IN {_PARTS}], ' ')",
    POSTGRES: (
        "coalesce((SELECT string_agg("
        + _part_label("(e.part ->> '{key}')", "(e.part ->> '{key}') = 'true'")
        + ", ' ' ORDER BY e.i) FROM jsonb_array_elements(CASE WHEN jsonb_typeof(g.content -> "
        "'parts') = 'array' THEN g.content -> 'parts' END) WITH ORDINALITY AS e(part, i)), '')"
    ),
}


def graph(sid: str, dialect: str = DUCKDB) -> str:
    return f"""
WITH RECURSIVE path(session_id, node_id) AS (
    SELECT session_id, leaf_node_id FROM sessions
    WHERE leaf_node_id IS NOT NULL{sid}
    UNION
    SELECT g.session_id, g.parent_node_id FROM path p
    JOIN graph_nodes g ON g.session_id = p.session_id AND g.node_id = p.node_id
    WHERE g.parent_node_id IS NOT NULL AND NOT g.tombstoned
)
SELECT g.session_id, g.seq, g.node_id, g.parent_node_id, g.kind, g.role, g.turn_id,
    g.created_at,
    left({_NODE_TEXT[dialect]}, 200) AS text,
    (p.node_id IS NOT NULL) AS on_active_path
FROM graph_nodes g
LEFT JOIN path p ON p.session_id = g.session_id AND p.node_id = g.node_id
WHERE NOT g.tombstoned{sid.replace('session_id', 'g.session_id')}
ORDER BY g.session_id{C}, g.seq
"""
