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
