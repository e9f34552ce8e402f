"""The queue panel's title counts what is pending; parked and claimed batches are named as such.

After a batch is parked failed (issue 13), the queue panel listed it under "2 pending" next to
a real pending one, and the saved snapshot of an empty queue drew a table of headers only.
"""

from __future__ import annotations


def _row(batch_id: str, status: str, claimed: bool = False, error: str | None = None) -> dict:
    return {"batch_id": batch_id, "text": f"work {batch_id}", "delivery_policy":
            "after_current_turn_commit", "slot_policy": "exclusive", "merge_key": None,
            "claimed": claimed, "status": status, "error": error}


def test_a_parked_batch_is_not_counted_as_pending():
    from lash_nb._notebook.widgets.snapshot import queue_html

    html = queue_html("p1", "trip", [_row("qwb:1", "pending"),
                                     _row("qwb:2", "failed", error="boom"),
                                     _row("qwb:3", "claimed", claimed=True)])
    assert "Queue · trip: 1 pending, 1 claimed, 1 failed" in html
    assert "2 pending" not in html and "3 pending" not in html


def test_an_empty_queue_snapshot_says_so_without_an_empty_table():
    from lash_nb._notebook.widgets.snapshot import queue_html

    html = queue_html("p1", "trip", [])
    assert "Queue · trip: 0 pending" in html
    assert "<table" not in html and "nothing queued" in html


def test_a_turn_the_panels_drain_runs_shows_the_queued_prompts():
    """The queue panel's Drain streams each turn into the panel; its view quotes what was
    asked (the batches' texts), not only 'queued work started: <ids>'."""
    from lash_nb._notebook.widgets.queue import QueueWidget, batch_row

    rows = [{"batch_id": k, "items": [{"turn_input": {"text": v}}], "delivery_policy":
             "after_current_turn_commit", "slot_policy": "join"}
            for k, v in {"b1": "note one: buy milk", "b2": "note two: call Ada"}.items()]
    w = QueueWidget(load=lambda: rows)
    w.batches = [batch_row(b) for b in rows]
    w.show_drain_activity({"id": "a1", "correlation_id": "a1", "turn_id": "t1",
                           "type": "queued_work_started", "boundary": "idle",
                           "batch_ids": ["b1", "b2"]})
    w.show_drain_activity({"id": "a2", "correlation_id": "a2", "turn_id": "t1",
                           "type": "assistant_prose_delta", "text": "noted"})
    w.show_drain_activity({"id": "a3", "correlation_id": "a3", "turn_id": "t1",
                           "type": "turn_outcome", "outcome": {"finished": "assistant_message"}})
    [ran] = w.ran
    assert "note one: buy milk" in ran["html"] and "note two: call Ada" in ran["html"]
