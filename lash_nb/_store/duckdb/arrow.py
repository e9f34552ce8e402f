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
"""

from __future__ import annotations

import contextlib
import threading

_LOCK = threading.Lock()
_DONE = threading.Event()
_LOCK_START = threading.Lock()
_started = False


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
    with contextlib.suppress(Exception):  # a broken install fails where it is needed, loudly
        import_arrow()
