"""A team's PostgreSQL goes away and comes back under a notebook session, as it does for
maintenance (``pg_ctl restart``, ``pg_ctl stop -m fast`` then start) or when an admin ends
lash's connections (``pg_terminate_backend``). Each test runs a server of its own
(``own_pg_server``: own data dir and port) so it can restart it.

Before docs/adr/0170 the first store call of each pooled connection after a restart failed
with psycopg's ``AdminShutdown`` traceback (a ``%%lash`` turn, ``%lash sql``, the usage
frame, the queue panel), and a lost COMMIT answer surfaced as a raw ``OperationalError``.

What is counted (turn rows, user messages) is read with a connection of the test's own,
not through lash_nb.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from notebook_harness import lash_shell, wait_until
from pg_faults import CommitEater
from pg_fixture import PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _go_away(server: PgServer, dsn: str, how: str) -> None:
    if how == "restart":
        server.restart()
    elif how == "stop_start":
        server.halt()
        server.start()
    else:
        assert server.terminate_backends(dsn.rsplit("/", 1)[1]) >= 1


def _rows(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute(sql, params).fetchall()


def _turns(dsn: str) -> list[tuple[str, str]]:
    return [(t, s) for t, s in _rows(
        dsn, "SELECT turn_id, status FROM turns WHERE session_id = 's' ORDER BY seq")]


def _prompts(dsn: str, text: str) -> int:
    """How many user messages of session ``s`` hold ``text``."""
    return int(_rows(dsn, "SELECT count(*) FROM graph_nodes WHERE session_id = 's' AND "
                          "role = 'user' AND content::text LIKE %s", [f"%{text}%"])[0][0])


@pytest.mark.parametrize("how", ["restart", "stop_start", "terminate"])
def test_a_notebook_goes_on_after_the_server_went_away_between_cells(
        own_pg_server, tmp_path, monkeypatch, how):
    dsn = own_pg_server.create_database()
    with lash_shell(tmp_path, monkeypatch, f"%lash open s --store {dsn}",
                    "%%lash\nfirst question", "%lash enqueue a question for later") as sh:
        _go_away(own_pg_server, dsn, how)
        sh.run_cell("%%lash\nsecond question")
        _go_away(own_pg_server, dsn, how)
        frame = sh.run_cell("%lash sql SELECT count(*) AS n FROM turns WHERE status = 'committed'")
        _go_away(own_pg_server, dsn, how)
        usage = sh.run_cell("%lash usage")
        _go_away(own_pg_server, dsn, how)
        panel = sh.run_cell("%lash queue")
        text = sh.ip.display_formatter.format(panel)[0]["text/plain"]
    assert int(frame["n"][0]) == 2
    stored = _rows(dsn, "SELECT sum(input_tokens + output_tokens) FROM usage_deltas")[0][0]
    assert int(usage["total_tokens"].sum()) == int(stored) > 0  # both turns' usage
    assert _rows(dsn, "SELECT count(DISTINCT turn_id) FROM usage_deltas")[0][0] == 2
    assert text.startswith("1 pending batch(es)"), text
    assert "a question for later" in text
    assert [s for _, s in _turns(dsn)] == ["committed", "committed"]
    assert _prompts(dsn, "second question") == 1


@pytest.mark.parametrize("how", ["restart", "stop_start"])
def test_a_turn_whose_server_goes_away_while_the_model_streams_commits_once(
        own_pg_server, tmp_path, monkeypatch, how):
    """The server goes away after the turn's progress commit, while the (offline) model
    streams for seconds; for ``stop_start`` it stays down for two seconds, maybe past the
    end of the stream: the final commit waits for it."""
    dsn = own_pg_server.create_database()
    prompt = " ".join(f"word{i}" for i in range(150))
    went_away = threading.Event()
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.offline_delay_s = 0.03",
                    f"%lash open s --store {dsn}", "%%lash\nfirst question") as sh:
        def go_away_once_streaming() -> None:
            wait_until("the turn to be open (its progress commit stored)",
                       lambda: "open" in [s for _, s in _turns(dsn)], timeout=60)
            if how == "restart":
                own_pg_server.restart()
            else:
                own_pg_server.halt()
                time.sleep(2)
                own_pg_server.start()
            went_away.set()

        t = threading.Thread(target=go_away_once_streaming)
        t.start()
        sh.run_cell("%%lash\n" + prompt)
        t.join()
        sh.run_cell(f"%lash open s --store {dsn}")  # reopened once the server is back
        again = sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")
    assert went_away.is_set()  # the server did go away during the turn
    assert [s for _, s in _turns(dsn)] == ["committed", "committed"]
    assert int(again["n"][0]) == 2
    assert _prompts(dsn, "word149") == 1


def test_a_turn_whose_server_stays_down_fails_in_one_line_and_the_reopened_session_goes_on(
        own_pg_server, tmp_path, monkeypatch):
    """The server stops while the model streams and stays down past the store's wait: the
    turn fails with one line naming the server and what to do. Once the server is back the
    session opens again and its next turn runs (before, the lease the failed turn could not
    release made it "already running a turn in another runtime"); the failed turn shows as
    lost, its prompt stored once."""
    from IPython.core.error import UsageError

    dsn = own_pg_server.create_database()
    port = dsn.rsplit(":", 1)[1].split("/")[0]
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.offline_delay_s = 0.03",
                    f"%lash open s --store {dsn}", "%%lash\nfirst question") as sh:
        def stop_once_streaming() -> None:
            wait_until("the turn to be open (its progress commit stored)",
                       lambda: "open" in [s for _, s in _turns(dsn)], timeout=60)
            own_pg_server.halt()

        t = threading.Thread(target=stop_once_streaming)
        t.start()
        with pytest.raises(UsageError) as got:
            sh.run_cell("%%lash\n" + " ".join(f"word{i}" for i in range(100)))
        t.join()
        own_pg_server.start()
        sh.run_cell(f"%lash open s --store {dsn}")
        sh.run_cell("%%lash\nthird question")
    line = str(got.value)
    assert "\n" not in line, line
    assert f"127.0.0.1:{port}" in line and "run it again" in line, line
    rows = _rows(dsn, "SELECT status, outcome, stop_reason FROM turns WHERE session_id = 's' "
                      "ORDER BY seq")
    assert [r[0] for r in rows] == ["committed"] * 3
    assert rows[1][1:] == ("stopped", "runtime_error")  # closed as lost by the next commit
    assert rows[2][1:] == ("finished", "assistant_message")
    assert _prompts(dsn, "word99") == 1 and _prompts(dsn, "third question") == 1


@pytest.mark.parametrize("commit", [
    pytest.param("UPDATE turns SET status = 'committed'", id="final_commit"),
    pytest.param("INSERT INTO turns (session_id, turn_id, status", id="progress_commit"),
])
def test_a_turn_whose_commit_answer_is_lost_is_stored_once(
        own_pg_server, tmp_path, monkeypatch, commit):
    """The COMMIT reaches the server and is applied; its answer never arrives (the
    connection dies). The turn must neither fail nor be written twice."""
    dsn = own_pg_server.create_database()
    eater = CommitEater(int(dsn.rsplit(":", 1)[1].split("/")[0]))
    try:
        with lash_shell(tmp_path, monkeypatch, f"%lash open s --store {eater.dsn(dsn)}",
                        "%%lash\nfirst question") as sh:
            eater.eat_next_commit(commit)
            sh.run_cell("%%lash\nsecond question")
            assert eater.eaten == 1
            sh.run_cell("%%lash\nthird question")
            sh.run_cell(f"%lash open s --store {eater.dsn(dsn)}")
            graph = sh.run_cell("%lash sql SELECT count(*) AS n FROM graph_nodes "
                                "WHERE role = 'user'")
    finally:
        eater.close()
    assert [s for _, s in _turns(dsn)] == ["committed"] * 3
    assert _prompts(dsn, "second question") == 1
    assert int(graph["n"][0]) == 3


def test_lash_open_while_the_server_is_down_says_where_and_what_to_do(
        own_pg_server, tmp_path, monkeypatch):
    from IPython.core.error import UsageError

    dsn = own_pg_server.create_database()
    secret = "hunter2-not-shown"
    with_password = dsn.replace("postgres@", f"postgres:{secret}@")
    own_pg_server.halt()
    port = dsn.rsplit(":", 1)[1].split("/")[0]
    with lash_shell(tmp_path, monkeypatch) as sh, pytest.raises(UsageError) as got:
        sh.run_cell(f"%lash open s --store {with_password}")
    line = str(got.value)
    assert "\n" not in line, line
    assert f"127.0.0.1:{port}" in line, line
    assert secret not in line
    assert "server is running" in line, line


def test_a_drain_whose_claim_answer_is_lost_runs_each_batch_once(
        own_pg_server, tmp_path, monkeypatch):
    """The claim's COMMIT is applied, its answer lost: the store finds its claim (by the
    claim id it drew) instead of failing or claiming the next batch ahead of it."""
    dsn = own_pg_server.create_database()
    eater = CommitEater(int(dsn.rsplit(":", 1)[1].split("/")[0]))
    try:
        with lash_shell(tmp_path, monkeypatch, f"%lash open s --store {eater.dsn(dsn)}",
                        "%lash enqueue first queued", "%lash enqueue second queued") as sh:
            eater.eat_next_commit("UPDATE queued_work_batches SET claim_id")
            sh.run_cell("%lash drain")  # one batch a drain
            assert eater.eaten == 1
            sh.run_cell("%lash drain")
    finally:
        eater.close()
    history = _rows(dsn, "SELECT final_state, attempts FROM queue_history ORDER BY enqueue_seq")
    assert history == [("completed", 1), ("completed", 1)]
    assert [s for _, s in _turns(dsn)] == ["committed", "committed"]
    assert _prompts(dsn, "first queued") == 1 and _prompts(dsn, "second queued") == 1
    assert _rows(dsn, "SELECT count(*) FROM queued_work_batches") == [(0,)]


def test_a_turn_whose_cancel_watch_fails_gives_its_lease_back(pg_dsn):
    """The store fails while a turn subscribes to cross-process Stops (its io connection
    could not reach the server). The turn fails with that one-line error, and its lease is
    released, not renewed on by a keeper nobody stops (a worker's claim then stayed claimed
    by a live lease and its session never ran again)."""
    import asyncio

    from lash_nb._errors import StoreError
    from lash_nb._runtime.core import LashCore
    from lash_nb._store.base import Lease
    from lash_nb.providers import OfflineProvider

    async def main() -> tuple[str, Any]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(pg_dsn).build()
        other = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(pg_dsn).build()
        try:
            session = await core.session("s").open()
            await session.turn("first question").run()

            async def unreachable(*_: Any) -> Any:
                raise StoreError("cannot connect to PostgreSQL at the test's server")

            core.store.watch_turn_cancel = unreachable  # what the io thread's call raised
            with pytest.raises(StoreError) as got:
                await session.turn("second question").run()
            return str(got.value), await other.store.try_acquire_lease("s", "someone-else")
        finally:
            await core.store.close()
            await other.store.close()

    message, lease = asyncio.run(main())
    assert "\n" not in message
    assert isinstance(lease, Lease), lease  # free: the failed turn released it
    assert [s for _, s in _turns(pg_dsn)] == ["committed"]


def test_a_pooled_connection_is_kept_in_a_process_with_many_open_files(pg_dsn):
    """The dead-connection check polls the socket; in a kernel holding more than 1024 file
    descriptors (``select``'s limit) a live connection is still kept, not replaced on each
    call."""
    import os
    import resource

    from lash_nb.stores import PostgresStore

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard file limit ({hard}) is below 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        store = PostgresStore(pg_dsn)
        try:
            pids = [int(store.query("SELECT pg_backend_pid() AS pid")["pid"][0])
                    for _ in range(3)]
        finally:
            store.close_sync()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(set(pids)) == 1, pids  # one connection, reused


def test_an_enqueue_whose_commit_answer_is_lost_queues_the_batch_once(
        own_pg_server, tmp_path, monkeypatch, capsys):
    """The enqueue's COMMIT is applied, its answer lost: the store finds the batch by the id
    it drew before the transaction and answers with it, instead of failing ("may or may not
    be queued") or queueing it twice."""
    dsn = own_pg_server.create_database()
    eater = CommitEater(int(dsn.rsplit(":", 1)[1].split("/")[0]))
    try:
        with lash_shell(tmp_path, monkeypatch, f"%lash open s --store {eater.dsn(dsn)}") as sh:
            eater.eat_next_commit("INSERT INTO queued_work_batches")
            capsys.readouterr()
            sh.run_cell("%lash enqueue asked once")
            said = capsys.readouterr().out
            assert eater.eaten == 1
    finally:
        eater.close()
    queued = _rows(dsn, "SELECT batch_id, items::text FROM queued_work_batches")
    assert len(queued) == 1 and "asked once" in queued[0][1]
    assert f"queued {queued[0][0]} " in said, said


def test_queue_waiters_are_woken_when_the_listener_is_back_after_a_restart(own_pg_server):
    """Notifications sent while the server restarted are lost; once the store's listener
    listens again it wakes every queue waiter (each reads its queue again) rather than
    leave them to their timeouts."""
    import asyncio

    from lash_nb.stores import PostgresStore

    dsn = own_pg_server.create_database()

    async def main() -> bool:
        store = PostgresStore(dsn)
        try:
            watch = await store.queue_changes()  # starts the listener
            since = watch.version("s")
            waiting = asyncio.ensure_future(watch.wait("s", since, 120))
            await asyncio.sleep(0)  # the waiter is registered
            await asyncio.to_thread(own_pg_server.restart)
            return await waiting
        finally:
            await store.close()

    assert asyncio.run(main()) is True  # woken, not timed out


@pytest.mark.parametrize("count_attempt", [True, False], ids=["failed_attempt", "hand_back"])
def test_a_claim_released_as_its_connection_dies_is_pending_again_at_once(
        own_pg_server, count_attempt):
    """A drain's turn failed (or a worker asked to stop hands its batch back) and the
    connection dies as the claim is released: the release runs again on a new connection
    (it is idempotent: it matches the claim id, which the first run cleared), so the batch
    is pending again now, with its attempt counted or not as asked, instead of waiting for
    the lease to end with an attempt counted either way."""
    import asyncio

    from lash_nb.stores import PostgresStore
    from lash_nb.testing._conformance_kit import _lease, draft

    dsn = own_pg_server.create_database()
    eater = CommitEater(int(dsn.rsplit(":", 1)[1].split("/")[0]))

    async def go() -> None:
        store = PostgresStore(eater.dsn(dsn))
        try:
            batch = await store.enqueue(draft("s", "the work"))
            lease = await _lease(store, "s")
            claim = await store.claim_queued_work(lease)
            assert claim is not None and claim.batch_ids == (batch.batch_id,)
            eater.drop_next_statement("WITH released AS")
            await store.abandon_claim(claim, error="the model failed",
                                      count_attempt=count_attempt)
            assert eater.dropped == 1
            pending = await store.list_queued_work("s")
            assert [b.batch_id for b in pending] == [batch.batch_id]
        finally:
            await store.close()

    try:
        asyncio.run(go())
    finally:
        eater.close()
    [(claim_id, attempts, error)] = _rows(
        dsn, "SELECT claim_id, attempts, error FROM queued_work_batches")
    assert claim_id is None
    assert (attempts, error) == ((1, "the model failed") if count_attempt else (0, None))


@pytest.mark.parametrize("fault", ["statement_dropped", "commit_answer_lost"])
def test_a_cancel_whose_connection_dies_cancels_the_batch_once_and_says_so(own_pg_server, fault):
    """The user cancels a queued prompt (the queue widget's cancel, or
    ``session.cancel_queued_work_batch``) and the connection dies under it: before the server
    ran it, or after its COMMIT was applied with the answer lost. Either way the cancel runs
    again on a new connection and answers with the batch it cancelled: no error, the batch
    cancelled once (one history row), never run."""
    import asyncio

    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import PostgresStore

    dsn = own_pg_server.create_database()
    eater = CommitEater(int(dsn.rsplit(":", 1)[1].split("/")[0]))
    marker = "lash_now_ms() FROM queued_work_batches b WHERE batch_id"

    async def go() -> tuple[Any, str, list[str]]:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0))
                .store(PostgresStore(eater.dsn(dsn))).build())
        try:
            s = await core.session("s").open()
            batch = await s.enqueue("a prompt the user takes back").send()
            if fault == "statement_dropped":
                eater.drop_next_statement(marker)
            else:
                eater.eat_next_commit(marker)
            got = await s.cancel_queued_work_batch(batch.batch_id)
            assert (eater.dropped, eater.eaten) == (
                (1, 0) if fault == "statement_dropped" else (0, 1))
            left = [b.batch_id for b in await s.queued_work(include_claimed=True)]
            return got, batch.batch_id, left
        finally:
            await core.close()

    try:
        got, batch_id, left = asyncio.run(go())
    finally:
        eater.close()
    assert got is not None and got.batch_id == batch_id
    assert left == []
    assert _rows(dsn, "SELECT batch_id, final_state FROM queue_history") == [
        (batch_id, "cancelled")]
    assert _rows(dsn, "SELECT count(*) FROM queued_work_batches") == [(0,)]
