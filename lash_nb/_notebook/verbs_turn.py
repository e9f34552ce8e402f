"""``%lash`` verbs that open a session and run a turn: open, turn / ``%%lash`` (the queue's
verbs, stop and wait are in ``verbs_queue``)."""

from __future__ import annotations

import asyncio
import difflib
import keyword
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from .._core.attachments import AttachmentLimits
from .._core.records import TurnInput
from .._core.text import clean_text, shown_name
from .._errors import InvalidTurnInput, TurnNotSaved
from .._providers.registry import NAMES as PROVIDERS
from .._providers.registry import check_key, split_model_id
from .._store.target import is_duckdb_path
from .card import Card
from .costs import prices_for_display, session_cost
from .parsing import (
    interpolate,
    lookup_name,
    parse,
    parser,
    prompt_text,
    say_replaced,
    split_prompt,
)
from .runner import run_turn

if TYPE_CHECKING:
    from .magics import LashMagics

OPEN = parser("open", "Open (or resume) a session and bind it to this notebook.")
OPEN.add_argument("session", nargs="?", default=None)
OPEN.add_argument("--fresh", action="store_true", help="start over (replace the stored graph)")
OPEN.add_argument("--store", default=None,
                  help="DuckDB path, :memory: or postgresql:// DSN; default: the store of the "
                       "session in use (the configured store for the notebook's first open)")
OPEN.add_argument("--provider", default=None, help="|".join(PROVIDERS))
OPEN.add_argument("--model", default=None, help="a model, or provider:model (openai:gpt-4.1-mini)")
OPEN.add_argument("--residency", default=None, choices=("keep_all", "active_path_only"))
OPEN.add_argument("--tools", default=None,
                  help="comma-separated functions of the notebook to attach as tools "
                       "(plain functions get @tool semantics); default: every @tool object")
OPEN.add_argument("--no-tools", action="store_true", help="attach no notebook tools")
OPEN.add_argument("--read-only", action="store_true",
                  help="only read a DuckDB store (a colleague's file, a read-only folder): "
                       "history, %%lash sql, usage; turns are refused")
OPEN.add_argument("--mode", default=None, choices=("standard", "code"),
                  help="code: the model writes Python cells run in a sandbox kernel")
OPEN.add_argument("--share", default=None,
                  help="code mode: comma-separated DataFrame variables or file paths copied "
                       "into the sandbox")

TURN_VALUES = ("--session", "-o", "--turn-id", "--system", "--attach")
TURN_FLAGS = ("--background", "--raw")
TURN = parser("turn", "Run a turn; the prompt is the rest of the line (or the cell body).")
TURN.add_argument("--session", default=None)
TURN.add_argument("-o", dest="out", default=None, help="store the TurnResult in this variable")
TURN.add_argument("--turn-id", default=None)
TURN.add_argument("--background", action="store_true", help="return a task at once")
TURN.add_argument("--raw", action="store_true",
                  help="send the prompt and --system text exactly as typed (no {name} "
                       "substitution: pasted code)")
TURN.add_argument("--system", default=None,
                  help="extra system prompt text for this turn only (a turn prompt layer)")
TURN.add_argument("--attach", default=None,
                  help="comma-separated notebook names (figure, image, DataFrame, bytes) or file "
                       "paths to show the model")

ENQ_VALUES = ("--session", "--id", "--delivery", "--slot", "--merge-key", "--attach")
def session_card(b: Any, prices: Any = None) -> Card:
    s = b.session
    meta = [
        f"**lash session** `{shown_name(s.session_id)}`",
        f"store `{b.store}`"
        + (f" ({b.store_from}; `--store PATH` picks another)" if b.store_from else "")
        + f" · provider `{b.provider}` · model `{s.policy_snapshot().model}`",
    ]
    # a fresh session counts the turns of its new graph; a resumed one every turn it has had
    on_graph = len({n.turn_id for n in s.read_view().nodes() if n.turn_id})
    turns = f"{on_graph if b.fresh else s.state.turn_index} turn(s) so far"
    earlier = s.state.turn_index - on_graph
    if b.fresh and earlier > 0:
        turns = (f"{on_graph} turn(s) so far (started fresh: {earlier} earlier turn(s) stay in "
                 "the store's turns table)")
    cost = session_cost(s, prices)
    if cost:
        turns += f" · cost so far {cost['text']}" if cost["usd"] is not None else f" · {cost['text']}"
    meta.append(f"{turns} · `%lash help` for the verbs")
    lost = s.state.lost_turns
    if lost:  # counted in the turns above since ADR 198: say they are among them
        meta.append(
            f"**{len(lost)} of these did not finish**: the kernel (or process) running "
            f"{'each' if len(lost) > 1 else 'it'} was killed or died before the turn's final "
            "commit (a restart from the Kernel menu commits a running turn first); recorded "
            "`stopped: runtime_error` with what it had committed, its prompt at least: "
            + ", ".join(f"`%lash replay {t}`" for t in lost))
    meta.append(tools_line(s.tools().all_tools()))
    code = s.parts.code_mode
    if code is not None:
        shared = ", ".join(f"`{name}`" for name, _ in code.shared()) or "nothing"
        meta.append(f"**code mode**: the model writes Python cells run in a sandbox kernel "
                    f"(started with the first turn, fresh: no earlier variables); shared: "
                    f"{shared}")
    return Card("\n\n".join(meta))


def tools_line(rows: list[dict[str, Any]]) -> str:
    """What the model is offered, and what it is not offered and why."""
    offered = [r["name"] for r in rows if r["member"] and not r["orphaned"]]
    missing = [r["name"] for r in rows if r["orphaned"]]
    unchecked = [r["name"] for r in rows if not r["member"] and not r["orphaned"]]

    def names(xs: list[str]) -> str:
        return ", ".join(f"`{x}`" for x in xs)

    if offered:
        parts = [f"tools offered to the model: {names(offered)}"]
    elif missing or unchecked:
        parts = ["no tools offered to the model"]
    else:
        parts = ["no tools (define functions with `@tool` before `%lash open`, or pass `--tools f,g`)"]
    if missing:
        parts.append(f"**not implemented in this kernel** (stored, not offered): {names(missing)}; "
                     "define them with `@tool` and run `%lash open` again")
    if unchecked:
        parts.append(f"switched off: {names(unchecked)}")
    return " · ".join(parts)


def notebook_tools(m: LashMagics, names: str | None) -> tuple[list[Any], tuple[str, ...] | None]:
    """The tools ``%lash open`` attaches: the functions ``--tools`` names (plain functions are
    wrapped with ``@tool`` semantics), else every ``@tool`` object of the notebook."""
    if names is None:
        return m.ctx.discover_tools(), None
    from .._tools.function import as_tool_provider

    ns = m.user_ns
    wanted = tuple(filter(None, (t.strip() for t in names.split(","))))
    out = []
    for name in wanted:
        if name not in ns:
            callables = [k for k, v in ns.items() if callable(v) and not k.startswith("_")]
            close = difflib.get_close_matches(name, callables, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"--tools names {name!r}, which is not defined; {hint}"
                             "define the function first")
        value = ns[name]
        try:
            out.append(as_tool_provider(value))
        except (TypeError, ValueError, NameError) as err:
            kind = type(value).__name__
            raise UsageError(f"--tools names {name!r}, of type {kind}, which cannot be a tool "
                             f"({err.__class__.__name__}); pass a function") from err
    return out, wanted


def open_args(m: LashMagics, argline: str, cell: str | None) -> Any:
    """Parse and check ``%lash open`` (sync: errors raise wherever the magic is called)."""
    a = parse(OPEN, argline)
    _named(m, a)
    a.session = a.session or m.session
    provider = a.provider or m.provider
    model = m.model if a.model is None else a.model
    if provider in PROVIDERS and model:  # --model openai:gpt-4.1-mini picks the provider too
        provider, a.model = split_model_id(model, provider=a.provider, default=provider)
        a.provider = provider
    if provider not in PROVIDERS:
        close = difflib.get_close_matches(provider, PROVIDERS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"unknown provider {provider!r}; {hint}use --provider one of "
                         f"{', '.join(PROVIDERS)}")
    check_key(provider)
    previous = m.ctx.bindings.get(a.session)
    names = a.tools
    if names is None and previous is not None and previous.tool_names is not None:
        names = ",".join(previous.tool_names)  # reopening keeps the explicit --tools
    a.tool_list, a.tool_names = ([], ()) if a.no_tools else notebook_tools(m, names)
    a.shares = shared_values(m, a.share)
    if a.read_only and a.fresh:
        raise UsageError("--fresh replaces the stored session and --read-only writes nothing; "
                         "drop one of them")
    if a.read_only and not is_duckdb_path(a.store or m.store):
        raise UsageError("--read-only opens a DuckDB file; give --store PATH.duckdb")
    if a.shares and a.mode != "code":
        raise UsageError("--share copies data into code mode's sandbox; add --mode code")
    return a


def _named(m: LashMagics, a: Any) -> None:
    """The session name and ``--store`` as given, ``{name}`` being a notebook variable; an
    empty one (``""``, a variable that came out empty) is refused: it opened the default."""
    if a.session is not None:
        a.session = interpolate(a.session, m.user_ns, where="the session name").strip()
        if not a.session:
            raise UsageError(
                "%lash open got an empty session name (an empty variable?); give one, e.g. "
                f"%lash open analysis, or none for the session {m.session!r}")
    if a.store is not None:
        a.store = interpolate(a.store, m.user_ns, where="the store path").strip()
        if not a.store:
            raise UsageError(
                "--store is empty (an empty variable?); give a DuckDB path, e.g. --store "
                "lash.duckdb, a postgresql:// DSN or :memory:, or leave --store out for the "
                "store in use")


def shared_values(m: LashMagics, names: str | None) -> dict[str, Any]:
    """``--share df,data/sales.csv``: notebook variables by name, else existing files (named
    by their stem in the sandbox)."""
    out: dict[str, Any] = {}
    for raw in (names or "").split(","):
        item = raw.strip()
        if not item:
            continue
        if item in m.user_ns:
            out[item] = m.user_ns[item]
        elif os.path.isfile(item):
            stem = "".join(c if c.isalnum() else "_" for c in Path(item).stem) or "file"
            out[stem if stem.isidentifier() else f"file_{stem}"] = item
        else:
            raise UsageError(f"--share names {item!r}, which is neither a notebook variable "
                             "nor a file; define it or give the file's path")
    return out


async def open_(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = open_args(m, argline, cell)
    name, tools, tool_names = a.session, a.tool_list, a.tool_names
    try:
        b = await m.ctx.open(name, fresh=a.fresh, store=a.store, provider=a.provider,
                             model=a.model, residency=a.residency, tools=tools,
                             tool_names=tool_names, mode=a.mode, shares=a.shares,
                             read_only=a.read_only)
    except BaseException:  # an interrupted wait too: no other file opened in its place
        m.ctx.failed_open = (f"{shown_name(name or m.ctx.defaults.session)} in "
                             f"{a.store or m.ctx.defaults.store}")
        raise
    m.ctx.failed_open = None
    if b.replaced_file is not None:
        closed = (f"; closed the sessions open on the old one ({', '.join(b.replaced_file)})"
                  if b.replaced_file else "")
        print(f"lash: {b.store} was deleted or replaced since this kernel opened it: opened the "
              f"file there now{closed}")
    if assigned:
        return b.session
    display(session_card(b, prices_for_display(m.prices, m.user_ns)))
    return None


def turn_args(m: LashMagics, argline: str, cell: str | None) -> tuple[Any, str]:
    opts, prompt = split_prompt(argline, with_value=TURN_VALUES, flags=TURN_FLAGS,
                                prog="%lash turn" if cell is None else "%%lash")
    a = parse(TURN, opts)
    if a.out is not None and (not a.out.isidentifier() or keyword.iskeyword(a.out)):
        raise UsageError(f"-o {a.out!r} is not a Python variable name; give one such as -o r "
                         "(the turn was not run)")
    if cell is not None:
        _refuse_unquoted_system(a.system, opts, prompt)
        prompt = cell if not prompt else f"{prompt}\n{cell}"
    # cleaned here as the session would (ADR 12): the widget shows the prompt before the
    # session sees it, and a lone surrogate cannot be sent to the front end
    a.replaced = []
    prompt = clean_text(prompt_text(prompt.strip(), m.user_ns, raw=a.raw, replaced=a.replaced))
    if not prompt and not a.attach:
        raise UsageError("the prompt is empty; write it after %lash turn or in the %%lash cell body")
    if a.turn_id is not None:  # a loop's turn ids: --turn-id t-{i}
        a.turn_id = prompt_text(a.turn_id, m.user_ns, raw=a.raw, replaced=a.replaced)
    if a.system is not None:
        a.system = clean_text(prompt_text(a.system, m.user_ns, raw=a.raw,
                                          replaced=a.replaced)).strip()
        if not a.system:
            raise UsageError('--system is empty; write the text in quotes, e.g. --system "Be brief."')
    a.attach = attach_targets(m, a.attach)
    return a, prompt


def _refuse_unquoted_system(system: str | None, opts: str, words: str) -> None:
    """``%%lash --system be brief``: the words after an unquoted ``--system`` value on the
    cell's line would go to the model as the start of the prompt; they are the rest of the
    system text, typed without quotes (a quoted value may be followed by a prompt's start)."""
    if system is None or not words or opts.rstrip()[-1:] in ("'", '"') or "--system=" in opts:
        return
    if not opts.rstrip().endswith(system):
        return  # another option came after --system: its value was not the last thing typed
    raise UsageError(f'%%lash: --system takes one value, and "{words}" after it would start '
                     f'the prompt; put the system text in quotes: --system "{system} {words}" '
                     f"(the prompt is the cell)")


def attach_targets(m: LashMagics, spec: str | None) -> list[tuple[str, Any]]:
    """``--attach fig,df,plot.png`` -> ``[(name, object or path)]``: a name defined in the
    notebook (dotted attributes allowed) wins, else an existing file path. A file whose name
    has a comma (``--attach 'report, final.pdf'``) is taken whole."""
    out: list[tuple[str, Any]] = []
    whole = os.path.expanduser((spec or "").strip())
    tokens = [whole] if "," in whole and os.path.isfile(whole) else (spec or "").split(",")
    for token in (t.strip() for t in tokens):
        if not token:
            continue
        found, value = lookup_name(token, m.user_ns)
        if found:
            out.append((token, value))
        elif os.path.isfile(os.path.expanduser(token)):
            path = os.path.expanduser(token)
            out.append((os.path.basename(path), path))
        else:
            raise UsageError(f"--attach names {token!r}, which is neither a notebook variable "
                             "nor a file; define it first or give the file's path")
    return out


def attached_input(m: LashMagics, prompt: str, targets: list[tuple[str, Any]]) -> TurnInput:
    """The turn input with ``--attach``'s objects, within ``%config LashMagics.attach_max_bytes``
    / ``attach_turn_max_bytes`` (past one: a one-line error saying which to raise)."""
    limits = AttachmentLimits(max_bytes=m.attach_max_bytes,
                              max_turn_bytes=m.attach_turn_max_bytes)
    ti = TurnInput.text(prompt) if prompt else TurnInput.empty()
    try:
        for name, value in targets:
            ti = ti.attach(value, name=name, limits=limits)
    except InvalidTurnInput as err:
        if err.limit is None:
            raise
        trait = "attach_max_bytes" if err.limit == "max_bytes" else "attach_turn_max_bytes"
        fix = "attach a smaller one" if err.limit == "max_bytes" else "attach fewer"
        raise UsageError(f"{err.fact}; {fix} or raise the limit: "
                         f"%config LashMagics.{trait} = {err.size}") from None
    return ti


async def turn(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a, prompt = turn_args(m, argline, cell)
    say_replaced(a.replaced, m)
    turn_input = attached_input(m, prompt, a.attach) if a.attach else None
    b = await m.ctx.binding(a.session)
    refuse_read_only(b)
    if a.turn_id is not None:
        await refuse_a_stored_turn_id(b.session, a.turn_id)
    coro = run_turn(b.session, prompt, turn_id=a.turn_id, interval_s=m.live_interval_s,
                    system=a.system, prices=prices_for_display(m.prices, m.user_ns),
                    turn_input=turn_input)
    if a.background:
        task = asyncio.ensure_future(_keep(m, coro, a.out))
        m.ctx.background[f"turn-{len(m.ctx.background) + 1}"] = task
        return task if assigned else None  # a task's repr saved as Out reads "pending"
    return await _keep(m, coro, a.out) if assigned else _quiet(await _keep(m, coro, a.out))


def refuse_read_only(b: Any) -> None:
    """A session opened with ``--read-only`` takes no turn and no queued prompt: refused before
    anything runs (the store's own refusal came after a failed turn was drawn, and named the
    library's ``read_only=True``)."""
    if b.read_only:
        sid = b.session.session_id
        raise UsageError(f"session {sid!r} was opened with --read-only and takes no turns; to add "
                         f"turns, restart the kernel and run %lash open {sid} --store {b.store} "
                         "without --read-only (on a writable copy of the file if it is not "
                         "yours)")


async def refuse_a_stored_turn_id(session: Any, turn_id: str) -> None:
    """``--turn-id`` names a turn the store already holds for this session (a cell run again;
    turn ids stay taken across ``open --fresh``): the store would not take a second turn
    under it, so nothing is sent."""
    sid = session.session_id
    if any(r.turn_id == turn_id for r in await session.store.load_turns(sid)):
        raise UsageError(f"turn id {turn_id!r} is already used in session {sid!r} "
                         f"(%lash replay {turn_id} shows that turn); give a new --turn-id "
                         "or leave it out")


async def _keep(m: LashMagics, coro: Any, out: str | None) -> Any:
    try:
        result = await coro
    except TurnNotSaved as err:  # answered, not stored: -o and %lash last still have it
        kept_unsaved(m, err, out)
        raise
    m.ctx.last_result = result
    if out:
        m.user_ns[out] = result
    return result


def kept_unsaved(m: LashMagics, err: TurnNotSaved, out: str | None = None) -> None:
    """A turn answered and was not saved (ADR 181): ``%lash last`` and ``-o`` get its
    result; a wait the kernel's interrupt ended ends the cell as an interrupted one, in one
    line (ADR 167); else the caller raises ``err`` (one ``UsageError`` line)."""
    m.ctx.last_result = err.result
    if out:
        m.user_ns[out] = err.result
    if err.stopped_by == "kernel_interrupt":
        from .extension import TurnInterrupted

        raise TurnInterrupted(
            f"the kernel's interrupt ended the wait to save turn {err.turn_id!r}: it "
            f"answered but was NOT saved ({err.cause}); its answer is in the record "
            "above" + (f" and in {out}" if out else "") + "; the cells after it were "
            "not run") from None


def _quiet(_result: Any) -> None:
    return None


# the synchronous part of each verb: parse and check its arguments (``magics.check``)
ARGS = {
    "open": open_args,
    "turn": turn_args,
}
