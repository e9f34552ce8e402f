"""Fold a stream of ``TurnActivity`` JSON into the state a turn view renders.

Theory of operation (lash's frontend folding contract, observe spec §1.11 / §2.6)
- Row identity is ``correlation_id``. Prose and reasoning deltas append to the row of their
  correlation id; a tool call's start and completion update one row keyed ``tool:<call_id>``.
- ``model_attempt_reset`` deletes exactly the prose and reasoning rows it lists (a retried
  attempt's text is retracted); nothing else is touched. Text is never deduplicated.
- ``tool_approval`` (lash_nb) puts ``approval {state, policy, by?, reason?, decided_at_ms?}``
  on the tool row: ``pending`` makes the row ``waiting`` (the live view shows Approve / Deny);
  a decision moves it on (``approved`` -> running, ``denied`` -> denied, ``cancelled``).
- ``child_activity`` (a tool call running a child session, lash_nb ``run_child``) folds the
  child's activity into a nested fold of its own, kept on the tool row as ``child``
  (``{session_id, blocks, outcome, usage}``): the child turn shows under that tool row. Under
  a code cell's row (a cell's ``llm_query``) the children are a list ``children`` on the
  cell row, one per child session, in the order they started.
- ``usage`` replaces the cumulative usage; ``retry_status`` appends to the retry log;
  ``turn_outcome`` sets the outcome (it is the last activity of a turn).
- ``version`` increases on every change, so a caller can tell whether anything is new.

Pure: no widget, no I/O. The widget copies ``blocks`` / ``usage`` / ... into synced traits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from ..._core.code_mode import OPEN_TAG
from ..._core.events import TurnActivity
from ..._core.records import TurnOutcome
from ..._core.visible import as_a_terminal_shows
from .long_text import (
    SHOWN_OUTPUT_CHARS,
    SHOWN_PROSE_CHARS,
    ProseCut,
    cut_point,
    printed_markdown,
    shown_output,
    shown_printed,
    shown_prose,
    stored_query,
)

UNNAMED = "(unnamed tool)"  # a call a provider sent without a name, as %lash graph says
TEXT_KINDS = {"assistant_prose_delta": "prose", "reasoning_delta": "reasoning"}


def outcome_label(outcome: Mapping[str, Any] | str | None) -> str:
    """``{"stopped": "cancelled"}`` -> ``"stopped: cancelled"``; strings pass through."""
    if outcome is None:
        return ""
    if isinstance(outcome, str):
        return outcome
    try:
        return str(TurnOutcome.from_json(outcome))
    except (ValueError, KeyError, TypeError, AttributeError):
        (kind,) = outcome.keys() or ("unknown",)
        return str(kind)


class TurnFold:
    """The folded view of one turn (or of a replayed stream)."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}
        self.usage: dict[str, Any] = {}
        self.retries: list[dict[str, Any]] = []
        self.outcome: str = ""
        self.turn_id: str = ""
        self.iterations: int = 0
        self.version: int = 0
        self._local = 0
        self._tool_t0: dict[str, float] = {}  # cid -> when its start was folded (ms clock)
        self._children: dict[str, TurnFold] = {}  # tool row cid -> the child turn it runs
        self._child_cuts: dict[str, ProseCut] = {}  # a child's long prose row, as it grows
        # a running call's live lines as they came (the row shows them redrawn); gone once
        # the row stopped taking them (past what it shows)
        self._printed_live: dict[str, str] = {}
        self._cell_live: dict[str, str] = {}  # a code-mode cell's output as it came

    # ------------------------------------------------------------------ folding
    def apply(self, activity: Mapping[str, Any] | TurnActivity) -> None:
        if not isinstance(activity, Mapping):  # an activity object: its JSON form
            images = getattr(activity.event, "images", None)
            activity = activity.to_json()
            if images:  # a tool's pictures, bytes and all: their thumbnails (ADR 232)
                activity["images"] = images
        kind = activity.get("type", "")
        cid = str(activity.get("correlation_id") or activity.get("id") or "")
        if activity.get("turn_id") and not self.turn_id:
            self.turn_id = str(activity["turn_id"])
        handler = _HANDLERS.get(kind)
        if handler is None:
            return  # additive stream: unknown activity types are ignored
        handler(self, cid, activity)
        self.version += 1

    def settle_stopped(self, *, now_ms: float | None = None) -> None:
        """A stopped turn: running tools become ``cancelled`` with the time they ran, and the
        last prose row is marked ``interrupted`` (it is partial)."""
        now = _clock_ms() if now_ms is None else now_ms
        for row in self.tool_rows():
            approval = row.get("approval")
            if approval and approval.get("state") == "pending":
                approval["state"] = "cancelled"  # the question closed with the turn
            if row["status"] in ("running", "waiting"):
                row["status"] = "cancelled"
                t0 = self._tool_t0.get(row["cid"])
                if not row.get("duration_ms") and t0 is not None:
                    row["duration_ms"] = round(now - t0, 1)
        prose = [b for b in self.blocks if b["kind"] == "prose"]
        if prose and self.blocks and self.blocks[-1] is prose[-1]:
            prose[-1]["interrupted"] = True
        self.version += 1

    def reset(self) -> None:
        """Forget the rows (to fold a complete activity list again) but keep when each tool
        call was first seen, so a cancelled call still shows the time it ran."""
        clocks = self._tool_t0
        self.__init__()  # type: ignore[misc]
        self._tool_t0 = clocks

    def apply_all(self, activities: Any) -> None:
        for a in activities:
            self.apply(a)

    # ------------------------------------------------------------------ views
    @property
    def prose(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["kind"] == "prose")

    @property
    def reasoning(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["kind"] == "reasoning")

    def tool_rows(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks if b["kind"] == "tool"]

    def to_markdown(self, turn_id: str = "", session_id: str = "") -> str:
        """Plain markdown of the folded turn, for nbconvert / GitHub (no widget there). A long
        prose or reasoning row is cut as the widget shows it (``long_text``, ADR 151)."""
        out: list[str] = []
        for b in self.blocks:
            k = b["kind"]
            if k in ("prose", "reasoning"):
                b = {**b, "text": shown_prose(b["text"], turn_id=turn_id or self.turn_id,
                                              cid=b["cid"], kind=k, session_id=session_id)}
            if k == "prose" and not b.get("interrupted"):
                out.append(b["text"])
            elif k == "reasoning":
                out.append("> _reasoning:_ " + " ".join(b["text"].split()))
            elif k == "tool":
                dur = f", {b['duration_ms']:.0f} ms" if b.get("duration_ms") is not None else ""
                name = b["name"] or UNNAMED
                out.append(f"- tool `{name}` {b['status']}{dur}{approval_note(b, ' (', ')')}")
                if b.get("printed"):
                    out.append(printed_markdown(str(b["printed"])))
                if b.get("images"):  # the pictures it returned, by caption (ADR 234)
                    from .attachments import cards_markdown
                    out.append(cards_markdown(b["images"], "  - returned a picture"))
                if b.get("child"):
                    out.append(child_markdown(b["child"]))
            elif k == "cell":
                out.append(cell_markdown(b))
            elif k == "prose" and b.get("interrupted"):
                out.append(b["text"] + " _[interrupted]_")
            else:
                out.append(f"_{k}: {b.get('text', '')}_")
        footer = []
        if self.outcome:
            footer.append(f"**{self.outcome}**")
        if self.usage:
            footer.append(
                f"{self.usage.get('input_tokens', 0)} in / {self.usage.get('output_tokens', 0)} out tokens"
                + (" (partly estimated)" if self.usage.get("estimated") else "")
            )
        if self.retries:
            footer.append(f"{len(self.retries)} retr{'y' if len(self.retries) == 1 else 'ies'}")
        if footer:
            out.append(" · ".join(footer))
        return "\n\n".join(p for p in out if p)

    # ------------------------------------------------------------------ internals
    def _row(self, cid: str, kind: str, **init: Any) -> dict[str, Any]:
        pos = self._index.get(cid)
        if pos is not None:
            return self.blocks[pos]
        row = {"cid": cid, "kind": kind, **init}
        self._index[cid] = len(self.blocks)
        self.blocks.append(row)
        return row

    def _append(self, kind: str, text: str) -> None:
        self._local += 1
        self.blocks.append({"cid": f"~{kind}-{self._local}", "kind": kind, "text": text})

    def _reindex(self) -> None:
        self._index = {b["cid"]: i for i, b in enumerate(self.blocks)}


def _text_delta(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    kind = TEXT_KINDS[a["type"]]
    row = fold._row(cid, kind, text="")
    row["text"] = row["text"] + str(a.get("text") or "")


def _reset(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    gone = set(a.get("assistant_prose_correlation_ids") or ()) | set(
        a.get("reasoning_correlation_ids") or ()
    )
    fold.blocks = [
        b for b in fold.blocks if not (b["kind"] in ("prose", "reasoning") and b["cid"] in gone)
    ]
    fold._reindex()


def _clock_ms() -> float:
    return time.monotonic() * 1000.0


def _tool_started(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    fold._tool_t0.setdefault(cid, float(a["at_ms"]) if a.get("at_ms") is not None else _clock_ms())
    row = fold._row(cid, "tool", name=a.get("name", ""), status="running")
    row.update(call_id=a.get("call_id"), name=a.get("name", row["name"]), args=a.get("args"))
    row.setdefault("output", None)
    row.setdefault("duration_ms", None)


def _tool_completed(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    row = fold._row(cid, "tool", name=a.get("name", ""), status="running")
    ok = a.get("success", True) is not False
    # a call the turn's cancellation cut short: lash's tool status "cancelled" (older runtimes:
    # output "interrupted" with no duration of its own); show the time it really ran
    cancelled = not ok and (a.get("status") == "cancelled" or a.get("cancelled") is True
                            or a.get("output") == "interrupted")
    duration = a.get("duration_ms")
    t0 = fold._tool_t0.get(cid)
    if cancelled and not duration and t0 is not None:
        end = float(a["at_ms"]) if a.get("at_ms") is not None else _clock_ms()
        duration = round(end - t0, 1)
    denied = (row.get("approval") or {}).get("state") == "denied"
    row.update(
        call_id=a.get("call_id"),
        name=a.get("name", row.get("name", "")),
        args=a.get("args", row.get("args")),
        output=shown_output(a.get("output"), a.get("call_id")),
        duration_ms=duration,
        status="done" if ok else "cancelled" if cancelled else "denied" if denied else "failed",
    )
    fold._printed_live.pop(cid, None)
    if a.get("printed"):  # the whole of what it printed replaces the live lines (ADR 197)
        row["printed"] = shown_printed(a["printed"], a.get("call_id"))
    if a.get("images"):  # the pictures it returned, shown under its row (ADR 232)
        from .tool_pictures import tool_cards  # bytes here, or a thumbnail read (ADR 234)

        row["images"] = tool_cards(a["images"])


def _tool_printed(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    """Lines a running call printed, on its row as they come, until the row holds what it
    shows or the call printed past what live lines carry (``more``); then a line saying the
    rest comes when the call ends, which replaces them (ADR 197, ADR 210)."""
    row = fold._row(cid, "tool", name=a.get("name", ""), status="running")
    came = fold._printed_live.get(cid, "" if not row.get("printed") else None)
    if came is None:
        return  # the row stopped taking them
    # all of it shown again: a bar's redraw writes over what the row showed, as in a terminal
    came = fold._printed_live[cid] = came + str(a.get("text") or "")
    text = as_a_terminal_shows(came)
    if len(text) > SHOWN_OUTPUT_CHARS or a.get("more"):
        del fold._printed_live[cid]
        end = cut_point(text, SHOWN_OUTPUT_CHARS)
        text = (f"{text[:end].removesuffix(chr(10))}\n… the tool prints more than this row "
                f"shows while it runs; when the call ends the row shows what lash kept of it, "
                f"stored: %lash sql {stored_query('printed', a.get('call_id'))}")
    row["printed"] = text


def _sandbox_started(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    shared = ", ".join(str(x.get("name")) for x in a.get("shared") or ()) or "nothing shared"
    fold._append("notice", f"sandbox started ({a.get('isolation')}); {shared}"
                 + (f"; {a['note']}" if a.get("note") else ""))


def _cell_started(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    """Code mode: a cell row; the reply's prose keeps only the text before its cell (the
    cell row shows the code)."""
    prose = [b for b in fold.blocks if b["kind"] == "prose"]
    if prose and OPEN_TAG in prose[-1]["text"]:
        text = prose[-1]["text"]
        prose[-1]["text"] = text[:text.find(OPEN_TAG)].rstrip()
    row = fold._row(cid, "cell", cell=a.get("cell"), code=a.get("code", ""), status="running")
    row.setdefault("output", "")


def _cell_output(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    row = fold._row(cid, "cell", cell=a.get("cell"), code="", status="running", output="")
    came = fold._cell_live[cid] = fold._cell_live.get(cid, row["output"]) + str(a.get("text") or "")
    row["output"] = as_a_terminal_shows(came)  # a progress line redrawn (ADR 210, 219)


def _cell_completed(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    row = fold._row(cid, "cell", cell=a.get("cell"), code=a.get("code", ""), status="running")
    row.update({k: a.get(k) for k in ("code", "status", "output", "error", "duration_ms",
                                       "displays", "final_value", "truncated", "note")})
    fold._cell_live.pop(cid, None)
    if isinstance(row["output"], str):  # what the model read keeps every state
        row["output"] = as_a_terminal_shows(row["output"])
    row["submitted"] = "final_value" in a


def cell_markdown(b: Mapping[str, Any]) -> str:
    lines = [f"cell {b.get('cell')} · {b.get('status')}", "```python", str(b.get("code") or ""),
             "```"]
    if b.get("output"):
        lines += ["```", str(b["output"]).rstrip("\n"), "```"]
    if b.get("error"):
        lines += ["```", str(b["error"]).rstrip("\n"), "```"]
    lines += [child_markdown(k) for k in b.get("children") or ()]
    return "\n".join(lines)


_APPROVAL_KEYS = ("state", "policy", "by", "reason", "decided_at_ms")
_AFTER_DECISION = {"approved": "running", "denied": "denied", "cancelled": "cancelled"}


def _tool_approval(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    row = fold._row(cid, "tool", name=a.get("name", ""), status="running")
    row.setdefault("call_id", a.get("call_id"))
    row.setdefault("args", None)
    row.setdefault("output", None)
    row.setdefault("duration_ms", None)
    state = str(a.get("state") or "")
    row["approval"] = {k: a[k] for k in _APPROVAL_KEYS if a.get(k) is not None}
    if state == "pending":
        row["status"] = "waiting"
    elif row["status"] == "waiting":
        row["status"] = _AFTER_DECISION.get(state, "running")


def approval_note(b: Mapping[str, Any], before: str = "", after: str = "") -> str:
    """``approved by user`` / ``denied by policy: reason`` / ``waiting for approval``."""
    approval = b.get("approval")
    if not isinstance(approval, Mapping) or not approval.get("state"):
        return ""
    state = str(approval["state"])
    if state == "pending":
        text = "waiting for approval"
    else:
        text = state + (f" by {approval['by']}" if approval.get("by") else "")
        if approval.get("reason"):
            text += f": {approval['reason']}"
    return f"{before}{text}{after}"


def _child_activity(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    sid = str(a.get("child_session_id") or "")
    pos = fold._index.get(cid)
    in_cell = pos is not None and fold.blocks[pos]["kind"] == "cell"
    row = fold.blocks[pos] if pos is not None else fold._row(cid, "tool", name="", status="running")
    key = f"{cid}\n{sid}" if in_cell else cid  # a cell may ask several children (llm_query)
    child = fold._children.get(key)
    if child is None:
        child = fold._children[key] = TurnFold()
    activity = a.get("activity")
    if isinstance(activity, Mapping):
        child.apply(activity)
    folded = {"session_id": sid, "blocks": [_child_block(fold, key, sid, child, b)
                                            for b in child.blocks],
              "outcome": child.outcome, "usage": dict(child.usage)}
    if not in_cell:
        row["child"] = folded
        return
    kids = list(row.get("children") or ())
    same = [i for i, k in enumerate(kids) if k.get("session_id") == sid]
    if same:
        kids[same[0]] = folded
    else:
        kids.append(folded)
    row["children"] = kids


def _child_block(fold: TurnFold, key: str, sid: str, child: TurnFold,
                 b: dict[str, Any]) -> dict[str, Any]:
    """A row of a child turn as its parent shows it: a long prose or reasoning row is cut as
    the parent's own (ADR 151), its note's query reading the child session's events, so the
    widget, the saved record and its markdown never carry a child's echoed log whole."""
    text = b.get("text")
    if b["kind"] not in ("prose", "reasoning") or not isinstance(text, str) \
            or len(text) <= SHOWN_PROSE_CHARS:
        return dict(b)
    at = f"{key}\n{b['cid']}"
    cut = fold._child_cuts.get(at)
    if cut is None or not cut.fits(text):
        cut = fold._child_cuts[at] = ProseCut(text)
    return {**b, "text": cut.text(text, final=bool(child.outcome), turn_id=child.turn_id,
                                  cid=b["cid"], kind=b["kind"], session_id=sid)}


def child_markdown(child: Mapping[str, Any]) -> str:
    """The child turn under its tool row, as a markdown quote."""
    prose = "".join(str(b.get("text") or "") for b in child.get("blocks") or ()
                    if b.get("kind") == "prose")
    head = f"child session `{child.get('session_id', '')}`"
    if child.get("outcome"):
        head += f" · {child['outcome']}"
    body = " ".join(prose.split())
    return f"  > {head}" + (f": {body}" if body else "")


def _usage(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    usage = dict(a.get("cumulative") or a.get("usage") or {})
    if a.get("estimated") or fold.usage.get("estimated"):
        usage["estimated"] = True  # some of it is an estimate for a cut stream
    fold.usage = usage


def _retry(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    row = {k: a.get(k) for k in ("attempt", "max_attempts", "wait_seconds", "reason")}
    wait = row["wait_seconds"]
    if isinstance(wait, (int, float)):  # a jittered backoff: tenths, as a person writes it
        row["wait_seconds"] = round(float(wait), 1)
    fold.retries = [*fold.retries, row]


def _model_request(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    fold.iterations += 1


def _error(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    fold._append("error", str(a.get("message", "")))


def _queued_input(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    n = len(a.get("inputs") or ())
    fold._append("notice", f"{n} queued input{'s' if n != 1 else ''} accepted at {a.get('checkpoint')}")


def _queued_work(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    ids = ", ".join(a.get("batch_ids") or ())
    fold._append("notice", f"queued work started ({a.get('boundary')}): {ids}")


# a finished turn's commit waiting for its store: reason -> (what blocks it and what frees
# it, the row once saved); ADR 175, 181
_NOT_SAVED_YET = {
    "disk_full": ("the disk holding the store is full; free space there",
                  "saved once disk space returned"),
    "read_only": ("the store's file or folder became read-only; make it writable again",
                  "saved once the store was writable again"),
    "moved": ("the store's file was moved or deleted; put it back where it was",
              "saved once the store's file was back"),
}


def _store_wait(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    """One status row, updated in place while the turn waits for another process's store lock,
    or for what its file cannot take now (disk space, a read-only or moved file): then the
    finished turn is not saved yet, and the row says so, what frees it and that Stop gives
    up saving it, until the last event says it was saved."""
    pid = a.get("holder_pid", a.get("pid"))
    waited = a.get("waited_s", a.get("waited_seconds"))
    secs = f"{waited:.1f} s" if isinstance(waited, (int, float)) else None
    # a wait's first event comes as it begins: "waiting 0.0 s" would read as a count that
    # does not move; the seconds show from the first whole one (ADR 185)
    so_far = secs if isinstance(waited, (int, float)) and waited >= 1 else None
    said = _NOT_SAVED_YET.get(str(a.get("reason")))
    if said is not None:
        if a.get("done"):
            text = said[1] + (f" (after {secs})" if secs else "")
        else:
            text = (f"not saved yet: {said[0]} and this turn is saved ({_gives_up()} leaves "
                    "it unsaved)" + (f" (waiting {so_far})" if so_far else " (waiting)"))
    else:
        text = ("waiting for the store" + (f", held by pid {pid}" if pid is not None else "")
                + (f" ({so_far})" if so_far else ""))
    row = fold._row("~store_wait", "notice", text="")
    row["text"] = text


def _gives_up() -> str:
    """What ends a wait in this kernel: the widget's Stop, or the kernel's interrupt where
    ipykernel hands a widget's click to a cell only after it (< 7.4, ADR 23): the Stop a row
    named there did nothing while the cell waited (ADR 227)."""
    if "ipykernel" in sys.modules:
        from ..extension import serves_widgets_mid_cell

        if not serves_widgets_mid_cell():
            return "the kernel's interrupt"
    return "Stop"


PROCESS_LOST = ("the process running this turn was killed or exited before the turn's final "
                "commit: only its prompt was saved; what it did after (model calls, tool "
                "calls, their tokens and cost) is not in the store")


def never_started(fold: TurnFold, *, waited: bool, lost: bool = False) -> None:
    """A stopped turn that made no model request and shows nothing: a row says it never got
    as far as the model, so nothing was spent (its footer alone read "0.0 s · stopped:
    cancelled"). ``waited``: Stop came while it waited for the session's running turn.
    ``lost``: a turn whose process died (``process_lost``, replayed from the store) shows
    nothing because nothing after its first commit was kept, not because it did nothing:
    its row says that instead (ADR 211)."""
    if lost:
        fold._append("notice", PROCESS_LOST)
        return
    if not fold.outcome.startswith("stopped") or fold.iterations or any(
            b["kind"] != "notice" for b in fold.blocks):
        return
    fold._append("notice", (
        "stopped while it waited for the turn running before it in this session: it never "
        "started, the model never saw it and nothing was spent") if waited else (
        "stopped before it reached the model: the model never saw it and nothing was spent"))


# how the store says a turn stopped by its kernel ended (its cancellation's origin): a replayed
# record says it, which a cut-turn note written before the end could not (ADR 217)
STOPPED_BY_KERNEL = {
    "kernel_shutdown": ("stopped by a restart or shutdown of its kernel (the Kernel menu, the "
                        "end of a run of the whole notebook): what it had streamed is kept"),
    "kernel_interrupt": ("stopped by the kernel's interrupt (Kernel > Interrupt, or the one a "
                         "restart or shutdown sends first): what it had streamed is kept"),
}


def stopped_by_kernel(fold: TurnFold, result: Any) -> None:
    """A stored turn's row saying its kernel stopped it, when its result says so."""
    cancellation = result.get("cancellation") if isinstance(result, Mapping) else None
    origin = cancellation.get("origin") if isinstance(cancellation, Mapping) else None
    if origin in STOPPED_BY_KERNEL:
        fold._append("notice", STOPPED_BY_KERNEL[str(origin)])


def not_saved(fold: TurnFold) -> None:
    """The finished turn's commit was refused: its answer stays in view, its waiting row goes
    (the error row the caller adds says why and what to do)."""
    pos = fold._index.get("~store_wait")
    if pos is not None:
        del fold.blocks[pos]
        fold._reindex()
    fold.outcome = f"NOT saved ({fold.outcome})" if fold.outcome else "NOT saved"
    fold.version += 1


def _context_windowed(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    """A model call that sent only the newest messages (ADR 60): say so, and that nothing
    was deleted."""
    sent, left = a.get("sent_messages"), a.get("left_out_messages")
    why = ("the provider refused the whole conversation as longer than the model's context "
           "window; sent again with" if a.get("reason") == "overflow"
           else "the conversation neared the model's context window; sent")
    fold._append("notice", f"context window: {why} the newest {sent} messages (~"
                 f"{a.get('sent_tokens')} of ~{a.get('estimated_tokens')} estimated tokens); "
                 f"the {left} earlier ones stay in the session")


def _told(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    """``{"type": "lash_notice", "text"}``: a warning about the turn that nothing else shows
    (a tool's, during a drain the queue panel runs: no cell shows its log; ADR 225). Never
    an activity of the runtime's: the panel pushes it."""
    fold._append("notice", str(a.get("text") or ""))


def _outcome(fold: TurnFold, cid: str, a: Mapping[str, Any]) -> None:
    fold.outcome = outcome_label(a.get("outcome"))
    if a.get("turn_id"):
        fold.turn_id = str(a["turn_id"])


_HANDLERS = {
    "assistant_prose_delta": _text_delta,
    "reasoning_delta": _text_delta,
    "model_attempt_reset": _reset,
    "tool_call_started": _tool_started,
    "tool_call_completed": _tool_completed,
    "tool_call_printed": _tool_printed,
    "tool_approval": _tool_approval,
    "usage": _usage,
    "retry_status": _retry,
    "model_request_started": _model_request,
    "error": _error,
    "queued_input_accepted": _queued_input,
    "queued_work_started": _queued_work,
    "turn_outcome": _outcome,
    "store_wait": _store_wait,
    "lash_notice": _told,
    "child_activity": _child_activity,
    "code_sandbox_started": _sandbox_started,
    "code_cell_started": _cell_started,
    "code_cell_output": _cell_output,
    "code_cell_completed": _cell_completed,
    "context_windowed": _context_windowed,
}
