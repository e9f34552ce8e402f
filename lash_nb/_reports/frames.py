"""Report frames: usage, turns, model calls, tool calls, queued work and the session graph.

Each function takes a ``source``: a ``LashSession`` (its store, narrowed to the session), a
``LashCore`` (its store), a store (memory, DuckDB or PostgreSQL), a path to a DuckDB store
file, or a :class:`LashTrace` (``read_lash_trace(path)``). The work happens in the database
(see ``sql.py``); the columns, dtypes and values below are the contract on every store, also
for empty results. Timestamps are tz-aware UTC
(``datetime64[us, UTC]``): the store keeps UTC, and a naive column would be read as local time.
Text columns (``STR``) have the installed pandas' default string dtype: ``str`` on pandas 3,
``object`` (Python ``str``, missing values ``None``) on pandas 2.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any, Literal

from .._core.usage import BUCKETS
from .._errors import LashWarning
from . import sql
from .prices import (
    combine,
    load_prices,
    price_sources,
    prices_sql,
    row_cost_sql,
    row_note_sql,
    unpriced_by_design,
)
from .tables import open_tables, session_filter

UsageBy = Literal["turn", "model", "source", "session", "day"]


def _text_dtype() -> str:
    # pandas 2 keeps text as object; astype("str") there would also turn None into "None"
    return "str" if int(version("pandas").split(".")[0]) >= 3 else "object"


STR, INT, FLOAT, BOOL, TIME = _text_dtype(), "int64", "float64", "bool", "datetime64[us, UTC]"

_USAGE_TOKENS = {**dict.fromkeys(BUCKETS, INT), "total_tokens": INT, "turns": INT, "estimated": BOOL}
_TURN_DETAIL = {"llm_calls": INT, "started_at": TIME, "duration_ms": FLOAT}
USAGE_KEYS: dict[str, dict[str, str]] = {
    "turn": {"session_id": STR, "turn_id": STR, "source": STR, "model": STR},
    "model": {"model": STR},
    "source": {"source": STR},
    "session": {"session_id": STR},
    "day": {"day": TIME},
}
TURNS_COLUMNS = {
    "session_id": STR, "turn_id": STR, "status": STR, "outcome": STR, "stop_reason": STR,
    "started_at": TIME, "duration_ms": FLOAT, "llm_calls": INT, "tool_calls": INT,
    "failed_tool_calls": INT, "cancelled_tool_calls": INT, "total_tokens": INT, "error": STR,
    "cancelled_by": STR, "cancel_reason": STR,
}
TOOL_CALLS_COLUMNS = {
    "session_id": STR, "turn_id": STR, "call_id": STR, "name": STR, "args_bytes": INT,
    "output_bytes": INT, "success": BOOL, "interrupted": BOOL, "status": STR,
    "started_at": TIME, "duration_ms": FLOAT, "approval": STR, "approved_by": STR,
    "printed": STR,
}
LLM_CALLS_COLUMNS = {
    "session_id": STR, "turn_id": STR, "call_id": STR, "model": STR,
    "protocol_iteration": INT, "attempt": INT, "started_at": TIME, "duration_ms": FLOAT,
    "outcome": STR, "served_model": STR, "error_kind": STR, "error": STR,
    **dict.fromkeys(BUCKETS, INT), "total_tokens": INT, "estimated": BOOL,
}
QUEUE_COLUMNS = {
    "session_id": STR, "batch_id": STR, "state": STR, "delivery_policy": STR,
    "slot_policy": STR, "source_key": STR, "enqueue_seq": INT, "enqueued_at": TIME,
    "claimed_at": TIME, "finished_at": TIME, "age_ms": FLOAT, "wait_ms": FLOAT, "turn_id": STR,
    "attempts": INT, "error": STR,
}
GRAPH_COLUMNS = {
    "session_id": STR, "seq": INT, "node_id": STR, "parent_node_id": STR, "kind": STR,
    "role": STR, "turn_id": STR, "created_at": TIME, "text": STR, "on_active_path": BOOL,
}


def usage_columns(by: str = "turn", *, priced: bool = False) -> dict[str, str]:
    """The documented columns (and dtypes) of ``usage_frame(source, by=by)``."""
    if by not in USAGE_KEYS:
        raise ValueError(f"by must be one of {', '.join(USAGE_KEYS)}; got {by!r}")
    if by == "turn":
        cols = {**USAGE_KEYS[by], **_USAGE_TOKENS, **_TURN_DETAIL}
    else:
        cols = {**USAGE_KEYS[by], **_USAGE_TOKENS, "started_at": TIME}
    if priced:
        cols["cost"] = FLOAT
        cols["price_note"] = STR
    return cols


def usage_frame(
    source: Any,
    by: UsageBy = "turn",
    prices: Any = None,
) -> Any:
    """Token usage grouped ``by`` turn, model, source, session or day.

    Every frame has the group key, then input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_output_tokens (a part of
    output), total_tokens (input + output + cache read + cache write; reasoning excluded, as
    lash), turns and estimated (True when some of the group's tokens are an estimate for a
    stream cut by a cancel that reported no usage); with ``prices`` also cost in US dollars
    and price_note: NaN cost and a note saying why where a model or a used bucket has no
    price, or a tiered price's first tier was reached. ``prices`` is a mapping
    ``{model: {bucket: usd_per_million}}``, a CSV path, ``"default"`` (the bundled snapshot of
    genai-prices, dated) or a list of these, later ones overriding earlier ones per model.

    - ``by="turn"``: one row per turn and ledger (source, model), keyed session_id, turn_id,
      source, model; plus llm_calls (logical model calls of that turn and model, ``turn``
      source only), started_at and duration_ms of the turn.
    - ``by="model" | "source" | "session" | "day"``: keyed model, source, session_id or day
      (UTC); turns counts the group's turn usage entries (one per turn and (source, model),
      so the number of turns when one source is present); started_at is when the group's
      first usage was recorded. These roll-ups read only the usage table, in one pass.

    A session's usage includes what its tools' child sessions spent, as ``child:<id>``
    sources (lash ``ChildUsage``); a store-wide ``model`` / ``session`` / ``day`` roll-up
    counts those tokens once, at the child that spent them (ADR 0045).

    Zero-total usage deltas are left out, as the ledger does, so the token columns sum to
    ``session.usage_report().usage``. ``usage_columns(by)`` gives the columns and dtypes.
    """
    cols = usage_columns(by, priced=prices is not None)
    if prices is not None:  # a bad table fails before the store is opened
        for one in price_sources(prices):
            if not (isinstance(one, str) and one == "default"):
                load_prices(one)
    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        values: str | None = None
        price_params: dict[str, Any] = {}
        cost, note = "NULL", "NULL"  # unpriced: the SQL has no cost columns
        if prices is not None:
            table, tiers = combine(prices, lambda: _used_models(tables, sid, params))
            values, price_params = prices_sql(table, tiers)
            cost, note = row_cost_sql("u", "p"), row_note_sql("u", "p")
        if by in ("model", "session", "day") and tables.session_id is None:
            # a child's tokens are rows of the child and rolled-up rows of its parent
            # (children.py): a store-wide sum counts them once, where they were spent.
            # left(): DuckDB ran starts_with() per row, ~15% of a 200,000-row roll-up
            rollup_sid = sid + " AND left(u.source, 6) <> 'child:'"
        else:
            rollup_sid = sid
        text = (sql.usage_by_turn(sid, values, cost, note) if by == "turn"
                else sql.usage_rollup(by, rollup_sid, values, cost, note))
        frame = tables.query(text, {**params, **price_params}, cols)
        if values is not None:
            missing = tables.query(sql.unpriced_models(sid, values), {**params, **price_params})
            unknown = sorted(m for m in set(missing["model"].astype(str))
                             if unpriced_by_design(m) is None)
            if unknown:  # the offline provider's model has no price by design: its note says so
                names = ", ".join(unknown)
                warnings.warn(
                    f"no price for model(s) {names}; their cost is NaN (add them to prices, "
                    'e.g. prices=["default", {model: {...}}])',
                    LashWarning,
                    stacklevel=2,
                )
    return frame


def _used_models(tables: Any, sid: str, params: Mapping[str, Any]) -> list[str]:
    frame = tables.query(sql.used_models(sid), params)
    return [str(m) for m in frame["model"] if m is not None]


def estimated_usage_flags(source: Any) -> dict[tuple[str, str], bool]:
    """``{(source, model): True}`` for the ledger rows that hold estimated tokens (a stream
    cut by a cancel that reported no usage); the key of the session usage report's rows."""
    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        frame = tables.query(sql.estimated_flags(sid), params)
    return {(str(r["source"]), str(r["model"])): bool(r["estimated"])
            for r in frame.to_dict("records")}


def turns_frame(source: Any) -> Any:
    """One row per turn: status (committed | open), outcome, stop_reason, started_at,
    duration_ms, llm_calls, tool_calls, failed_tool_calls (raised or refused; cancelled ones
    are not failures), cancelled_tool_calls, total_tokens, error (the first error message of
    a stopped turn), cancelled_by / cancel_reason (who stopped a cancelled turn, and why)."""
    return _simple(source, sql.turns, TURNS_COLUMNS)


def tool_calls_frame(source: Any) -> Any:
    """One row per tool call: name, args_bytes / output_bytes (size of the JSON),
    success, interrupted, status (lash's success | failure | cancelled), started_at,
    duration_ms (for a cancelled call: how long it ran until the cancel), approval
    (``approved`` | ``denied`` | ``cancelled``; empty when the call ran under ``always``)
    and approved_by (``user``, ``api``, ``policy``, ``worker`` or a cancel's origin), printed
    (what the call printed while it ran, as ``tool_calls.printed`` holds it: bounded like its
    output, keys taken out; missing when it printed nothing, ADR 197 / 210)."""
    from .trace import LashTrace

    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        frame = tables.query(sql.tool_calls(sid, tables.dialect, printed=_has_printed(tables)),
                             params)
        # a lash trace has no approvals; elsewhere they live in the turn records
        turns = None if isinstance(source, LashTrace) else tables.query(
            sql.approved_turns(sid), params)
    if "args_json" in frame.columns:  # PostgreSQL: sized here, as lash_nb wrote the JSON
        frame = frame.assign(args_bytes=[json_size(t) for t in frame["args_json"]],
                             output_bytes=[json_size(t) for t in frame["output_json"]])
    decided = _approvals(turns)
    keys = list(zip(frame["session_id"], frame["turn_id"], frame["call_id"], strict=True))
    frame = frame.assign(approval=[decided.get(k, (None, None))[0] for k in keys],
                         approved_by=[decided.get(k, (None, None))[1] for k in keys])
    return conform(frame, TOOL_CALLS_COLUMNS)


def _has_printed(tables: Any) -> bool:
    """Whether ``tool_calls`` has its ``printed`` column: not in a DuckDB file written before
    it (ADR 197) and opened read-only, which cannot add it; every other open adds it."""
    if not getattr(getattr(tables, "store", None), "read_only", False):
        return True
    found = tables.query("SELECT count(*) AS n FROM information_schema.columns "
                         "WHERE table_name = 'tool_calls' AND column_name = 'printed'")
    return bool(int(found["n"].iloc[0]))


def _approvals(turns: Any) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(session, turn, call) -> (decision, by) from the turn records that hold approvals."""
    import json

    out: dict[tuple[str, str, str], tuple[str, str]] = {}
    if turns is None:
        return out
    for sid, tid, text in zip(turns["session_id"], turns["turn_id"], turns["result"], strict=True):
        try:
            calls = json.loads(text).get("tool_calls") or ()
        except (TypeError, ValueError, AttributeError):
            continue
        for c in calls:
            a = c.get("approval") if isinstance(c, Mapping) else None
            if isinstance(a, Mapping):
                out[(sid, tid, str(c.get("call_id")))] = (str(a.get("decision")), str(a.get("by")))
    return out


def llm_calls_frame(source: Any) -> Any:
    """One row per model call attempt with its outcome and usage (zero when it reported none;
    ``estimated`` when an attempt cut by a cancel reported none and its usage was estimated)."""
    return _simple(source, sql.llm_calls, LLM_CALLS_COLUMNS)


def graph_frame(source: Any) -> Any:
    """The session graph: one row per node; ``parent_node_id`` is the edge to its parent and
    ``on_active_path`` marks the leaf's path (the conversation the model sees). ``text`` is
    the node's parts, first 200 characters: a tool call reads ``call NAME ARGS``, a result
    ``NAME returned: OUTPUT`` (``failed:`` for an error), text a stop cut ``stopped: ...``."""
    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        return tables.query(sql.graph(sid, tables.dialect), params, GRAPH_COLUMNS)


def queue_frame(source: Any, *, finished_limit: int = 100, now_ms: int | None = None) -> Any:
    """Queued work: pending, claimed and failed batches plus the ``finished_limit`` most
    recently finished (completed | cancelled) ones, with policies, enqueue / claim / finish
    times, ``age_ms`` (enqueue to finish, or to now while waiting) and ``wait_ms`` (enqueue to
    claim). ``state`` ``failed``: parked after ``max_batch_attempts`` failed claims
    (``finished_at`` is when); ``attempts`` counts claims that did not complete it and
    ``error`` is the last one's error (both empty for finished batches).
    """
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        return tables.query(
            sql.queue(sid), {**params, "now": now, "finished_limit": int(finished_limit)},
            QUEUE_COLUMNS,
        )


def _simple(source: Any, build: Any, cols: dict[str, str]) -> Any:
    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        return tables.query(build(sid), params, cols)


def json_size(text: Any) -> int:
    """Bytes of a JSON value in the compact form the stores write (``rows.dumps``: no spaces,
    non-ASCII escaped); 0 for NULL."""
    import json

    from .._store.duckdb.rows import dumps

    if text is None or (isinstance(text, float) and text != text):
        return 0
    return len(dumps(json.loads(text)).encode("utf-8"))


_DTYPE_NAMES: dict[Any, str] = {}  # dtype -> str(dtype): a numpy dtype's str() is ~2 us


def _dtype_name(dtype: Any) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = str(dtype)
        if len(_DTYPE_NAMES) < 64:  # a handful in practice; never unbounded
            _DTYPE_NAMES[dtype] = name
    return name


def arrow_frame(table: Any, cols: Mapping[str, str]) -> Any:
    """``conform`` of an Arrow table's frame (naive timestamps UTC, ``utc_frame``). When the
    Arrow schema already says every column comes out with its documented name and dtype
    (the report SQL casts for that), the pandas-side check is skipped: it reads the frame's
    dtypes (~0.1-0.2 ms a call: a Series built, pandas code run cold between queries), ~3%
    of a 200,000-row roll-up; the schema is read in a few microseconds."""
    from .._store.duckdb.user_query import utc_frame

    frame = utc_frame(table)
    return frame if _as_documented(table, cols) else conform(frame, cols)


@functools.cache
def _arrow_types() -> dict[str, tuple[tuple[Any, ...], bool]]:
    """dtype name -> (the Arrow types pandas turns into it in ``utc_frame``, nulls allowed).
    int64 and bool columns with a null come out float64 / object: nulls not allowed. Text
    only on pandas 3, where pyarrow turns Arrow text into ``str`` whatever the options say
    (pandas 2's ``future.infer_string`` may change it at any time): checked once here."""
    import pandas as pd
    import pyarrow as pa

    out: dict[str, tuple[tuple[Any, ...], bool]] = {
        INT: ((pa.int64(),), False), FLOAT: ((pa.float64(),), True),
        BOOL: ((pa.bool_(),), False), TIME: ((pa.timestamp("us"),), True),
    }
    texts = (pa.string(), pa.large_string())
    probe = pa.table({"t": pa.array(["x", None], pa.string())}).to_pandas()["t"].dtype
    if int(pd.__version__.split(".")[0]) >= 3 and str(probe) == STR:
        out[STR] = (texts, True)
    return out


def _as_documented(table: Any, cols: Mapping[str, str]) -> bool:
    schema = table.schema
    if schema.names != list(cols):
        return False
    types = _arrow_types()
    for i, (field, want) in enumerate(zip(schema, cols.values(), strict=True)):
        known = types.get(want)
        if known is None or field.type not in known[0]:
            return False
        if not known[1] and table.column(i).null_count:
            return False
    return True


def conform(frame: Any, cols: Mapping[str, str]) -> Any:
    """The documented columns in order, cast only where DuckDB's dtype differs."""
    import pandas as pd

    if frame.shape[1] == 0:
        frame = pd.DataFrame({c: pd.Series([], dtype=d) for c, d in cols.items()})
    names = list(cols)
    if frame.columns.tolist() != names:  # a copy only when the columns are not already so
        frame = frame[names]
    have = map(_dtype_name, frame.dtypes.tolist())
    casts = {c: d for (c, d), h in zip(cols.items(), have, strict=True) if h != d}
    if not casts:  # the usual case: the frame came out of Arrow as documented
        return frame
    for c in [c for c, d in casts.items() if d == TIME]:  # naive UTC -> tz-aware UTC
        col = frame[c]
        if str(col.dtype).startswith("datetime64") and getattr(col.dt, "tz", None) is None:
            frame = frame.assign(**{c: col.astype("datetime64[us]").dt.tz_localize("UTC")})
        else:
            frame = frame.assign(**{c: pd.to_datetime(col, utc=True).astype(TIME)})
        del casts[c]
    return frame.astype(casts) if casts else frame


def utc_from_ms(values: Any) -> Any:
    """Epoch milliseconds (a sequence, None allowed) -> a tz-aware UTC datetime Series."""
    import pandas as pd

    return pd.Series(pd.to_datetime(pd.Series(values, dtype="float64"), unit="ms", utc=True)
                     .astype(TIME))


def utc_times(frame: Any) -> Any:
    """``%lash sql``'s frame with every timestamp column labelled UTC (ADR 173): a naive one
    holds the store's UTC wall time and is localized as UTC; a zoned one (a TIMESTAMPTZ,
    given in the connection's time zone) is converted to UTC. Other columns are untouched."""
    import pandas as pd

    for name in frame.columns.unique():
        col = frame[name]
        if isinstance(col, pd.DataFrame):  # duplicate names: each column by position
            for i in [j for j, n in enumerate(frame.columns) if n == name]:
                frame.isetitem(i, _utc(frame.iloc[:, i]))
            continue
        fixed = _utc(col)
        if fixed is not col:
            frame[name] = fixed
    return frame


NAME_COLUMNS = ("session_id", "parent_session_id")


def shown_names(frame: Any) -> Any:
    """A frame to show with its session names as the session card shows them
    (``shown_name``: a name holding a bidi override or a control character, stored before
    ADR 215 refused new ones, as its escaped ``repr``; ADR 219); the others as they are."""
    from .._core.text import shown_name

    for i, column in enumerate(frame.columns):
        if column not in NAME_COLUMNS:
            continue
        col = frame.iloc[:, i]
        if col.dtype != object and not str(col.dtype).startswith("str"):
            continue
        if all(not isinstance(v, str) or v.isprintable() for v in col):
            continue
        frame.isetitem(i, col.map(lambda v: shown_name(v) if isinstance(v, str) else v,
                                  na_action="ignore").astype(col.dtype))
    return frame


def shown_text(frame: Any) -> Any:
    """A frame to show (a bare ``%lash sql``): its text cells without terminal escapes,
    control characters or bidi controls, each line as a terminal shows it (a carriage
    return writes over the line), as the live widget and the record show outside text
    (``_core.visible``, ADR 135, 142, 211, 219); a frame with none comes back as it is.
    Only what is shown: ``df = %lash sql ...`` and the store keep the text as it came."""
    import pandas as pd

    from .._core.visible import as_a_terminal_shows, visible

    def clean(v: Any) -> Any:
        return as_a_terminal_shows(visible(v)) if isinstance(v, str) else v

    shown_names(frame)  # escaped, as the card shows them, before visible() drops a control
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
            continue
        fixed = col.map(clean, na_action="ignore")
        if not fixed.equals(col):
            frame.isetitem(i, fixed.astype(col.dtype))
    return frame


def _utc(col: Any) -> Any:
    import pandas as pd

    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return col if str(dtype.tz) == "UTC" else col.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(dtype):
        return col.dt.tz_localize("UTC")
    return col
