"""Price tables: US dollars per million tokens, per model and per usage bucket.

Nothing is guessed: a model without a price gets a NaN cost (and a warning naming it); a
bucket missing from a model's prices makes the cost NaN for rows that used that bucket; a
tiered price (from the bundled snapshot, ``prices="default"``, see :mod:`.price_snapshot`)
makes it NaN for a row whose input reached the first tier. ``price_note`` says which of these
left a cost NaN. Reasoning tokens are part of output tokens, so they have no price of their
own (price them under ``output_tokens``).

The placeholder models of lash_nb's own providers (``lash-offline`` and the offline provider's
other ``lash-offline-*`` ids; ``function-model``, a ``FunctionProvider``'s when it is given no
model) have no price by
design: nothing bills them. Their cost is NaN too, with the note ``no price by design
(offline provider)`` and no warning (ADR 31). A ``FunctionProvider`` given a real model's
name is priced, and warned about, as that model.

``prices`` is a mapping, a CSV path, ``"default"`` (the snapshot) or a list of these, later
ones overriding earlier ones model by model: ``["default", {"my-model": {...}}]``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Mapping
from typing import Any

PRICED_BUCKETS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
)

PriceTable = dict[str, dict[str, float]]
DEFAULT = "default"
# the models of the providers that bill nothing (offline.OFFLINE_MODEL and its variants,
# FunctionProvider.default_model; tests/test_costs.py holds them equal)
OFFLINE_PREFIX, FUNCTION_MODEL = "lash-offline", "function-model"


def unpriced_by_design(model: str) -> str | None:
    """The lash_nb provider that serves ``model`` and bills nothing, else None."""
    if model.startswith(OFFLINE_PREFIX):
        return "offline provider"
    return "function provider" if model == FUNCTION_MODEL else None


def no_price_note(model: str) -> str:
    """Why a model without a price has none: by design, or not known."""
    by = unpriced_by_design(model)
    return f"no price by design ({by})" if by else "no price for this model"


def is_default(prices: Any) -> bool:
    return isinstance(prices, str) and prices == DEFAULT


def price_sources(prices: Any) -> list[Any]:
    """``prices`` as a list of sources (a mapping, a CSV path or ``"default"``)."""
    if isinstance(prices, (list, tuple)):
        if not prices:
            raise ValueError('prices is an empty list; pass "default", a mapping or a CSV path')
        return list(prices)
    return [prices]


def combine(prices: Any, models: Any) -> tuple[PriceTable, dict[str, int]]:
    """The price table (and tier starts) ``prices`` gives the stored ``models`` (a callable
    returning their names, asked only when the snapshot is used); later sources win."""
    table: PriceTable = {}
    tiers: dict[str, int] = {}
    for source in price_sources(prices):
        if is_default(source):
            from .price_snapshot import default_table

            found, found_tiers = default_table(models())
            table.update(found)
            tiers.update(found_tiers)
            continue
        user = load_prices(source)
        table.update(user)
        for model in user:
            tiers.pop(model, None)  # a user's price is flat
    return table, tiers


def load_prices(prices: Mapping[str, Mapping[str, float]] | str | os.PathLike[str]) -> PriceTable:
    """A mapping ``{model: {bucket: usd_per_million}}`` or a CSV path (``model`` + bucket columns)."""
    if isinstance(prices, (str, os.PathLike)):
        return _from_csv(os.fspath(prices))
    if not isinstance(prices, Mapping):
        raise TypeError(
            "prices must be a mapping {model: {bucket: usd_per_million}} or a CSV path, "
            f"got {type(prices).__name__}"
        )
    return {str(model): _check(str(model), buckets) for model, buckets in prices.items()}


def _check(model: str, buckets: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(buckets, Mapping):
        raise TypeError(
            f"prices[{model!r}] must map bucket names to US dollars per million tokens"
        )
    out: dict[str, float] = {}
    for bucket, value in buckets.items():
        if bucket == "reasoning_output_tokens":
            raise ValueError(
                f"prices[{model!r}] prices reasoning_output_tokens; reasoning is part of "
                "output_tokens, so price it under output_tokens only"
            )
        if bucket not in PRICED_BUCKETS:
            raise ValueError(
                f"prices[{model!r}] has unknown bucket {bucket!r}; use "
                + ", ".join(PRICED_BUCKETS)
            )
        if value is None or value == "":
            continue
        out[bucket] = _usd(model, bucket, value)
    return out


def _usd(model: str, bucket: str, value: Any) -> float:
    """One price cell as a finite number >= 0 (a CSV gives text); else one line naming it."""
    number = math.nan
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(
            f"prices[{model!r}][{bucket!r}] must be a finite number >= 0 (US dollars per million "
            f"tokens), got {value!r}; leave the bucket out when it has no price")
    return number


def _from_csv(path: str) -> PriceTable:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's "CSV UTF-8"
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "model" not in reader.fieldnames:
            found = ",".join(reader.fieldnames or ())[:120]
            raise ValueError(
                f"{path} needs a comma-separated header row with a 'model' column and bucket "
                f"columns ({', '.join(PRICED_BUCKETS)}); its first row is {found!r}"
            )
        table: PriceTable = {}
        for row in reader:
            model = (row.pop("model") or "").strip()
            if not model:
                continue
            missing = [k.strip() for k, v in row.items() if k and v is None]
            extra = [c for c in row.pop(None, None) or [] if c and c.strip()]
            if missing or extra:
                raise ValueError(
                    f"{path} line {reader.line_num}: the row of {model!r} has "
                    + (f"no cell for {', '.join(missing)}" if missing else "more cells than the header")
                    + "; give every row one cell per header column (an empty cell: no price)")
            table[model] = _check(model, {k.strip(): v.strip() for k, v in row.items() if k})
        return table


def prices_sql(table: PriceTable, tiers: Mapping[str, int] | None = None) -> tuple[str, dict[str, Any]]:
    """A subquery of prices ``(model, <buckets>, tier_start)`` with one parameter per cell."""
    tiers = tiers or {}
    if not table:
        cols = ", ".join(f"NULL::DOUBLE PRECISION AS {b}" for b in PRICED_BUCKETS)
        return (f"(SELECT NULL::VARCHAR AS model, {cols}, NULL::BIGINT AS tier_start "
                "WHERE false)"), {}
    params: dict[str, Any] = {}
    rows = []
    for i, (model, buckets) in enumerate(table.items()):
        params[f"pm{i}"] = model
        cells = [f"$pm{i}::VARCHAR"]
        for j, b in enumerate(PRICED_BUCKETS):
            params[f"p{i}_{j}"] = buckets.get(b)
            cells.append(f"$p{i}_{j}::DOUBLE PRECISION")
        params[f"pt{i}"] = tiers.get(model)
        cells.append(f"$pt{i}::BIGINT")
        rows.append("(" + ", ".join(cells) + ")")
    names = ", ".join(["model", *PRICED_BUCKETS, "tier_start"])
    return f"(SELECT * FROM (VALUES {', '.join(rows)}) AS v({names}))", params


def _over_tier(usage: str, price: str) -> str:
    whole_input = " + ".join(f"{usage}.{b}" for b in PRICED_BUCKETS if b != "output_tokens")
    return f"{price}.tier_start IS NOT NULL AND {whole_input} >= {price}.tier_start"


def row_cost_sql(usage: str = "u", price: str = "p") -> str:
    """Cost of one usage row in dollars; NULL when a used bucket has no price or the row's
    input reached a tiered price's first tier."""
    terms = [
        f"CASE WHEN {usage}.{b} = 0 THEN 0.0 ELSE {usage}.{b} * {price}.{b} END"
        for b in PRICED_BUCKETS
    ]
    return f"CASE WHEN {_over_tier(usage, price)} THEN NULL ELSE (" + " + ".join(terms) + ") / 1e6 END"


def row_note_sql(usage: str = "u", price: str = "p") -> str:
    """Why one usage row's cost is NULL (NULL when it is priced). Constant texts only."""
    missing = " ".join(
        f"WHEN {usage}.{b} <> 0 AND {price}.{b} IS NULL THEN 'no price for {b}'"
        for b in PRICED_BUCKETS
    )
    by_design = (f"WHEN {price}.model IS NULL AND {usage}.model LIKE '{OFFLINE_PREFIX}%' "
                 f"THEN '{no_price_note(OFFLINE_PREFIX)}' "
                 f"WHEN {price}.model IS NULL AND {usage}.model = '{FUNCTION_MODEL}' "
                 f"THEN '{no_price_note(FUNCTION_MODEL)}'")
    return (f"CASE {by_design} WHEN {price}.model IS NULL THEN 'no price for this model' "
            f"WHEN {_over_tier(usage, price)} THEN 'tiered price: the input reached ' || "
            f"CAST({price}.tier_start AS VARCHAR) || ' tokens; price it by hand' {missing} END")


def price_usage(usage: Mapping[str, int], price: Mapping[str, float] | None,
                tier_start: int | None = None, *, model: str = "") -> tuple[float | None, str | None]:
    """(cost in dollars, None) of one usage row, or (None, why): the rule of
    :func:`row_cost_sql` and :func:`row_note_sql`, for a row that is not in a database (a
    turn just finished)."""
    if price is None:
        return None, no_price_note(model)
    whole_input = sum(int(usage.get(b) or 0) for b in PRICED_BUCKETS if b != "output_tokens")
    if tier_start is not None and whole_input >= tier_start:
        return None, f"tiered price: the input reached {tier_start} tokens; price it by hand"
    total = 0.0
    for bucket in PRICED_BUCKETS:
        used = int(usage.get(bucket) or 0)
        if not used:
            continue
        if price.get(bucket) is None:
            return None, f"no price for {bucket}"
        total += used * price[bucket]
    return total / 1e6, None
