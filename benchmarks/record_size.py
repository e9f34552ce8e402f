"""What a turn weighs in the saved notebook (ADR 182): a short turn and a turn whose tool
returned a 3.3 MB build log (the session keeps 65,536 characters of it, ADR 174; the offline
model echoes what it was sent), run in a real kernel by nbclient and saved with nbformat.

For each turn's cell it prints the bytes of its outputs in the .ipynb and of each form of
the record, and beside them the peer measured in the same run: the same cell with the
``text/markdown`` copy the record carried before ADR 182 (the markdown form of the same
text, ``untrusted.inert_markdown``). Then the whole file as nbclient saves it (with the
widget state it stores by default) and as JupyterLab saves it by default (no widget state).
Prints numbers; asserts nothing.

``--turns 1,10,50``: how the saved file grows per turn (ADR 189). A notebook of one short
``%%lash`` turn per cell, N cells, run by nbclient (which stores every widget's state) and,
with ``--browser``, run and saved by JupyterLab in headless Chromium (Run All, Ctrl+S: what a
user gets), once with JupyterLab's default settings (no widget state) and once with "save
widget state" on. For each: the file's bytes, the growth per turn between the smallest and
the largest N, and where a turn's bytes go (its record's HTML, of which its style block; its
plain text; its other outputs; the widget state per widget model, of which ``_esm`` and
``_css``).

    .venv/bin/python benchmarks/record_size.py
    .venv/bin/python benchmarks/record_size.py --turns 1,10,50 --browser
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

# benchmarks/queue.py would shadow the standard library's queue
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import nbclient  # noqa: E402
import nbformat  # noqa: E402

from lash_nb._notebook.widgets.untrusted import inert_markdown  # noqa: E402

CELLS = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0",
    ('from lash_nb import tool\n\n@tool\ndef build_log(job: str) -> str:\n'
     '    """The whole build log of a CI job."""\n'
     '    return "".join(f"{i:06d} compiling module_{i} ok\\n" for i in range(100_000))'),
    "%lash open ci --store ci.duckdb --fresh --tools build_log",
    "%%lash\nhello there",
    "%%lash\nWhat does build_log say for 'ci'?",
]
TURNS = {"short turn": 3, "3.3 MB tool output turn": 4}


def _bytes(value: Any) -> int:
    """The bytes ``value`` takes in a saved .ipynb (nbformat's JSON, indent 1)."""
    return len(json.dumps(value, indent=1, ensure_ascii=False).encode())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "".join(value)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": tmp}}).execute()
        path = Path(tmp) / "ci.ipynb"
        nbformat.write(nb, path)
        saved = json.loads(path.read_text(encoding="utf-8"))
    print(f"{'turn':<26} {'outputs':>9} {'html':>8} {'plain':>8} {'markdown':>9} "
          f"{'before (+markdown)':>19}")
    for name, index in TURNS.items():
        outputs = saved["cells"][index]["outputs"]
        (record,) = [o for o in outputs if "lash-static" in _text(o["data"].get("text/html", ""))]
        data = record["data"]
        with_markdown = json.loads(json.dumps(outputs))
        for o in with_markdown:
            if o["data"] == data:
                # as nbformat writes a text: one string per line
                o["data"]["text/markdown"] = inert_markdown(
                    _text(data["text/plain"])).splitlines(keepends=True)
        markdown = _bytes(data["text/markdown"]) if "text/markdown" in data else 0
        print(f"{name:<26} {_bytes(outputs):>9,} {_bytes(data['text/html']):>8,} "
              f"{_bytes(data['text/plain']):>8,} {markdown:>9,} {_bytes(with_markdown):>19,}")
    state = saved["metadata"].get("widgets", {})
    lab = {**saved, "metadata": {k: v for k, v in saved["metadata"].items() if k != "widgets"}}
    print(f"file as nbclient saves it: {_bytes(saved):,} bytes, of which widget state "
          f"{_bytes(state):,}")
    print(f"file as JupyterLab saves it (no widget state): {_bytes(lab):,} bytes")


GROWTH_HEAD = ["%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0",
               "%lash open many --store many.duckdb --fresh"]


def turn_cell(i: int) -> str:
    return f"%%lash\nQuestion {i}: what is {i} squared? One short line, please."


def _is_record(o: Any) -> bool:
    return "lash-static" in _text(o.get("data", {}).get("text/html", ""))


def anatomy(saved: dict[str, Any], file_bytes: int) -> dict[str, Any]:
    """Where the bytes of a saved many-turn notebook go: per turn cell (mean) and per widget
    model in the widget state (mean)."""
    turns = [c for c in saved["cells"] if _text(c["source"]).startswith("%%lash")]
    records = [o for c in turns for o in c.get("outputs", ()) if _is_record(o)]
    styles = [m for o in records for m in re.findall(r"<style>.*?</style>",
                                                     _text(o["data"]["text/html"]), re.S)]
    state = saved["metadata"].get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    n = max(len(turns), 1)
    return {
        "file": file_bytes, "turns": len(turns), "records": len(records),
        "cell": sum(_bytes(c) for c in turns) / n,
        "html": sum(_bytes(o["data"]["text/html"]) for o in records) / n,
        "style": sum(len(s.encode()) for s in styles) / n,
        "plain": sum(_bytes(o["data"]["text/plain"]) for o in records) / n,
        "other": sum(_bytes(o) for c in turns for o in c.get("outputs", ())
                     if not _is_record(o)) / n,
        "state": _bytes(saved["metadata"].get("widgets", {})), "models": len(state),
        "esm": sum(_bytes(m["state"].get("_esm", "")) for m in state.values()),
        "css": sum(_bytes(m["state"].get("_css", "")) for m in state.values()),
    }


def growth_notebook(n: int) -> Any:
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in [*GROWTH_HEAD, *map(turn_cell, range(n))]],
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}})


def by_nbclient(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        nb = growth_notebook(n)
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": tmp}}).execute()
        path = Path(tmp) / "many.ipynb"
        nbformat.write(nb, path)
        return anatomy(json.loads(path.read_text(encoding="utf-8")), path.stat().st_size)


def by_jupyterlab(ns: list[int], save_state: bool) -> dict[int, dict[str, Any]]:
    """Each notebook opened in JupyterLab (headless Chromium), Run All, saved with Ctrl+S
    once every turn's record is in it; the file as JupyterLab wrote it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from browser_harness import JupyterServer, NotebookPage, launch, stop_shared, wait_until
    from playwright.sync_api import sync_playwright

    out: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        server = JupyterServer("jupyterlab", root)
        if save_state:
            d = server.settings / "@jupyter-widgets" / "jupyterlab-manager"
            d.mkdir(parents=True, exist_ok=True)
            (d / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
        server.start("light")
        try:
            with sync_playwright() as pw:
                browser = launch(pw)
                try:
                    for n in ns:
                        name = f"many{n}.ipynb"
                        nb = growth_notebook(n)
                        nb.cells[1].source = f"%lash open many --store many{n}.duckdb --fresh"
                        nbformat.write(nb, root / name)
                        page = NotebookPage(browser, server, name)
                        page.open()
                        page.run_all()
                        found: list[dict[str, Any]] = []

                        def all_saved(page: Any = page, n: int = n, name: str = name,
                                      found: list[dict[str, Any]] = found) -> bool:
                            saved = page.save(expect_in_file="%%lash")
                            found[:] = [saved]
                            cells = saved["cells"][len(GROWTH_HEAD):]
                            return all(any(_is_record(o) for o in c.get("outputs", ()))
                                       for c in cells) and server.kernels_idle()

                        wait_until(all_saved, timeout=900, what=f"{n} records in {name}")
                        page.save(expect_in_file="%%lash")  # once more, the kernel idle
                        raw: list[bytes] = []

                        def read(path: Path = root / name, raw: list[bytes] = raw) -> bool:
                            raw[:] = [path.read_bytes()]  # once: a save may be writing it
                            try:
                                json.loads(raw[0])
                            except ValueError:
                                return False
                            return True

                        wait_until(read, timeout=60, what=f"{name} written whole")
                        out[n] = anatomy(json.loads(raw[0]), len(raw[0]))
                        page.page.close()
                        server.shut_down_sessions()
                        wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=60,
                                   what="the kernel to shut down")
                finally:
                    browser.close()
        finally:
            server.stop()
            stop_shared()
    return out


def print_growth(label: str, rows: dict[int, dict[str, Any]]) -> None:
    print(f"\n{label}")
    print(f"{'turns':>6} {'file':>10} {'widget state':>13} {'models':>7} {'_esm':>9} "
          f"{'_css':>9} | per turn cell: {'cell':>7} {'html':>7} {'style':>6} {'plain':>6} "
          f"{'other':>6}")
    for n, a in sorted(rows.items()):
        print(f"{n:>6} {a['file']:>10,} {a['state']:>13,} {a['models']:>7} {a['esm']:>9,} "
              f"{a['css']:>9,} | {'':>15}{a['cell']:>7,.0f} {a['html']:>7,.0f} "
              f"{a['style']:>6,.0f} {a['plain']:>6,.0f} {a['other']:>6,.0f}")
    lo, hi = min(rows), max(rows)
    if hi > lo:
        per = (rows[hi]["file"] - rows[lo]["file"]) / (hi - lo)
        state = (rows[hi]["state"] - rows[lo]["state"]) / (hi - lo)
        print(f"growth per turn ({lo} -> {hi} turns): {per:,.0f} bytes, of which widget state "
              f"{state:,.0f} and the turn's cell {rows[hi]['cell']:,.0f} (its record's style "
              f"block {rows[hi]['style']:,.0f})")


def growth(ns: list[int], browser: bool) -> None:
    print_growth("nbclient (stores every widget's state)", {n: by_nbclient(n) for n in ns})
    if browser:
        print_growth("JupyterLab in Chromium, default settings (no widget state)",
                     by_jupyterlab(ns, save_state=False))
        print_growth("JupyterLab in Chromium, 'save widget state' on",
                     by_jupyterlab(ns, save_state=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", help="comma-separated turn counts, e.g. 1,10,50: how the "
                        "saved file grows per turn (else the two-turn anatomy of ADR 182)")
    parser.add_argument("--browser", action="store_true",
                        help="with --turns: also run and save the notebooks in JupyterLab")
    args = parser.parse_args()
    if args.turns:
        growth(sorted({int(x) for x in args.turns.split(",")}), args.browser)
    else:
        main()
