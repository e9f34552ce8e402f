"""Benchmark: usage_frame(by="model") over 1,000,000 usage rows in 1,000 sessions.

Builds a DuckDB store file (one usage delta, one turn and one model call per turn; 1,000
turns per session, 4 models) with SQL on a DuckDB connection of its own, then times
``usage_frame(store, by="model")`` against raw DuckDB GROUP BY queries fetched as DataFrames
on the same store in the same run:
- "bare": token sums per model over usage_deltas (what the goal names);
- "same": the identical SQL usage_frame runs, fetched directly (the library's own overhead).
Goal: usage_frame under 300 ms and under 1.3x the bare query.

Run: .venv/bin/python benchmarks/reports.py [rows]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

# this folder holds a queue.py that would shadow the standard library's queue module
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

from lash_nb._reports import sql
from lash_nb.reports import usage_frame
from lash_nb.stores import DuckDBStore

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
SESSIONS = 1_000

BUILD = f"""
INSERT INTO usage_deltas
SELECT 's' || (i % {SESSIONS}) AS session_id, 't' || i AS turn_id, i AS seq, 'turn' AS source,
    'model-' || (i % 4) AS model, 100 + i % 50, 20 + i % 7, i % 30, i % 3, i % 5,
    TIMESTAMP '2026-01-01' + to_milliseconds(i * 10)
FROM range({ROWS}) r(i);
INSERT INTO turns (session_id, turn_id, status, outcome, stop_reason, started_at, duration_ms, seq)
SELECT 's' || (i % {SESSIONS}), 't' || i, 'committed', 'finished', 'assistant_message',
    TIMESTAMP '2026-01-01' + to_milliseconds(i * 10), 100.0 + i % 900, i
FROM range({ROWS}) r(i);
INSERT INTO llm_calls (session_id, turn_id, call_id, model, protocol_iteration, attempt,
    started_at, duration_ms, outcome, seq)
SELECT 's' || (i % {SESSIONS}), 't' || i, 't' || i || ':0', 'model-' || (i % 4), 0, 1,
    TIMESTAMP '2026-01-01' + to_milliseconds(i * 10), 50.0, 'completed', i
FROM range({ROWS}) r(i);
"""

BARE = """
SELECT model, sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_read_input_tokens)::BIGINT AS cache_read_input_tokens,
    sum(cache_write_input_tokens)::BIGINT AS cache_write_input_tokens,
    sum(reasoning_output_tokens)::BIGINT AS reasoning_output_tokens
FROM usage_deltas GROUP BY model ORDER BY model
"""


def timed(fn, repeat: int = 7) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.duckdb")
        DuckDBStore(path).close_sync()  # creates the schema
        t0 = time.perf_counter()
        # store.query only reads (ADR 13): the rows go in through a connection of our own
        import duckdb

        con = duckdb.connect(path)
        con.execute(BUILD)
        con.close()
        store = DuckDBStore(path, idle_release_s=None)
        print(f"built {ROWS:,} usage rows, turns and model calls over {SESSIONS:,} sessions "
              f"in {time.perf_counter() - t0:.1f} s")
        same = sql.usage_rollup("model", "", None, "")
        ours = timed(lambda: usage_frame(store, by="model"))
        bare = timed(lambda: store.query(BARE))
        equal = timed(lambda: store.query(same))
        print(f"usage_frame(by='model'):              {ours:8.1f} ms (goal < 300 ms)")
        print(f"raw GROUP BY, token sums only:        {bare:8.1f} ms  ratio {ours / bare:.2f} "
              "(goal < 1.3)")
        print(f"raw DuckDB, same SQL as usage_frame:  {equal:8.1f} ms  ratio {ours / equal:.2f}")
        frame = usage_frame(store, by="model")
        assert int(frame["turns"].sum()) == ROWS and len(frame) == 4
        store.close_sync()


if __name__ == "__main__":
    main()
