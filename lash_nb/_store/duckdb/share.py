"""Sharing one DuckDB file between processes: a waiters' line beside the file.

Theory of operation
- DuckDB lets one process hold a file read-write; the others get "Conflicting lock" at
  connect (or, rarely, at a commit that needs the ``.wal``). DuckDB's own lock stays the one
  thing that keeps two writers apart. This module adds what DuckDB lacks: a way for a waiting
  process to say so, and an order among waiters.
- The line lives in a sidecar file ``<file>.lash-share`` (created beside the DuckDB file,
  never deleted, a few bytes long), used only through POSIX record locks (``fcntl``), which
  the kernel drops when a process dies: a killed waiter or holder never blocks anyone.
  Byte ranges:
  - byte 0: the *ticket desk*, locked for a moment while a ticket is drawn;
  - bytes 0-7: the next ticket number; bytes 8-15: the acquisition counter;
  - byte 1: the *holder mark*, locked by whichever lash process holds the DuckDB file;
    bytes 64-127 name it (``"<pid> <role>"``), so a waiter can say "held by worker pid N";
  - byte ``SLOTS + t``: locked by the waiter holding ticket ``t`` while it waits.
- States of one process towards the file: *released*; *waiting* (slot locked, ticket ``t``);
  *holding* (holder mark locked). Moves:
  - released -> waiting: :meth:`Line.join` draws the next ticket and locks its slot;
  - waiting -> holding: only when no live slot below ``t`` is locked (:meth:`Line.ahead`)
    *and* DuckDB's connect succeeds (tried when the holder mark is free, or once a second:
    while a lash process holds the file a waiter only probes, ADR 130); then
    :meth:`Line.leave` unlocks the slot and :meth:`Line.acquired` takes the holder mark
    (the next waiter still cannot connect: DuckDB refuses it until this process closes the
    file);
  - holding -> released: the holder checks :meth:`Line.others_waiting` between jobs (and
    while idle); when someone waits it folds, flushes its leases and closes the connection
    (``worker.py``), dropping the holder mark. If it needs the file again it draws a new
    ticket: behind everyone who was already waiting. So the file goes round in arrival
    order, a job or a turn at a time, however busy the holder is.
- :class:`Wait` is one store call waiting (for the file, or for disk space): bounded by its
  timeout, reported to the calling turn (``store_wait``) and to the ``lash_nb.store`` log.
- Lock tests use ``F_GETLK``, which never reports this process's own locks. Forbidden:
  opening the sidecar twice in one process (closing any descriptor of a file drops every
  POSIX lock the process has on it), so descriptors are shared per file and never closed
  while a :class:`Line` uses them.
- Where the sidecar cannot be made (a read-only folder opened ``read_only=True``, a platform
  without ``fcntl``) the line is *off*: waiting is plain retrying, as DuckDB allows.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import threading
import time

from ..._core.events import StoreWait
from ..._core.records import fresh_id
from ..._errors import StoreError, StoreFullError, StoreLockedError, StorePathError
from ..waits import StoreWaitObserver, WaitStop, log, notify

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # (mypy checks this file as Linux, where it exists)
# a flag, not ``fcntl is None`` at each use: mypy, checking for Linux, would call that branch dead
_HAS_FCNTL: bool = fcntl is not None

SUFFIX = ".lash-share"
_DESK, _HOLDER = 0, 1
_RECORD_AT, _RECORD_LEN = 64, 64
_SLOTS = 1 << 32
if sys.platform == "darwin":  # struct flock: l_start, l_len, l_pid, l_type, l_whence
    _FLOCK, _ORDER = "qqihh", ("start", "len", "pid", "type", "whence")
else:  # Linux: l_type, l_whence, l_start, l_len, l_pid (+ padding)
    _FLOCK, _ORDER = "hhqqi4x", ("type", "whence", "start", "len", "pid")

NOTIFY_AFTER_S = 0.25  # shorter waits (a hand-over at the holder's next job) stay quiet
NOTIFY_EVERY_S = 1.0
WARN_AFTER_S = 2.0  # a wait this long is logged as a warning (shorter ones at info)
_POLL_MAX_S = 0.05  # the holder hands over at its next job boundary: look again soon
_POLL_LINE_S = 0.005  # waiting on the line or on a lash holder's mark: a probe (~1 us), not a connect
_RETRY_HELD_S = 1.0  # while a lash process holds the mark, try DuckDB's connect this seldom
_SPACE_POLL_S = 0.5  # a finished turn's commit is tried again this often (disk, file) ...
_STOP_POLL_S = 0.05  # ... and its stop check (a Stop, an interrupt) looked at this often
# a finished turn's commit waits for what its file cannot take now (docs/adr/0181):
# reason -> (the log's first warning, its later one)
_UNWRITABLE = {
    "disk_full": ("the disk holding %s is full; the commit waits for space (free some there)",
                  ("still waiting for disk space for %s after %.0f s; the finished turn is "
                  "saved once there is room (free some there)")),
    "read_only": (("%s or its folder became read-only; the finished turn's commit waits until "
                  "it is writable again"),
                  ("still waiting for %s to be writable again after %.0f s; the finished turn "
                  "is saved once it is")),
    "moved": (("%s is not the file this process opened any more (moved or deleted); the "
              "finished turn's commit waits for it to be put back"),
              ("still waiting for %s to be put back after %.0f s; the finished turn is saved "
              "once it is")),
}

_FDS: dict[str, list[int]] = {}  # sidecar realpath -> [fd, users]
_FDS_LOCK = threading.Lock()


def process_role() -> str:
    """What this process is, for messages: ``worker`` (``python -m lash_nb worker``),
    ``notebook`` (an IPython kernel) or ``process``."""
    main = os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0]))) if sys.argv else ""
    if main == "lash_nb" and sys.argv[1:2] == ["worker"]:
        return "worker"
    if "ipykernel" in sys.modules:
        return "notebook"
    return "process"


def _pack(kind: int, start: int, length: int) -> bytes:
    values = {"type": kind, "whence": os.SEEK_SET, "start": start, "len": length, "pid": 0}
    return struct.pack(_FLOCK, *(values[k] for k in _ORDER))


# ``others_waiting`` runs before each commit made on the caller's thread: its probe is built
# once, and only the answer's lock type is read
_TYPE_AT = _ORDER.index("type")
_ANY_WAITER = _pack(fcntl.F_WRLCK, _SLOTS, 0) if _HAS_FCNTL else b""


class Line:
    """The waiters' line of one DuckDB file (see the module docstring)."""

    def __init__(self, db_path: str) -> None:
        self.path = os.path.realpath(db_path) + SUFFIX
        self.fd: int | None = None
        self.open_s = 0.0  # how long this process's last open took, without the wait (worker.py)
        self.error = ""  # why the sidecar could not be opened (the line is then off)
        self.acquired_seq = 0  # this process's latest place in the order of acquisitions
        if not _HAS_FCNTL:
            return
        with _FDS_LOCK:
            entry = _FDS.get(self.path)
            if entry is None:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
                except OSError as e:
                    self.error = e.strerror or str(e)
                    return  # line off (read-only folder): plain retrying
                entry = _FDS[self.path] = [fd, 0]
            entry[1] += 1
            self.fd = entry[0]

    @property
    def on(self) -> bool:
        return self.fd is not None

    @property
    def possible(self) -> bool:
        """False on platforms without POSIX record locks (the line is off there)."""
        return _HAS_FCNTL

    def close(self) -> None:
        if self.fd is None:
            return
        with _FDS_LOCK:
            entry = _FDS.get(self.path)
            self.fd = None
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del _FDS[self.path]
                os.close(entry[0])

    # ------------------------------------------------------------------ low level
    def _lock(self, start: int, *, wait: bool = True) -> bool:
        assert self.fd is not None and fcntl is not None
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB), 1, start)
        except OSError:
            return False
        return True

    def _unlock(self, start: int) -> None:
        assert self.fd is not None and fcntl is not None
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, start)

    def _probe(self, start: int, length: int) -> tuple[int, int] | None:
        """(pid, start) of another process's lock in the range, or None."""
        assert self.fd is not None and fcntl is not None
        got = fcntl.fcntl(self.fd, fcntl.F_GETLK, _pack(fcntl.F_WRLCK, start, length))
        fields = dict(zip(_ORDER, struct.unpack(_FLOCK, got), strict=True))
        if fields["type"] == fcntl.F_UNLCK:
            return None
        return int(fields["pid"]), int(fields["start"])

    def _bump(self, offset: int) -> int:
        """Read-and-increment the counter at ``offset`` (at the ticket desk)."""
        assert self.fd is not None
        self._lock(_DESK)
        try:
            raw = os.pread(self.fd, 8, offset)
            n = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            os.pwrite(self.fd, (n + 1).to_bytes(8, "little"), offset)
            return n
        finally:
            self._unlock(_DESK)

    # ------------------------------------------------------------------ waiting
    def join(self) -> int | None:
        """Draw a ticket and lock its slot (None when the line is off)."""
        if self.fd is None:
            return None
        ticket = self._bump(0)
        self._lock(_SLOTS + ticket)
        return ticket

    def leave(self, ticket: int | None) -> None:
        if ticket is not None and self.fd is not None:
            self._unlock(_SLOTS + ticket)

    def ahead(self, ticket: int | None) -> int | None:
        """The pid of a live waiter that arrived before ``ticket``, if any."""
        if ticket is None or self.fd is None or ticket == 0:
            return None
        got = self._probe(_SLOTS, ticket)
        return got[0] if got else None

    def others_waiting(self) -> bool:
        """True when another process waits for the file (one ``fcntl`` call, ~1 µs)."""
        if self.fd is None:
            return False
        got = fcntl.fcntl(self.fd, fcntl.F_GETLK, _ANY_WAITER)
        return bool(struct.unpack(_FLOCK, got)[_TYPE_AT] != fcntl.F_UNLCK)

    def waiters(self) -> list[int]:
        """Pids of the processes waiting, in arrival order (tests and benchmarks read it)."""
        out: list[int] = []
        start = _SLOTS
        while self.fd is not None:
            got = self._probe(start, 0)
            if got is None:
                return out
            out.append(got[0])
            start = got[1] + 1
        return out

    # ------------------------------------------------------------------ holding
    def acquired(self) -> None:
        """Mark this process as the holder (after DuckDB's connect succeeded)."""
        if self.fd is None:
            return
        self._lock(_HOLDER, wait=False)
        record = f"{os.getpid()} {process_role()}".encode()[:_RECORD_LEN]
        os.pwrite(self.fd, record.ljust(_RECORD_LEN), _RECORD_AT)
        self.acquired_seq = self._bump(8) + 1

    def released(self) -> None:
        if self.fd is not None:
            self._unlock(_HOLDER)

    def acquisitions(self) -> int | None:
        """How many times lash processes have taken the file (None when the line is off):
        unchanged since a moment, nobody else held it since (``idle_poll.py``)."""
        if self.fd is None:
            return None
        raw = os.pread(self.fd, 8, 8)
        return int.from_bytes(raw, "little") if len(raw) == 8 else 0

    def holder(self) -> tuple[int, str] | None:
        """(pid, role) of the lash process holding the file, if one does."""
        if self.fd is None:
            return None
        got = self._probe(_HOLDER, 1)
        if got is None:
            return None
        pid, role = got[0], "process"
        words = os.pread(self.fd, _RECORD_LEN, _RECORD_AT).decode(errors="replace").split()
        if len(words) == 2 and words[0] == str(pid):
            role = words[1]
        return pid, role


def describe_holder(line: Line | None, pid_from_error: int | None) -> tuple[int | None, str]:
    """(pid, words) naming who holds the file: ``worker pid 12``, ``process 12`` (not lash)."""
    held = line.holder() if line is not None else None
    if held is not None:
        return held[0], f"{held[1]} pid {held[0]}"
    if pid_from_error is not None:
        return pid_from_error, f"process {pid_from_error} (not a lash_nb store, or an older one)"
    return None, "another process"


class Wait:
    """One wait of one store call: for the file (``locked``: in the line, in arrival order)
    or, at a finished turn's commit, for disk space (``disk_full``), a writable file
    (``read_only``) or the file back at its path (``moved``), until ``timeout_s`` or the
    ``stop`` check names who stopped it. Visible after
    ``NOTIFY_AFTER_S`` (observer event every second, a log line at start and end)."""

    def __init__(self, path: str, line: Line | None, timeout_s: float,
                 observer: StoreWaitObserver | None, *, reason: str = "locked",
                 stop: WaitStop | None = None, shown: bool = False) -> None:
        self.path, self.line, self.timeout_s = path, line, timeout_s
        # a widget shows this wait (and the cell or record how it ended): its lines are INFO
        self._shown = shown
        self.observer, self.reason, self.stop = observer, reason, stop
        self.start = time.monotonic()
        self.ticket = line.join() if line is not None and reason == "locked" else None
        self.holder: tuple[int | None, str] = (None, "another process")
        self._delay = 0.002
        self._tried = float("-inf")  # when DuckDB's connect was last tried
        self._last: float | None = None
        self._warned = False
        self._correlation = fresh_id("store_wait")

    @property
    def waited_s(self) -> float:
        return time.monotonic() - self.start

    def my_turn(self) -> bool:
        """Nobody who arrived earlier still waits, and no lash process holds the file (its
        mark is locked from its open to its close: DuckDB's connect would only fail, at
        ~5 ms of CPU each, competing with the holder's work; a mark is still checked by a
        connect every ``_RETRY_HELD_S``). DuckDB's connect decides the rest."""
        if self.line is None:
            return True
        if self.line.ahead(self.ticket) is not None:
            return False
        return (self.line.holder() is None
                or time.monotonic() - self._tried >= _RETRY_HELD_S)

    def trying(self) -> None:
        """DuckDB's connect is being tried now."""
        self._tried = time.monotonic()

    def opened(self) -> None:
        """The open that started at the last :meth:`trying` succeeded: its cost, for the
        holder's slice (``worker.py``)."""
        if self.line is not None:
            self.line.open_s = time.monotonic() - self._tried

    def blocked(self, pid_from_error: int | None = None, *, queued: bool = False) -> None:
        """Not yet: raise past the bound, else report now and then, and sleep a little
        (``queued``: behind the line or a lash holder's mark, both watched by a cheap probe,
        so briefly; after a refused connect, a little longer each time)."""
        waited = self.waited_s
        if self.reason == "locked":
            self.holder = describe_holder(self.line, pid_from_error)
        pid, who = self.holder
        stopped_by = self.stop() if self.stop is not None else None
        if waited >= self.timeout_s or stopped_by is not None:
            self.leave()
            self._last = None  # nothing to announce at done(): the caller gets the error
            if self.reason in _UNWRITABLE:
                log.log(logging.INFO if self._shown else logging.WARNING if stopped_by
                        else logging.ERROR,
                        "gave up waiting to commit to %s after %.1f s (%s)", self.path, waited,
                        f"stopped: {stopped_by}" if stopped_by else self.reason)
                error = self.gave_up(waited, stopped_by)
                error.stopped_by = stopped_by  # type: ignore[attr-defined]  # TurnNotSaved reads it
                raise error
            if stopped_by is not None:  # the caller says how it ended (sigint.py)
                log.info("stopped waiting for %s after %.1f s (%s): held by %s", self.path,
                         waited, stopped_by, who)
            else:
                log.error("gave up waiting for %s after %.1f s: held by %s", self.path, waited,
                          who)
            raise StoreLockedError(self.path, pid, waited, who)
        now = time.monotonic()
        quiet = NOTIFY_AFTER_S if self.reason == "locked" else 0.0
        if waited >= quiet and (self._last is None or now - self._last >= NOTIFY_EVERY_S):
            said = _UNWRITABLE.get(self.reason)
            if said is not None and self._last is None:
                log.log(self._unwritable_level(), said[0], self.path)
            elif self._last is None:  # a hand-over is usually this short: info, not warning
                log.info("waiting for %s, held by %s", self.path, who)
            elif not self._warned and waited >= WARN_AFTER_S:
                self._warned = True
                if said is not None:
                    log.log(self._unwritable_level(), said[1], self.path, waited)
                else:
                    log.warning("still waiting for %s after %.0f s, held by %s", self.path,
                                waited, who)
            self._last = now
            self._event(waited, done=False)
        if self.reason in _UNWRITABLE:
            self._sleep_unless_stopped(min(_SPACE_POLL_S, self.timeout_s - waited))
            return
        if queued:
            step = _POLL_LINE_S
        else:
            step, self._delay = self._delay, min(self._delay * 2, _POLL_MAX_S)
        time.sleep(max(0.0, min(step, self.timeout_s - waited)))

    def _unwritable_level(self) -> int:
        return logging.INFO if self._shown else logging.WARNING

    def _sleep_unless_stopped(self, seconds: float) -> None:
        end = time.monotonic() + max(0.0, seconds)
        while (left := end - time.monotonic()) > 0:
            if self.stop is not None and self.stop() is not None:
                return
            time.sleep(min(_STOP_POLL_S, left))

    def gave_up(self, waited: float, stopped_by: str | None) -> StoreError:
        """The one-line error of a finished turn's commit that waited in vain: nothing of it
        was written, and what would have let it through."""
        how = (f"the wait was stopped ({stopped_by}) after {waited:.1f} s" if stopped_by
               else f"the commit waited {waited:.0f} s")
        if self.reason == "disk_full":
            return StoreFullError(self.path, f"{how} and was not written")
        if self.reason == "read_only":
            return StorePathError(
                f"cannot write {self.path}: it or its folder became read-only; {how} and "
                "nothing of it was written: make it writable again and retry")
        return StorePathError(
            f"{self.path} is not the file this process opened any more (moved, deleted or "
            f"replaced while open); {how} and nothing of it was written: put the file back "
            "there, or restart the kernel and open the store where it is now")

    def leave(self) -> None:
        if self.line is not None:
            self.line.leave(self.ticket)
            self.ticket = None

    def done(self) -> None:
        self.leave()
        if self._last is not None:
            waited = self.waited_s
            log.info("got %s after waiting %.1f s (%s)", self.path, waited, self.reason)
            self._event(waited, done=True)

    def _event(self, waited: float, *, done: bool) -> None:
        pid, who = self.holder if self.reason == "locked" else (None, None)
        notify(self.observer, StoreWait(self.reason, round(waited, 1), who, pid, done),
               self._correlation)
