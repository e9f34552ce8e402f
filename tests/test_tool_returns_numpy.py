"""What a data notebook's tools return: numpy arrays and scalars, a pandas Series.

An array reached the model as numpy's console repr, ``[   0    1    2 ... 1997 1998 1999]``:
1,994 values silently left out, the model reading "..." as data. A dict holding one
``np.int64`` (``df.x.sum()``) became Python's repr of the whole dict, and a Series its console
repr with "...". Now an array or a numpy scalar reaches the model as JSON numbers (the session's
bound cuts a long one and says so), and a Series as a DataFrame does (its CSV).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pandas as pd

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


@tool
def ids() -> Any:
    """Every id."""
    return np.arange(2000)


@tool
def stats() -> Any:
    """Summary numbers."""
    return {"mean": np.float64(1.5), "n": np.int64(3), "ok": np.bool_(True)}


@tool
def counts() -> Any:
    """Counts per city."""
    return pd.Series([4, 5, 6], index=["Oslo", "Paris", "Rome"], name="n")


def _sent(name: str) -> str:
    seen: list[str] = []

    def model(request: Any) -> Any:
        results = request.messages[-1].tool_results()
        if results:
            seen.append(results[0].content)
            return "done"
        return [tool_call(name, "{}", "c1")]

    async def body() -> None:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            ids, stats, counts).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        assert out.result.tool_calls[0].success
        await core.close()

    asyncio.run(body())
    return seen[0]


def test_an_array_reaches_the_model_with_every_value() -> None:
    assert json.loads(_sent("ids")) == list(range(2000))


def test_numpy_scalars_in_a_dict_keep_it_a_json_object() -> None:
    assert json.loads(_sent("stats")) == {"mean": 1.5, "n": 3, "ok": True}


def test_a_series_reaches_the_model_as_its_csv() -> None:
    assert _sent("counts") == ",n\nOslo,4\nParis,5\nRome,6\n"
