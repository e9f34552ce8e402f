"""What the text sanitiser (ADR 12) and the read-only SQL check (ADR 13) cost.

- ``clean_text`` / ``clean_json`` per call on the text a turn carries (clean text takes the
  fast path; text with a lone surrogate takes the repair path), and the calls one
  ``benchmarks/turn_overhead.py`` turn makes (prompt, two model responses, one tool call).
- ``user_sql.check`` per ``store.query`` (DuckDB parser, parse tree walk, catalog names), and
  ``store.query`` of a small SELECT end to end.

    python benchmarks/text_and_sql_guards.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import timeit
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
# run as a script, this folder is sys.path[0]; its queue.py would shadow the stdlib module
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from lash_nb._core.text import clean_json, clean_text  # noqa: E402

ASCII_100 = "What is the weather in Paris today? Please answer briefly, in metric units." * 1
ASCII_10K = ("sunny, 21C, wind W 10 km/h; " * 400)[:10_000]
ACCENTED_1K = ("Température à Zürich: 21 °C, 晴れ ✓ " * 40)[:1_000]
BROKEN_1K = ACCENTED_1K[:500] + "\udcff" + ACCENTED_1K[500:]
TOOL_OUTPUT = {"rows": [{"city": "Paris", "temp": 21, "note": "sunny"} for _ in range(20)],
               "source": "weather-api"}


def per_call_us(fn, n: int) -> float:
    best = min(timeit.repeat(fn, number=n, repeat=5))
    return best / n * 1e6


def main() -> None:
    print(f"# text_and_sql_guards: python {platform.python_version()}, {platform.platform()}")
    rows = [
        ("clean_text ascii 100 B", lambda: clean_text(ASCII_100), 200_000),
        ("clean_text ascii 10 KB", lambda: clean_text(ASCII_10K), 50_000),
        ("clean_text non-ascii 1 KB (clean)", lambda: clean_text(ACCENTED_1K), 50_000),
        ("clean_text non-ascii 1 KB (lone surrogate)", lambda: clean_text(BROKEN_1K), 20_000),
        ("clean_json tool output (20 rows)", lambda: clean_json(TOOL_OUTPUT), 20_000),
    ]
    for name, fn, n in rows:
        print(f"{name:45s} {per_call_us(fn, n):8.3f} us")

    from lash_nb._core.llm import LlmPart, LlmResponse, _clean_fields

    call = LlmPart.tool_call("call_x", "get_weather", '{"city": "Paris"}')
    answer = LlmPart.text_part("It is sunny in Paris, 21 degrees.")
    response = LlmResponse(parts=(answer,))

    def one_turn() -> None:  # the cleaning one turn_overhead.py turn does
        clean_text(ASCII_100)  # the prompt (InputItem)
        for part in (call, answer):  # LlmPart: text, call id, tool name, arguments
            _clean_fields(part, ("text", "call_id", "tool_name", "input_json"))
        for _ in range(2):  # two LlmResponse: their ids
            _clean_fields(response, ("request_id", "response_id", "served_model",
                                     "finish_reason"))
        clean_json({"city": "Paris"})  # parsed tool arguments
        clean_json("sunny, 21C, wind W 10 km/h")  # tool output

    print(f"{'sanitising per turn (turn_overhead turn)':45s} "
          f"{per_call_us(one_turn, 20_000):8.3f} us")

    from lash_nb._store import user_sql
    from lash_nb._store.duckdb import DuckDBStore

    query = ("WITH t AS (SELECT session_id, turn_id FROM turns) SELECT turn_id, "
             "row_number() OVER (PARTITION BY session_id ORDER BY turn_id) FROM t")
    print(f"{'user_sql.check (CTE + window), private parser':45s} "
          f"{per_call_us(lambda: user_sql.check(query), 200) / 1000:8.3f} ms")
    with tempfile.TemporaryDirectory() as d:
        store = DuckDBStore(Path(d) / "lash.duckdb", idle_release_s=None)
        try:
            store.query("SELECT 1")
            print(f"{'store.query SELECT 1 end to end (incl. check)':45s} "
                  f"{per_call_us(lambda: store.query('SELECT 1 AS a'), 100) / 1000:8.3f} ms")
            print(f"{'store.query CTE + window end to end':45s} "
                  f"{per_call_us(lambda: store.query(query), 100) / 1000:8.3f} ms")
        finally:
            store.close_sync()


if __name__ == "__main__":
    main()
