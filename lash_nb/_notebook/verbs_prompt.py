"""``%lash prompt``: show the rendered system prompt, or change the session prompt layer.

- ``%lash prompt``: the system prompt the next turn sends (plain text; "no system prompt"
  when the layers render nothing). Assigned (``p = %lash prompt``) it returns the text.
- ``%lash prompt --set "..."``: the session's Intro text (replaces the Intro slot of the
  session layer; committed, so a reopened session keeps it).
- ``%lash prompt --add "..." [--slot guidance] [--title T]``: one more contribution.
- ``%lash prompt --clear``: drop the session layer (the core layer and the builder's
  ``system_prompt`` stay).

A change prints one line saying what changed (assigned, it returns the rendered prompt);
``%lash prompt`` prints the prompt itself. Each change printed the whole prompt, so a cell
that sets the intro and adds a slot showed the intro twice.

A one-off instruction for one turn is ``%%lash --system "..."``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .._core.prompt import PromptContribution, PromptLayer, PromptSlot
from .._core.text import clean_text
from .._runtime.config import SessionConfigPatch
from .parsing import parse, parser, prompt_text, say_replaced

if TYPE_CHECKING:
    from .magics import LashMagics

PROMPT = parser("prompt", "Show the rendered system prompt, or set the session prompt layer.")
PROMPT.add_argument("--session", default=None)
PROMPT.add_argument("--set", dest="set_text", default=None,
                    help="the session's system prompt text (the Intro slot)")
PROMPT.add_argument("--add", default=None, help="add a contribution to --slot")
PROMPT.add_argument("--slot", default="guidance", choices=tuple(s.value for s in PromptSlot))
PROMPT.add_argument("--title", default=None)
PROMPT.add_argument("--clear", action="store_true", help="drop the session prompt layer")
PROMPT.add_argument("--raw", action="store_true",
                    help="keep the --set / --add text exactly as typed (no {name} substitution)")


def prompt_args(m: LashMagics, argline: str, cell: str | None) -> Any:
    a = parse(PROMPT, argline)
    chosen = [name for name, on in (("--set", a.set_text is not None),
                                    ("--add", a.add is not None), ("--clear", a.clear)) if on]
    if len(chosen) > 1:
        raise UsageError(f"%lash prompt takes one of --set, --add, --clear, got {' and '.join(chosen)}")
    a.replaced = []
    for name in ("set_text", "add"):
        value = getattr(a, name)
        if value is not None:
            value = clean_text(prompt_text(value, m.user_ns, raw=a.raw,
                                           replaced=a.replaced)).strip()
            if not value:
                raise UsageError("the prompt text is empty; write it in quotes, e.g. "
                                 '%lash prompt --set "You are a careful analyst."')
            setattr(a, name, value)
    return a


async def prompt(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = prompt_args(m, argline, cell)
    say_replaced(a.replaced, m)
    b = await m.ctx.binding(a.session, stored=a.set_text is None and a.add is None
                            and not a.clear)  # only shown: a typo is refused
    s = b.session
    config = s.admin().config()
    changed = None
    if a.set_text is not None:
        await s.configure(SessionConfigPatch(prompt=(s.state.policy.prompt or PromptLayer())
                                             .with_replaced_slot(PromptSlot.INTRO, [
                                                 PromptContribution(PromptSlot.INTRO,
                                                                    a.set_text)])))
        changed = "the session prompt's intro is set"
    elif a.add is not None:
        await config.add_prompt_contribution(PromptContribution(a.slot, a.add, a.title))
        titled = f" under {a.title!r}" if a.title else ""
        changed = f"added to the {a.slot} slot of the session prompt{titled}"
    elif a.clear:
        await s.configure(SessionConfigPatch(prompt=PromptLayer()))
        changed = "the session prompt layer is cleared"
    text = s.rendered_prompt()
    if assigned:
        return text
    if changed is not None:  # one line: the whole prompt again per change said it twice
        print(f"lash: {changed}; %lash prompt shows what the next turn sends")
    else:
        print(text if text is not None else "(no system prompt: set one with %lash prompt --set \"...\")")
    return None


ARGS = {"prompt": prompt_args}
