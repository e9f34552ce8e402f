"""``%load_ext lash_nb``: register the magics, the ``%%lash`` input transformer and defaults.

The transformer rewrites, before IPython's own magic handling:

- a cell whose first line is ``%%lash ARGS`` into ``await run_cell(ARGS, BODY)``;
- each top-level line ``%lash ARGS`` into ``await run_line(ARGS, False)`` and
  ``name = %lash ARGS`` into ``name = await run_line(ARGS, True)``.

ipykernel transforms a cell before deciding whether it is async, so the cell becomes an awaiting
cell: on ipykernel >= 7.4 widget messages (Stop) are handled while it waits, and a kernel
interrupt arrives as ``CancelledError`` in the turn (see ``runner.py``). Older kernels handle
one message at a time: the turn still streams and the interrupt still stops it, but a Stop click
waits for the cell, so loading says so in one line (ADR 23).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from IPython.core.error import UsageError

from .config import pyproject_defaults
from .magics import LashMagics

ENTRY = "__import__('lash_nb._notebook.extension', fromlist=['run_line'])"
_LINE = re.compile(r"^(?P<assign>[A-Za-z_][\w.]*\s*=\s*)?%lash(?:[ \t]+(?P<rest>.*?))?[ \t]*$")


def transform_lash(lines: list[str]) -> list[str]:
    if not lines:
        return lines
    first = lines[0]
    if first.startswith("%%lash") and (len(first.rstrip("\n")) == 6 or first[6] in " \t\n"):
        args = first[6:].strip()
        body = "".join(lines[1:])
        return [f"await {ENTRY}.run_cell({args!r}, {body!r})\n"]
    out = []
    for line in lines:
        m = _LINE.match(line.rstrip("\n"))
        if m is None:
            out.append(line)
            continue
        assign = m.group("assign") or ""
        rest = m.group("rest") or ""
        out.append(f"{assign}await {ENTRY}.run_line({rest!r}, {bool(assign)})\n")
    return out


def _magics() -> LashMagics:
    from IPython import get_ipython

    ip = get_ipython()
    found = ip.magics_manager.registry.get("LashMagics") if ip is not None else None
    if found is None:
        raise UsageError("lash_nb is not loaded; run %load_ext lash_nb first")
    magics: LashMagics = found
    return magics


async def run_line(line: str, assigned: bool = False) -> Any:
    return await _magics().dispatch(line, None, assigned=assigned)


async def run_cell(line: str, body: str) -> Any:
    return await _magics().dispatch(line, body, assigned=False)


STOP_NEEDS = (7, 4)


def _ipykernel_version() -> str:
    """The running kernel's version: ipykernel is imported already (it runs this shell), so its
    ``__version__`` is free, while ``importlib.metadata`` scans the installed distributions
    (10-20 ms on a loaded machine, about as much as the rest of ``%load_ext``)."""
    found = getattr(sys.modules.get("ipykernel"), "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import version

    return version("ipykernel")


def kernel_stop_notice(ip: Any) -> str | None:
    """One line for kernels where a widget click waits for the running cell (ADR 23)."""
    if getattr(ip, "kernel", None) is None:
        return None  # a terminal or a test shell: no widgets to click
    running = _ipykernel_version()
    if tuple(int(p) for p in re.findall(r"\d+", running)[:2]) >= STOP_NEEDS:
        return None
    return (
        f"lash_nb: ipykernel {running} handles a widget's Stop only after the cell "
        "ends; stop a running turn with the kernel's interrupt button, or "
        "pip install -U 'ipykernel>=7.4' and restart the kernel"
    )


def load_ipython_extension(ip: Any) -> None:
    if "LashMagics" in ip.magics_manager.registry:
        return
    notice = kernel_stop_notice(ip)
    if notice is not None:
        print(notice, file=sys.stderr)
    magics = LashMagics(ip)
    configured = ip.config.get("LashMagics", {})
    for key, value in pyproject_defaults().items():
        if key not in configured:
            setattr(magics, key, value)
    ip.register_magics(magics)
    ip.configurables.append(magics)
    cleanup = ip.input_transformers_cleanup
    if transform_lash not in cleanup:
        cleanup.insert(0, transform_lash)


def unload_ipython_extension(ip: Any) -> None:
    cleanup = ip.input_transformers_cleanup
    if transform_lash in cleanup:
        cleanup.remove(transform_lash)
