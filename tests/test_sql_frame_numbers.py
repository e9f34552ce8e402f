"""``%lash sql`` and ``store.query`` give numbers a data scientist can plot and save (ADR 211).

The first query anyone writes over the store is a total: ``SELECT model, sum(input_tokens)
... GROUP BY model``. DuckDB sums a BIGINT into a HUGEINT, which reached pandas as a column
of ``decimal.Decimal`` objects (dtype ``object``): ``df.plot.bar`` said "no numeric data to
plot", ``describe()`` left the column out, and a rounded ``DECIMAL`` did the same. A time
span (``max(started_at) - min(started_at)``, an INTERVAL) was a column of pyarrow objects
``df.to_parquet`` refused. The PostgreSQL store already gave int64 / float64 for its
``numeric`` sums (``_store/postgres/query.py``); the DuckDB store now gives the same, and an
interval is a ``timedelta64`` as DuckDB's own ``.df()`` gives it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from notebook_harness import lash_shell

pytest.importorskip("pyarrow")


def _turns(sh) -> None:
    sh.run_cell("%lash open s --store nb.duckdb")
    for prompt in ("hello there", "and a longer question about the weather in Oslo"):
        sh.run_cell(f"%%lash\n{prompt}")


def test_a_sum_over_the_store_plots_describes_and_saves_as_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    with lash_shell(tmp_path, monkeypatch) as sh:
        _turns(sh)
        df = sh.run_cell("df = %lash sql SELECT model, sum(input_tokens) AS tokens, "
                         "sum(output_tokens) AS out_tokens, "
                         "round(avg(input_tokens)::DECIMAL(12, 2), 2) AS mean_in, "
                         "count(*) AS n FROM usage_deltas GROUP BY model\ndf")
        rows = sh.run_cell("%lash sql SELECT input_tokens, output_tokens FROM usage_deltas")
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "await _magics().ctx.close()")
    ins = [int(v) for v in rows["input_tokens"]]
    assert len(ins) == 2
    assert str(df["tokens"].dtype) == "int64" and str(df["out_tokens"].dtype) == "int64"
    assert str(df["mean_in"].dtype) == "float64"
    assert df["tokens"].tolist() == [sum(ins)]
    assert df["mean_in"].tolist() == [round(sum(ins) / 2, 2)]
    # what the user does next
    assert list(df.describe().columns) == ["tokens", "out_tokens", "mean_in", "n"]
    ax = df.plot.bar(x="model", y="tokens")
    assert [p.get_height() for p in ax.patches] == [sum(ins)]
    df.to_parquet(tmp_path / "totals.parquet")
    back = pd.read_parquet(tmp_path / "totals.parquet")
    assert back["tokens"].tolist() == [sum(ins)] and str(back["tokens"].dtype) == "int64"


def test_a_time_span_is_a_timedelta_that_saves_to_parquet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch) as sh:
        _turns(sh)
        df = sh.run_cell("%lash sql SELECT max(started_at) - min(started_at) AS span, "
                         "INTERVAL 90 MINUTE AS given, count(*) AS n FROM turns")
        starts = sh.run_cell("%lash sql SELECT started_at FROM turns ORDER BY started_at")
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "await _magics().ctx.close()")
    assert str(df["span"].dtype).startswith("timedelta64")
    first, last = starts["started_at"].tolist()
    assert df["span"][0] == last - first
    assert df["given"][0] == pd.Timedelta(minutes=90)
    df.to_parquet(tmp_path / "span.parquet")
    assert pd.read_parquet(tmp_path / "span.parquet")["given"][0] == pd.Timedelta(minutes=90)


def test_a_sum_too_big_for_int64_is_a_float_and_an_empty_sum_is_missing(
        tmp_path: Path) -> None:
    from lash_nb.stores import DuckDBStore

    store = DuckDBStore(tmp_path / "s.duckdb", idle_release_s=None)
    try:
        df = store.query("SELECT sum(x) AS big FROM (VALUES (9223372036854775807::BIGINT), "
                         "(9223372036854775807::BIGINT)) t(x)")
        empty = store.query("SELECT sum(input_tokens) AS tokens FROM usage_deltas")
    finally:
        store.close_sync()
    assert str(df["big"].dtype) == "float64"
    assert df["big"][0] == pytest.approx(2 * 9223372036854775807)
    assert empty["tokens"].isna().tolist() == [True]
    assert str(empty["tokens"].dtype) == "float64"  # a number column with no value yet
