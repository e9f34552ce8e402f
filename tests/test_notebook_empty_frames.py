"""A shown ``--df`` table with no rows says so above it and names its session, as ``%lash
usage`` does (ADR 199): ``%lash queue --df`` of an empty queue and ``%lash graph --df`` of a
session with no turn yet showed a bare header, read as a failure (or as another session's).
Assigned (``df = %lash queue --df``), the empty frame is for code and nothing is printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from notebook_harness import lash_shell


def _shown(sh: Any, capsys: pytest.CaptureFixture[str], cell: str) -> tuple[Any, str]:
    """The cell's value and what it printed above it (the shell then prints ``Out[n]:`` and
    the frame)."""
    capsys.readouterr()
    value = sh.run_cell(cell)
    return value, capsys.readouterr().out.split("Out[", 1)[0]


COLUMNS = ["batch_id", "text", "source_key", "delivery_policy", "slot_policy", "merge_key",
           "enqueued_at", "claimed"]


def test_an_empty_queue_frame_says_which_session_and_how_to_fill_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with lash_shell(tmp_path, monkeypatch, "%lash open reviews --store :memory:") as sh:
        shown, said = _shown(sh, capsys, "%lash queue --df")
        _, assigned_said = _shown(sh, capsys, "q = %lash queue --df")
        assigned = sh.user_ns["q"]
        sh.run_cell("%lash enqueue --id r1 review the first file")
        one, one_said = _shown(sh, capsys, "%lash queue --df")
    assert said == ("the queue of session 'reviews' is empty: no batch pending, running or "
                    "failed (%lash enqueue PROMPT queues one)\n")
    assert list(shown.columns) == COLUMNS and len(shown) == 0  # still a frame for code
    assert assigned_said == "" and list(assigned.columns) == COLUMNS and len(assigned) == 0
    assert one_said == "" and list(one["text"]) == ["review the first file"]


def test_the_empty_queue_line_names_the_session_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with lash_shell(tmp_path, monkeypatch, "%lash open busy --store lash.duckdb",
                    "%lash enqueue one prompt", "%lash open idle") as sh:
        _, idle = _shown(sh, capsys, "%lash queue --df --session idle")
        busy, busy_said = _shown(sh, capsys, "%lash queue --df --session busy")
    assert idle.startswith("the queue of session 'idle' is empty"), idle
    assert busy_said == "" and len(busy) == 1


def test_an_empty_graph_frame_says_the_session_has_no_nodes_yet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with lash_shell(tmp_path, monkeypatch, "%lash open fresh --store :memory:") as sh:
        empty, said = _shown(sh, capsys, "%lash graph --df")
        sh.run_cell("%%lash\nhello")
        full, full_said = _shown(sh, capsys, "%lash graph --df")
    assert said == ("the graph of session 'fresh' has no nodes yet: a turn's messages show "
                    "here once it has run\n")
    assert len(empty) == 0 and list(empty.columns) == list(full.columns)
    assert full_said == "" and len(full) >= 2  # the prompt and the answer
