"""A tool's progress bar (``tqdm`` and the like: a carriage return, then the bar redrawn) is
shown on its row as a terminal or a cell's stream output shows it, the last state of each line
(docs/adr/0210).

Before: the row held every state of the bar, and a browser draws a carriage return as nothing,
so "epoch 1", then ``  0%|          | 0/100 10%|#         | 10/100 ...`` ran on as one long
line of eleven bars; the saved record the same. A cell's stream output (where the lines went
before ADR 197) shows the last bar only.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from lash_nb import LashCore, tool
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._notebook.widgets.snapshot import tool_row_html
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


@tool
def train() -> str:
    """Train a model, a progress bar per epoch as tqdm draws it."""
    for epoch in (1, 2):
        print(f"epoch {epoch}")
        for i in range(0, 101, 10):
            sys.stderr.write(f"\r{i:3d}%|{'#' * (i // 10):10s}| {i}/100")
            sys.stderr.flush()
        sys.stderr.write("\n")
        print(f"loss 0.{epoch}2")
    sys.stdout.write("reading files...\rread 3 files\r\n")  # a shorter line over a longer one
    return "trained"


def _fold(calls: list[Any], tools: list[Any],
          seen: list[str] | None = None) -> tuple[Any, TurnFold]:
    """The turn a model making ``calls`` runs, and its rows; ``seen``: the tool results the
    model read, as text."""
    replies = [calls]

    def model(request: Any) -> Any:
        if seen is not None:
            seen.extend(str(r.content) for r in request.messages[-1].tool_results())
        return replies.pop(0) if replies else "done"

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            *tools).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        await core.close()
        return out

    out = asyncio.run(body())
    fold = TurnFold()
    fold.apply_all(out.activities)
    return out, fold


def test_a_progress_bar_shows_on_the_row_as_a_terminal_shows_it() -> None:
    out, fold = _fold([tool_call("train", "{}", "c1")], [train])
    (row,) = [b for b in fold.blocks if b["kind"] == "tool"]
    bar = "100%|##########| 100/100"
    assert row["printed"] == (f"epoch 1\n{bar}\nloss 0.12\nepoch 2\n{bar}\nloss 0.22\n"
                              "read 3 filess...\n")
    html = tool_row_html(row)
    assert html.count(bar) == 2 and " 50%|" not in html
    markdown = fold.to_markdown()
    assert f"epoch 1\n{bar}\nloss 0.12\n" in markdown and " 50%|" not in markdown
    # a short run is stored as it came: every state of the bar
    stored = out.result.tool_calls[0].printed
    assert stored.count("\r") == 2 * 11 + 2 and " 50%|#####     | 50/100" in stored


def test_a_progress_bar_moves_on_the_row_while_the_tool_runs() -> None:
    """The bar's line has no line end until it is done; its row shows it as it is redrawn
    (up to the last full redraw), not only once the line ends. Before: live rows carried whole
    lines only, so the row showed "epoch 1" and no bar until the epoch ended."""
    rows: list[str] = []
    seen = threading.Condition()

    def shows(what: str) -> bool:
        with seen:
            return seen.wait_for(lambda: bool(rows) and what in rows[-1], timeout=10)

    @tool
    def fit() -> str:
        """Fit a model, with a progress bar."""
        print("epoch 1")
        for i in range(0, 60, 10):
            sys.stderr.write(f"\r{i:3d}%|{'#' * (i // 10):10s}| {i}/100")
        halfway = shows(" 40%|####      | 40/100")
        for i in range(60, 90, 10):
            sys.stderr.write(f"\r{i:3d}%|{'#' * (i // 10):10s}| {i}/100")
        later = shows(" 70%|#######   | 70/100")  # a redraw over what the row showed
        for i in range(90, 101, 10):
            sys.stderr.write(f"\r{i:3d}%|{'#' * (i // 10):10s}| {i}/100")
        sys.stderr.write("\n")
        return f"fitted, row seen halfway: {halfway}, later: {later}"

    replies = [[tool_call("fit", "{}", "c1")]]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(
            lambda request: replies.pop(0) if replies else "done")).model("m").tools(fit).build()
        s = await core.session("s").open()
        fold = TurnFold()
        stream = s.turn("go").stream()
        async for activity in stream:
            fold.apply(activity)
            if activity.type == "tool_call_printed":
                with seen:
                    rows.append(next(b for b in fold.blocks if b["kind"] == "tool")["printed"])
                    seen.notify_all()
        result = await stream.finish()
        await core.close()
        return result, fold

    result, fold = asyncio.run(body())
    assert result.tool_calls[0].output == "fitted, row seen halfway: True, later: True"
    # the row while the tool waited: the last full redraw of the bar under "epoch 1"
    assert "epoch 1\n 40%|####      | 40/100" in rows, rows
    assert "epoch 1\n 70%|#######   | 70/100" in rows, rows
    (row,) = [b for b in fold.blocks if b["kind"] == "tool"]
    assert row["printed"] == "epoch 1\n100%|##########| 100/100\n"


@tool
def long_fit() -> str:
    """Forty epochs, each a progress bar redrawn 500 times, then the epoch's loss line: the
    redraws alone are ~640,000 characters, ten times what a call keeps of its prints."""
    for epoch in range(1, 41):
        for i in range(1, 501):
            sys.stderr.write(f"\r{i * 100 // 500:3d}%|{'#' * (i // 50):10s}| {i}/500 it")
        sys.stderr.write("\n")
        print(f"epoch {epoch:02d} loss {1 / epoch:.4f}")
    return "fitted"


def test_a_long_run_of_progress_bars_keeps_every_line_printed_between_them() -> None:
    """A data scientist's training tool: the loss line printed after each epoch's bar is
    what they read afterwards. Before: the kept head filled with the first epochs' redraws and
    the tail with the last ones', so the loss lines of epochs 2 to 39 were left out of the
    stored text and the row, for bar states a terminal never shows."""
    out, fold = _fold([tool_call("long_fit", "{}", "c1")], [long_fit])
    stored = out.result.tool_calls[0].printed
    losses = [f"epoch {e:02d} loss {1 / e:.4f}" for e in range(1, 41)]
    assert [line for line in stored.splitlines() if line.startswith("epoch")] == losses
    assert stored.count("100%|##########| 500/500 it\n") == 40  # each bar's last state
    (row,) = [b for b in fold.blocks if b["kind"] == "tool"]
    assert all(loss in row["printed"] for loss in losses)


def test_the_live_row_reads_the_same_while_the_kept_head_drops_old_bar_states() -> None:
    """While the run goes on, the row is fed what the head holds, in pieces; when the head
    lets old bar states go, the row must not show a line twice or lose one."""
    from lash_nb._notebook.widgets.long_text import as_a_terminal_shows
    from lash_nb._runtime.tool_print import Printed

    pieces: list[str] = []
    printed = Printed(2_000, live=lambda text, more: pieces.append(text))
    for epoch in range(1, 31):
        for i in range(0, 101, 5):
            printed.write(f"\r{i:3d}%|{'#' * (i // 10):10s}|")
            if i == 50:
                printed._flush()  # the row is drawn mid-bar
        printed.write(f"\nepoch {epoch:02d} done\n")
        printed._flush()
    shown = as_a_terminal_shows("".join(pieces))
    expected = "".join(f"100%|##########|\nepoch {e:02d} done\n" for e in range(1, 31))
    assert shown == expected
    kept = printed.text()  # nothing cut: every line, the last bars' states still all there
    assert as_a_terminal_shows(kept) == expected and "[… lash left out" not in kept
