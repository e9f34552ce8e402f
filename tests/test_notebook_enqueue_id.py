"""``%lash enqueue --id K`` twice: the id makes the enqueue idempotent (lash's source key), so
the second prompt is not queued; the notebook must say so rather than print "queued" as if
it were, or the user believes their second input waits in the queue."""

from __future__ import annotations

from typing import Any

import test_notebook_magics

sh = test_notebook_magics.sh  # the fixture: a notebook shell on an in-memory store


def test_a_second_enqueue_with_the_same_id_says_it_was_not_queued_again(sh: Any, capsys: Any) -> None:
    sh.run_cell("%lash open s1")
    capsys.readouterr()
    sh.run_cell("%lash enqueue --id k first text")
    first = capsys.readouterr().out
    assert first.startswith("queued qwb:")
    sh.run_cell("%lash enqueue --id k second different text")
    said = capsys.readouterr().out
    assert not said.startswith("queued ")
    assert "already queued" in said and "--id k" in said and "first text" in said
    assert "\n" not in said.strip()
    queue = sh.run_cell("%lash queue --df")
    assert list(queue["text"]) == ["first text"]  # what is stored is what the line says


def test_the_same_id_after_its_batch_ran_queues_the_new_prompt(sh: Any, capsys: Any) -> None:
    sh.run_cell("%lash open s1")
    sh.run_cell("%lash enqueue --id k first text")
    sh.run_cell("%lash drain")
    capsys.readouterr()
    sh.run_cell("%lash enqueue --id k again later")
    assert capsys.readouterr().out.startswith("queued qwb:")
    assert list(sh.run_cell("%lash queue --df")["text"]) == ["again later"]
