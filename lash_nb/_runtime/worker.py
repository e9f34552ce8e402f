"""Queue workers: drain queued work out of the notebook process.

``python -m lash_nb worker --store PATH [--session ID | --all]``

Theory of operation
- Poll the store for sessions with ready work (``--all``) or watch one session; for each,
  open the session and run ``queued_turn()`` until it returns ``None``. Leases keep two
  workers (or a worker and a notebook) from running the same session at once; a busy
  session is skipped and retried on the next poll. A session is only probed (lease, claim)
  when its queue lists a batch that is due: an idle worker reads, it does not write.
- ``--exit-when-idle S``: the worker exits once S seconds have passed since it last ran a turn
  or saw work it could not take yet, and no lane is inside a session. Busy means a turn ran, or
  a due pending batch sat in a session another process held (a notebook's long turn: waiting
  for it is not idleness, the batch must not be left behind). A probe that finds nothing is not
  busy; neither are batches parked ``failed``, batches due later (``available_at_ms``; the next
  worker runs them) or batches claimed by a live turn elsewhere (docs/adr/0092).
- A claim held by a worker that dies is pinned to its lease generation; once the lease
  expires (TTL, or at once when the store can prove the owner's process is gone) the batch is
  pending again and the next worker runs it. The dead worker's turn never committed, so the
  batch runs exactly once to completion.
- A batch whose turn keeps failing (raises, loses its lease, kills its worker) is parked
  ``failed`` with its error after ``--max-attempts`` claims (default 3): the worker logs the
  error and moves on; it never retries one batch forever.
- SIGTERM / SIGINT (``stop()``): stop taking work; let the current turn finish for
  ``grace_s`` seconds, then cut it (cancel origin ``worker_shutdown``). A stop is not the
  user's Stop: the cut turn commits ``stopped: cancelled`` (the record says what ran and
  why), but its batch goes back to the queue before that commit, its attempt uncounted
  (a deploy restarting workers never parks work), and the next worker runs it under a new
  lease generation, branching before the cut turn's nodes: one run to completion
  (docs/adr/0158). A person's Stop of that turn (``%lash stop`` or the Stop button where
  it runs, ``request_turn_cancel``) still completes its batch, also when it meets the
  worker's cut before the turn handed the batch back (docs/adr/0172), and cancelling a pending
  batch from the queue panel still removes it. The worker logs each batch it returned and
  exits; ``stats.returned`` lists them (the CLI exits 75, EX_TEMPFAIL, when there are any,
  else 0). A second signal during the grace (Ctrl-C twice) cuts the running turns at once,
  the same way: committed, batches handed back uncounted (docs/adr/0172).
- A store that cannot be written (a full disk, ``StoreFullError``; a read-only, moved or
  deleted file, ``StorePathError``: a claim or a turn's first commit refused at once, or a
  finished turn's commit that waited ``commit_wait_s`` for it, ``TurnNotSaved``) stops the
  worker: the batches stay queued (a refused commit completes none), ``stats.store_refused``
  holds the error, the CLI prints it once and exits 75 (docs/adr/0175, 0181) instead of
  logging it at every poll or exiting 0 at ``--exit-when-idle``. So does a store that became
  one this lash_nb cannot read while it ran (``StoreSchemaError``: a newer lash_nb migrated
  it, a newer DuckDB rewrote it; ``stats.store_outgrown``): the CLI exits 2, as at a start
  on such a store, since only an upgraded process can go on (docs/adr/0221).
- A cached handle whose session was deleted, or deleted and created anew, elsewhere is
  refused at its turn's first commit (``SessionDeleted``, docs/adr/0148): the claim goes
  back uncounted and the worker opens the session again at once (no attempt spent,
  docs/adr/0159).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    ProviderUnavailable,
    SessionDeleted,
    StoreFullError,
    StorePathError,
    StoreSchemaError,
    TurnNotSaved,
)
from .._providers.registry import KINDS
from .._store.base import notifies_work, releases_file
from .core import LashCore, import_before_writing
from .turn_records import now_ms

log = logging.getLogger("lash_nb.worker")


def log_info(message: str) -> None:
    """The worker's default log: one line per turn run and per failure, on ``lash_nb.worker``
    (``python -m lash_nb worker`` shows INFO on stderr)."""
    log.info("%s", message)


@dataclass
class WorkerStats:
    turns: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    # (session id, batch id) of batches a stop cut and handed back to the queue
    returned: list[tuple[str, str]] = field(default_factory=list)
    # the store error (full disk, read-only or moved file) that stopped the worker, in one
    # line; its work stays queued
    store_refused: str | None = None
    # the store became one this lash_nb cannot read (another lash_nb or DuckDB migrated it,
    # ADR 221): not to be retried by this process, it needs an upgraded one
    store_outgrown: bool = False


def _load(option: str, spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"{option} takes module:attribute, got {spec!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as err:
        if err.name is None or not (module == err.name or module.startswith(err.name + ".")):
            raise  # the module was found and failed inside: its own traceback says where
        why = f"no module named {err.name!r}"
    except AttributeError as err:
        why = str(err)
    raise SystemExit(
        f"{option} {spec}: {why}; the worker imports it from its working folder and "
        "PYTHONPATH: put the tools in a .py file there (a notebook's own cells cannot be "
        "imported)")


def load_tools(specs: Sequence[str]) -> list[Any]:
    """``module:attr`` names of tools (or lists of tools) to give the worker."""
    tools: list[Any] = []
    for spec in specs:
        value = _load("--tools", spec)
        tools.extend(value if isinstance(value, (list, tuple)) else [value])
    return tools


def load_approver(spec: str | None) -> Any:
    """``--approver module:attr``: a callable answering ``ask`` tool calls (ADR 55)."""
    if spec is None:
        return None
    approver = _load("--approver", spec)
    if not callable(approver):
        raise SystemExit(f"--approver {spec} is a {type(approver).__name__}, not a callable")
    return approver


class Worker:
    def __init__(self, core: LashCore, *, session_id: str | None = None, poll_s: float = 0.2,
                 grace_s: float = 5.0, concurrency: int = 1, log: Any = None,
                 approver: Any = None) -> None:
        """``approver``: answers ``ask`` tool calls (``Approvals.set_approver``); without
        one a worker denies them (nobody is there to ask; docs/adr/0055)."""
        self.core = core
        self.approver = approver
        self.session_id = session_id
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.concurrency = max(1, concurrency)
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()  # a second signal: cut the running turns now
        self._active: dict[str, Any] = {}
        self._sessions: dict[str, Any] = {}  # opened handles, least recently used first
        self._provider_said: set[tuple[str, str]] = set()  # (session, recorded provider)
        self._tools_said: set[str] = set()  # sessions whose missing tools were named
        # loop time of the last evidence of work: a turn ran, or due pending work sat in a
        # session another process held (waiting for it is not idle: --exit-when-idle must not
        # leave the work behind); None until run() starts
        self._busy_at: float | None = None
        self._max_idle_s: float | None = None
        self._log = log or (lambda msg: log_info(msg))

    def stop(self) -> None:
        self._stopping.set()

    def _signalled(self) -> None:
        """SIGTERM / SIGINT: the first stops taking work and gives the running turns their
        grace; another during the grace cuts them now (a second Ctrl-C: docs/adr/0172)."""
        if not self._stopping.is_set():
            self.stop()
            if self._active and self.grace_s > 0:  # at --grace 0 the cut comes at once
                self._log(f"worker stopping: the running turn may finish for up to "
                          f"{self.grace_s:g} s (--grace); signal again (Ctrl-C) to cut it now, "
                          "its batch goes back to the queue")
            return
        if not self._hurry.is_set():
            self._hurry.set()
            self._log("worker asked again to stop: cutting the running turn now")

    async def run(self, *, max_idle_s: float | None = None) -> WorkerStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signalled)
        self._max_idle_s = max_idle_s
        self._busy_at = loop.time()
        lanes = [asyncio.ensure_future(self._lane(i)) for i in range(self.concurrency)]
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            # the lanes decide idleness between their passes (``_idle_long_enough``): no
            # sampling here, so a probe in flight neither counts as work nor hides idleness
            await asyncio.wait([stopping, *lanes], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            self._stopping.set()
            await self._wind_down(lanes)
        return self.stats

    def _note_busy(self) -> None:
        self._busy_at = asyncio.get_running_loop().time()

    def _idle_long_enough(self) -> bool:
        """``--exit-when-idle``: nothing ran and nothing waited for ``max_idle_s``, and no lane
        is inside a session (its pass may yet run a turn)."""
        if self._max_idle_s is None or self._busy_at is None or self._active:
            return False
        return asyncio.get_running_loop().time() - self._busy_at >= self._max_idle_s

    async def _lane(self, lane: int) -> None:
        while not self._stopping.is_set():
            ran = False
            try:
                sids = ([self.session_id] if self.session_id
                        else await self.core.store.sessions_with_ready_work())
            except Exception as err:  # e.g. StoreLockedError: another process holds the file
                if not self._stopped_by_store(err):
                    self._log(f"lane {lane}: {type(err).__name__}: {err}")
                sids = []
            for sid in sids:
                if self._stopping.is_set():
                    break
                if sid in self._active:
                    continue
                ran = await self._drain(sid) or ran
            if ran:
                continue
            if self._idle_long_enough():
                self.stop()
                break
            await self._idle_wait()

    async def _idle_wait(self) -> None:
        """Sleep ``poll_s`` or until stopped; a store with ``wait_for_work`` (PostgreSQL
        LISTEN/NOTIFY) also wakes the lane as soon as work is enqueued."""
        store = self.core.store
        if releases_file(store) and not self._active:
            await store.release_file()  # a DuckDB file: let notebooks and other workers in
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stopping.wait())]
        if notifies_work(store) and not self.session_id:
            waits.append(asyncio.ensure_future(store.wait_for_work(self.poll_s)))
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _open(self, session_id: str) -> Any:
        session = await self.core.session(session_id).open()
        missing = [t for t in session.tools().all_tools() if t["orphaned"] and t["member"]]
        if missing and session_id not in self._tools_said:  # once: each reopen would repeat it
            self._tools_said.add(session_id)
            python = sorted(t["name"] for t in missing if t["id"].startswith("tool:"))
            other = sorted(t["name"] for t in missing if not t["id"].startswith("tool:"))
            how = ([f"{', '.join(python)} (give them with --tools module:attr)"] if python else []
                   ) + ([f"{', '.join(other)} (an MCP server's: a worker starts none)"]
                        if other else [])
            self._log(f"session {session_id!r}: its tools {'; '.join(how)} are not in this "
                      "worker, so its turns here run without them")
        approvals = session.approvals()
        approvals.unattended = True
        if self.approver is not None:
            approvals.set_approver(self.approver)
        return session

    async def _drain(self, session_id: str) -> bool:
        self._active[session_id] = None  # reserve before awaiting: lanes never share a session
        ran = tried = False
        try:
            # reuse opened handles: a stale one reloads on its first commit
            session = self._sessions.pop(session_id, None)
            cached = session is not None
            if session is None:
                session = await self._open(session_id)
            self._sessions[session_id] = session
            while len(self._sessions) > 256:
                self._sessions.pop(next(iter(self._sessions)))
            self._active[session_id] = session
            while not self._stopping.is_set():
                due = await _due_batches(session)
                if not due:  # nothing to take: no lease written, not busy
                    break
                if self._stopping.is_set():
                    # stopped during that read: its sweep of running turns may have passed,
                    # so a turn started now would run on uncut; the next worker takes it
                    break
                tried = True
                try:
                    out = await session.queued_turn().run()
                except ProviderUnavailable as err:
                    # recorded with another provider: running it here would answer with a
                    # model it was not recorded with. Nothing was claimed; not reopened from
                    # the cache, so a session switched to this provider meanwhile runs (0201)
                    self._sessions.pop(session_id, None)
                    self._say_provider_once(session_id, err)
                    break
                except SessionDeleted:
                    if not cached:
                        raise
                    # deleted (and maybe created anew) elsewhere since this handle opened
                    # it: the claim went back uncounted; open the stored session again
                    self._log(f"{session_id}: deleted or created anew elsewhere since this "
                              "worker opened it; opened it again (no attempt spent)")
                    session = self._sessions[session_id] = await self._open(session_id)
                    self._active[session_id] = session
                    cached = False
                    continue
                if out is None:
                    # due pending work, but the session is held elsewhere (a notebook's turn):
                    # waiting for it is busy. Only claimed batches: a live turn elsewhere runs
                    # them (the probe was for a dead claimer's lease), nothing to wait for.
                    if any(b.status == "pending" for b in due):
                        self._note_busy()
                    break
                ran = True
                self._note_busy()
                self.stats.turns += 1
                key = str(out.result.outcome)
                self.stats.outcomes[key] = self.stats.outcomes.get(key, 0) + 1
                returned = out.returned_batch_ids
                self.stats.returned.extend((session_id, b) for b in returned)
                self._log(f"{session_id} {out.result.turn_id} {key}" + (
                    f"; the worker's stop cut it: batch {', '.join(returned)} returned to "
                    "the queue (the next worker or %lash drain runs it)" if returned else ""))
        except Exception as err:  # one broken session must not stop the worker
            if tried:  # a failed attempt is work: its batch is retried or parks, not left behind
                self._note_busy()
            self._sessions.pop(session_id, None)
            if not self._stopped_by_store(err):
                self._log(f"{session_id}: {type(err).__name__}: {err}")
        finally:
            self._active.pop(session_id, None)
        return ran

    def _say_provider_once(self, session_id: str, err: ProviderUnavailable) -> None:
        """One line per session and recorded provider, not one per poll."""
        said = (session_id, err.provider_id)
        if said in self._provider_said:
            return
        self._provider_said.add(said)
        name = next((n for n, kind in KINDS.items() if kind == err.provider_id), None)
        fix = f"--provider {name}" if name else "a --provider for it"
        self._log(f"session {session_id!r}: its queued work stays queued: it was recorded with "
                  f"provider {err.provider_id!r} and this worker runs {err.live!r}; start a "
                  f"worker with {fix}, or drain it where it was opened (%lash drain)")

    def _stopped_by_store(self, err: BaseException) -> bool:
        """A store that cannot be written stops the worker (ADR 175, 181): every claim and
        first commit would fail at once, polled forever; the queue keeps its batches (a
        refused claim or final commit wrote nothing). The CLI says so once and exits 75 to
        be started again."""
        cause = err.cause if isinstance(err, TurnNotSaved) else err
        if not isinstance(cause, (StoreFullError, StorePathError, StoreSchemaError)):
            return False
        if self.stats.store_refused is None:
            self.stats.store_refused = str(cause)
            self.stats.store_outgrown = isinstance(cause, StoreSchemaError)
        self.stop()
        return True

    async def _wind_down(self, lanes: list[asyncio.Task[None]]) -> None:
        pending = await self._grace(lanes)
        if pending:
            why = ("the worker was asked to stop twice" if self._hurry.is_set() else
                   f"the worker was asked to stop and the turn outlived --grace "
                   f"{self.grace_s:g} s")
            for session in list(self._active.values()):
                if session is not None:
                    session.cancel_running_turns(
                        "worker_shutdown", f"{why}; its queued batch went back to the queue")
            await asyncio.wait(pending, timeout=30)
        for lane in lanes:  # a lane that died ended the run: say why, once
            if lane.done() and not lane.cancelled() and lane.exception() is not None:
                err = lane.exception()
                self._log(f"worker lane stopped: {type(err).__name__}: {err}")
        if self.stats.returned:
            self._log(f"worker stopped: {len(self.stats.returned)} batch(es) returned to the "
                      "queue, their attempts not counted: "
                      + ", ".join(f"{s} {b}" for s, b in self.stats.returned))
        await self.core.store.close()


    async def _grace(self, lanes: list[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
        """Wait for the lanes up to ``grace_s``, or until a second signal; those still
        running."""
        pending = {lane for lane in lanes if not lane.done()}
        if not pending or self._hurry.is_set():
            return pending
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.grace_s
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while pending and not hurry.done() and (remaining := ends - loop.time()) > 0:
                await asyncio.wait([*pending, hurry], timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
                pending = {lane for lane in lanes if not lane.done()}
        finally:
            hurry.cancel()
        return {lane for lane in lanes if not lane.done()}


async def _due_batches(session: Any) -> list[Any]:
    """The session's batches a claim could take now: not parked ``failed``, due
    (``available_at_ms`` passed), pending or claimed (a claim of a dead process is taken over
    once its lease is gone, which only the lease probe can tell). One read, no write."""
    t = now_ms()
    return [b for b in await session.store.list_queued_work(session.session_id,
                                                            include_claimed=True)
            if b.status != "failed" and b.available_at_ms <= t]


async def run_worker(store: str, *, session_id: str | None, provider: Any, model: str | None,
                     tools: Sequence[Any], concurrency: int, poll_s: float, grace_s: float,
                     max_idle_s: float | None, lease_ttl_ms: int | None = None,
                     max_attempts: int | None = None, approver: Any = None) -> WorkerStats:
    import_before_writing(store)  # never while a notebook waits in the file's line for it
    builder = LashCore.builder().provider(provider).store(store).tools(*tools)
    if lease_ttl_ms:
        builder = builder.lease_ttl_ms(lease_ttl_ms)
    if max_attempts is not None:
        builder = builder.max_batch_attempts(max_attempts)
    if model:
        builder = builder.model(model)
    worker = Worker(builder.build(), session_id=session_id, poll_s=poll_s, grace_s=grace_s,
                    concurrency=concurrency, approver=approver)
    return await worker.run(max_idle_s=max_idle_s)
