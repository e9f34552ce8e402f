"""A lease renewal leaves no row lock behind while its event loop is blocked.

Found under load: ``test_a_session_taken_over_during_the_block_then_released_commits_under_a_
new_lease[postgres]`` (test_runtime_faults.py) hung for its 120 s join and failed when the
loop's heartbeat renewal had sent its UPDATE, but not its COMMIT, as the tool began blocking
the loop. The renewal was BEGIN / UPDATE / COMMIT, three round trips: between them the lease
row stays locked, so a second process taking the session over (``SELECT ... FOR UPDATE``)
waited for as long as the first process' loop was blocked (a sync call in an async tool, a
long GC pause, a debugger). Here the block starts right after the UPDATE's answer, every time.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from lash_nb._store.base import Lease, LeaseBusy

pytestmark = pytest.mark.postgres

# how long the other process may take to get an answer about the lease: a bound on a wait
# that, with the lock held, never ends while this loop is blocked (not a timing assertion)
ANSWER_WITHIN_S = 60.0
TTL_MS = 600_000  # outlasts the block, so the answer is "busy" whenever it comes


class _BlocksAfterTheRenewal:
    """A connection that blocks its event loop once the lease UPDATE has been answered
    (as a tool's ``time.sleep`` would right then), while ``during_block`` runs elsewhere."""

    def __init__(self, con: Any, during_block: Any) -> None:
        self._con = con
        self._during_block = during_block

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    async def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        cur = await self._con.execute(sql, *args, **kwargs)
        if sql.startswith("UPDATE execution_leases SET expires_at_ms"):
            self._during_block()  # blocks this thread, so this loop, until it returns
        return cur


def test_another_process_gets_an_answer_about_the_lease_while_the_renewers_loop_is_blocked(
        pg_dsn: str) -> None:
    from lash_nb._store.postgres import PostgresStore, leases

    mine, theirs = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    answers: list[Lease | LeaseBusy] = []
    during_block: list[Lease | LeaseBusy] = []

    def other_process_asks() -> None:
        asker = threading.Thread(target=lambda: answers.append(
            asyncio.run(theirs.try_acquire_lease("s", "other:1:x"))), daemon=True)
        asker.start()
        asker.join(ANSWER_WITHIN_S)  # the renewer's loop is blocked all this time
        during_block.extend(answers)

    async def body() -> Lease:
        lease = await mine.try_acquire_lease("s", "me:1:x", ttl_ms=TTL_MS)
        assert isinstance(lease, Lease)
        return await mine._run(lambda con: leases.renew(
            _BlocksAfterTheRenewal(con, other_process_asks), lease, TTL_MS))

    try:
        renewed = asyncio.run(body())
        assert len(during_block) == 1, "the other process waited on a lock held by a blocked loop"
        assert isinstance(during_block[0], LeaseBusy)  # renewed: not theirs to take
        assert during_block[0].holder_owner_id == "me:1:x"
        assert renewed.fencing == 1
    finally:
        mine.close_sync()
        theirs.close_sync()
