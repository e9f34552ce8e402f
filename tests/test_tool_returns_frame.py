"""A tool that returns a pandas DataFrame: the model reads every column and row of a small
frame, and a large one as the same summary an attached frame gets (ADR 50's text form).

Before, the result was ``str(df)``: pandas' console repr, which hides the middle columns of a
frame wider than 20 columns and the middle rows of one longer than 60 behind ``...``. The
model was told a 12 x 30 frame without 10 of its columns and nobody saw that it was."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider, LlmPart, LlmRequest


def _run(frame: pd.DataFrame) -> tuple[str, Any]:
    @tool
    def sales_table(region: str) -> Any:
        """The sales table of a region."""
        return frame

    seen: list[str] = []

    def model(request: LlmRequest) -> Any:
        results = request.messages[-1].tool_results()
        if results:
            seen.append(results[0].content)
            return "read it"
        return [LlmPart.tool_call("c1", "sales_table", '{"region": "north"}')]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).tools(sales_table).build()
        s = await core.session("s").open()
        out = await s.turn("show me the north").run()
        await core.close()
        return out.result

    result = asyncio.run(body())
    return seen[0], result


def test_a_wide_frame_reaches_the_model_with_every_column_and_value() -> None:
    frame = pd.DataFrame({f"m{i:02d}": [r * 100 + i for r in range(12)] for i in range(30)})
    text, result = _run(frame)
    assert str(result.outcome) == "finished: assistant_message"
    assert "..." not in text
    header, *rows = text.strip().splitlines()
    assert header == "," + ",".join(f"m{i:02d}" for i in range(30))
    assert len(rows) == 12
    assert rows[11] == "11," + ",".join(str(1100 + i) for i in range(30))
    assert result.tool_calls[0].output == text  # what is stored is what the model read


def test_a_long_frame_reaches_the_model_as_a_summary_that_says_so() -> None:
    frame = pd.DataFrame({"day": range(1000), "amount": [d * 2 for d in range(1000)]})
    text, _ = _run(frame)
    assert text.startswith("# DataFrame: 1000 rows x 2 columns (summarised")
    assert "## schema\nday: int64\namount: int64" in text
    assert "## describe()" in text


def test_a_missing_value_reads_as_nan_and_an_empty_text_as_empty() -> None:
    """A data scientist's frame has a missing sale (NaN) and a region with no note (""): the
    notebook shows ``NaN`` and an empty cell. Before, the CSV the model read had a blank cell
    for both (pandas' ``to_csv`` default), so it could not tell a missing number from an
    empty text, while the README says a tool's NaN reaches the model as "NaN" (ADR 139, 219).
    """
    frame = pd.DataFrame({"region": ["north", "south"], "sales": [120.5, float("nan")],
                          "note": ["", "late"]})
    seen, _ = _run(frame)
    assert seen.splitlines() == [",region,sales,note", "0,north,120.5,", "1,south,NaN,late"]
    # pandas reads it back as the frame it was
    import io

    back = pd.read_csv(io.StringIO(seen), index_col=0, keep_default_na=False,
                       na_values=["NaN"])
    assert back["sales"].isna().tolist() == [False, True]
    assert back["note"].tolist() == ["", "late"]
