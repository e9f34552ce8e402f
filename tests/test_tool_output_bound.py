"""A tool that returns something huge does not put it into every later request, the store or
the notebook (docs/adr/0174).

A data scientist's ``@tool def read_log(): return open("big.log").read()`` on a large log,
``df.to_string()`` of a big frame, a dict of a million rows: the model is sent the head and the
tail of the output's text, with one line between them saying how much was left out; the store,
the live events, the reopened session's next requests and the notebook record hold that same
bounded form. ``@tool(max_output=...)`` and ``LashCore.builder().max_tool_output(...)`` raise
(or lower) the bound.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from local_openai import chat_script

from lash_nb import LashCore, tool
from lash_nb._errors import ConfigurationError
from lash_nb.providers import FunctionProvider, OpenAICompatible
from lash_nb.stores import DuckDBStore
from lash_nb.testing import LoopbackServer, tool_call

KEY = "lnb-bound-key-6f1e0a9c77"  # the session provider's key; shaped like no known key
LINE = "2026-12-01T10:00:00 INFO worker-3 processed a batch\n"  # 52 characters
assert len(LINE) == 52
BIG_LOG = LINE * 100_000  # 5,200,000 characters, 100,000 lines
MARKER = re.compile(r"\[… lash left out ([\d,]+) of the ([\d,]+) (characters|bytes|items)"
                    r"(?: \(([\d,]+) lines\))? this tool returned; max_output=([\d,]+) …\]")


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def _split(output: str) -> tuple[str, re.Match[str], str]:
    """The head, the marker and the tail of a cut output (exactly one marker)."""
    found = list(MARKER.finditer(output))
    assert len(found) == 1, output[:200]
    m = found[0]
    head, tail = output[:m.start()], output[m.end():]
    assert head.endswith("\n") and tail.startswith("\n")  # the marker is a line of its own
    return head[:-1], m, tail[1:]


CALL_READ = chat_script(
    "calls-read-log",
    '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
    '"function":{"name":"read_log","arguments":"{}"}}]}}]}',
    '{"choices":[{"finish_reason":"tool_calls","delta":{}}]}')
ANSWER = chat_script("answers", '{"choices":[{"delta":{"content":"The log is fine."}}]}',
                     '{"choices":[{"finish_reason":"stop","delta":{}}]}')
ANSWER_AGAIN = chat_script("answers-again", '{"choices":[{"delta":{"content":"Still fine."}}]}',
                           '{"choices":[{"finish_reason":"stop","delta":{}}]}')


@tool
def read_log() -> str:
    """Read the worker's log."""
    return BIG_LOG


def _tool_message_content(body: dict[str, Any]) -> str:
    (msg,) = [m for m in body["messages"] if m.get("role") == "tool"]
    content = msg["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


def test_a_tool_returning_a_5_mb_log_sends_stores_and_shows_its_head_and_tail(tmp_path: Path) -> None:
    """The session with the big log output is reopened and asked again: the request of the
    reopened session, the tool_calls row, the events and the record all hold the bounded
    output, and the file does not hold the log. Before: every request after the call carried
    5.2 MB, and the store kept it several times."""
    path = tmp_path / "logs.duckdb"

    async def body() -> tuple[Any, list[Any], list[str], Any, int]:
        with LoopbackServer([CALL_READ, ANSWER, ANSWER_AGAIN], time_scale=0) as srv:
            provider = OpenAICompatible(base_url=srv.base_url, api_key=KEY, model="openai/gpt-5.4")
            core = LashCore.builder().provider(provider).tools(read_log).store(
                DuckDBStore(path, idle_release_s=None)).build()
            s = await core.session("s").open()
            out = (await s.turn("is the log fine?").run()).result
            await core.close()
            store = DuckDBStore(path, idle_release_s=None)
            core = LashCore.builder().provider(provider).tools(read_log).store(store).build()
            s = await core.session("s").open()
            await s.turn("and now?").run()
            rows = store.query("SELECT output FROM tool_calls")["output"].tolist()
            events = await store.load_events("s", out.turn_id)
            from lash_nb._notebook.widgets.turn import TurnWidget

            w = TurnWidget(session_id="s", turn_id=out.turn_id, prompt="is the log fine?")
            w.push_all(events)
            w.finish(outcome="finished")
            await core.close()
            assert srv.errors == []
            return out, [r.body for r in srv.requests], rows, w, len(events)

    out, requests, rows, widget, _ = asyncio.run(body())
    (call,) = out.tool_calls
    assert call.success is True
    head, m, tail = _split(call.output)
    left, total, unit, lines, bound = m.groups()
    assert (unit, _n(total), _n(bound)) == ("characters", 5_200_000, 65_536)
    assert BIG_LOG.startswith(head) and BIG_LOG.endswith(tail)
    assert head.endswith("\n") and tail.endswith(LINE)  # cut at line ends
    assert len(head) + len(tail) <= 65_536
    assert len(head) + len(tail) > 60_000  # not much less than the bound either
    assert _n(left) == 5_200_000 - len(head) - len(tail)
    assert _n(lines) == (5_200_000 - len(head) - len(tail)) // 52
    # the model got that form right after the call and, from the reopened session, again
    after_call, reopened = _tool_message_content(requests[1]), _tool_message_content(requests[2])
    assert after_call == call.output and reopened == call.output
    for r in requests:
        assert len(json.dumps(r)) < 100_000
    # the store kept the bounded form; the file is far smaller than one copy of the log
    assert [json.loads(r) if r.startswith('"') else r for r in rows] == [call.output]
    assert path.stat().st_size < 5_200_000
    # the notebook record says the output was cut before the model saw it
    shown = widget.blocks[0]["output"]
    assert m.group(0) in shown
    assert len(shown) < 21_000
    html = widget._repr_mimebundle_()["text/html"]  # the record the saved notebook keeps
    assert m.group(0) in html and len(html) < 80_000


def _request_results(model_seen: list[Any]) -> list[str]:
    return [r.content for req in model_seen for r in req.messages[-1].tool_results()]


def _run(fn: Any, *, builder_bound: int | None = None) -> tuple[Any, list[str]]:
    seen: list[Any] = []

    def model(request: Any) -> Any:
        seen.append(request)
        return [tool_call(fn.name, "{}", "c1")] if len(seen) == 1 else "done"

    async def body() -> Any:
        b = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(fn)
        if builder_bound is not None:
            b = b.max_tool_output(builder_bound)
        core = b.build()
        s = await core.session("s").open()
        out = (await s.turn("go").run()).result
        await core.close()
        return out

    out = asyncio.run(body())
    return out, _request_results(seen)


def test_max_output_on_the_tool_sets_its_bound() -> None:
    @tool(max_output=1_000)
    def numbers() -> str:
        """Numbers, one per line."""
        return "".join(f"{i:04d}\n" for i in range(2_000))  # 10,000 characters

    out, sent = _run(numbers)
    (text,) = sent
    head, m, tail = _split(text)
    assert _n(m.group(5)) == 1_000 and _n(m.group(2)) == 10_000
    assert head.startswith("0000\n0001\n") and tail.endswith("1998\n1999\n")
    assert len(head) + len(tail) <= 1_000
    assert _n(m.group(1)) == 10_000 - len(head) - len(tail)
    assert out.tool_calls[0].output == text


def test_a_small_output_is_untouched_and_a_raised_bound_keeps_a_big_one_whole() -> None:
    @tool
    def small() -> dict[str, Any]:
        """A small result."""
        return {"rows": 3, "mean": 1.5}

    out, sent = _run(small)
    assert out.tool_calls[0].output == {"rows": 3, "mean": 1.5}
    assert json.loads(sent[0]) == {"rows": 3, "mean": 1.5}

    @tool
    def medium() -> str:
        """100,000 characters."""
        return "x" * 100_000

    out, sent = _run(medium, builder_bound=200_000)
    assert sent == ["x" * 100_000]
    out, sent = _run(medium, builder_bound=10_000)  # the session's bound, lowered
    assert MARKER.search(sent[0]) is not None and len(sent[0]) < 10_200


def test_a_dict_of_a_million_items_a_list_and_bytes_are_bounded_too() -> None:
    @tool
    def rows() -> dict[str, int]:
        """A million counters."""
        return {f"k{i}": i for i in range(1_000_000)}

    _out, (text,) = _run(rows)
    head, m, tail = _split(text)
    assert head.startswith('{"k0": 0, "k1": 1, ') and tail.endswith('"k999999": 999999}')
    assert (m.group(3), _n(m.group(2))) == ("items", 1_000_000)
    # the items wholly or partly shown are the ones not counted as left out; a partly shown
    # one at each side may show no '"k' (the tail's last item shows only its end)
    keys = head.count('"k') + tail.count('"k')
    assert 1_000_000 - keys - 2 <= _n(m.group(1)) <= 1_000_000 - keys
    assert len(text) < 66_000

    @tool
    def raw() -> bytes:
        """A binary file."""
        return b"\x00\x01ab" * 1_000_000  # 4,000,000 bytes

    _out, (text,) = _run(raw)
    head, m, tail = _split(text)
    assert head.startswith("b'\\x00\\x01ab\\x00\\x01ab") and tail.endswith("\\x00\\x01ab'")
    assert (m.group(3), _n(m.group(2))) == ("bytes", 4_000_000)
    assert len(text) < 66_000

    @tool
    def many() -> list[int]:
        """Many numbers."""
        return list(range(1_000_000))

    _out, (text,) = _run(many)
    head, m, tail = _split(text)
    assert head.startswith("[0, 1, 2, ") and tail.endswith("999998, 999999]")
    assert (m.group(3), _n(m.group(2))) == ("items", 1_000_000)

    @tool
    def few_big() -> list[str]:
        """Three long texts: more characters than the bound, fewer items than it could hold."""
        return ["a" * 40_000, "b" * 40_000, "c" * 40_000]

    _out, (text,) = _run(few_big)
    head, m, tail = _split(text)
    assert head.startswith('["aaaa') and tail.endswith('cccc"]')
    assert (m.group(3), _n(m.group(2))) == ("characters", 120_012)


def test_a_key_at_the_cut_is_not_half_kept() -> None:
    """The provider key is taken out of the output before the head and tail are cut, so a key
    across the cut leaves no piece of it."""
    seen: list[Any] = []

    @tool(max_output=1_000)
    def dump() -> str:
        """A config dump."""
        return "a" * 490 + KEY + "b" * 5_000 + KEY + "c" * 480

    class Keyed(FunctionProvider):
        def scrub_value(self, value: Any) -> Any:
            from lash_nb._core.secrets import Scrubber

            return Scrubber([KEY]).scrub_value(value)

    def model(request: Any) -> Any:
        seen.append(request)
        return [tool_call("dump", "{}", "c1")] if len(seen) == 1 else "done"

    async def body() -> Any:
        core = LashCore.builder().provider(Keyed(model)).model("m").tools(dump).build()
        s = await core.session("s").open()
        out = (await s.turn("go").run()).result
        await core.close()
        return out

    asyncio.run(body())
    (text,) = _request_results(seen)
    assert MARKER.search(text) is not None
    for piece in (KEY[:6], KEY[-6:], KEY[8:14]):
        assert piece not in text


def test_max_output_must_be_a_positive_int() -> None:
    for bad in (0, -5, 1.5, "big", True):
        with pytest.raises(ConfigurationError, match="max_output"):
            tool(max_output=bad)(lambda: "x")
    with pytest.raises(ConfigurationError, match="max_tool_output"):
        LashCore.builder().max_tool_output(0)


def test_a_huge_output_with_nul_lone_surrogates_and_colour_codes_is_cut_clean(tmp_path: Path) -> None:
    """A test runner's coloured log, with a NUL and a byte decoded with surrogateescape, long
    enough to be cut: the cut falls inside a colour code on both sides. The kept text has no
    NUL and no lone surrogate (the store takes it), and no remnant of a cut escape (``[3`` or
    ``0m`` shown as text once the widget drops escapes)."""
    from lash_nb._core.visible import visible

    unit = "\x1b[31mE\x1b[0m"  # 10 characters: a red E
    text = "\x00start \udcff " + unit * 5_000 + " end\x00"

    # each half is 503: the head's end falls 494 characters into the units, inside the fifth
    # character of ESC [31m; the tail's start 49,502, inside its third
    @tool(max_output=1_006)
    def run_tests() -> str:
        """Run the tests."""
        return text

    seen: list[Any] = []

    def model(request: Any) -> Any:
        seen.append(request)
        return [tool_call("run_tests", "{}", "c1")] if len(seen) == 1 else "done"

    async def body() -> Any:
        store = DuckDBStore(tmp_path / "t.duckdb", idle_release_s=None)
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            run_tests).store(store).build()
        s = await core.session("s").open()
        await s.turn("run the tests").run()
        rows = store.query("SELECT output FROM tool_calls")["output"].tolist()
        await core.close()
        return rows

    (row,) = asyncio.run(body())
    (sent,) = _request_results(seen)
    assert json.loads(row) == sent
    head, m, tail = _split(sent)
    assert "\x00" not in sent
    sent.encode("utf-8")  # no lone surrogate
    assert head.startswith("\ufffdstart \ufffd \x1b[31mE\x1b[0m")
    assert head.endswith("\x1b[31mE\x1b[0m")  # not "\x1b[3"
    assert tail.startswith("E\x1b[0m\x1b[31mE")  # not "31mE": the cut red code is left out
    assert tail.endswith("\x1b[31mE\x1b[0m end\ufffd")
    shown = visible(head) + "|" + visible(tail)
    assert re.fullmatch(r"\ufffdstart \ufffd E+\|E+ end\ufffd", shown), shown
    assert _n(m.group(2)) == len(text)
    assert _n(m.group(1)) == len(text) - len(head) - len(tail)  # U+FFFD: one for one


def test_an_output_just_past_the_bound_is_cut_once_and_keeps_the_rest() -> None:
    @tool(max_output=1_000)
    def short() -> str:
        """1,001 characters."""
        return "a" * 500 + "b" + "c" * 500

    _out, (text,) = _run(short)
    head, m, tail = _split(text)
    assert (head, tail) == ("a" * 500, "c" * 500)
    assert (_n(m.group(1)), _n(m.group(2)), _n(m.group(4))) == (1, 1_001, 0)


def test_a_tool_error_with_a_huge_message_is_bounded_like_an_output() -> None:
    """A tool that fails quoting what it read (``ValueError(f"bad row: {whole_file}")``)."""
    @tool(max_output=2_000)
    def parse() -> str:
        """Parse the file."""
        raise ValueError("bad row in:\n" + "x,y,z\n" * 100_000)

    out, (text,) = _run(parse)
    (call,) = out.tool_calls
    assert call.success is False and call.output == text
    head, m, tail = _split(text)
    assert head.startswith("ValueError: bad row in:\nx,y,z\n") and tail.endswith("x,y,z\n")
    assert _n(m.group(2)) == len("ValueError: bad row in:\n") + 600_000


def test_a_notebook_sets_the_bound_with_config_and_a_tool_keeps_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``%config LashMagics.max_tool_output`` is the bound of the sessions opened after it;
    ``@tool(max_output=...)`` still wins; the offline model reads the cut output."""
    from notebook_harness import lash_shell

    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = ':memory:'",
                    "%config LashMagics.max_tool_output = 3000") as sh:
        sh.run_cell("from lash_nb import tool\n"
                    "@tool\ndef tail_log() -> str:\n    'The log.'\n"
                    "    return ''.join(f'line {i}\\n' for i in range(10_000))\n"
                    "@tool(max_output=500)\ndef head_log() -> str:\n    'The log, briefly.'\n"
                    "    return ''.join(f'line {i}\\n' for i in range(10_000))\n")
        sh.run_cell("%lash open s1")
        sh.run_cell("r = %lash turn Run tail_log please")
        out = sh.user_ns["r"].tool_calls[0].output
        head, m, tail = _split(out)
        assert _n(m.group(5)) == 3_000 and head.startswith("line 0\nline 1\n")
        assert tail.endswith("line 9999\n") and len(head) + len(tail) <= 3_000
        sh.run_cell("r = %lash turn Run head_log please")
        _head, m, _tail = _split(sh.user_ns["r"].tool_calls[0].output)
        assert _n(m.group(5)) == 500
