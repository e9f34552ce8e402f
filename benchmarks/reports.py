"""Benchmark: usage_frame(by="model") over 1,000,000 usage rows in 1,000 sessions.

Builds a DuckDB store file (one usage delta, one turn and one model call per turn; 1,000
turns per session, 4 models) with SQL on a DuckDB connection of its own, then times
``usage_frame(store, by="model")`` against the identical SQL on an independent DuckDB
connection of a byte copy of the file (every core, fetched through Arrow into pandas with
the frame's dtypes: the floor returns the very frame usage_frame does, checked), call by call,
the order rotating from round to round, after a few untimed calls per side (a copy: the store
holds its own file while it is open, so both stay open and the machine's load drifts over both
alike). Medians of 300 rounds by model (60 were too few on a shared 2-core machine), and the
median of the per-round ratios beside them.
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


def sent_sql(store, by: str) -> str:
    """The SQL text ``usage_frame(store, by=by)`` sends to the store (the floor runs the very
    same text): caught on the store's query entry, whichever one this checkout's reports use."""
    sent: list[str] = []
    for name in ("query", "_report_frame"):
        method = getattr(store, name, None)
        if method is not None:
            setattr(store, name, lambda text, *a, _m=method, **k: sent.append(text) or _m(text, *a, **k))
    try:
        usage_frame(store, by=by)
    finally:
        for name in ("query", "_report_frame"):
            store.__dict__.pop(name, None)
    assert len(sent) == 1, sent
    return sent[0]


def main() -> None:
    import shutil

    import duckdb
    from pandas.testing import assert_frame_equal

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.duckdb")
        DuckDBStore(path).close_sync()  # creates the schema
        t0 = time.perf_counter()
        # store.query only reads (ADR 13): the rows go in through a connection of our own
        con = duckdb.connect(path)
        con.execute(BUILD)
        con.close()  # checkpointed: the file holds every row, no .wal
        copy = os.path.join(d, "raw.duckdb")
        shutil.copyfile(path, copy)  # the floor reads the same bytes on a file of its own
        print(f"built {ROWS:,} usage rows, turns and model calls over {SESSIONS:,} sessions "
              f"in {time.perf_counter() - t0:.1f} s")
        store = DuckDBStore(path)
        same, turn_sql = sent_sql(store, "model"), sent_sql(store, "turn")
        plain = sql.usage_rollup("model", "", None, "")
        raw_con = duckdb.connect(copy, read_only=True)  # an independent connection, every core
        frames = {"model": usage_frame(store, by="model"), "raw_model": raw_frame(raw_con, same)}
        times: dict[str, list[float]] = {"ours": [], "raw": [], "ours_turn": [], "raw_turn": []}
        sides = {"ours": lambda: usage_frame(store, by="model"), "raw": lambda: raw_frame(raw_con, same),
                 "ours_turn": lambda: usage_frame(store, by="turn"),
                 "raw_turn": lambda: raw_frame(raw_con, turn_sql)}

        cpu: dict[str, list[float]] = {}  # process CPU (every thread) per call

        def alternate(keys: list[str], rounds: int, warmup: int) -> None:
            for key in keys:  # untimed: each side's first calls (threads, caches) warm up
                for _ in range(warmup):
                    sides[key]()
            for i in range(rounds):  # call by call, the order rotating from round to round
                for key in keys[i % len(keys):] + keys[:i % len(keys)]:
                    c0 = time.process_time()
                    times[key] += timed(sides[key], 1)
                    cpu.setdefault(key, []).append((time.process_time() - c0) * 1000)

        model_sides = ["ours", "raw"]
        if plain != same:  # the floor of the first measurement, for comparison
            sides["raw_plain"], times["raw_plain"] = (lambda: raw_frame(raw_con, plain)), []
            model_sides.append("raw_plain")
        alternate(model_sides, MODEL_ROUNDS, WARMUP)
        if TURN_ROWS:
            frames["turn"], frames["raw_turn"] = sides["ours_turn"](), sides["raw_turn"]()
            alternate(["ours_turn", "raw_turn"], TURN_ROUNDS, 0)  # warmed by the frames above
        m_ours, m_raw = statistics.median(times["ours"]), statistics.median(times["raw"])
        print(f"usage_frame(store, by='model'):                 median {m_ours:8.1f} ms")
        print(f"same SQL, independent DuckDB connection:        median {m_raw:8.1f} ms   "
              f"ratio {m_ours / m_raw:.2f} (goal <= 1.1)")
        paired = statistics.median(o / r for o, r in zip(times["ours"], times["raw"], strict=True))
        print(f"  per round (the two calls of one round side by side): median ratio {paired:.2f} "
              f"over {MODEL_ROUNDS} rounds")
        c_ours, c_raw = statistics.median(cpu["ours"]), statistics.median(cpu["raw"])
        print(f"  process CPU per call (all threads; moves less with the machine's load): "
              f"usage_frame {c_ours:.1f} ms, same SQL raw {c_raw:.1f} ms, ratio {c_ours / c_raw:.2f}")
        if times.get("raw_plain"):
            print(f"  (the roll-up without usage_frame's child-row filter, raw: median "
                  f"{statistics.median(times['raw_plain']):.1f} ms; no child rows here)")
        if TURN_ROWS:
            t_ours, t_raw = statistics.median(times["ours_turn"]), statistics.median(times["raw_turn"])
            print(f"usage_frame(store, by='turn') ({ROWS:,} rows out): median {t_ours:8.1f} ms")
            print(f"same SQL, independent connection, Arrow:        median {t_raw:8.1f} ms   "
                  f"ratio {t_ours / t_raw:.2f}")
        frame = usage_frame(store, by="model")
        assert int(frame["turns"].sum()) == ROWS and len(frame) == 4
        store.close_sync()
        raw_con.close()
        # a fair floor: the very frame usage_frame returns (checked after the timing)
        for key in ("model", "turn") if TURN_ROWS else ("model",):
            try:
                assert_frame_equal(frames[key], frames["raw_" + key])
                print(f"by {key}: the raw frame equals usage_frame's (values and dtypes)")
            except AssertionError as e:
                print(f"by {key}: the raw frame differs from usage_frame's: {str(e).splitlines()[0]}")


TURN_ROWS = "--by-turn" in sys.argv
# one call per side per round. 60 rounds (~1 s at 200,000 rows) left the median ratio at the
# mercy of a few busy seconds of the shared machine: it read 1.03 to 1.18 from run to run
MODEL_ROUNDS = 300
TURN_ROUNDS = 20  # one frame of a million rows per side per round
WARMUP = 5  # untimed calls per side before the rounds


if __name__ == "__main__":
    main()
