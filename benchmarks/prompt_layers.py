"""The system prompt of a turn from its layers: a cached turn (layers unchanged) beside a
full resolve and render (what every turn would pay without the cache), interleaved.

The session has a core guidance contribution, a plain ``system_prompt``, a session layer of
four contributions and a tool that contributes one gated line: a realistic notebook setup.

    python -P benchmarks/prompt_layers.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

from lash_nb import LashCore, PromptContribution, SessionConfigPatch, tool
from lash_nb._runtime.prompt_layers import render_for
from lash_nb.testing import scripted

ROUNDS, CALLS = 7, 5000


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return key


async def main() -> None:
    core = (LashCore.builder().provider(scripted("ok")).model("m").tools(lookup)
            .system_prompt("You are a careful analyst.")
            .prompt_contribution(PromptContribution.guidance("House", "Be brief.")).build())
    s = await core.session("bench").open()
    for i in range(4):
        await s.admin().config().add_prompt_contribution(
            PromptContribution.environment(f"Frame {i}", f"df{i} has {i + 3} columns"))
    await s.configure(SessionConfigPatch(model="m"))
    surface, state = s.parts.surface, s.state
    cached, full = [], []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(CALLS):
            render_for(surface, state, turn_id="t")
        cached.append((time.perf_counter() - t) / CALLS * 1e6)
        t = time.perf_counter()
        for _ in range(CALLS):
            surface.cache.clear()
            render_for(surface, state, turn_id="t")
        full.append((time.perf_counter() - t) / CALLS * 1e6)
    print(f"system prompt per turn, cached (layers unchanged): "
          f"{statistics.median(cached):.1f} us median of {ROUNDS} rounds")
    print(f"system prompt per turn, resolved and rendered:     "
          f"{statistics.median(full):.1f} us median of {ROUNDS} rounds")
    print(f"rendered prompt: {len(s.rendered_prompt() or '')} characters")


if __name__ == "__main__":
    asyncio.run(main())
