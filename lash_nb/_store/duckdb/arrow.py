"""Import pandas and pyarrow once per process, one thread at a time, pandas first.

pandas imports pyarrow, and pyarrow imports pandas at its first array. Two threads importing
them in opposite orders break each other (``ImportError: cannot import name ... from partially
initialized module``; with pandas 2.2 and pyarrow 15 on every first report). Every store path
that touches pyarrow calls :func:`import_arrow` first, which waits for an import under way (or
does it) instead of racing it.

When: the import holds the GIL for most of its 0.3-3 s, so it must not run beside an open and
the first reads (started at once it nearly doubled a cold resume of 10,000 turns; ADR 0076).
Reads never need it. The first store path that does is the fold of a logged commit, which runs
after the turn that wrote it. So the DuckDB store starts the import in the background when a
write is coming: the first lease asked for or commit handed to a writable store (a turn takes a
lease before its first commit and then waits for its model), never on a read (ADR 0109). A
report or a query that comes first imports it itself, under the same lock.

Never while holding the file (ADR 0213): under load the import takes 10 s and more, and a
process waiting in the file's line gave up meanwhile. A store job needs the import through
:func:`need_arrow`; on a thread that holds a DuckDB file (:func:`holding_file`: the store's
thread, a job run on the caller's) before the import is done, it starts the import in the
background and raises :class:`ArrowNotReady`; the store's thread then waits for the import,
handing the file over to whoever waits meanwhile, and runs the job again (``worker.py``).

Nor bound while it runs (ADR 0216): DuckDB checks a list, tuple, dict, bytes or datetime
parameter against pandas' types once ``pandas`` is in ``sys.modules``, so while another thread
imports it, binding one waits on pandas' module lock for the rest of the import (a ``str``,
``int``, ``float``, ``bool`` or ``None`` never does). A holder's job calls
:func:`need_bindable` before it binds one: :class:`ArrowNotReady` while an import runs, as
:func:`need_arrow`. A notebook's first lease starts the import, and its first turn's commits
then follow at once: they bind plain values while it runs (``journal.log_statement``).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

_LOCK = threading.Lock()
_DONE = threading.Event()
_LOCK_START = threading.Lock()
_FAILED = threading.Event()  # the background import raised: the next import_arrow says why
_started = False
_HOLDING = threading.local()  # ``depth``: this thread runs a job on a held DuckDB file


class ArrowNotReady(Exception):
    """A job on a held DuckDB file needs pandas and pyarrow before their import is done (the
    holder imports them with the file let go to waiters, then runs the job again)."""


@contextlib.contextmanager
def holding_file() -> Iterator[None]:
    """This thread holds a DuckDB file meanwhile: :func:`need_arrow` never imports here."""
    depth = getattr(_HOLDING, "depth", 0)
    _HOLDING.depth = depth + 1
    try:
        yield
    finally:
        _HOLDING.depth = depth


def need_arrow() -> None:
    """pandas and pyarrow, for a store job: imported here, or :class:`ArrowNotReady` on a
    thread holding a DuckDB file (the import then runs in the background)."""
    if _DONE.is_set():
        return
    if getattr(_HOLDING, "depth", 0) and not _FAILED.is_set():
        import_arrow_in_background()
        raise ArrowNotReady("pandas and pyarrow are still being imported")
    import_arrow()


def importing() -> bool:
    """pandas, numpy or pyarrow is being imported by some thread of this process (CPython marks
    a module's spec ``_initializing`` until its import is over; another thread importing it
    meanwhile waits on its module lock, as DuckDB's parameter binding does)."""
    for name in ("pandas", "numpy", "pyarrow"):
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if getattr(spec, "_initializing", False):
            return True
    return False


def need_bindable() -> None:
    """About to bind a list, tuple, dict, bytes or datetime parameter on a thread holding a
    DuckDB file: :class:`ArrowNotReady` while pandas is being imported (the binding would wait
    for the rest of the import, holding the file; see the module docstring)."""
    if (getattr(_HOLDING, "depth", 0) and not (_DONE.is_set() or _FAILED.is_set())
            and importing()):
        import_arrow_in_background()
        raise ArrowNotReady("pandas is being imported: binding this parameter would wait for it")


def mark_holder_thread() -> None:
    """This thread (a store's own) holds its file whenever it runs a job: for its life."""
    _HOLDING.depth = 1


def arrow_settled() -> bool:
    """The import is over: done, or failed (:func:`need_arrow` then raises why); else it is
    started in the background, if it was not (an idle fold waits for it)."""
    if _DONE.is_set() or _FAILED.is_set():
        return True
    import_arrow_in_background()
    return False


def await_arrow(meanwhile: Callable[[], bool], poll_s: float = 0.02) -> float:
    """Wait for the background import (started if it was not), calling ``meanwhile()`` every
    ``poll_s`` (a holder hands its file over there) until the import is over or it returns
    True; how long it waited (not counted as a wait for the file: ``worker.py``)."""
    start = time.monotonic()
    import_arrow_in_background()
    while not (_DONE.wait(poll_s) or _FAILED.is_set()):
        if meanwhile():
            break
    return time.monotonic() - start


def import_arrow() -> None:
    if _DONE.is_set():
        return
    with _LOCK:
        if _DONE.is_set():
            return
        import pandas  # noqa: F401  (first: it imports pyarrow itself)
        import pyarrow as pa

        pa.array([0])  # pyarrow's pandas shim loads at its first array
        _DONE.set()


def arrow_ready() -> bool:
    """pyarrow is imported (a caller that can do without it never waits for the import)."""
    return _DONE.is_set()


def import_arrow_in_background() -> None:
    """Start :func:`import_arrow` on a background thread, once per process (a no-op once it
    was started or done)."""
    global _started
    if _DONE.is_set():
        return
    with _LOCK_START:
        if _started or _DONE.is_set():
            return
        _started = True
    threading.Thread(target=_import_quietly, name="lash-arrow-import", daemon=True).start()


def _import_quietly() -> None:
    try:
        import_arrow()
    except Exception:  # a broken install fails where it is needed, loudly
        _FAILED.set()
