"""A bare ``%lash sql`` shows a bounded number of rows; assigned, it holds them all.

Before, ``%lash sql SELECT * FROM commit_log`` brought every row into the kernel and
displayed the whole frame: with pandas set to show every row (``display.max_rows = None``,
a common setting) a 20,000-row answer wrote megabytes into the cell and the saved .ipynb
(a million rows: hundreds of MB, a notebook that no longer opens), and the frame stayed in
``Out`` either way. Now the bare form brings the first ``LashMagics.sql_rows`` rows and the
count, says "showing N of M rows" and how to get them all; ``df = %lash sql ...`` is as
before, every row.
"""

from __future__ import annotations

import json

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TOTAL = 20_000
QUERY = f"SELECT range AS i, repeat('x', 100) AS t FROM range({TOTAL}) ORDER BY i DESC"


def _run(cells: list[str], cwd) -> tuple[list, list[int]]:
    """The executed cells as the saved notebook reopens them, and each cell's outputs' size
    in the saved file (bytes of JSON)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    saved = cwd / "saved.ipynb"
    saved.write_text(nbformat.writes(nb), encoding="utf-8")
    raw = json.loads(saved.read_text(encoding="utf-8"))["cells"]
    return nbformat.read(saved, as_version=4).cells, [len(json.dumps(c["outputs"])) for c in raw]


def _text(cell: dict) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for o in cell["outputs"])


@pytest.mark.slow  # a real kernel
def test_a_bare_query_shows_a_bounded_head_and_an_assigned_one_holds_every_row(tmp_path) -> None:
    cells, sizes = _run([
        ("%load_ext lash_nb\nimport pandas as pd\npd.set_option('display.max_rows', None)\n"
         "cap = get_ipython().magics_manager.registry['LashMagics'].sql_rows\nprint(cap)"),
        "%lash open s --store lash.duckdb",
        f"%lash sql {QUERY}",  # the flood, before
        "print(len(_))",
        f"%lash sql {QUERY} LIMIT {{cap}}",  # exactly the cap's rows: the size to compare with
        f"df = %lash sql {QUERY}\nprint(len(df), df['i'].iloc[0], df['i'].iloc[-1])",
        "%config LashMagics.sql_rows = 3",
        f"%lash sql {QUERY}",
    ], tmp_path)
    cap = int(_text(cells[0]).split()[-1])  # after the notice an older ipykernel gets
    assert 0 < cap < TOTAL
    bare, capped = cells[2], cells[4]
    size_bare, size_capped = sizes[2], sizes[4]
    # the saved cell is no bigger than a cell of exactly `cap` rows, plus the one line
    # that says what is shown
    note = [o["text"] for o in bare["outputs"] if o["output_type"] == "stream"]
    assert len(note) == 1 and len(note[0].splitlines()) == 1, note
    assert f"showing the first {cap} of {TOTAL:,} rows" in note[0], note
    assert "df = %lash sql" in note[0], note
    assert size_bare <= size_capped + len(json.dumps(note[0])) + 100, (size_bare, size_capped)
    # the rows shown are the query's first ones, in its order
    shown = [o for o in bare["outputs"] if o["output_type"] == "execute_result"]
    assert len(shown) == 1 and str(TOTAL - 1) in shown[0]["data"]["text/plain"]
    assert _text(cells[3]).strip() == str(cap)  # `_` is the head, not 20,000 rows
    # the capped query (exactly cap rows) says nothing more
    assert not [o for o in capped["outputs"] if o["output_type"] == "stream"]
    # assigned: every row, in order
    assert _text(cells[5]).strip() == f"{TOTAL} {TOTAL - 1} 0"
    # the setting
    three = cells[7]
    assert f"showing the first 3 of {TOTAL:,} rows" in _text(three)
    assert sizes[7] < size_bare


def test_the_head_keeps_the_querys_order_and_names_and_counts_the_rest(tmp_path) -> None:
    """The store's side: the first rows in the query's own order, a name given twice kept
    twice, and the count of every row (fewer rows than asked: all of them)."""
    import asyncio

    from lash_nb.stores import DuckDBStore

    async def body() -> list:
        store = DuckDBStore(tmp_path / "h.duckdb")
        try:
            ordered = await store.query_head_async(
                "SELECT range AS i FROM range(1000) ORDER BY i DESC", 3)
            twice = await store.query_head_async("SELECT 1 AS a, 2 AS a FROM range(10)", 4)
            few = await store.query_head_async("SELECT 7 AS n", 50)
            return [(ordered[0]["i"].tolist(), ordered[1]),
                    (list(twice[0].columns), twice[0].values.tolist(), twice[1]),
                    (few[0]["n"].tolist(), few[1])]
        finally:
            await store.close()

    assert asyncio.run(body()) == [
        ([999, 998, 997], 1000),
        (["a", "a"], [[1, 2]] * 4, 10),
        ([7], 1),
    ]
