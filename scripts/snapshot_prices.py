"""Write ``lash_nb/_reports/prices_snapshot.json`` from the genai-prices package's data.

Usage (genai-prices is not a dependency of lash_nb; fetch it only to refresh the snapshot)::

    pip download genai-prices --no-deps -d /tmp/gp && unzip -o /tmp/gp/*.whl -d /tmp/gp/x
    PYTHONPATH=/tmp/gp/x python scripts/snapshot_prices.py

Kept: the OpenAI and Anthropic models, Google's Gemini models; per model the match rule (as
data), the price in force on the snapshot date for the four buckets lash_nb counts, and the
input-size tiers of a tiered price. Prices that depend on the time of day are left out (the
report cannot tell when a call was made in the provider's time zone).
"""

from __future__ import annotations

import datetime
import json
import sys
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from genai_prices import types as gp  # type: ignore[import-not-found]
from genai_prices.data import providers  # type: ignore[import-not-found]

OUT = Path(__file__).resolve().parents[1] / "lash_nb" / "_reports" / "prices_snapshot.json"
KEEP = {"openai": lambda m: True, "anthropic": lambda m: True,
        "google": lambda m: "gemini" in m.id}
BUCKETS = {"input_mtok": "input_tokens", "output_mtok": "output_tokens",
           "cache_read_mtok": "cache_read_input_tokens",
           "cache_write_mtok": "cache_write_input_tokens"}


def clause(c: Any) -> dict[str, Any]:
    for cls, key in ((gp.ClauseEquals, "equals"), (gp.ClauseStartsWith, "starts_with"),
                     (gp.ClauseEndsWith, "ends_with"), (gp.ClauseContains, "contains"),
                     (gp.ClauseRegex, "regex")):
        if isinstance(c, cls):
            return {key: getattr(c, key)}
    if isinstance(c, gp.ClauseOr):
        return {"or": [clause(x) for x in c.or_]}
    if isinstance(c, gp.ClauseAnd):
        return {"and": [clause(x) for x in c.and_]}
    raise TypeError(f"unknown match clause {c!r}")


def in_force(model: Any, today: datetime.date) -> Any:
    prices = model.prices
    if not isinstance(prices, list):
        return prices
    best, best_start = None, datetime.date.min
    for conditional in prices:
        constraint = conditional.constraint
        if constraint is None:
            start = datetime.date.min
        elif isinstance(constraint, gp.StartDateConstraint):
            start = constraint.start_date
        else:
            return None  # a time-of-day price
        if start <= today and (best is None or start >= best_start):
            best, best_start = conditional.prices, start
    return best


def number(value: Decimal) -> float:
    return float(value)


def entry(provider: str, model: Any, today: datetime.date) -> dict[str, Any] | None:
    price = in_force(model, today)
    if price is None:
        return None
    prices: dict[str, float] = {}
    tiers: list[dict[str, Any]] = []
    for key, bucket in BUCKETS.items():
        value = getattr(price, key, None)
        if value is None:
            continue
        if isinstance(value, gp.TieredPrices):
            prices[bucket] = number(value.base)
            tiers += [{"bucket": bucket, "start": t.start, "price": number(t.price)} for t in value.tiers]
        else:
            prices[bucket] = number(value)
    if "input_tokens" not in prices or "output_tokens" not in prices:
        return None
    out: dict[str, Any] = {"provider": provider, "id": model.id, "match": clause(model.match),
                           "prices": prices}
    if tiers:
        out["tiers"] = tiers
    return out


def main() -> int:
    today = datetime.date.today()
    models = [e for p in providers if p.id in KEEP for m in p.models if KEEP[p.id](m)
              if (e := entry(p.id, m, today)) is not None]
    snapshot = {
        "source": f"genai-prices {metadata.version('genai-prices')} "
                  "(https://github.com/pydantic/genai-prices, MIT License, "
                  "Copyright (c) Pydantic Services Inc.)",
        "snapshot_date": today.isoformat(),
        "unit": "US dollars per million tokens",
        "models": models,
    }
    OUT.write_text(json.dumps(snapshot, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{len(models)} models -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
