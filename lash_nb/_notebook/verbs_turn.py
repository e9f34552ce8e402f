"""``%lash`` verbs that run or schedule work: open, turn / ``%%lash``, enqueue, queue, drain, stop."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import Markdown, display

from .parsing import interpolate, parse, parser, split_prompt
from .runner import run_queued, run_turn
from .widgets.queue import QueueWidget

if TYPE_CHECKING:
    from .magics import LashMagics

OPEN = parser("open", "Open (or resume) a session and bind it to this notebook.")
OPEN.add_argument("session", nargs="?", default=None)
OPEN.add_argument("--fresh", action="store_true", help="start over (replace the stored graph)")
OPEN.add_argument("--store", default=None, help="DuckDB path, :memory: or postgresql:// DSN")
OPEN.add_argument("--provider", default=None, help="offline|openai|anthropic|openrouter|ollama")
OPEN.add_argument("--model", default=None)
OPEN.add_argument("--residency", default=None, choices=("keep_all", "active_path_only"))
OPEN.add_argument("--tools", default="", help="comma-separated names of tool functions in the namespace")

TURN_VALUES = ("--session", "-o", "--turn-id")
TURN_FLAGS = ("--background",)
TURN = parser("turn", "Run a turn; the prompt is the rest of the line (or the cell body).")
TURN.add_argument("--session", default=None)
TURN.add_argument("-o", dest="out", default=None, help="store the TurnResult in this variable")
TURN.add_argument("--turn-id", default=None)
TURN.add_argument("--background", action="store_true", help="return a task at once")

ENQ_VALUES = ("--session", "--id", "--delivery", "--slot", "--merge-key")
ENQ = parser("enqueue", "Queue a prompt to run later as a turn.")
ENQ.add_argument("--session", default=None)
ENQ.add_argument("--id", default=None, help="idempotency key (source key)")
ENQ.add_argument("--delivery", default=None, help="earliest|after-commit")
ENQ.add_argument("--slot", default=None, help="exclusive|join")
ENQ.add_argument("--merge-key", default=None)

QUEUE = parser("queue", "Show the pending batches (a live widget, or --df for a DataFrame).")
QUEUE.add_argument("--session", default=None)
QUEUE.add_argument("--df", action="store_true")

DRAIN = parser("drain", "Run queued work now.")
DRAIN.add_argument("--session", default=None)
DRAIN.add_argument("--all", action="store_true", help="keep draining until the queue is empty")
DRAIN.add_argument("--background", action="store_true")

STOP = parser("stop", "Cancel the running turns of the session.")
STOP.add_argument("--session", default=None)


def session_card(b: Any) -> Markdown:
    s = b.session
    meta = [
        f"**lash session** `{s.session_id}`",
        f"store `{b.store}` · provider `{b.provider}` · model `{s.policy_snapshot().model}`",
    ]
    rv = s.read_view()
    turns = getattr(rv, "turn_index", None)
    turns = turns() if callable(turns) else turns
    if turns is not None:
        meta.append(f"{turns} turn(s) so far · `%lash help` for the verbs")
    return Markdown("\n\n".join(meta))


async def open_(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(OPEN, argline)
    b = await m.ctx.open(a.session, fresh=a.fresh, store=a.store, provider=a.provider,
                         model=a.model, residency=a.residency)
    for name in filter(None, (t.strip() for t in a.tools.split(","))):
        fn = m.shell.user_ns.get(name)
        if fn is None:
            raise UsageError(f"--tools names {name!r}, which is not defined; define the function first")
        b.session.tools().add_provider(fn)
    card = session_card(b)
    if assigned:
        return b.session
    display(card)
    return None


async def turn(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    opts, prompt = split_prompt(argline, with_value=TURN_VALUES, flags=TURN_FLAGS)
    a = parse(TURN, opts)
    if cell is not None:
        prompt = cell if not prompt else f"{prompt}\n{cell}"
    prompt = interpolate(prompt.strip(), m.shell.user_ns)
    if not prompt:
        raise UsageError("the prompt is empty; write it after %lash turn or in the %%lash cell body")
    b = await m.ctx.binding(a.session)
    coro = run_turn(b.session, prompt, turn_id=a.turn_id, interval_s=m.live_interval_s)
    if a.background:
        task = asyncio.ensure_future(_keep(m, coro, a.out))
        m.ctx.background[f"turn-{len(m.ctx.background) + 1}"] = task
        return task
    return await _keep(m, coro, a.out) if assigned else _quiet(await _keep(m, coro, a.out))


async def _keep(m: LashMagics, coro: Any, out: str | None) -> Any:
    result = await coro
    m.ctx.last_result = result
    if out:
        m.shell.user_ns[out] = result
    return result


def _quiet(_result: Any) -> None:
    return None


async def enqueue(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    opts, prompt = split_prompt(argline, with_value=ENQ_VALUES, flags=())
    a = parse(ENQ, opts)
    if cell is not None:
        prompt = f"{prompt}\n{cell}".strip()
    prompt = interpolate(prompt.strip(), m.shell.user_ns)
    if not prompt:
        raise UsageError("the prompt is empty; write it after %lash enqueue")
    b = await m.ctx.binding(a.session)
    builder = b.session.enqueue(prompt)
    if a.id:
        builder = builder.id(a.id)
    if a.delivery:
        builder = builder.delivery_policy(a.delivery)
    if a.slot:
        builder = builder.slot_policy(a.slot)
    if a.merge_key:
        builder = builder.merge_key(a.merge_key)
    batch = await builder.send()
    if assigned:
        return batch
    print(f"queued {batch.batch_id} ({batch.delivery_policy.value}/{batch.slot_policy.value})")
    return None


async def queue(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(QUEUE, argline)
    b = await m.ctx.binding(a.session)
    s = b.session
    if a.df:
        import pandas as pd

        from .widgets.queue import batch_row

        rows = [batch_row(x) for x in await s.queued_work()]
        cols = ["batch_id", "text", "source_key", "delivery_policy", "slot_policy", "merge_key",
                "enqueued_at_ms", "claimed"]
        return pd.DataFrame(rows, columns=cols)

    async def drain_one(view: QueueWidget) -> None:  # the panel shows progress and the turns
        view.start_drain(len(await s.queued_work()))
        while await run_queued(s, interval_s=m.live_interval_s, widget=view.turn_view()) is not None:
            await view.turn_done()

    w = QueueWidget(session_id=s.session_id, load=s.queued_work,
                    cancel=s.cancel_queued_work_batch, drain=drain_one)
    await w.refresh_async()
    observe = s.observe()
    task = asyncio.ensure_future(w.follow(observe.subscribe_from_cursor(observe.current_observation().cursor)))
    m.ctx.background[f"queue-{id(w)}"] = task
    return w


async def drain(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(DRAIN, argline)
    b = await m.ctx.binding(a.session)

    async def go() -> list[Any]:
        results = []
        while True:
            r = await run_queued(b.session, interval_s=m.live_interval_s)
            if r is None:
                break
            results.append(r)
            m.ctx.last_result = r
            if not a.all:
                break
        if not results:
            print("nothing to drain")
        return results

    if a.background:
        task = asyncio.ensure_future(go())
        m.ctx.background[f"drain-{len(m.ctx.background) + 1}"] = task
        return task
    results = await go()
    return results if assigned else None


async def stop(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(STOP, argline)
    b = m.ctx.sync_binding(a.session)
    n = b.session.cancel_running_turns("magic")
    if assigned:
        return n
    print(f"cancelled {n} running turn(s)")
    return None
