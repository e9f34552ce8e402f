"""Pure helpers that turn a turn's data into messages and store rows (no I/O)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

from .._core import turn_machine as tm
from .._core.cancel import evidence as cancel_evidence
from .._core.graph import SessionGraph, SessionNode
from .._core.json_text import encoder
from .._core.llm import LlmResponse
from .._core.records import (
    AssistantOutput,
    ExecutionSummary,
    Message,
    Part,
    PartKind,
    Role,
    TurnOutcome,
    TurnResult,
    TurnStop,
    append_assistant_text_part,
    fresh_id,
    sanitize_assistant_output,
)
from .._core.text import clean_json, clean_text
from .._core.usage import BUCKETS, TokenUsage
from .._store.base import UsageDelta


def now_ms() -> int:
    return int(time.time() * 1000)


def usage_deltas(turn_id: str, model: str, cumulative: TokenUsage,
                 estimated: TokenUsage) -> tuple[UsageDelta, ...]:
    """The turn's usage rows: what providers reported, and (its own row, ``estimated``) what
    was estimated for cut streams."""
    if estimated.is_zero():
        return (UsageDelta(turn_id, "turn", model, cumulative),)
    measured = TokenUsage(**{b: getattr(cumulative, b) - getattr(estimated, b) for b in BUCKETS})
    rows = [UsageDelta(turn_id, "turn", model, estimated, estimated=True)]
    if measured.total() > 0:
        rows.insert(0, UsageDelta(turn_id, "turn", model, measured))
    return tuple(rows)


def joined_text(response: LlmResponse) -> str:
    text = ""
    for p in response.parts:
        if p.kind == "text" and p.text:
            text = append_assistant_text_part(text, p.text)
    return text


def unique_call_ids(response: LlmResponse) -> LlmResponse:
    """``response`` with every tool call's id unique within it: some OpenAI-compatible servers
    give the parallel calls of one reply one id (DeepSeek, GLM, Kimi) or none, and results,
    records and approval questions are kept by id. A repeated id gets ``_2``, ``_3``, ... (a
    missing one a fresh id), so the stored message and its results agree. The same object
    when nothing repeats (the common case costs one set)."""
    ids = [p.call_id for p in response.parts if p.kind == "tool_call"]
    if len(set(ids)) == len(ids) and all(ids):
        return response
    seen: set[str] = {i for i in ids if i}
    used: set[str] = set()
    parts = []
    for p in response.parts:
        if p.kind == "tool_call":
            cid = p.call_id or ""
            if not cid:
                cid = fresh_id("call_")
            elif cid in used:
                n = 2
                while f"{cid}_{n}" in seen:
                    n += 1
                cid = f"{cid}_{n}"
                seen.add(cid)
            used.add(cid)
            if cid != p.call_id:
                p = dataclasses.replace(p, call_id=cid)
        parts.append(p)
    return dataclasses.replace(response, parts=tuple(parts))


def has_reasoning(response: LlmResponse) -> bool:
    return any(p.kind == "reasoning" and p.text for p in response.parts)


def assistant_message(response: LlmResponse) -> Message:
    mid = fresh_id("m")
    parts: list[Part] = []
    text = joined_text(response)
    if text:
        parts.append(Part(f"{mid}.p0", PartKind.PROSE, text))
    for p in response.parts:
        i = len(parts)
        if p.kind == "reasoning" and (p.text or p.replay):  # replay: ADR 0030
            parts.append(Part(f"{mid}.p{i}", PartKind.REASONING, p.text, replay=p.replay))
        elif p.kind == "tool_call":
            parts.append(Part(f"{mid}.p{i}", PartKind.TOOL_CALL, p.input_json or "{}",
                              p.call_id, p.tool_name, replay=p.replay))
    return Message(mid, Role.ASSISTANT, tuple(parts))


def parse_args(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    # JSON escapes can spell a lone surrogate ("\\ud800") in otherwise clean arguments
    return clean_json(value) if isinstance(value, dict) else {}


def args_problem(raw: str | None, tool: str) -> str | None:
    """What the model reads when a call's arguments are not a JSON object (a stream cut at
    ``max_tokens``, a server sending a string or a list), else None. Such a call does not run:
    with no arguments, a tool whose parameters have defaults would do what nobody asked."""
    if not raw:
        return None  # some servers send "" for a call without arguments
    try:
        value = json.loads(raw)
    except ValueError as err:
        what = f"not a JSON object ({err})"
    else:
        if isinstance(value, dict):
            return None
        what = f"not a JSON object (a JSON {type(value).__name__ if value is not None else 'null'})"
    shown = raw if len(raw) <= 300 else raw[:300] + "…"
    return (f"the arguments of this call are {what}: {shown}; call {tool!r} again with its "
            f"arguments as one JSON object")


def jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``str()`` (which may raise: the caller turns
    that into an error result)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        _check_json(value)
        return value
    except (TypeError, ValueError, RecursionError):
        text = str(value)
    if not isinstance(text, str):
        raise TypeError(f"__str__ returned {type(text).__name__}, not str")
    return text


def error_text(err: BaseException) -> str:
    """``Type: message`` of an error raised by a tool, even when its ``str()`` raises."""
    name = type(err).__name__
    try:
        message = str(err)
    except Exception as inner:
        message = f"<str() of the error raised {type(inner).__name__}>"
    return f"{name}: {message}" if message else name


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
TRACEBACK_MAX_CHARS = 20_000


def tool_traceback(err: BaseException) -> str:
    """The traceback of an error a tool raised, as Python prints it, without lash_nb's own
    frames (the call into the tool: the user's function and what it called are what the
    user debugs; all are kept when every frame is lash_nb's), cleaned, and at most
    ``TRACEBACK_MAX_CHARS`` (its end, where the error is). Not scrubbed: the caller does."""
    import traceback

    try:
        te = traceback.TracebackException.from_exception(err)
        for link in _chain(te):
            theirs = [f for f in link.stack if not f.filename.startswith(_PACKAGE)]
            if theirs:
                link.stack = traceback.StackSummary.from_list(theirs)
        text = "".join(te.format())
    except Exception:  # a str() or repr() that raises: the one line, as the record has it
        text = error_text(err) + "\n"
    if len(text) > TRACEBACK_MAX_CHARS:
        text = "[start of the traceback cut]\n" + text[-TRACEBACK_MAX_CHARS:]
    return clean_text(text)


def _chain(te: Any) -> list[Any]:
    """``te`` and the exceptions it was raised from or during (each once)."""
    out: list[Any] = []
    while te is not None and all(te is not seen for seen in out):
        out.append(te)
        te = te.__cause__ or (None if te.__suppress_context__ else te.__context__)
    return out


def is_attempt(turn_id: str | None, prefix: str) -> bool:
    """``turn_id`` is an attempt of the queued work whose attempts are ``<base>:g<N>``
    (``prefix`` is ``<base>:g``); an enqueued trace id or a drain id is itself the first
    attempt's id (``<trace>``, then ``<trace>:g<N>``: docs/adr/0168)."""
    return turn_id is not None and (turn_id.startswith(prefix) or (
        prefix.endswith(":g") and turn_id == prefix[:-2]))


def queued_turn_id(graph: SessionGraph, base: str, fencing: int) -> str:
    """The turn id a queued turn given a trace id or a drain id ``base`` runs under: ``base``
    itself, unless the session holds a turn of it already (an attempt a worker's stop cut,
    or one whose process died: ADR 134 refuses a start under a committed id); then
    ``<base>:g<lease generation>``, which names the caller's id and is new (docs/adr/0168)."""
    prefix = f"{base}:g"
    if graph.has_turn(base) or graph.has_turn(prefix, or_prefix=True):  # ``is_attempt``'s rule
        return f"{prefix}{fencing}"
    return base


def branch_before_attempts(graph: SessionGraph, turn_id: str, prefix: str | None) -> None:
    """A re-run of queued work whose earlier attempt stopped after its progress commit (its
    process was killed, or it lost its lease): that attempt's nodes end the active path.
    Branch to just before them, so the model sees the input once; they stay in the graph on
    a side branch, and the attempt's turn row says how it ended. Only queued work is re-run
    by the runtime: its batch is still queued, so no attempt of it completed."""
    if prefix is None:
        return
    first = None
    node = graph.get(graph.leaf_node_id) if graph.leaf_node_id is not None else None
    while node is not None and node.turn_id is not None and (
            node.turn_id == turn_id or is_attempt(node.turn_id, prefix)):
        first = node  # walk up from the leaf: only the trailing nodes are read
        node = graph.get(node.parent_node_id) if node.parent_node_id is not None else None
    if first is not None:
        graph.branch_to(first.parent_node_id)


def queued_attempt_batch(turn_id: str | None) -> str | None:
    """The batch id a queued turn's default id (``<batch>:g<lease generation>``) names."""
    if turn_id is None or not turn_id.startswith("qwb:"):
        return None
    batch, sep, generation = turn_id.rpartition(":g")
    return batch if sep and generation.isdigit() and batch.count(":") == 1 else None


def branch_before_unanswered(graph: SessionGraph, queued: set[str]) -> None:
    """Nodes ending the active path that an attempt of a batch still in the queue wrote (a
    worker's stop cut it and handed the batch back, or its process died): that prompt is not
    answered yet, so it is not part of the conversation. Branch to before them, attempt after
    attempt; they stay in the graph on a side branch (docs/adr/0165)."""
    while graph.leaf_node_id is not None:
        node = graph.get(graph.leaf_node_id)
        batch = queued_attempt_batch(node.turn_id) if node is not None else None
        if batch is None or batch not in queued:
            return
        first = node
        while node is not None and queued_attempt_batch(node.turn_id) == batch:
            first = node
            node = graph.get(node.parent_node_id) if node.parent_node_id is not None else None
        assert first is not None
        graph.branch_to(first.parent_node_id)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else _check_json(value)


_check_json = encoder()  # ``json.dumps`` with its defaults, built once (json_text.py)


def input_id(source_key: str | None, batch_id: str) -> str:
    if source_key:
        for prefix in ("host:", "injection:"):
            if source_key.startswith(prefix):
                return source_key[len(prefix):]
        return source_key
    return batch_id


def last_assistant_text(nodes: list[SessionNode]) -> str:
    for n in reversed(nodes):
        if n.message is not None and n.message.role is Role.ASSISTANT and n.message.text():
            return n.message.text()
    return ""


def commit_hash(turn_id: str, result: TurnResult, nodes: list[SessionNode]) -> str:
    """Stable over regenerated ids and timestamps: turn id, outcome and message contents."""
    messages = []
    for n in nodes:
        m = n.message  # a property (decodes a lazily read node once): read it once
        if m is not None:  # ``_value_``: the enum's value without the descriptor call
            messages.append([m.role._value_,
                             [[p.kind._value_, p.content, p.tool_name] for p in m.parts]])
    body = {"turn_id": turn_id, "outcome": result.outcome.to_json(), "messages": messages}
    return hashlib.sha256(_hash_json(body).encode()).hexdigest()


# ``json.dumps(body, sort_keys=True, default=str)``, its C encoder built once (json_text.py)
_hash_json = encoder(sort_keys=True, default=str)


def assemble_result(run: Any, outcome: TurnOutcome, started_ms: int, t0: float) -> TurnResult:
    """The ``TurnResult`` of what the turn ``run`` (a ``TurnRun``) gathered; ``t0``: its
    ``perf_counter`` start."""
    if outcome.finish is not None:
        raw = outcome.text or ""
    else:
        raw = "".join(run.partial_prose) or last_assistant_text(run.new_nodes)
    safe = sanitize_assistant_output(raw)
    cancellation = None
    if outcome.stop is TurnStop.CANCELLED:
        origin, reason = cancel_evidence(run.token.origin, run.token.reason)
        cancellation = {"request_id": f"internal:{run.turn_id}",
                        "origin": origin, "reason": reason}
    return TurnResult(
        session_id=run.parts.session_id,
        turn_id=run.turn_id,
        outcome=outcome,
        assistant_output=AssistantOutput(safe, raw,
                                         tm.output_state(safe, stopped=outcome.is_stopped)),
        usage=run.cumulative,
        children_usage=tuple(run.children_usage),
        llm_calls=tuple(run.llm_calls),
        tool_calls=tuple(run.tool_calls),
        execution=ExecutionSummary(bool(run.tool_calls), started_ms,
                                   round((time.perf_counter() - t0) * 1000, 3)),
        errors=tuple(run.errors),
        cancellation=cancellation,
        queued_batch_ids=tuple(b for c in run.claims for b in c.batch_ids),
    )

