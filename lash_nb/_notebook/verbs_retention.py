"""``%lash sessions --delete ID --yes``: delete a stored session from the notebook.

Deleting cannot be undone, so it needs ``--yes``; without it the verb refuses in one line
and changes nothing. A session bound in this notebook is closed and unbound first, unless a
turn or a drain of it is running (then it refuses: stop or wait first). A session open in
another process or running a turn anywhere refuses through ``core.delete_session``. An id
the store holds neither a session nor queued work for (a typo) is refused in one line rather
than reported deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

if TYPE_CHECKING:
    from .magics import LashMagics


async def delete_session(m: LashMagics, session_id: str, *, yes: bool) -> None:
    if not yes:
        raise UsageError(
            f"%lash sessions --delete {session_id!r} removes its turns, usage and queued work "
            "for good; add --yes to confirm")
    ctx = m.ctx
    b = await ctx.binding(None)
    core = b.core
    bound = ctx.bindings.get(session_id)
    if bound is None or bound.core.store is not core.store:
        await _refuse_unknown(core, session_id, b.store)
    if bound is not None and bound.core.store is core.store:
        if bound.session.is_running() or (bound.drain is not None and bound.drain.running):
            raise UsageError(
                f"session {session_id!r} is running a turn in this notebook; %lash stop (or "
                "wait for it), then delete")
        await bound.session.close()
        del ctx.bindings[session_id]
        if ctx.current == session_id:  # another open session of the notebook, if any
            ctx.current = next(iter(ctx.bindings), None)
    await core.delete_session(session_id)
    print(f"deleted session {session_id!r} (its turns, usage and queued work)")


async def _refuse_unknown(core: Any, session_id: str, store: str) -> None:
    """A typo must not read "deleted": a session with neither a stored row nor queued work
    is not there to delete."""
    if any(s.session_id == session_id for s in await core.list_sessions()):
        return
    if await core.store.list_queued_work(session_id, include_claimed=True):
        return
    where = "memory" if store == ":memory:" else repr(store)
    raise UsageError(f"no session {session_id!r} in {where}; nothing was deleted "
                     "(%lash sessions lists the stored sessions)")

