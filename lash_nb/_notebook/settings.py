"""The kinds of ``LashMagics`` setting that check their values, and IPython's config taken one
setting at a time.

Each kind checks a value in its trait's ``validate``, which runs before the value is set, so
the line it raises names the value kept. Each carries ``kind``, the words every line uses for
what it takes (``a whole number of rows, 0 or more``), so ``%config``, ``[tool.lash_nb]`` and
``ipython_config.py`` say the same (ADR 203).

IPython's config (a profile's ``ipython_config.py``, ``--LashMagics.x=...`` on the kernel's
command line, a ``%config`` run before ``%load_ext``) reached the magics whole, in
traitlets' constructor: one bad value made ``%load_ext lash_nb`` fail and left no magics.
:func:`take_ipython_config` builds the magics without it and then sets each value on its own;
a value refused, or a name that is no setting, is one line naming where it was written.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any

from traitlets import Float, Int, TraitError, TraitType, Unicode
from traitlets.config import Application, Config
from traitlets.config.loader import DeferredConfig, LazyConfigValue


class Seconds(Float[float, float]):
    """A setting in seconds: above 0 (``commit_wait_s``, ``live_interval_s``), or 0 or more
    with ``zero=True`` (``offline_delay_s``: no pause). A negative number, NaN and infinity
    were taken silently (a negative ``live_interval_s`` sent every delta of a turn to the front
    end, ADR 199; an infinite ``offline_delay_s`` hung every turn); a bool is no number of
    seconds (traitlets takes True as 1)."""

    def __init__(self, default: float, *, example: str, help: str, zero: bool = False) -> None:
        super().__init__(default, help=help)
        self.example, self.zero = example, zero
        self.kind = f"a number of seconds{', 0 or more' if zero else ' above 0'}"

    def validate(self, obj: Any, value: Any) -> float:
        try:
            seconds = math.nan if isinstance(value, bool) else float(super().validate(obj, value))
        except TraitError:
            seconds = math.nan
        if not (seconds >= 0 if self.zero else seconds > 0) or math.isinf(seconds):
            raise TraitError(f"LashMagics.{self.name} must be {self.kind} (e.g. "
                             f"{self.example}), not {value!r}; it stays "
                             f"{getattr(obj, str(self.name)):g}")
        return seconds


class Count(Int[int, int]):
    """A whole number of ``unit`` above 0, or 0 or more when ``zero`` says what 0 means
    (``sql_rows``: 0 shows every row). A negative ``sql_rows`` showed every row without a word;
    ``max_tool_output = 0`` was taken and then refused by every ``%lash open``; an attachment
    limit of 0 refused every attachment, saying to raise it."""

    def __init__(self, default: int, *, unit: str, help: str, zero: str | None = None) -> None:
        super().__init__(default, help=help)
        self.example, self.zero = str(default), zero
        self.kind = (f"a whole number of {unit}, 0 or more (0 {zero})" if zero else
                     f"a whole number of {unit} above 0")

    def validate(self, obj: Any, value: Any) -> int:
        least = 0 if self.zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            told = f"{self.kind[:-1]}; e.g. {self.example})" if self.zero else (
                f"{self.kind} (e.g. {self.example})")
            raise TraitError(f"LashMagics.{self.name} must be {told}, not {value!r}; it stays "
                             f"{getattr(obj, str(self.name))!r}")
        return int(super().validate(obj, value))


class Named(Unicode[str, str | bytes]):
    """Text that is not empty (``session``, ``store``): an empty one meant the built-in
    default, silently (ADR 192)."""

    def __init__(self, default: str, *, what: str, example: str, help: str) -> None:
        super().__init__(default, help=help)
        self.example, self.kind = repr(example), f"{what} in quotes, not empty"

    def validate(self, obj: Any, value: Any) -> str:
        text = str(super().validate(obj, value))
        if not text.strip():
            raise TraitError(f"LashMagics.{self.name} is empty; give one, e.g. "
                             f"{self.example.strip(chr(39))}; it stays "
                             f"{getattr(obj, str(self.name))!r}")
        return text


PLAIN = {"Float": "a number", "Int": "a whole number", "Unicode": "text in quotes"}


def kind_of(trait: TraitType[Any, Any]) -> str:
    """What a setting takes, in the words of every line about it."""
    return getattr(trait, "kind", None) or PLAIN.get(type(trait).__name__, "another value")


def example_of(trait: TraitType[Any, Any]) -> str:
    """A value to write, as Python writes it (the built-in default, unless it is empty)."""
    given = getattr(trait, "example", None)
    if given is not None:
        return str(given)
    return repr(trait.default_value) if trait.default_value not in ("", None) else "'...'"


def _value(trait: TraitType[Any, Any], raw: Any, current: Any) -> Any:
    """A config value as traitlets would set it: a string from the command line read the
    trait's way, an ``.append``-style value applied to the current one."""
    if isinstance(raw, LazyConfigValue):
        return raw.get_value(current)
    if isinstance(raw, DeferredConfig):
        return raw.get_value(trait)
    return raw


def without_lash(config: Any) -> Config:
    """The shell's config with no ``LashMagics`` section, for building the magics."""
    clean = Config(config)
    clean.pop("LashMagics", None)
    return clean


def take_ipython_config(magics: Any, given: Any) -> tuple[list[str], list[str]]:
    """Set each of IPython's ``LashMagics`` settings on its own. Returns the keys whose value
    the setting cannot take (said by :func:`refusal` once ``[tool.lash_nb]`` has been read, so
    "it stays" names the value in force then) and a line for each name that is no setting."""
    traits = magics.traits(config=True)
    refused: list[str] = []
    unknown: list[str] = []
    for key, raw in given.items():
        if key not in traits:
            close = difflib.get_close_matches(key, list(traits), n=1, cutoff=0.6)
            todo = f"did you mean {close[0]}?" if close else f"the settings are {', '.join(traits)}"
            unknown.append(f"lash_nb: {_where(key, raw)} LashMagics.{key}, which is not a "
                           f"lash_nb setting and is ignored; {todo}")
            continue
        try:
            setattr(magics, key, _value(traits[key], raw, getattr(magics, key)))
        except TraitError:
            refused.append(key)
            continue
        magics.config.LashMagics[key] = raw
    return refused, unknown


def refusal(magics: Any, key: str, raw: Any) -> str:
    """The line for a value of IPython's config the setting cannot take: where it was written,
    what the setting takes, the value kept and what to write there instead."""
    trait, kept = magics.traits()[key], getattr(magics, key)
    if isinstance(raw, DeferredConfig):  # the command line: as it was typed
        shown, fix = f"--LashMagics.{key}={raw}", f"--LashMagics.{key}={example_of(trait)}"
    else:
        shown, fix = f"LashMagics.{key} = {raw!r}", f"LashMagics.{key} = {example_of(trait)}"
        fix = f"c.{fix}" if _file_with(key) else f"%config {fix}"
    stays = f"{kept:g}" if isinstance(kept, float) else repr(kept)
    return (f"lash_nb: {_where(key, raw)} {shown}, which is not {kind_of(trait)}, so it "
            f"stays {stays}; write e.g. {fix}")


def _where(key: str, raw: Any) -> str:
    """Where a ``LashMagics`` value was written: the command line (traitlets keeps its text
    unread), the config file that names it, or IPython's config (a ``%config`` before
    ``%load_ext``, or code)."""
    if isinstance(raw, DeferredConfig):
        return "the command line sets"
    found = _file_with(key)
    return f"{found} sets" if found else "IPython's config sets"


def _file_with(key: str) -> str | None:
    """The config file the running application loaded that names ``LashMagics`` and ``key``."""
    if not Application.initialized():
        return None
    for name in reversed(Application.instance().loaded_config_files):  # the last one wins
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "LashMagics" in text and re.search(rf"\b{key}\b", text):  # .py or .json
            return str(name)
    return None
