"""The whole lash_nb error tree. Every message says what to do next. Users import these
from their public home, ``lash_nb.errors`` (a new class here must be added there too).

::

    LashError
    ├── ConfigurationError            builder / argument misuse (also a ValueError)
    │   ├── ProviderUnconfigured      no provider for the session
    │   ├── InvalidTurnInput          empty or malformed input for enqueue / turn
    │   ├── TurnIdMismatch            input trace id differs from the turn id
    │   ├── QueryNotAllowed           store.query / %lash sql given a write, a file read
    │   ├── WireScriptError           a replay script is malformed, unmatched or used up
    │   ├── ToolNameConflict          two tools with one name (at registration)
    │   └── MissingPluginTurnInput    a plugin needs turn input the turn did not bring
    ├── ProviderUnavailable           the session's recorded provider id is not the live one
    ├── StoreSessionMismatch          state / store belongs to another session id
    ├── SessionStillInUse             close / park / delete while another handle or a turn
    │                                 of the same open still uses the session
    ├── SessionDeleted                resume of a deleted session; a commit on a session
    │                                 deleted (or created anew) elsewhere since it was read
    ├── SessionExecutionBusy          another runtime holds the session lease   (retryable)
    ├── SessionExecutionLeaseLost     the lease expired under a running turn    (retryable)
    │   └── SessionExecutionLeaseExpired  a session-head commit came with no lease
    ├── StoreError                    persistence could not go on
    │   ├── StoreLockedError          another process held the DuckDB file past the wait
    │   ├── StoreDamagedError         the DuckDB file is truncated or corrupt
    │   ├── StoreFullError            the disk holding the store is full
    │   ├── StoreSchemaError          not a lash store / another schema version
    │   ├── StorePathError            a folder, a read-only directory, ...
    │   ├── TurnNotSaved              a turn answered, its final commit refused: the answer
    │   │                             is in ``.result``, not in the store (docs/adr/0181)
    │   ├── HeadRevisionConflict      the stored head moved under a commit
    │   ├── TurnCommitConflict        same turn id committed with different content
    │   │   └── TurnIdTaken           a turn started under a turn id already committed
    │   └── ClaimSuperseded           a queue claim was taken over by a newer lease
    ├── QueueRequiresStore            queue operations need a persistent store
    ├── CursorError                   malformed or foreign observation cursor
    ├── ToolArgumentsInvalid          a model's tool arguments failed validation; inside a
    │                                 turn it becomes an error result the model can correct
    ├── ToolServerError               an MCP server did not start, or failed (its tools' calls
    │                                 become error results; starting it raises)
    ├── PluginError                   a session plugin's hook or operation failed
    └── CodeExecutionUnavailable      code mode's sandbox kernel cannot start (jupyter_client /
                                      ipykernel missing, or it did not come up)

    LashWarning (a UserWarning)       something was skipped or is NaN; the call still worked
    StoreInterrupted (a KeyboardInterrupt)  the interrupt (Ctrl-C, a kernel's) ended a
                                      blocking store call: a query, a wait for the file;
                                      nothing stored changed (shown in one line)

Provider failures inside a turn never raise: the turn ends ``stopped: provider_error`` and
is committed. Exceptions are for API misuse and infrastructure that cannot go on.
"""

from __future__ import annotations


class LashError(Exception):
    """Base of every lash_nb error. ``retryable`` is True only when a retry is proven safe."""

    retryable: bool = False
    # the same line in a %lash user's spelling, where the advice names an option the magic
    # spells otherwise (``read_only=True`` is ``--read-only``; ADR 0215); None: the same line
    magic_line: str | None = None


class LashWarning(UserWarning):
    """Every warning lash_nb issues (the test suite turns these into errors)."""


class ConfigurationError(LashError, ValueError):
    pass


class ProviderUnconfigured(ConfigurationError):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} has no provider; pass one with "
            "LashCore.builder().provider(...) (lash_nb.providers.OfflineProvider() needs no key)"
        )


class InvalidTurnInput(ConfigurationError):
    """A turn input that cannot be sent (empty, an attachment past a limit, ...)."""

    limit: str | None = None  # the attachment limit passed: "max_bytes" / "max_turn_bytes"
    size: int = 0  # the bytes asked for
    fact: str = ""  # the message without its advice


class TurnIdMismatch(ConfigurationError):
    pass


class QueryNotAllowed(ConfigurationError):
    """A store query that is not a read (or reads files without ``allow_files=True``)."""


class ProviderUnavailable(LashError):
    def __init__(self, provider_id: str, live: str, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} was recorded with provider {provider_id!r} but the live "
            f"provider is {live!r}; name one when you open it (core.session({session_id!r})"
            ".provider(p), a worker's --provider) or switch with session.configure("
            "SessionConfigPatch(provider=p)); the conversation is kept either way"
        )
        self.provider_id = provider_id
        self.live = live
        self.session_id = session_id


class StoreSessionMismatch(LashError):
    def __init__(self, loaded: str, requested: str) -> None:
        super().__init__(
            f"the state belongs to session {loaded!r}, not {requested!r}; open "
            f"core.session({loaded!r}) or pass state for {requested!r}"
        )
        self.loaded = loaded
        self.requested = requested


class SessionStillInUse(LashError):
    """lash ``EmbedError::SessionStillInUse``: consuming a session needs sole ownership."""

    def __init__(self, session_id: str, what: str, users: str) -> None:
        super().__init__(
            f"cannot {what} session {session_id!r}: {users}; release() the other handles "
            "(or let the turn finish, or cancel it) and try again"
        )
        self.session_id = session_id


class SessionDeleted(LashError):
    """lash ``StoreError::SessionDeleted``: the session was deleted while parked; also (ADR
    0148) a commit of a handle whose session another handle or process deleted
    (``elsewhere="deleted"``), or deleted and created anew (``"recreated"``), since it read
    it: nothing was written."""

    def __init__(self, session_id: str, *, elsewhere: str | None = None) -> None:
        sid = session_id
        if elsewhere is None:
            text = (f"session {sid!r} was deleted; core.session({sid!r}).open_fresh() "
                    "starts a new one under that id")
        elif elsewhere == "deleted":
            text = (f"session {sid!r} was deleted from the store (by another process or "
                    f"handle) after this one opened it; nothing was written: %lash open {sid} "
                    f"--fresh (core.session({sid!r}).open_fresh()) starts it anew, or open "
                    "another session")
        else:
            text = (f"session {sid!r} was deleted from the store and created anew (or "
                    "started fresh) by another process or handle after this one opened it; "
                    f"nothing was written to its history, which is not this one's: %lash open "
                    f"{sid} shows it, %lash open {sid} --fresh replaces it, or open another "
                    "session")
        super().__init__(text)
        self.session_id = session_id
        self.elsewhere = elsewhere


class SessionExecutionBusy(LashError):
    retryable = True

    def __init__(self, session_id: str, holder: str | None = None) -> None:
        who = f" (held by {holder})" if holder else ""
        super().__init__(
            f"session {session_id!r} is already running a turn in another runtime{who}; "
            "wait for it to finish, or session.enqueue(...) the input to run after it"
        )
        self.session_id = session_id
        self.holder = holder


class SessionExecutionLeaseLost(LashError):
    retryable = True


class SessionExecutionLeaseExpired(SessionExecutionLeaseLost):
    """A session-head commit without a live session execution lease (lash
    ``StoreError::SessionExecutionLeaseExpired``): acquire one with ``try_acquire_lease``
    and pass it in the commit."""


class StoreError(LashError):
    pass


class StoreLockedError(StoreError):
    """``holder`` names it (``"worker pid 12"``); lash processes hand the file over between
    turns, so a long wait means the holder is stuck in one long job or is not lash_nb."""

    def __init__(self, path: str, pid: int | None, waited_s: float,
                 holder: str | None = None) -> None:
        who = holder or (f"process {pid}" if pid else "another process")
        super().__init__(
            f"{path} is held by {who} (waited {waited_s:.1f} s without a hand-over); let its "
            "long job finish or stop that process, or raise DuckDBStore(lock_timeout_s=...) here"
        )
        self.path = path
        self.pid = pid
        self.holder = who
        self.waited_s = waited_s


class StoreDamagedError(StoreError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"{path} is damaged ({detail}); lash_nb changed nothing: restore the file from a "
            "copy or backup, or point DuckDBStore at a new path"
        )
        self.path = path


class StoreFullError(StoreError):
    def __init__(self, path: str, what: str = "nothing was written") -> None:
        super().__init__(
            f"the disk holding {path} is full (No space left on device); {what}: free space "
            "there and retry"
        )
        self.path = path


class StoreSchemaError(StoreError):
    pass


class StorePathError(StoreError):
    pass


class TurnNotSaved(StoreError):
    """A turn answered but its final commit was refused (a full disk, a read-only or moved
    file, after waiting ``commit_wait_s`` or until a Stop or interrupt ended the wait):
    nothing of it was written, and the session's view holds what the store holds. The
    answer the model produced is kept here: ``result`` (a ``TurnResult``: ``.text``) and
    ``activities``; ``cause`` is the store's error; ``stopped_by`` names who ended the wait
    (``widget_stop``, ``kernel_interrupt``, ...) or is None (it ran out)."""

    def __init__(self, turn_id: str, cause: BaseException, result: object,
                 activities: tuple[object, ...] = (), stopped_by: str | None = None) -> None:
        super().__init__(
            f"turn {turn_id!r} answered but was NOT saved: {cause}; its answer is kept only "
            "in this turn's record and result, not in the store")
        self.turn_id, self.cause, self.result = turn_id, cause, result
        self.activities, self.stopped_by = activities, stopped_by


class HeadRevisionConflict(StoreError):
    pass


class TurnCommitConflict(StoreError):
    pass


class TurnIdTaken(TurnCommitConflict):
    """A turn started under a turn id the session already committed (docs/adr/0134):
    nothing was written."""


class ClaimSuperseded(StoreError):
    pass


class QueueRequiresStore(LashError):
    def __init__(self, what: str = "queued work") -> None:
        super().__init__(
            f"{what} requires a persistent store; build the core with "
            ".store('lash.duckdb') (or any lash_nb.stores store), not the in-memory default"
        )


class CursorError(LashError, ValueError):
    pass


class WireScriptError(ConfigurationError):
    """A provider wire script is malformed, did not match the request, or ran out."""


class ToolNameConflict(ConfigurationError):
    """A tool source brings a name another live source (or itself) already has."""

    tool_name: str | None = None  # the name, when another source has it
    taken_by: str | None = None  # that source's id


class ToolArgumentsInvalid(LashError):
    """Raised by a tool before it runs; the turn shows the message to the model."""


class ToolServerError(LashError):
    """An MCP server could not be started or reached, or answered a call with an error."""


class MissingPluginTurnInput(ConfigurationError):
    """A plugin declared ``requires_turn_input`` and the turn brought none (lash)."""

    def __init__(self, plugin_id: str) -> None:
        super().__init__(
            f"plugin {plugin_id!r} needs input for every turn; add "
            f".plugin_input({plugin_id!r}, value) to the turn"
        )
        self.plugin_id = plugin_id


class PluginError(LashError):
    """A session plugin's hook or operation raised; the message names the plugin."""

    def __init__(self, plugin_id: str, message: str) -> None:
        super().__init__(f"plugin {plugin_id!r}: {message}" if plugin_id else message)
        self.plugin_id = plugin_id
class CodeExecutionUnavailable(LashError):
    """Code mode's sandbox kernel cannot be started (lash ``CodeExecutionUnavailable``)."""


class StoreInterrupted(KeyboardInterrupt):
    """The interrupt (Ctrl-C, a kernel's Interrupt) ended a blocking store call: a query
    (DuckDB's statement was stopped) or a wait for a file another process holds. Nothing
    stored changed. A ``KeyboardInterrupt``, so a script stops and Run All stops; IPython
    shows it in one line."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]

