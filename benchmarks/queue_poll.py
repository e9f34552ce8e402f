"""An idle worker's poll (``sessions_with_ready_work``) against the queue's size (issue 21,
ADR 218), PostgreSQL and DuckDB, in one run.

The queue of a team whose workers have run for weeks, N rows (1,000 / 10,000 / 100,000 by
default), none of them what an idle worker is looking for: half are reports scheduled for
tomorrow over 2,000 sessions, a quarter are batches parked after they failed (over the same
sessions), a quarter are the backlog of one bulk job whose head a worker has claimed under its
live lease. Three sessions have one batch ready each. The poll answers ``bulk`` (the backlog
behind its claimed head is ready) and the three.

Rows are written with SQL (``generate_series``; enqueueing 100,000 through lash would take
minutes), then ``VACUUM ANALYZE`` (PostgreSQL). Medians of interleaved rounds, ms, with in each
round on the same data:

- PostgreSQL, **main**: main's poll statement (copied below from 7b5326c) on a database as
  main leaves it (ADR 207's indexes, not this ADR's); **new**: ``PostgresStore.
  sessions_with_ready_work()``; **raw**: this lash_nb's statement sent with psycopg on a plain
  autocommit connection, prepared (the floor for the store's path; the store's connections
  prepare a statement at its fifth use, so main's statement is prepared here too);
  **SELECT 1**: one round trip; main's statement again on a connection with ``jit = off``
  (PostgreSQL compiles a plan whose estimated cost passes ``jit_above_cost``, 100,000 by
  default: main's poll did at 100,000 rows). Plus the rows each statement visits (``EXPLAIN
  ANALYZE``: rows returned and thrown away by its scans of ``queued_work_batches``, over all
  loops).
- The other end (``--ready-sessions``, 2,000): every session ready, one batch each and nothing
  else, where main's one scan is the shortest way and this lash_nb steps session by session.
- DuckDB: ``DuckDBStore.sessions_with_ready_work()`` with the file held (a worker that keeps
  it), its statement on a plain ``duckdb`` connection to a copy of the file (the floor), and
  the poll after ``release_file()`` (what an idle ``lash_nb worker`` does between its polls:
  the file is opened again).

    python benchmarks/queue_poll.py [--rounds 7] [--sizes 1000,10000,100000]
        [--ready-sessions 2000] [--pg DSN]

Without ``--pg`` a throwaway server is started (tests/pg_fixture.py, fsync off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from typing import Any

import duckdb
import psycopg

from lash_nb._store.duckdb.queued_work import POLL_SQL as DUCK_POLL_SQL
from lash_nb._store.postgres.queued_work import POLL_SQL
from lash_nb.stores import DuckDBStore, PostgresStore

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from pg_plans import rows_visited

# main 7b5326c's statement (lash_nb/_store/postgres/queued_work.py)
MAIN_POLL_SQL = """
SELECT b.session_id FROM queued_work_batches b
WHERE b.available_at_ms <= lash_now_ms() AND b.failed_at_ms IS NULL
    AND NOT (b.claim_id IS NOT NULL AND b.claim_generation IS NOT DISTINCT FROM
        (SELECT fencing FROM execution_leases l WHERE l.session_id = b.session_id
         AND l.token IS NOT NULL AND l.expires_at_ms > lash_now_ms()))
GROUP BY b.session_id ORDER BY min(b.enqueue_seq)
"""
THIS_PROCESS_INDEXES = ("queued_work_at_once", "queued_work_scheduled")
EXPECTED = ["bulk", "c", "a", "b"]
DAY_MS = 86_400_000


def _rows(n: int, now: int, pg: bool) -> list[tuple[str, dict[str, Any]]]:
    """(SQL, params) that fill the queue: PostgreSQL's (``%(x)s``) or DuckDB's (``$x``)."""
    def v(name: str) -> str:
        return f"%({name})s" if pg else f"${name}"

    cols = ("batch_id, session_id, delivery_policy, slot_policy, available_at_ms, "
            "enqueued_at_ms, items, failed_at_ms, claim_id, claim_generation, attempts")
    gen = (f"INSERT INTO queued_work_batches ({cols}) SELECT {v('tag')} || g, {{sid}}, "
           f"'after_current_turn_commit', 'exclusive', {v('av')}, {v('now')}, "
           f"'[]'{'::jsonb' if pg else ''}, {v('failed')}, {v('claim')}, {v('gen')}, "
           f"{v('att')} FROM generate_series(1, {v('n')}) AS t(g)")
    base = {"now": now, "av": 0, "failed": None, "claim": None, "gen": 0, "att": 0}
    per = "'report' || (g %% 2000)" if pg else "'report' || (g % 2000)"
    out = [
        # the bulk job's head, claimed by the worker draining it (live lease, fencing 1)
        (gen.format(sid="'bulk'"), {**base, "tag": "head", "n": 1, "claim": "c1", "gen": 1,
                                    "att": 1}),
        (gen.format(sid="'bulk'"), {**base, "tag": "bulk", "n": n // 4}),
        (gen.format(sid=per), {**base, "tag": "later", "n": n // 2, "av": now + DAY_MS}),
        (gen.format(sid=per), {**base, "tag": "parked", "n": n // 4, "failed": now,
                               "att": 3}),
    ]
    out += [(gen.format(sid=f"'{s}'"), {**base, "tag": s, "n": 1}) for s in ("c", "a", "b")]
    lease = (f"INSERT INTO execution_leases VALUES ('bulk', 'host:1:w', 'tok', 1, {v('until')})",
             {"until": now + DAY_MS})
    return [*out, lease]


def _pg_filled(admin: str, as_main: bool,
               statements: list[tuple[str, dict[str, Any]]]) -> str:
    """A fresh database with lash's schema (as main leaves it: without this ADR's indexes),
    ``statements`` run, then ``VACUUM ANALYZE``; returns its DSN."""
    name = f"lash_poll_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.rsplit("/", 1)[0] + "/" + name
    PostgresStore(dsn).close_sync()
    with psycopg.connect(dsn, autocommit=True) as c:
        if as_main:
            for idx in THIS_PROCESS_INDEXES:
                c.execute(f"DROP INDEX {idx}")
        for q, p in statements:
            c.execute(q, p)
        c.execute("VACUUM ANALYZE queued_work_batches")
    return dsn


def _pg_database(admin: str, n: int, as_main: bool) -> str:
    return _pg_filled(admin, as_main, _rows(n, int(time.time() * 1000), pg=True))


def _pg_all_ready(admin: str, sessions: int, as_main: bool) -> str:
    """Every session ready: ``sessions`` sessions with one batch each, nothing else."""
    q, p = _rows(sessions, int(time.time() * 1000), pg=True)[3]  # the parked rows' statement
    return _pg_filled(admin, as_main, [(  # made ready, one session each
        q.replace("'report' || (g %% 2000)", "'s' || g"),
        {**p, "tag": "r", "n": sessions, "failed": None, "att": 0})])


def _duck_file(folder: str, n: int) -> str:
    path = os.path.join(folder, f"poll_{n}.duckdb")
    DuckDBStore(path).close_sync()
    now = int(time.time() * 1000)
    con = duckdb.connect(path)
    for q, p in _rows(n, now, pg=False):
        con.execute(q, p)
    con.execute("CHECKPOINT")
    con.close()
    return path


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _statements(best: defaultdict[str, float], runs: Any) -> None:
    """Each (label, connection, SQL) run once, prepared; ``best`` keeps each label's least."""
    for label, con, sql in runs:
        t0 = time.perf_counter()
        con.execute(sql, prepare=True).fetchall()
        best[label] = min(best[label], _ms(t0))


async def _run(args: argparse.Namespace) -> None:
    admin = args.pg
    if admin is None:
        from pg_fixture import shared_server

        admin = shared_server().dsn
    sizes = [int(s) for s in args.sizes.split(",")]
    with psycopg.connect(admin) as c:
        row0 = c.execute("SELECT current_setting('jit') || ', available: ' || "
                         "pg_jit_available() || ', server ' || version()").fetchone()
        jit = str(row0[0] if row0 else "?")[:90]
    folder = tempfile.mkdtemp(prefix="lash-poll-")
    res: defaultdict[str, list[float]] = defaultdict(list)
    visited: dict[str, int] = {}
    try:
        setups = {}
        for n in sizes:
            old, new = _pg_database(admin, n, True), _pg_database(admin, n, False)
            duck = _duck_file(folder, n)
            duck_copy = duck + ".copy.duckdb"
            shutil.copy(duck, duck_copy)
            store = PostgresStore(new)
            dstore = DuckDBStore(duck, idle_release_s=None)
            for label, dsn, sql in (("main", old, MAIN_POLL_SQL), ("new", new, POLL_SQL)):
                with psycopg.connect(dsn) as c:
                    (plan,) = c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchone()
                    visited[f"{label} {n}"] = rows_visited(
                        (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
                    got = [r[0] for r in c.execute(sql).fetchall()]
                    assert got == EXPECTED, (label, n, got)
            assert await store.sessions_with_ready_work() == EXPECTED
            assert await dstore.sessions_with_ready_work() == EXPECTED
            setups[n] = (old, new, store, dstore, duckdb.connect(duck_copy, read_only=True))
        ready = args.ready_sessions
        r_old, r_new = _pg_all_ready(admin, ready, True), _pg_all_ready(admin, ready, False)
        r_store = PostgresStore(r_new)
        for label, dsn, sql in (("ready main", r_old, MAIN_POLL_SQL),
                                ("ready new", r_new, POLL_SQL)):
            with psycopg.connect(dsn) as c:
                (plan,) = c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchone()
                visited[label] = rows_visited(
                    (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
                assert len(c.execute(sql).fetchall()) == ready
        for _ in range(args.rounds):
            with psycopg.connect(r_old, autocommit=True) as c_old, \
                    psycopg.connect(r_new, autocommit=True) as c_new:
                best_r: defaultdict[str, float] = defaultdict(lambda: float("inf"))
                for _ in range(3):
                    _statements(best_r, (("main", c_old, MAIN_POLL_SQL), ("raw", c_new, POLL_SQL)))
                    t0 = time.perf_counter()
                    await r_store.sessions_with_ready_work()
                    best_r["new"] = min(best_r["new"], _ms(t0))
                for k, v in best_r.items():
                    res[f"ready {k}"].append(v)
            for n, (old, new, store, dstore, dcon) in setups.items():
                with psycopg.connect(old, autocommit=True) as c_old, \
                        psycopg.connect(new, autocommit=True) as c_new, \
                        psycopg.connect(old, autocommit=True, options="-c jit=off") as c_nojit:
                    best: defaultdict[str, float] = defaultdict(lambda: float("inf"))
                    for _ in range(3):  # the best of 3 per round (cache warm), then medians
                        _statements(best, (("main", c_old, MAIN_POLL_SQL),
                                           ("main nojit", c_nojit, MAIN_POLL_SQL),
                                           ("raw", c_new, POLL_SQL),
                                           ("SELECT 1", c_new, "SELECT 1")))
                        t0 = time.perf_counter()
                        await store.sessions_with_ready_work()
                        best["new"] = min(best["new"], _ms(t0))
                        t0 = time.perf_counter()
                        await dstore.sessions_with_ready_work()
                        best["duck"] = min(best["duck"], _ms(t0))
                        await dstore.release_file()  # an idle worker lets notebooks in
                        t0 = time.perf_counter()
                        await dstore.sessions_with_ready_work()
                        best["duck reopen"] = min(best["duck reopen"], _ms(t0))
                        t0 = time.perf_counter()
                        dcon.execute(DUCK_POLL_SQL, {"t": int(time.time() * 1000),
                                                     "marked": []}).fetchall()
                        best["duck raw"] = min(best["duck raw"], _ms(t0))
                    for k, v in best.items():
                        res[f"{k} {n}"].append(v)
        print(f"rows in queued_work_batches: {' / '.join(f'{n:,}' for n in sizes)}; "
              f"medians of {args.rounds} rounds, ms")

        def row(name: str, key: str) -> None:
            print(f"  {name:42s}" + " / ".join(
                f"{statistics.median(res[f'{key} {n}']):8.2f}" for n in sizes))

        row("PostgreSQL poll, main's statement", "main")
        row("  the same with jit = off", "main nojit")
        row("PostgreSQL poll, PostgresStore (new)", "new")
        row("PostgreSQL poll, new statement raw psycopg", "raw")
        row("PostgreSQL SELECT 1 round trip", "SELECT 1")
        row("DuckDB poll, DuckDBStore (file held)", "duck")
        row("DuckDB poll, its statement raw duckdb", "duck raw")
        row("DuckDB poll after release_file (reopen)", "duck reopen")
        print(f"  server: jit {jit}")
        for label in ("main", "new"):
            print(f"  rows visited, {label:34s}" + " / ".join(
                f"{visited[f'{label} {n}']:8d}" for n in sizes))
        print(f"every session ready ({ready:,} sessions, one batch each, nothing else), ms:")
        print("  PostgreSQL poll, main's statement / PostgresStore (new) / new statement raw: "
              + " / ".join(f"{statistics.median(res[f'ready {k}']):.2f}"
                           for k in ("main", "new", "raw")))
        print(f"  rows visited, main / new: {visited['ready main']} / {visited['ready new']}")
        await r_store.close()
        for _old, _new, store, dstore, dcon in setups.values():
            await store.close()
            await dstore.close()
            dcon.close()
        with psycopg.connect(admin, autocommit=True) as c:
            for dsn in (r_old, r_new, *(d for st in setups.values() for d in st[:2])):
                c.execute(f'DROP DATABASE "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--ready-sessions", type=int, default=2000)
    p.add_argument("--pg", default=None, help="DSN of a maintenance database (postgres)")
    asyncio.run(_run(p.parse_args()))


if __name__ == "__main__":
    main()
