"""Runtime overhead per turn: zero-latency model, in-memory store.

A turn is the anchors' turn (../shared/anchors/bench_turn.py): user message -> the model asks
for one tool call -> the tool runs -> the model answers. Medians at history 10 and 10,000
turns; goal < 1 ms median and flat (turn 10 vs turn 10,000 within 1.5x).

    python benchmarks/turn_overhead.py [--quick]

Issue 21, branch inmem (2026-11-30), this turn with the in-memory store, 7 alternating rounds,
CPU (process_time) per turn over 1,000 turns at 200-1,200 turns of history, medians over the
rounds: 24d40b7 0.321 ms, main 0733004 0.464 ms, inmem f20ef64 0.432 ms; median wall per turn
0.257 / 0.353 / 0.326 ms (2 shared cores; cProfile calls per turn 860 / 1,172 / ~1,036).

Issue 21, branch turnpy (2026-11-30), the same turn counted rather than timed (the machine's
load was 5-22): CPython instructions per turn under callgrind, turns 50 -> 450, hash seed 0
(``valgrind --tool=callgrind python -P <a script running N turns>``, N=450 minus N=50, / 400):
24d40b7 1.895 M, main 6fe8357 2.143 M (1.13x), turnpy 2.008 M (1.06x); cProfile calls per turn
843 / 1,020 / 965. Timed in the same loaded hour, 7 alternating rounds, median of the medians:
0.297 / 0.443 / 0.374 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import time

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmPart, LlmResponse, TerminalReason
from lash_nb._core.records import PartKind
from lash_nb._core.usage import TokenUsage
from lash_nb.providers import FunctionProvider

FINAL = LlmResponse(parts=(LlmPart.text_part("It is sunny in Paris, 21 degrees."),),
                    usage=TokenUsage(100, 10))


@tool
async def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny, 21C, wind W 10 km/h"


def model(request):
    last = request.messages[-1]
    if last.parts and last.parts[-1].kind is PartKind.TOOL_RESULT:
        return FINAL
    return LlmResponse(parts=(LlmPart.tool_call("call_x", "get_weather", '{"city": "Paris"}'),),
                       usage=TokenUsage(100, 10), terminal_reason=TerminalReason.TOOL_USE)


async def measure(session, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        await session.turn(f"turn {i}: what is the weather in Paris?").run()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    target = 1000 if args.quick else 10_000
    print(f"# turn_overhead: python {platform.python_version()}, {platform.platform()}")
    core = LashCore.builder().provider(FunctionProvider(model)).model("bench").tools(get_weather).build()
    s = await core.session("bench").open()
    await measure(s, 20)  # warm-up: history is now 20 turns
    gc.collect()
    early = await measure(s, 200)
    filled = s.state.turn_index
    t0 = time.perf_counter()
    await measure(s, target - filled)
    fill_s = time.perf_counter() - t0
    gc.collect()
    late = await measure(s, 200)
    m_early, m_late = statistics.median(early), statistics.median(late)
    print(f"history ~{filled - 200}-{filled} turns: median {m_early:.3f} ms  p90 "
          f"{sorted(early)[int(0.9 * len(early))]:.3f} ms")
    print(f"history ~{s.state.turn_index - 200}-{s.state.turn_index} turns: median {m_late:.3f} ms  p90 "
          f"{sorted(late)[int(0.9 * len(late))]:.3f} ms")
    print(f"late/early ratio: {m_late / m_early:.2f} (goal <= 1.5)   filling took {fill_s:.1f} s")
    print(f"graph nodes: {len(s.state.graph)}, events kept in the memory store: "
          f"{len(s.store._sessions['bench'].events)}")


if __name__ == "__main__":
    asyncio.run(main())
