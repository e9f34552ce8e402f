"""Widget JS and CSS live as files in ``lash_nb/_notebook/static``; this reads them once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"


@cache
def esm(*names: str) -> str:
    """Concatenate JS files into one ES module (helpers first, the module with ``export`` last)."""
    return "\n".join((STATIC / n).read_text(encoding="utf-8") for n in names)


@cache
def css(*names: str) -> str:
    return "\n".join((STATIC / n).read_text(encoding="utf-8") for n in names)


@cache
def compact_css(name: str) -> str:
    """A style sheet as every saved record carries it: one line, no comments, a space only
    where one may mean something (``.a :not(p)`` is not ``.a:not(p)``). ADR 182."""
    text = re.sub(r"/\*.*?\*/", "", css(name), flags=re.DOTALL)
    return re.sub(r"\s*([{};])\s*", r"\1", re.sub(r"\s+", " ", text)).strip()


_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_NOT = re.compile(r":not\([^()]*\)")
_LASH_CLASS = re.compile(r"\.(lash-[\w-]+)")
_TAG = re.compile(r"(?:^|[\s>+~])([a-z][a-z0-9]*)")
_CLASS_ATTR = re.compile(r'\bclass="([^"]*)"')
_OPEN_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)")
_VAR_USE = re.compile(r"var\((--lash-[\w-]+)")

# per rule: its selectors, each with what it needs in the markup (lash-* classes, element
# names), and its declarations
Rules = tuple[tuple[tuple[tuple[str, frozenset[str], frozenset[str]], ...], tuple[str, ...]], ...]


def _selectors(prelude: str) -> list[str]:
    """A selector list split at its commas, not at those inside ``:not(...)``."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(prelude):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(prelude[start:i].strip())
            start = i + 1
    out.append(prelude[start:].strip())
    return out


def _needs(selector: str) -> tuple[frozenset[str], frozenset[str]]:
    """The ``lash-*`` classes and the element names an element of the markup must have for
    ``selector`` to match there (what ``:not(...)`` names is not needed; what ``:has(...)``
    names is)."""
    bare = _NOT.sub("", selector)
    plain = re.sub(r"\([^()]*\)|\[[^\]]*\]", "", bare)
    return frozenset(_LASH_CLASS.findall(bare)), frozenset(_TAG.findall(plain))


@cache
def css_rules(name: str) -> Rules | None:
    """``compact_css(name)`` as its rules. ``None`` when the sheet is more than flat rules
    (an at-rule, a nested block): it is then never cut."""
    sheet = compact_css(name)
    found = [(m.group(1), m.group(2)) for m in _RULE.finditer(sheet)]
    if "".join(f"{p}{{{b}}}" for p, b in found) != sheet or any("@" in p for p, _ in found):
        return None
    return tuple((tuple((s, *_needs(s)) for s in _selectors(p)),
                  tuple(d for d in b.split(";") if d.strip()))
                 for p, b in found)


def css_for(name: str, markup: str) -> str:
    """The rules of ``compact_css(name)`` that can match in ``markup``: a selector is kept
    when every ``lash-*`` class and element name it needs is in ``markup``; a custom property
    (``--lash-*``) is kept when a kept declaration or ``markup`` uses it. A saved record
    carries these, not the live widget's whole sheet: a short turn's record was mostly its
    style block (ADR 189). Each record keeps its own rules, so it reads alone (a cleared or
    moved cell takes no other output's style with it)."""
    rules = css_rules(name)
    if rules is None:
        return compact_css(name)
    classes = {c for attr in _CLASS_ATTR.findall(markup) for c in attr.split()}
    tags = {t.lower() for t in _OPEN_TAG.findall(markup)}
    kept: list[tuple[list[str], tuple[str, ...]]] = []
    for selectors, decls in rules:
        chosen = [s for s, cls, els in selectors if cls <= classes and els <= tags]
        if chosen:
            kept.append((chosen, decls))

    def defines(d: str) -> str | None:
        head = d.split(":", 1)[0].strip()
        return head if head.startswith("--lash-") else None

    used = set(_VAR_USE.findall(markup))
    used |= {v for _, decls in kept for d in decls if defines(d) is None
             for v in _VAR_USE.findall(d)}
    while True:  # a kept property's value may use another
        more = {v for _, decls in kept for d in decls if defines(d) in used
                for v in _VAR_USE.findall(d)} - used
        if not more:
            break
        used |= more
    out = []
    for chosen, decls in kept:
        body = [d for d in decls if defines(d) is None or defines(d) in used]
        if body:
            out.append(f"{','.join(chosen)}{{{';'.join(body)};}}")
    return "".join(out)
