"""``%lash`` / ``%%lash``: a verb router over the session API.

Every verb is a coroutine ``verb(magics, argline, cell, assigned)``. The input transformer in
``extension.py`` turns top-level ``%lash ...`` lines and ``%%lash`` cells into
``await run_line(...)`` / ``await run_cell(...)``, so turns run as awaited coroutines (Stop and
kernel interrupt work). The registered magic itself is the fallback for calls the transformer
cannot see (inside a function, ``run_line_magic``): with no running loop it runs the verb on
IPython's own asyncio loop; inside a running loop it schedules a task and returns it.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Float, Unicode

from .._errors import LashError
from . import verbs_info as info
from . import verbs_mcp, verbs_prompt
from . import verbs_turn as turn
from .context import NotebookContext

Verb = Callable[["LashMagics", str, "str | None", bool], Awaitable[Any]]

VERBS: dict[str, Verb] = {
    "open": turn.open_,
    "turn": turn.turn,
    "enqueue": turn.enqueue,
    "queue": turn.queue,
    "drain": turn.drain,
    "stop": turn.stop,
    "tools": info.tools,
    "mcp": verbs_mcp.mcp,
    "prompt": verbs_prompt.prompt,
    "usage": info.usage,
    "sessions": info.sessions,
    "graph": info.graph,
    "sql": info.sql,
    "replay": info.replay,
    "help": info.help_,
}
CELL_VERBS = ("turn", "enqueue", "sql")
ARGS: dict[str, Callable[[LashMagics, str, str | None], Any]] = {
    **turn.ARGS, **info.ARGS, "mcp": verbs_mcp.mcp_args, **verbs_prompt.ARGS}


def _one_line(exc: BaseException) -> UsageError:
    return UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def route(line: str, cell: str | None) -> tuple[str, str]:
    """``(verb, rest)``; a ``%%lash`` cell without a verb is a turn."""
    stripped = line.strip()
    first, _, rest = stripped.partition(" ")
    if cell is not None and (not first or first.startswith("-")):
        return "turn", stripped
    if not first:
        return "help", ""
    if first not in VERBS:
        close = difflib.get_close_matches(first, list(VERBS), n=1, cutoff=0.5)
        hint = f"did you mean %lash {close[0]}? " if close else ""
        raise UsageError(f"unknown %lash verb {first!r}; {hint}%lash help lists the verbs")
    if cell is not None and first not in CELL_VERBS:
        raise UsageError(
            f"%%lash {first} takes no cell body; use the line form %lash {first}, "
            "or write the prompt in a plain %%lash cell"
        )
    return first, rest.strip()


@magics_class
class LashMagics(Magics):
    session = Unicode("default", help="session id used when no session is named").tag(config=True)
    store = Unicode("lash.duckdb", help="DuckDB path, ':memory:' or postgresql:// DSN").tag(config=True)
    provider = Unicode("offline", help="offline|openai|anthropic|openrouter|ollama").tag(config=True)
    model = Unicode("", help="model id ('' = the provider's default)").tag(config=True)
    residency = Unicode("keep_all", help="keep_all|active_path_only").tag(config=True)
    offline_delay_s = Float(0.03, help="seconds between offline-provider deltas").tag(config=True)
    live_interval_s = Float(0.05, help="minimum seconds between widget flushes").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.ctx = NotebookContext(self)

    @property
    def user_ns(self) -> dict[str, Any]:
        """The notebook's namespace (prompt interpolation reads it, ``-o NAME`` writes it)."""
        if self.shell is None:  # only a LashMagics built by hand, outside IPython
            raise RuntimeError("LashMagics needs an IPython shell; %load_ext lash_nb registers it")
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    async def dispatch(self, line: str, cell: str | None = None, *, assigned: bool = False) -> Any:
        verb, rest = route(line, cell)
        try:
            return await VERBS[verb](self, rest, cell, assigned)
        except (LashError, ValueError) as exc:  # misuse: say what to do in one line
            raise _one_line(exc) from exc

    def check(self, line: str, cell: str | None = None) -> None:
        """Raise the verb's argument errors now, synchronously (the verb parses again)."""
        verb, rest = route(line, cell)
        try:
            ARGS[verb](self, rest, cell)
        except (LashError, ValueError) as exc:
            raise _one_line(exc) from exc

    @line_cell_magic
    def lash(self, line: str, cell: str | None = None) -> Any:
        """Agent sessions in the notebook; ``%lash help`` lists the verbs."""
        self.check(line, cell)  # argument errors raise here, not inside a background task
        coro = self.dispatch(line, cell, assigned=True)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            from IPython.core.async_helpers import get_asyncio_loop

            return get_asyncio_loop().run_until_complete(coro)
        task = asyncio.ensure_future(coro)
        print("%lash runs as a background task here (returned): this line was not rewritten into "
              "an await. Put %load_ext lash_nb in a cell of its own, and write %lash at the top "
              "level of a cell (or await the task)")
        return task
