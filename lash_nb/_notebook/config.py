"""Defaults for the ``%lash`` magics: ``[tool.lash_nb]`` in the nearest pyproject.toml.

Precedence (strongest first): an option on the magic line, ``%config LashMagics.<name>``,
``[tool.lash_nb]`` found from the working directory upward, the trait's built-in default.

A mistake in the table (a file that does not parse, an unknown or misspelt key, a value of the
wrong kind) never stops ``%load_ext lash_nb``: the good settings are used and each mistake is
one line naming the file, the key and what to write instead (ADR 192).

``%reload_ext lash_nb`` reads the table again (ADR 199): a key the file sets now is taken, a
key it set before and no longer sets goes back to the built-in default, a key ``%config`` set
keeps ``%config``'s value (and the line says so when the file says otherwise). The magics
object stays, so the sessions the notebook has open stay open.
"""

from __future__ import annotations

import difflib
import json
import math
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import TraitError

from .settings import kind_of, refusal, take_ipython_config, without_lash

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
    unreadable: str | None = None  # why the file could not be read (it does not parse)

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
        out.unreadable = " ".join(str(err).split()) or type(err).__name__
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


def bad_value(settings: PyprojectSettings, key: str, value: Any, *, trait: Any,
              kept: Any) -> str:
    """The line for a value the setting cannot take (``commit-wait-s = "soon"``): what the
    setting takes, in the words ``%config``'s line uses, and its built-in value as the example
    to write (unless empty)."""
    default = trait.default_value
    example = _toml(default) if default not in ("", None) else '"..."'
    return (f"{settings.where(key)} = {_toml(value)} is not {kind_of(trait)}, so it stays "
            f"{_toml(kept)}; write e.g. {settings.spelled.get(key, key)} = {example}")


def _toml(value: Any) -> str:
    """A value as it is written in the file (``"soon"``, ``true``, ``nan``), near enough for
    a line."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf, -inf: as TOML writes them (JSON has NaN, Infinity)
    return json.dumps(value, ensure_ascii=False, default=str)


def take_pyproject(magics: Any, configured: Any
                   ) -> tuple[PyprojectSettings, dict[str, tuple[Any, Any]]]:
    """``[tool.lash_nb]``'s settings that ``%config`` did not set (``configured``: the
    shell's ``LashMagics`` config, which ``%config`` writes into); a key or value it cannot
    take is one line on stderr, and loading goes on with the rest (ADR 192). A key it took
    the last time and the file no longer sets goes back to its built-in default. Returns
    what the file holds and the settings that changed: key -> (before, after)."""
    settings = read_pyproject()
    notes = list(settings.notes)
    before: dict[str, Any] = dict(magics.from_pyproject)
    if settings.unreadable is not None:  # half an edit: the settings read before stay
        kept = "the ones read from it before stay" if before else "they are not used"
        print(f"lash_nb: {settings.path} could not be read ({settings.unreadable}); its "
              f"[tool.lash_nb] settings were not read: {kept}; fix the file and run "
              "%reload_ext lash_nb", file=sys.stderr)
        return settings, {}
    taken: dict[str, Any] = {}
    changed: dict[str, tuple[Any, Any]] = {}
    for key in [*settings.values, *(k for k in before if k not in settings.values)]:
        if key in configured:
            continue
        kept, trait = getattr(magics, key), magics.traits()[key]
        value = settings.values.get(key, trait.default_value)
        try:
            setattr(magics, key, value)  # each kind refuses a TOML true (traitlets: 1)
        except TraitError:
            notes.append(bad_value(settings, key, value, kept=kept, trait=trait))
            if key in before:
                taken[key] = before[key]  # the file's earlier value is still in force
            continue
        if key in settings.values:
            taken[key] = value
        if getattr(magics, key) != kept:
            changed[key] = (kept, getattr(magics, key))
    magics.from_pyproject = taken
    for note in notes:
        print(note, file=sys.stderr)
    return settings, changed


def reread_pyproject(magics: Any) -> str:
    """What ``%reload_ext lash_nb`` does with the table and the line it prints: the settings
    that changed, and those the file sets but ``%config`` holds (its value wins: without a
    word, an edit of the file that ``%config`` overrides looks ignored). What ``%config`` holds
    is the magics' own config: the values they took (the shell's config keeps a value the
    magics refused too, as ``%config`` writes it there before they check it)."""
    configured = magics.config.get("LashMagics", {})
    settings, changed = take_pyproject(magics, configured)
    if settings.path is None:
        head = (f"lash_nb: no pyproject.toml in {Path.cwd()} or a folder above it; "
                "[tool.lash_nb] sets nothing")
    else:
        head = f"lash_nb: read [tool.lash_nb] of {settings.path} again"
    said = [f"{k} = {_toml(new)} (was {_toml(old)})" for k, (old, new) in changed.items()]
    held = [k for k, v in settings.values.items()
            if k in configured and getattr(magics, k) != v]
    if held:
        said.append(f"%config sets {', '.join(held)}, which wins over the file")
    return f"{head}: {'; '.join(said) if said else 'no setting changed'}; open sessions stay open"


def configured_magics(ip: Any, make: Any) -> Any:
    """The magics ``make`` builds (``LashMagics``), set from IPython's config and then
    ``[tool.lash_nb]``, each setting on its own: a bad value in ``ipython_config.py``, on the
    kernel's command line or in a ``%config`` run before loading is one line and the others
    apply (traitlets, given the config whole, refused the load). A value IPython's config sets
    and the magics take wins over the file; a refused one leaves the key to the file."""
    given = ip.config.get("LashMagics", {})
    magics = make(ip, config=without_lash(ip.config))
    refused, unknown = take_ipython_config(magics, given)
    take_pyproject(magics, magics.config.get("LashMagics", {}))  # the values taken
    for line in [*unknown, *(refusal(magics, key, given[key]) for key in refused)]:
        print(line, file=sys.stderr)
    return magics
