"""Argument parsing for ``%lash`` verbs: ``magic_arguments`` parsers, a raw prompt split, and
``{var}`` / ``{{var}}`` interpolation from the user namespace.

Every mistake is one ``UsageError`` line: a misspelled option gets "did you mean", like a
misspelled verb; a ``{name}`` that is not defined is an error (``\\{name}`` writes the braces
literally), never sent to the model as written.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

# one option or value: unquoted runs and "..." / '...' parts (a quoted value may hold spaces)
_OPTION = re.compile(r"""\s*((?:"[^"]*"|'[^']*'|[^\s"']+)+)""")
_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
# one pass: an optional backslash, then {{ name }} or {name}; a substituted value is never
# scanned again
_FIELD = re.compile(r"(\\?)(?:\{\{\s*(" + _NAME + r")\s*\}\}|\{(" + _NAME + r")\})")
_UNRECOGNIZED = "unrecognized arguments: "
# verbs whose result is a pandas DataFrame already: a ``--df`` there says so (ADR 0215)
FRAME_VERBS = ("%lash usage", "%lash sessions")
_CHOICE = re.compile(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)")


def parser(verb: str, description: str) -> MagicArgumentParser:
    p = MagicArgumentParser(prog=f"%lash {verb}", description=description, add_help=False)
    # a prefix is not the option (``--stor`` is not ``--store``): it hid typos, and a prefix
    # that works today is ambiguous once an option with the same start is added
    p.allow_abbrev = False
    return p


def split_options(argline: str, prog: str = "%lash") -> list[str]:
    """Options as a shell splits them: quotes delimit a value and are not part of it
    (IPython's own splitter keeps them: ``--store 'a.duckdb'`` named a file ``'a.duckdb'``)."""
    try:
        return shlex.split(argline)
    except ValueError as err:  # "No closing quotation"
        raise UsageError(f"{prog}: a quote in the options is not closed ({err}); close it, e.g. "
                         f"--store \"my notes.duckdb\"") from None


def parse(p: MagicArgumentParser, argline: str) -> Any:
    argv = split_options(argline, p.prog)
    try:
        return p.parse_args(argv)
    except UsageError as err:
        msg = str(err)
        choice = _CHOICE.search(msg)
        if choice is not None:
            given, allowed = choice.group(2), re.findall(r"'([^']*)'", choice.group(3))
            close = difflib.get_close_matches(given, allowed, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"{p.prog} {choice.group(1)} {given!r} is not one of "
                             f"{', '.join(allowed)}; {hint}see %lash help") from err
        if not msg.startswith(_UNRECOGNIZED):
            raise UsageError(f"{p.prog}: {msg}; see %lash help") from err
        first = msg[len(_UNRECOGNIZED):].split()[0]
        if first.startswith("#"):  # IPython hands a magic its whole line, a "# note" too
            raise UsageError(f"{p.prog}: {first!r} is not a comment on a %lash line (its words "
                             "are read as options); put the comment on a line of its own") from err
        if first == "--df" and p.prog in FRAME_VERBS:
            raise UsageError(f"{p.prog} has no --df: it returns a pandas DataFrame already; "
                             f"assign it to keep it: df = {p.prog}") from err
        options = [o for a in p._actions for o in a.option_strings]
        raise UsageError(_words_after_value(p, argv, first)
                         or unknown_option(first, options, p.prog)) from err


def _words_after_value(p: MagicArgumentParser, argv: list[str], stray: str) -> str | None:
    """``--set You are terse.``: the words after an option's one value are its text, typed
    without quotes; the line that says so (None when ``stray`` follows no such value)."""
    takes_value = {o for a in p._actions if a.nargs is None and a.option_strings
                   and a.const is None for o in a.option_strings}
    for i, tok in enumerate(argv):
        if tok == stray and i >= 2 and argv[i - 2] in takes_value:
            end = i
            while end < len(argv) and not argv[end].startswith("-"):
                end += 1
            option, words = argv[i - 2], " ".join(argv[i - 1:end])
            return (f"{p.prog}: {option} takes one value; put text with spaces in quotes: "
                    f"{option} \"{words}\"")
    return None


def unknown_option(token: str, options: Iterable[str], prog: str = "%lash") -> str:
    """The one-line error for an unknown option (or stray argument), with "did you mean" and
    the verb's options."""
    if not token.startswith("-"):
        return f"{prog} got an unexpected argument {token!r}; see %lash help"
    name = token.split("=", 1)[0]
    known = list(dict.fromkeys(options))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    listed = f"its options: {', '.join(known)}; " if known else ""
    return f"unknown option {name} for {prog}; {hint}{listed}see %lash help"


def split_prompt(
    argline: str, *, with_value: tuple[str, ...], flags: tuple[str, ...], prog: str = "%lash"
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
                if argline[m.end():].strip()[:1] in ("'", '"'):
                    split_options(argline[m.end():])  # raises: the quote is not closed
                raise UsageError(f"{name} needs a value, e.g. {name} VALUE")
            pos = value.end()
        elif tok.startswith("-") and not _is_number(tok):
            raise UsageError(unknown_option(tok, (*with_value, *flags), prog))
        else:
            opts, prompt = argline[:m.start(1)].strip(), argline[m.start(1):].strip()
            _refuse_trailing_options(prompt, (*with_value, *flags))
            return opts, prompt


def _refuse_trailing_options(prompt: str, options: tuple[str, ...]) -> None:
    """``%lash enqueue later --id k1`` would queue the text "later --id k1" with no id: an
    option of the verb inside the prompt is an error (``--`` before the prompt sends it as is)."""
    for tok in prompt.split():
        name = tok.split("=", 1)[0]
        if name in options:
            raise UsageError(
                f"{name} comes after the prompt; options go first (e.g. {name} VALUE PROMPT), "
                f"or write -- before a prompt that contains {name}"
            )


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


def lookup_name(path: str, ns: Mapping[str, Any]) -> tuple[bool, Any]:
    """``(True, value)`` of a notebook name (``df`` or ``results.fig``), else ``(False, None)``."""
    return _lookup(path, ns)


def interpolate(text: str, ns: Mapping[str, Any], *, where: str = "the prompt") -> str:
    """Replace ``{name}`` and ``{{name}}`` (dotted attributes allowed) by ``str(value)``.

    A name that is not defined raises a one-line ``UsageError`` (the prompt is not sent);
    ``\\{name}`` is the literal text ``{name}``. Braces around anything that is not a name
    (JSON, ``{1, 2}``) are left exactly as written."""
    return substitute(text, ns, where=where)[0]


def substitute(text: str, ns: Mapping[str, Any], *,
               where: str = "the prompt") -> tuple[str, list[str]]:
    """:func:`interpolate`, and the names it replaced (each once, in order)."""
    missing: list[str] = []
    replaced: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1):  # escaped: \{name} -> {name}
            return m.group(0)[1:]
        name = m.group(2) or m.group(3)
        found, value = _lookup(name, ns)
        if not found:
            missing.append(name)
            return m.group(0)
        if name not in replaced:
            replaced.append(name)
        return str(value)

    out = _FIELD.sub(sub, text)
    if missing:
        name = missing[0]
        root = name.split(".")[0]
        what = (f"{root!r} has no attribute {name.split('.', 1)[1]!r}" if root in ns else
                f"define {root!r} first")
        keep = "send the braces as text" if where == "the prompt" else "keep the braces"
        raise UsageError(
            f"{{{name}}} in {where} names nothing defined in the notebook; {what}, "
            f"or write \\{{{name}}} to {keep}"
        )
    return out, replaced


def prompt_text(text: str, ns: Mapping[str, Any], *, raw: bool,
                replaced: list[str]) -> str:
    """A prompt (or system text) as sent: as typed with ``--raw``, else with lash's
    ``{name}`` substitution, the names it replaced added to ``replaced`` (ADR 160)."""
    if raw:
        return text
    out, names = substitute(text, ns)
    replaced.extend(n for n in names if n not in replaced)
    return out


def say_replaced(replaced: list[str], magics: Any = None) -> None:
    """One line after a prompt whose ``{name}`` fields took notebook values: pasted code
    holding ``{name}`` changes where that name is defined, so it is never silent. Said once
    per cell for the same names (``magics.cells_run``), not at each turn of a loop."""
    if not replaced:
        return
    if magics is not None:
        said = (magics.cells_run, list(replaced))
        if getattr(magics, "said", None) == said:
            return
        magics.said = said
    fields = ", ".join(f"{{{n}}}" for n in replaced)
    were = "was replaced by the notebook's value" if len(replaced) == 1 else (
        "were replaced by the notebook's values")
    print(f"lash: {fields} {were}; --raw sends the text as typed")


def given_name(value: str, ns: Mapping[str, Any], *, option: str, example: str,
               otherwise: str) -> str:
    """A session or store name as given (``--session``, ``--delete``): ``{name}`` is a notebook
    variable; an empty or blank one is refused in one line, as ``%lash open ""`` is (ADR 186,
    192): it is almost surely a variable that came out empty, and an empty name meant the
    default, so the verb acted on a session the user did not name."""
    out = interpolate(value, ns, where=f"{option}").strip()
    if not out:
        raise UsageError(f"{option} is empty (an empty variable?); give a name, e.g. "
                         f"{option} {example}, or {otherwise}")
    return out
