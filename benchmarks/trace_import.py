"""Benchmark: importing a lash trace of 200,000 records (``reports.read_lash_trace``).

Writes a schema-2 trace (turns with one model call and one tool call each: six records per
turn, 50 sessions, 4 models) to a temporary file, then times the DuckDB import (what
``read_lash_trace`` does: ``read_ndjson_objects`` and SQL) and the line-by-line Python reader
(the reference, kept to say why a line is bad), each followed by ``usage_frame(by="model")``,
and checks that both give the same usage. Prints records/s for both.

Run: python -P benchmarks/trace_import.py [records]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from lash_nb._reports.trace import _read_in_python
from lash_nb.reports import read_lash_trace, usage_frame

RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000


def write_trace(path: str, n: int) -> int:
    written = 0
    with open(path, "w") as out:
        turn = 0
        while written < n:
            sid, tid, cid = f"s{turn % 50}", f"t{turn}", f"s{turn % 50}:{turn}:0:1"
            clock = f"2026-03-01T{(turn // 3600) % 24:02d}:{(turn // 60) % 60:02d}:{turn % 60:02d}"
            ctx = {"session_id": sid, "turn_id": tid}
            call = {**ctx, "protocol_iteration": 0, "llm_call_id": cid}
            for rec in (
                {"type": "turn_started", "timestamp": f"{clock}.000Z", "context": {**ctx, "turn_index": turn}},
                {"type": "llm_call_started", "timestamp": f"{clock}.100Z", "context": call,
                 "request": {"model": f"m{turn % 4}", "stream": True,
                             "messages": [{"role": "user", "blocks": [{"kind": "text", "text": "hello " * 8}]}]}},
                {"type": "llm_call_completed", "timestamp": f"{clock}.400Z", "context": call,
                 "response": {"text": "answer", "duration_ms": 300},
                 "usage": {"input_tokens": 100 + turn % 7, "output_tokens": 20,
                           "cache_read_input_tokens": 5, "cache_write_input_tokens": 0,
                           "reasoning_output_tokens": 1}},
                {"type": "tool_call_started", "timestamp": f"{clock}.450Z", "context": ctx,
                 "call_id": f"c{turn}", "name": "search", "args": {"q": "duck"}},
                {"type": "tool_call_completed", "timestamp": f"{clock}.490Z", "context": ctx,
                 "call_id": f"c{turn}", "name": "search", "args": {"q": "duck"},
                 "output": {"outcome": {"status": "success", "payload": "3 hits"}}, "duration_ms": 40},
                {"type": "turn_completed", "timestamp": f"{clock}.500Z", "context": ctx,
                 "status": "completed", "done_reason": "assistant_message"},
            ):
                written += 1
                out.write(json.dumps({"schema_version": 2, "id": f"r{written}", **rec}) + "\n")
            turn += 1
    return written


def timed(read, path: str) -> tuple[float, object]:
    t0 = time.perf_counter()
    trace = read(path)
    frame = usage_frame(trace, by="model")
    return time.perf_counter() - t0, frame


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.jsonl")
        n = write_trace(path, RECORDS)
        size = os.path.getsize(path) / 2**20
        print(f"{n} records, {size:.1f} MiB")
        warm = os.path.join(d, "warm.jsonl")  # imports (duckdb, pyarrow, pandas) are not timed
        write_trace(warm, 60)
        timed(read_lash_trace, warm)
        timed(_read_in_python, warm)
        duck_s, duck = timed(read_lash_trace, path)
        print(f"DuckDB (read_ndjson_objects + SQL): {duck_s:6.2f} s  {n / duck_s:10,.0f} records/s")
        py_s, py = timed(_read_in_python, path)
        print(f"Python (line by line):              {py_s:6.2f} s  {n / py_s:10,.0f} records/s")
        same = duck[["model", "input_tokens", "output_tokens"]].equals(
            py[["model", "input_tokens", "output_tokens"]])
        print(f"same usage by model: {same}; DuckDB is {py_s / duck_s:.1f}x faster")


if __name__ == "__main__":
    main()
