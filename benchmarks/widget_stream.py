"""A 10,000-delta stream through the live turn widget, in a real kernel.

Prints, per scenario: comm messages the kernel sent for the widget (counted on iopub by a
jupyter_client, as a browser would receive them), bytes of widget state sent, and kernel CPU
time per delta (``time.process_time`` inside the kernel around the stream).

Scenarios: ``burst`` pushes 10,000 deltas yielding to the loop after each one (as fast as the
kernel can); ``paced`` pushes them at ~2,000 deltas/s (a fast real model), so the 20 frames/s
coalescing shows; ``uncoalesced`` flushes after every delta, for comparison (1,000 deltas only:
each message resends the growing text, so it is quadratic in bytes).

A linear check follows: the ``paced`` scenario at ``--n`` and at 4x ``--n`` deltas, in fresh
widgets of the same kernel; traffic linear in the answer costs ~4x the bytes for 4x the deltas
(a stream that re-sends the whole state each flush costs far more).

Run: ``.venv/bin/python -P benchmarks/widget_stream.py [--n 10000] [--against OLD_CHECKOUT]``
(the kernel imports the ``lash_nb`` on PYTHONPATH; ``--against`` runs the linear check of
another checkout in a second kernel, interleaved with this one's)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p != _here]  # benchmarks/queue.py must not shadow stdlib queue
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from notebook_harness import KernelHarness  # noqa: E402

N = 10_000

CELL = """
import asyncio, time
from lash_nb._notebook.widgets.turn import TurnWidget
w = TurnWidget(session_id="bench", interval_s={interval})
w.show()
async def stream():
    start_cpu, start = time.process_time(), time.perf_counter()
    per_tick = {per_tick}
    for i in range({n}):
        w.push({{"id": str(i), "correlation_id": "p1", "type": "assistant_prose_delta", "text": "tok "}})
        if {every}:
            w.flush()
        if i % per_tick == per_tick - 1:
            await asyncio.sleep({sleep})
    w.push({{"id": "o", "correlation_id": "o", "type": "turn_outcome",
            "outcome": {{"finished": {{"assistant_message": {{"text": ""}}}}}}, "turn_id": "t"}})
    w.finish()
    return time.process_time() - start_cpu, time.perf_counter() - start
cpu, wall = await stream()
print(cpu, wall, w.flush_count)
"""

SCENARIOS = {
    "burst": {"interval": 0.05, "per_tick": 1, "sleep": 0, "every": False},
    "paced": {"interval": 0.05, "per_tick": 20, "sleep": 0.01, "every": False},
    "uncoalesced": {"interval": 0.05, "per_tick": 1, "sleep": 0, "every": True, "n": 1_000},
}


def html_bytes(update: dict[str, object]) -> int:
    """Bytes of rendered prose HTML in one state update or delta message (whole HTML, or the
    new part of a splice)."""
    inner = update.get("custom", update)
    if not isinstance(inner, dict):
        return 0
    html = inner.get("html")
    splices = inner.get("html_splice") or []
    return (len(json.dumps(html)) if html else 0) + sum(len(json.dumps(sp[3])) for sp in splices)


def traffic(k: KernelHarness, n: int, opts: dict[str, object]) -> tuple[int, float, str, float]:
    """(comm messages, MB sent, the cell's printed cpu/wall/flushes, MB of it rendered HTML)
    for one fresh widget."""
    ex = k.run(CELL.format(n=n, **opts), timeout=600)
    model_id = ex.widget_ids()[0]
    size = sum(len(json.dumps(u)) for u in k.update_log[model_id]) / 1e6
    html = sum(html_bytes(u) for u in k.update_log[model_id]) / 1e6
    return k.comm_updates[model_id], size, ex.stdout, html


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=N, help="deltas per scenario (default 10,000)")
    ap.add_argument("--against", default=None,
                    help="another checkout: its linear check runs interleaved with this one's")
    args = ap.parse_args()
    n_all = args.n
    print(f"widget_stream: {n_all:,} assistant_prose_delta activities per scenario")
    print(f"{'scenario':<12} {'comm msgs':>9} {'flushes':>8} {'state MB':>9} "
          f"{'kernel CPU/delta':>17} {'wall s':>7}")
    with KernelHarness() as k:
        for name, opts in SCENARIOS.items():
            n = min(n_all, int(opts.pop("n", n_all)))
            msgs, size, out, _ = traffic(k, n, opts)
            cpu, wall, flushes = out.split()
            print(f"{name + ('' if n == n_all else f' ({n:,})'):<12} {msgs:>9,} {int(flushes):>8,} {size:>9.2f} "
                  f"{float(cpu) / n * 1e6:>14.1f} µs {float(wall):>7.2f}")
        kernels = [("this", k)]
        other = None
        if args.against:
            other = KernelHarness(env={"PYTHONPATH": str(Path(args.against).resolve())})
            kernels.insert(0, ("against", other.__enter__()))
        try:
            paced = {"interval": 0.05, "per_tick": 20, "sleep": 0.01, "every": False}
            rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in kernels}
            for n in (n_all, 4 * n_all):  # interleaved: each tree at n, then each at 4n
                for name, kern in kernels:
                    _, size, _, html = traffic(kern, n, paced)
                    rows[name].append((size, html))
            for name, ((small, small_html), (large, large_html)) in rows.items():
                # this tree's line keeps the form benchmarks/issue21_lines.py parses
                label = "linear check:" if name == "this" else f"linear check (against {args.against}):"
                print(f"{label} paced, {n_all:,} deltas {small:.3f} MB, "
                      f"{4 * n_all:,} deltas {large:.3f} MB, ratio {large / small:.2f} (linear in the "
                      f"answer: ~4); of it rendered prose HTML {small_html:.3f} MB and {large_html:.3f} MB")
        finally:
            if other is not None:
                other.__exit__(None, None, None)


if __name__ == "__main__":
    main()
