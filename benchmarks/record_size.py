"""What a turn weighs in the saved notebook (ADR 182): a short turn and a turn whose tool
returned a 3.3 MB build log (the session keeps 65,536 characters of it, ADR 174; the offline
model echoes what it was sent), run in a real kernel by nbclient and saved with nbformat.

For each turn's cell it prints the bytes of its outputs in the .ipynb and of each form of
the record, and beside them the peer measured in the same run: the same cell with the
``text/markdown`` copy the record carried before ADR 182 (the markdown form of the same
text, ``untrusted.inert_markdown``). Then the whole file as nbclient saves it (with the
widget state it stores by default) and as JupyterLab saves it by default (no widget state).
Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/record_size.py
"""

from __future__ import annotations

import json
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


if __name__ == "__main__":
    main()
