"""Defaults for the ``%lash`` magics: ``[tool.lash_nb]`` in the nearest pyproject.toml.

Precedence (strongest first): an option on the magic line, ``%config LashMagics.<name>``,
``[tool.lash_nb]`` found from the working directory upward, the trait's built-in default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

KEYS = (
    "session", "store", "provider", "model", "residency", "offline_delay_s", "live_interval_s",
    "prices", "attach_max_bytes", "attach_turn_max_bytes", "max_tool_output", "commit_wait_s",
    "sql_rows",
)


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def pyproject_defaults(start: Path | None = None) -> dict[str, Any]:
    """The ``[tool.lash_nb]`` table of the nearest pyproject.toml (unknown keys dropped)."""
    path = find_pyproject(start)
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    table = data.get("tool", {}).get("lash_nb", {})
    if not isinstance(table, dict):
        return {}
    return {k.replace("-", "_"): v for k, v in table.items() if k.replace("-", "_") in KEYS}
