"""``PostgresStore.query``: DuckDB-style placeholders in, a pandas DataFrame out.

Reports and ``%lash sql`` write SQL with ``?`` (positional) or ``$name`` (named) parameters,
as DuckDB takes them; psycopg wants ``%s`` / ``%(name)s`` and a doubled literal ``%``.
``translate`` rewrites outside string literals and quoted names; SQL already written for
psycopg (containing ``%s`` or ``%(``) is passed through. Rows go through Arrow so column
types come out as from the DuckDB store (``numeric`` sums become int64 or float64).
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Sequence
from typing import Any

_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def translate(sql: str, params: Any) -> tuple[str, Any]:
    if params is None:
        return sql, None
    if "%s" in sql or "%(" in sql:
        return sql, params
    out: list[str] = []
    i, n, quote = 0, len(sql), ""
    while i < n:
        ch = sql[i]
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch == "?":
            out.append("%s")
        elif ch == "$" and isinstance(params, dict):
            m = _NAMED.match(sql, i)
            if m:
                out.append(f"%({m.group(1)})s")
                i = m.end()
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out), params if isinstance(params, dict) else list(params)


def _plain(values: Sequence[Any]) -> list[Any]:
    if not any(isinstance(v, decimal.Decimal) for v in values):
        return list(values)
    integral = all(v is None or v == v.to_integral_value() for v in values)
    return [None if v is None else (int(v) if integral else float(v)) for v in values]


def frame(names: list[str], rows: Sequence[Sequence[Any]]) -> Any:
    import pandas as pd
    import pyarrow as pa

    if not names:
        return pd.DataFrame()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for col in columns:
        try:
            arrays.append(pa.array(_plain(col)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in col]))
    # duplicate column names are allowed in SQL results: build by position
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(names))])
    df = table.to_pandas()
    df.columns = names
    return df
