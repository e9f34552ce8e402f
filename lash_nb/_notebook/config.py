"""Defaults for the ``%lash`` magics: ``[tool.lash_nb]`` in the nearest pyproject.toml.

Precedence (strongest first): an option on the magic line, ``%config LashMagics.<name>``,
``[tool.lash_nb]`` found from the working directory upward, the trait's built-in default.

A mistake in the table (a file that does not parse, an unknown or misspelt key, a value of the
wrong kind) never stops ``%load_ext lash_nb``: the good settings are used and each mistake is
one line naming the file, the key and what to write instead (ADR 192).
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEYS = (
    "session", "store", "provider", "model", "residency", "offline_delay_s", "live_interval_s",
    "prices", "attach_max_bytes", "attach_turn_max_bytes", "max_tool_output", "commit_wait_s",
    "sql_rows",
)


@dataclass
class PyprojectSettings:
    """What ``[tool.lash_nb]`` sets: ``values`` by trait name, ``spelled`` the key as written
    (``commit-wait-s``), ``notes`` one line per mistake."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    spelled: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def where(self, key: str) -> str:
        return f"lash_nb: {self.path} [tool.lash_nb] {self.spelled.get(key, key)}"


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject(start: Path | None = None) -> PyprojectSettings:
    """The ``[tool.lash_nb]`` table of the nearest pyproject.toml, known keys only, with a
    line for each key it cannot use."""
    path = find_pyproject(start)
    out = PyprojectSettings(path)
    if path is None:
        return out
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        out.notes.append(f"lash_nb: {path} could not be read ({reason}); its [tool.lash_nb] "
                         "settings are not used: fix the file and restart the kernel")
        return out
    tool = data.get("tool", {})
    table = tool.get("lash_nb", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        out.notes.append(f"lash_nb: {path} tool.lash_nb is not a table; write [tool.lash_nb] "
                         "on a line of its own and the settings under it")
        return out
    for raw, value in table.items():
        key = raw.replace("-", "_")
        if key in KEYS:
            if key in out.spelled:  # ``sql-rows`` and ``sql_rows`` both: TOML allows it
                out.notes.append(f"lash_nb: {path} [tool.lash_nb] sets {key} twice "
                                 f"({out.spelled[key]} and {raw}); the last one, {raw}, is "
                                 "used: remove the other")
            out.values[key] = value
            out.spelled[key] = raw
            continue
        close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
        if close:
            hint = close[0].replace("_", "-") if "-" in raw else close[0]
            todo = f"did you mean {hint}?"
        else:
            todo = f"the keys are {', '.join(KEYS)}"
        out.notes.append(f"lash_nb: {path} [tool.lash_nb] {raw} is not a lash_nb setting "
                         f"and is ignored; {todo}")
    return out


# what each kind of setting takes
_KINDS = {"Float": "a number", "Int": "a whole number", "Unicode": "text in quotes"}
_OWN = {"commit_wait_s": "a number of seconds above 0",
        "live_interval_s": "a number of seconds above 0",
        "session": "a session name in quotes, not empty",
        "store": 'a DuckDB path, a postgresql:// DSN or ":memory:" in quotes, not empty'}


def bad_value(settings: PyprojectSettings, key: str, value: Any, *, trait: str, kept: Any,
              default: Any) -> str:
    """The line for a value the setting cannot take (``commit-wait-s = "soon"``); ``trait``
    is the setting's trait class name (``Float``), ``default`` its built-in value (the
    example to write, unless empty)."""
    kind = _OWN.get(key) or _KINDS.get(trait, "another value")
    example = _toml(default) if default not in ("", None) else '"..."'
    return (f"{settings.where(key)} = {_toml(value)} is not {kind}, so it stays "
            f"{_toml(kept)}; write e.g. {settings.spelled.get(key, key)} = {example}")


def _toml(value: Any) -> str:
    """A value as it is written in the file (``"soon"``, ``true``, ``nan``), near enough for
    a line."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf, -inf: as TOML writes them (JSON has NaN, Infinity)
    return json.dumps(value, ensure_ascii=False, default=str)
