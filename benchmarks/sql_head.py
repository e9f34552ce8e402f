"""What a bare ``%lash sql`` costs to read its head and count (ADR 192) beside the way it did
it before (ADR 186): the query with a ``LIMIT``, then once more as a ``count(*)``.

Both run on one DuckDB connection in this process, in the same order each round, and the
median of a few rounds is printed per query shape:

- a heavy aggregate (its work is in the aggregate: two runs cost about twice one);
- many narrow rows (the count reads no column; streaming them costs their Arrow batches);
- many wide rows (the same, with a 100-character text column).

    python benchmarks/sql_head.py
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import duckdb  # noqa: E402

from lash_nb._store.duckdb.user_query import _head  # noqa: E402

ROWS = 50
QUERIES = {
    "aggregate (20M rows -> 1000 groups)":
        "SELECT i % 1000 AS k, sum(i * i) AS s, count(DISTINCT i % 7919) AS d "
        "FROM range(20000000) t(i) GROUP BY k",
    "5M narrow rows": "SELECT i FROM range(5000000) t(i)",
    "2M wide rows": "SELECT i, repeat('x', 100) AS t FROM range(2000000) t(i)",
}


def before(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rel = con.sql(sql)
    table = rel.limit(ROWS).to_arrow_table()
    return (table.num_rows if table.num_rows < ROWS
            else int(rel.aggregate("count(*)").fetchall()[0][0]))


def now(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return _head(con.sql(sql), ROWS)[1]


def main(rounds: int = 5) -> None:
    con = duckdb.connect()
    print(f"python {platform.python_version()}, duckdb {duckdb.__version__}, "
          f"{os.cpu_count()} cpus; median of {rounds} rounds, {ROWS} rows kept")
    for name, sql in QUERIES.items():
        times: dict[str, list[float]] = {"before (LIMIT + count)": [], "now (one run)": []}
        counts = set()
        for _ in range(rounds):
            for label, read in (("before (LIMIT + count)", before), ("now (one run)", now)):
                t0 = time.perf_counter()
                counts.add(read(con, sql))
                times[label].append(time.perf_counter() - t0)
        assert len(counts) == 1, counts
        cells = ", ".join(f"{k}: {statistics.median(v) * 1000:.0f} ms" for k, v in times.items())
        print(f"{name}: {cells}")


if __name__ == "__main__":
    main()
