"""Code mode: lash's RLM protocol for Python, as pure rules (no I/O).

Theory of operation
- The model answers in *cells*: Python code between a ``<python>`` line and a ``</python>``
  line (each alone on its line after trimming; lash's ``<lashlang>`` shape). The driver runs
  a reply's code in the session's sandbox kernel (:class:`ExecCell`), records what it
  printed as an *observation* the model reads on its next call, and answers
  :class:`CellDone`. ``submit(value)`` in a cell is the final answer: the turn finishes
  ``final_value`` after the ``before_completion`` checkpoint (queued input claimed there
  wins: the model is called again). A cell that raised is fed back like any observation
  (its traceback), so the model can fix it.
- Termination is lash's default ``submit_required``: a reply with no cell is kept as prose,
  followed by a reminder to ``submit`` from a cell (:class:`AppendProtocolNote`), and the
  loop goes on; a
  ``<python>`` line with no closing line is an invalid cell, fed back the same way. Every
  cell or reminder counts one protocol iteration against ``max_turns`` (``stopped:
  max_turns``).
- :class:`CodeTurnMachine` is the standard :class:`TurnMachine` with one more waiting state,
  ``AWAIT_EXEC``: in it a cancel first asks the driver to record the running cell
  (:class:`SettleCell`, status ``cancelled``, with its output so far), then ends the turn
  ``stopped: cancelled`` as any cancel does. A sandbox that cannot run code
  (:class:`CodeUnavailable`, before a model call or during a cell) stops the turn
  ``runtime_error`` with the reason as an issue. Model failures, terminal stop reasons, the
  seal and the checkpoints are the standard machine's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import events as ev
from .records import TurnFinish, TurnIssue, TurnOutcome, TurnStop
from .turn_machine import (
    TERMINAL_STOPS,
    AppendProse,
    Cancelled,
    CheckpointDone,
    Emit,
    LeaseLost,
    LlmReplied,
    ProtocolEffect,
    ProtocolResponse,
    RecordIssue,
    Response,
    State,
    ToolsDone,
    TurnMachine,
    TurnMachineError,
)

MODE_STANDARD = "standard"
MODE_CODE = "code"
MODES = (MODE_STANDARD, MODE_CODE)

OPEN_TAG, CLOSE_TAG = "<python>", "</python>"
SUBMIT_REMINDER = ("Deliver the final answer from a <python> ... </python> cell by calling "
                   "submit(value). Prose outside a cell is not delivered as the answer.")


# ---------------------------------------------------------------------- effects / responses
@dataclass(frozen=True, slots=True)
class ExecCell(ProtocolEffect):
    """Run ``code`` as cell ``cell`` of the turn in the sandbox; answer :class:`CellDone`."""

    cell: int
    code: str
    iteration: int = 0  # the protocol iteration whose reply held the cell


@dataclass(frozen=True, slots=True)
class AppendProtocolNote(ProtocolEffect):
    """Append a note of the protocol to the model (the submit reminder, an invalid cell) as a
    user message with origin ``code_protocol``: a system message mid-history would end the
    conversation on the model's own reply, which some APIs read as a prefill."""

    text: str


@dataclass(frozen=True, slots=True)
class SettleCell(ProtocolEffect):
    """After a cancel: record the running cell as cancelled with its output so far."""


@dataclass(frozen=True, slots=True)
class CodeUnavailable(ProtocolResponse):
    """The sandbox cannot run code (it did not start or restart; lash
    ``CodeExecutionUnavailable``): the turn stops ``runtime_error`` with the reason."""

    message: str


@dataclass(frozen=True, slots=True)
class CellDone(ProtocolResponse):
    submitted: bool = False  # the cell called submit(value)
    value: Any = None


# ---------------------------------------------------------------------- cells
class InvalidCell(ValueError):
    """A reply whose cell cannot be run (an opening line without its closing line)."""


def extract_cell(text: str) -> str | None:
    """The code of the reply's cells joined in order, or None when it has none."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        tag = line.strip()
        if current is None and tag == OPEN_TAG:
            current = []
        elif current is not None and tag == CLOSE_TAG:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        raise InvalidCell(f"the reply opens a {OPEN_TAG} cell but has no {CLOSE_TAG} line; "
                          "nothing ran. Close the cell on a line of its own.")
    if not blocks:
        return None
    return "\n\n".join("\n".join(b) for b in blocks)


def render_value(value: Any) -> str:
    """A submitted value as the turn's answer text: a str as is, else indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def observation_text(cell: int, *, output: str, error: str | None, truncated: bool,
                     note: str | None, status: str, images: int = 0) -> str:
    """What the model reads after cell ``cell`` (lash: the step's ``output`` / ``error``)."""
    lines = [f"[cell {cell} {status}]"]
    if output:
        lines.append(output.rstrip("\n"))
    if images:
        lines.append(f"[{images} image(s) shown to the user; you get their text form only]")
    if truncated:
        lines.append("[output truncated: print less, or a slice]")
    if error:
        lines.append(f"[error]\n{error.rstrip()}")
    if note:
        lines.append(f"[{note}]")
    if len(lines) == 1:
        lines.append("(no output: print what you need to see)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the prompt
@dataclass(frozen=True, slots=True)
class ToolSignature:
    name: str
    description: str
    params: tuple[str, ...]
    required: tuple[str, ...]


def code_system_prompt(*, tools: Iterable[ToolSignature] = (),
                       shared: Sequence[tuple[str, str]] = (), user_prompt: str | None = None,
                       sandbox_note: str = "") -> str:
    """The code-mode system prompt: lash's RLM operating contract, written for Python."""
    parts = [_CONTRACT]
    if shared:
        rows = "\n".join(f"- `{name}`: {what}" for name, what in shared)
        parts.append(f"### Shared data\n\nAlready loaded in the sandbox:\n\n{rows}")
    sigs = list(tools)
    if sigs:
        rows = "\n".join(
            f"- `{t.name}({', '.join(t.params)})`: {t.description or 'a host tool'}"
            + (f" (required: {', '.join(t.required)})" if t.required else "") for t in sigs)
        parts.append("### Host tools\n\nCall them from a cell with keyword arguments; each "
                     f"call runs on the host and returns its result:\n\n{rows}")
    if sandbox_note:
        parts.append(f"### Sandbox\n\n{sandbox_note}")
    if user_prompt:
        parts.append(f"### Instructions\n\n{user_prompt}")
    return "\n\n".join(parts)


CODE_PROMPT_HEAD = "### Operating contract (code mode)"

_CONTRACT = CODE_PROMPT_HEAD + """

You work in a persistent Python REPL (a sandbox kernel: pandas and the standard library are
there; variables persist between cells of the session). Use plain prose only for remarks;
compute with code. Large data lives in variables: explore it with code (shapes, heads,
filters, aggregates) instead of printing all of it.

### Persistence

Keep going until the request is resolved; every step is another cell. If you say you will do
something, put the cell that does it in the same reply.

### print vs submit

- `print(x)` shows a value on your next step. Print the part you need to decide the next
  step (a few rows, a summary), not whole large values.
- `submit(value)` is the final answer and ends the turn. A str is the reply as written; other
  values (numbers, lists, dicts) are shown as JSON. Submit only what you observed and checked.
- `llm_query(prompt)` asks a helper model a question about a piece of text and returns its
  answer as a str (use it on chunks too long to read yourself).

### Response shape

Code goes between a line `<python>` and a line `</python>`, each alone on its line. Brief
prose may come before the cell."""


# ---------------------------------------------------------------------- the machine
class CodeTurnMachine(TurnMachine):
    """The turn machine of code mode (see the module docstring)."""

    def __init__(self, max_turns: int | None = None, input_blank: bool = False) -> None:
        super().__init__(max_turns=max_turns, input_blank=input_blank)
        self.cells = 0
        self._final: tuple[Any] | None = None  # the submitted value, waiting for the checkpoint

    def handle_response(self, response: Response) -> None:
        if isinstance(response, CodeUnavailable):
            if self.state not in (State.AWAIT_LLM, State.AWAIT_EXEC):
                raise TurnMachineError(
                    f"CodeUnavailable is not accepted in state {self.state.value}")
            self._push(Emit(ev.Error(response.message, kind="code_execution",
                                     code="code_execution_unavailable")),
                       RecordIssue(TurnIssue("code_execution", response.message,
                                             "code_execution_unavailable")))
            self._seal(TurnOutcome.stopped(TurnStop.RUNTIME_ERROR))
        elif isinstance(response, CellDone):
            if self.state is not State.AWAIT_EXEC:
                raise TurnMachineError(f"CellDone is not accepted in state {self.state.value}")
            self._on_cell_done(response)
        elif isinstance(response, LlmReplied) and self.state is State.AWAIT_LLM:
            self._on_code_reply(response)
        elif (isinstance(response, CheckpointDone) and self.state is State.AWAIT_CHECKPOINT
              and self._final is not None):
            final, self._final = self._final, None
            if response.claimed:
                super().handle_response(response)  # new input: the model answers it
            else:
                self._finish_value(final[0])
        elif isinstance(response, (Cancelled, LeaseLost)) and self.state is State.AWAIT_EXEC:
            self._push(SettleCell())
            super().handle_response(response)
        else:
            super().handle_response(response)

    def _on_code_reply(self, r: LlmReplied) -> None:
        if r.tool_calls:  # native tool calls (the request offers none): the standard rules
            super().handle_response(r)
            return
        stop = TERMINAL_STOPS.get(r.terminal_reason)
        if stop is not None:
            self._terminal_stop(r, stop)
            return
        if not r.text.strip() and not r.has_reasoning:
            self._push(Emit(ev.Error("the model returned an empty response",
                                     kind="llm_provider", code="empty_response")),
                       RecordIssue(TurnIssue("llm_provider", "empty response", "empty_response")))
            self._seal(TurnOutcome.stopped(TurnStop.PROVIDER_ERROR))
            return
        try:
            code = extract_cell(r.text)
        except InvalidCell as err:
            self._push(AppendProse(r.text), AppendProtocolNote(str(err)))
            self._after_work()
            return
        if r.text.strip():
            self._push(AppendProse(r.text))
        if code is None:
            self._push(AppendProtocolNote(SUBMIT_REMINDER))
            self._after_work()
            return
        self.cells += 1
        self.state = State.AWAIT_EXEC
        self._push(ExecCell(self.cells, code, self.iteration))

    def _on_cell_done(self, r: CellDone) -> None:
        if r.submitted:
            self._final = (r.value,)
            self._checkpoint("before_completion", "")
            return
        self._after_work()

    def _after_work(self) -> None:
        """One protocol iteration is over: the turn limit, then the after_work checkpoint
        (the standard machine's rules after a tool batch)."""
        self.state = State.AWAIT_TOOLS
        super().handle_response(ToolsDone())

    def _finish_value(self, value: Any) -> None:
        text = render_value(value)
        if text:
            self._push(AppendProse(text))
        self._seal(TurnOutcome("finished", finish=TurnFinish.FINAL_VALUE, value=value, text=text))


__all__ = [
    "CLOSE_TAG",
    "CODE_PROMPT_HEAD",
    "MODES",
    "MODE_CODE",
    "MODE_STANDARD",
    "OPEN_TAG",
    "SUBMIT_REMINDER",
    "AppendProtocolNote",
    "CellDone",
    "CodeTurnMachine",
    "CodeUnavailable",
    "ExecCell",
    "InvalidCell",
    "SettleCell",
    "ToolSignature",
    "code_system_prompt",
    "extract_cell",
    "observation_text",
    "render_value",
]
