"""Import pandas and pyarrow once per process, one thread at a time, pandas first.

pandas imports pyarrow, and pyarrow imports pandas at its first array. Two threads importing
them in opposite orders break each other (``ImportError: cannot import name ... from partially
initialized module``; with pandas 2.2 and pyarrow 15 on every first report). The store starts
the import on a background thread two seconds after it opens (it takes seconds on a busy machine,
and the first statements need neither: a resume reads its rows without them); every store
path that touches pyarrow calls :func:`import_arrow` first, which waits for that import (or
does it) instead of racing it.

Why later: the import holds the GIL for most of its 0.3-3 s, and started at once it ran beside
the open and first read of a resumed session, nearly doubling a cold resume of 10,000 turns
(ADR 0076). Two seconds later it runs while the user reads and types; a commit or report
that comes first imports it itself.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_DONE = threading.Event()


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


def import_arrow_in_background(after_s: float = 2.0) -> None:
    if not _DONE.is_set():
        timer = threading.Timer(after_s, import_arrow)
        timer.name, timer.daemon = "lash-arrow-import", True
        timer.start()
