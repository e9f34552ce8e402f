"""Token usage: the five-bucket counter, the per-(source, model) ledger and the session report.

Rules carried over from lash:
- ``reasoning_output_tokens`` is a subset of ``output_tokens``; ``total()`` excludes it.
- The ledger keeps one row per ``(source, model)`` in first-seen order and skips deltas whose
  ``total()`` is zero.
- Each provider response is counted exactly once (the runtime takes usage from the final
  response of an attempt, never by summing stream chunks).
- A stream cut by a cancel has no final response, yet the provider bills its input (and
  what it streamed). Its attempt is counted at what the provider reported before the cut
  (``UsageReported``), else at an **estimate** marked ``estimated=True`` (never a silent
  zero): :func:`estimate_usage`, ``ceil(characters / 4)`` tokens for the request (system
  prompt, every message part, tool specs) as input and for the streamed text as output.
  Four characters per token is the usual rule of thumb for English text with GPT/Claude
  tokenizers; code and other languages run denser, so the estimate is a floor-ish guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BUCKETS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "reasoning_output_tokens",
)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_write_input_tokens
        )

    def input_total(self) -> int:
        return self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens

    def is_zero(self) -> bool:
        return not any(getattr(self, b) for b in BUCKETS)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_write_input_tokens + other.cache_write_input_tokens,
            self.reasoning_output_tokens + other.reasoning_output_tokens,
        )

    def to_json(self) -> dict[str, int]:
        # BUCKETS, in their order, spelled out: a turn makes ~7 of these (its events, calls
        # and result), and the literal costs a third of a comprehension over getattr
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_read_input_tokens": self.cache_read_input_tokens,
                "cache_write_input_tokens": self.cache_write_input_tokens,
                "reasoning_output_tokens": self.reasoning_output_tokens}

    def totals_json(self) -> dict[str, int]:
        out = self.to_json()
        out["total_tokens"] = self.total()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TokenUsage:
        if not data:
            return ZERO_USAGE
        return cls(**{b: int(data.get(b) or 0) for b in BUCKETS})


ZERO_USAGE = TokenUsage()


@dataclass(frozen=True, slots=True)
class TokenLedgerEntry:
    source: str
    model: str
    usage: TokenUsage

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "model": self.model, "usage": self.usage.to_json()}


def merge_ledger(
    ledger: list[TokenLedgerEntry], entries: Iterable[TokenLedgerEntry]
) -> list[TokenLedgerEntry]:
    """Return a new ledger with ``entries`` merged in (lash's ``merge_ledger_entry`` rule)."""
    out = list(ledger)
    index = {(e.source, e.model): i for i, e in enumerate(out)}
    for entry in entries:
        if entry.usage.total() == 0:
            continue
        key = (entry.source, entry.model)
        if key in index:
            i = index[key]
            out[i] = TokenLedgerEntry(entry.source, entry.model, out[i].usage + entry.usage)
        else:
            index[key] = len(out)
            out.append(entry)
    return out


@dataclass(frozen=True, slots=True)
class UsageReportRow:
    source: str
    model: str
    usage: TokenUsage


@dataclass(frozen=True)
class SessionUsageReport:
    """Session usage so far: totals, by source, by model and by (source, model)."""

    entry_count: int = 0
    usage: TokenUsage = ZERO_USAGE
    by_source: Mapping[str, TokenUsage] = field(default_factory=dict)
    by_model: Mapping[str, TokenUsage] = field(default_factory=dict)
    by_source_model: tuple[UsageReportRow, ...] = ()

    @classmethod
    def from_entries(cls, ledger: Iterable[TokenLedgerEntry]) -> SessionUsageReport:
        entries = list(ledger)
        total = ZERO_USAGE
        by_source: dict[str, TokenUsage] = {}
        by_model: dict[str, TokenUsage] = {}
        for e in entries:
            total = total + e.usage
            by_source[e.source] = by_source.get(e.source, ZERO_USAGE) + e.usage
            by_model[e.model] = by_model.get(e.model, ZERO_USAGE) + e.usage
        return cls(
            entry_count=len(entries),
            usage=total,
            by_source=dict(sorted(by_source.items())),
            by_model=dict(sorted(by_model.items())),
            by_source_model=tuple(UsageReportRow(e.source, e.model, e.usage) for e in entries),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_count": self.entry_count,
            "usage": self.usage.totals_json(),
            "by_source": {k: v.totals_json() for k, v in self.by_source.items()},
            "by_model": {k: v.totals_json() for k, v in self.by_model.items()},
            "by_source_model": [
                {"source": r.source, "model": r.model, "usage": r.usage.totals_json()}
                for r in self.by_source_model
            ],
        }

    def to_dataframe(self) -> Any:
        """One row per (source, model) with the five buckets and ``total_tokens``."""
        import pandas as pd

        rows = [
            {"source": r.source, "model": r.model, **r.usage.totals_json()}
            for r in self.by_source_model
        ]
        columns = ["source", "model", *BUCKETS, "total_tokens"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype(dict.fromkeys(columns[2:], "int64"))

    def _repr_markdown_(self) -> str:
        head = "| source | model | input | output | cache read | cache write | reasoning | total |\n"
        head += "|---|---|---:|---:|---:|---:|---:|---:|\n"
        for r in self.by_source_model:
            u = r.usage
            head += (
                f"| {r.source} | {r.model} | {u.input_tokens} | {u.output_tokens} | "
                f"{u.cache_read_input_tokens} | {u.cache_write_input_tokens} | "
                f"{u.reasoning_output_tokens} | {u.total()} |\n"
            )
        return head


@dataclass(frozen=True, slots=True)
class LlmAttempt:
    """One transport invocation of a model call."""

    ordinal: int
    started_at_ms: int
    duration_ms: float
    outcome: str  # completed | failed | aborted | interrupted
    usage: TokenUsage | None = None
    error: str | None = None
    error_kind: str | None = None
    request_id: str | None = None
    served_model: str | None = None
    retry_delay_s: float | None = None
    estimated: bool = False  # usage is an estimate (a cut stream that reported nothing)

    def to_json(self) -> dict[str, Any]:
        return {
            "ordinal": self.ordinal,
            "started_at_ms": self.started_at_ms,
            "duration_ms": self.duration_ms,
            "outcome": self.outcome,
            "usage": self.usage.to_json() if self.usage else None,
            "error": self.error,
            "error_kind": self.error_kind,
            "request_id": self.request_id,
            "served_model": self.served_model,
            "retry_delay_s": self.retry_delay_s,
            "estimated": self.estimated,
        }


@dataclass(frozen=True, slots=True)
class LlmCallRecord:
    """One logical model call of a turn (one protocol iteration), with its attempts."""

    call_id: str
    model: str
    protocol_iteration: int
    attempts: tuple[LlmAttempt, ...]

    @property
    def usage(self) -> TokenUsage:
        """Usage of the attempt that completed (each response counted once)."""
        for a in reversed(self.attempts):
            if a.usage is not None:
                return a.usage
        return ZERO_USAGE

    @property
    def request_id(self) -> str | None:
        return self.attempts[-1].request_id if self.attempts else None

    @property
    def duration_ms(self) -> float:
        return sum(a.duration_ms for a in self.attempts)

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "model": self.model,
            "protocol_iteration": self.protocol_iteration,
            "attempts": [a.to_json() for a in self.attempts],
        }


CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: the documented estimate of tokens for ``chars`` characters."""
    return -(-max(0, chars) // CHARS_PER_TOKEN)


def estimate_usage(request_chars: int, output_chars: int) -> TokenUsage:
    """The estimated usage of a cut attempt (see the module docstring)."""
    return TokenUsage(input_tokens=estimate_tokens(request_chars),
                      output_tokens=estimate_tokens(output_chars))
