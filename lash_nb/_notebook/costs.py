"""What a turn and a session cost, for the turn footer, the session card and ``%lash usage --cost``.

Which prices apply is ``%config LashMagics.prices`` (or ``prices`` in ``[tool.lash_nb]``, or
``--prices`` on ``%lash usage``):

- ``default``: the bundled, dated genai-prices snapshot (``prices="default"`` of the reports);
- ``none``: no costs shown;
- the name of a notebook variable holding a table ``{model: {bucket: usd_per_million}}`` (or a
  list of tables), or a CSV path: that table on top of the snapshot, model by model.

A cost that cannot be given (a model without a price, a used bucket without one, a tiered price
past its first tier) is shown as ``n/a`` with the reason, never as $0 (ADR 31). The costs are
read from the store after the turn's commit: the same numbers ``usage_frame`` gives.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
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


def turn_cost(session: Any, turn_id: str, prices: Any) -> dict[str, Any]:
    """The cost of one committed turn (``{}`` when costs are off or it used no tokens). It
    never fails the turn: a report that cannot be read says so in the note."""
    if prices is None or not turn_id:
        return {}
    if isinstance(prices, PriceProblem):
        return _unpriced(str(prices))
    try:
        frame = _priced(session, "turn", prices)
    except Exception as err:  # the turn is committed; only its price line is lost
        return _unreadable(err)
    return cost_of(frame[frame["turn_id"] == turn_id])


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
