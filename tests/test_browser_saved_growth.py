"""A notebook of many ``%%lash`` cells grows, per turn, by that turn's record and no more
(ADR 189). Real Chromium, JupyterLab 4 and Notebook 7, "save widget state" on (the setting
that saved every finished turn's widget model: its ``_esm`` and ``_css``, ~35 kB a turn).

Two turns run and the notebook is saved; four more run and it is saved again. Between the two
saves nothing outside the four new cells changed (no widget state per turn), and each new
record's style block is no larger than the rules of turn.css that match an element of the
record, as an independent CSS engine (soupsieve) finds them: the growth is bounded by what the
records hold. Then the kernel is shut down and the notebook reopened: every turn reads, in the
light and the dark theme (its colours pass the contrast check), and in an untrusted copy.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser_harness import (
    ARTIFACTS,
    CHROMIUM,
    CONTRAST_JS,
    JupyterServer,
    NotebookPage,
    chromium,
    low_contrast,
    reopen_without_kernel,
    wait_until,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401  (browser_harness.chromium() drives it)
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

PROMPTS = [
    "hello there, what is 2 + 2?",
    "tidy this up:\n\n| city | °C |\n|---|---:|\n| Paris | 21 |",
    "what does `len('abc')` return?",
    "and this one:\n\n```python\nprint(sum(range(10)))\n```",
    "> a quote to answer\n\nand a list:\n\n- one\n  - two",
    "thanks, that is all",
]
HEAD = ["%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0",
        "%lash open many --store many.duckdb --fresh"]
CELLS: list[str | tuple[str, str]] = [*HEAD, *(f"%%lash\n{p}" for p in PROMPTS)]
FIRST = len(HEAD) + 2  # the cells run before the first save


def _text(v: Any) -> str:
    return v if isinstance(v, str) else "".join(v)


def _records(cell: dict[str, Any]) -> list[str]:
    return [_text(o["data"]["text/html"]) for o in cell.get("outputs", ())
            if "lash-static" in _text(o.get("data", {}).get("text/html", ""))]


def _dump(nb: dict[str, Any]) -> int:
    """The notebook's bytes as nbformat writes it."""
    return len(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False).encode())


def matched_rules(record: str) -> str:
    """The rules of turn.css (as records take them, one line) of which a selector matches an
    element of ``record`` (its style block left out), found by soupsieve, not by lash."""
    import tinycss2
    from bs4 import BeautifulSoup

    from lash_nb._notebook.widgets.assets import compact_css

    soup = BeautifulSoup(re.sub(r"<style>.*?</style>", "", record, flags=re.S), "html.parser")
    out = []
    for rule in tinycss2.parse_stylesheet(compact_css("turn.css"), skip_comments=True,
                                          skip_whitespace=True):
        selectors = tinycss2.serialize(rule.prelude).split(",")
        if any(soup.select(s.strip()) for s in selectors
               if ":has(" not in s):  # an output row's rule: it matches outside the record
            out.append(tinycss2.serialize([rule]))
    return "".join(out)


def _without_turn_outputs(nb: dict[str, Any], cells: range) -> dict[str, Any]:
    """``nb`` without the outputs of ``cells``, and without the empty cell Shift+Enter on the
    last cell adds."""
    nb = json.loads(json.dumps(nb))
    nb["cells"] = nb["cells"][:len(CELLS)] + [c for c in nb["cells"][len(CELLS):]
                                              if _text(c["source"]).strip()]
    for i in cells:
        nb["cells"][i]["outputs"], nb["cells"][i]["execution_count"] = [], None
    return nb


def _widget_state(nb: dict[str, Any]) -> dict[str, Any]:
    widgets = nb.get("metadata", {}).get("widgets", {})
    return dict(widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {}))


def _save_when(nb: NotebookPage, server: JupyterServer, upto: int) -> dict[str, Any]:
    """Ctrl+S until the saved file holds a record in every turn cell before ``upto``, the
    kernel is idle and no widget model is left in the saved state; the notebook as saved
    then. A finished turn's widget closes its model just after its record is shown (ADR 189):
    a save landing between the two kept that model (seen 2 in 11 runs on Notebook 7); one
    that never closes still fails here, after the wait."""
    found: list[dict[str, Any]] = []

    def saved() -> bool:
        found[:] = [nb.save(expect_in_file="%%lash")]
        return all(_records(c) for c in found[0]["cells"][len(HEAD):upto]) \
            and server.kernels_idle() and not _widget_state(found[0])

    wait_until(saved, timeout=300, what=f"records in the cells before {upto}, no live model")
    return found[0]


def _check_every_turn_reads(nb: NotebookPage, *, styled: bool) -> None:
    for k, prompt in enumerate(PROMPTS):
        cell = nb.cell(len(HEAD) + k)
        cell.scroll_into_view_if_needed()  # Lab draws a cell once it is in view
        record = cell.locator(".lash-turn")
        record.wait_for(timeout=60_000)
        assert record.count() == 1
        # Notebook 7 renders a cell scrolled into view at its next frame: its text is empty
        # until then, so the prompt is waited for, not read at once
        first = prompt.splitlines()[0].lstrip("> ")
        with contextlib.suppress(AssertionError):  # the assert below says what it read
            wait_until(lambda r=record, f=first: f in r.inner_text(), timeout=30, what="the prompt")
        assert first in record.inner_text()
        assert record.locator(".lash-prose").inner_text().strip()
        assert record.locator(".lash-status").inner_text() == "done"
        if styled:  # the record's own style block applies: the badge is a rounded pill
            radius = record.locator(".lash-status").evaluate(
                "e => getComputedStyle(e).borderTopLeftRadius")
            assert radius == "8px", (k, radius)
    text = nb.panel.locator(".jp-OutputArea").all_inner_texts()
    assert not any("Error displaying widget" in t or "model not found" in t for t in text), text


def test_a_saved_notebook_grows_per_turn_by_its_records_and_every_turn_reads(frontend, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "many.ipynb", CELLS)
    server = JupyterServer(frontend, tmp_path)
    d = server.settings / "@jupyter-widgets" / "jupyterlab-manager"
    d.mkdir(parents=True, exist_ok=True)
    (d / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    server.start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "many.ipynb")
            try:
                nb.open()
                for i in range(FIRST):
                    nb.run_cell(i)
                before = _save_when(nb, server, FIRST)
                for i in range(FIRST, len(CELLS)):
                    nb.run_cell(i)
                after = _save_when(nb, server, len(CELLS))
                added = range(FIRST, len(CELLS))

                # nothing but the new cells changed: no widget state, no metadata, per turn
                a, b = _without_turn_outputs(before, added), _without_turn_outputs(after, added)
                changed = [i for i, (x, y) in enumerate(zip(a["cells"], b["cells"], strict=True))
                           if x != y]
                assert not changed, [(i, json.dumps(a["cells"][i])[-1500:],
                                      json.dumps(b["cells"][i])[-1500:]) for i in changed]
                assert a == b, (json.dumps(a["metadata"])[:2000], json.dumps(b["metadata"])[:2000])
                # each new record's style: at most the rules of turn.css matching its elements
                bound = json.loads(json.dumps(after))
                for i in added:
                    for o in bound["cells"][i]["outputs"]:
                        html = _text(o.get("data", {}).get("text/html", ""))
                        if "lash-static" in html:
                            o["data"]["text/html"] = re.sub(
                                r"<style>.*?</style>", lambda _m, h=html: f"<style>{matched_rules(h)}</style>",
                                html, count=1, flags=re.S)
                growth, limit = _dump(after) - _dump(before), _dump(bound) - _dump(before)
                print(f"{frontend}: {len(added)} turns grew the file by {growth:,} bytes "
                      f"({growth / len(added):,.0f} a turn); bound from the records {limit:,}")
                assert 0 < growth <= limit

                reopen_without_kernel(nb, server)
                _check_every_turn_reads(nb, styled=True)
                server.set_theme("dark")
                nb.reopen()
                nb.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'",
                                          timeout=30_000)
                _check_every_turn_reads(nb, styled=True)
                rows = nb.page.evaluate(CONTRAST_JS, ".lash-turn *")
                assert len(rows) > 20 and low_contrast(rows) == []
                nb.screenshot(ARTIFACTS / f"saved-growth-dark-{frontend}.png", scroll_to=len(HEAD))

                shared = json.loads((tmp_path / "many.ipynb").read_text())
                shared["metadata"]["shared_by"] = "a colleague"  # unsigned here: untrusted
                (tmp_path / "shared.ipynb").write_text(json.dumps(shared))
                nb.page.close()
                nb = NotebookPage(browser, server, "shared.ipynb")
                nb.open()
                nb.cell(len(HEAD)).locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
                assert nb.cell(len(HEAD)).locator(".jp-mod-trusted").count() == 0
                _check_every_turn_reads(nb, styled=False)  # its <style> sanitised away
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"saved-growth-failure-{frontend}.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
