"""The cyclic garbage collector paused while a bulk read makes many objects (ADR 0132).

A resume fetches ~40,000 node rows and decodes them into ~120,000 messages, parts and
tuples. None of them can form a cycle, but every 700 allocations CPython runs a collection,
and as the new objects age into the older generations the full collections traverse the
whole heap (every module the kernel imported) several times: ~13 ms of the fetch and
~35 ms of the decode of a 10,000-turn session, for no garbage. Pausing the collector for
the read leaves reference counting as it is (nothing acyclic is kept longer); the objects
made meanwhile are looked at once by the next collection, as they would have been.

The pause is shared: reads on two threads (the store's worker fetching, the caller
decoding) nest, and the collector comes back when the last one ends, only if it was
enabled when the first began (a program that runs with the collector off keeps it off).
A program that switches the collector off while a pause is on finds it back on when the
pause ends; pauses are short (one read).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_restore = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector off for the ``with`` body (see the module)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()
