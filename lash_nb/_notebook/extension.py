"""``%load_ext lash_nb``: register the magics, the ``%%lash`` input transformer and defaults.

The transformer rewrites, before IPython's own magic handling:

- a cell whose first line is ``%%lash ARGS`` into ``await run_cell(ARGS, BODY)``;
- each top-level line ``%lash ARGS`` into ``await run_line(ARGS, False)`` and
  ``name = %lash ARGS`` into ``name = await run_line(ARGS, True)``.

After IPython's own handling, a ``%lash`` line inside a block (``for``, ``if``, ``with``,
``try``: IPython made it ``get_ipython().run_line_magic('lash', ARGS)``) is awaited the same
way, unless it stands in a function or class body, which cannot await (ADR 160). Code that
``%%time``, ``%time``, ``%%timeit`` or ``%%capture`` transform while the cell runs is not
awaited: in a kernel its ``%lash`` line is refused in one line, in a terminal shell the magic
runs the turn synchronously. Another cell magic's body is left as typed.

ipykernel transforms a cell before deciding whether it is async, so the cell becomes an awaiting
cell: on ipykernel >= 7.4 widget messages (Stop) are handled while it waits, and a kernel
interrupt arrives as ``CancelledError`` in the turn (see ``runner.py``). Older kernels handle
one message at a time: the turn still streams and the interrupt still stops it, but a Stop click
waits for the cell, so loading says so in one line (ADR 23).

In a kernel, once the cell that loaded the extension has ended and the kernel has said it is
idle, a background thread imports what the first ``%lash`` turn needs (the turn verb, the
runtime, the turn widget with anywidget, the DuckDB store): the load stays as quick to idle as
before (ADR 80), and the first turn, a few seconds later, finds those modules imported
(ADR 116). It imports only while the kernel is idle; a ``%lash`` that comes while it still
imports stops it after the module in hand and waits for that, so the two never import
lash_nb's modules at the same time. ``LASH_NB_WARM_IMPORTS=0`` turns the thread off.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
import threading
from importlib import import_module
from types import FrameType
from typing import Any, TypeGuard

from IPython.core.error import UsageError

from .config import configured_magics, reread_pyproject
from .magics import LashMagics

ENTRY = "__import__('lash_nb._notebook.extension', fromlist=['run_line'])"
_LINE = re.compile(r"^(?P<assign>[A-Za-z_][\w.]*\s*=\s*)?%lash(?:[ \t]+(?P<rest>.*?))?[ \t]*$")
_LASH_CALL = re.compile(r"""run_line_magic\(\s*['"]lash['"]""")


def transform_lash(lines: list[str]) -> list[str]:
    if not any("%lash" in line for line in lines):
        return lines
    unawaited = _unawaited()
    if unawaited is False:  # the magic runs the turn itself, synchronously
        return lines
    start = next((i for i, line in enumerate(lines) if line.strip()), 0)  # as IPython skips
    first = lines[start]  # blank lines above a cell magic
    if first.startswith("%%lash") and (len(first.rstrip("\n")) == 6 or first[6] in " \t\n"):
        args = first[6:].strip()
        if unawaited:
            return [f"{ENTRY}.refuse_unawaited({args!r})\n"]
        body = "".join(lines[start + 1:])
        return [f"await {ENTRY}.run_cell({args!r}, {body!r})\n"]
    if first.startswith("%%"):  # another cell magic's body: that magic reads it (%%writefile,
        return lines  # %%markdown as text; %%time, %%capture transform it again when run)
    out = []
    for line in lines:
        m = _LINE.match(line.rstrip("\n"))
        if m is None:
            out.append(line)
            continue
        assign = m.group("assign") or ""
        rest = m.group("rest") or ""
        call = (f"{ENTRY}.refuse_unawaited({rest!r})" if unawaited else
                f"await {ENTRY}.run_line({rest!r}, {bool(assign)})")
        out.append(f"{assign}{call}\n")
    return out


def _unawaited() -> bool | None:
    """None for a cell's own code (its ``%lash`` lines are awaited). Otherwise the code is
    transformed while a cell runs, by a magic that runs it without awaiting it (``%%time``,
    ``%time``, ``%%timeit``, ``%%capture``): True where an event loop runs (a kernel: the
    line cannot wait for a turn there), False where none does (a terminal shell: the magic
    runs the turn synchronously)."""
    from IPython.core.interactiveshell import InteractiveShell

    running = InteractiveShell.run_code.__code__
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code is not running:
        frame = frame.f_back
    if frame is None:
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def refuse_unawaited(line: str) -> None:
    """What a ``%lash`` line becomes under ``%%time`` and the like in a kernel."""
    raise UsageError("%lash cannot run inside %%time, %time, %%timeit or %%capture in a "
                     "kernel: they run the line without awaiting it; run %lash in a cell of "
                     "its own (the turn's record shows how long it took)")


def await_lash_in_blocks(lines: list[str]) -> list[str]:
    """An ``input_transformers_post`` step: each ``get_ipython().run_line_magic('lash', ARGS)``
    outside any function, lambda or class body becomes ``(await run_block_line(ARGS,
    ASSIGNED))``, ASSIGNED being whether its value is used. In a kernel the magic call would
    otherwise run the turn as a background task: the cell ends at once and shows none of the
    answers."""
    src = "".join(lines)
    if _LASH_CALL.search(src) is None:  # most cells: no parse, no stack walk
        return lines
    unawaited = _unawaited()
    if unawaited is False:
        return lines
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return lines
    edits: list[tuple[int, int, int, str]] = []  # (line index, start, end, replacement)

    def visit(node: ast.AST, parent: ast.AST | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            return  # a body that cannot await at the top of a cell
        if _is_lash_magic_call(node) and node.lineno == node.end_lineno:
            args = node.args[1]
            assigned = not isinstance(parent, ast.Expr)
            text = ast.get_source_segment(src, args)
            new = (f"{ENTRY}.refuse_unawaited({text})" if unawaited else
                   f"(await {ENTRY}.run_block_line({text}, {assigned}))")
            end = node.end_col_offset if node.end_col_offset is not None else node.col_offset
            edits.append((node.lineno - 1, node.col_offset, end, new))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, node)

    visit(tree, None)
    if not edits:
        return lines
    out = src.splitlines(keepends=True)
    for row, start, end, new in sorted(edits, reverse=True):
        raw = out[row].encode()  # ast's columns count UTF-8 bytes
        out[row] = (raw[:start] + new.encode() + raw[end:]).decode()
    return out


def _is_lash_magic_call(node: ast.AST) -> TypeGuard[ast.Call]:
    """``get_ipython().run_line_magic('lash', <a string>)``, as IPython writes a magic line."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_line_magic" and len(node.args) == 2
            and not node.keywords):
        return False
    owner, (name, args) = node.func.value, node.args
    return (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
            and owner.func.id == "get_ipython" and not owner.args
            and isinstance(name, ast.Constant) and name.value == "lash"
            and isinstance(args, ast.Constant) and isinstance(args.value, str))


def _magics() -> LashMagics:
    from IPython import get_ipython

    ip = get_ipython()
    found = ip.magics_manager.registry.get("LashMagics") if ip is not None else None
    if found is None:
        raise UsageError("lash_nb is not loaded; run %load_ext lash_nb first")
    magics: LashMagics = found
    return magics


class TurnInterrupted(KeyboardInterrupt):
    """The kernel's interrupt stopped a turn this cell ran. The turn committed ``stopped:
    cancelled`` and its record is shown; the cell then ends as an interrupted cell does, so a
    loop in it goes no further and the cells queued after it (Run All) are not run: no
    further model call (ADR 167). IPython shows it in one line."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


def _end_if_interrupted(magics: LashMagics, before: Any) -> None:
    """Raise :class:`TurnInterrupted` when the turn the last ``%lash`` ran (the one it left in
    ``ctx.last_result``) was stopped by the kernel's interrupt."""
    after = magics.ctx.last_result
    cancellation = getattr(after, "cancellation", None) if after is not before else None
    if cancellation and cancellation.get("origin") == "kernel_interrupt":
        raise TurnInterrupted(
            f"the kernel's interrupt stopped turn {after.turn_id!r} (committed stopped: "
            "cancelled); the rest of the cell and the cells after it were not run")


async def run_line(line: str, assigned: bool = False) -> Any:
    magics = _magics()
    wait_for_warm_imports()
    before = magics.ctx.last_result
    await magics.after_unawaited_opens()
    out = await magics.dispatch(line, None, assigned=assigned)
    _end_if_interrupted(magics, before)
    return out


async def run_block_line(line: str, assigned: bool = False) -> Any:
    """A ``%lash`` line inside a block of the cell (a loop's body): :func:`run_line`, which
    ends the cell when the kernel's interrupt stopped its turn (ADR 160, 167)."""
    return await run_line(line, assigned)


async def run_cell(line: str, body: str) -> Any:
    magics = _magics()
    wait_for_warm_imports()
    before = magics.ctx.last_result
    await magics.after_unawaited_opens()
    out = await magics.dispatch(line, body, assigned=False)
    _end_if_interrupted(magics, before)
    return out


# what the first `%lash turn` imports beyond the extension: the turn verb, the runtime
# (records, turn machine, memory store), the turn widget (anywidget, ipywidgets, markdown-it),
# then the DuckDB store and duckdb (the default `LashMagics.store` is a file; last, as a
# `:memory:` or PostgreSQL store does not need them); not pandas or pyarrow, which a turn
# does not use
WARM_MODULES = ("lash_nb._notebook.verbs_turn", "lash_nb._runtime.core",
                "lash_nb._notebook.widgets.turn", "lash_nb._store.duckdb", "duckdb")
WARM_WAIT_S = 120.0
warmed = threading.Event()  # set when the warm-up thread has imported WARM_MODULES (or stopped)


class _Warm:
    """The warm-up's state, shared by the kernel's threads under one condition: the kernel is
    idle (as last published on its shell channel), a cell waits for the warm-up, a ``%lash``
    asked it to stop."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.idle = False
        self.waiters = 0
        self.stop = False
        self.thread: threading.Thread | None = None

    def may_import(self) -> bool:
        return self.stop or self.idle or self.waiters > 0

    def run(self) -> None:
        try:
            for name in WARM_MODULES:
                with self.cv:  # a cell the user runs meanwhile has the interpreter to itself
                    self.cv.wait_for(self.may_import)
                    if self.stop:
                        break
                try:
                    import_module(name)
                except Exception:  # the first turn imports it again and says why
                    continue
        finally:
            warmed.set()

    def kernel_status(self, idle: bool) -> None:
        """On the IOPub thread, right after the status message went out."""
        with self.cv:
            self.idle = idle
            if idle and self.thread is None:
                self.thread = threading.Thread(target=self.run, name="lash_nb-warm-imports",
                                               daemon=True)
                self.thread.start()
            self.cv.notify_all()


_warm = _Warm()
_warm_arranged = False


def wait_for_warm_imports() -> None:
    """Called by each ``%lash`` before it imports anything: a warm-up thread still importing
    stops after the module in hand and this waits for it, so the cell's thread and it never
    import lash_nb's modules at once (two threads importing modules that import each other
    can deadlock); the turn imports what is left itself, only what it needs."""
    thread = _warm.thread
    if thread is None or thread is threading.current_thread() or not thread.is_alive():
        return
    with _warm.cv:
        _warm.stop = True
        _warm.cv.notify_all()
    thread.join(WARM_WAIT_S)


def wait_until_warm(timeout: float = WARM_WAIT_S) -> bool:
    """From a cell: let the warm-up import while this cell waits, until it is done; False if
    none was arranged (not a kernel, or ``LASH_NB_WARM_IMPORTS=0``) or it took over ``timeout``."""
    with _warm.cv:
        if not _warm_arranged:
            return False
        _warm.waiters += 1
        _warm.cv.notify_all()
    try:
        return warmed.wait(timeout)
    finally:
        with _warm.cv:
            _warm.waiters -= 1


def warm_after_idle(ip: Any) -> bool:
    """Arrange the warm-up: a thread that imports WARM_MODULES, started when the kernel next
    publishes ``idle`` on its shell channel (the cell that loads the extension has ended and
    its reply has gone out), importing only while the kernel stays idle, so it competes
    neither with the load nor with a cell the user runs next. Only in a kernel (a terminal
    shell has no idle to wait for, and a script's next line needs no head start); returns
    whether it was arranged."""
    global _warm_arranged
    kernel = getattr(ip, "kernel", None)
    publish = getattr(kernel, "_publish_status", None)
    if (kernel is None or not callable(publish) or _warm_arranged
            or os.environ.get("LASH_NB_WARM_IMPORTS", "1") == "0"):
        return False
    # the IOPub thread sends each status message; a callback queued behind it runs once it is
    # sent, in the order the statuses were published
    schedule = getattr(getattr(kernel, "iopub_thread", None), "schedule", None)

    def publish_and_track(status: Any, *args: Any, **kwargs: Any) -> Any:
        out = publish(status, *args, **kwargs)
        channel = args[0] if args else kwargs.get("channel")
        if channel == "shell" and status in ("busy", "idle"):
            if warmed.is_set():
                if vars(kernel).get("_publish_status") is publish_and_track:
                    del kernel._publish_status  # the class's own method again
            elif callable(schedule):
                schedule(lambda: _warm.kernel_status(status == "idle"))
            else:
                _warm.kernel_status(status == "idle")
        return out

    kernel._publish_status = publish_and_track
    _warm_arranged = True
    return True


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


def serves_widgets_mid_cell() -> bool:
    """Whether the running ipykernel hands a widget's message to a cell that awaits."""
    return tuple(int(p) for p in re.findall(r"\d+", _ipykernel_version())[:2]) >= STOP_NEEDS


def kernel_stop_notice(ip: Any) -> str | None:
    """One line for kernels where a widget click waits for the running cell (ADR 23)."""
    if getattr(ip, "kernel", None) is None:
        return None  # a terminal or a test shell: no widgets to click
    if serves_widgets_mid_cell():
        return None
    running = _ipykernel_version()
    return (
        f"lash_nb: ipykernel {running} handles a widget's Stop only after the cell "
        "ends; stop a running turn with the kernel's interrupt button, or "
        "pip install -U 'ipykernel>=7.4' and restart the kernel"
    )


def load_ipython_extension(ip: Any) -> None:
    """Register lash_nb once however often it is loaded (ADR 219): the magics are made at the
    first load (``%reload_ext lash_nb`` reads pyproject.toml again and keeps them, with their
    open sessions, ADR 199); the cell callbacks and the input transformers are put back if an
    unload removed them, never twice."""
    magics: LashMagics | None = ip.magics_manager.registry.get("LashMagics")
    if magics is not None:  # %reload_ext lash_nb: the same magics, its sessions stay open
        print(reread_pyproject(magics))
    else:
        notice = kernel_stop_notice(ip)
        if notice is not None:
            print(notice, file=sys.stderr)
        magics = configured_magics(ip, LashMagics)  # a bad value: one line (ADR 203)
        ip.register_magics(magics)
    if all(c is not magics for c in ip.configurables):  # IPython's Magics() appends itself
        ip.configurables.append(magics)
    from . import cells  # a turn's outputs go out under the cell that runs (ADR 191)

    for event, callback in (("pre_run_cell", magics.cell_started),
                            ("pre_run_cell", cells.cell_started),
                            ("post_run_cell", cells.cell_ended)):
        if callback not in ip.events.callbacks[event]:
            ip.events.register(event, callback)
    cells.cell_started()  # %load_ext runs in a cell
    cleanup = ip.input_transformers_cleanup
    if transform_lash not in cleanup:
        cleanup.insert(0, transform_lash)
    if await_lash_in_blocks not in ip.input_transformers_post:
        ip.input_transformers_post.append(await_lash_in_blocks)
    warm_after_idle(ip)


def unload_ipython_extension(ip: Any) -> None:
    magics = ip.magics_manager.registry.get("LashMagics")
    if magics is not None and magics.cell_started in ip.events.callbacks["pre_run_cell"]:
        ip.events.unregister("pre_run_cell", magics.cell_started)
    from . import cells

    for event, callback in (("pre_run_cell", cells.cell_started),
                            ("post_run_cell", cells.cell_ended)):
        if callback in ip.events.callbacks[event]:
            ip.events.unregister(event, callback)
    cleanup = ip.input_transformers_cleanup
    if transform_lash in cleanup:
        cleanup.remove(transform_lash)
    if await_lash_in_blocks in ip.input_transformers_post:
        ip.input_transformers_post.remove(await_lash_in_blocks)
