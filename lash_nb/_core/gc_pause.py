"""The cyclic garbage collector paused while a bulk read makes many objects (ADR 0132).

A resume fetches ~40,000 node rows and decodes them into ~120,000 messages, parts and
tuples. None of them can form a cycle, but every 700 allocations CPython runs a collection,
and as the new objects age into the older generations the full collections traverse the
whole heap (every module the kernel imported) several times: ~13 ms of the fetch and
~35 ms of the decode of a 10,000-turn session, for no garbage. Pausing the collector for
the read leaves reference counting as it is (nothing acyclic is kept longer); the objects
made meanwhile are looked at once by the next collection, as they would have been.

How it pauses: the young generation's threshold is set to 0 (CPython then starts no
collection on its own) and put back afterwards. ``gc.isenabled()`` is never touched, so the
program's own ``gc.disable()`` / ``gc.enable()`` (on any thread, before, during or after a
pause) is what the collector is left with; ``gc.collect()`` still collects. A program that
sets the thresholds itself while a pause is on keeps its own: they are put back only when
they are still the pause's.

The pause is shared: reads on two threads (the store's worker fetching, the caller
decoding) nest, and the thresholds come back when the last one ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, ...] = ()
_paused: tuple[int, ...] = ()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic collection during the ``with`` body (see the module)."""
    global _depth, _saved, _paused
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(0, *_saved[1:])
            _paused = gc.get_threshold()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and gc.get_threshold() == _paused:
                gc.set_threshold(*_saved)
