"""Strip outputs from notebooks so git holds only their sources.

    python scripts/strip_notebooks.py            # strip notebooks/*.ipynb in place
    python scripts/strip_notebooks.py --check    # exit 1 and name the notebooks that need it
    python scripts/strip_notebooks.py a.ipynb    # only these files

Removed: code cell outputs and execution counts, the saved widget state
(``metadata.widgets``) and per-cell execution timing. Sources and other metadata stay.
Written the way nbformat writes (sorted keys, indent 1), so a stripped notebook round-trips.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CELL_META_DROPPED = ("execution", "ExecuteTime")


def strip(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook without outputs, execution counts, widget state or cell timing."""
    out: dict[str, Any] = json.loads(json.dumps(nb))
    out.get("metadata", {}).pop("widgets", None)
    for cell in out.get("cells", []):
        meta = cell.get("metadata", {})
        for key in CELL_META_DROPPED:
            meta.pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return out


def dumps(nb: dict[str, Any]) -> str:
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def needs_strip(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return dumps(strip(json.loads(text))) != text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks (default notebooks/*.ipynb)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any needs stripping")
    args = ap.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
    dirty = [p for p in paths if needs_strip(p)]
    if args.check:
        for p in dirty:
            print(f"{p}: has outputs; run python scripts/strip_notebooks.py", file=sys.stderr)
        return 1 if dirty else 0
    for p in dirty:
        p.write_text(dumps(strip(json.loads(p.read_text(encoding="utf-8")))), encoding="utf-8")
        print(f"stripped {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
