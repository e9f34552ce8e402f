"""Benchmark: usage_frame(by="model") over 1,000,000 usage rows in 1,000 sessions.

Builds a DuckDB store file (one usage delta, one turn and one model call per turn; 1,000
turns per session, 4 models) with SQL on a DuckDB connection of its own, then times
``usage_frame(store, by="model")`` against the identical SQL on an independent DuckDB
connection of the same file (every core, fetched through Arrow into pandas with the frame's
dtypes: the floor returns the very frame usage_frame does, checked), in interleaved rounds
that alternate which side goes first (the store closes while the raw connection reads).
``--by-turn`` adds the row-heavy ``by="turn"`` frame (one row per usage row out).
Goal: ratio <= 1.1.

Run: python -P benchmarks/reports.py [rows] [--by-turn]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from lash_nb._reports import sql
from lash_nb.reports import usage_frame
from lash_nb.stores import DuckDBStore

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
SESSIONS = 1_000

BUILD = f"""
INSERT INTO usage_deltas (session_id, turn_id, seq, source, model, input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_output_tokens, created_at)
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

def timed(fn, repeat: int = 5) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def raw_frame(con, text: str):
    """The floor: the same SQL, Arrow -> pandas, with the frame's documented dtypes
    (naive store timestamps as tz-aware UTC, the cheapest way: pyarrow's own conversion)."""
    import pandas as pd
    import pyarrow as pa

    table = con.sql(text).to_arrow_table()
    utc = {f.type: pd.DatetimeTZDtype(f.type.unit, "UTC") for f in table.schema
           if pa.types.is_timestamp(f.type) and f.type.tz is None}
    return table.to_pandas(types_mapper=utc.get)


def main() -> None:
    import duckdb
    from pandas.testing import assert_frame_equal

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.duckdb")
        DuckDBStore(path).close_sync()  # creates the schema
        t0 = time.perf_counter()
        # store.query only reads (ADR 13): the rows go in through a connection of our own
        con = duckdb.connect(path)
        con.execute(BUILD)
        con.close()
        store = DuckDBStore(path)
        print(f"built {ROWS:,} usage rows, turns and model calls over {SESSIONS:,} sessions "
              f"in {time.perf_counter() - t0:.1f} s")
        same = sql.usage_rollup("model", "", None, "")
        turn_sql = sql.usage_by_turn("", None, "")
        ours: list[float] = []
        ours_turn: list[float] = []
        raw: list[float] = []
        raw_turn: list[float] = []
        frames: dict[str, object] = {}

        def lash_side() -> None:
            # the store holds the file (the warm-up call reopens it after the raw side)
            frames["model"] = usage_frame(store, by="model")
            ours.extend(timed(lambda s=store: usage_frame(s, by="model")))
            if TURN_ROWS:
                frames["turn"] = usage_frame(store, by="turn")
                ours_turn.extend(timed(lambda s=store: usage_frame(s, by="turn"), 2))

        def raw_side() -> None:
            # an independent DuckDB connection (every core), the same SQL and result frame
            raw_con = duckdb.connect(path, read_only=True)
            frames["raw_model"] = raw_frame(raw_con, same)
            raw.extend(timed(lambda c=raw_con: raw_frame(c, same)))
            if TURN_ROWS:
                frames["raw_turn"] = raw_frame(raw_con, turn_sql)
                raw_turn.extend(timed(lambda c=raw_con: raw_frame(c, turn_sql), 2))
            raw_con.close()

        for i in range(args_rounds()):  # alternating which side goes first
            for side in ((lash_side, raw_side) if i % 2 == 0 else (raw_side, lash_side)):
                if side is raw_side:
                    store.close_sync()
                side()
                if side is raw_side:
                    store = DuckDBStore(path)
        m_ours, m_raw = statistics.median(ours), statistics.median(raw)
        print(f"usage_frame(store, by='model'):                 median {m_ours:8.1f} ms")
        print(f"same SQL, independent DuckDB connection:        median {m_raw:8.1f} ms   "
              f"ratio {m_ours / m_raw:.2f} (goal <= 1.1)")
        if TURN_ROWS:
            t_ours, t_raw = statistics.median(ours_turn), statistics.median(raw_turn)
            print(f"usage_frame(store, by='turn') ({ROWS:,} rows out): median {t_ours:8.1f} ms")
            print(f"same SQL, independent connection, Arrow:        median {t_raw:8.1f} ms   "
                  f"ratio {t_ours / t_raw:.2f}")
        frame = usage_frame(store, by="model")
        assert int(frame["turns"].sum()) == ROWS and len(frame) == 4
        store.close_sync()
        # a fair floor: the very frame usage_frame returns (checked after the timing)
        for key in ("model", "turn") if TURN_ROWS else ("model",):
            try:
                assert_frame_equal(frames[key], frames["raw_" + key])
                print(f"by {key}: the raw frame equals usage_frame's (values and dtypes)")
            except AssertionError as e:
                print(f"by {key}: the raw frame differs from usage_frame's: {str(e).splitlines()[0]}")


TURN_ROWS = "--by-turn" in sys.argv


def args_rounds() -> int:
    return 10


if __name__ == "__main__":
    main()
