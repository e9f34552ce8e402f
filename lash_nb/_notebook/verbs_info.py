"""``%lash`` verbs that read: tools, usage, sessions, graph, sql, replay, help."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import Markdown

from .parsing import interpolate, parse, parser
from .widgets.fold import outcome_label
from .widgets.tools import ToolCatalogWidget
from .widgets.turn import TurnWidget

if TYPE_CHECKING:
    from .magics import LashMagics

TOOLS = parser("tools", "The tool catalog with membership toggles.")
TOOLS.add_argument("--session", default=None)

USAGE = parser("usage", "Token usage as a DataFrame (computed in DuckDB), or a chart with --plot.")
USAGE.add_argument("--session", default=None)
USAGE.add_argument("--by", default=None, choices=("turn", "model", "source", "session", "day"))
USAGE.add_argument("--plot", action="store_true", help="a chart instead of a DataFrame")

SESSION_ONLY = parser("graph", "The active path of the session graph as a DataFrame.")
SESSION_ONLY.add_argument("--session", default=None)

REPLAY = parser("replay", "Re-render a committed turn from the store.")
REPLAY.add_argument("turn", nargs="?", default=None)
REPLAY.add_argument("--session", default=None)

HELP = """**%lash** verbs (`%load_ext lash_nb`)

| verb | what it does |
|---|---|
| `%lash open [SESSION] [--fresh] [--store PATH] [--provider P] [--model M] [--residency R] [--tools f,g]` | open a session and bind it |
| `%%lash [--session S] [-o VAR] [--background]` | the cell body is the prompt (`{var}` interpolation); live widget with Stop |
| `%lash turn PROMPT` / `r = %lash turn PROMPT` | the line form; assigned, it returns the TurnResult |
| `%lash enqueue PROMPT [--id K] [--delivery earliest\\|after-commit] [--slot exclusive\\|join] [--merge-key K]` | queue work |
| `%lash queue [--df]` | pending batches (widget with cancel / drain buttons) |
| `%lash drain [--all] [--background]` | run queued work now |
| `%lash stop` | cancel the running turns |
| `%lash tools` | tool catalog with membership toggles |
| `%lash usage [--by turn\\|model\\|source\\|session\\|day] [--plot]` | usage DataFrame (computed in DuckDB) or a chart |
| `%lash sessions` / `%lash graph` | stored sessions / the active path |
| `%lash sql QUERY` / `%%lash sql` | DuckDB SQL over the store, DataFrame out |
| `%lash replay [TURN]` | re-render a committed turn |

Defaults: `%config LashMagics.session|store|provider|model|residency|offline_delay_s|live_interval_s`
or `[tool.lash_nb]` in pyproject.toml."""


async def tools(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(TOOLS, argline)
    admin = (await m.ctx.binding(a.session)).session.tools()
    return ToolCatalogWidget(load=admin.all_tools, set_membership=admin.set_membership)


async def usage(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(USAGE, argline)
    b = await m.ctx.binding(a.session)
    if a.plot or a.by is not None:
        from .. import reports

        if a.plot:
            return reports.usage_chart(b.session, by=a.by or "turn")
        return reports.usage_frame(b.session, by=a.by)
    return b.session.usage_report().to_dataframe()  # one row per (source, model)


async def sessions(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    import pandas as pd

    parse(parser("sessions", "Stored sessions."), argline)
    b = await m.ctx.binding(None)
    metas = await b.core.list_sessions()
    cols = ["session_id", "provider_id", "model", "turn_index", "head_revision",
            "parent_session_id", "updated_at_ms"]
    return pd.DataFrame([{c: getattr(x, c) for c in cols} for x in metas], columns=cols)


async def graph(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    import pandas as pd

    a = parse(SESSION_ONLY, argline)
    rv = (await m.ctx.binding(a.session)).session.read_view()
    rows = [{
        "node_id": n.node_id, "parent_node_id": n.parent_node_id, "kind": n.kind,
        "role": n.role, "turn_id": n.turn_id,
        "text": (n.message.text() if n.message is not None else str(n.payload or ""))[:200],
    } for n in rv.nodes()]
    return pd.DataFrame(rows, columns=["node_id", "parent_node_id", "kind", "role", "turn_id", "text"])


async def sql(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    query = argline if cell is None else f"{argline}\n{cell}"
    query = interpolate(query.strip(), m.shell.user_ns)
    if not query:
        raise UsageError("no query; write %lash sql SELECT ... or a %%lash sql cell")
    b = await m.ctx.binding(None)
    run = getattr(b.core.store, "query", None)
    if run is None:
        raise UsageError(
            f"%lash sql needs a DuckDB store, the session uses {type(b.core.store).__name__}; "
            "open it with %lash open --store lash.duckdb"
        )
    try:
        return run(query)
    except Exception as err:  # a SQL mistake is the user's: one line, the cause kept
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"SQL error: {first}; tables are described in docs/store-schema.md") from err


async def replay(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = parse(REPLAY, argline)
    b = await m.ctx.binding(a.session)
    sid = b.session.session_id
    records = await b.session.store.load_turns(sid)
    if not records:
        raise UsageError(f"session {sid!r} has no committed turn yet; run %lash turn first")
    rec = next((r for r in records if r.turn_id == a.turn), None) if a.turn else records[-1]
    if rec is None:
        known = ", ".join(r.turn_id for r in records[-5:])
        raise UsageError(f"no turn {a.turn!r} in session {sid!r}; recent turns: {known}")
    events = await b.session.store.load_events(sid, rec.turn_id)
    w = TurnWidget(session_id=sid, turn_id=rec.turn_id)
    w.push_all(events)
    outcome = rec.result.get("outcome") if isinstance(rec.result, dict) else None
    w.finish(outcome=outcome_label(outcome) if outcome else f"{rec.outcome}: {rec.stop_reason}")
    return w


async def help_(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    return Markdown(HELP)
