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
from importlib import import_module
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Unicode, observe

from .._errors import LashError, SessionExecutionBusy
from .._providers.registry import NAMES as PROVIDERS
from .context import NotebookContext
from .settings import Count, Named, Seconds

Verb = Callable[["LashMagics", str, "str | None", bool], Awaitable[Any]]

# each verb's home module, imported on the first %lash that names it: the verbs import the
# runtime, the stores and the providers, which %load_ext does not (ADR 80)
VERBS: dict[str, tuple[str, str]] = {
    "open": ("verbs_turn", "open_"),
    "turn": ("verbs_turn", "turn"),
    "enqueue": ("verbs_queue", "enqueue"),
    "queue": ("verbs_queue", "queue"),
    "drain": ("verbs_queue", "drain"),
    "stop": ("verbs_queue", "stop"),
    "wait": ("verbs_queue", "wait"),
    "tools": ("verbs_info", "tools"),
    "mcp": ("verbs_mcp", "mcp"),
    "prompt": ("verbs_prompt", "prompt"),
    "usage": ("verbs_info", "usage"),
    "sessions": ("verbs_info", "sessions"),
    "graph": ("verbs_info", "graph"),
    "sql": ("verbs_info", "sql"),
    "replay": ("verbs_info", "replay"),
    "last": ("verbs_info", "last"),
    "backup": ("verbs_info", "backup"),
    "help": ("verbs_info", "help_"),
}
CELL_VERBS = ("turn", "enqueue", "sql")


def verb_function(verb: str) -> Verb:
    module, name = VERBS[verb]
    found: Verb = getattr(import_module(f"{__package__}.{module}"), name)
    return found


def verb_args(verb: str) -> Callable[[LashMagics, str, str | None], Any]:
    """The synchronous part of a verb: parse and check its arguments."""
    module = import_module(f"{__package__}.{VERBS[verb][0]}")
    found: Callable[[LashMagics, str, str | None], Any] = (
        module.mcp_args if verb == "mcp" else module.ARGS[verb])
    return found


def _one_line(exc: BaseException) -> UsageError:
    if isinstance(exc, SessionExecutionBusy):
        from .running_elsewhere import busy_line

        return UsageError(busy_line(exc.session_id, exc.holder))
    return UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


HELP_FLAGS = ("-h", "--help")


def route(line: str, cell: str | None) -> tuple[str, str]:
    """``(verb, rest)``; a ``%%lash`` cell without a verb is a turn."""
    stripped = line.strip()
    first, _, rest = stripped.partition(" ")
    if first in HELP_FLAGS:  # "%%lash --help": the turn forms; "%lash -h": every verb
        return "help", "turn" if cell is not None else ""
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
    if rest.split(maxsplit=1)[:1] in (["-h"], ["--help"]):  # as any command line takes it;
        return "help", first  # only right after the verb: a prompt or query may say --help
    return first, rest.strip()


@magics_class
class LashMagics(Magics):
    session = Named("default", what="a session name", example="analysis",
                    help="session id used when no session is named").tag(config=True)
    store = Named("lash.duckdb", what='a DuckDB path, a postgresql:// DSN or ":memory:"',
                  example="lash.duckdb", help="DuckDB path, ':memory:' or postgresql:// DSN"
                  ).tag(config=True)
    provider = Unicode("offline", help="|".join(PROVIDERS)).tag(config=True)
    model = Unicode("", help="model id ('' = the provider's default)").tag(config=True)
    residency = Unicode("keep_all", help="keep_all|active_path_only").tag(config=True)
    offline_delay_s = Seconds(0.03, example="0.03", zero=True, help="seconds between "
                              "offline-provider deltas (0: no pause)").tag(config=True)
    live_interval_s = Seconds(0.05, example="0.05", help="minimum seconds between widget "
                              "flushes").tag(config=True)
    prices = Unicode("default", help="costs shown: default (bundled snapshot), none, a CSV path "
                     "or a notebook variable holding {model: {bucket: usd_per_million}}"
                     ).tag(config=True)
    attach_max_bytes = Count(5_000_000, unit="bytes", help="bytes allowed per --attach object "
                             "or file").tag(config=True)
    attach_turn_max_bytes = Count(20_000_000, unit="bytes", help="bytes allowed for all of a "
                                  "turn's --attach").tag(config=True)
    sql_rows = Count(50, unit="rows", zero="shows every row", help="rows a bare %lash sql "
                     "shows (the first ones; the rest are counted, not loaded); df = %lash sql "
                     "... holds every row; 0 shows every row").tag(config=True)
    max_tool_output = Count(65_536, unit="characters", help="characters of a tool's output the "
                            "model is sent, in sessions opened after it is set (a tool's own "
                            "max_output wins)").tag(config=True)

    commit_wait_s = Seconds(600.0, example="60", help="seconds a finished turn's commit waits "
                            "for a full disk or a read-only, moved or busy DuckDB file before the "
                            "turn is left NOT saved (Stop or the kernel's interrupt end the wait "
                            "sooner)").tag(config=True)

    @observe("commit_wait_s")
    def _commit_wait_changed(self, change: Any) -> None:
        ctx = getattr(self, "ctx", None)  # None: set by the config while being built
        if ctx is not None:
            ctx.set_commit_wait(change["new"])  # the stores this notebook has open take it

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.ctx = NotebookContext(self)
        self.cells_run = 0  # counted by pre_run_cell: which lines share a cell (a loop's)
        self.said: tuple[int, list[str]] | None = None  # the last {name} note (parsing.py)
        self.from_pyproject: dict[str, Any] = {}  # the settings [tool.lash_nb] gave (config.py)
        # %lash open lines that ran as background tasks (not rewritten: the cell that loaded
        # the extension); the next rewritten %lash line or cell waits for them (ADR 230)
        self.unawaited_opens: list[asyncio.Future[Any]] = []

    async def after_unawaited_opens(self) -> None:
        """Wait for the ``%lash open`` lines an earlier cell ran as background tasks: with
        ``%load_ext lash_nb`` and ``%lash open demo`` in one cell, the next cell's turn found no
        session yet and ran in a 'default' one opened in its place."""
        pending = [t for t in self.unawaited_opens if not t.done()]
        self.unawaited_opens = pending
        if pending:
            await asyncio.wait(pending)

    def cell_started(self, *_info: Any) -> None:
        self.cells_run += 1

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
            out = await verb_function(verb)(self, rest, cell, assigned)
        except (LashError, ValueError) as exc:  # misuse: say what to do in one line
            raise _one_line(exc) from exc
        if not assigned and type(out).__name__ == "DataFrame":  # shown: names escaped (0219)
            from .._reports.frames import shown_names

            out = shown_names(out)
        return out

    def check(self, line: str, cell: str | None = None) -> None:
        """Raise the verb's argument errors now, synchronously (the verb parses again)."""
        verb, rest = route(line, cell)
        try:
            parsed = verb_args(verb)(self, rest, cell)
            if verb != "open":  # open reads its name itself; the others where they bind
                self.ctx.session_named(getattr(parsed[0] if isinstance(parsed, tuple)
                                               else parsed, "session", None))
        except (LashError, ValueError) as exc:
            raise _one_line(exc) from exc

    # IPython's own expansion ($x, {expression}) would rewrite a prompt before lash sees it,
    # and only where the transformer does not reach (a line in a block, run_line_magic): lash's
    # documented {name} substitution is the only one, wherever the line stands (ADR 160)
    @no_var_expand
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
        if route(line, cell)[0] == "open":
            self.unawaited_opens.append(task)
        print("%lash runs as a background task here (returned): this line was not rewritten into "
              "an await. Put %load_ext lash_nb in a cell of its own, and write %lash in the cell "
              "itself or a for/if/with block of it, not in a function (or await the task)")
        return task
