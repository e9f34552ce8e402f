"""Draining the queue from a notebook: every ready batch, N of M progress, what ran, and
one drain at a time (a double click on Drain runs one drain)."""

from __future__ import annotations

import asyncio

import pytest
from IPython.core.error import UsageError
from notebook_harness import KernelHarness

from lash_nb import LashCore
from lash_nb._notebook.drain import NotebookDrain
from lash_nb._providers.offline import OfflineProvider


def _session(tmp_path, delay: float = 0.0):
    core = (LashCore.builder().provider(OfflineProvider(delay_s=delay))
            .store(str(tmp_path / "q.duckdb")).build())
    return core


def test_drain_all_runs_every_ready_batch_and_reports_n_of_m(tmp_path):
    async def body():
        core = _session(tmp_path)
        s = await core.session("s1").open()
        for text in ("job one", "job two", "job three"):
            await s.enqueue(f"echo {text}").send()
        seen = []
        results = await NotebookDrain(s).run(
            all=True, show=False, progress=lambda p: seen.append((p.done, p.total, p.running)))
        assert [r.assistant_output.safe_text.split(" (")[0] for r in results] == [
            "You said: echo job one", "You said: echo job two", "You said: echo job three"]
        assert seen == [(0, 3, True), (1, 3, True), (1, 3, True), (2, 3, True), (2, 3, True),
                        (3, 3, True), (3, 3, False)]
        assert await s.queued_work() == []
        await core.close()

    asyncio.run(body())


def test_the_final_progress_lists_what_ran(tmp_path):
    async def body():
        core = _session(tmp_path)
        s = await core.session("s1").open()
        await s.enqueue("echo alpha").send()
        await s.enqueue("echo beta").send()
        drain = NotebookDrain(s)
        await drain.run(all=True, show=False)
        p = drain.last
        assert p.label() == "drained 2 batch(es) of s1 in 2 turn(s)"
        assert [(r["outcome"], r["answer"].split(" (")[0]) for r in p.ran] == [
            ("finished: assistant_message", "You said: echo alpha"),
            ("finished: assistant_message", "You said: echo beta")]
        await core.close()

    asyncio.run(body())


def test_a_second_drain_while_one_runs_is_refused_and_nothing_runs_twice(tmp_path):
    async def body():
        core = _session(tmp_path, delay=0.01)
        s = await core.session("s1").open()
        for i in range(3):
            await s.enqueue(f"echo job {i} " + " ".join(f"w{k}" for k in range(20))).send()
        drain = NotebookDrain(s)
        first = asyncio.ensure_future(drain.run(all=True, show=False))
        await asyncio.sleep(0)
        assert drain.running
        with pytest.raises(UsageError, match=r"^a drain of session 's1' is already running"):
            await drain.run(all=True, show=False)
        assert len(await first) == 3
        assert not drain.running
        turns = await s.store.load_turns("s1")
        assert len(turns) == 3
        await core.close()

    asyncio.run(body())


def test_lash_drain_all_in_a_kernel_shows_progress_and_the_answers(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open s1 --store lash.duckdb")
        k.run("%lash enqueue echo first job\n%lash enqueue echo second job")
        ex = k.run("%lash drain --all")
        final = ex.data("text/markdown")[-1]
        lines = final.splitlines()
        assert lines[0] == "**drained 2 batch(es) of s1 in 2 turn(s)**"
        assert "finished: assistant_message: You said: echo first job" in lines[1]
        assert "finished: assistant_message: You said: echo second job" in lines[2]
        again = k.run("%lash drain --all")
        assert again.data("text/markdown")[-1] == "**nothing to drain in s1**"


def test_the_queue_widget_drain_button_runs_all_batches_once_even_when_clicked_twice(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01")
        k.run("s = %lash open s1 --store lash.duckdb")
        k.run("\n".join(f"%lash enqueue echo job {i} " + " ".join(f"w{j}" for j in range(10))
                        for i in range(3)))
        ex = k.run("%lash queue")
        mid = k.wait_for_widget(ex, name="QueueWidget")
        k.send_custom(mid, {"type": "drain"})
        k.send_custom(mid, {"type": "drain"})  # a double click
        k.pump_until(lambda: k.state(mid).get("batches") == [] and
                     not k.state(mid).get("status", "").startswith("draining"), timeout=60)
        statuses = [u["status"] for u in k.update_log.get(mid, []) if "status" in u]
        assert any("is already running" in st for st in statuses)
        assert any(st == "draining s1: 1 of 3 batch(es) done…" for st in statuses)
        out = k.run("print(len(await s.store.load_turns('s1')))")
        assert out.stdout.strip() == "3"


def test_a_quiet_drain_hands_every_activity_of_its_turns_to_the_activity_callback(tmp_path):
    async def body():
        core = _session(tmp_path)
        s = await core.session("s1").open()
        await s.enqueue("echo one").send()
        await s.enqueue("echo two").send()
        seen = []
        results = await NotebookDrain(s).run(all=True, show=False, activity=seen.append)
        turn_ids = [r.turn_id for r in results]
        outcomes = [a for a in seen if a.type == "turn_outcome"]
        assert [a.turn_id for a in outcomes] == turn_ids
        prose = {t: "".join(a.event.text for a in seen
                            if a.type == "assistant_prose_delta" and a.turn_id == t)
                 for t in turn_ids}
        assert [prose[t] for t in turn_ids] == [r.assistant_output.safe_text for r in results]
        await core.close()

    asyncio.run(body())


def test_a_kernel_interrupt_of_a_lash_cell_leaves_the_background_drain_running():
    """``run_turn`` (what a ``%%lash`` cell awaits) interrupted while a queued drain runs on
    the same session: the cell's turn stops ``cancelled``; the drain finishes its turn."""
    import asyncio

    from lash_nb import LashCore
    from lash_nb._notebook.runner import run_turn
    from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, TextDelta

    async def body():
        gate = asyncio.Event()
        drain_started = asyncio.Event()

        async def model(request):
            text = request.messages[-1].text()
            if text == "queued work":
                drain_started.set()
                yield TextDelta("draining ")
                await gate.wait()
            yield Completed(LlmResponse(parts=(LlmPart.text_part(f"done: {text}"),)))

        core = LashCore.builder().provider(FunctionProvider(model)).model("m").build()
        s = await core.session("s").open()
        s.drainer.enable()
        await s.enqueue("queued work").send()
        await asyncio.wait_for(drain_started.wait(), 10)
        cell = asyncio.ensure_future(run_turn(s, "cell prompt", interval_s=0.01))
        while len(s.cancels) < 2:  # the cell's turn waits for the writer lock behind the drain
            await asyncio.sleep(0)
        cell.cancel()  # the kernel interrupt
        for _ in range(20):  # let the interrupt reach the cell before the drain may finish
            await asyncio.sleep(0)
        gate.set()
        result = await asyncio.wait_for(cell, 10)
        assert str(result.outcome) == "stopped: cancelled"
        for _ in range(500):
            if not s.drainer.running:
                break
            await asyncio.sleep(0.01)
        assert [str(o.result.outcome) for o in s.drainer.drained] == ["finished: assistant_message"]

    asyncio.run(body())


def test_a_drain_that_finds_the_session_held_elsewhere_says_the_batches_are_left_not_nothing(
        tmp_path, capsys):
    """``%lash drain --all`` while a worker (another runtime) holds the session used to end on
    "nothing to drain in s1" with the batches still queued: the user read an empty queue."""
    from notebook_harness import lash_shell

    mp = pytest.MonkeyPatch()
    try:
        with lash_shell(tmp_path, mp, "%config LashMagics.store = 'q.duckdb'",
                        "%lash open s1") as sh:
            for i in range(2):
                sh.run_cell(f"%lash enqueue job {i}")
            sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                        "b = _magics().ctx.bindings['s1']\n"
                        "await b.session.store.try_acquire_lease('s1', 'another-kernel', 600_000)")
            capsys.readouterr()
            sh.run_cell("%lash drain --all")
            said = capsys.readouterr().out
            assert "nothing to drain" not in said, said
            assert "2 batch(es) left in the queue" in said, said
            assert "%lash queue" in said, said
            assert len(sh.run_cell("%lash queue --df")) == 2  # nothing was run or lost
    finally:
        mp.undo()
