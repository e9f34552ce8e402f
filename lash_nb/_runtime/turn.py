"""``TurnBuilder`` and ``TurnStream``: how callers run a turn.

- ``await session.turn(x).run()`` -> :class:`TurnOutput` (``await session.turn(x)`` too).
- ``session.turn(x).stream()`` -> :class:`TurnStream`: the turn starts at once; ``async for
  activity in stream`` then ``await stream.finish()`` for the :class:`TurnResult`.

Cancelling the task that awaits ``run()`` (a kernel interrupt arrives this way) cancels the
turn through its token: the turn commits ``stopped: cancelled`` and ``run()`` returns that
committed result instead of raising, so the cell ends cleanly. The turn itself runs as its
own task so the caller's cancellation never cuts into a commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

from .._core.cancel import CancellationToken
from .._core.events import TurnActivity
from .._core.prompt import PromptContribution, PromptSlot
from .._core.records import TurnInput, TurnOutput, TurnResult, fresh_id
from .._core.text import check_id
from .._errors import ConfigurationError, ProviderUnavailable, TurnIdMismatch
from .attachments import check_attachments
from .cancel import absorb_interrupt, await_committed
from .interrupts import cancel_origin
from .parts import SessionParts
from .prompt_layers import PromptLayerSink
from .turn_run import TurnRun


def as_turn_input(value: TurnInput | str) -> TurnInput:
    if isinstance(value, TurnInput):
        return value
    if isinstance(value, str):
        return TurnInput.text(value)
    raise TypeError(
        f"a turn takes a TurnInput or a str, got {type(value).__name__}; use TurnInput.text(...)"
    )


class TurnBuilder(PromptLayerSink):
    def __init__(self, parts: SessionParts, turn_input: TurnInput | str, *,
                 provider_mismatch: str | None = None) -> None:
        self._parts = parts
        self._provider_mismatch = provider_mismatch
        self._input = as_turn_input(turn_input)
        self._token = CancellationToken()
        self._turn_id: str | None = None
        self._provider: Any = None
        self._model: str | None = None
        self._plugin_inputs: dict[str, Any] = {}

    def system(self, text: str) -> TurnBuilder:
        """Extra system prompt text for this turn only (an Intro contribution of the turn
        layer; the session's prompt stays). ``%%lash --system "..."``."""
        if not isinstance(text, str):
            raise ConfigurationError(f"system(...) takes a str, got {type(text).__name__}")
        return self.prompt_contribution(PromptContribution(PromptSlot.INTRO, text))

    def plugin_input(self, plugin_id: str, value: Any) -> TurnBuilder:
        """Input for one attached plugin, for this turn (lash ``with_plugin_input``)."""
        self._plugin_inputs[check_id(plugin_id, "plugin id")] = value
        return self

    def turn_id(self, turn_id: str) -> TurnBuilder:
        if not isinstance(turn_id, str) or not turn_id:
            raise ConfigurationError("turn_id must be a non-empty str")
        self._turn_id = check_id(turn_id, "turn id")
        return self

    def cancel(self, token: CancellationToken) -> TurnBuilder:
        """Use this token (cancel it from anywhere to stop the turn)."""
        self._token = token
        return self

    def provider(self, provider: Any) -> TurnBuilder:
        """A provider for this turn only; the session model stays."""
        self._provider = provider
        return self

    def model(self, model: str) -> TurnBuilder:
        """A model id for this turn only (target-version per-turn model overlay)."""
        self._model = model
        return self

    @property
    def token(self) -> CancellationToken:
        return self._token

    def _prepare(self, sink: Any = None, **kw: Any) -> tuple[TurnRun, int]:
        p = self._parts
        if self._provider_mismatch and self._provider is None:
            raise ProviderUnavailable(p.state.policy.provider_id, self._provider_mismatch,
                                      p.session_id)
        trace = self._input.trace_turn_id
        turn_id = self._turn_id or trace or fresh_id("turn-")
        if trace and trace != turn_id:
            raise TurnIdMismatch(
                f"the input carries trace turn id {trace!r} but the turn id is {turn_id!r}; "
                "drop one of them"
            )
        check_attachments(self._input, self._provider or p.provider,
                          self._model or p.state.policy.model)
        turn_input = self._input.with_trace_turn_id(turn_id)
        p.surface.plugins.check_turn_inputs(self._plugin_inputs)  # before anything is written
        run = TurnRun(p, turn_input, turn_id, self._token, provider=self._provider,
                      model=self._model, sink=sink, prompt=self._prompt,
                      plugin_inputs=dict(self._plugin_inputs), **kw)
        return run, p.cancels.register(self._token, turn_id)

    async def run(self) -> TurnOutput:
        run, key = self._prepare()
        result = await run_to_completion(run, self._parts, key)
        return TurnOutput(result, tuple(run.activities))

    def __await__(self) -> Generator[Any, None, TurnOutput]:
        return self.run().__await__()

    def stream(self) -> TurnStream:
        return TurnStream(self)


async def run_to_completion(run: TurnRun, parts: SessionParts, key: int) -> TurnResult:
    """Run the turn as its own task; a cancelled caller cancels the turn, not the commit."""
    task = asyncio.ensure_future(run.execute())
    try:
        return await await_committed(task, run.token)
    finally:
        parts.cancels.unregister(key)


_END = object()


class TurnStream:
    """Activities as they happen, then :meth:`finish` for the committed result."""

    def __init__(self, builder: TurnBuilder) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._run, self._key = builder._prepare(sink=self._queue.put_nowait)
        self._parts = builder._parts
        self._task: asyncio.Task[TurnResult] | None = None
        self._done = False
        # what a cancelled consumer records as the turn's cancellation origin and reason; a
        # notebook cell sets ("kernel_interrupt", None): there, that is what cancels it
        self.consumer_cancel_origin: tuple[str, str | None] = (
            "asyncio", "the stream consumer was cancelled")
        # like lash, the turn starts at once (not at the first iteration); from sync code
        # (no running loop) it starts when the stream is first iterated or finished
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._start()

    @property
    def turn_id(self) -> str:
        return self._run.turn_id

    @property
    def token(self) -> CancellationToken:
        return self._run.token

    def _start(self) -> asyncio.Task[TurnResult]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._drive())
        return self._task

    async def _drive(self) -> TurnResult:
        try:
            return await run_to_completion(self._run, self._parts, self._key)
        finally:
            self._queue.put_nowait(_END)

    def __aiter__(self) -> AsyncIterator[TurnActivity]:
        self._start()
        return self

    async def __anext__(self) -> TurnActivity:
        self._start()
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._queue.get()
        except asyncio.CancelledError as err:
            self._run.token.cancel(*self._consumer_origin(err))
            raise
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def finish(self) -> TurnResult:
        return await await_committed(self._start(), self._run.token)

    async def follow(self, on_activity: Callable[[TurnActivity], None]) -> TurnResult:
        """Hand every activity to ``on_activity``, then return the committed result. If the
        awaiting task is cancelled (a kernel interrupt in a notebook cell), only THIS turn is
        cancelled (origin ``consumer_cancel_origin``); the session's other turns, e.g. a
        queued drain in the background, keep running; this still returns the committed
        ``stopped: cancelled`` result."""
        while True:
            try:
                async for activity in self:
                    on_activity(activity)
                break
            except asyncio.CancelledError as err:
                self._run.token.cancel(*self._consumer_origin(err))
                absorb_interrupt()
        return await self.finish()

    def cancel(self) -> bool:
        return self._run.token.cancel("stream", None)

    def _consumer_origin(self, err: asyncio.CancelledError) -> tuple[str, str | None]:
        origin, reason = self.consumer_cancel_origin
        found = cancel_origin(err, origin)
        return (found, None) if found != origin else (origin, reason)
