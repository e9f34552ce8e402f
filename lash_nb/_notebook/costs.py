"""What a turn and a session cost, for the turn footer, the session card and ``%lash usage --cost``.

Which prices apply is ``%config LashMagics.prices`` (or ``prices`` in ``[tool.lash_nb]``, or
``--prices`` on ``%lash usage``):

- ``default``: the bundled, dated genai-prices snapshot (``prices="default"`` of the reports);
- ``none``: no costs shown;
- the name of a notebook variable holding a table ``{model: {bucket: usd_per_million}}`` (or a
  list of tables), or a CSV path: that table on top of the snapshot, model by model.

A cost that cannot be given (a model without a price, a used bucket without one, a tiered price
past its first tier) is shown as ``n/a`` with the reason, never as $0 (ADR 31). A turn's cost
comes from its result (the rule of ``usage_frame``, without reading the store again); the
session card's from the store, once, when the session is opened.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from IPython.core.error import UsageError

OFF = ("none", "off", "")


def resolve_prices(spec: str, ns: Mapping[str, Any]) -> Any:
    """The ``prices=`` argument of the reports for a magic's ``spec``; None: costs off."""
    spec = spec.strip()
    if spec.lower() in OFF:
        return None
    if spec == "default":
        return "default"
    if spec.isidentifier() and spec in ns:
        table = ns[spec]
        extra = list(table) if isinstance(table, (list, tuple)) else [table]
        prices = ["default", *extra]
    elif os.path.isfile(os.path.expanduser(spec)):
        prices = ["default", os.path.expanduser(spec)]
    else:
        raise UsageError(
            f"prices {spec!r} is neither a notebook variable nor a CSV file; use default, none, "
            "a CSV path or the name of a dict {model: {bucket: usd_per_million}}")
    from .._reports.prices import load_prices

    for one in prices[1:]:
        try:
            load_prices(one)
        except (TypeError, ValueError, OSError) as err:
            raise UsageError(f"prices {spec!r}: {err}") from err
    return prices


class PriceProblem(str):
    """Prices that could not be read (the one-line reason): a turn still runs, and its footer
    says why it has no cost; only ``%lash usage --cost`` raises."""


def prices_for_display(spec: str, ns: Mapping[str, Any]) -> Any:
    """:func:`resolve_prices` for the footer and the card: a bad table never blocks a turn."""
    try:
        return resolve_prices(spec, ns)
    except UsageError as err:
        return PriceProblem(str(err))


def dollars(usd: float) -> str:
    if usd == 0:
        return "$0.00"
    if usd < 0.0001:
        return "<$0.0001"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


def cost_of(frame: Any, model_hint: str = "") -> dict[str, Any]:
    """``{usd, note, text}`` of the rows of a priced usage frame: a sum, or None with the first
    reason when any row has none. No rows: nothing used, nothing to show (``{}``)."""
    if frame is None or len(frame) == 0:
        return {}
    costs = [float(c) for c in frame["cost"]]
    if all(not math.isnan(c) for c in costs):
        usd = sum(costs)
        return {"usd": usd, "note": "", "text": dollars(usd)}
    notes = [str(n) for n in frame["price_note"] if isinstance(n, str) and n]
    unpriced = sorted({str(m) for m, c in zip(frame["model"], costs, strict=True) if math.isnan(c)})
    note = notes[0] if notes else "no price"
    if unpriced:
        note = f"{note} ({', '.join(unpriced)})"
    return {"usd": None, "note": note, "text": f"cost n/a: {note}"}


def _priced(session: Any, by: str, prices: Any) -> Any:
    from .._reports.frames import usage_frame

    with warnings.catch_warnings():  # the note says which model has no price
        warnings.simplefilter("ignore")
        return usage_frame(session, by=by, prices=prices)  # type: ignore[arg-type]


def turn_cost(result: Any, prices: Any) -> dict[str, Any]:
    """The cost of a finished turn, from its result (no store access: a DuckDB file shared
    with other processes is not taken once more for it); ``{}`` when costs are off or the
    turn used no tokens. The same rule as the reports (``prices.price_usage``)."""
    if prices is None or result is None:
        return {}
    if isinstance(prices, PriceProblem):
        return _unpriced(str(prices))
    by_model = _usage_by_model(result)
    if not by_model:
        return {}
    from .._reports.prices import combine, price_usage

    try:
        table, tiers = combine(prices, lambda: list(by_model))
    except (TypeError, ValueError, OSError) as err:
        return _unpriced(f"prices could not be read ({err})")
    total, notes, unpriced = 0.0, [], []
    for model, usage in by_model.items():
        cost, note = price_usage(usage, table.get(model), tiers.get(model), model=model)
        if cost is None:
            notes.append(note or "no price")
            unpriced.append(model)
        else:
            total += cost
    if unpriced:
        return _unpriced(f"{sorted(notes)[0]} ({', '.join(sorted(unpriced))})")
    return {"usd": total, "note": "", "text": dollars(total)}


def stored_turn_cost(result: Mapping[str, Any], prices: Any) -> dict[str, Any]:
    """``turn_cost`` of a turn read back from the store (its result's JSON, as ``%lash
    replay`` has it): the same footer as the turn had when it finished."""
    from .._core.usage import TokenUsage

    def call_usage(call: Mapping[str, Any]) -> TokenUsage:  # the attempt that completed
        done = [a.get("usage") for a in call.get("attempts") or () if a.get("usage")]
        return TokenUsage.from_json(done[-1] if done else None)

    calls = [SimpleNamespace(model=str(c.get("model")), usage=call_usage(c))
             for c in result.get("llm_calls") or () if isinstance(c, Mapping)]
    return turn_cost(SimpleNamespace(usage=TokenUsage.from_json(result.get("usage")),
                                     llm_calls=calls), prices)


def _usage_by_model(result: Any) -> dict[str, dict[str, int]]:
    """The turn's usage by model: its calls' models; one model takes the whole (estimated)
    usage of the turn."""
    calls = list(getattr(result, "llm_calls", ()) or ())
    total = result.usage.to_json()
    if not any(total.values()):
        return {}
    models = {c.model for c in calls}
    if len(models) == 1:
        return {models.pop(): total}
    out: dict[str, dict[str, int]] = {}
    for call in calls:
        row = out.setdefault(call.model, dict.fromkeys(total, 0))
        for bucket, value in call.usage.to_json().items():
            row[bucket] += value
    return out


def session_cost(session: Any, prices: Any) -> dict[str, Any]:
    """The cost of every turn of the session so far (``{}``: off, or no tokens used yet)."""
    if prices is None:
        return {}
    if isinstance(prices, PriceProblem):
        return _unpriced(str(prices))
    try:
        return cost_of(_priced(session, "model", prices))
    except Exception as err:
        return _unreadable(err)


def _unreadable(err: BaseException) -> dict[str, Any]:
    return _unpriced(f"the usage could not be read ({type(err).__name__})")


def _unpriced(note: str) -> dict[str, Any]:
    return {"usd": None, "note": note, "text": f"cost n/a: {note}"}
