"""A kernel shut down or restarted from the menu mid-turn keeps what the turn had streamed.

Kernel > Restart Kernel… (or Shut Down Kernel) sends the kernel a shutdown request and gives it
a few seconds before it is killed. The turn streaming in a ``%%lash`` cell used to be dropped
there: its process ended before the final commit, the next ``%lash open`` closed it as
``stopped: runtime_error`` (``process_lost``) with its prompt only, and the answer the user had
watched stream was gone from the store and from the saved notebook. Now the shutdown stops
the running turns first (origin ``kernel_shutdown``) and waits for their commits, so the
store keeps the partial answer as a Stop click would (ADR 195).

jupyter_client interrupts the kernel just before every shutdown request: when that interrupt
reaches the turn first, the turn is stopped as an interrupted cell's is (origin
``kernel_interrupt``) and the shutdown's wait is what lets its commit finish. Either origin
keeps the answer; the tests accept both and check what each one promises.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from notebook_harness import KernelHarness, lash_shell, prose_of

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider

STOPPERS = ("kernel_shutdown", "kernel_interrupt")  # see the module docstring
LONG = "please echo " + " ".join(f"word{i}" for i in range(400))


def _stored_turns(path: Path, sid: str) -> list[dict]:
    async def body() -> list[dict]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(str(path)).build()
        try:
            df = core.store.query(
                "SELECT turn_id, outcome, stop_reason, result FROM turns "
                f"WHERE session_id = '{sid}' ORDER BY seq")
            return [dict(r) for r in df.to_dict("records")]
        finally:
            await core.close()

    return asyncio.run(body())


def _shut_down_mid_turn(tmp_path: Path, *, restart: bool) -> str:
    """Run a slow ``%%lash`` turn, ask the kernel to shut down (restart) once it streamed some
    words, as the Kernel menu does; return the prose the widget had shown."""
    return _shut_down_mid_turn_with_note(tmp_path, restart=restart)[0]


def _shut_down_mid_turn_with_note(tmp_path: Path, *, restart: bool) -> tuple[str, str]:
    """The prose shown, and the cut-turn note's text the cell holds (what the browser shows
    and the saved notebook keeps once the kernel is gone)."""
    k = KernelHarness(cwd=str(tmp_path)).start()
    try:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05")
        k.run("%lash open k --store k.duckdb")
        ex = k.submit(f"%%lash\n{LONG}")
        model_id = k.wait_for_widget(ex, name="TurnWidget", timeout=60)
        k.pump_until(lambda: "word5 " in prose_of(k.state(model_id)), timeout=60)
        shown = prose_of(k.state(model_id))
        notes = [t for t in ex.data("text/plain") if "did not end" in t]
    finally:
        assert k.kc is not None and k.km is not None
        k.kc.stop_channels()
        if restart:
            k.km.restart_kernel(now=False)  # a shutdown_request with restart, as the menu sends
        k.km.shutdown_kernel(now=False)
        k.kc = k.km = None
    return shown, notes[-1] if notes else ""


def test_a_kernel_shut_down_mid_turn_keeps_the_streamed_answer(tmp_path: Path) -> None:
    shown = _shut_down_mid_turn(tmp_path, restart=False)
    turns = _stored_turns(tmp_path / "k.duckdb", "k")
    assert len(turns) == 1, turns  # committed by the kernel before it exited, not left open
    turn = turns[0]
    assert (turn["outcome"], turn["stop_reason"]) == ("stopped", "cancelled"), turn
    import json

    result = json.loads(turn["result"])
    assert result["cancellation"]["origin"] in STOPPERS
    kept = result["assistant_output"]["safe_text"]
    # what the user watched stream is in the store (the view may lag the turn by a delta)
    assert "word5" in kept and kept.startswith(shown[: len("You said: please echo word0")])


def test_a_kernel_restarted_mid_turn_keeps_the_streamed_answer(tmp_path: Path) -> None:
    _shut_down_mid_turn(tmp_path, restart=True)
    turns = _stored_turns(tmp_path / "k.duckdb", "k")
    assert [(t["outcome"], t["stop_reason"]) for t in turns] == [("stopped", "cancelled")]
    import json

    assert "word5" in json.loads(turns[0]["result"])["assistant_output"]["safe_text"]


def test_a_drain_cut_by_a_kernel_shutdown_gives_its_batch_back(tmp_path: Path) -> None:
    """A queued prompt a ``%lash drain`` was answering when the kernel was shut down is
    pending again, its attempt not counted (no person stopped that work), and the cut attempt
    is committed with what it streamed."""
    k = KernelHarness(cwd=str(tmp_path)).start()
    try:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05")
        k.run("%lash open k --store k.duckdb")
        k.run(f"%lash enqueue --id later {LONG}")
        ex = k.submit("%lash drain")
        model_id = k.wait_for_widget(ex, name="TurnWidget", timeout=60)
        k.pump_until(lambda: "word5 " in prose_of(k.state(model_id)), timeout=60)
    finally:
        assert k.kc is not None and k.km is not None
        k.kc.stop_channels()
        k.km.shutdown_kernel(now=False)
        k.kc = k.km = None
    import json

    turns = _stored_turns(tmp_path / "k.duckdb", "k")
    assert [(t["outcome"], t["stop_reason"]) for t in turns] == [("stopped", "cancelled")]
    result = json.loads(turns[0]["result"])
    origin = result["cancellation"]["origin"]
    assert origin in STOPPERS and "word5" in result["assistant_output"]["safe_text"]

    async def queue() -> tuple[list[dict], list[dict]]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(
            str(tmp_path / "k.duckdb")).build()
        try:
            pending = core.store.query("SELECT source_key, attempts FROM queued_work_batches")
            done = core.store.query("SELECT source_key, final_state FROM queue_history")
            return ([dict(r) for r in pending.to_dict("records")],
                    [dict(r) for r in done.to_dict("records")])
        finally:
            await core.close()

    pending, done = asyncio.run(queue())
    if origin == "kernel_shutdown":  # handed back, its attempt not counted
        assert len(pending) == 1 and pending[0]["source_key"].endswith("later"), pending
        assert pending[0]["attempts"] == 0 and done == [], (pending, done)
    else:  # the interrupt came first: a person's stop, the batch is done (ADR 167)
        assert pending == [] and [d["final_state"] for d in done] == ["completed"], done


def test_the_note_of_a_turn_cut_by_a_restart_names_it_and_its_replay_says_what_stopped_it(
        tmp_path: Path, monkeypatch) -> None:
    """The note under the cut turn is written before the turn ends: it cannot know whether a
    restart, a shutdown or a kill ended it, or whether the notebook was only saved mid-run
    (ADR 198, 212). It said what each end would do, as if one had happened. It now says it
    cannot tell, names the turn and the ``%lash replay`` that shows it; the replayed record
    says what the store knows: the kernel stopped it, by its restart's interrupt or its
    shutdown (ADR 217)."""
    _, note = _shut_down_mid_turn_with_note(tmp_path, restart=True)
    import json

    turns = _stored_turns(tmp_path / "k.duckdb", "k")
    assert [(t["outcome"], t["stop_reason"]) for t in turns] == [("stopped", "cancelled")]
    turn_id = turns[0]["turn_id"]
    assert note.startswith(f"lash · k · {turn_id}: this turn did not end"), note
    assert "cannot tell which, nor how the turn ended" in note, note
    assert f"%lash replay {turn_id} --session k shows the turn as stored" in note, note
    origin = json.loads(turns[0]["result"])["cancellation"]["origin"]
    assert origin in STOPPERS

    with lash_shell(tmp_path, monkeypatch, "%lash open k --store k.duckdb") as sh:
        data = sh.run_cell(f"%lash replay {turn_id} --session k")._repr_mimebundle_()
    text = (data[0] if isinstance(data, tuple) else data)["text/plain"]
    said = {"kernel_shutdown": "stopped by a restart or shutdown of its kernel",
            "kernel_interrupt": "stopped by the kernel's interrupt (Kernel > Interrupt, or the "
                                "one a restart or shutdown sends first)"}
    assert said[origin] in text, text
    assert said[next(o for o in said if o != origin)] not in text, text
    assert "word5" in text  # what it had streamed
