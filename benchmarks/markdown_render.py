"""How long the Python-side markdown render of a growing answer takes per flush.

A live turn re-renders each prose row whose text changed on every flush (at most one flush per
``interval_s``, 50 ms by default). This prints the cost of one render for answers of growing
size, and the CPU share of rendering during a 10,000-delta answer arriving at 2,000 deltas/s with a
flush every 50 ms (what the widget does in a kernel).
Run: ``python -P benchmarks/markdown_render.py`` (``-P``: benchmarks/queue.py shadows the stdlib).
"""

from __future__ import annotations

import time

from lash_nb._notebook.widgets.markdown import render_markdown
from lash_nb._notebook.widgets.turn import TurnWidget

PARA = ("Here is **some** text with `code`, a [link](https://example.org/a_(b)) and a list:\n\n"
        "- one\n  - nested\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```\n\n")


def per_render(chars: int) -> float:
    text = (PARA * (chars // len(PARA) + 1))[:chars]
    n = 20
    t0 = time.perf_counter()
    for _ in range(n):
        render_markdown(text)
    return (time.perf_counter() - t0) / n * 1000


def paced_stream(deltas: int, per_s: float) -> tuple[float, float, int, int]:
    """Deltas arrive at ``per_s``; a flush every 50 ms (the widget's default interval).
    Returns (wall s, CPU s spent rendering, renders, final chars)."""
    import markdown_it

    w = TurnWidget(interval_s=0.05)
    words = (PARA * 400).split(" ")
    renders = [0, 0.0]
    real = markdown_it.MarkdownIt.render

    def counted(self, src, env=None):  # count the renders the widget does and their CPU
        t0 = time.process_time()
        try:
            return real(self, src, env)
        finally:
            renders[0] += 1
            renders[1] += time.process_time() - t0

    markdown_it.MarkdownIt.render = counted
    t0 = time.perf_counter()
    next_flush = t0 + 0.05
    for i in range(deltas):
        w.fold.apply({"id": str(i), "correlation_id": "p1", "type": "assistant_prose_delta",
                      "text": words[i % len(words)] + " "})
        target = t0 + (i + 1) / per_s
        now = time.perf_counter()
        if now >= next_flush:
            w.flush()
            next_flush = now + 0.05
        if target > now:
            time.sleep(target - now)  # pacing a simulated model, not a measurement
    w.finish(outcome="finished: assistant_message")
    markdown_it.MarkdownIt.render = real
    return time.perf_counter() - t0, renders[1], renders[0], len(w.fold.prose)


if __name__ == "__main__":
    for size in (1_000, 10_000, 50_000, 200_000):
        print(f"render {size:>7} chars: {per_render(size):8.2f} ms")
    wall, cpu, n, chars = paced_stream(10_000, 2_000)
    print(f"10,000 deltas at 2,000/s ({chars} chars at the end): {wall:.1f} s, {n} renders, "
          f"{cpu:.2f} s CPU rendering ({cpu / wall:.0%} of the stream's time)")
