"""Holding Ctrl-C while a commit runs on the main thread (``worker.run_here``)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum wrapping
import threading
from typing import Any


class sigint_held:
    """Hold Ctrl-C (SIGINT) until the block is done: a commit run on the main thread must
    not stop between its INSERT and the bookkeeping that records it (the row would be in
    ``commit_log`` and not in the hold, and the next fold would delete it unfolded). The
    interrupt is delivered right after, as it came. Other threads get no signals. (The C
    module: ``signal``'s enum wrapping formats the handler's repr, ~0.1 ms; a class, not a
    ``contextlib.contextmanager`` generator: a commit made here enters one.)"""

    __slots__ = ("_came", "_prior")

    def __enter__(self) -> None:
        self._prior: Any = None
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            prior = _signal.getsignal(_signal.SIGINT)
        except (ValueError, OSError):
            return
        if prior is None:  # a handler not set from Python: nothing to hold it with
            return
        came: list[Any] = []
        self._came = came
        _signal.signal(_signal.SIGINT, lambda signum, frame: came.append(frame))
        self._prior = prior

    def __exit__(self, *exc: object) -> None:
        prior = self._prior
        if prior is None:
            return
        _signal.signal(_signal.SIGINT, prior)
        came = self._came
        if came and callable(prior):
            prior(_signal.SIGINT, came[0])
        elif came and prior == _signal.SIG_DFL:
            _signal.raise_signal(_signal.SIGINT)
