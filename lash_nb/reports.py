"""Reports (public namespace; re-exports only).

Read-side projections to pandas DataFrames, computed in the store's database (DuckDB, or
PostgreSQL for the PostgreSQL store; the same columns, dtypes and values on every store):
``usage_frame``, ``turns_frame``, ``llm_calls_frame``, ``tool_calls_frame``, ``queue_frame``,
``graph_frame``; charts (``usage_chart``, ``turn_duration_chart``, ``queue_wait_chart``);
``read_lash_trace`` imports a lash trace JSONL file into the same frames, and
``write_lash_trace`` writes a session's (or a store's) turns as one.
"""

from ._reports.charts import Chart, queue_wait_chart, turn_duration_chart, usage_chart
from ._reports.frames import (
    graph_frame,
    llm_calls_frame,
    queue_frame,
    tool_calls_frame,
    turns_frame,
    usage_columns,
    usage_frame,
)
from ._reports.prices import load_prices
from ._reports.trace import LashTrace, read_lash_trace
from ._reports.trace_write import write_lash_trace

__all__ = [
    "Chart",
    "LashTrace",
    "graph_frame",
    "llm_calls_frame",
    "load_prices",
    "queue_frame",
    "queue_wait_chart",
    "read_lash_trace",
    "tool_calls_frame",
    "turn_duration_chart",
    "turns_frame",
    "usage_chart",
    "usage_columns",
    "usage_frame",
    "write_lash_trace",
]
