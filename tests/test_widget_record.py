"""A finished turn is a record: sanitised markdown, a kernel-free HTML bundle, views that tell
the truth (stopped is not done, cancelled tools show the time they ran, refused turns fail)."""

from __future__ import annotations

import asyncio
import re

import pytest

from lash_nb._core.tool_output import bounded
from lash_nb._notebook.runner import run_turn
from lash_nb._notebook.widgets.markdown import render_markdown
from lash_nb._notebook.widgets.turn import TurnWidget

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def visible(bundle: dict) -> str:
    """The HTML of a bundle without its ``<style>`` block (whose rules name every class)."""
    html = bundle["text/html"]
    start, end = html.find("<style>"), html.find("</style>")
    return html[:start] + html[end + len("</style>"):] if start >= 0 else html


def prose(cid: str, text: str) -> dict:
    return {"id": f"{cid}-{text[:8]}", "correlation_id": cid, "type": "assistant_prose_delta", "text": text}


# ---------------------------------------------------------------------------- markdown
def test_a_gfm_table_becomes_an_html_table():
    out = render_markdown("| city | temp |\n|---|--:|\n| Paris | 21 |\n")
    assert "<table>" in out
    assert "<th>city</th>" in out
    assert '<th style="text-align:right">temp</th>' in out
    assert "<td>Paris</td>" in out
    assert '<td style="text-align:right">21</td>' in out


def test_nested_lists_stay_nested():
    out = render_markdown("- fruit\n  - apple\n    - green\n- veg\n")
    assert out == ("<ul>\n<li>fruit\n<ul>\n<li>apple\n<ul>\n<li>green</li>\n</ul>\n</li>\n</ul>\n"
                   "</li>\n<li>veg</li>\n</ul>\n")


def test_a_url_with_parentheses_is_one_link():
    out = render_markdown("see [Foo](https://en.wikipedia.org/wiki/Foo_(bar)) now")
    assert out == ('<p>see <a href="https://en.wikipedia.org/wiki/Foo_(bar)" target="_blank" '
                   'rel="noopener noreferrer">Foo</a> now</p>\n')


def test_tilde_fences_are_code_and_highlighted_by_language():
    plain = render_markdown("~~~\na < b\n~~~\n")
    assert plain == "<pre><code>a &lt; b\n</code></pre>\n"
    py = render_markdown("~~~python\nx = 'hi'\n~~~\n")
    assert '<code class="language-python">' in py
    # pygments before 2.16 writes the quote as &#39; (same text once the browser reads it)
    assert py.replace("&#39;", "'").count("""<span class="lash-hl-s1">'hi'</span>""") == 1


def test_backslash_escapes_are_literal_characters():
    assert render_markdown(r"\*not em\* and \_x\_ and \`tick\`") == (
        "<p>*not em* and _x_ and `tick`</p>\n")


def test_script_and_raw_html_in_model_output_do_not_survive():
    out = render_markdown('hi <script>alert(1)</script> <img src=x onerror="alert(2)">\n\n'
                          "[x](javascript:alert(3)) ![p](https://evil.example/pixel.png)")
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert 'href="javascript' not in out


def test_strikethrough_and_an_unclosed_fence_mid_stream():
    assert render_markdown("~~old~~ new") == "<p><s>old</s> new</p>\n"
    assert render_markdown("```\npartial code") == "<pre><code>partial code</code></pre>\n"


# ---------------------------------------------------------------------------- the record
def test_a_finished_turn_displays_static_html_without_the_widget_mime_type():
    w = TurnWidget(session_id="s1", turn_id="t1", prompt="weather?")
    assert WIDGET_MIME in w._repr_mimebundle_()[0]  # live: the widget
    w.push(prose("p1", "It is **sunny** in Paris.\n\n| city | temp |\n|---|---|\n| Paris | 21 |"))
    w.push({"id": "u", "correlation_id": "u", "type": "usage", "protocol_iteration": 1,
            "usage": {}, "cumulative": {"input_tokens": 12, "output_tokens": 7}})
    w.finish({"outcome": {"finished": {"assistant_message": {"text": ""}}}})
    data = w._repr_mimebundle_()
    assert WIDGET_MIME not in data
    html = visible(data)
    assert "<strong>sunny</strong>" in html
    assert "<td>Paris</td>" in html
    assert "12 in · 7 out" in html
    assert "finished: assistant_message" in html
    assert "weather?" in html
    assert "<button" not in html and "<script" not in html
    assert "It is **sunny** in Paris." in data["text/plain"]  # the markdown, as text
    assert "text/markdown" not in data  # a third copy no front end picks over the HTML


def test_a_stopped_turn_says_stopped_and_marks_its_partial_prose_interrupted():
    w = TurnWidget()
    w.push(prose("p1", "You said: hel"))
    w.request_stop()
    assert w.status == "stopping"
    w.finish({"outcome": {"stopped": "cancelled"}})
    assert w.status == "stopped"
    html = visible(w._repr_mimebundle_())
    assert 'lash-status-stopped">stopped<' in html
    assert ">done<" not in html
    assert "lash-interrupted" in html and "interrupted: the turn was stopped here" in html
    assert "_[interrupted]_" in w.to_markdown()


def test_a_cancelled_tool_row_shows_cancelled_and_the_time_it_ran():
    w = TurnWidget()
    w.push({"id": "1", "correlation_id": "tool:c1", "type": "tool_call_started", "call_id": "c1",
            "name": "slow", "args": {}, "at_ms": 1_000.0})
    # what the runtime emits for a call cut by cancellation: output "interrupted", 0 ms
    w.push({"id": "2", "correlation_id": "tool:c1", "type": "tool_call_completed", "call_id": "c1",
            "name": "slow", "args": {}, "output": "interrupted", "duration_ms": 0.0,
            "success": False, "at_ms": 2_500.0})
    w.finish({"outcome": {"stopped": "cancelled"}})
    row = w.blocks[0]
    assert (row["status"], row["duration_ms"]) == ("cancelled", 1500.0)
    html = visible(w._repr_mimebundle_())
    assert "lash-tool-cancelled" in html and "1500 ms" in html and "failed" not in html


def test_a_tool_that_really_failed_still_reads_failed():
    w = TurnWidget()
    w.push({"id": "2", "correlation_id": "tool:c1", "type": "tool_call_completed", "call_id": "c1",
            "name": "div", "args": {}, "output": "ZeroDivisionError: division by zero",
            "duration_ms": 3.0, "success": False})
    assert w.fold.blocks[0]["status"] == "failed"


def test_the_view_starts_as_starting_not_idle_and_runs_on_the_first_event():
    w = TurnWidget()
    assert w.status == "starting"
    w.push(prose("p1", "a"))
    assert w.status == "running"


def test_store_wait_is_one_status_row_updated_in_place():
    w = TurnWidget()
    w.push({"id": "1", "correlation_id": "c", "type": "store_wait", "holder_pid": 4242, "waited_s": 1.0})
    w.push({"id": "2", "correlation_id": "c", "type": "store_wait", "holder_pid": 4242, "waited_s": 2.5})
    assert [b["text"] for b in w.fold.blocks] == ["waiting for the store, held by pid 4242 (2.5 s)"]


def test_fail_ends_the_view_with_the_error_and_no_stop():
    stops: list[int] = []
    w = TurnWidget(on_stop=lambda: stops.append(1))
    w.fail("SessionExecutionBusy: session 's1' is running a turn in another process")
    assert w.status == "failed"
    w.request_stop()
    assert stops == []
    html = visible(w._repr_mimebundle_())
    assert "waiting for the model" not in html
    assert "SessionExecutionBusy: session &#x27;s1&#x27; is running a turn in another process" in html
    assert 'lash-status-failed">failed<' in html


class _RefusingSession:
    """A session whose turn is refused before its first event (what a busy session does)."""

    session_id = "s1"

    def cancel_running_turns(self, reason: str = "") -> int:
        return 0

    def turn(self, prompt: str):
        session = self

        class Builder:
            def stream(self):
                class Stream:
                    turn_id = "t-refused"

                    def __aiter__(self):
                        return self

                    async def __anext__(self):
                        raise RuntimeError("the store is locked by pid 77; close it there")

                    async def follow(self, on_activity):  # TurnStream.follow
                        async for activity in self:
                            on_activity(activity)

                return Stream()

        del session
        return Builder()


def test_a_refused_turn_ends_its_widget_failed_with_the_error(monkeypatch):
    shown: list[TurnWidget] = []
    monkeypatch.setattr(TurnWidget, "show", lambda self: (shown.append(self), self)[1])
    with pytest.raises(RuntimeError, match="locked by pid 77"):
        asyncio.run(run_turn(_RefusingSession(), "hello"))
    (w,) = shown
    assert w.status == "failed"
    assert w.turn_id == "t-refused"
    assert "RuntimeError: the store is locked by pid 77; close it there" in visible(w._repr_mimebundle_())


# ---------------------------------------------------------------------------- panels
def _batches(pending: dict[str, str]) -> list[dict]:
    return [{"batch_id": k, "items": [{"turn_input": {"text": v}}], "delivery_policy":
             "after_current_turn_commit", "slot_policy": "exclusive"} for k, v in pending.items()]


def test_drain_shows_progress_and_the_turns_it_ran_and_a_second_click_does_not_run_twice():
    from lash_nb._notebook.widgets.queue import QueueWidget

    pending = {"b1": "first", "b2": "second"}
    release = asyncio.Event()
    drains: list[int] = []

    async def load():
        return _batches(pending)

    async def drain(view) -> None:
        drains.append(1)
        view.start_drain(len(pending))
        for key in list(pending):
            await release.wait()
            w = view.turn_view()
            w.push(prose("p1", f"answer to **{pending[key]}**"))
            w.finish(outcome="finished: assistant_message")
            pending.pop(key)
            await view.turn_done()

    statuses: list[str] = []

    async def main() -> QueueWidget:
        w = QueueWidget(load=load, drain=drain)
        w.observe(lambda ch: statuses.append(ch["new"]), names="status")
        await w.refresh_async()
        w._on_custom(w, {"type": "drain"}, [])
        w._on_custom(w, {"type": "drain"}, [])  # the double click
        for _ in range(5):
            await asyncio.sleep(0)
        assert w.draining and w.progress == {"done": 0, "total": 2}
        release.set()
        for _ in range(50):
            await asyncio.sleep(0)
        return w

    w = asyncio.run(main())
    assert drains == [1] and w.ignored_drains == 1
    assert "a drain is already running; this click did nothing" in statuses
    assert not w.draining
    assert w.progress == {"done": 2, "total": 2}
    assert len(w.ran) == 2
    assert "answer to <strong>first</strong>" in w.ran[0]["html"]
    assert "answer to <strong>second</strong>" in w.ran[1]["html"]
    assert w.status == "ran 2 turns; 2 of 2 batches done"
    assert w.batches == []


def test_a_failed_batch_shows_its_error_in_the_panel_and_its_snapshot():
    from lash_nb._notebook.widgets.queue import QueueWidget, batch_row

    rows = _batches({"b1": "x"})
    rows[0].update(status="failed", error="ProviderUnavailable: no key")
    w = QueueWidget(load=lambda: rows)
    w.batches = [batch_row(b) for b in rows]
    assert (w.batches[0]["status"], w.batches[0]["error"]) == ("failed", "ProviderUnavailable: no key")
    html = w.snapshot_html()
    assert "failed: ProviderUnavailable: no key" in html
    assert "<button" not in html


def test_a_panel_is_displayed_after_a_snapshot_that_needs_no_kernel(monkeypatch):
    from IPython.core import display_functions

    from lash_nb._notebook.widgets.tools import ToolCatalogWidget

    shown: list[dict] = []

    class Handle:
        def update(self, obj):
            shown.append(obj._repr_mimebundle_())

    def fake_display(obj, display_id=None):
        shown.append(obj._repr_mimebundle_())
        return Handle()

    monkeypatch.setattr(display_functions, "display", fake_display)
    monkeypatch.setattr("IPython.display.display", fake_display)
    members = {"weather": True}
    w = ToolCatalogWidget(
        load=lambda: [{"name": n, "description": "Current weather <for> a city.", "member": m,
                       "input_schema": {"properties": {"city": {"type": "string"}},
                                        "required": ["city"]}} for n, m in members.items()],
        set_membership=lambda name, on: members.__setitem__(name, on),
    )
    bundle = w._repr_mimebundle_()[0]
    assert WIDGET_MIME in bundle
    (snap,) = shown
    assert WIDGET_MIME not in snap
    assert f'data-panel="{w.panel_id}"' in snap["text/html"]
    assert "<code>weather</code>" in snap["text/html"] and "city: string" in snap["text/html"]
    assert "Current weather &lt;for&gt; a city." in snap["text/html"]
    w.toggle("weather", False)
    assert "0 of 1 active" in shown[-1]["text/html"]  # the saved snapshot follows the toggle
    assert shown[-1]["text/plain"].startswith("[ ] weather(city: string)")


def test_a_growing_answer_is_rerendered_at_most_every_render_interval_and_fully_at_the_end():
    w = TurnWidget(interval_s=0.0)
    w.render_interval_s = 3600.0
    w.push(prose("p1", "| a |\n|---|\n| 1 |\n"))
    w.flush()
    shown = w.shown()
    assert shown["html_len"] == {"p1": 18} and "<td>1</td>" in shown["html"]["p1"]
    w.push(prose("p1", "| 2 |\n"))
    w.flush()
    shown = w.shown()
    assert shown["html_len"] == {"p1": 18}  # not re-rendered yet: the browser shows "| 2 |" as text
    assert "<td>2</td>" not in shown["html"]["p1"]
    w.finish(outcome="finished: assistant_message")
    assert w.html_len == {"p1": 24} and "<td>2</td>" in w.html["p1"]


def test_a_tool_without_an_implementation_in_this_kernel_says_so():
    from lash_nb._notebook.widgets.tools import ToolCatalogWidget

    w = ToolCatalogWidget(load=lambda: [
        {"name": "weather", "description": "Current weather.", "member": True, "orphaned": True},
        {"name": "add", "description": "Adds.", "member": True},
    ])
    assert [(t["name"], t["implemented"]) for t in w.tools] == [("weather", False), ("add", True)]
    html = visible({"text/html": w.snapshot_html()})
    assert html.count("no implementation in this kernel") == 1


def test_refolding_a_complete_activity_list_keeps_the_time_a_cancelled_tool_ran(monkeypatch):
    from lash_nb._notebook.widgets import fold as fold_module

    clock = iter([1000.0, 1900.0, 2500.0])  # live start, refolded start, refolded completion
    monkeypatch.setattr(fold_module, "_clock_ms", lambda: next(clock))
    w = TurnWidget()
    start = {"id": "1", "correlation_id": "tool:c1", "type": "tool_call_started", "call_id": "c1",
             "name": "slow", "args": {}}
    w.push(start)  # seen live
    w.fold.reset()  # the runner refolds the run's own complete list
    w.push_all([start, {"id": "2", "correlation_id": "tool:c1", "type": "tool_call_completed",
                        "call_id": "c1", "name": "slow", "args": {}, "output": "interrupted",
                        "duration_ms": 0.0, "success": False}])
    assert w.fold.blocks[0]["duration_ms"] == 1500.0  # from the live start, not the refold


def test_a_notebook_drain_reporting_through_the_hooks_shows_n_of_m_and_its_turns():
    """The hooks a NotebookDrain calls (progress rows and the running turn's activities)."""
    from types import SimpleNamespace

    from lash_nb._notebook.widgets.queue import QueueWidget

    w = QueueWidget(load=list)

    def progress(**kw):
        base = {"done": 0, "total": 2, "running": True, "ran": ()}
        p = SimpleNamespace(**{**base, **kw})
        p.label = lambda: f"draining s1: {p.done} of {p.total} batch(es) done"
        return p

    w.show_drain_progress(progress())
    for a in (prose("p1", "first **answer**"),
              {"id": "o1", "correlation_id": "o1", "type": "turn_outcome", "turn_id": "t1",
               "outcome": {"finished": {"assistant_message": {"text": ""}}}}):
        w.show_drain_activity({**a, "turn_id": "t1"})
    row1 = {"turn_id": "t1", "outcome": "finished: assistant_message", "answer": "first answer"}
    w.show_drain_progress(progress(done=1, ran=(row1,)))
    assert w.status == "draining s1: 1 of 2 batch(es) done…"
    # the second turn's activities were not fed (activity=None): its ran row is shown instead
    row2 = {"turn_id": "t2", "outcome": "finished: assistant_message", "answer": "second *one*"}
    w.show_drain_progress(progress(done=2, ran=(row1, row2), running=False))
    assert w.progress == {"done": 2, "total": 2}
    assert [r["turn_id"] for r in w.ran] == ["t1", "t2"]
    assert "first <strong>answer</strong>" in w.ran[0]["html"]
    assert "second <em>one</em>" in w.ran[1]["html"]
    assert all("finished: assistant_message" in r["html"] for r in w.ran)


def test_lash_tool_status_cancelled_reads_cancelled_with_the_runtime_duration():
    w = TurnWidget()
    w.push({"id": "2", "correlation_id": "tool:c1", "type": "tool_call_completed", "call_id": "c1",
            "name": "slow", "args": {}, "output": "cancelled", "duration_ms": 1234.0,
            "success": False, "status": "cancelled"})
    assert (w.fold.blocks[0]["status"], w.fold.blocks[0]["duration_ms"]) == ("cancelled", 1234.0)


def test_estimated_usage_stays_marked_and_reads_estimated():
    w = TurnWidget()
    w.push({"id": "u", "correlation_id": "u", "type": "usage", "estimated": True,
            "cumulative": {"input_tokens": 5, "output_tokens": 0}})
    w.finish(outcome="stopped: cancelled")
    assert "5 in · 0 out · estimated" in visible(w._repr_mimebundle_())


def test_a_tool_that_returned_megabytes_shows_its_start_and_where_the_rest_is():
    # a data scientist's tool returned df.to_csv() of a large frame (3 MB): the saved
    # notebook held it in the record's HTML and in the widget's state (25 MB for one turn)
    big = "2026-12-01,Oslo,21.5,sunny\n" * 120_000
    w = TurnWidget(session_id="s1", turn_id="t1", prompt="read it")
    w.push({"id": "1", "correlation_id": "tool:c1", "type": "tool_call_started", "call_id": "c1",
            "name": "read_csv", "args": {"path": "sales.csv"}})
    w.push({"id": "2", "correlation_id": "tool:c1", "type": "tool_call_completed", "call_id": "c1",
            "name": "read_csv", "args": {"path": "sales.csv"}, "output": big,
            "duration_ms": 12.0, "success": True})
    w.push({"id": "3", "correlation_id": "tool:c2", "type": "tool_call_completed", "call_id": "c2",
            "name": "stats", "args": {}, "output": {"rows": 120000, "mean": 21.5},
            "duration_ms": 1.0, "success": True})
    w.push(prose("p1", "The file has 120,000 rows."))
    w.finish({"outcome": {"finished": {"assistant_message": {"text": ""}}}})
    shown = w.blocks[0]["output"]
    assert shown.startswith("2026-12-01,Oslo,21.5,sunny\n" * 100)
    # cut at the end of its 740th line (740 * 27 - 1 = 19,979 characters), not mid-line
    assert shown.startswith("2026-12-01,Oslo,21.5,sunny\n" * 739 + "2026-12-01,Oslo,21.5,sunny\n… ")
    assert shown.endswith("… 3,220,021 more characters not shown here; the whole output is "
                          "stored: %lash sql SELECT output FROM tool_calls WHERE call_id = 'c1'")
    assert len(shown) < 21_000
    assert w.blocks[1]["output"] == {"rows": 120000, "mean": 21.5}  # a small output is whole
    html = visible(w._repr_mimebundle_())
    assert len(html) < 40_000
    assert "3,220,021 more characters not shown here" in html
    assert "&quot;rows&quot;: 120000" in html


BUILD_LOG = "".join(f"{i:06d} compiling module_{i} ok\n" for i in range(100_000))  # 3.3 MB
CUT = re.compile(r"\[… lash left out [\d,]+ of the [\d,]+ characters \([\d,]+ lines\) this "
                 r"tool returned; max_output=65,536 …\]")


def _tool_output_shown(output: str) -> str:
    w = TurnWidget(session_id="s1", turn_id="t1", prompt="read the build log")
    w.push({"id": "1", "correlation_id": "tool:c1", "type": "tool_call_completed", "call_id": "c1",
            "name": "build_log", "args": {"job": "ci"}, "output": output, "duration_ms": 5.0,
            "success": True})
    w.finish(outcome="finished: assistant_message")
    return str(w.blocks[0]["output"])


def test_an_output_the_session_cut_is_shown_to_a_line_end_and_says_what_the_store_kept():
    """Since ADR 174 the session keeps 65,536 characters of a 3.3 MB log (its two ends): the
    row said "the whole output is stored", and was cut mid-word at 20,000 characters."""
    kept = bounded(BUILD_LOG, 65_536)  # what the session keeps, stores and sends (ADR 174)
    line = CUT.search(kept)
    assert line is not None
    shown = _tool_output_shown(kept)
    head, note = shown.split("\n… ", 1)
    assert BUILD_LOG.startswith(head + "\n") and 18_000 < len(head) <= 20_000  # whole lines
    assert note.startswith(f"{len(kept) - len(head):,} more characters not shown here; ")
    kept_chars = len(kept) - len(line.group(0)) - 2  # its two ends, without the line between
    assert (f"lash kept {kept_chars:,} of the {len(BUILD_LOG):,} characters this tool "
            "returned") in note
    assert "whole output" not in shown
    assert "%lash sql SELECT output FROM tool_calls WHERE call_id = 'c1'" in note
    assert note.endswith("\n" + line.group(0))  # what was left out, as the model read it


def test_an_output_the_session_kept_whole_is_stored_whole_even_when_it_quotes_a_cut_line():
    # 30,000 characters of a log that mentions lash's line (a log of an earlier run): the
    # session kept it whole, and the note says so
    quoted = "[… lash left out 10 of the 70,000 characters (1 lines) this tool returned; max_output=65,536 …]"
    text = BUILD_LOG[:100] + quoted + "\n" + BUILD_LOG[:30_000]
    shown = _tool_output_shown(text)
    head, note = shown.split("\n… ", 1)
    assert text.startswith(head + "\n") and head.endswith(" ok") and len(head) <= 20_000
    assert note == (f"{len(text) - len(head):,} more characters not shown here; the whole "
                    "output is stored: %lash sql SELECT output FROM tool_calls WHERE call_id = 'c1'")


def _rules(sheet: str) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    """Each rule of a style sheet: its selector and its declarations, whitespace aside."""
    tinycss2 = pytest.importorskip("tinycss2")  # nbconvert's (bleach[css]), as JupyterLab's

    def words(tokens: list) -> str:
        return " ".join(tinycss2.serialize(tokens).split())

    return [(words(r.prelude),
             [(d.name, words(d.value), d.important) for d in tinycss2.parse_declaration_list(
                 r.content, skip_comments=True, skip_whitespace=True)])
            for r in tinycss2.parse_stylesheet(sheet, skip_comments=True, skip_whitespace=True)]


def test_compact_css_is_turn_css_on_one_line_with_every_rule():
    """The sheet records take their rules from: it was 9.7 kB over 110 lines (a JSON string
    each in the .ipynb), comments included (ADR 182)."""
    from lash_nb._notebook.widgets.assets import STATIC, compact_css

    sheet = compact_css("turn.css")
    assert "\n" not in sheet and "/*" not in sheet
    whole = (STATIC / "turn.css").read_text(encoding="utf-8")
    assert _rules(sheet) == _rules(whole) and len(_rules(whole)) > 80
    assert len(sheet) < 0.9 * len(whole)


def test_a_records_style_block_is_rules_of_turn_css_and_not_all_of_them():
    """A short turn's record carried all of turn.css (8.6 kB of its 9.9 kB, ADR 182); it
    carries the rules of turn.css its own markup can use, word for word (ADR 189). That no
    rule it needs is left out is measured in Chromium (tests/test_browser_record_style.py)."""
    from lash_nb._notebook.widgets.assets import STATIC

    w = TurnWidget(session_id="s1", turn_id="t1", prompt="hi")
    w.push(prose("p1", "hello"))
    w.finish(outcome="finished: assistant_message")
    page = w._repr_mimebundle_()["text/html"]
    sheet = page[page.index("<style>") + len("<style>"):page.index("</style>")]
    assert "\n" not in sheet and "/*" not in sheet
    whole = (STATIC / "turn.css").read_text(encoding="utf-8")
    by_selector: dict[str, list[list[tuple]]] = {}
    for prelude, decls in _rules(whole):
        for sel in prelude.split(", "):
            by_selector.setdefault(sel, []).append(decls)
    for prelude, decls in _rules(sheet):
        for sel in prelude.split(","):
            # the same declarations, less custom properties nothing in the record uses
            assert any(set(decls) <= set(d) and all(x[0].startswith("--") for x in
                                                  set(d) - set(decls))
                       for d in by_selector[sel.strip()]), (sel, decls)
    shown = {sel.strip() for prelude, _ in _rules(sheet) for sel in prelude.split(",")}
    assert {".lash-turn", ".lash-head", ".lash-status-done", ".lash-foot"} <= shown
    # a short answer has no tool row, no code cell, no live Stop button
    assert not {s for s in shown if "lash-tool" in s or "lash-cell" in s or "lash-stop" in s}
    assert len(sheet) < 0.4 * len(whole)
