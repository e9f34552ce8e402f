"""Queries that overlap on one PostgreSQL store each get their answer, while a turn commits
(ADR 199). A guard, not a reproduction: the report was a misleading "lost the connection"
error for two concurrent queries, as psycopg runs one query at a time on a connection; it did
not reproduce on this code, whose every call borrows a connection of its own from a pool (the
io loop's for queries, the kernel loop's for a turn's commits) and waits for a free one past
the pool's size.

In a kernel: a ``%%lash --background`` turn streams and commits while one cell gathers three
``%lash sql`` run as background tasks (the magic called from a function) and the store's own
``query_async`` and ``query_head_async``, each query sleeping so that they overlap.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

GATHER = '''
import asyncio
def sql(q):  # the magic called from a function: a background task, as an impatient user gets
    return get_ipython().run_line_magic("lash", "sql " + q)
store = {MAGICS}.ctx.bindings["shared"].core.store
slow = "SELECT pg_backend_pid() AS pid, {n} AS n, pg_sleep(0.4) IS NULL AS slept"
got = await asyncio.gather(sql(slow.format(n=1)), sql(slow.format(n=2)), sql(slow.format(n=3)),
                           store.query_async(slow.format(n=4)),
                           store.query_head_async(slow.format(n=5), 1))
frames = [*got[:4], got[4][0]]
print([int(f["n"].iloc[0]) for f in frames], len({{int(f["pid"].iloc[0]) for f in frames}}))
'''
MAGICS = "get_ipython().magics_manager.registry['LashMagics']"


@pytest.mark.slow  # a real kernel and a PostgreSQL server
def test_overlapping_queries_on_one_store_each_answer_while_a_turn_commits(
        pg_dsn: str, tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(f"%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02\ndsn = {pg_dsn!r}")
        k.run("%lash open shared --store {dsn}")
        k.run("%lash turn a first question")
        k.run("t = %lash turn --background " + "tell me about the warehouse " * 20)
        ex = k.run(GATHER.format(MAGICS=MAGICS, n="{n}"))
        answers = ex.stdout.strip().splitlines()[-1]
        # five answers in order, on four connections: the pool for queries holds four
        # (PostgresStore's pool_size), so the fifth query waited for a free one
        assert answers == "[1, 2, 3, 4, 5] 4", ex.stdout
        k.run("r = await t\nprint(r.outcome)")
        rows = k.run("df = %lash sql SELECT count(*) AS n FROM turns WHERE session_id = "
                     "'shared' AND status = 'committed'\nprint(int(df['n'].iloc[0]))")
        assert rows.stdout.strip().splitlines()[-1] == "2"  # both turns stored, once each
