"""Code mode: how long a sandbox kernel takes to start, what one cell costs on top of the
code it runs (a cell of ``pass`` through ``Sandbox.run_cell``), what a host call from a cell
costs (``submit``), and a whole code-mode turn of two cells with a scripted model. Prints
numbers; asserts nothing.

    .venv/bin/python benchmarks/code_mode.py [STARTS] [CELLS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from lash_nb import LashCore
from lash_nb._runtime.code_mode.sandbox import Sandbox
from lash_nb.providers import FunctionProvider, LlmRequest


async def no_host_call(request: dict[str, object]) -> object:
    raise AssertionError(f"unexpected host call {request}")


async def submit_only(request: dict[str, object]) -> object:
    return None


def model(request: LlmRequest) -> str:
    if any(m.origin == "code_observation" for m in request.messages[-1:]):
        return "<python>\nsubmit(x)\n</python>"
    return "<python>\nx = 41 + 1\nprint(x)\n</python>"


def ms(values: list[float]) -> str:
    values = sorted(values)
    return (f"median {statistics.median(values) * 1000:.1f} ms, "
            f"p90 {values[int(len(values) * 0.9) - 1] * 1000:.1f} ms (n={len(values)})")


async def main(starts: int, cells: int) -> None:
    start_times = []
    for _ in range(starts):
        sb = Sandbox()
        t0 = time.perf_counter()
        await sb.start()
        start_times.append(time.perf_counter() - t0)
        isolation = sb.isolation
        await sb.close()
    print(f"sandbox start ({isolation}): {ms(start_times)}")

    sb = Sandbox()
    await sb.start()
    from lash_nb._runtime.code_mode.bridge import bridge_code

    await sb.set_prelude(bridge_code())
    plain, host = [], []
    for _ in range(cells):
        t0 = time.perf_counter()
        await sb.run_cell("pass", no_host_call)
        plain.append(time.perf_counter() - t0)
    for _ in range(cells):
        t0 = time.perf_counter()
        await sb.run_cell("submit(1)", submit_only)
        host.append(time.perf_counter() - t0)
    print(f"per-cell overhead (a cell of `pass`): {ms(plain)}")
    print(f"a cell with one host call (submit): {ms(host)}")

    core = LashCore.builder().provider(FunctionProvider(model)).build()
    first, later = [], []
    for i in range(max(cells // 20, 5)):
        session = await core.session(f"bench-{i}").mode("code", sandbox=sb).open()
        for times in (first, later, later):
            t0 = time.perf_counter()
            out = await session.turn("compute").run()
            times.append(time.perf_counter() - t0)
            assert out.result.outcome.value == 42
    # the first turn of a session on a shared sandbox also resets it (%reset -f) and installs
    # the bridge; a session with its own sandbox pays the start above instead
    print(f"code-mode turn of two cells, a session's first (scripted model): {ms(first)}")
    print(f"code-mode turn of two cells, later turns: {ms(later)}")
    await sb.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [3, 100][len(args):])))
