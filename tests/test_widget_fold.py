"""The turn view's fold and the widgets' Python side (no kernel)."""

from __future__ import annotations

import asyncio

import pytest

from lash_nb._notebook.widgets.fold import TurnFold, outcome_label
from lash_nb._notebook.widgets.queue import QueueWidget
from lash_nb._notebook.widgets.tools import ToolCatalogWidget
from lash_nb._notebook.widgets.turn import TurnWidget


def prose(cid: str, text: str) -> dict:
    return {"id": f"{cid}-{text}", "correlation_id": cid, "type": "assistant_prose_delta", "text": text}


def reasoning(cid: str, text: str) -> dict:
    return {"id": f"{cid}-{text}", "correlation_id": cid, "type": "reasoning_delta", "text": text}


def test_prose_deltas_of_one_correlation_id_fold_into_one_row():
    f = TurnFold()
    f.apply_all([prose("p1", "Hel"), prose("p1", "lo "), prose("p1", "world")])
    assert f.blocks == [{"cid": "p1", "kind": "prose", "text": "Hello world"}]


def test_attempt_reset_deletes_exactly_the_listed_rows_and_keeps_tools():
    f = TurnFold()
    f.apply_all([
        reasoning("r1", "thinking A"),
        prose("p1", "attempt one"),
        {"id": "t", "correlation_id": "tool:c1", "type": "tool_call_started", "call_id": "c1",
         "name": "add", "args": {"a": 1}},
        prose("p2", "attempt two"),
        {"id": "x", "correlation_id": "x", "type": "model_attempt_reset",
         "assistant_prose_correlation_ids": ["p1", "p2"], "reasoning_correlation_ids": ["r1"]},
        prose("p3", "attempt three"),
        prose("p2", " late?"),
    ])
    assert f.prose == "attempt three late?"
    assert f.reasoning == ""
    assert [b["kind"] for b in f.blocks] == ["tool", "prose", "prose"]


def test_identical_text_in_different_attempts_is_not_deduplicated():
    f = TurnFold()
    f.apply_all([prose("p1", "same"), prose("p2", "same")])
    assert f.prose == "samesame"


def test_tool_start_and_completion_update_one_row():
    f = TurnFold()
    f.apply_all([
        {"id": "1", "correlation_id": "tool:c9", "type": "tool_call_started", "call_id": "c9",
         "name": "lookup", "args": {"q": "x"}},
        {"id": "2", "correlation_id": "tool:c9", "type": "tool_call_completed", "call_id": "c9",
         "name": "lookup", "args": {"q": "x"}, "output": "found", "duration_ms": 12.5,
         "success": False},
    ])
    assert f.tool_rows() == [{
        "cid": "tool:c9", "kind": "tool", "name": "lookup", "status": "failed", "call_id": "c9",
        "args": {"q": "x"}, "output": "found", "duration_ms": 12.5,
    }]


def test_usage_is_the_latest_cumulative_and_retries_accumulate():
    f = TurnFold()
    f.apply_all([
        {"id": "1", "correlation_id": "1", "type": "usage", "protocol_iteration": 0,
         "usage": {"input_tokens": 5}, "cumulative": {"input_tokens": 5, "output_tokens": 2}},
        {"id": "2", "correlation_id": "2", "type": "usage", "protocol_iteration": 1,
         "usage": {"input_tokens": 7}, "cumulative": {"input_tokens": 12, "output_tokens": 9}},
        {"id": "3", "correlation_id": "3", "type": "retry_status", "wait_seconds": 1.5,
         "attempt": 2, "max_attempts": 4, "reason": "429"},
    ])
    assert f.usage == {"input_tokens": 12, "output_tokens": 9}
    assert f.retries == [{"attempt": 2, "max_attempts": 4, "wait_seconds": 1.5, "reason": "429"}]


def test_unknown_activity_types_are_ignored():
    f = TurnFold()
    f.apply({"id": "1", "correlation_id": "1", "type": "plugin_runtime", "plugin_id": "p"})
    assert f.blocks == [] and f.version == 0


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ({"stopped": "cancelled"}, "stopped: cancelled"),
        ({"finished": {"assistant_message": {"text": "hi"}}}, "finished: assistant_message"),
        ({"stopped": "provider_error"}, "stopped: provider_error"),
        ("stopped: max_turns", "stopped: max_turns"),
    ],
)
def test_outcome_labels_read_like_lash(raw, label):
    assert outcome_label(raw) == label


def test_without_a_running_loop_pushes_within_the_interval_are_held_until_finish():
    w = TurnWidget(interval_s=3600.0)
    w.push(prose("p1", "a"))  # first push: the interval since "never" has passed
    w.push(prose("p1", "b"))
    w.push(prose("p1", "c"))
    assert w.shown()["blocks"] == [{"cid": "p1", "kind": "prose", "text": "a"}]
    w.finish(outcome="finished: assistant_message")
    assert w.blocks == [{"cid": "p1", "kind": "prose", "text": "abc"}]
    assert w.flush_count == 2
    assert w.status == "done"


def test_on_a_running_loop_a_burst_of_pushes_is_one_flush():
    async def main() -> TurnWidget:
        w = TurnWidget(interval_s=0.05)
        for _i in range(1000):
            w.push(prose("p1", "x"))
        await asyncio.sleep(0.1)  # let the scheduled call_later fire (it is the thing under test)
        return w

    w = asyncio.run(main())
    assert w.flush_count == 1
    assert w.shown()["blocks"][0]["text"] == "x" * 1000


def test_stopped_turn_marks_running_tools_cancelled_and_the_badge_is_not_done():
    w = TurnWidget()
    w.push({"id": "1", "correlation_id": "tool:c1", "type": "tool_call_started", "call_id": "c1",
            "name": "sleep", "args": {}})
    w.finish({"outcome": {"stopped": "cancelled"}})
    assert w.outcome == "stopped: cancelled"
    assert w.blocks[0]["status"] == "cancelled"
    assert w.status == "stopped"


def test_stop_request_calls_the_stop_callback_once_per_click_and_not_after_done():
    calls: list[str] = []
    w = TurnWidget(on_stop=lambda: calls.append("stop"))
    w._on_custom(w, {"type": "stop"}, [])
    w._on_custom(w, {"type": "other"}, [])
    assert calls == ["stop"] and w.status == "stopping"
    w.finish(outcome="stopped: cancelled")
    w._on_custom(w, {"type": "stop"}, [])
    assert calls == ["stop"]


def test_tool_toggle_calls_set_membership_and_reloads():
    members = {"add": True, "search": True}
    w = ToolCatalogWidget(
        load=lambda: [{"id": f"fn:{n}", "name": n, "description": n.upper(), "member": m,
                       "input_schema": {"type": "object"}} for n, m in members.items()],
        set_membership=lambda name, on: members.__setitem__(name, on),
    )
    w._on_custom(w, {"type": "toggle", "name": "search", "member": False}, [])
    assert [(t["name"], t["member"]) for t in w.tools] == [("add", True), ("search", False)]


def test_queue_cancel_runs_the_async_callback_and_reloads():
    pending = {"b1": "first", "b2": "second"}

    async def load():
        return [{"batch_id": k, "items": [{"turn_input": {"text": v}}], "delivery_policy":
                 "after_current_turn_commit", "slot_policy": "exclusive"} for k, v in pending.items()]

    async def cancel(batch_id: str) -> None:
        pending.pop(batch_id)

    async def main() -> QueueWidget:
        w = QueueWidget(load=load, cancel=cancel)
        await w.refresh_async()
        assert [b["batch_id"] for b in w.batches] == ["b1", "b2"]
        w._on_custom(w, {"type": "cancel", "batch_id": "b1"}, [])
        for _ in range(10):  # the action and the reload are two tasks on this loop
            await asyncio.sleep(0)
        return w

    w = asyncio.run(main())
    assert [(b["batch_id"], b["text"]) for b in w.batches] == [("b2", "second")]
    assert w.actions == [("cancel", "b1")]


def test_queue_cancel_of_a_batch_a_worker_claimed_meanwhile_says_it_was_not_cancelled():
    """The panel showed the batch pending; a worker claimed it before the click reached the
    store. The store keeps it (it runs), and the panel must not read as if it was cancelled."""
    from lash_nb import LashCore
    from lash_nb._providers.offline import OfflineProvider
    from lash_nb._store.base import Lease

    async def main() -> tuple[QueueWidget, str]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(":memory:").build()
        s = await core.session("s1").open()
        first = await s.enqueue("first").send()
        await s.enqueue("second").send()
        w = QueueWidget(load=lambda: s.queued_work(include_claimed=True),
                        cancel=s.cancel_queued_work_batch)
        await w.refresh_async()
        lease = await core.store.try_acquire_lease("s1", "worker-elsewhere", 60_000)
        assert isinstance(lease, Lease)
        assert await core.store.claim_queued_work(lease, max_batches=1) is not None
        w._on_custom(w, {"type": "cancel", "batch_id": first.batch_id}, [])
        for _ in range(20):
            await asyncio.sleep(0)
        return w, first.batch_id

    w, first = asyncio.run(main())
    assert [b["batch_id"] for b in w.batches] == [first, w.batches[1]["batch_id"]]  # still there
    assert w.batches[0]["claimed"] is True
    assert "not cancelled" in w.status and first in w.status


def test_a_retry_wait_reads_as_a_person_would_write_it():
    """A provider that could not be reached showed "retry 3/4 after 1.8340989156865222s" live
    and in the saved record: the backoff is jittered, and the float went out as it came."""
    from lash_nb._notebook.widgets.snapshot import turn_html

    f = TurnFold()
    f.apply_all([
        {"id": "1", "correlation_id": "1", "type": "retry_status",
         "wait_seconds": 1.8340989156865222, "attempt": 3, "max_attempts": 4,
         "reason": "could not reach the server"},
    ])
    assert f.retries[0]["wait_seconds"] == 1.8
    html = turn_html({"blocks": f.blocks, "status": "failed", "retries": f.retries,
                      "outcome": "stopped: provider_error"})
    assert "retry 3/4 after 1.8s: could not reach the server" in html
