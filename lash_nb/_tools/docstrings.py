"""A function's summary and per-parameter descriptions from its docstring.

Three styles are read: Google (``Args:`` then ``name (type): text``), NumPy (``Parameters``
underlined, then ``name : type`` and indented text) and Sphinx (``:param name: text``,
``:param type name: text``). Stdlib only: a docstring is small and its styles are few.
"""

from __future__ import annotations

import inspect
import re

_GOOGLE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY = re.compile(r"^(\*{0,2}\w+)\s*(?::\s*.*)?$")
_SPHINX = re.compile(r"^:param\s+(?:[^:]*\s)?(\*{0,2}\w+)\s*:\s*(.*)$")
_PARAM_HEADS = ("args", "arguments", "parameters", "params", "keyword args", "keyword arguments")
_OTHER_HEADS = ("returns", "return", "raises", "yields", "examples", "example", "notes", "note",
                "see also", "references", "attributes", "warnings")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(summary, {parameter: description})``; the summary is the first paragraph."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    indent: int | None = None  # the indentation of parameter names in this section
    numpy = False  # an underlined header: ``name : type`` lines, descriptions below
    for i, line in enumerate(lines):
        stripped = line.strip()
        head = stripped.lower().rstrip(":")
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if stripped.startswith(":param"):
            m = _SPHINX.match(stripped)
            if m:
                section, current = "sphinx", m.group(1).lstrip("*")
                params[current] = m.group(2).strip()
            continue
        if stripped.startswith(":"):  # :returns:, :raises X:, :type x: ...
            section, current = "other", None
            continue
        if head in _PARAM_HEADS and (stripped.endswith(":") or underlined):
            section, current, indent, numpy = "params", None, None, underlined
            continue
        if head in _OTHER_HEADS and (stripped.endswith(":") or underlined):
            section, current = "other", None
            continue
        if stripped and set(stripped) == {"-"}:
            continue
        if section == "summary":
            if not stripped and summary:
                section = "description"
            elif stripped:
                summary.append(stripped)
        elif section == "sphinx":
            if current and stripped:
                params[current] += " " + stripped
        elif section == "params" and stripped:
            level = len(line) - len(line.lstrip())
            if indent is None:
                indent = level
            if level == indent:
                m = (_NUMPY if numpy else _GOOGLE).match(stripped)
                if m:
                    current = m.group(1).lstrip("*")
                    params[current] = "" if numpy else m.group(2).strip()
                    continue
            if current:
                params[current] = (params[current] + " " + stripped).strip()
    return " ".join(summary), {k: v for k, v in params.items() if v}
