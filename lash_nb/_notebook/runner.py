"""Run a turn in a notebook cell with the live widget.

Theory of operation
- The cell awaits :func:`run_turn` (the ``%%lash`` input transformer makes the cell a top-level
  ``await``), so on ipykernel >= 7.4 the widget's Stop message is handled while the turn runs.
- Stop -> this widget's turn is cancelled (its own token, not the session's other turns: a
  ``--background`` turn of another cell keeps running) -> the turn commits ``stopped:
  cancelled`` -> the stream ends -> ``finish`` -> the cell returns normally.
- A kernel interrupt arrives as ``asyncio.CancelledError`` at the awaited ``queue.get`` of the
  stream. ``TurnStream.follow`` cancels THIS turn's token (not the session's other turns: a
  queued drain in the background keeps running), un-cancels the cell's task and keeps
  consuming until the committed ``stopped: cancelled`` result and its record. The cell then
  ends as an interrupted cell does (``extension.TurnInterrupted``, one line), so a Run All
  stops there (ADR 167).
- ``background=True`` runs the same coroutine as a task and returns it at once; then only the
  Stop button (or ``%lash stop``) stops the turn: a kernel interrupt does not reach a task.
- A turn whose final commit the store refused (``TurnNotSaved``: a full disk, a read-only or
  moved file, after its wait ran out or a Stop / interrupt ended it) ends its view with the
  answer it streamed, the badge ``NOT saved`` and the error's one line, then raises: the
  saved notebook's record keeps the answer, marked (ADR 181).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._core.cancel import CancellationToken
from .._errors import TurnNotSaved
from .._store.waits import not_shown, shown_to_a_person
from .costs import turn_cost


async def run_turn(
    session: Any,
    prompt: str,
    *,
    turn_id: str | None = None,
    interval_s: float = 0.05,
    show_prompt: bool = True,
    system: str | None = None,
    prices: Any = None,
    turn_input: Any = None,
) -> Any:
    """Stream one turn into a displayed :class:`TurnWidget`; return the ``TurnResult``.
    ``turn_input``: a ``TurnInput`` to send instead of ``prompt`` (its attachments are shown
    as thumbnails / table previews under the prompt).

    The widget is shown first: a turn refused before its first event (busy session, locked
    store, provider mismatch) ends the widget with the error (``fail``) and the error raises."""
    from .widgets.attachments import attachment_cards
    from .widgets.turn import TurnWidget  # anywidget loads with the first widget, not %load_ext

    streams: list[Any] = []  # this widget's turn, once made: what its Stop stops

    def stop() -> None:
        for stream in streams:
            stream.token.cancel("widget_stop", None)

    widget = TurnWidget(
        attachments=attachment_cards(turn_input.attachments()) if turn_input is not None else [],
        session_id=session.session_id,
        turn_id=turn_id or "",
        prompt=prompt if show_prompt else "",
        interval_s=interval_s,
        on_stop=stop,
        on_decide=lambda call_id, ok: session.approvals().decide(call_id, ok, by="user"),
    ).show()
    running = getattr(session, "is_running", None)  # a turn waits for the running one to end
    widget.queued_behind = bool(running()) if callable(running) else False
    shown = shown_to_a_person(True)  # the store's waits of this turn are on its row
    try:
        builder = session.turn(turn_input if turn_input is not None else prompt)
        if turn_id:
            builder = builder.turn_id(turn_id)
        if system:
            builder = builder.system(system)  # a turn prompt layer (``%%lash --system``)
        stream = builder.stream()
        streams.append(stream)
        # in a cell, a cancelled await is the kernel's interrupt (the cell's task is cancelled);
        # follow() then stops THIS turn only, never a background drain of the session
        stream.consumer_cancel_origin = ("kernel_interrupt", None)
        widget.turn_id = stream.turn_id or widget.turn_id
        result = await stream.follow(widget.push)
    except TurnNotSaved as err:  # answered, not stored: the answer stays in view, marked
        show_not_saved(widget, err, prices)
        raise
    except Exception as err:  # refused or broken before an outcome: the view ends showing why
        widget.fail(f"{type(err).__name__}: {refusal(err)}")
        raise
    finally:
        not_shown(shown)
    widget.cost = turn_cost(result, prices)
    widget.finish(result, elapsed_ms=recorded_ms(result))
    return result


async def run_queued(session: Any, *, interval_s: float = 0.05, widget: Any = None,
                     prices: Any = None) -> Any:
    """Drain one queued turn with a live widget fed from the session's observation stream.

    ``widget``: a view to feed instead of a displayed one (a queue panel's ``turn_view()``)."""
    from .widgets.queue import batch_row
    from .widgets.turn import TurnWidget

    observe = session.observe()
    cursor = observe.current_observation().cursor
    shown = widget is not None
    if widget is None:
        widget = TurnWidget(session_id=session.session_id, interval_s=interval_s)
    token = CancellationToken()  # this drain's turn: what its Stop and an interrupt stop
    widget.set_stop_callback(lambda: token.cancel("widget_stop", None))
    widget.set_decide_callback(lambda call_id, ok: session.approvals().decide(call_id, ok, by="user"))
    # what was asked: the texts of the batches the turn claims, shown as its prompt (the
    # activity stream names the batches only by id)
    texts = {r["batch_id"]: r["text"] for r in map(batch_row, await session.queued_work())}

    def prompt_of(batch_ids: Any) -> str:
        return "\n".join(texts[b] for b in batch_ids or () if texts.get(b))

    async def feed() -> None:
        nonlocal shown
        async for event in observe.subscribe_from_cursor(cursor):
            if getattr(event, "kind", None) == "turn_activity":
                if not shown:
                    widget.show()
                    shown = True
                if getattr(event.activity, "type", None) == "queued_work_started":
                    widget.prompt = prompt_of(getattr(event.activity.event, "batch_ids", ()))
                widget.push(event.activity)

    feeder = asyncio.ensure_future(feed())
    # the turn runs as its own task: a kernel interrupt cancels this cell's await, not the
    # turn, which is then stopped as a %%lash cell's is (committed stopped: cancelled with
    # origin kernel_interrupt, its batch done) instead of dying uncommitted; its store waits
    # are on its row, as a %%lash turn's (the task copies this context)
    marked = shown_to_a_person(True)
    try:
        turn = asyncio.ensure_future(session.queued_turn().cancel(token).run())
    finally:
        not_shown(marked)
    try:
        while True:
            try:
                out = await asyncio.shield(turn)
                break
            except asyncio.CancelledError:
                if turn.done():
                    raise
                token.cancel("kernel_interrupt", None)
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
    except TurnNotSaved as err:  # answered, not stored: the record a %%lash turn shows
        feeder.cancel()
        widget.fold.reset()  # the error's activities are complete; the feed may lag
        widget.prompt = prompt_of(getattr(err.result, "queued_batch_ids", ())) or widget.prompt
        widget.push_all(err.activities)
        if not shown:
            widget.show()
        show_not_saved(widget, err, prices)
        raise
    except Exception as err:  # refused or broken: a view already shown ends showing why
        if shown:
            widget.fail(f"{type(err).__name__}: {err}")
        raise
    finally:
        feeder.cancel()
    if out is None:
        return None
    # the run's own activity list is complete; the live feed may lag behind it
    widget.fold.reset()
    widget.prompt = prompt_of(out.result.queued_batch_ids) or widget.prompt
    widget.push_all(out.activities)
    if not shown:
        widget.show()
    widget.cost = turn_cost(out.result, prices)
    widget.finish(out.result, elapsed_ms=recorded_ms(out.result))
    return out.result


def refusal(err: BaseException) -> str:
    """What a refused turn's view says: the error, a busy session in a notebook's words."""
    from .._errors import SessionExecutionBusy

    if isinstance(err, SessionExecutionBusy):
        from .running_elsewhere import busy_line

        return busy_line(err.session_id, err.holder)
    return str(err)


def show_not_saved(widget: Any, err: TurnNotSaved, prices: Any) -> None:
    """End the view of a turn that answered but was not saved: its rows stay, the badge and
    the last row say it is not in the store and what to do."""
    from .widgets.fold import not_saved

    widget.cost = turn_cost(err.result, prices)
    not_saved(widget.fold)
    widget.fail(str(err))


def recorded_ms(result: Any) -> float | None:
    """The turn's duration as the store keeps it (what ``%lash replay`` shows), for the
    record's footer: the view's own clock also counts a wait before the turn started (a
    drain waiting for the session's running turn)."""
    duration = getattr(result, "duration_ms", None)
    return float(duration) if isinstance(duration, (int, float)) and duration > 0 else None
