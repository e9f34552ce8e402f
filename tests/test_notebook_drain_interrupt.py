"""The kernel's interrupt button during ``%lash drain --all`` stops it the way it stops a
``%%lash`` cell: the running queued turn commits ``stopped: cancelled`` (origin
``kernel_interrupt``, its batch done), the drain runs nothing more, the cell ends without a
traceback (one line: the interrupt ended it, and a Run All stops there, ADR 167) and the other
batches stay pending.

Before: the cell died with a bare ``CancelledError``, the running turn was never committed, and
its batch went back to pending with a failed attempt counted (three interrupts parked it as
failed), so the interrupted work ran again at the next drain.
"""

from __future__ import annotations

from notebook_harness import KernelHarness, prose_of

LONG = "please echo " + " ".join(f"word{i}" for i in range(200))


def test_interrupting_a_drain_commits_the_running_turn_as_cancelled_and_stops(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05")
        k.run("%lash open s1 --store lash.duckdb --fresh")
        k.run(f"%lash enqueue --id first {LONG}\n%lash enqueue --id second two\n"
              "%lash enqueue --id third three")
        ex = k.submit("%lash drain --all", stop_on_error=False)
        model_id = k.wait_for_widget(ex, name="TurnWidget")
        k.pump_until(lambda: len(prose_of(k.state(model_id))) > 30, timeout=60)
        k.km.interrupt_kernel()
        k.wait(ex, timeout=60)
        assert ex.status == "error" and ex.error.startswith("TurnInterrupted: the kernel's interrupt")
        assert k.state(model_id)["outcome"] == "stopped: cancelled"
        rows = k.execute(
            "b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics().ctx.bindings['s1']\n"
            "recs = await b.session.store.load_turns('s1')\n"
            "print([(t.outcome, t.stop_reason, (t.result.get('cancellation') or {}).get('origin')) for t in recs])\n"
            "print(sorted(q.source_key for q in await b.session.queued_work()))"
        ).stdout.splitlines()
        assert rows == ["[('stopped', 'cancelled', 'kernel_interrupt')]",
                        "['host:second', 'host:third']"]
        assert k.run("print('next cell')").stdout.strip() == "next cell"
