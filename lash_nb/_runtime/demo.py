"""The main job end to end, no API key: ``python -m lash_nb demo``.

Opens a session on a DuckDB file with the offline provider, runs turns that call tools while
streaming to the terminal, stops one turn mid-stream, queues work and drains it, resumes the
session from the file, and prints the usage report.
"""

from __future__ import annotations

import asyncio
import sys
import time

from .._providers.offline import OfflineProvider
from .._tools.function import tool
from .core import LashCore


@tool
def weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return {"paris": "sunny, 21 C", "oslo": "snow, -3 C"}.get(city.lower(), "cloudy, 12 C")


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def _stream_turn(session, prompt: str, *, stop_after: int | None = None):  # type: ignore[no-untyped-def]
    _out(f"\n> {prompt}\n")
    stream = session.turn(prompt).stream()
    words = 0
    async for activity in stream:
        event = activity.event
        if activity.type == "assistant_prose_delta":
            _out(event.text)
            words += 1
            if stop_after is not None and words == stop_after:
                _out(" [stop requested] ")
                session.cancel_running_turns("demo")
        elif activity.type == "tool_call_started":
            _out(f"  [tool {event.name}({event.args}) running]\n")
        elif activity.type == "tool_call_completed":
            _out(f"  [tool {event.name} -> {event.output!r} in {event.duration_ms:.1f} ms]\n")
    result = await stream.finish()
    _out(f"\n  = {result.outcome}  ({_tokens(result)}, turn {result.turn_id})\n")
    return result


def _tokens(result) -> str:  # type: ignore[no-untyped-def]
    # a cut model call that reported no usage is billed at an estimate (ADR 20): say so
    estimate = any(a.estimated for c in result.llm_calls for a in c.attempts)
    return f"{result.usage.total()} tokens{', partly estimated' if estimate else ''}"


def _cut(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


async def run_demo(store: str, delay_s: float) -> None:
    t0 = time.perf_counter()
    core = (LashCore.builder().provider(OfflineProvider(delay_s=delay_s)).max_turns(8)
            .tools(weather, add).store(store).build())
    session = await core.session("demo").open()
    print(f"store {store}: session 'demo' has {session.state.turn_index} earlier turns")
    await _stream_turn(session, "What does weather say for 'Paris'?")
    await _stream_turn(session, "Please add a=2 b=40 for me.")
    await _stream_turn(session, "Tell me a long story about lighthouses and the sea at night.",
                       stop_after=6)
    first = await session.enqueue("queued: what does weather say for 'Oslo'?").id("q-oslo").send()
    await session.enqueue("queued: and a second thought").id("q-2").send()
    print(f"\nqueued {len(await session.queued_work())} batches (first {first.batch_id}); draining")
    while (out := await session.queued_turn().run()) is not None:
        r = out.result
        print(f"  drained {', '.join(r.queued_batch_ids)} as turn {r.turn_id}: {r.outcome}  "
              f"({_tokens(r)}): {_cut(r.assistant_output.safe_text)}")
    await core.close()
    again = await LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(weather, add) \
        .store(store).build().session("demo").open()
    view = again.read_view()
    print(f"\nresumed from {store}: {len(view.messages())} messages, {view.turn_index} turns")
    report = again.usage_report()
    print("\nusage report (session 'demo'):")
    print(report.to_dataframe().to_string(index=False))
    print(f"\ntotal {report.usage.total()} tokens (a stopped turn's cut model call is counted "
          f"at an estimate, marked estimated in usage_deltas); done in "
          f"{time.perf_counter() - t0:.1f} s")
    await again.core.close()


if __name__ == "__main__":
    asyncio.run(run_demo("lash-demo.duckdb", 0.02))
