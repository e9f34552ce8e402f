"""Price tables: US dollars per million tokens, per model and per usage bucket.

Nothing is bundled and nothing is guessed: a model without a price gets a NaN cost (and a
warning naming it); a bucket missing from a model's prices makes the cost NaN for rows that
used that bucket. Reasoning tokens are part of output tokens, so they have no price of
their own (price them under ``output_tokens``).
"""

from __future__ import annotations

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
        number = float(value)
        if math.isnan(number) or number < 0:
            raise ValueError(f"prices[{model!r}][{bucket!r}] must be a number >= 0, got {value!r}")
        out[bucket] = number
    return out


def _from_csv(path: str) -> PriceTable:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "model" not in reader.fieldnames:
            raise ValueError(
                f"{path} needs a header row with a 'model' column and bucket columns "
                f"({', '.join(PRICED_BUCKETS)})"
            )
        table: PriceTable = {}
        for row in reader:
            model = (row.pop("model") or "").strip()
            if not model:
                continue
            table[model] = _check(model, {k.strip(): v.strip() for k, v in row.items() if k})
        return table


def prices_sql(table: PriceTable) -> tuple[str, dict[str, Any]]:
    """A subquery of prices ``(model, <buckets>)`` with one parameter per cell."""
    if not table:
        cols = ", ".join(f"NULL::DOUBLE PRECISION AS {b}" for b in PRICED_BUCKETS)
        return f"(SELECT NULL::VARCHAR AS model, {cols} WHERE false)", {}
    params: dict[str, Any] = {}
    rows = []
    for i, (model, buckets) in enumerate(table.items()):
        params[f"pm{i}"] = model
        cells = [f"$pm{i}::VARCHAR"]
        for j, b in enumerate(PRICED_BUCKETS):
            params[f"p{i}_{j}"] = buckets.get(b)
            cells.append(f"$p{i}_{j}::DOUBLE PRECISION")
        rows.append("(" + ", ".join(cells) + ")")
    names = ", ".join(["model", *PRICED_BUCKETS])
    return f"(SELECT * FROM (VALUES {', '.join(rows)}) AS v({names}))", params


def row_cost_sql(usage: str = "u", price: str = "p") -> str:
    """Cost of one usage row in dollars; NULL when a used bucket has no price."""
    terms = [
        f"CASE WHEN {usage}.{b} = 0 THEN 0.0 ELSE {usage}.{b} * {price}.{b} END"
        for b in PRICED_BUCKETS
    ]
    return "(" + " + ".join(terms) + ") / 1e6"
