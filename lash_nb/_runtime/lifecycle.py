"""Session lifecycle: handles of one open, ``park`` / ``resume``, sole ownership.

Theory of operation (lash ``LashSession::{clone, close, park}``, ``LashCore::resume``)
- One ``open()`` makes one session runtime. ``session.clone()`` hands out another handle to
  the same runtime (same state, writer, queue drainer); :class:`OpenHandles` tracks the live
  ones. A handle stops counting when it is ``release()``-d or garbage collected (lash:
  dropped); releasing never fails and never touches the store.
- ``close()`` and ``park()`` *consume* the session: they need sole ownership, i.e. no other
  live handle of the same open (``SessionStillInUse``). ``park()`` also refuses while a turn
  of this open runs or waits for the writer (lash: an in-flight turn holds a clone). After
  either, every handle of the open is closed (its queue drainer stops).
- ``park()`` flushes only what the store does not already hold (never committed, or a
  graph opened fresh / healed that must replace the stored one), under a one-shot lease
  taken and released inside that commit, and returns a :class:`ParkedSession`: the session
  id, the store, the policy, the provider and the residency. No lease is held while parked.
- ``core.resume(parked)`` opens the session again from that store with that residency and
  provider (a fresh cancel registry, a fresh lease owner). A session that was committed
  before it was parked and is gone from the store now was deleted meanwhile: resume raises
  ``SessionDeleted`` instead of handing back an empty session under the old id.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import SessionDeleted, SessionStillInUse
from .state import SessionPolicy, SessionState
from .writer import SessionWriter


class SessionHandle(Protocol):
    """What this module needs of a ``LashSession`` handle."""

    @property
    def session_id(self) -> str: ...

    @property
    def writer(self) -> SessionWriter: ...


_OPEN_ORDER = itertools.count()


class OpenHandles:
    """The live handles of one open and whether the open was consumed (closed/parked)."""

    def __init__(self, session_id: str, store: Any) -> None:
        self._live: weakref.WeakSet[Any] = weakref.WeakSet()
        self.opened = next(_OPEN_ORDER)  # the process's opens in order (newest named first)
        self.closed = False
        self.session_id = session_id
        self.store = store

    def alive(self) -> bool:
        return len(self._live) > 0

    def add(self, handle: SessionHandle) -> None:
        self._live.add(handle)

    def drop(self, handle: SessionHandle) -> None:
        self._live.discard(handle)

    def others(self, handle: SessionHandle) -> int:
        return sum(1 for h in list(self._live) if h is not handle)

    def claim_sole(self, handle: SessionHandle, what: str, *, turns: bool) -> None:
        """Raise ``SessionStillInUse`` unless ``handle`` is the only user of the open."""
        others = self.others(handle)
        if others:
            users = ("another handle of it is alive" if others == 1
                     else f"{others} other handles of it are alive")
            raise SessionStillInUse(handle.session_id, what, f"{users} (session.clone())")
        if turns and handle.writer.running:
            raise SessionStillInUse(handle.session_id, what, "a running turn still uses it")


@dataclass(frozen=True)
class ParkedSession:
    """What ``session.park()`` leaves: enough for ``core.resume(parked)``, nothing live."""

    session_id: str
    store: Any
    policy: SessionPolicy
    provider: Any
    residency: str
    head_revision: int | None


async def park(session: Any) -> ParkedSession:
    """Flush what the store lacks, close the open, return the parked session."""
    handles: OpenHandles = session._open
    handles.claim_sole(session, "park", turns=True)
    st: SessionState = session.state
    if st.head_revision is None or st.graph.replace_required:
        await session.writer.persist()
    parked = ParkedSession(
        session_id=st.session_id, store=session.store, policy=st.policy,
        provider=session.provider, residency=session.residency,
        head_revision=st.head_revision,
    )
    await session.close()
    return parked


def resume_builder(core: Any, parked: ParkedSession) -> Any:
    """The session builder ``LashCore.resume`` opens a parked session with."""
    if not isinstance(parked, ParkedSession):
        raise TypeError(
            f"core.resume() takes what session.park() returned, got {type(parked).__name__}")
    builder = (core.session(parked.session_id).store(parked.store)
               .residency(parked.residency).model(parked.policy.model)
               .system_prompt(parked.policy.system_prompt).mode(parked.policy.mode))
    if parked.provider is not core.provider:
        builder = builder.provider(parked.provider)
    return builder


def check_resumed(parked: ParkedSession, state: SessionState, handles: OpenHandles) -> None:
    """A session committed before it was parked and absent now was deleted meanwhile."""
    if parked.head_revision is not None and state.head_revision is None:
        handles.closed = True
        raise SessionDeleted(parked.session_id)
