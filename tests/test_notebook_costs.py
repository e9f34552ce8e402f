"""What a turn and a session cost, where the user looks: the finished turn's footer (and the
saved HTML record), the session card and ``%lash usage --cost``. A model without a price shows
``n/a`` and why, never $0. Expected costs are worked by hand from the prices given here or
from the published gpt-4.1-mini price ($0.40 in, $1.60 out, $0.10 cached per million)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import test_notebook_magics
from IPython.core.error import UsageError

from lash_nb import LashCore
from lash_nb._core.llm import LlmPart, LlmResponse
from lash_nb._core.usage import TokenUsage
from lash_nb._notebook.costs import resolve_prices
from lash_nb._notebook.runner import run_turn
from lash_nb._notebook.verbs_turn import session_card
from lash_nb._notebook.widgets.turn import TurnWidget
from lash_nb.providers import FunctionProvider
from lash_nb.stores import MemoryStore

sh = test_notebook_magics.sh  # the fixture: a notebook shell on an in-memory store

# the offline model answers "hi" with 5 input and 22 output tokens (its documented rule)
MINE = {"lash-offline": {"input_tokens": 1000.0, "output_tokens": 2000.0}}


def _record(w: TurnWidget) -> str:
    html: str = w._repr_mimebundle_()["text/html"]
    return html


def _turn(model: str, usage: TokenUsage, prices: Any, monkeypatch: Any) -> TurnWidget:
    shown: list[TurnWidget] = []
    monkeypatch.setattr(TurnWidget, "show", lambda self: (shown.append(self), self)[1])

    async def body() -> None:
        provider = FunctionProvider(
            lambda _r: LlmResponse(parts=(LlmPart.text_part("ok"),), usage=usage))
        core = LashCore.builder().provider(provider).store(MemoryStore()).build()
        session = await core.session("s").model(model).open()
        await run_turn(session, "hi", prices=prices)
        await core.close()

    asyncio.run(body())
    (w,) = shown
    return w


def test_a_finished_turns_record_shows_its_cost_from_the_default_prices(monkeypatch):
    w = _turn("gpt-4.1-mini", TokenUsage(1000, 500, 2000, 0, 0), "default", monkeypatch)
    # 1000 * 0.40 + 500 * 1.60 + 2000 * 0.10 = 1400 micro-dollars
    assert w.cost["usd"] == pytest.approx(0.0014)
    assert w.cost["text"] == "$0.0014"
    assert "$0.0014" in _record(w)


def test_a_model_without_a_price_shows_na_and_why_never_zero(monkeypatch):
    w = _turn("my-own-model", TokenUsage(100, 50, 0, 0, 0), "default", monkeypatch)
    assert w.cost["usd"] is None
    record = _record(w)
    assert "cost n/a: no price for this model (my-own-model)" in record
    assert "$0" not in record


def test_costs_off_leave_the_footer_without_a_cost(monkeypatch):
    w = _turn("gpt-4.1-mini", TokenUsage(1000, 500, 0, 0, 0), None, monkeypatch)
    assert w.cost == {}
    assert "$" not in _record(w) and "cost" not in _record(w).split('class="lash-foot"')[1]


def test_usage_cost_uses_the_users_table_from_a_notebook_variable(sh):
    sh.user_ns["mine"] = MINE
    sh.run_cell("%config LashMagics.prices = 'mine'")
    sh.run_cell("r = %lash turn hi")
    frame = sh.run_cell("%lash usage --cost")
    assert list(frame["model"]) == ["lash-offline"]
    assert frame["cost"].iloc[0] == pytest.approx((5 * 1000 + 22 * 2000) / 1e6)  # $0.049
    assert frame["price_note"].isna().all()


def test_usage_cost_of_the_offline_model_is_na_with_one_short_note_and_no_warning(sh):
    """The offline model has no price by design: ``%lash usage --cost`` warned "no price for
    model(s) lash-offline ... add them to prices" on every call, advice that does not apply."""
    import warnings

    sh.run_cell("r = %lash turn hi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        frame = sh.run_cell("%lash usage --cost --by turn")
        by_model = sh.run_cell("%lash usage --cost")
    for f in (frame, by_model):
        assert math.isnan(f["cost"].iloc[0])  # n/a, never $0 (ADR 31)
        assert list(f["price_note"]) == ["no price by design (offline provider)"]


def test_usage_cost_still_warns_for_a_real_providers_model_without_a_price(sh, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    sh.run_cell("s = %lash open mine --provider openai --model my-own-model")
    sh.user_ns["FunctionProvider"] = FunctionProvider
    sh.user_ns["answer"] = LlmResponse(parts=(LlmPart.text_part("ok"),),
                                       usage=TokenUsage(100, 50, 0, 0, 0))
    sh.run_cell("s.provider = FunctionProvider(lambda _r: answer)")  # no network in a test
    sh.run_cell("r = %lash turn hi")
    with pytest.warns(UserWarning, match=r"no price for model\(s\) my-own-model"):
        frame = sh.run_cell("%lash usage --cost")
    assert math.isnan(frame["cost"].iloc[0])
    assert list(frame["price_note"]) == ["no price for this model"]


def test_the_session_card_shows_the_cost_so_far(sh):
    sh.user_ns["mine"] = MINE
    sh.run_cell("r = %lash turn hi")
    # the second call sends the history: 5 + (22 + 4) + 5 = 36 in, and answers 22 out again
    sh.run_cell("r = %lash turn hi")
    m = sh.ip.magics_manager.registry["LashMagics"]
    card = session_card(m.ctx.bindings["default"], resolve_prices("mine", sh.user_ns)).data
    # both turns, read from the store: (5 + 36) * 1000 + (22 + 22) * 2000 = 129,000 micro-dollars
    assert "cost so far $0.1290" in card
    unpriced = session_card(m.ctx.bindings["default"], resolve_prices("default", sh.user_ns)).data
    assert "cost n/a: no price by design (offline provider) (lash-offline)" in unpriced


def test_a_price_name_that_is_neither_a_variable_nor_a_file_is_one_line_and_keeps_the_turns(sh):
    sh.run_cell("r = %lash turn hi")
    with pytest.raises(UsageError, match="neither a notebook variable nor a CSV file") as err:
        sh.run_cell("%lash usage --cost --prices nosuch")
    assert "\n" not in str(err.value)
    sh.user_ns["bad"] = {"lash-offline": {"input": 1.0}}
    with pytest.raises(UsageError, match="unknown bucket 'input'"):
        sh.run_cell("%lash usage --cost --prices bad")
    assert int(sh.run_cell("%lash usage --by model")["turns"].iloc[0]) == 1


def test_prices_that_cannot_be_read_never_block_a_turn_the_footer_says_why(sh, monkeypatch):
    shown: list[TurnWidget] = []
    monkeypatch.setattr(TurnWidget, "show", lambda self: (shown.append(self), self)[1])
    sh.run_cell("%config LashMagics.prices = 'missing.csv'")
    sh.run_cell("r = %lash turn hi")
    assert str(sh.user_ns["r"].outcome) == "finished: assistant_message"
    assert shown[-1].cost["usd"] is None
    assert shown[-1].cost["text"].startswith(
        "cost n/a: prices 'missing.csv' is neither a notebook variable nor a CSV file")


@pytest.mark.parametrize(("model", "usage"), [
    ("gpt-4.1-mini", TokenUsage(1000, 500, 2000, 0, 0)),
    ("claude-sonnet-4-5", TokenUsage(100, 200, 1000, 400, 0)),
    ("claude-sonnet-4-5", TokenUsage(150_000, 10, 60_000, 0, 0)),  # past the 200k tier
    ("gemini-2.5-flash", TokenUsage(300, 20, 0, 100, 0)),  # no cache-write price
    ("my-own-model", TokenUsage(100, 50, 0, 0, 0)),
])
def test_the_footer_prices_a_turn_as_usage_frame_does_without_reading_the_store(
        model, usage, monkeypatch):
    from lash_nb.reports import usage_frame

    w = _turn(model, usage, "default", monkeypatch)
    store = MemoryStore()

    async def body() -> None:  # the same turn again, priced by the report from the store
        provider = FunctionProvider(
            lambda _r: LlmResponse(parts=(LlmPart.text_part("ok"),), usage=usage))
        core = LashCore.builder().provider(provider).store(store).build()
        s = await core.session("s").model(model).open()
        await s.turn("hi").run()
        await core.close()

    asyncio.run(body())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = usage_frame(store, by="model", prices="default").iloc[0]
    if math.isnan(row["cost"]):
        assert w.cost["usd"] is None
        assert w.cost["note"] == f"{row['price_note']} ({model})"
    else:
        assert w.cost["usd"] == pytest.approx(row["cost"])


def test_a_price_csv_with_a_short_row_never_blocks_a_turn_and_usage_names_the_row(sh, monkeypatch):
    """A hand-written prices CSV whose second row lacks its last cell: the turn still runs
    (the footer says why there is no cost) and ``%lash usage --cost`` is one line naming the
    model and the bucket, not an AttributeError traceback."""
    shown: list[TurnWidget] = []
    monkeypatch.setattr(TurnWidget, "show", lambda self: (shown.append(self), self)[1])
    with open("prices.csv", "w") as f:
        f.write("model,input_tokens,output_tokens\nother-model,1,2\nlash-offline,1000\n")
    sh.run_cell("%config LashMagics.prices = 'prices.csv'")
    sh.run_cell("r = %lash turn hi")
    assert str(sh.user_ns["r"].outcome) == "finished: assistant_message"
    assert shown[-1].cost["usd"] is None
    assert "'lash-offline'" in shown[-1].cost["text"]
    assert "output_tokens" in shown[-1].cost["text"]
    with pytest.raises(UsageError, match="output_tokens") as err:
        sh.run_cell("%lash usage --cost")
    assert "\n" not in str(err.value)
    assert int(sh.run_cell("%lash usage --by model")["turns"].iloc[0]) == 1


@pytest.mark.parametrize("value", ["abc", [1.0], {"usd": 1.0}, math.inf, True])
def test_a_price_that_is_not_a_finite_number_is_one_line_naming_model_and_bucket(sh, value):
    """``--prices`` from a notebook variable with a word, a list, a dict, infinity or a bool
    where a number belongs: one line naming the model and the bucket, the turns kept."""
    sh.run_cell("r = %lash turn hi")
    sh.user_ns["mine"] = {"lash-offline": {"input_tokens": value, "output_tokens": 1.0}}
    with pytest.raises(UsageError) as err:
        sh.run_cell("%lash usage --cost --prices mine")
    msg = str(err.value)
    assert "\n" not in msg
    assert "prices['lash-offline']['input_tokens']" in msg
    assert "US dollars per million tokens" in msg
    assert int(sh.run_cell("%lash usage --by model")["turns"].iloc[0]) == 1


def test_usage_by_day_plot_labels_each_bar_with_its_date_only(sh):
    """A bar per day reads "2026-12-01", not "2026-12-01 00:00:00+00:00" (the saved chart
    is what the user reads the next morning)."""
    import datetime as dt

    sh.run_cell("r = %lash turn hi")
    chart = sh.run_cell("%lash usage --by day --plot")
    today = dt.datetime.now(dt.UTC).date()
    assert chart.labels[0] in (str(today), str(today - dt.timedelta(days=1)))  # around midnight
    assert len(chart.labels[0]) == len("2026-12-01")


def test_usage_plot_with_cost_is_one_line_not_a_silent_table(sh):
    """``--plot --cost`` returned the cost DataFrame and dropped ``--plot`` without a word."""
    sh.run_cell("r = %lash turn hi")
    with pytest.raises(UsageError, match="--plot") as err:
        sh.run_cell("%lash usage --by day --plot --cost")
    assert "\n" not in str(err.value) and "--cost" in str(err.value)


def test_a_price_csv_saved_by_excel_with_a_bom_reads(sh):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark; the header's first name
    was then '\\ufeffmodel' and the file was refused for lacking the 'model' column it has."""
    with open("excel.csv", "wb") as f:
        f.write(b"\xef\xbb\xbfmodel,input_tokens,output_tokens\r\nlash-offline,1000,2000\r\n")
    sh.run_cell("r = %lash turn hi")
    row = sh.run_cell("%lash usage --cost --prices excel.csv").iloc[0]
    # the offline model answers "hi" with 5 input and 22 output tokens: 5*1000 + 22*2000 per 1e6
    assert row["cost"] == pytest.approx(0.049)


def test_a_price_csv_with_semicolons_names_the_header_it_found(sh):
    with open("semi.csv", "w") as f:
        f.write("model;input_tokens;output_tokens\nlash-offline;1000;2000\n")
    sh.run_cell("r = %lash turn hi")
    with pytest.raises(UsageError) as err:
        sh.run_cell("%lash usage --cost --prices semi.csv")
    msg = str(err.value)
    assert "\n" not in msg
    assert "model;input_tokens;output_tokens" in msg and "comma" in msg


def test_lash_replay_shows_the_cost_the_turn_showed_when_it_finished(sh, monkeypatch):
    """``%lash replay`` redraws a stored turn; its footer left the cost out (priced or n/a)."""
    shown: list[TurnWidget] = []
    monkeypatch.setattr(TurnWidget, "show", lambda self: (shown.append(self), self)[1])
    sh.user_ns["mine"] = MINE
    sh.run_cell("%config LashMagics.prices = 'mine'")
    sh.run_cell("r = %lash turn hi")
    live = _record(shown[-1])
    replayed = sh.run_cell("%lash replay")
    assert replayed.cost["text"] == "$0.0490"  # 5 * 1000 + 22 * 2000 micro-dollars
    assert "$0.0490" in live and "$0.0490" in _record(replayed)
    sh.run_cell("%config LashMagics.prices = 'default'")
    unpriced = _record(sh.run_cell("%lash replay"))
    assert "cost n/a: no price by design (offline provider) (lash-offline)" in unpriced
