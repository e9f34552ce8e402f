"""``%lash`` verbs that read: tools, usage, sessions, graph, sql, replay, help."""

from __future__ import annotations

import asyncio
import re
import shlex
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .._core.attachments import Attachment
from .._errors import QueryNotAllowed
from .._store.base import stores_blobs
from .card import Card
from .costs import prices_for_display, stored_turn_cost
from .parsing import given_name, interpolate, parse, parser
from .widgets.fold import outcome_label

if TYPE_CHECKING:
    from .magics import LashMagics

TOOLS = parser("tools", "The tool catalog with membership toggles.")
TOOLS.add_argument("--session", default=None)

USAGE = parser("usage", "Token usage as a DataFrame (computed in the store), or a chart with --plot.")
USAGE.add_argument("--session", default=None)
USAGE.add_argument("--by", default=None, choices=("turn", "model", "source", "session", "day"))
USAGE.add_argument("--plot", action="store_true", help="a chart instead of a DataFrame")
USAGE.add_argument("--cost", action="store_true",
                   help="cost and price_note columns (prices: %%config LashMagics.prices)")
USAGE.add_argument("--prices", default=None,
                   help="default, a CSV path or a notebook variable {model: {bucket: usd_per_million}}")

SESSION_ONLY = parser("graph", "The session graph as a tree (branches shown), or --df for a DataFrame.")
SESSION_ONLY.add_argument("--session", default=None)
SESSION_ONLY.add_argument("--df", action="store_true", help="one row per node instead of the tree")

SESSIONS = parser("sessions", "The sessions stored in the store of the session in use; "
                  "--delete ID --yes deletes one.")
SESSIONS.add_argument("--delete", default=None, metavar="ID", help="delete this session")
SESSIONS.add_argument("--yes", action="store_true", help="confirm --delete")

LAST = parser("last", "The result of the last turn run in this kernel, saved or not.")

REPLAY = parser("replay", "Re-render a committed turn from the store.")
REPLAY.add_argument("turn", nargs="?", default=None)
REPLAY.add_argument("--session", default=None)

BACKUP = parser("backup", "Copy the store of the session in use, whole, to a new DuckDB file.")
BACKUP.add_argument("dest", metavar="PATH")
BACKUP.add_argument("--session", default=None)
BACKUP.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")

# (verb, what it does): one markdown table row each
_VERBS = (
    (('`%lash open [SESSION] [--fresh] [--store PATH] [--provider P] [--model M] '
      '[--residency R] [--tools f,g \\| --no-tools] [--mode code [--share df,path]] '
      '[--read-only]`'),
     ("open a session and bind it (attaches the notebook's `@tool` functions, or the "
      '`--tools` named); without `--store`, in the store of the session in use (the '
      'configured store for the first open); `--mode code`: the model works in Python cells '
      'in a sandbox kernel, `--share` copies DataFrames or files into it; `--read-only`: '
      "read a DuckDB file you cannot write (history, `%lash sql`, usage; no turns); "
      "`{var}` in SESSION or PATH is a notebook variable")),
    ('`%%lash [--session S] [-o VAR] [--background] [--system TEXT] [--attach fig,df] [--raw]`',
     ('the cell body is the prompt (`{var}` interpolation, `\\{var}` for literal braces, '
      '`--raw` sends it as typed); '
      'live widget with Stop; `--attach` shows the model notebook objects or files')),
    ('`%lash turn PROMPT` / `r = %lash turn PROMPT`',
     'the line form; assigned, it returns the TurnResult'),
    (('`%lash enqueue [--id K] [--delivery earliest\\|after-commit] [--slot exclusive\\|join] '
      '[--merge-key K] [--attach a,b] [--raw] PROMPT`'),
     'queue work'),
    ('`%lash queue [--df]`',
     'pending batches (widget with cancel / drain buttons)'),
    ('`%lash drain [--all] [--background]`',
     'run queued work now, with N of M progress'),
    ('`%lash prompt [--set TEXT \\| --add TEXT [--slot S] [--title T] \\| --clear] [--raw]`',
     ('the rendered system prompt / set the session prompt layer (kept on reopen; a change '
      'says what changed in one line)')),
    ('`%lash stop`',
     'cancel the running turns'),
    ('`%lash wait`',
     ('wait until the background turns and drains have ended: the last cell of a notebook run '
      'by `jupyter nbconvert --execute` or papermill, so that their records are saved')),
    ('`%lash tools`',
     'tool catalog by source, with membership toggles'),
    (('`%lash mcp add NAME [--prefix P] [--approval ask] [--env VAR[=VALUE]] [--timeout S] '
      '[--max-output N] -- COMMAND ARGS` / `... --url URL`'),
     ('start an MCP server (stdio / streamable HTTP); its tools join the catalog; `--env` gives '
      'it a variable of the kernel (a stdio server gets only HOME, PATH and a few others); '
      '`--max-output`: characters of one result the model is sent (65,536)')),
    ('`%lash mcp list` / `%lash mcp log NAME` / `%lash mcp remove NAME`',
     ("the session's MCP servers / what one wrote to its stderr (the last lines, its secrets "
      "redacted) / stop one and drop its tools")),
    ('`%lash usage [--by turn\\|model\\|source\\|session\\|day] [--plot] [--cost [--prices P]]`',
     'usage DataFrame (computed in the store) or a chart; `--cost` adds US dollars and why a cost is n/a'),
    ('`%lash sessions` / `%lash graph [--df]`',
     ('the sessions stored in the store of the session in use / the session graph as a tree '
      'with its branches')),
    ('`%lash sessions --delete ID --yes`',
     'delete a stored session with its turns, usage and queued work (needs --yes)'),
    ('`%lash sql [--allow-files] QUERY` / `%%lash sql`',
     ('read-only SQL over the store, DataFrame out (`--allow-files`: `read_csv` and friends); '
      'shown, its first `sql_rows` rows (50) and how many it has; `df = %lash sql ...` holds '
      'every row')),
    ('`%lash replay [TURN]`',
     're-render a committed turn (`{r.turn_id}`: the id in a notebook variable)'),
    ('`%lash backup PATH [--overwrite]`',
     ('a whole copy of the DuckDB store, taken while turns and workers use it; also the '
      "rescue of a store file deleted or replaced while this kernel holds it (its data)")),
    ('`%lash last`',
     ('the result of the last turn this kernel ran (`r = %lash last`; `r.text`), also one '
      'left NOT saved; `r.tool_tracebacks`: the traceback of each tool call that raised')),
)
HELP = (
    '**%lash** verbs (`%load_ext lash_nb`)\n\n| verb | what it does |\n|---|---|' + "\n"
    + "".join(f"| {verb} | {what} |\n" for verb, what in _VERBS)
    + "\nDefaults: `%config LashMagics.session|store|provider|model|residency|offline_delay_s|"
    "live_interval_s|prices|attach_max_bytes|attach_turn_max_bytes|max_tool_output|"
    "commit_wait_s|sql_rows`\nor "
    "`[tool.lash_nb]` in pyproject.toml."
)


async def tools(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(TOOLS, argline)
    b = await m.ctx.binding(a.session, stored=True)
    admin = b.session.tools()
    if b.tool_names is None:  # discovery mode: @tool objects defined since open attach now
        known = {r["name"] for r in admin.all_tools() if not r["orphaned"]}
        for t in m.ctx.discover_tools():
            if t.name not in known:
                admin.add_provider(t)
                known.add(t.name)
    from .widgets.tools import ToolCatalogWidget  # anywidget loads with the first widget
    panel = ToolCatalogWidget(load=admin.all_tools, set_membership=admin.set_membership)
    if not panel.tools and not assigned:  # its table would be a bare header
        print(f"session {b.session.session_id!r} has no tools yet: a @tool function defined in "
              "the notebook joins when %lash tools runs again, an MCP server's tools with "
              "%lash mcp add")
    return panel


async def usage(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(USAGE, argline)
    b = await m.ctx.binding(a.session, stored=True)
    if a.plot and (a.cost or a.prices is not None):
        raise UsageError("%lash usage --plot draws tokens and --cost gives a cost table; use "
                         "one (df = %lash usage --cost, then df.plot.bar(x=..., y='cost'))")
    if a.cost or a.prices is not None:
        from .. import reports
        from .costs import resolve_prices

        prices = resolve_prices(a.prices if a.prices is not None else m.prices, m.user_ns)
        if prices is None:
            raise UsageError("--cost with prices 'none' has nothing to price; pass --prices default")
        return _told_if_empty(reports.usage_frame(b.session, by=a.by or "model", prices=prices),
                              b, assigned)
    if a.plot or a.by is not None:
        from .. import reports

        if a.plot:
            return reports.usage_chart(b.session, by=a.by or "turn")
        return _told_if_empty(reports.usage_frame(b.session, by=a.by), b, assigned)
    from .._reports.frames import estimated_usage_flags

    frame = b.session.usage_report().to_dataframe()  # one row per (source, model)
    flags = estimated_usage_flags(b.session)
    frame["estimated"] = [flags.get((str(s), str(m)), False)
                          for s, m in zip(frame["source"], frame["model"], strict=True)]
    return _told_if_empty(frame, b, assigned)


def _told_if_empty(frame: Any, b: Any, assigned: bool) -> Any:
    return told_if_empty(frame, assigned, f"no usage in session {b.session.session_id!r} yet: "
                         "a turn's tokens show here once it has run (%%lash, %lash turn)")


def told_if_empty(frame: Any, assigned: bool, line: str) -> Any:
    """A shown table with no rows says why above it, naming its session: a bare header read
    as a failure. Assigned (``df = %lash ...``), the empty frame is for code: no line."""
    if frame.empty and not assigned:
        print(line)
    return frame


async def sessions(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    import pandas as pd

    a = parse(SESSIONS, argline)
    if a.delete is not None:
        from .verbs_retention import delete_session

        name = given_name(a.delete, m.user_ns, option="--delete", example="old-run",
                          otherwise="leave --delete out to list the stored sessions")
        return await delete_session(m, name, yes=a.yes)
    if a.yes:
        raise UsageError("%lash sessions: --yes confirms --delete ID; give both")
    b = await m.ctx.binding(None)
    from .._reports.frames import utc_from_ms

    metas = await b.core.list_sessions()
    cols = ["session_id", "provider_id", "model", "turn_index", "head_revision",
            "parent_session_id"]
    frame = pd.DataFrame([{c: getattr(x, c) for c in cols} for x in metas], columns=cols)
    frame["updated_at"] = utc_from_ms([x.updated_at_ms for x in metas])
    from .._core.secrets import scrub_urls

    where = "memory" if b.store == ":memory:" else repr(scrub_urls(b.store))  # a DSN's password
    return told_if_empty(frame, assigned, f"no session is stored in {where} yet: a session is "
                         "stored with its first turn (%%lash, %lash turn); the session in use "
                         f"is {b.session.session_id!r}")


async def graph(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    from .. import reports
    from .._reports.graph_tree import GraphTree

    a = parse(SESSION_ONLY, argline)
    b = await m.ctx.binding(a.session, stored=True)
    frame = reports.graph_frame(b.session)
    if a.df:
        return told_if_empty(frame, assigned, f"the graph of session {b.session.session_id!r} "
                             "has no nodes yet: a turn's messages show here once it has run")
    tree = GraphTree.from_frame(frame)  # names the session from its rows: none in a new one
    return GraphTree(b.session.session_id, tree.lines, tree.nodes, tree.branch_points, frame)


def sql_args(m: LashMagics, argline: str, cell: str | None) -> tuple[str, bool]:
    query = argline if cell is None else f"{argline}\n{cell}"
    query = interpolate(query.strip(), m.user_ns, where="the query")
    allow_files = query.startswith("--allow-files")
    if allow_files:
        query = query[len("--allow-files"):].strip()
    if not query:
        raise UsageError("no query; write %lash sql SELECT ... or a %%lash sql cell")
    from .._store.user_sql import check, statement_count

    n = statement_count(query)
    if n is not None and n > 1:  # only the last one's rows would show (ADR 0149)
        try:  # a write among them is named as the store names it
            check(query, allow_files=True)
        except QueryNotAllowed as err:
            raise UsageError(str(err)) from err
        raise UsageError(
            f"%lash sql runs one statement and this query has {n}; nothing ran: write one "
            "%lash sql per statement (or join them with UNION ALL, or a WITH), or run each "
            "with store.query()")
    return query, allow_files


async def sql(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    query, allow_files = sql_args(m, argline, cell)
    b = await m.ctx.binding(None)
    run = getattr(b.core.store, "query", None)
    if run is None:
        raise UsageError(
            f"%lash sql needs a DuckDB store, the session uses {type(b.core.store).__name__}; "
            "open it with %lash open --store lash.duckdb"
        )
    from .._reports.frames import shown_text, utc_times

    run_async = getattr(b.core.store, "query_async", None)
    head = getattr(b.core.store, "query_head_async", None)
    cap = 0 if assigned else m.sql_rows  # assigned, or sql_rows = 0: every row
    total = None
    try:
        if run_async is None:
            frame = run(query, allow_files=True) if allow_files else run(query)
        elif cap and head is not None:  # shown: the first rows, the rest only counted
            frame, total = await head(query, cap, allow_files=allow_files)
        else:  # awaited: the kernel's interrupt reaches it and stops the query
            frame = await run_async(query, allow_files=allow_files)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the cell ends as an interrupted cell does, in one line
        raise QueryInterrupted("the kernel's interrupt stopped the query (nothing in the store "
                               "changed); the rest of the cell was not run") from None
    except QueryNotAllowed as err:  # a write or a file read: the store's own one line
        raise UsageError(str(err)) from err
    except Exception as err:  # a SQL mistake is the user's: one line, the cause kept
        raise UsageError(f"SQL error: {_sql_error_line(err)}") from err
    if cap and total is None and len(frame) > cap:  # a store that cannot count first
        frame, total = frame.head(cap), len(frame)
    if total is not None and total > len(frame):
        print(f"lash: showing the first {len(frame)} of {total:,} rows; to get them all "
              "assign it: df = %lash sql ... (or set %config LashMagics.sql_rows = 0)")
    frame = utc_times(frame)  # the store keeps UTC: every time says so (ADR 173)
    return frame if assigned else shown_text(frame)  # shown: no escapes (ADR 211)


class QueryInterrupted(KeyboardInterrupt):
    """The kernel's interrupt stopped a ``%lash sql`` query; shown in one line."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


def _sql_error_line(err: Exception) -> str:
    """DuckDB's first line, with its 'Candidate bindings' / 'Did you mean' line (a typo's
    answer) and, for a name it does not know, how to list what the store has."""
    lines = [line.strip() for line in str(err).strip().splitlines()]
    if not lines or not lines[0]:
        return type(err).__name__
    hints = [line for line in lines[1:] if line.startswith(("Candidate bindings", "Did you mean"))]
    if lines[0].startswith(("Binder Error", "Catalog Error")):
        hints.append("SHOW TABLES lists the tables, DESCRIBE <table> its columns")
    return "; ".join([lines[0].rstrip("!"), *hints])


async def last(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    """``r = %lash last``: the ``TurnResult`` of the last turn this kernel ran (a cell, a
    drain), also one whose final commit the store refused (ADR 181: NOT saved; the store
    does not have it, so ``%lash replay`` cannot show it)."""
    parse(LAST, argline)
    if m.ctx.last_result is None:
        raise UsageError("no turn has run in this kernel yet; run a %%lash cell first "
                         "(%lash replay shows a stored turn of an earlier kernel)")
    return m.ctx.last_result


async def replay(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(REPLAY, argline)
    if a.turn:  # `%lash replay {r.turn_id}`: a notebook variable, as in a prompt
        a.turn = interpolate(a.turn, m.user_ns, where="the turn id")
    b = await m.ctx.binding(a.session, stored=True)
    sid = b.session.session_id
    records = await b.session.store.load_turns(sid)
    if not records:
        raise UsageError(f"session {sid!r} has no committed turn yet; run %lash turn first")
    rec = next((r for r in records if r.turn_id == a.turn), None) if a.turn else records[-1]
    if rec is None:
        known = ", ".join(r.turn_id for r in records[-5:])
        raise UsageError(f"no turn {a.turn!r} in session {sid!r}; recent turns: {known}")
    events = await b.session.store.load_events(sid, rec.turn_id)
    from .widgets.tool_pictures import read_thumbnails, tool_image_ids

    await read_thumbnails(b.session.store, events)  # its tools' pictures, from the blobs
    from .widgets.attachments import attachment_cards
    from .widgets.fold import stopped_by_kernel
    from .widgets.turn import TurnWidget

    w = TurnWidget(session_id=sid, turn_id=rec.turn_id, prompt=turn_prompt(b.session, rec.turn_id),
                   attachments=attachment_cards(await turn_attachments(
                       b.session, rec.turn_id, not_ids=tool_image_ids(events))))
    w.push_all(events)
    stopped_by_kernel(w.fold, rec.result)  # what the cut-turn note could not say (ADR 217)
    outcome = rec.result.get("outcome") if isinstance(rec.result, dict) else None
    if isinstance(rec.result, dict):  # the footer's cost, as the turn showed it when it ended
        w.cost = stored_turn_cost(rec.result, prices_for_display(m.prices, m.user_ns))
    lost = isinstance(rec.result, dict) and any(  # its process died mid-turn (ADR 211)
        isinstance(e, dict) and e.get("code") == "process_lost"
        for e in rec.result.get("errors") or ())
    w.finish(outcome=outcome_label(outcome) if outcome else f"{rec.outcome}: {rec.stop_reason}",
             elapsed_ms=float(rec.duration_ms or 0.0), lost=lost)
    return w


async def turn_attachments(session: Any, turn_id: str,
                           not_ids: frozenset[str] = frozenset()) -> list[Attachment]:
    """The attachments of the turn's own user message, with their bytes read from the store
    (for the thumbnails; a ref whose bytes are gone is shown by its caption). ``not_ids``:
    the pictures its tools returned, sent in a user message too, shown under their rows."""
    refs = [p.attachment for n in session.read_view().nodes()
            if n.turn_id == turn_id and (m := n.message) is not None and m.role.value == "user"
            and m.origin is None for p in m.parts
            if p.attachment is not None and p.attachment.id not in not_ids]
    store = session.store
    data = await store.get_blobs([r.id for r in refs]) if refs and stores_blobs(store) else {}
    return [Attachment(r, data.get(r.id)) for r in refs]


def turn_prompt(session: Any, turn_id: str) -> str:
    """The text of the turn's own user message (the prompt), '' when the graph lacks it."""
    for n in session.read_view().nodes():
        m = n.message
        if n.turn_id == turn_id and m is not None and m.role.value == "user" and m.origin is None:
            text: str = m.text()
            return text
    return ""


async def backup(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    """``%lash backup PATH``: ``DuckDBStore.backup`` of the session's store (ADR 175, 235)."""
    a = parse(BACKUP, argline)
    b = await m.ctx.binding(a.session, stored=True, replaced_ok=True)
    store = b.core.store
    if not hasattr(store, "backup"):
        raise UsageError(f"{b.store!r} is not a DuckDB file; back a PostgreSQL store up with "
                         "pg_dump")
    rescue = bool(getattr(store, "file_replaced", False))
    size = await store.backup(a.dest, overwrite=a.overwrite)
    what = ("the data of the file this kernel held (deleted or replaced at its path)"
            if rescue else f"the store {b.store}")
    print(f"lash: copied {what} to {a.dest} ({size:,} bytes); open it with "
          f"%lash open {shlex.quote(b.session.session_id)} --store {shlex.quote(a.dest)}")
    return None


async def help_(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    """``%lash help`` (every verb), ``%lash help VERB`` / ``%lash VERB --help`` (its rows)."""
    verb = argline.split(maxsplit=1)[0] if argline.strip() else ""
    rows = [(forms, what) for forms, what in _VERBS if _names(forms, verb)] if verb else []
    if not rows:
        return Card(HELP)
    return Card(f"**%lash {verb}**\n\n| verb | what it does |\n|---|---|\n"
                + "".join(f"| {forms} | {what} |\n" for forms, what in rows)
                + "\n`%lash help` lists every verb.")


def _names(forms: str, verb: str) -> bool:
    """The help row's forms are those of ``verb`` (a ``%%lash`` cell is a turn)."""
    if verb == "turn" and forms.startswith("`%%lash ["):
        return True
    return re.search(rf"`%lash {re.escape(verb)}(?![\w-])", forms) is not None


# the synchronous part of each verb: parse and check its arguments (``magics.check``)
ARGS = {
    "tools": lambda m, line, cell: parse(TOOLS, line),
    "usage": lambda m, line, cell: parse(USAGE, line),
    "sessions": lambda m, line, cell: parse(SESSIONS, line),
    "graph": lambda m, line, cell: parse(SESSION_ONLY, line),
    "sql": sql_args,
    "replay": lambda m, line, cell: parse(REPLAY, line),
    "last": lambda m, line, cell: parse(LAST, line),
    "backup": lambda m, line, cell: parse(BACKUP, line),
    "help": lambda m, line, cell: None,
}
