"""Argument parsing for ``%lash`` verbs: ``magic_arguments`` parsers, a raw prompt split, and
``{var}`` / ``{{var}}`` interpolation from the user namespace."""

from __future__ import annotations

import re
from typing import Any, Mapping

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

_OPTION = re.compile(r"\s*(\S+)")
_DOUBLE = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")
_SINGLE = re.compile(r"\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\}")


def parser(verb: str, description: str) -> MagicArgumentParser:
    return MagicArgumentParser(prog=f"%lash {verb}", description=description, add_help=False)


def parse(p: MagicArgumentParser, argline: str) -> Any:
    return p.parse_argstring(argline)


def split_prompt(
    argline: str, *, with_value: tuple[str, ...], flags: tuple[str, ...]
) -> tuple[str, str]:
    """``"--id k1 say 'hi'"`` -> ``("--id k1", "say 'hi'")``: options first, the raw prompt after
    (quotes and spacing of the prompt are kept)."""
    pos = 0
    while True:
        m = _OPTION.match(argline, pos)
        if m is None:
            return argline.strip(), ""
        tok = m.group(1)
        if tok == "--":
            return argline[:m.start(1)].strip(), argline[m.end():].strip()
        name = tok.split("=", 1)[0]
        if name in flags or (name in with_value and "=" in tok):
            pos = m.end()
        elif name in with_value:
            value = _OPTION.match(argline, m.end())
            if value is None:
                raise UsageError(f"{name} needs a value, e.g. {name} VALUE")
            pos = value.end()
        elif tok.startswith("-") and not _is_number(tok):
            raise UsageError(f"unknown option {tok}; see %lash help")
        else:
            return argline[:m.start(1)].strip(), argline[m.start(1):].strip()


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _lookup(path: str, ns: Mapping[str, Any]) -> tuple[bool, Any]:
    root, *rest = path.split(".")
    if root not in ns:
        return False, None
    value = ns[root]
    for attr in rest:
        if not hasattr(value, attr):
            return False, None
        value = getattr(value, attr)
    return True, value


def interpolate(text: str, ns: Mapping[str, Any]) -> str:
    """Replace ``{name}`` and ``{{name}}`` (dotted attributes allowed) by ``str(value)`` when the
    name is defined in ``ns``; anything else is left exactly as written."""

    def sub(m: re.Match[str]) -> str:
        found, value = _lookup(m.group(1), ns)
        return str(value) if found else m.group(0)

    return _SINGLE.sub(sub, _DOUBLE.sub(sub, text))
