"""``%lash`` verbs for queued and running work: enqueue, queue, drain, stop, wait."""

from __future__ import annotations

import asyncio
import textwrap
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from .._core.text import clean_text
from .._core.visible import visible
from .._errors import TurnNotSaved
from .card import Card
from .costs import prices_for_display
from .parsing import parse, parser, prompt_text, say_replaced, split_prompt
from .verbs_turn import ENQ_VALUES, attach_targets, attached_input, kept_unsaved, refuse_read_only

if TYPE_CHECKING:
    from .magics import LashMagics

ENQ = parser("enqueue", "Queue a prompt to run later as a turn.")
ENQ.add_argument("--session", default=None)
ENQ.add_argument("--id", default=None, help="idempotency key (source key)")
ENQ.add_argument("--delivery", default=None, help="earliest|after-commit")
ENQ.add_argument("--slot", default=None, help="exclusive|join")
ENQ.add_argument("--merge-key", default=None)
ENQ.add_argument("--attach", default=None, help="notebook names or file paths, as for turn")
ENQ.add_argument("--raw", action="store_true",
                 help="queue the prompt exactly as typed (no {name} substitution)")

QUEUE = parser("queue", "Show the pending batches (a live widget, or --df for a DataFrame).")
QUEUE.add_argument("--session", default=None)
QUEUE.add_argument("--df", action="store_true")

DRAIN = parser("drain", "Run queued work now.")
DRAIN.add_argument("--session", default=None)
DRAIN.add_argument("--all", action="store_true", help="keep draining until the queue is empty")
DRAIN.add_argument("--background", action="store_true")

WAIT = parser("wait", "Wait until this notebook's background turns and drains have ended: the "
                      "last cell of a notebook run by nbconvert --execute or papermill, so that "
                      "their records are saved.")

STOP = parser("stop", "Cancel the running turns of the session.")
STOP.add_argument("--session", default=None)


def enqueue_args(m: LashMagics, argline: str, cell: str | None) -> tuple[Any, str]:
    opts, prompt = split_prompt(argline, with_value=ENQ_VALUES, flags=("--raw",),
                                prog="%lash enqueue")
    a = parse(ENQ, opts)
    if cell is not None:
        prompt = f"{prompt}\n{cell}".strip()
    a.replaced = []
    prompt = clean_text(prompt_text(prompt.strip(), m.user_ns, raw=a.raw, replaced=a.replaced))
    if not prompt and not a.attach:
        raise UsageError("the prompt is empty; write it after %lash enqueue")
    for key in ("id", "merge_key"):  # a loop's keys: --id row-{i}
        if getattr(a, key) is not None:
            setattr(a, key, prompt_text(getattr(a, key), m.user_ns, raw=a.raw,
                                        replaced=a.replaced))
    a.attach = attach_targets(m, a.attach)
    return a, prompt


async def enqueue(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a, prompt = enqueue_args(m, argline, cell)
    say_replaced(a.replaced, m)
    b = await m.ctx.binding(a.session)
    refuse_read_only(b)
    builder = b.session.enqueue(attached_input(m, prompt, a.attach) if a.attach else prompt)
    if a.id:
        builder = builder.id(a.id)
    if a.delivery:
        builder = builder.delivery_policy(a.delivery)
    if a.slot:
        builder = builder.slot_policy(a.slot)
    if a.merge_key:
        builder = builder.merge_key(a.merge_key)
    # an id makes the enqueue idempotent: a batch already queued under it is returned as is
    before = ({q.batch_id for q in await b.session.queued_work(include_claimed=True)}
              if a.id else set())
    batch = await builder.send()
    if batch.batch_id in before:
        text = visible(textwrap.shorten(batch.text, 60, placeholder="…"))
        print(f"already queued with --id {a.id} as {batch.batch_id} ({text!r}); "
              "not queued again: use another --id to queue this prompt")
    elif not assigned:
        print(f"queued {batch.batch_id} ({batch.delivery_policy.value}/{batch.slot_policy.value})")
    return batch if assigned else None


async def queue(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(QUEUE, argline)
    b = await m.ctx.binding(a.session, stored=True)
    s = b.session
    if a.df:
        import pandas as pd

        from .._reports.frames import utc_from_ms
        from .widgets.queue import batch_row

        rows = [batch_row(x) for x in await s.queued_work(include_claimed=True)]
        cols = ["batch_id", "text", "source_key", "delivery_policy", "slot_policy", "merge_key",
                "enqueued_at", "claimed"]
        frame = pd.DataFrame(rows, columns=[c for c in cols if c != "enqueued_at"])
        frame.insert(cols.index("enqueued_at"), "enqueued_at",
                     utc_from_ms([r["enqueued_at_ms"] for r in rows]))
        from .verbs_info import told_if_empty

        return told_if_empty(frame, assigned, f"the queue of session {s.session_id!r} is empty: "
                             "no batch pending, running or failed (%lash enqueue PROMPT queues "
                             "one)")

    from .widgets.queue import QueueWidget  # anywidget loads with the first widget

    drainer = b.drainer(m.live_interval_s)
    w = QueueWidget(session_id=s.session_id, load=lambda: s.queued_work(include_claimed=True),
                    cancel=s.cancel_queued_work_batch,
                    drain=lambda: drainer.run(all=True, progress=widget_progress(w), show=False,
                                              activity=getattr(w, "show_drain_activity", None)),
                    stop=drainer.stop,  # the panel's Stop and Approve / Deny (ADR 212)
                    decide=lambda call_id, ok: s.approvals().decide(call_id, ok, by="user"))
    await w.refresh_async()
    observe = s.observe()
    task = asyncio.ensure_future(w.follow(observe.subscribe_from_cursor(observe.current_observation().cursor)))
    m.ctx.background[f"queue-{id(w)}"] = task
    return w


def widget_progress(w: Any) -> Any:
    """The progress callback the queue widget's Drain button gets: the widget's own
    ``show_drain_progress(p)`` when it has one, else the progress line in its status. (A
    widget's ``show_drain_activity(a)``, when it has one, gets the running turn's activities.)"""

    def progress(p: Any) -> None:
        show = getattr(w, "show_drain_progress", None)
        if show is not None:
            show(p)
        elif p.running:
            w.status = p.label() + "…"
    return progress


async def drain(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(DRAIN, argline)
    b = await m.ctx.binding(a.session, stored=True)  # a typo has nothing queued
    drainer = b.drainer(m.live_interval_s)
    drainer.prices = prices_for_display(m.prices, m.user_ns)
    handle = display(Card("checking the queue…"), display_id=True) if not a.background else None

    def progress(p: Any) -> None:
        if handle is None:
            return
        lines = [f"**{p.label()}**"]
        lines += [f"- `{r['turn_id']}` ({', '.join(r['batch_ids'])}) {r['outcome']}: "
                  f"{_one_line(r['answer'])}" for r in p.ran]
        if p.current:
            lines.append(f"- running {', '.join(p.current)}…")
        handle.update(Card("\n".join(lines)))

    async def go() -> list[Any]:
        try:
            results: list[Any] = await drainer.run(all=a.all, progress=progress)
        except TurnNotSaved as err:  # as a %%lash turn's (ADR 185)
            kept_unsaved(m, err)
            raise
        if results:
            m.ctx.last_result = results[-1]
        return results

    if a.background:
        task = asyncio.ensure_future(go())
        m.ctx.background[f"drain-{len(m.ctx.background) + 1}"] = task
        return task if assigned else None
    results = await go()
    return results if assigned else None


def _one_line(text: str, width: int = 120) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


async def stop(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(STOP, argline)
    b = m.ctx.sync_binding(a.session)
    n = b.session.cancel_running_turns("magic")
    if assigned:
        return n
    if n:
        print(f"cancelled {n} running turn(s)")
        return None
    from .running_elsewhere import nothing_running_here

    print(await nothing_running_here(b.core.store, b.session.session_id))
    return None


async def wait(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    """Wait for the ``--background`` turns and drains of this kernel: a notebook run by
    nbclient shuts the kernel down after its last cell, the turns still running with it, and
    saves no record of them (ADR 191). A kernel interrupt ends the wait, not the turns."""
    parse(WAIT, argline)
    running = {name: task for name, task in m.ctx.background.items()
               if not name.startswith("queue-") and not task.done()}  # a panel's feed never ends
    if not running:
        print("no background turn or drain is running")
        return len(running) if assigned else None
    await asyncio.wait(running.values())
    n = len(running)
    counts = [(sum(name.startswith(f"{kind}-") for name in running), kind)
              for kind in ("turn", "drain")]
    items = [f"{k} {kind}{'s' if k > 1 else ''}" for k, kind in counts if k]
    what = " and ".join([items[0].replace(" ", " background ", 1), *items[1:]])
    failed = [_failure(task) for task in running.values()
             if not task.cancelled() and task.exception() is not None]
    line = (f"waited for {what}: " + ("it ended" if n == 1 else "all ended")
            + (" (see its record above)" if n == 1 else " (see their records above)"))
    if failed:
        line += "; ended with an error: " + ", ".join(failed)
    print(line)
    return n if assigned else None


def _failure(task: asyncio.Task[Any]) -> str:
    err = task.exception()
    return _one_line(visible(f"{type(err).__name__}: {err}"), 160)


# the synchronous part of each verb: parse and check its arguments (``magics.check``)
ARGS = {
    "enqueue": enqueue_args,
    "queue": lambda m, line, cell: parse(QUEUE, line),
    "drain": lambda m, line, cell: parse(DRAIN, line),
    "stop": lambda m, line, cell: parse(STOP, line),
    "wait": lambda m, line, cell: parse(WAIT, line),
}
