"""Run a widget button's action on the kernel's event loop, from whatever thread got the click.

On ipykernel 7.4 a comm message is handled on the main thread while the loop runs, so the
action is simply scheduled as a task. With JupyterLab's comms-over-subshells the handler may
run on a subshell thread; then the coroutine is handed to the loop captured when the widget was
built (``run_coroutine_threadsafe``). Plain values (a sync callback's result) pass straight on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        io_loop = getattr(kernel, "io_loop", None)
        loop = getattr(io_loop, "asyncio_loop", None)
        return loop if isinstance(loop, asyncio.AbstractEventLoop) else None
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None


def run_action(
    loop: asyncio.AbstractEventLoop | None,
    result: Any,
    on_done: Callable[[BaseException | None], Any],
) -> None:
    """``result`` is a callback's return value; when it is awaitable, await it on ``loop``."""
    if not inspect.isawaitable(result):
        on_done(None)
        return

    async def wrapped(aw: Awaitable[Any]) -> None:
        try:
            await aw
        except Exception as exc:  # shown in the widget, not lost in a task
            on_done(exc)
            return
        on_done(None)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and (loop is None or running is loop):
        running.create_task(wrapped(result))
    elif loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(wrapped(result), loop)
    else:
        asyncio.run(wrapped(result))


def call_action(
    loop: asyncio.AbstractEventLoop | None,
    call: Callable[[], Any],
    on_done: Callable[[BaseException | None], Any],
) -> None:
    """Run a widget callback: a synchronous failure and an awaited one both reach ``on_done``."""
    try:
        result = call()
    except Exception as exc:
        on_done(exc)
        return
    run_action(loop, result, on_done)
