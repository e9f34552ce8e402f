"""Opt-in: the CPU each test used, to find where a run's time goes (ADR 187).

``LASH_CPU_PROBE=<folder>`` (e.g. ``LASH_CPU_PROBE=/tmp/cpu bash scripts/test.sh``) makes each
pytest process (each xdist worker) append a line per test to ``<folder>/py3XX-<pid>.tsv``:
the node id, the test's wall seconds, the CPU seconds (user + sys) of the process itself and
those of the child processes it reaped during the test (kernels, workers). A child that
outlives its test (the shared Jupyter servers, with every kernel they started; the shared
Chromium and its Playwright driver) counts with the test that stops it. A pytest a test starts
inherits the variable and writes a file of its own, whose CPU is also in that test's line.
Without the variable nothing is measured.

Processes nobody waits for are not counted: Chromium's renderers outlive the processes that
start them (they are reparented to init), about half of Chromium's CPU (ADR 194).
``scripts/cpu_total.py COMMAND`` counts them too, for the whole command.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from typing import IO

import pytest

ENV = "LASH_CPU_PROBE"
_out: list[IO[str]] = []


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, reaped.ru_utime + reaped.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    folder = os.environ.get(ENV)
    if not folder:
        yield
        return
    if not _out:
        os.makedirs(folder, exist_ok=True)
        name = f"py3{sys.version_info.minor}-{os.getpid()}.tsv"
        _out.append(open(os.path.join(folder, name), "a", buffering=1, encoding="utf-8"))  # noqa: SIM115 (open for the whole session)
    start = time.monotonic()
    own0, reaped0 = _cpu()
    yield
    own1, reaped1 = _cpu()
    _out[0].write(f"{item.nodeid}\t{time.monotonic() - start:.2f}\t{own1 - own0:.2f}\t"
                  f"{reaped1 - reaped0:.2f}\n")
