"""A tool that prints more than lash keeps or shows: what its row says, live and at the end,
in the widget and in the saved record's markdown (docs/adr/0210).

A data scientist's tool prints 2,000 progress lines (102,000 characters). lash keeps the first
and last halves of ``max_output`` (65,536) around a line saying what it left out (ADR 197);
the row shows 20,000 characters of that. Before: the finished row said "… 45,596 more
characters not shown here" and nothing of the 36,516 characters lash had dropped in the
middle, so the user read that the store held the rest; while the call ran, the row said
"… 10,660 more characters not shown here" (what had come so far) and then stopped moving as
the tool went on printing. With a tool bound of 10,000 the live lines stopped at 5,512
characters (the half lash keeps from the start) with no word at all: the row looked as if the
tool had gone quiet.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

from lash_nb import LashCore, tool
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._notebook.widgets.snapshot import tool_row_html
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

LINE = "{:05d} rows of the sales table checked, all is fine"  # 51 characters with its newline


class Live:
    """The live rows of a turn's tool call as the widget folds them; a tool waits on it until
    a live activity came after what it printed so far."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.fold = TurnFold()
        self._seen = threading.Condition()

    def saw(self, activity: Any) -> None:
        self.fold.apply(activity)
        if activity.type == "tool_call_printed":
            with self._seen:
                self.rows.append(_tool_row(self.fold)["printed"])
                self._seen.notify_all()

    def wait_next(self, timeout: float = 30.0) -> None:
        """Until a live activity comes after this call (at most ``timeout`` s: none may come)."""
        with self._seen:
            before = len(self.rows)
            self._seen.wait_for(lambda: len(self.rows) > before, timeout)


def _turn(tool_fn: Any, live: Live) -> Any:
    replies = [[tool_call(tool_fn.name, "{}", "c1")]]

    def model(request: Any) -> Any:
        return replies.pop(0) if replies else "done"

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            tool_fn).build()
        s = await core.session("s").open()
        stream = s.turn("go").stream()
        async for activity in stream:
            live.saw(activity)
        result = await stream.finish()
        await core.close()
        return result

    return asyncio.run(body())


def _print_in_two(live: Live, first: int, total: int) -> None:
    """Lines 0 .. ``first`` - 1, then (once the row showed some) the rest up to ``total``."""
    for i in range(first):
        print(LINE.format(i))
    live.wait_next()
    for i in range(first, total):
        print(LINE.format(i))
    live.wait_next(timeout=3)  # the lines past what live rows carry: none may come


def _tool_row(fold: TurnFold) -> dict[str, Any]:
    (row,) = [b for b in fold.blocks if b["kind"] == "tool"]
    return row


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if re.fullmatch(r"\d{5} rows .*", line)]


def test_a_tool_printing_past_what_lash_keeps_says_so_on_its_row_and_in_the_record() -> None:
    live = Live()

    @tool
    def check_sales() -> str:
        """Check the sales table, telling how far it got."""
        _print_in_two(live, 500, 2000)  # 25,500 characters first: more than the row shows
        return "checked"

    result = _turn(check_sales, live)
    stored = result.tool_calls[0].printed
    (cut,) = re.findall(r"\[… lash left out [\d,]+ of the 102,000 characters \([\d,]+ lines\) "
                        r"this tool printed; max_output=65,536 …\]", stored)
    fold = live.fold

    # live: the row shows the first lines as they came, then a line that says the tool
    # prints more than the row shows and where it will be, with no count of what came so far
    last = live.rows[-1]
    shown = _lines(last)
    assert shown == [LINE.format(i) for i in range(len(shown))] and len(shown) > 300
    note = last[last.rindex("\n… "):]
    assert "more characters" not in note, note
    assert "while it runs" in note and "SELECT printed FROM tool_calls WHERE call_id = 'c1'" in note

    # finished: the row shows the start, says lash kept part of the 102,000 characters, and
    # quotes the line saying what was left out (past the 20,000 characters shown)
    row = _tool_row(fold)["printed"]
    assert _lines(row) == [LINE.format(i) for i in range(len(_lines(row)))]
    assert len(row) < 21_000
    kept = re.search(r"lash kept ([\d,]+) of the 102,000 characters this tool printed", row)
    assert kept, row[-600:]
    left = re.search(r"left out ([\d,]+) of", cut)
    assert int(kept[1].replace(",", "")) + int(left[1].replace(",", "")) == 102_000
    assert cut in row and "SELECT printed FROM tool_calls WHERE call_id = 'c1'" in row
    # the saved record: its HTML box and its markdown say the same
    assert cut in tool_row_html(_tool_row(fold))
    assert cut in fold.to_markdown()


def test_live_lines_that_stop_at_what_lash_keeps_say_so_while_the_tool_prints() -> None:
    """A tool bound to 10,000 characters keeps its first 5,512 or so; its live lines stop
    there while it goes on printing, and its row says so; at the end the row says what lash
    kept of the 51,000 characters."""
    live = Live()

    @tool(max_output=10_000)
    def check_small() -> str:
        """Check the sales table, telling how far it got."""
        _print_in_two(live, 50, 1000)
        return "checked"

    _turn(check_small, live)
    fold = live.fold
    last = live.rows[-1]
    assert len(_lines(last)) > 50
    assert "\n… " in last and "while it runs" in last[last.rindex("\n… "):], last[-400:]
    row = _tool_row(fold)["printed"]
    assert re.search(r"\[… lash left out [\d,]+ of the 51,000 characters \([\d,]+ lines\) this "
                     r"tool printed; max_output=10,000 …\]", row), row
    assert _lines(row)[-1] == LINE.format(999)  # shown whole: its end is there too


def test_a_stored_text_that_fits_the_row_shows_whole_with_no_note() -> None:
    @tool
    def check_few() -> str:
        """Check a few rows."""
        for i in range(3):
            print(LINE.format(i))
        return "checked"

    live = Live()
    _turn(check_few, live)
    whole = "".join(LINE.format(i) + "\n" for i in range(3))
    assert _tool_row(live.fold)["printed"] == whole
    assert all(text == whole[:len(text)] for text in live.rows)
