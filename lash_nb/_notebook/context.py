"""What the magics remember between cells: cores per store, open sessions, the bound session,
background tasks and the last turn result."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import ConfigurationError, LashError, SessionStillInUse
from .._providers.registry import NAMES as PROVIDERS
from .._providers.registry import (
    build_provider,
    check_key,
    environment_fingerprint,
    split_model_id,
)


class Defaults(Protocol):
    session: str
    store: str
    provider: str
    model: str
    residency: str
    offline_delay_s: float
    live_interval_s: float
    prices: str
    max_tool_output: int
    commit_wait_s: float
    shell: Any  # the IPython shell (its user_ns holds the notebook's @tool functions)


def make_provider(name: str, *, model: str | None, offline_delay_s: float) -> Any:
    """The provider ``%lash open --provider NAME`` uses: the registry's, as everywhere."""
    return build_provider(name, model=model or None, offline_delay_s=offline_delay_s)


@dataclass
class Binding:
    """One open session and how it was opened."""

    session: Any
    core: Any
    store: str
    provider: str
    model: str
    tool_names: tuple[str, ...] | None = None  # --tools as given (None: discovered)
    fresh: bool = False
    auto_opened: bool = False
    store_from: str | None = None  # whose store a new name took ("session 'a'"), ADR 169
    configured_store: str = ""  # %config LashMagics.store when it was opened
    read_only: bool = False  # %lash open --read-only: a DuckDB file only read
    drain: Any = None  # the session's NotebookDrain (one drain at a time), made on first use
    # the store's file was deleted or replaced since this kernel opened it: the sessions that
    # were open on the old one (closed by this open, which opened the file there now)
    replaced_file: tuple[str, ...] | None = None

    def drainer(self, interval_s: float) -> Any:
        if self.drain is None:
            from .drain import NotebookDrain

            self.drain = NotebookDrain(self.session, interval_s=interval_s)
        return self.drain


@dataclass
class NotebookContext:
    defaults: Defaults
    cores: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    current: str | None = None
    background: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    last_result: Any = None
    last_opened: Binding | None = None  # where a session named later goes (its store)
    core_env: dict[tuple[str, str, str], str] = field(default_factory=dict)  # provider env digest
    retired: list[Any] = field(default_factory=list)  # cores replaced after an env change
    # what the last %lash open asked for when it failed ("'c' in colleague.duckdb"), until one
    # succeeds: no session is then opened in the default store in its place
    failed_open: str | None = None

    def core_for(self, store: str, provider: str, model: str, *, read_only: bool = False) -> Any:
        from .._runtime.core import LashCore

        key = (store, provider, model)
        other = next((c for (s, _, _), c in self.cores.items()
                      if s == store and not c.closed
                      and bool(getattr(c.store, "read_only", False)) != read_only), None)
        if other is not None:  # one connection per file and process, opened one way
            how = "for reading only" if read_only else "for writing"
            raise ConfigurationError(
                f"{store} is open {'for writing' if read_only else 'read-only'} in this kernel; "
                f"use that session, or restart the kernel to open it {how}")
        if self.store_closed(store):  # the notebook closed a core of this store (and the
            for k in [k for k in self.cores if k[0] == store]:  # store they share): start over
                del self.cores[k]
        core = self.cores.get(key)
        env = environment_fingerprint(provider)
        if core is not None and self.core_env.get(key, "") != env:
            # a key or base URL changed in os.environ since (the fix a 401 asks for): a new
            # core with a new provider; sessions bound to the old one keep it until reopened
            self.retired.append(core)
            core = None
        if core is None:
            shared = next((c.store for (s, _, _), c in self.cores.items() if s == store), None)
            builder = LashCore.builder().provider(
                make_provider(provider, model=model, offline_delay_s=self.defaults.offline_delay_s)
            )
            if model:
                builder = builder.model(model)
            from .._store.target import is_duckdb_path

            if shared is None and (read_only or is_duckdb_path(store)):
                from .._store.duckdb import DuckDBStore

                try:
                    shared = (DuckDBStore(store, read_only=True) if read_only
                              else DuckDBStore(store, commit_wait_s=self.defaults.commit_wait_s))
                except LashError as err:  # the store's advice, in the option's spelling here
                    if err.magic_line is not None:
                        err.args = (err.magic_line, *err.args[1:])
                    raise
            # one store object per path: a DuckDB file is held by one connection per process
            core = builder.store(shared if shared is not None else store).build()
            self.cores[key] = core
            self.core_env[key] = env
        return core

    def set_commit_wait(self, seconds: float) -> None:
        """``%config LashMagics.commit_wait_s``: the DuckDB stores open here take it now."""
        for core in self.cores.values():
            if hasattr(core.store, "commit_wait_s"):
                core.store.commit_wait_s = seconds

    def store_closed(self, store: str) -> bool:
        """A core on ``store`` was closed in the notebook (``await core.close()``, as the
        quickstart's restart section does): the store its cores share is closed too."""
        return any(s == store and c.closed for (s, _, _), c in self.cores.items())

    async def open(
        self,
        name: str | None = None,
        *,
        fresh: bool = False,
        store: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        residency: str | None = None,
        tools: Sequence[Any] = (),
        tool_names: tuple[str, ...] | None = None,
        mode: str | None = None,
        shares: Mapping[str, Any] | None = None,
        read_only: bool = False,
    ) -> Binding:
        """Open (resume or, with ``fresh``, start over) and bind; ``tools`` (tool providers
        or functions) are attached to the session before it is returned."""
        d = self.defaults
        name = name or d.session
        # a session open in this kernel opens again where it is open and with its provider
        # and model, unless the line names others: not a new, empty session in the
        # configured default file (ADR 161)
        was = self.bindings.get(name)
        # a new name goes to the store the notebook is working in (the bound session's, else
        # the one opened last), not to the configured default file; the card says so (ADR 169)
        like, store_from = self._store_source(was) if store is None else (None, None)
        store = store or (like.store if like is not None else d.store)
        if store.startswith("~"):  # as a shell reads it; postgresql:// and :memory: stay
            store = os.path.expanduser(store)  # noqa: ASYNC240  (reads $HOME, not the disk)
        kept = was is not None and provider is None and model is None
        explicit, provider = provider, provider or (was.provider if kept and was else d.provider)
        named_model = model  # --model given: it wins over a configured model (ADR 41)
        model = (was.model if kept and was else d.model) if model is None else model
        if model and provider in PROVIDERS:  # a provider:model id names the provider too
            provider, model = split_model_id(model, provider=explicit, default=provider)
            provider = provider or d.provider
            named_model = model if named_model else None
        if provider not in PROVIDERS:
            raise ConfigurationError(
                f"unknown provider {provider!r}; use --provider one of {', '.join(PROVIDERS)}"
            )
        check_key(provider)
        replaced = await self._let_go_of_replaced_file(store)
        old = self.bindings.get(name)
        if old is not None:
            await old.session.close()
        core = self.core_for(store, provider, model, read_only=read_only)
        builder = core.session(name).residency(residency or d.residency).max_tool_output(
            d.max_tool_output)
        if named_model:
            builder = builder.model(named_model)
        if mode is not None:
            builder = builder.mode(mode).share(**(shares or {}))
        session = await (builder.open_fresh() if fresh else builder.open())
        admin = session.tools()
        for t in tools:
            admin.add_provider(t)
        binding = Binding(session, core, store, provider, model, tool_names, fresh,
                          store_from=store_from, configured_store=d.store, read_only=read_only,
                          replaced_file=replaced)
        self.bindings[name] = binding
        self.current = name
        self.last_opened = binding
        return binding

    async def _let_go_of_replaced_file(self, store: str) -> tuple[str, ...] | None:
        """An explicit open of ``store`` whose file this kernel opened and that is no longer
        at the path (a notebook that removes its store file to start from an empty one, run a
        second time in the same kernel): the sessions and cores on the old file are closed, so
        that this open opens the file at the path now (a new store where there is none), as a
        restarted kernel does. The names of the sessions closed; None: nothing was replaced."""
        stale = {id(c): c for (s, _, _), c in self.cores.items()
                 if s == store and not c.closed and getattr(c.store, "file_replaced", False)}
        if not stale:
            return None
        names = tuple(n for n, b in self.bindings.items() if id(b.core) in stale)
        for n in names:
            b = self.bindings.pop(n)
            # its commits would be refused (the file is gone): what it holds is in the old file
            with contextlib.suppress(Exception):
                await b.session.close()
        for key in [k for k, c in self.cores.items() if id(c) in stale]:
            with contextlib.suppress(Exception):
                await self.cores.pop(key).close()
        if self.current in names:
            self.current = None
        if self.last_opened is not None and id(self.last_opened.core) in stale:
            self.last_opened = None
        return names

    def _store_source(self, was: Binding | None) -> tuple[Binding | None, str | None]:
        """The open session whose store a ``%lash open NAME`` without ``--store`` takes, and
        how the card names it (None: the session itself, or the configured default)."""
        if was is not None:
            return was, None
        bound = self.bindings.get(self.current) if self.current is not None else None
        like, whose = ((bound, f"the store of session `{self.current}`") if bound is not None
                       else (self.last_opened, "the store this notebook used last"))
        if like is None or like.configured_store != self.defaults.store:
            return None, None  # none open, or %config LashMagics.store set since: that wins
        return like, whose

    async def binding(self, name: str | None = None, *, stored: bool = False,
                      replaced_ok: bool = False) -> Binding:
        """The named (or bound) session, opened on first use in the store and with the
        provider of the bound session (or the last one opened), else with the defaults.
        ``name`` is a verb's ``--session`` as typed (see :meth:`session_named`); ``stored``
        (a verb that only reads): a name neither open here nor in the store is refused, and
        nothing is opened (a typo is not a new, empty session; ADR 0215). ``replaced_ok``:
        a session whose file was deleted or replaced is given, not refused (``%lash backup``
        copies the file it holds, ADR 235)."""
        key = self.session_named(name) or self.current or self.defaults.session
        found = self.bindings.get(key)
        if found is not None and self.store_closed(found.store):
            raise ConfigurationError(
                f"session {key!r} was closed with its core (core.close()); "
                f"%lash open {key} opens it again from the store"
            )
        if found is not None:
            return found if replaced_ok else refuse_replaced(key, found)
        # a session named for one cell (or the first cell after a delete) goes to the store
        # the notebook already uses, with its provider, not to the configured default file;
        # the notebook stays bound to the session it was bound to
        kept = self.current
        bound = self.bindings.get(kept) if kept is not None else None
        like = bound or self.last_opened
        if like is None and self.failed_open is not None:  # not another file in its place
            from .._core.text import shown_name  # not at %load_ext (tests/test_import_cost.py)

            raise ConfigurationError(
                f"no session is open: %lash open {self.failed_open} failed (see its error); "
                f"open a store that works, or %lash open {shown_name(key)} to use "
                f"{self.defaults.store!r}")
        same: dict[str, Any] = {}
        configured = like is not None and like.configured_store != self.defaults.store
        if like is not None and not configured:  # its file went: only an open opens the new
            refuse_replaced(key, like)
        if like is not None:
            same = {"provider": like.provider}
            if not configured:  # a %config LashMagics.store set since wins (ADR 169)
                same["store"] = like.store
                same["read_only"] = like.read_only  # the file is open that way here
            if like.model != self.defaults.model:
                same["model"] = like.model
        if stored and name is not None:
            await self._refuse_unknown(key, **same)
        binding = await self.open(key, tools=list(self.discover_tools()), **same)
        binding.auto_opened = True
        if bound is not None:
            self.current = kept
        where = "in memory" if binding.store == ":memory:" else f"in {binding.store!r}"
        if like is None:
            print(f"no session was open: opened session {key!r} {where} "
                  f"(provider {binding.provider}); %lash open NAME --store PATH picks another"
                  + _opened_in_python(binding.session.store))
        else:
            whose = ("the store set with %config LashMagics.store" if configured else
                     "the store this notebook used last" if bound is None else
                     f"the store of session {self.current!r}")
            print(f"session {key!r} was not open: opened it {where} (provider "
                  f"{binding.provider}), {whose}; %lash open NAME --store PATH picks another")
        return binding

    async def _refuse_unknown(self, key: str, *, store: str | None = None,
                              provider: str | None = None, model: str | None = None,
                              read_only: bool = False) -> None:
        """Refuse ``key`` unless the store it would open in holds it (a row or queued work) or
        this kernel has it open there with the Python API (ADR 219); the close names of the
        store and of this kernel are offered."""
        from .._core.secrets import scrub_urls
        from .._store.target import is_duckdb_path

        d = self.defaults
        store = store or d.store
        where = "memory" if store == ":memory:" else repr(scrub_urls(store))
        path = os.path.expanduser(store)  # noqa: ASYNC240  (reads $HOME)
        if is_duckdb_path(store) and not os.path.exists(path):  # noqa: ASYNC240
            raise ConfigurationError(
                f"no session {key!r}: {where} does not exist yet and was not created; "
                f"%lash open {key} starts a session there")
        here = _open_in_python(path)  # opened with the Python API, no turn yet (ADR 219)
        if key in here:
            return
        core = self.core_for(path, provider or d.provider,
                             d.model if model is None else model, read_only=read_only)
        known = [s.session_id for s in await core.list_sessions()]
        if key in known or await core.store.list_queued_work(key, include_claimed=True):
            return
        names = list(dict.fromkeys([*self.bindings, *known, *here]))
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ConfigurationError(
            f"no session {key!r} in {where} (nothing was opened); {hint}%lash sessions lists "
            f"the stored sessions, %lash open {key} starts a new one")

    def discover_tools(self) -> list[Any]:
        """The ``@tool`` objects defined at the top level of the notebook (names not
        starting with ``_``), in definition order."""
        from .._tools.function import FunctionTool

        shell = self.defaults.shell
        ns = shell.user_ns if shell is not None else {}
        found: dict[int, Any] = {}
        for k, v in list(ns.items()):
            if isinstance(v, FunctionTool) and not k.startswith("_"):
                found.setdefault(id(v), v)
        return list(found.values())

    def session_named(self, name: str | None) -> str | None:
        """A verb's ``--session`` as typed: ``{name}`` is a notebook variable, an empty one is
        refused (it meant the session in use); None when not given."""
        if name is None:
            return None
        from .parsing import given_name

        shell = self.defaults.shell
        in_use = self.current or self.defaults.session
        return given_name(name, shell.user_ns if shell is not None else {}, option="--session",
                          example="analysis",
                          otherwise=f"leave --session out for the session in use ({in_use!r})")

    def sync_binding(self, name: str | None = None) -> Binding:
        key = self.session_named(name) or self.current
        if key is None or key not in self.bindings:
            raise ConfigurationError(
                f"no open session {key or ''!r}; run %lash open [SESSION] first".replace(" ''", "")
            )
        return self.bindings[key]

    async def close(self) -> None:
        for task in self.background.values():
            task.cancel()
        for b in self.bindings.values():
            with contextlib.suppress(SessionStillInUse):  # a user's clone() must not keep
                await b.session.close()  # the kernel from closing its stores (ADR 47)
        for core in [*self.cores.values(), *self.retired]:
            await core.close()
        self.bindings.clear()
        self.cores.clear()
        self.retired.clear()


def refuse_replaced(key: str, b: Binding) -> Binding:
    """``b`` unless its DuckDB file was deleted or replaced since this kernel opened it: a
    read would answer from the old file's data, which no file at the path holds now, and a
    turn could not be saved; refused, with the ``%lash open`` line that opens the file there
    now (ADR 230, 233). A ``stat``, ~2 µs."""
    if not getattr(b.core.store, "file_replaced", False):
        return b
    from .._store.duckdb.lock import NotTheHeldFile

    line = (f"%lash open {shlex.quote(key)} --store {shlex.quote(b.store)}"
            + (" --read-only" if b.read_only else ""))
    keep = ""
    if getattr(b.core.store, "holding_file", False):  # its data is still here (ADR 235)
        keep = (f"; first, %lash backup --session {shlex.quote(key)} rescued.duckdb copies the "
                "old file's data, which this kernel still holds, to a new file")
    raise NotTheHeldFile(
        f"{b.store} was deleted, moved away or replaced since this kernel opened it: nothing was "
        f"read or run (the old file's data is at no path now); {line} opens the file there now "
        f"(a new store where there is none), or put it back to go on with it{keep}")


def _open_in_python(path: str) -> list[str]:
    """The sessions this kernel holds open with the Python API in the store file ``path``."""
    from .._runtime.retention import opens_here
    from .._store.target import is_duckdb_path

    if not is_duckdb_path(path):
        return []
    where = os.path.realpath(path)
    return [sid for sid, store in opens_here()
            if isinstance(p := getattr(store, "path", None), str) and is_duckdb_path(p)
            and os.path.realpath(os.path.expanduser(p)) == where]


def _opened_in_python(bound: Any) -> str:
    """The sessions this kernel opened with the Python API in a store file (the magics know
    only their own): the ``%lash open`` that binds each, so a query is not run on the wrong
    file without the user knowing (ADR 0201)."""
    from .._runtime.retention import opens_here

    # the newest first: the session just opened in the cell above is the one meant
    found = list(dict.fromkeys(
        (sid, path) for sid, store in opens_here()
        if store is not bound and isinstance(path := getattr(store, "path", None), str)))
    if not found:
        return ""
    return ("; opened in Python here, not bound: " + ", ".join(
        f"%lash open {sid} --store {shlex.quote(path)}" for sid, path in found[:3]))
