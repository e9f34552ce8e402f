"""Every public report, and the ``%lash`` verbs that read the store, give the same frames on
the memory, DuckDB and PostgreSQL stores: the same columns, dtypes (timestamps tz-aware UTC)
and values. The expected values below are written by hand from the scripted model's usage.

The user's situation: a team starts on a DuckDB file, moves to PostgreSQL for its workers,
and the notebook that analysed usage yesterday must still run, and say the same, today.

One scenario per store (built once per store, then read by every test):

- session ``s1`` (model ``m-test``, tool ``weather``):
  - ``t1`` "weather in Paris?": a tool call (usage 100 in, 10 out, 20 cache read, 4
    reasoning), the tool answers "sunny é", then the answer (130 in, 7 out, 5 cache write);
  - ``t2`` "stop here": the provider reports 40 input tokens, streams "partial ", hangs and is
    stopped (billed the 40 reported tokens, not an estimate);
  - queued batch ``k1`` "and tomorrow?" drained as a turn (150 in, 3 out, 100 cache read);
    ``k2`` enqueued and cancelled; ``k3`` (earliest / join) left pending.
- session ``s2`` (no tools): ``e1`` "count to five please" (20 characters) on model
  ``m-small``, streams "started " (8 characters) with no usage and is stopped: estimated
  ceil(20 / 4) = 5 in, ceil(8 / 4) = 2 out.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from lash_nb import LashCore, reports, tool
from lash_nb._core.usage import TokenUsage
from lash_nb._reports.frames import estimated_usage_flags
from lash_nb.providers import (
    Completed,
    FunctionProvider,
    LlmPart,
    LlmResponse,
    TerminalReason,
    TextDelta,
    UsageReported,
)

STORES = ["memory", "duckdb", "postgres"]
# the PostgreSQL cases carry the ``postgres`` marker (they skip when no server can start)
STORE_PARAMS = ["memory", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
UTC = "datetime64[us, UTC]"
NOW_MS = 4_000_000_000_000  # the "now" given to queue_frame: age of a pending batch is fixed
BUCKETS = ["input_tokens", "output_tokens", "cache_read_input_tokens",
           "cache_write_input_tokens", "reasoning_output_tokens"]
PRICES = {"m-test": {"input_tokens": 1.0, "output_tokens": 2.0,
                     "cache_read_input_tokens": 0.5, "cache_write_input_tokens": 4.0}}


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny é"


async def _model(request):
    last = request.messages[-1]
    if last.parts and last.parts[-1].kind.value == "tool_result":
        return LlmResponse(parts=(LlmPart.text_part("It is sunny."),),
                           usage=TokenUsage(130, 7, 0, 5, 0))
    text = last.text()
    if text == "weather in Paris?":
        return LlmResponse(parts=(LlmPart.tool_call("call-w1", "weather", '{"city": "Paris"}'),),
                           usage=TokenUsage(100, 10, 20, 0, 4),
                           terminal_reason=TerminalReason.TOOL_USE)
    if text == "and tomorrow?":
        return LlmResponse(parts=(LlmPart.text_part("Cloudy."),),
                           usage=TokenUsage(150, 3, 100, 0, 0))
    if text == "stop here":
        return _reports_then_hangs()
    raise AssertionError(f"unscripted prompt {text!r}")


async def _reports_then_hangs():
    yield UsageReported(TokenUsage(input_tokens=40))
    yield TextDelta("partial ")
    await asyncio.sleep(3600)
    yield Completed(LlmResponse())


async def _silent_then_hangs(request):
    yield TextDelta("started ")
    await asyncio.sleep(3600)
    yield Completed(LlmResponse())


async def _until_prose(session) -> None:
    cursor = session.observe().current_observation().cursor
    async for ev in session.observe().subscribe_from_cursor(cursor):
        if getattr(ev, "kind", "") == "turn_activity" and ev.activity.type == "assistant_prose_delta":
            return


async def _stopped(session, builder) -> Any:
    task = asyncio.ensure_future(builder.run())
    await asyncio.wait_for(_until_prose(session), 30)
    session.cancel_running_turns()
    return await asyncio.wait_for(task, 30)


def _store_target(name: str, request: Any, tmp_path_factory: Any) -> str | None:
    if name == "memory":
        return None
    if name == "duckdb":
        return str(tmp_path_factory.mktemp("reports") / "r.duckdb")
    return request.getfixturevalue("pg_server").create_database()


async def _scenario(target: str | None) -> dict[str, Any]:
    core = LashCore.builder().provider(FunctionProvider(_model)).model("m-test") \
        .tools(weather).store(target).build()
    s1 = await core.session("s1").open()
    await s1.turn("weather in Paris?").turn_id("t1").run()
    await _stopped(s1, s1.turn("stop here").turn_id("t2"))
    k1 = await s1.enqueue("and tomorrow?").id("k1").send()
    drained = await s1.queued_turn().batch_ids([k1.batch_id]).run()
    assert drained is not None
    k2 = await s1.enqueue("never mind").id("k2").send()
    assert await s1.cancel_queued_work_batch(k2.batch_id) is not None
    await s1.enqueue("later").id("k3").delivery_policy("earliest_safe_boundary") \
        .slot_policy("join").send()

    s2 = await core.session("s2").open()
    s2.tools().set_membership("weather", False)
    await _stopped(s2, s2.turn("count to five please").turn_id("e1").model("m-small")
                   .provider(FunctionProvider(_silent_then_hangs)))

    out = _Frames(t3=drained.result.turn_id, batches=[k1.batch_id, k2.batch_id])
    for by in ("turn", "model", "source", "session", "day"):
        out.read(f"usage_{by}", reports.usage_frame, core, by=by)
    out.read("usage_s1", reports.usage_frame, s1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out.read("usage_priced", reports.usage_frame, core, by="model", prices=PRICES)
    out["price_warnings"] = [str(w.message) for w in caught]
    out.read("turns", reports.turns_frame, core)
    out.read("llm_calls", reports.llm_calls_frame, core)
    out.read("tool_calls", reports.tool_calls_frame, core)
    out.read("queue", reports.queue_frame, core, now_ms=NOW_MS)
    out.read("queue_s2", reports.queue_frame, s2, now_ms=NOW_MS)
    out.read("graph", reports.graph_frame, core)
    out.read("graph_s2", reports.graph_frame, s2)
    out.read("flags", lambda: {**estimated_usage_flags(s1), **estimated_usage_flags(s2)})
    out.read("usage_chart", reports.usage_chart, core, by="model")
    out.read("duration_chart", reports.turn_duration_chart, s1)
    out.read("wait_chart", reports.queue_wait_chart, core)
    await core.close()
    return out


class _Frames(dict):  # type: ignore[type-arg]
    """The scenario's results by name; a report that raised re-raises where a test reads it,
    so each test fails on its own report."""

    def read(self, name: str, report: Any, *args: Any, **kw: Any) -> None:
        try:
            self[name] = report(*args, **kw)
        except Exception as e:
            self[name] = e

    def __getitem__(self, name: str) -> Any:
        got = super().__getitem__(name)
        if isinstance(got, Exception):
            raise got
        return got


_BUILT: dict[str, dict[str, Any]] = {}


def _built(name: str, request: Any, tmp_path_factory: Any) -> dict[str, Any]:
    """The scenario's frames on one store, built once per store for the whole module."""
    if name not in _BUILT:
        _BUILT[name] = asyncio.run(_scenario(_store_target(name, request, tmp_path_factory)))
    return _BUILT[name]


# module-scoped: tests/xdist_groups.py then keeps each store's tests on one worker, which builds
# the scenario once (function-scoped, every worker that drew one of them built it again: four
# builds of each store in a parallel run)
@pytest.fixture(scope="module", params=STORE_PARAMS)
def built(request: Any, tmp_path_factory: Any) -> dict[str, Any]:
    return _built(request.param, request, tmp_path_factory)


TEXT = "str" if int(pd.__version__.split(".")[0]) >= 3 else object  # pandas 2 keeps text as object


def _expected(data: dict[str, list[Any]], strings: tuple[str, ...]) -> pd.DataFrame:
    # on pandas 2, astype("str") would turn None into the text "None"
    return pd.DataFrame(data).astype(dict.fromkeys(strings, TEXT))


def _ids(frame: pd.DataFrame, built: dict[str, Any]) -> pd.DataFrame:
    """The drained turn's generated id reads ``t3`` (it differs per run, not per store)."""
    return frame.replace({built["t3"]: "t3"})


def _assert_utc(frame: pd.DataFrame, *cols: str) -> None:
    for c in cols:
        assert str(frame[c].dtype) == UTC, (c, frame[c].dtype)


# ---------------------------------------------------------------- usage


def test_usage_by_turn_is_one_row_per_turn_with_its_tokens_and_calls(built):
    f = _ids(built["usage_turn"], built)
    assert list(f.columns) == [
        "session_id", "turn_id", "source", "model", *BUCKETS, "total_tokens", "turns",
        "estimated", "llm_calls", "started_at", "duration_ms"]
    expected = _expected({
        "session_id": ["s1", "s1", "s1", "s2"], "turn_id": ["t1", "t2", "t3", "e1"],
        "source": ["turn"] * 4, "model": ["m-test", "m-test", "m-test", "m-small"],
        "input_tokens": [230, 40, 150, 5], "output_tokens": [17, 0, 3, 2],
        "cache_read_input_tokens": [20, 0, 100, 0], "cache_write_input_tokens": [5, 0, 0, 0],
        "reasoning_output_tokens": [4, 0, 0, 0], "total_tokens": [272, 40, 253, 7],
        "turns": [1, 1, 1, 1], "estimated": [False, False, False, True],
        "llm_calls": [2, 1, 1, 1],
    }, ("session_id", "turn_id", "source", "model"))
    assert_frame_equal(f.drop(columns=["started_at", "duration_ms"]), expected)
    _assert_utc(f, "started_at")
    assert f["started_at"].is_monotonic_increasing
    assert str(f["duration_ms"].dtype) == "float64" and (f["duration_ms"] >= 0).all()


def test_a_session_source_reads_only_its_session(built):
    f = _ids(built["usage_s1"], built)
    assert f["turn_id"].tolist() == ["t1", "t2", "t3"]
    assert f["total_tokens"].sum() == 565
    assert built["queue_s2"].shape == (0, 15)
    g = built["graph_s2"]
    assert g["session_id"].tolist() == ["s2", "s2"]


def test_usage_rollups_sum_the_same_tokens_on_every_store(built):
    m = built["usage_model"]
    assert_frame_equal(m.drop(columns=["started_at"]), _expected({
        "model": ["m-small", "m-test"],
        "input_tokens": [5, 420], "output_tokens": [2, 20], "cache_read_input_tokens": [0, 120],
        "cache_write_input_tokens": [0, 5], "reasoning_output_tokens": [0, 4],
        "total_tokens": [7, 565], "turns": [1, 3], "estimated": [True, False],
    }, ("model",)))
    src = built["usage_source"]
    assert_frame_equal(src.drop(columns=["started_at"]), _expected({
        "source": ["turn"], "input_tokens": [425], "output_tokens": [22],
        "cache_read_input_tokens": [120], "cache_write_input_tokens": [5],
        "reasoning_output_tokens": [4], "total_tokens": [572], "turns": [4], "estimated": [True],
    }, ("source",)))
    ses = built["usage_session"]
    assert ses["session_id"].tolist() == ["s1", "s2"]
    assert ses["total_tokens"].tolist() == [565, 7] and ses["turns"].tolist() == [3, 1]
    assert ses["estimated"].tolist() == [False, True]
    day = built["usage_day"]
    assert list(day.columns) == ["day", *BUCKETS, "total_tokens", "turns", "estimated",
                                 "started_at"]
    _assert_utc(day, "day", "started_at")
    assert (day["day"] == day["day"].dt.floor("D")).all()  # midnight UTC
    assert day["total_tokens"].sum() == 572 and day["turns"].sum() == 4
    for f in (m, src, ses):
        _assert_utc(f, "started_at")


def test_priced_usage_costs_the_priced_model_and_warns_about_the_other(built):
    f = built["usage_priced"]
    assert f["model"].tolist() == ["m-small", "m-test"]
    assert str(f["cost"].dtype) == "float64"
    assert pd.isna(f["cost"].iloc[0])
    # 420 * 1.0 + 20 * 2.0 + 120 * 0.5 + 5 * 4.0 = 540 dollars per million tokens
    assert f["cost"].iloc[1] == pytest.approx(540e-6)
    assert any("m-small" in w for w in built["price_warnings"])


def test_estimated_flags_mark_the_ledger_row_with_an_estimate(built):
    assert built["flags"] == {("turn", "m-test"): False, ("turn", "m-small"): True}


# ---------------------------------------------------------------- turns and calls


def test_turns_frame_shows_outcomes_counts_and_who_stopped(built):
    f = _ids(built["turns"], built)
    assert list(f.columns) == [
        "session_id", "turn_id", "status", "outcome", "stop_reason", "started_at",
        "duration_ms", "llm_calls", "tool_calls", "failed_tool_calls", "cancelled_tool_calls",
        "total_tokens", "error", "cancelled_by", "cancel_reason"]
    api = "session.cancel_running_turns() was called"
    expected = _expected({
        "session_id": ["s1", "s1", "s1", "s2"], "turn_id": ["t1", "t2", "t3", "e1"],
        "status": ["committed"] * 4,
        "outcome": ["finished", "stopped", "finished", "stopped"],
        "stop_reason": ["assistant_message", "cancelled", "assistant_message", "cancelled"],
        "llm_calls": [2, 1, 1, 1], "tool_calls": [1, 0, 0, 0], "failed_tool_calls": [0] * 4,
        "cancelled_tool_calls": [0] * 4, "total_tokens": [272, 40, 253, 7],
        "error": [None] * 4, "cancelled_by": [None, "api", None, "api"],
        "cancel_reason": [None, api, None, api],
    }, ("session_id", "turn_id", "status", "outcome", "stop_reason", "error", "cancelled_by",
        "cancel_reason"))
    assert_frame_equal(f.drop(columns=["started_at", "duration_ms"]), expected)
    _assert_utc(f, "started_at")
    assert str(f["duration_ms"].dtype) == "float64"


def test_llm_calls_frame_has_each_attempt_with_its_usage(built):
    f = _ids(built["llm_calls"], built)
    assert list(f.columns) == [
        "session_id", "turn_id", "call_id", "model", "protocol_iteration", "attempt",
        "started_at", "duration_ms", "outcome", "served_model", "error_kind", "error",
        *BUCKETS, "total_tokens", "estimated"]
    assert f["turn_id"].tolist() == ["t1", "t1", "t2", "t3", "e1"]
    assert f["model"].tolist() == ["m-test"] * 4 + ["m-small"]
    assert f["outcome"].tolist() == ["completed", "completed", "interrupted", "completed",
                                     "interrupted"]
    assert f["input_tokens"].tolist() == [100, 130, 40, 150, 5]
    assert f["output_tokens"].tolist() == [10, 7, 0, 3, 2]
    assert f["total_tokens"].tolist() == [130, 142, 40, 253, 7]
    assert f["estimated"].tolist() == [False, False, False, False, True]
    assert f["protocol_iteration"].dtype == "int64" and f["attempt"].dtype == "int64"
    _assert_utc(f, "started_at")


def test_tool_calls_frame_sizes_the_json_as_the_store_wrote_it(built):
    f = _ids(built["tool_calls"], built)
    assert list(f.columns) == [
        "session_id", "turn_id", "call_id", "name", "args_bytes", "output_bytes", "success",
        "interrupted", "status", "started_at", "duration_ms", "approval", "approved_by",
        "printed"]
    # '{"city":"Paris"}' is 16 bytes; '"sunny \\u00e9"' (non-ASCII escaped) is 14
    assert_frame_equal(f.drop(columns=["started_at", "duration_ms"]), _expected({
        "session_id": ["s1"], "turn_id": ["t1"], "call_id": ["call-w1"], "name": ["weather"],
        "args_bytes": [16], "output_bytes": [14], "success": [True], "interrupted": [False],
        "status": ["success"], "approval": [None], "approved_by": [None], "printed": [None],
    }, ("session_id", "turn_id", "call_id", "name", "status", "approval", "approved_by",
        "printed")))
    _assert_utc(f, "started_at")


# ---------------------------------------------------------------- queue and graph


def test_queue_frame_shows_completed_cancelled_and_pending_batches(built):
    f = _ids(built["queue"], built)
    assert list(f.columns) == [
        "session_id", "batch_id", "state", "delivery_policy", "slot_policy", "source_key",
        "enqueue_seq", "enqueued_at", "claimed_at", "finished_at", "age_ms", "wait_ms",
        "turn_id", "attempts", "error"]
    assert f["state"].tolist() == ["completed", "cancelled", "pending"]
    # the completed batch was claimed once; nothing failed, so no error is recorded
    assert f["attempts"].tolist() == [1, 0, 0] and f["error"].isna().all()
    assert f["source_key"].tolist() == ["host:k1", "host:k2", "host:k3"]
    assert f["batch_id"].tolist()[:2] == built["batches"]
    assert f["delivery_policy"].tolist() == ["after_current_turn_commit"] * 2 + [
        "earliest_safe_boundary"]
    assert f["slot_policy"].tolist() == ["exclusive", "exclusive", "join"]
    assert f["enqueue_seq"].dtype == "int64" and f["enqueue_seq"].is_monotonic_increasing
    assert f["turn_id"].tolist()[0] == "t3" and f["turn_id"].iloc[1:].isna().all()
    _assert_utc(f, "enqueued_at", "claimed_at", "finished_at")
    assert f["claimed_at"].notna().tolist() == [True, False, False]
    assert f["finished_at"].notna().tolist() == [True, True, False]
    assert f["wait_ms"].iloc[0] >= 0 and f["wait_ms"].iloc[1:].isna().all()
    enqueued_ms = (f["enqueued_at"].iloc[2] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
        milliseconds=1)
    assert f["age_ms"].iloc[2] == float(NOW_MS - enqueued_ms)
    done = f.iloc[0]
    assert done["age_ms"] == (done["finished_at"] - done["enqueued_at"]).total_seconds() * 1000


def test_graph_frame_reads_each_node_text_and_the_active_path(built):
    f = _ids(built["graph"], built)
    assert list(f.columns) == [
        "session_id", "seq", "node_id", "parent_node_id", "kind", "role", "turn_id",
        "created_at", "text", "on_active_path"]
    assert f["session_id"].tolist() == ["s1"] * 8 + ["s2"] * 2
    assert f["role"].tolist() == ["user", "assistant"] * 5
    assert f["text"].tolist() == [
        "weather in Paris?", 'call weather {"city": "Paris"}', "weather returned: sunny é",
        "It is sunny.", "stop here", "stopped: partial ", "and tomorrow?", "Cloudy.",
        "count to five please", "stopped: started "]
    assert f["turn_id"].tolist() == ["t1"] * 4 + ["t2"] * 2 + ["t3"] * 2 + ["e1"] * 2
    assert f["on_active_path"].all()
    assert f["seq"].dtype == "int64"
    assert f.groupby("session_id")["seq"].apply(lambda x: x.is_monotonic_increasing).all()
    _assert_utc(f, "created_at")


def test_charts_draw_the_same_bars_on_every_store(built):
    c = built["usage_chart"]
    assert c.labels == ("m-small", "m-test")
    assert dict(c.series)["input"] == (5.0, 420.0)
    assert built["duration_chart"].labels == ("t1", "t2", built["t3"])
    assert built["wait_chart"].labels == (built["batches"][0],)


# ---------------------------------------------------------------- across stores


@pytest.mark.postgres
def test_every_frame_is_identical_across_stores_apart_from_clock_values(request,
                                                                         tmp_path_factory):
    """Whatever the hand-written checks above do not name, the three stores still agree
    (times, generated ids and ``seq`` aside: ``seq`` is each store's write counter, only its
    order is shared): same columns, same dtypes, same values."""
    names = STORES
    for name in names:
        _built(name, request, tmp_path_factory)
    clock = {"started_at", "duration_ms", "created_at", "enqueued_at", "claimed_at",
             "finished_at", "age_ms", "wait_ms", "day", "node_id", "parent_node_id",
             "batch_id", "call_id", "seq"}
    first = _BUILT[names[0]]
    for name in names[1:]:
        other = _BUILT[name]
        for key in first:
            frame = first[key]
            if not isinstance(frame, pd.DataFrame):
                continue
            a = _ids(frame, first).drop(columns=[c for c in frame.columns if c in clock])
            b = _ids(other[key], other).drop(
                columns=[c for c in other[key].columns if c in clock])
            assert list(frame.dtypes.astype(str)) == list(other[key].dtypes.astype(str)), key
            assert_frame_equal(a, b, obj=f"{key}: {names[0]} vs {name}")


# ---------------------------------------------------------------- %lash verbs that read


def _nb_model(request):
    return LlmResponse(parts=(LlmPart.text_part("hi there"),), usage=TokenUsage(11, 3, 2, 0, 1))


_MAGIC: dict[str, dict[str, Any]] = {}


def _magic_frames(name: str, request: Any, tmp_path_factory: Any) -> dict[str, Any]:
    """``%lash usage / sessions / queue --df / graph`` on one store, from a notebook."""
    if name in _MAGIC:
        return _MAGIC[name]
    from notebook_harness import ReraisingShell

    target = _store_target(name, request, tmp_path_factory) or ":memory:"
    sh = ReraisingShell()
    out = _Frames()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.user_ns["nb_model"] = FunctionProvider(_nb_model)
        sh.run_cell(f"s = %lash open s1 --store {target} --model m-nb --no-tools")
        sh.run_cell("out = await s.turn('hello').turn_id('n1').provider(nb_model).run()")
        sh.run_cell("b = %lash enqueue --id k1 later")
        for key, line in [("usage", "%lash usage"), ("usage_model", "%lash usage --by model"),
                          ("usage_plot", "%lash usage --plot"), ("sessions", "%lash sessions"),
                          ("queue", "%lash queue --df"), ("graph", "%lash graph --df"),
                          ("tree", "%lash graph")]:
            out.read(key, sh.run_cell, line)
        out["batch_id"] = sh.user_ns["b"].batch_id
    finally:
        sh.run_cell("await get_ipython().magics_manager.registry['LashMagics'].ctx.close()")
        sh.close()
    _MAGIC[name] = out
    return out


@pytest.fixture(scope="module", params=STORE_PARAMS)  # one worker per store, as ``built``
def magic(request: Any, tmp_path_factory: Any) -> dict[str, Any]:
    return _magic_frames(request.param, request, tmp_path_factory)


def test_lash_usage_reads_the_ledger_with_its_estimated_flag(magic):
    f = magic["usage"]
    assert f[["source", "model", *BUCKETS, "estimated"]].to_dict("records") == [
        {"source": "turn", "model": "m-nb", "input_tokens": 11, "output_tokens": 3,
         "cache_read_input_tokens": 2, "cache_write_input_tokens": 0,
         "reasoning_output_tokens": 1, "estimated": False}]
    m = magic["usage_model"]
    assert m["model"].tolist() == ["m-nb"] and m["total_tokens"].tolist() == [16]
    _assert_utc(m, "started_at")
    assert magic["usage_plot"].labels == ("n1 · m-nb",)


def test_lash_sessions_and_queue_df_read_the_store_on_every_store(magic):
    s = magic["sessions"]
    assert s["session_id"].tolist() == ["s1"] and s["model"].tolist() == ["m-nb"]
    _assert_utc(s, "updated_at")
    q = magic["queue"]
    assert q["batch_id"].tolist() == [magic["batch_id"]]
    assert q["source_key"].tolist() == ["host:k1"] and q["text"].tolist() == ["later"]
    _assert_utc(q, "enqueued_at")


def test_lash_graph_draws_the_stored_nodes_on_every_store(magic):
    g = magic["graph"]
    assert g["text"].tolist() == ["hello", "hi there"]
    assert g["role"].tolist() == ["user", "assistant"] and g["on_active_path"].all()
    _assert_utc(g, "created_at")
    assert magic["tree"].frame["text"].tolist() == ["hello", "hi there"]


@pytest.mark.postgres
def test_lash_verbs_give_the_same_columns_and_dtypes_on_every_store(request, tmp_path_factory):
    got = {name: _magic_frames(name, request, tmp_path_factory) for name in STORES}
    for key in ("usage", "usage_model", "sessions", "queue", "graph"):
        dtypes = {name: list(got[name][key].dtypes.astype(str).items()) for name in STORES}
        assert dtypes["duckdb"] == dtypes["memory"] == dtypes["postgres"], key


# ---------------------------------------------------------------- row order


def _icu_database(server: Any) -> str:
    """A database whose text collation is a language one (ICU root: 'alpha' < 'Zeta'), as
    many production servers have; DuckDB orders bytes ('Zeta' < 'alpha')."""
    import uuid

    import psycopg

    name = f"lash_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn, autocommit=True) as con:
        try:
            con.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
                        "ICU_LOCALE 'und' LOCALE 'C.utf8'")
        except psycopg.Error as e:
            pytest.skip(f"this PostgreSQL cannot create an ICU database: {e}")
    return server.dsn_for(name)


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_rows_come_in_byte_order_of_their_text_keys_on_every_store(name, request, tmp_path):
    target = (_icu_database(request.getfixturevalue("pg_server")) if name == "postgres"
              else None if name == "memory" else str(tmp_path / "o.duckdb"))

    def answer(req):
        return LlmResponse(parts=(LlmPart.text_part("ok"),), usage=TokenUsage(1, 1, 0, 0, 0))

    async def body():
        core = LashCore.builder().provider(FunctionProvider(answer)).model("m").store(target) \
            .build()
        for sid, model in (("alpha", "alpha-model"), ("Zeta", "Zeta-model")):
            s = await core.session(sid).open()
            await s.turn("hi").turn_id(f"{sid}-1").model(model).run()
        got = (reports.usage_frame(core, by="model")["model"].tolist(),
               reports.usage_frame(core, by="session")["session_id"].tolist(),
               reports.graph_frame(core)["session_id"].tolist())
        await core.close()
        return got

    by_model, by_session, graph_sessions = asyncio.run(body())
    assert by_model == ["Zeta-model", "alpha-model"]
    assert by_session == ["Zeta", "alpha"]
    assert graph_sessions == ["Zeta", "Zeta", "alpha", "alpha"]


# ---------------------------------------------------------------- empty stores, JSON sizes


def _target(name: str, request: Any, tmp_path: Any) -> str | None:
    if name == "postgres":
        return request.getfixturevalue("pg_server").create_database()
    return None if name == "memory" else str(tmp_path / "x.duckdb")


_EMPTY: dict[str, dict[str, Any]] = {}


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_a_fresh_store_gives_empty_frames_with_the_documented_dtypes(name, request, tmp_path):
    async def body():
        core = LashCore.builder().model("m").store(_target(name, request, tmp_path)).build()
        got = {"usage": reports.usage_frame(core), "model": reports.usage_frame(core, by="model"),
               "day": reports.usage_frame(core, by="day"), "turns": reports.turns_frame(core),
               "llm_calls": reports.llm_calls_frame(core),
               "tool_calls": reports.tool_calls_frame(core),
               "queue": reports.queue_frame(core), "graph": reports.graph_frame(core)}
        await core.close()
        return got

    got = asyncio.run(body())
    shapes = {k: f.shape for k, f in got.items()}
    assert shapes == {"usage": (0, 15), "model": (0, 10), "day": (0, 10), "turns": (0, 15),
                      "llm_calls": (0, 19), "tool_calls": (0, 14), "queue": (0, 15),
                      "graph": (0, 10)}
    assert str(got["usage"]["started_at"].dtype) == UTC
    assert str(got["day"]["day"].dtype) == UTC
    assert str(got["queue"]["enqueued_at"].dtype) == UTC
    assert str(got["tool_calls"]["args_bytes"].dtype) == "int64"
    _EMPTY[name] = {k: list(f.dtypes.astype(str).items()) for k, f in got.items()}
    for other in _EMPTY.values():
        assert other == _EMPTY[name]


@tool
def lookup(q: str, n: list, big: int) -> dict:  # type: ignore[type-arg]
    """Look something up."""
    return {"got": "café", "n": n}


ODD_ARGS = '{"q": "café ☕", "n": [1, 2.5, {"deep": null}], "big": 12345678901234567890}'
# the stores write JSON compact with non-ASCII escaped, so these are the sizes on every store
# (PostgreSQL's jsonb prints them with spaces and raw UTF-8, a different byte count):
ODD_ARGS_STORED = '{"q":"caf\\u00e9 \\u2615","n":[1,2.5,{"deep":null}],"big":12345678901234567890}'
ODD_OUTPUT_STORED = '{"got":"caf\\u00e9","n":[1,2.5,{"deep":null}]}'


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_tool_call_sizes_count_the_json_as_written_on_every_store(name, request, tmp_path):
    replies = iter([
        LlmResponse(parts=(LlmPart.tool_call("call-odd", "lookup", ODD_ARGS),),
                    terminal_reason=TerminalReason.TOOL_USE),
        LlmResponse(parts=(LlmPart.text_part("done"),)),
    ])

    async def body():
        core = LashCore.builder().provider(FunctionProvider(lambda req: next(replies))) \
            .model("m").tools(lookup).store(_target(name, request, tmp_path)).build()
        s = await core.session("s").open()
        await s.turn("look it up").turn_id("t").run()
        got = reports.tool_calls_frame(s)
        await core.close()
        return got

    f = asyncio.run(body())
    assert f["status"].tolist() == ["success"]
    # counted by hand: 5 + 18 + 5 + 21 + 7 + 20 + 1 and 7 + 11 + 5 + 21 + 1 (ASCII: bytes)
    assert len(ODD_ARGS_STORED) == 77 and len(ODD_OUTPUT_STORED) == 45
    assert f["args_bytes"].tolist() == [77]
    assert f["output_bytes"].tolist() == [45]


@tool
async def slow_tool(city: str) -> str:
    """Takes an hour."""
    await asyncio.sleep(3600)
    return "never"


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_a_tool_call_cut_by_stop_reads_cancelled_on_every_store(name, request, tmp_path):
    def model(req):
        return LlmResponse(parts=(LlmPart.tool_call("call-slow", "slow_tool", '{"city": "Oslo"}'),),
                           usage=TokenUsage(9, 4, 0, 0, 0), terminal_reason=TerminalReason.TOOL_USE)

    async def until_tool_started(s):
        cursor = s.observe().current_observation().cursor
        async for ev in s.observe().subscribe_from_cursor(cursor):
            if getattr(ev, "kind", "") == "turn_activity" and \
                    ev.activity.type == "tool_call_started":
                return

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m") \
            .tools(slow_tool).store(_target(name, request, tmp_path)).build()
        s = await core.session("s").open()
        task = asyncio.ensure_future(s.turn("slow please").turn_id("t").run())
        await asyncio.wait_for(until_tool_started(s), 30)
        s.cancel_running_turns()
        await asyncio.wait_for(task, 30)
        got = reports.turns_frame(s), reports.tool_calls_frame(s)
        await core.close()
        return got

    turns, calls = asyncio.run(body())
    assert turns[["stop_reason", "llm_calls", "tool_calls", "failed_tool_calls",
                  "cancelled_tool_calls", "total_tokens", "cancelled_by"]].to_dict("records") == [
        {"stop_reason": "cancelled", "llm_calls": 1, "tool_calls": 1, "failed_tool_calls": 0,
         "cancelled_tool_calls": 1, "total_tokens": 13, "cancelled_by": "api"}]
    assert calls[["name", "success", "interrupted", "status", "args_bytes"]].to_dict(
        "records") == [{"name": "slow_tool", "success": False, "interrupted": True,
                        "status": "cancelled", "args_bytes": len('{"city":"Oslo"}')}]
    assert calls["duration_ms"].iloc[0] >= 0


def test_a_postgresql_dsn_given_as_a_report_source_says_to_pass_the_store():
    from lash_nb._errors import StorePathError

    with pytest.raises(StorePathError, match=r"PostgresStore\(dsn\)") as err:
        reports.usage_frame("postgresql://user@db/lash")
    assert "\n" not in str(err.value)


@pytest.mark.postgres
def test_a_postgres_store_object_is_a_report_source(request):
    from lash_nb.stores import PostgresStore

    dsn = request.getfixturevalue("pg_server").create_database()

    async def body():
        core = LashCore.builder().provider(FunctionProvider(_nb_model)).model("m").store(dsn) \
            .build()
        s = await core.session("s").open()
        await s.turn("hello").turn_id("t").run()
        await core.close()

    asyncio.run(body())
    store = PostgresStore(dsn)  # e.g. in an analysis notebook, next morning
    try:
        f = reports.usage_frame(store, by="session")
    finally:
        store.close_sync()
    assert f[["session_id", "total_tokens"]].to_dict("records") == [
        {"session_id": "s", "total_tokens": 16}]


@tool(approval="ask")
def guarded(city: str) -> str:
    """Runs only when someone approves."""
    return f"ran for {city}"


def _two_calls(first: tuple[str, str], second: tuple[str, str]) -> Any:
    """A model that calls two tools (call id, tool name) on Oslo and Rome, then says ok."""
    def model(req):
        if req.messages[-1].tool_results():
            return LlmResponse(parts=(LlmPart.text_part("ok"),))
        return LlmResponse(parts=(LlmPart.tool_call(*first, '{"city": "Oslo"}'),
                                  LlmPart.tool_call(*second, '{"city": "Rome"}')),
                           terminal_reason=TerminalReason.TOOL_USE)
    return model


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_tool_calls_frame_shows_who_approved_or_denied_on_every_store(name, request, tmp_path):
    model = _two_calls(("call-g", "guarded"), ("call-p", "plain"))

    @tool
    def plain(city: str) -> str:
        return city

    answers = iter([True, False])

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m") \
            .tools(guarded, plain).store(_target(name, request, tmp_path)).build()
        s = await core.session("s").open()
        s.approvals().set_approver(lambda r: next(answers))
        await s.turn("one").turn_id("t1").run()
        await s.turn("two").turn_id("t2").run()
        got = reports.tool_calls_frame(s)
        await core.close()
        return got

    f = asyncio.run(body()).sort_values(["turn_id", "call_id"])
    f = f.astype(object).where(f.notna(), None)  # a missing text reads None on pandas 2 and 3
    assert f[["turn_id", "name", "success", "approval", "approved_by"]].to_dict("records") == [
        {"turn_id": "t1", "name": "guarded", "success": True, "approval": "approved", "approved_by": "api"},
        {"turn_id": "t1", "name": "plain", "success": True, "approval": None, "approved_by": None},
        {"turn_id": "t2", "name": "guarded", "success": False, "approval": "denied", "approved_by": "api"},
        {"turn_id": "t2", "name": "plain", "success": True, "approval": None, "approved_by": None},
    ]


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_the_graph_names_every_tool_call_and_result_on_every_store(name, request, tmp_path):
    """A reply's call with no name (a provider that sent none), a call of a tool the kernel
    does not have (an MCP server's, gone) and a call cut by Stop: each node of ``%lash graph``
    says it is a call or a result, and of which tool, not only its arguments."""
    replies = iter([
        LlmResponse(parts=(LlmPart.tool_call("c1", "", "{}"),),
                    terminal_reason=TerminalReason.TOOL_USE),
        LlmResponse(parts=(LlmPart.tool_call("c2", "docs__search", '{"q": "x"}'),),
                    terminal_reason=TerminalReason.TOOL_USE),
        LlmResponse(parts=(LlmPart.tool_call("c3", "slow_tool", '{"city": "Oslo"}'),),
                    terminal_reason=TerminalReason.TOOL_USE),
    ])

    async def until_tool_started(s):
        cursor = s.observe().current_observation().cursor
        async for ev in s.observe().subscribe_from_cursor(cursor):
            if getattr(ev, "kind", "") == "turn_activity" and \
                    ev.activity.type == "tool_call_started" and ev.activity.event.name == "slow_tool":
                return

    async def body():
        core = LashCore.builder().provider(FunctionProvider(lambda req: next(replies))) \
            .model("m").tools(slow_tool).store(_target(name, request, tmp_path)).build()
        s = await core.session("s").open()
        task = asyncio.ensure_future(s.turn("go").turn_id("t").run())
        await asyncio.wait_for(until_tool_started(s), 30)
        s.cancel_running_turns()
        await asyncio.wait_for(task, 30)
        got = reports.graph_frame(s)
        await core.close()
        return got

    f = asyncio.run(body())
    assert f["text"].tolist() == [
        "go",
        "call (unnamed tool) {}",
        "(unnamed tool) failed: unknown tool ''; available tools: slow_tool",
        'call docs__search {"q": "x"}',
        "docs__search failed: unknown tool 'docs__search'; available tools: slow_tool",
        'call slow_tool {"city": "Oslo"}',
        "slow_tool: interrupted: the turn was stopped",
    ]
    assert f["role"].tolist() == ["user"] + ["assistant", "user"] * 3


@pytest.mark.parametrize("name", STORE_PARAMS)
def test_tool_calls_frame_shows_what_each_call_printed_on_every_store(name, request, tmp_path):
    """A data scientist reads their tool calls in pandas: each row carries what that call
    printed, as ``%lash sql SELECT printed FROM tool_calls`` does (ADR 210); a call that
    printed nothing reads a missing value. Before, the frame had no such column."""
    model = _two_calls(("call-l", "load"), ("call-q", "plain"))

    @tool
    def load(city: str) -> str:
        print(f"loading {city}: 3 files")
        print("  rows | 120 é")
        return "loaded"

    @tool
    def plain(city: str) -> str:
        return city

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m") \
            .tools(load, plain).store(_target(name, request, tmp_path)).build()
        s = await core.session("s").open()
        await s.turn("go").turn_id("t1").run()
        got = reports.tool_calls_frame(s)
        await core.close()
        return got

    f = asyncio.run(body()).sort_values("call_id")
    assert list(f.columns)[-1] == "printed"
    assert str(f["printed"].dtype) == ("str" if pd.__version__ >= "3" else "object")
    f = f.astype(object).where(f.notna(), None)  # a missing text reads None on pandas 2 and 3
    assert f[["call_id", "printed"]].to_dict("records") == [
        {"call_id": "call-l", "printed": "loading Oslo: 3 files\n  rows | 120 é\n"},
        {"call_id": "call-q", "printed": None},
    ]
