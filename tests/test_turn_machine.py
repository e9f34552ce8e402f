"""The turn's rules as tables: the pure machine (``lash_nb._core.turn_machine``), no I/O.

Each row is hand-written: the responses a driver feeds, and the effects (by short name) and
outcome the rules must give. A driver answers every request effect with the next response
of the row; record effects are only collected.
"""

from __future__ import annotations

import pytest

from lash_nb._core import events as ev
from lash_nb._core import turn_machine as tm
from lash_nb._core.llm import TerminalReason
from lash_nb._core.records import OutputState

P = tm.ProgressCommitted()
TEXT = tm.LlmReplied(text="hello")
TOOLS = tm.LlmReplied(tool_calls=2)
EMPTY = tm.LlmReplied()
REASONING_ONLY = tm.LlmReplied(has_reasoning=True)
FAILED = tm.LlmFailed("rate limited", "rate_limit", True)
DONE_TOOLS = tm.ToolsDone()
NO_CLAIM = tm.CheckpointDone(False)
CLAIM = tm.CheckpointDone(True)
SEALED = tm.Sealed(True)
LOST_RACE = tm.Sealed(False)
CANCEL = tm.Cancelled()


def short(effect: tm.Effect) -> str:
    if isinstance(effect, tm.Emit):
        return f"emit:{effect.event.type}"
    if isinstance(effect, tm.LlmCall):
        return f"llm:{effect.iteration}"
    if isinstance(effect, tm.Checkpoint):
        return f"checkpoint:{effect.kind}"
    if isinstance(effect, tm.RecordIssue):
        return f"issue:{effect.issue.code}"
    if isinstance(effect, tm.Done):
        return f"done:{effect.outcome}"
    return {
        tm.ProgressCommit: "progress", tm.ToolCalls: "tools", tm.Seal: "seal",
        tm.AppendProse: "prose", tm.AppendToolCallMessage: "tool_msg", tm.AppendNote: "note",
        tm.KeepPartialProse: "keep_partial", tm.SettleTools: "settle",
    }[type(effect)]


_REQUESTS = (tm.ProgressCommit, tm.LlmCall, tm.ToolCalls, tm.Checkpoint, tm.Seal)


def drive(machine: tm.TurnMachine, responses: list[tm.Response]) -> list[str]:
    """Poll every effect; answer each request with the next response of the row."""
    seen: list[str] = []
    feed = list(responses)
    while True:
        effect = machine.poll_effect()
        if effect is None:
            if not feed:
                return seen
            machine.handle_response(feed.pop(0))
            continue
        seen.append(short(effect))
        if isinstance(effect, tm.Done):
            assert not feed, f"responses left after done: {feed}"
            return seen


ROWS = [
    # name, max_turns, blank input, responses, effects
    ("text reply finishes", None, False, [P, TEXT, NO_CLAIM, SEALED],
     ["progress", "llm:0", "checkpoint:before_completion",
      "prose", "seal", "done:finished: assistant_message"]),
    ("blank input stops invalid_input without a model call", None, True, [P],
     ["progress", "issue:invalid_turn_input", "done:stopped: invalid_input"]),
    ("cancelled before the loop stops without a model call", None, False,
     [tm.ProgressCommitted(cancelled=True)],
     ["progress", "done:stopped: cancelled"]),
    ("tools then text", None, False, [P, TOOLS, DONE_TOOLS, NO_CLAIM, TEXT, NO_CLAIM, SEALED],
     ["progress", "llm:0", "tool_msg", "tools",
      "checkpoint:after_work", "llm:1",
      "checkpoint:before_completion", "prose", "seal", "done:finished: assistant_message"]),
    ("max_turns=1 stops after the first tool batch", 1, False, [P, TOOLS, DONE_TOOLS, SEALED],
     ["progress", "llm:0", "tool_msg", "tools", "note",
      "issue:max_turns", "seal", "done:stopped: max_turns"]),
    ("max_turns=2 allows a second model call", 2, False,
     [P, TOOLS, DONE_TOOLS, NO_CLAIM, TOOLS, DONE_TOOLS, SEALED],
     ["progress", "llm:0", "tool_msg", "tools",
      "checkpoint:after_work", "llm:1", "tool_msg", "tools",
      "note", "issue:max_turns", "seal", "done:stopped: max_turns"]),
    ("provider failure keeps partial prose and stops provider_error", None, False,
     [P, FAILED, SEALED],
     ["progress", "llm:0", "emit:error", "issue:rate_limit",
      "keep_partial", "seal", "done:stopped: provider_error"]),
    ("empty reply stops provider_error", None, False, [P, EMPTY, SEALED],
     ["progress", "llm:0", "emit:error",
      "issue:empty_response", "seal", "done:stopped: provider_error"]),
    ("reasoning-only reply is not empty", None, False, [P, REASONING_ONLY, NO_CLAIM, SEALED],
     ["progress", "llm:0", "checkpoint:before_completion",
      "seal", "done:finished: assistant_message"]),
    ("empty reply after tool results finishes", None, False,
     [P, TOOLS, DONE_TOOLS, NO_CLAIM, EMPTY, NO_CLAIM, SEALED],
     ["progress", "llm:0", "tool_msg", "tools",
      "checkpoint:after_work", "llm:1",
      "checkpoint:before_completion", "seal", "done:finished: assistant_message"]),
    ("output limit stops incomplete, keeping the text", None, False,
     [P, tm.LlmReplied(text="half", terminal_reason=TerminalReason.OUTPUT_LIMIT), SEALED],
     ["progress", "llm:0", "prose", "issue:output_limit",
      "seal", "done:stopped: incomplete"]),
    ("content filter stops provider_error with an error event", None, False,
     [P, tm.LlmReplied(terminal_reason=TerminalReason.CONTENT_FILTER), SEALED],
     ["progress", "llm:0", "emit:error", "issue:content_filter",
      "seal", "done:stopped: provider_error"]),
    ("a terminal reason with tool calls still runs the tools", None, False,
     [P, tm.LlmReplied(tool_calls=1, terminal_reason=TerminalReason.OUTPUT_LIMIT), DONE_TOOLS,
      NO_CLAIM, TEXT, NO_CLAIM, SEALED],
     ["progress", "llm:0", "tool_msg", "tools",
      "checkpoint:after_work", "llm:1",
      "checkpoint:before_completion", "prose", "seal", "done:finished: assistant_message"]),
    ("input claimed before completion gets another model call", None, False,
     [P, TEXT, CLAIM, TEXT, NO_CLAIM, SEALED],
     ["progress", "llm:0", "checkpoint:before_completion",
      "llm:1", "checkpoint:before_completion", "prose", "seal",
      "done:finished: assistant_message"]),
    ("a cancel that wins the seal race stops cancelled", None, False,
     [P, TEXT, NO_CLAIM, LOST_RACE],
     ["progress", "llm:0", "checkpoint:before_completion",
      "prose", "seal", "done:stopped: cancelled"]),
    ("cancel during the model call keeps partial prose", None, False, [P, CANCEL],
     ["progress", "llm:0", "keep_partial",
      "done:stopped: cancelled"]),
    ("cancel during tools settles them", None, False, [P, TOOLS, CANCEL],
     ["progress", "llm:0", "tool_msg", "tools", "settle",
      "done:stopped: cancelled"]),
    ("cancel at a checkpoint stops without settling", None, False, [P, TOOLS, DONE_TOOLS, CANCEL],
     ["progress", "llm:0", "tool_msg", "tools",
      "checkpoint:after_work", "done:stopped: cancelled"]),
    ("cancel during the progress commit stops cancelled", None, False, [CANCEL],
     ["progress", "done:stopped: cancelled"]),
    ("lease lost during tools settles them and stops runtime_error", None, False,
     [P, TOOLS, tm.LeaseLost()],
     ["progress", "llm:0", "tool_msg", "tools", "settle", "issue:lease_lost",
      "done:stopped: runtime_error"]),
    ("lease lost at a checkpoint stops runtime_error", None, False,
     [P, TOOLS, DONE_TOOLS, tm.LeaseLost()],
     ["progress", "llm:0", "tool_msg", "tools", "checkpoint:after_work", "issue:lease_lost",
      "done:stopped: runtime_error"]),
    ("lease lost during the model call keeps partial prose", None, False, [P, tm.LeaseLost()],
     ["progress", "llm:0", "keep_partial", "issue:lease_lost", "done:stopped: runtime_error"]),
]


@pytest.mark.parametrize("name,max_turns,blank,responses,effects", ROWS, ids=[r[0] for r in ROWS])
def test_turn_rules(name: str, max_turns: int | None, blank: bool,
                    responses: list[tm.Response], effects: list[str]) -> None:
    machine = tm.TurnMachine(max_turns=max_turns, input_blank=blank)
    assert drive(machine, responses) == effects
    assert machine.done


MISPLACED = [
    ("a tool result before any model call", [P], tm.ToolsDone()),
    ("a model reply while tools run", [P, TOOLS], TEXT),
    ("a seal answer while waiting for the model", [P], SEALED),
    ("a checkpoint answer while waiting for the progress commit", [], NO_CLAIM),
    ("anything after done", [P, TEXT, NO_CLAIM, SEALED], TEXT),
    ("a cancel after done", [P, TEXT, NO_CLAIM, SEALED], CANCEL),
]


@pytest.mark.parametrize("name,before,bad", MISPLACED, ids=[r[0] for r in MISPLACED])
def test_misplaced_responses_are_refused(name: str, before: list[tm.Response],
                                         bad: tm.Response) -> None:
    machine = tm.TurnMachine()
    drive(machine, before)
    with pytest.raises(tm.TurnMachineError):
        machine.handle_response(bad)


def test_provider_failure_event_carries_the_message_and_code() -> None:
    machine = tm.TurnMachine()
    effects: list[tm.Effect] = []
    for response in (P, FAILED):
        while (e := machine.poll_effect()) is not None:
            effects.append(e)
        machine.handle_response(response)
    while (e := machine.poll_effect()) is not None:
        effects.append(e)
    emitted = [e.event for e in effects if isinstance(e, tm.Emit)]
    assert emitted[-1] == ev.Error("rate limited", kind="llm_provider", code="rate_limit")
    issues = [e.issue for e in effects if isinstance(e, tm.RecordIssue)]
    assert (issues[0].kind, issues[0].retryable) == ("llm_provider", True)


RETRIES = [
    # attempt, max_attempts, retryable, showed deltas -> retry, reset
    (1, 3, True, False, True, False),
    (1, 3, True, True, True, True),
    (2, 3, True, True, True, True),
    (3, 3, True, True, False, False),
    (1, 3, False, True, False, False),
    (1, 1, True, False, False, False),
]


@pytest.mark.parametrize("attempt,max_attempts,retryable,showed,retry,reset", RETRIES)
def test_retry_ladder(attempt: int, max_attempts: int, retryable: bool, showed: bool,
                      retry: bool, reset: bool) -> None:
    got = tm.decide_retry(attempt=attempt, max_attempts=max_attempts, retryable=retryable,
                          showed_deltas=showed)
    assert (got.retry, got.reset) == (retry, reset)


OUTPUT_STATES = [
    ("", False, OutputState.EMPTY_OUTPUT),
    ("", True, OutputState.EMPTY_OUTPUT),
    ("hi", False, OutputState.USABLE),
    ("hi", True, OutputState.RECOVERED_FROM_ERROR),
]


@pytest.mark.parametrize("text,stopped,state", OUTPUT_STATES)
def test_output_state(text: str, stopped: bool, state: OutputState) -> None:
    assert tm.output_state(text, stopped=stopped) is state
