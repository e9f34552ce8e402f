"""``LashCore`` and its builders: configure once, open sessions by id.

Open rules (lash session spec §1.3-1.5):
- ``open()`` resumes what the store holds (or creates); ``open_fresh()`` ignores it and
  replaces it on the first commit; ``open_with_state(state)`` starts from an exported state
  whose ``session_id`` must match (``StoreSessionMismatch``).
- Reconcile: the builder's policy wins except the provider id, which keeps the recorded one.
  If the live provider differs from the recorded id the turn fails ``ProviderUnavailable``;
  naming a provider explicitly on the session builder rebinds the session to it.
- Residency ``active_path_only`` loads only the active path; if that comes back empty but the
  store holds nodes, it reloads the full graph and the next commit rewrites the stored graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .._core.code_mode import MODE_CODE, MODES
from .._core.graph import SessionGraph, SessionNode
from .._core.llm import Provider, RetryPolicy
from .._core.prompt import PromptLayer
from .._core.queue import DEFAULT_MAX_ATTEMPTS
from .._core.text import check_id, check_new_name
from .._core.tool_output import DEFAULT_MAX_OUTPUT, check_max_output
from .._core.tools import ToolRegistry
from .._core.usage import TokenLedgerEntry, TokenUsage
from .._errors import ConfigurationError, StoreSessionMismatch
from .._store.base import (
    DEFAULT_LEASE_TTL_MS,
    LEASE_RENEW_INTERVAL_MS,
    ReadScope,
    SessionStore,
)
from .._store.memory import MemoryStore
from .._store.retention import VacuumReport
from .._store.target import MEMORY, is_dsn, is_duckdb_path
from .._tools.function import as_tool_provider
from .._tools.mcp import MCPServer
from .code_mode.mode import CodeMode, shared_data
from .code_mode.sandbox import Sandbox, SandboxLimits
from .lifecycle import ParkedSession, check_resumed, resume_builder
from .plugins import PluginSet
from .prompt_layers import PromptLayerSink, SessionSurface
from .replay import LiveReplayStore
from .retention import delete_session, vacuum
from .session import LashSession
from .state import SessionPolicy, SessionState, restore_configured

RESIDENCIES = ("keep_all", "active_path_only")
DEFAULT_MAX_TURNS = 50  # model calls per turn; lash has none (docs/adr/0014)


def open_store(store: Any) -> SessionStore:
    """A store object, ``None`` (in-memory), a DuckDB path or a ``postgresql://`` DSN."""
    if store is None:
        return MemoryStore()
    if isinstance(store, str) or hasattr(store, "__fspath__"):
        target = str(store)
        if is_dsn(target):
            from .._store.postgres import PostgresStore

            return PostgresStore(target)
        if target == MEMORY:
            return MemoryStore()
        from .._store.duckdb import DuckDBStore

        return DuckDBStore(target)
    if isinstance(store, SessionStore):
        return store
    raise ConfigurationError(
        f"store must be a path, a postgresql:// DSN or a lash_nb.stores store, got {type(store).__name__}"
    )


def import_before_writing(store: str) -> None:
    """A process that will write to the DuckDB file at ``store`` (a worker: it commits and
    folds) imports pandas and pyarrow before it opens the file, not while holding it (ADR
    0213); other stores need neither."""
    if not is_duckdb_path(store):
        return
    from .._store.duckdb.arrow import import_arrow

    import_arrow()


def model_for_kind(kind: str, model: str) -> str:
    """``model`` for a provider of ``kind``: a matching ``provider:`` prefix dropped (one
    parser: the provider registry's)."""
    if ":" not in model:
        return model
    from .._providers.registry import model_for_kind as registry_model_for_kind

    return registry_model_for_kind(kind, model)


def provider_model(provider: Any) -> str | None:
    """The model a provider was built for (``model=``), else its default model."""
    model = getattr(provider, "model", None) or getattr(provider, "default_model", None)
    return model if isinstance(model, str) and model else None


def default_provider() -> Any:
    """The provider chosen from the environment; the offline provider without a key."""
    try:
        from .._providers.select import select_provider
    except ImportError:
        from .._providers.offline import OfflineProvider

        return OfflineProvider()
    return select_provider().provider


class LashCoreBuilder(PromptLayerSink):
    """Also: ``prompt_contribution`` / ``replace_prompt_slot`` / ``clear_prompt_slot`` /
    ``prompt_template`` / ``prompt_layer`` set the core prompt layer (``prompt_layers.py``)."""

    def __init__(self) -> None:
        self._plugins: list[Any] = []
        self._provider: Any = None
        self._model: str | None = None
        self._max_turns: int | None = DEFAULT_MAX_TURNS
        self._tools: list[Any] = []
        self._store: Any = None
        self._system_prompt: str | None = None
        self._context: tuple[int | None, str] = (None, "window")
        self._max_tool_output = DEFAULT_MAX_OUTPUT
        self._residency = "keep_all"
        self._retry = RetryPolicy()
        self._lease_ttl_ms = DEFAULT_LEASE_TTL_MS
        self._max_batch_attempts = DEFAULT_MAX_ATTEMPTS
        self._replay_bounds = (2048, 120.0)
        self._child_store_factory: Callable[[str], Any] | None = None

    def child_store_factory(self, factory: Callable[[str], Any]) -> LashCoreBuilder:
        """Where child sessions live (lash ``LashCoreBuilder::child_store_factory``):
        ``factory(child_session_id)`` returns a store, a DuckDB path or a DSN. Used for
        sessions opened with ``.parent(...)`` and no ``.store(...)`` (``run_child`` too);
        without it children share the core's store. A path or DSN is opened once per core."""
        if not callable(factory):
            raise ConfigurationError(
                "child_store_factory takes a callable: child session id -> store, path or DSN")
        self._child_store_factory = factory
        return self

    def provider(self, provider: Any) -> LashCoreBuilder:
        if not hasattr(provider, "stream") or not hasattr(provider, "kind"):
            raise ConfigurationError(
                f"{provider!r} is not a provider: it needs a kind and a stream(request) method; "
                "see lash_nb.providers"
            )
        self._provider = provider
        return self

    def model(self, model: str) -> LashCoreBuilder:
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError("model must be a non-empty model id string")
        self._model = model
        return self

    def max_turns(self, n: int | None) -> LashCoreBuilder:
        """Model calls one turn may make before it stops ``max_turns`` (default 50);
        ``None`` removes the bound."""
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ConfigurationError("max_turns must be a positive int (model calls per turn) or None")
        self._max_turns = n
        return self

    def tools(self, *tools: Any) -> LashCoreBuilder:
        providers = [as_tool_provider(t) for t in tools]
        trial = ToolRegistry()  # two tools with one name fail here, not at the first open
        for i, tp in enumerate([*self._tools, *providers]):
            trial.add_source(tp, f"base:{i}")
        self._tools.extend(providers)
        return self

    def store(self, store: Any) -> LashCoreBuilder:
        self._store = store
        return self

    def system_prompt(self, prompt: str | None) -> LashCoreBuilder:
        self._system_prompt = prompt
        return self

    def plugin(self, plugin: Any) -> LashCoreBuilder:
        """Attach a plugin to every session of this core (``lash_nb.SessionPlugin``)."""
        PluginSet().add(plugin)  # a malformed plugin fails here, not at the first open
        self._plugins.append(plugin)
        return self

    def residency(self, residency: str) -> LashCoreBuilder:
        self._residency = _check_residency(residency)
        return self

    def context_window(self, tokens: int | None, *, on_overflow: str = "window") -> LashCoreBuilder:
        """The model's context window in tokens (None: unknown). A path estimated near it is
        sent as a window of its newest messages; ``on_overflow`` says what a "context length
        exceeded" failure does: ``"window"`` (default) sends such a window once more,
        ``"stop"`` ends the turn ``provider_error`` (ADR 60)."""
        if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool)
                                   or tokens < 1):
            raise ConfigurationError(
                f"context_window must be a positive int (tokens) or None, got {tokens!r}")
        if on_overflow not in ("window", "stop"):
            raise ConfigurationError(
                f"on_overflow must be 'window' or 'stop', got {on_overflow!r}")
        self._context = (tokens, on_overflow)
        return self

    def max_tool_output(self, chars: int) -> LashCoreBuilder:
        """Characters of a tool's output the model is sent, and the session keeps (default
        65,536): past it, the output's head and tail around a line saying what was left out.
        A tool's own ``@tool(max_output=...)`` (an MCP server's ``max_output``) wins (ADR 174)."""
        self._max_tool_output = check_max_output(chars, "max_tool_output")
        return self

    def retry_policy(self, policy: RetryPolicy) -> LashCoreBuilder:
        self._retry = policy
        return self

    def lease_ttl_ms(self, ttl_ms: int) -> LashCoreBuilder:
        self._lease_ttl_ms = int(ttl_ms)
        return self

    def max_batch_attempts(self, n: int) -> LashCoreBuilder:
        """Claims of one queued batch that may fail (raise, lose the lease, die) before it is
        parked ``failed`` with its error instead of being retried (default 3)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigurationError(
                f"max_batch_attempts must be a positive int (tries per queued batch), got {n!r}")
        self._max_batch_attempts = n
        return self

    def live_replay_bounds(self, max_events: int = 2048, max_age_s: float = 120.0) -> LashCoreBuilder:
        self._replay_bounds = (max_events, max_age_s)
        return self

    def build(self) -> LashCore:
        provider, model = self._provider, self._model
        if provider is None and model:  # .model("anthropic:claude-...") picks the provider
            from .._providers.registry import build_provider, check_key, split_model_id

            name, bare = split_model_id(model, default="env")
            if name not in (None, "env"):
                check_key(name, again="build the core again")
                provider, model = build_provider(name, model=bare), bare
        if provider is None:
            provider = default_provider()
        elif model:
            model = model_for_kind(provider.kind, model)
        model = model or provider_model(provider)
        if not model:
            raise ConfigurationError(
                f"no model for provider {provider!r}; call LashCoreBuilder.model('model-id')"
            )
        return LashCore(
            provider=provider,
            policy=SessionPolicy(provider.kind, model, self._max_turns, self._system_prompt,
                                 context_window=self._context[0],
                                 on_context_overflow=self._context[1],
                                 max_tool_output=self._max_tool_output),
            tools=list(self._tools),
            store=open_store(self._store),
            residency=self._residency,
            retry_policy=self._retry,
            lease_ttl_ms=self._lease_ttl_ms,
            replay=LiveReplayStore(*self._replay_bounds),
            max_batch_attempts=self._max_batch_attempts,
            prompt=self._layer(), plugins=list(self._plugins),
            child_store_factory=self._child_store_factory,
        )


class LashCore:
    """Configuration shared by the sessions it opens (provider, model, tools, store)."""

    def __init__(self, *, provider: Provider, policy: SessionPolicy, tools: list[Any],
                 store: SessionStore,
                 residency: str, retry_policy: RetryPolicy, lease_ttl_ms: int,
                 replay: LiveReplayStore, max_batch_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 prompt: PromptLayer | None = None, plugins: list[Any] | None = None,
                 child_store_factory: Callable[[str], Any] | None = None) -> None:
        self.provider = provider
        self.policy = policy
        self.tool_providers = tools
        self.store = store
        self.residency = residency
        self.retry_policy = retry_policy
        self.lease_ttl_ms = lease_ttl_ms
        self.lease_renew_s = min(LEASE_RENEW_INTERVAL_MS, lease_ttl_ms // 3) / 1000
        self.replay = replay
        self.max_batch_attempts = max_batch_attempts
        self.prompt = prompt or PromptLayer()  # the core prompt layer
        self.plugins = plugins or []
        self._closed = False
        self.child_store_factory = child_store_factory
        self._child_stores: dict[str, SessionStore] = {}  # opened from factory paths / DSNs

    def child_store(self, child_session_id: str) -> SessionStore:
        """The store of a child session: the factory's, else the core's."""
        if self.child_store_factory is None:
            return self.store
        made = self.child_store_factory(child_session_id)
        if isinstance(made, SessionStore) or made is None:
            return made if made is not None else self.store
        key = str(made)
        if key not in self._child_stores:
            self._child_stores[key] = open_store(made)
        return self._child_stores[key]

    @staticmethod
    def builder() -> LashCoreBuilder:
        return LashCoreBuilder()

    def session(self, session_id: str) -> SessionBuilder:
        return SessionBuilder(self, session_id)

    async def resume(self, parked: ParkedSession) -> LashSession:
        """Open a session ``session.park()`` parked (lash ``LashCore::resume``);
        ``SessionDeleted`` if it was deleted meanwhile."""
        builder: SessionBuilder = resume_builder(self, parked)
        session = await builder.open()
        check_resumed(parked, session.state, session._open)
        return session

    async def delete_session(self, session_id: str) -> None:
        """Delete a stored session with its queued work (lash ``LashCore::delete_session``);
        refuses while it is open in this process (``SessionStillInUse``) or runs a turn
        anywhere (``SessionExecutionBusy``). Other sessions are untouched."""
        await delete_session(self.store, session_id)

    async def vacuum(self) -> VacuumReport:
        """Delete tombstoned nodes (``session.tombstone_branch``); a DuckDB file also gets
        its free space back. Returns what was removed and the file size before and after."""
        return await vacuum(self.store)

    async def list_sessions(self) -> list[Any]:
        sessions: list[Any] = await self.store.list_sessions()
        return sessions

    @property
    def closed(self) -> bool:
        """``close()`` was called (its store is closed with it)."""
        return self._closed

    async def close(self) -> None:
        self._closed = True
        for provider in self.tool_providers:  # MCP servers given to the builder
            if isinstance(provider, MCPServer):
                await provider.aclose()
        for child_store in self._child_stores.values():
            await child_store.close()
        self._child_stores.clear()
        await self.store.close()

    def __repr__(self) -> str:
        return (f"LashCore(provider={self.policy.provider_id!r}, model={self.policy.model!r}, "
                f"store={self.store!r})")


class SessionBuilder(PromptLayerSink):
    """Also: the prompt-layer methods set the session prompt layer (``prompt_layers.py``)."""

    def __init__(self, core: LashCore, session_id: str) -> None:
        self._plugins: list[Any] = []
        if not isinstance(session_id, str) or not session_id.strip():
            raise ConfigurationError("a session id must be a non-empty str")
        check_id(session_id, "session id")
        self._core = core
        self._session_id = session_id
        self._parent: str | None = None
        self._provider: Any = None
        self._model: str | None = None
        self._store: Any = None
        self._residency: str | None = None
        self._system_prompt: str | None = None
        self._mode: str | None = None  # None: the stored session's mode, else standard
        self._sandbox: Sandbox | None = None
        self._limits: SandboxLimits | None = None
        self._shares: dict[str, Any] = {}
        self._owner_id: str | None = None
        self._max_tool_output: int | None = None  # None: the core's

    def session_execution_owner_id(self, owner_id: str) -> SessionBuilder:
        """Use this lease owner id instead of a fresh one per open. Only for hosts that
        already serialise one execution lane (a durable workflow retrying a step): handles
        opened with the same id are the same lease owner and do not exclude each other."""
        if not isinstance(owner_id, str) or not owner_id.strip():
            raise ConfigurationError("session_execution_owner_id needs a non-empty str")
        self._owner_id = check_id(owner_id, "session execution owner id")
        return self

    def parent(self, parent_session_id: str) -> SessionBuilder:
        self._parent = check_id(parent_session_id, "parent session id")
        return self

    def provider(self, provider: Any) -> SessionBuilder:
        """Use (and record) this provider for the session, rebinding a resumed session."""
        self._provider = provider
        return self

    def model(self, model: str) -> SessionBuilder:
        self._model = model
        return self

    def store(self, store: Any) -> SessionBuilder:
        self._store = open_store(store)
        return self

    def residency(self, residency: str) -> SessionBuilder:
        self._residency = _check_residency(residency)
        return self

    def max_tool_output(self, chars: int) -> SessionBuilder:
        """This session's bound on a tool's output, over the core's (ADR 174)."""
        self._max_tool_output = check_max_output(chars, "max_tool_output")
        return self

    def system_prompt(self, prompt: str | None) -> SessionBuilder:
        self._system_prompt = prompt
        return self

    def mode(self, mode: str, *, sandbox: Sandbox | None = None,
             limits: SandboxLimits | None = None) -> SessionBuilder:
        """``"standard"`` (native tool calls) or ``"code"`` (lash's RLM: the model writes
        Python cells run in a sandbox kernel; ``sandbox`` shares a started one)."""
        m = str(mode).strip().lower()
        if m not in MODES:
            raise ConfigurationError(f"unknown mode {mode!r}; use {' or '.join(MODES)}")
        self._mode, self._sandbox, self._limits = m, sandbox, limits
        return self

    def share(self, **data: Any) -> SessionBuilder:
        """Copy DataFrames (by Parquet) or files into the code-mode sandbox under these names."""
        for name, value in data.items():
            shared_data(name, value)  # refused here, with one line, before anything opens
        self._shares.update(data)
        return self

    def plugin(self, plugin: Any) -> SessionBuilder:
        """Attach a plugin to this session (lash ``plugin::<P>(config)``; see
        ``lash_nb.SessionPlugin``)."""
        PluginSet().add(plugin)
        self._plugins.append(plugin)
        return self

    # ------------------------------------------------------------------ open
    def _refuse_new_name(self) -> None:
        """A session the store does not hold yet takes a printable name (a stored one,
        written before this rule, still opens)."""
        check_new_name(self._session_id, "session name")

    def _resolved_store(self) -> SessionStore:
        """Explicit store, else (a child) the core's child store, else the core's store."""
        if self._store is not None:
            store: SessionStore = self._store
            return store
        if self._parent is not None:
            return self._core.child_store(self._session_id)
        return self._core.store

    async def open(self) -> LashSession:
        store = self._resolved_store()
        residency = self._residency or self._core.residency
        scope = ReadScope.ACTIVE_PATH if residency == "active_path_only" else ReadScope.FULL_GRAPH
        persisted = await store.load_session(self._session_id, scope)
        replace = False
        if persisted is not None and scope is ReadScope.ACTIVE_PATH and not persisted.nodes:
            full = await store.load_session(self._session_id, ReadScope.FULL_GRAPH)
            if full is not None and full.nodes:
                persisted, replace = full, True
        if persisted is None:
            self._refuse_new_name()
            session = self._make(store, residency, recorded_provider=None)
        else:
            if persisted.meta.session_id != self._session_id:
                raise StoreSessionMismatch(persisted.meta.session_id, self._session_id)
            graph = persisted.graph()
            if replace:
                graph = graph.fork_current_path()
                graph.replace_required = True
            session = self._make(
                store, residency, recorded_provider=persisted.meta.provider_id or None,
                graph=graph, ledger=list(persisted.ledger), turn_index=persisted.meta.turn_index,
                head_revision=persisted.meta.head_revision, tool_state=persisted.meta.tool_state,
                parent=persisted.meta.parent_session_id, stored_policy=persisted.meta.policy,
            )
            lost = persisted.open_turn_ids
            if lost and await session.writer.recover_open_turns(len(lost)):
                # closed as stopped: runtime_error (process_lost) by this open: say so
                session.state.lost_turns = tuple(lost)
            elif lost:  # a live lease holds them: the first turn's progress commit closes them
                session.state.unclosed_turns = tuple(lost)
        return session

    async def open_fresh(self) -> LashSession:
        store = self._resolved_store()
        existing = await store.load_session(self._session_id, ReadScope.ACTIVE_PATH)
        if existing is None:
            self._refuse_new_name()
        session = self._make(store, self._residency or self._core.residency, recorded_provider=None)
        session.state.graph.replace_required = True
        if existing is not None:
            session.state.head_revision = existing.meta.head_revision
            # the graph starts over; the tokens already spent stay on the session's books
            session.state.set_ledger(list(existing.ledger))
            session.state.turn_index = existing.meta.turn_index
        return session

    async def open_with_state(self, state: Mapping[str, Any]) -> LashSession:
        store = self._resolved_store()
        sid = state.get("session_id")
        if sid != self._session_id:
            raise StoreSessionMismatch(str(sid), self._session_id)
        nodes = [SessionNode.from_row(n["node_id"], n.get("parent_node_id"), n["kind"], n["content"],
                                      n.get("created_at_ms", 0), n.get("turn_id"))
                 for n in state.get("nodes", ())]
        graph = SessionGraph(nodes, state.get("leaf_node_id"))
        graph.replace_required = True
        ledger = [TokenLedgerEntry(e["source"], e["model"], TokenUsage.from_json(e["usage"]))
                  for e in state.get("ledger", ())]
        existing = await store.load_session(self._session_id, ReadScope.ACTIVE_PATH)
        session = self._make(
            store, self._residency or self._core.residency,
            recorded_provider=(state.get("policy") or {}).get("provider_id"),
            graph=graph, ledger=ledger, turn_index=int(state.get("turn_index", 0)),
            head_revision=existing.meta.head_revision if existing else None,
            tool_state=state.get("tool_state"), parent=state.get("parent_session_id"),
            stored_policy=state.get("policy"),
        )
        return session

    def _make(self, store: Any, residency: str, *, recorded_provider: str | None,
              graph: SessionGraph | None = None, ledger: list[TokenLedgerEntry] | None = None,
              turn_index: int = 0, head_revision: int | None = None,
              tool_state: Mapping[str, Any] | None = None, parent: str | None = None,
              stored_policy: Mapping[str, Any] | None = None) -> LashSession:
        core = self._core
        provider = self._provider or core.provider
        mismatch = None
        provider_id = provider.kind
        if recorded_provider and recorded_provider != provider.kind and self._provider is None:
            provider_id, mismatch = recorded_provider, provider.kind
        base = core.policy
        policy = SessionPolicy(
            provider_id=provider_id,
            model=(model_for_kind(provider.kind, self._model) if self._model else None)
            or (provider_model(self._provider) if self._provider else None) or base.model,
            max_turns=base.max_turns,
            system_prompt=self._system_prompt if self._system_prompt is not None else base.system_prompt,
            prompt=self._prompt,
            context_window=base.context_window,
            on_context_overflow=base.on_context_overflow,
            max_tool_output=self._max_tool_output or base.max_tool_output,
        )
        explicit = {name for name, value in (("model", self._model), ("prompt", self._prompt))
                    if value is not None}
        policy = restore_configured(policy, stored_policy, explicit=explicit)
        mode = self._mode or str((stored_policy or {}).get("mode") or "standard")
        if mode not in MODES:  # a mode a newer version stored: open in the standard one
            mode = "standard"
        policy = replace(policy, mode=mode)
        registry = ToolRegistry()
        for i, tp in enumerate(core.tool_providers):
            registry.add_source(tp, f"base:{i}")
        surface = SessionSurface(core_layer=core.prompt)
        for plugin in [*core.plugins, *self._plugins]:
            surface.plugins.add(plugin)
        surface.plugins.sync_tools(registry)  # before the stored membership is restored
        if tool_state:
            registry.restore_membership(tool_state)
        state = SessionState(
            session_id=self._session_id, policy=policy, graph=graph or SessionGraph(),
            registry=registry, parent_session_id=self._parent or parent, ledger=ledger or [],
            turn_index=turn_index, head_revision=head_revision,
            stored_provider_id=recorded_provider,
        )
        code_mode = None
        if mode == MODE_CODE:
            code_mode = CodeMode(self._sandbox, limits=self._limits, shares=self._shares)
        elif self._shares:
            raise ConfigurationError("share(...) needs code mode; add .mode('code')")
        return LashSession(core, state, store=store, provider=provider, residency=residency,
                           provider_mismatch=mismatch, surface=surface, owner_id=self._owner_id,
                           code_mode=code_mode)


def _check_residency(value: str) -> str:
    v = str(value).strip().lower().replace("-", "_")
    if v not in RESIDENCIES:
        raise ConfigurationError(f"unknown residency {value!r}; use keep_all or active_path_only")
    return v
