"""``out.text``: the answer's text, as the repr shows it (``TurnResult(... text='…')``).

A user who ran a turn in a script or a notebook, saw ``text='You said: …'`` in the repr and
typed ``out.text`` got a bare ``AttributeError`` (only ``out.result.assistant_message()`` gave
the answer)."""

from __future__ import annotations

import asyncio

from lash_nb import CancellationToken, LashCore
from lash_nb.providers import OfflineProvider


async def _turns(store: str) -> tuple[object, object]:
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
    session = await core.session("s1").open()
    try:
        done = await session.turn("hello there").run()
        slow = LashCore.builder().provider(OfflineProvider(delay_s=0.05)).store(store).build()
        token = CancellationToken()
        stream = (await slow.session("s2").open()).turn("please echo " + " ".join(
            f"word{i}" for i in range(200))).cancel(token).stream()
        async for activity in stream:  # Stop once a word of the echo has streamed
            if activity.type == "assistant_prose_delta" and "word0" in activity.event.text:
                token.cancel("the user pressed Stop")
        stopped = await stream.finish()
    finally:
        await session.close()
    return done, stopped


def test_the_text_the_repr_shows_is_out_text_finished_and_stopped(tmp_path):
    done, stopped = asyncio.run(_turns(str(tmp_path / "t.duckdb")))
    # the offline model's whole answer to a prompt that names no tool
    assert done.text == ("You said: hello there (This is the offline model; it echoes prompts "
                         "and calls tools you name.)")
    assert done.result.text == done.text == done.result.assistant_message()
    assert "text='You said: hello there (This is" in repr(done)
    # a stopped turn: what had streamed, while lash's assistant_message() says there is no answer
    assert str(stopped.outcome).startswith("stopped")
    assert stopped.assistant_message() is None
    assert stopped.text.startswith("You said: please echo word0")
    assert "word199" not in stopped.text
