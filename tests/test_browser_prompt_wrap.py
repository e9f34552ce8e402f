"""A long prompt in a saved turn's record wraps between words (real Chromium, JupyterLab 4 and
Notebook 7, the notebook reopened with no kernel run; ADR 199).

The record keeps its prompt in a ``<pre>`` (its lines survive where the record's style block is
sanitised away), and the front end's own rule for an output's ``<pre>`` (``.jp-OutputArea-output
pre { word-break: break-all }``, meant for a stream's text) broke the prompt's words wherever a
line ran out: "summ|arise". Both a notebook the user saved (trusted: the record's style block
applies) and a copy from a colleague (untrusted: the style block is dropped) are read. A token
with no break opportunity (a URL, a hash) still breaks where it must, inside the record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_harness import (
    ARTIFACTS,
    JupyterServer,
    NotebookPage,
    chromium,
    playwright_or_skip,
    wait_until,
)
from IPython.utils.capture import capture_output
from notebook_harness import ReraisingShell

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

TOKEN = "https://example.com/r/" + "a1b2c3d4" * 40  # 342 characters, no break opportunity
PROMPT = (
    "Please read the quarterly operations report below and summarise the three largest risks "
    "for the warehouse expansion, with the figures the report gives for each of them, then "
    "suggest which department should own the mitigation and by when. Keep the summary under "
    "two hundred words, quote the report's own headings where you can, and mention anything "
    "that contradicts last quarter's forecast or the procurement schedule we agreed in "
    f"September. The report is here: {TOKEN} and the appendix follows in the next message, "
    "together with the supplier correspondence and the insurance assessment."
)
WORDS_JS = """el => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const split = [], rows = new Set();
  let token = 0, node;
  while ((node = walker.nextNode())) {
    for (const m of node.data.matchAll(/\\S+/g)) {
      const r = document.createRange();
      r.setStart(node, m.index);
      r.setEnd(node, m.index + m[0].length);
      const tops = new Set([...r.getClientRects()].filter(x => x.width > 0)
        .map(x => Math.round(x.top)));
      tops.forEach(t => rows.add(t));
      if (m[0].length > 100) token = tops.size;
      else if (tops.size > 1) split.push(m[0]);
    }
  }
  return {split, rows: rows.size, token, scrollWidth: el.scrollWidth,
          clientWidth: el.clientWidth};
}"""


def _record_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The outputs a real %%lash cell leaves (the finished turn's record bundle)."""
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell("%lash open report --store :memory: --fresh")
        with capture_output() as cap:
            sh.run_cell(f"%%lash\n{PROMPT}")
    finally:
        sh.close()
    records = [o.data for o in cap.outputs if "lash-static" in o.data.get("text/html", "")]
    assert len(records) == 1 and PROMPT in records[0]["text/plain"].replace("\n> ", " ")
    return [{"output_type": "display_data", "metadata": {},
             "data": {k: v for k, v in records[0].items() if k in ("text/html", "text/plain")}}]


def _notebook(outputs: list[dict], *, trusted: bool) -> dict:
    meta = {"trusted": True} if trusted else {}  # the server signs a notebook saved so
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"}},
            "cells": [{"cell_type": "code", "id": "c0", "metadata": meta,
                       "execution_count": 1, "source": f"%%lash\n{PROMPT}",
                       "outputs": outputs}]}


def _prompt_words(nb: NotebookPage) -> dict:
    prompt = nb.cell(0).locator(".lash-prompt")
    prompt.wait_for(timeout=60_000)
    prompt.scroll_into_view_if_needed()
    return dict(prompt.evaluate(WORDS_JS))


def test_a_long_prompt_in_a_saved_record_wraps_between_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frontend: str) -> None:
    outputs = _record_outputs(tmp_path, monkeypatch)
    server = JupyterServer(frontend, tmp_path).start()
    try:
        # the user's own notebook: saved through the server, which signs it (trusted)
        server.api("PUT", f"/api/contents/{tmp_path.name}/mine.ipynb",
                   {"type": "notebook", "format": "json",
                    "content": _notebook(outputs, trusted=True)})
        # a colleague's copy, not signed here (and not the signed one's content): its
        # record's <style> is sanitised away
        shared = _notebook(outputs, trusted=False)
        shared["metadata"]["shared_by"] = "a colleague"
        (tmp_path / "shared.ipynb").write_text(json.dumps(shared))
        with chromium() as browser:
            nb = NotebookPage(browser, server, "mine.ipynb")
            try:
                for name, trusted in (("mine.ipynb", True), ("shared.ipynb", False)):
                    nb = NotebookPage(browser, server, name)
                    nb.open()
                    cell = nb.cell(0)
                    wait_until(lambda c=cell: c.locator(".lash-prompt").count() == 1,
                               timeout=60, what=f"the record in {name}")
                    assert cell.locator(".jp-mod-trusted").count() == (1 if trusted else 0)
                    got = _prompt_words(nb)
                    assert got["rows"] >= 4, got  # the prompt does wrap, over several rows
                    assert got["split"] == [], (name, got)  # ... between words only
                    assert got["token"] >= 2, got  # the URL breaks where it must
                    assert got["scrollWidth"] <= got["clientWidth"] + 1, got  # inside the box
                    nb.page.close()
            except Exception:
                if nb.page is not None and not nb.page.is_closed():
                    nb.screenshot(ARTIFACTS / f"prompt-wrap-failure-{frontend}.png", scroll_to=0)
                raise
            finally:
                browser.close()
    finally:
        server.stop()
