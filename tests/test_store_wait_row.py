"""The row a turn's widget shows while its finished turn waits for the store says what is
true at each moment: no "waiting 0.0 s" when the wait has just begun (docs/adr/0185)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._notebook.runner import run_turn
from lash_nb._notebook.widgets.turn import TurnWidget
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore


def test_the_first_row_of_a_moved_file_wait_shows_no_zero_seconds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    rows: list[str] = []
    shown: list[TurnWidget] = []
    monkeypatch.setattr(TurnWidget, "show", lambda self: (shown.append(self), self)[1])
    push = TurnWidget.push

    def watched(self: TurnWidget, activity: Any) -> None:
        push(self, activity)
        if getattr(getattr(activity, "event", None), "type", None) == "store_wait":
            row = next(b["text"] for b in self.fold.blocks if b.get("cid") == "~store_wait")
            rows.append(row)
            if moved.exists():  # the user reads the first row and puts the file back
                moved.rename(path)

    monkeypatch.setattr(TurnWidget, "push", watched)

    def model(request: Any) -> str:
        if "tidy" in request.messages[-1].text():
            path.rename(moved)  # while the model answers, the file is moved away
        return "an answer"

    async def notebook() -> Any:
        core = (LashCore.builder().provider(FunctionProvider(model))
                .store(DuckDBStore(path)).build())
        try:
            s = await core.session("nb").open()
            await s.turn("a first question").run()
            return await run_turn(s, "tidy the folder")
        finally:
            await core.close()

    result = asyncio.run(notebook())
    assert result.head_revision is not None  # saved once back
    assert rows, "the turn never showed its wait"
    first = rows[0]
    assert first.startswith("not saved yet: the store's file was moved or deleted"), first
    assert "0.0 s" not in first and "(waiting)" in first, first
    assert rows[-1].startswith("saved once the store's file was back"), rows
