"""Issue 21's rows: what each cell shows and when a goal counts as met, computed from the
numbers the scripts printed (``issue21_lines.py``); and the README's numbers beside them. A
number that was not printed raises ``Missing``, which the table shows instead of a guess.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Metrics = dict[str, float]

# --------------------------------------------------------------------------- rows


class Missing(Exception):
    """A number a row needs was not printed (or its script failed)."""


@dataclass
class Results:
    """What a run printed: each (job, side)'s run (an ``issue21_lines.Run``: ``ok``,
    ``failure()``, ``stdout``) and its numbers; side is ``new`` or ``old``."""

    runs: dict[tuple[str, str], Any] = field(default_factory=dict)
    metrics: dict[tuple[str, str], Metrics] = field(default_factory=dict)
    conditions: dict[str, str] = field(default_factory=dict)

    def get(self, job: str, key: str, side: str = "new") -> float:
        got = self.metrics.get((job, side), {})
        if key in got:
            return got[key]
        run = self.runs.get((job, side))
        if run is None:
            raise Missing(f"{job} not run" + ("" if side == "new" else f" ({side})"))
        if not run.ok:
            raise Missing(f"{job}{'' if side == 'new' else ' (' + side + ')'} failed: {run.failure()}")
        raise Missing(f"not parsed: {job}{'' if side == 'new' else '(' + side + ')'} {key}")

    def first(self, job: str, keys: list[tuple[str, str]]) -> float:
        """The first of (key, side) that was printed (old values may come from two places)."""
        errors = []
        for key, side in keys:
            try:
                return self.get(job, key, side)
            except Missing as e:
                errors.append(str(e))
        raise Missing(errors[0])


Cell = Callable[[Results], str]
Verdict = Callable[[Results], tuple[bool, str]]


@dataclass(frozen=True)
class Row:
    key: str
    measure: str
    goal: str
    jobs: tuple[str, ...]
    now: Cell
    before: Cell
    peer: Cell
    met: Verdict


def ms(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.1f}" if abs(x) < 100 else f"{x:,.0f}"


def _hist(r: Results, job: str, prefix: str) -> list[str]:
    hs = sorted({k.split(".")[1][1:] for k in r.metrics.get((job, "new"), {}) if k.startswith(prefix)}, key=int)
    if not hs:
        r.get(job, f"{prefix}.h?.new.median")  # raises the right Missing
    return hs


def pace_cells(job: str, pace: str) -> tuple[Cell, Cell, Cell, Verdict]:
    def series(r: Results, who: str, stat: str = "median") -> str:
        hs = _hist(r, job, pace)
        get = printed_by(r, job, who)
        return " / ".join(ms(get(f"{pace}.h{h}.{who}.{stat}")) for h in hs) + f" ms at {' / '.join(hs)} turns"

    def peer(r: Results) -> str:
        return f"SQLiteSession {series(r, 'oai')}; SqliteSaver {series(r, 'lg')}"

    def met(r: Results) -> tuple[bool, str]:
        hs = _hist(r, job, pace)
        now = [r.get(job, f"{pace}.h{h}.new.median") for h in hs]
        peers = [min(r.get(job, f"{pace}.h{h}.oai.median"), r.get(job, f"{pace}.h{h}.lg.median")) for h in hs]
        below = all(a < b for a, b in zip(now, peers, strict=False))
        flat = max(now) / min(now)
        if pace == "pace0":  # the lead row: stay ahead of the peers, no regression
            old = [r.get(job, f"{pace}.h{h}.old.median") for h in hs]
            kept = all(a <= 1.25 * b for a, b in zip(now, old, strict=False))
            return below and kept, (f"below both peers: {'yes' if below else 'no'}; "
                                    f"within 1.25x of before: {'yes' if kept else 'no'}")
        under = max(now) < 10
        return below and flat <= 1.5 and under, (
            f"below both peers: {'yes' if below else 'no'}; flat (max/min {flat:.2f}, <= 1.5): "
            f"{'yes' if flat <= 1.5 else 'no'}; < 10 ms: {'yes' if under else 'no'}")

    return (lambda r: series(r, "new"), lambda r: series(r, "old"), peer, met)



def old(r: Results, job: str, key: str) -> float:
    """A before value printed by a script that ran both trees (``flag`` jobs)."""
    try:
        return r.get(job, key)
    except Missing:
        failed = r.runs.get((job, "old"))
        if failed is not None and not failed.ok:
            raise Missing(f"{job} with the old tree failed: {failed.failure()}") from None
        raise


def printed_by(r: Results, job: str, side: str) -> Callable[[str], float]:
    """A getter of one side's numbers of a script that ran both trees in one run."""
    return (lambda k: old(r, job, k)) if side == "old" else (lambda k: r.get(job, k))


def yes(b: bool) -> str:
    return "yes" if b else "no"


def queue_series(job: str, label: str, depths: tuple[int, ...], side: str, unit: str = "ms") -> Cell:
    def cell(r: Results) -> str:
        get = printed_by(r, job, side)
        vals = [get(f"duckdb|{label} {d}|{side}") for d in depths]
        return " / ".join(ms(v) for v in vals) + f" {unit} at depth " + " / ".join(f"{d:,}" for d in depths)
    return cell


def stmts(side: str, labels: tuple[str, ...]) -> Cell:
    def cell(r: Results) -> str:
        parts = []
        for lb in labels:
            n = r.get("queue_statements", f"DuckDB|{lb}|statements", side)
            b = r.get("queue_statements", f"DuckDB|{lb}|begin", side)
            d = r.metrics.get(("queue_statements", side), {}).get(f"DuckDB|{lb}|durable")
            parts.append(f"{n:.0f} stmts/{b:.0f} BEGIN" + ("" if d is None else f"/{d:.0f} durable"))
        return " / ".join(parts)
    return cell


def both(*cells: Cell) -> Cell:
    """Cells joined with '; ' (each part shows its own 'not parsed' instead of failing all)."""
    def cell(r: Results) -> str:
        out = []
        for c in cells:
            try:
                out.append(c(r))
            except Missing as e:
                out.append(str(e))
        return "; ".join(out)
    return cell


def fixed(text: str) -> Cell:
    return lambda r: text


PLAIN = ("plain turn, depth", (0, 1, 1000))
DRAIN = ("drain overhead, depth", (1, 100, 1000))
PLAIN_STMTS = ("plain turn, 0 queued for later", "plain turn, 1000 queued for later")
DRAIN_STMTS = ("drain of one batch, 1 queued", "drain of one batch, 1000 queued")


def plain_met(r: Results) -> tuple[bool, str]:
    n0 = r.get("queue_statements", f"DuckDB|{PLAIN_STMTS[0]}|statements")
    n1 = r.get("queue_statements", f"DuckDB|{PLAIN_STMTS[1]}|statements")
    b1 = r.get("queue_statements", f"DuckDB|{PLAIN_STMTS[1]}|begin")
    t0, t1 = (r.get("queue_pace", f"duckdb|plain turn, depth {d}|new") for d in (0, 1000))
    return n0 == n1 and b1 == 0, (f"same statements at 0 and 1,000 queued: {yes(n0 == n1)}; no transaction: "
                                  f"{yes(b1 == 0)} (time at 1,000 / at 0: {t1 / t0:.2f}x)")


def drain_met(r: Results) -> tuple[bool, str]:
    vals = [r.get("queue_pace", f"duckdb|drain overhead, depth {d}|new") for d in DRAIN[1]]
    commit = r.get("durable_pace", "b2b.new.median") / 2  # a turn is two commits
    limit = max(3.0, commit)
    ok = max(vals) <= limit
    return ok, (f"max over depths {ms(max(vals))} ms <= one commit ({ms(limit)} ms: the issue's ~3 ms or half "
                f"a back-to-back turn in this run, whichever is larger): {yes(ok)}")


def encoding_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        out = []
        for prov in ("OpenAI-compatible", "Anthropic"):
            hs = sorted({k.split(".")[1][1:] for k in r.metrics.get(("request_encoding", "new"), {})
                         if k.startswith(prov + ".")}, key=int)
            if not hs:
                r.get("request_encoding", f"{prov}.h10.{side}")
            out.append(f"{prov} " + " / ".join(ms(r.get("request_encoding", f"{prov}.h{h}.{side}")) for h in hs)
                       + " ms at " + " / ".join(f"{int(h):,}" for h in hs))
        return "; ".join(out)
    return cell


def encoding_met(r: Results) -> tuple[bool, str]:
    got = {k: v for k, v in r.metrics.get(("request_encoding", "new"), {}).items() if k.endswith(".new")}
    if not got:
        r.get("request_encoding", "OpenAI-compatible.h10.new")
    worst = max(got, key=lambda k: got[k])
    where = worst.rsplit(".", 1)[0]
    return got[worst] < 1, f"slowest per call {ms(got[worst])} ms ({where}) < 1 ms: {yes(got[worst] < 1)}"


def enqueue_met(r: Results) -> tuple[bool, str]:
    burst = r.get("queue_pace", "duckdb|enqueue burst of 1,000 (batches/s)|new")
    b = r.get("queue_statements", "DuckDB|a burst of 100 enqueues|begin")
    return burst >= 3000 and b <= 100, (f"burst {burst:,.0f}/s >= 3,000/s: {yes(burst >= 3000)}; "
                                        f"{b:.0f} BEGIN for 100 enqueues (<= 100): {yes(b <= 100)}")


AWAIT_MS = "duckdb|await: return minus drain's return (median)"
AWAIT_EARLY = "duckdb|await: returned before the commit (of 10)"


def await_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        get = printed_by(r, "queue_pace", side)
        return (f"{ms(get(f'{AWAIT_MS}|{side}'))} ms after the drain returned; "
                f"{get(f'{AWAIT_EARLY}|{side}'):.0f}/10 before the commit (DuckDB, same process)")
    return cell


def await_met(r: Results) -> tuple[bool, str]:
    lat, early = r.get("queue_pace", f"{AWAIT_MS}|new"), r.get("queue_pace", f"{AWAIT_EARLY}|new")
    ok = lat < 10 and early == 0
    return ok, (f"< 10 ms in-process: {yes(lat < 10)}; never before the commit: {yes(early == 0)} "
                "(across processes and PostgreSQL: not in this runner)")


def size_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        g = printed_by(r, "durable_pace", side)
        return (f"empty {g(f'size.empty.{side}'):,.1f} kB, one turn {g(f'size.one.{side}'):,.1f} kB, "
                f"{g(f'size.per_turn.{side}'):.2f} kB/turn over 10 -> "
                f"{r.get('durable_pace', 'size.turns'):,.0f} turns")
    return cell


def size_met(r: Results) -> tuple[bool, str]:
    one, per = r.get("durable_pace", "size.one.new"), r.get("durable_pace", "size.per_turn.new")
    turns = r.get("durable_pace", "size.turns")
    cond = "" if turns >= 10_000 else f" (measured to {turns:,.0f} turns, the goal is at 10,000)"
    return one < 300 and per <= 2, f"one turn < 300 kB: {yes(one < 300)}; <= 2 kB/turn: {yes(per <= 2)}{cond}"


def has_cold_resume(r: Results) -> bool:
    """Whether cold_resume.py printed its ``ROW cold_resume`` line."""
    return "open_ms" in r.metrics.get(("cold_resume", "new"), {})


def resume_now(side: str) -> Cell:
    def cell(r: Results) -> str:
        if has_cold_resume(r):
            pre = "old_" if side == "old" else ""
            g = printed_by(r, "cold_resume", side)
            out = f"fresh process: open {ms(g(pre + 'open_ms'))} ms, open + read all {ms(g(pre + 'decode_ms'))} ms"
            with contextlib.suppress(Missing):
                out += f"; branched session (active path) open {ms(g(pre + 'branched_open_ms'))} ms"
            return out
        g = lambda k: r.get("store", k, side)  # noqa: E731
        full = g("linear.full_graph.cold") + g("linear.full_graph.read_all")
        return (f"store.py, in-process, 10,000 nodes linear: active path load cold "
                f"{ms(g('linear.active_path.cold'))} ms; full graph load cold + read all {ms(full)} ms")
    return cell


def resume_floor(r: Results) -> float:
    """Raw DuckDB in a fresh process (connect + 40,000 rows) plus the json.loads of every payload
    (the anchors' warm 'fetchall + json.loads' minus 'fetchall')."""
    fresh = r.get("anchors_resume", "fresh|duckdb (interleaved)")
    loads = (r.get("anchors_resume", "warm|duckdb (interleaved): read 40k rows: fetchall + json.loads")
             - r.get("anchors_resume", "warm|duckdb (interleaved): read 40k rows: fetchall"))
    return fresh + loads


def resume_peer(r: Results) -> str:
    out = []
    if has_cold_resume(r):
        with contextlib.suppress(Missing):
            out.append(f"cold_resume.py: raw floor (connect + rows + json.loads) "
                       f"{ms(r.get('cold_resume', 'raw_floor_ms'))} ms, openai-agents "
                       f"{ms(r.get('cold_resume', 'oai_ms'))} ms")
    out.append(f"anchors: raw DuckDB, 40,000 rows + json.loads {ms(resume_floor(r))} ms (fresh process); "
               f"openai-agents {ms(r.get('anchors_resume', 'fresh|openai-agents'))} ms; LangGraph "
               f"{ms(r.get('anchors_resume', 'fresh|langgraph'))} ms")
    return "; ".join(out)


def resume_met(r: Results) -> tuple[bool, str]:
    try:  # the floor measured beside lash_nb in cold_resume.py's own rounds, else the anchors'
        floor = r.get("cold_resume", "raw_floor_ms")
    except Missing:
        floor = resume_floor(r)
    if not has_cold_resume(r):
        # store.py seeds 10,000 nodes (2,500 turns) and reads them in-process: not the issue's
        # 10,000 turns (40,000 messages) in a fresh process, so it cannot judge this row
        raise Missing("no ROW resume line from cold_resume.py; store.py's 10,000 nodes in-process "
                      "are not the 40,000-message floor's condition")
    op, dec = r.get("cold_resume", "open_ms"), r.get("cold_resume", "decode_ms")
    ok = op < 150 and dec <= 1.2 * floor
    return ok, (f"open < 150 ms: {yes(op < 150)}; decode {dec / floor:.2f}x the raw floor (<= 1.2): "
                f"{yes(dec <= 1.2 * floor)}; path-only reads: not counted here")


def frame_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        rows = r.get("reports", "rows")
        out = (f"by model {ms(r.get('reports', 'model.lash', side))} ms = "
               f"{r.get('reports', 'model.ratio', side):.2f}x raw")
        with contextlib.suppress(Missing):
            out += (f"; by turn {ms(r.get('reports', 'turn.lash', side))} ms = "
                    f"{r.get('reports', 'turn.ratio', side):.2f}x raw")
        return out + f" ({rows:,.0f} rows)"
    return cell


def frame_peer(r: Results) -> str:
    out = f"same SQL, independent connection: by model {ms(r.get('reports', 'model.raw'))} ms"
    with contextlib.suppress(Missing):
        out += f", by turn {ms(r.get('reports', 'turn.raw'))} ms"
    return out


def frame_met(r: Results) -> tuple[bool, str]:
    a = r.get("reports", "model.ratio")
    try:
        t = r.get("reports", "turn.ratio")
    except Missing:
        t = math.nan
    ok = a <= 1.1 and not t > 1.1
    return ok, f"by model {a:.2f}x <= 1.1: {yes(a <= 1.1)}; by turn {t:.2f}x <= 1.1: {yes(t <= 1.1)}"


def widget_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        g = lambda k: r.get("widget_stream", k, side)  # noqa: E731
        out = (f"paced: {g('linear.n'):,.0f} deltas {g('linear.mb_n'):.3f} MB, {g('linear.n4'):,.0f} deltas "
               f"{g('linear.mb_n4'):.3f} MB ({g('linear.ratio'):.1f}x for 4x the answer)")
        with contextlib.suppress(Missing):
            html = (g("linear.html_n"), g("linear.html_n4"))
            rest = (g("linear.mb_n") - html[0], g("linear.mb_n4") - html[1])
            grew = f"{html[1] / html[0]:.1f}x" if html[0] else "none at the smaller size"
            out += (f"; rendered prose HTML {html[0]:.3f} -> {html[1]:.3f} MB ({grew}), "
                    f"the rest {rest[1] / rest[0]:.1f}x")
        return out
    return cell


def widget_met(r: Results) -> tuple[bool, str]:
    ratio = r.get("widget_stream", "linear.ratio")
    ok = ratio <= 4.4
    return ok, (f"4x the answer costs {ratio:.1f}x the bytes (linear: <= 4.4x): {yes(ok)}; "
                "final state exact: tested, not here")


def load_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        if side == "old" and "old.median_ms" in r.metrics.get(("load_ext", "new"), {}):
            got = r.metrics[("load_ext", "new")]  # the newer script ran both trees, interleaved
            return f"{ms(got['old.median_ms'])} ms to idle; {got.get('old.modules', math.nan):.0f} modules imported"
        g = lambda k: r.get("load_ext", k, side)  # noqa: E731
        out = f"{ms(g('median_ms'))} ms to idle (median of {g('rounds'):.0f})"
        with contextlib.suppress(Missing):
            out += f"; {g('modules'):.0f} modules imported"
        with contextlib.suppress(Missing):
            out += f"; widgets imported in {g('rounds_importing_widgets'):.0f} rounds"
        return out
    return cell


def load_peer(r: Results) -> str:
    try:
        return f"a %load_ext of an extension that does nothing: {ms(r.get('load_ext', 'floor.median_ms'))} ms"
    except Missing:
        return "- (this version of load_ext.py prints no floor)"


def load_met(r: Results) -> tuple[bool, str]:
    m = r.get("load_ext", "median_ms")
    try:
        above = m - r.get("load_ext", "floor.median_ms")
    except Missing:
        return m < 100, f"{ms(m)} ms to idle < 100 ms: {yes(m < 100)}"
    return above < 100, (f"{ms(above)} ms above the kernel's own %load_ext < 100 ms: {yes(above < 100)} "
                         f"({ms(m)} ms to idle < 100: {yes(m < 100)})")


def inmem_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        g = lambda k: r.get("turn_overhead", k, side)  # noqa: E731
        v = lambda k: r.get("vs_peers", k, side)  # noqa: E731
        hs = sorted({k.split(".")[0][1:] for k in r.metrics.get(("vs_peers", side), {})}, key=int)
        peers = " / ".join(ms(v(f"h{h}.mem")) for h in hs)
        return (f"{ms(g('early.median'))} ms at ~{g('early.history'):,.0f} turns, {ms(g('late.median'))} ms at "
                f"~{g('late.history'):,.0f} (turn_overhead); {peers} ms at {' / '.join(hs)} (vs_peers)")
    return cell


def inmem_peer(r: Results) -> str:
    hs = sorted({k.split(".")[0][1:] for k in r.metrics.get(("vs_peers", "new"), {})}, key=int)
    if not hs:
        r.get("vs_peers", "h10.oai")
    out = []
    for who, name in (("oai", "openai-agents"), ("pyd", "pydantic-ai"), ("lg", "LangGraph")):
        try:
            out.append(f"{name} " + " / ".join(ms(r.get("vs_peers", f"h{h}.{who}")) for h in hs))
        except Missing:
            out.append(f"{name} not run")
    return "; ".join(out) + f" ms at {' / '.join(hs)}"


def inmem_met(r: Results) -> tuple[bool, str]:
    early, late = r.get("turn_overhead", "early.median"), r.get("turn_overhead", "late.median")
    m = r.metrics.get(("vs_peers", "new"), {})
    hs = sorted({k.split(".")[0][1:] for k in m}, key=int)
    below = all(m[f"h{h}.mem"] < min(v for k, v in m.items() if k.startswith(f"h{h}.") and k.split(".")[1]
                                     in ("oai", "pyd", "lg")) for h in hs) if hs else False
    flat = late / early
    try:
        before = r.get("turn_overhead", "late.median", "old")
        kept = late <= 1.25 * before
        k = f"; within 1.25x of before ({ms(before)} ms): {yes(kept)}"
    except Missing:
        kept, k = True, "; before: not measured"
    return below and flat <= 1.5 and kept, (f"below every peer: {yes(below)}; flat (late/early {flat:.2f} "
                                             f"<= 1.5): {yes(flat <= 1.5)}{k}")


def b2b_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        g = printed_by(r, "durable_pace", side)
        return (f"median {ms(g(f'b2b.{side}.median'))}, mean {ms(g(f'b2b.{side}.mean'))}, max "
                f"{ms(g(f'b2b.{side}.max'))} ms = {g(f'b2b.ratio.{side}'):.2f}x floor")
    return cell


def b2b_met(r: Results) -> tuple[bool, str]:
    ratio, top = r.get("durable_pace", "b2b.ratio.new"), r.get("durable_pace", "b2b.new.max")
    return ratio <= 1.3, (f"mean {ratio:.2f}x floor <= 1.3: {yes(ratio <= 1.3)}; no fold on the path: not "
                          f"measured here (max {ms(top)} ms)")


def enqueue_cell(side: str) -> Cell:
    def cell(r: Results) -> str:
        g = printed_by(r, "queue_pace", side)
        return (f"burst {g(f'duckdb|enqueue burst of 1,000 (batches/s)|{side}'):,.0f}/s, one at a time "
                f"{g(f'duckdb|enqueue one at a time (batches/s)|{side}'):,.0f}/s")
    return cell


def analysis_met(r: Results) -> tuple[bool, str]:
    ratio = r.get("reports", "model.ratio")
    return ratio <= 1.1, f"by model {ratio:.2f}x <= 1.1: {yes(ratio <= 1.1)}"


HOT = pace_cells("hot_durable", "pace0")
PACE = pace_cells("durable_pace", "pace3")


def hot_peer(r: Results) -> str:
    return HOT[2](r)


ROWS: tuple[Row, ...] = (
    Row("pace", "durable turn at a human's pace (3 s between turns), DuckDB",
        "below both peers, flat in history, < 10 ms", ("durable_pace",),
        PACE[0], PACE[1], PACE[2], PACE[3]),
    Row("b2b", "back-to-back durable turn (folds settled between rounds, their work printed)",
        "mean <= 1.3x lash's floor (two JSON-row inserts)",
        ("durable_pace",), b2b_cell("new"), b2b_cell("old"),
        lambda r: (f"floor median {ms(r.get('durable_pace', 'b2b.floor.median'))}, mean "
                   f"{ms(r.get('durable_pace', 'b2b.floor.mean'))} ms"), b2b_met),
    Row("plain_queued", "a plain turn while anything is queued (DuckDB)",
        "flat in depth, no extra transaction when nothing is eligible", ("queue_pace", "queue_statements"),
        both(queue_series("queue_pace", *PLAIN, side="new"), stmts("new", PLAIN_STMTS)),
        both(queue_series("queue_pace", *PLAIN, side="old"), stmts("old", PLAIN_STMTS)),
        fixed("- (lash_nb's own turn with an empty queue is the baseline)"), plain_met),
    Row("drain", "queue drain overhead on DuckDB (drain turn minus plain turn)", "<= one commit (~3 ms), flat in depth",
        ("queue_pace", "queue_statements", "durable_pace"),
        both(queue_series("queue_pace", *DRAIN, side="new"), stmts("new", DRAIN_STMTS)),
        both(queue_series("queue_pace", *DRAIN, side="old"), stmts("old", DRAIN_STMTS)),
        lambda r: f"one lash_nb commit ~{ms(r.get('durable_pace', 'b2b.new.median') / 2)} ms (half a b2b turn)",
        drain_met),
    Row("encoding", "model request encoding per call with a real provider's wire format", "< 1 ms per call, flat",
        ("request_encoding",), encoding_cell("new"),
        lambda r: "full re-encode (what the old code did every call), same run: " + encoding_cell("full")(r),
        fixed("-"), encoding_met),
    Row("enqueue", "enqueue on DuckDB", ">= 3,000/s for a burst, one commit per enqueue at most",
        ("queue_pace", "queue_statements"),
        both(enqueue_cell("new"), stmts("new", ("a burst of 100 enqueues",))),
        both(enqueue_cell("old"), stmts("old", ("a burst of 100 enqueues",))),
        fixed("-"), enqueue_met),
    Row("await", "await_queued_work_batch latency", "returns at the commit; < 10 ms in the same process",
        ("queue_pace",), await_cell("new"), await_cell("old"), fixed("-"), await_met),
    Row("file_size", "file size", "one short turn < 300 kB, <= 2 kB/turn at 10,000", ("durable_pace",),
        size_cell("new"), size_cell("old"),
        lambda r: (f"SQLiteSession empty {r.get('durable_pace', 'size.oai.empty'):.1f} kB, 10 turns "
                   f"{r.get('durable_pace', 'size.oai.ten'):.1f} kB"), size_met),
    Row("resume", "resume a 10,000-turn session in a fresh process",
        "open < 150 ms, active path reads only the path, full decode <= raw floor x1.2",
        ("cold_resume", "store", "anchors_resume"), resume_now("new"), resume_now("old"), resume_peer, resume_met),
    Row("usage_frame", "usage_frame(store, by='model') over 1M rows (and by='turn')", "<= 1.1x the same SQL raw",
        ("reports",), frame_cell("new"), frame_cell("old"), frame_peer, frame_met),
    Row("widget", "live widget stream", "traffic linear in the answer", ("widget_stream",),
        widget_cell("new"), widget_cell("old"), fixed("-"), widget_met),
    Row("load_ext", "%load_ext lash_nb to idle, fresh kernel", "< 100 ms", ("load_ext",),
        load_cell("new"), load_cell("old"), load_peer, load_met),
    # the rows where lash_nb leads: keep them
    Row("lead_inmem", "lead: in-memory turn, flat to 10,000 turns", "keep: below the peers, flat, no regression",
        ("turn_overhead", "vs_peers"), inmem_cell("new"), inmem_cell("old"), inmem_peer, inmem_met),
    Row("lead_hot", "lead: hot durable DuckDB turn at 1,000 turns of history (no pause)",
        "keep: below SQLiteSession and SqliteSaver, no regression", ("hot_durable",), HOT[0], HOT[1], hot_peer, HOT[3]),
    Row("lead_analysis", "lead: usage_frame vs raw on an independent connection", "keep: <= 1.1x raw",
        ("reports",), frame_cell("new"), frame_cell("old"), frame_peer,
        analysis_met),
)


# --------------------------------------------------------------------------- README claims


@dataclass(frozen=True)
class Claim:
    """A number the README publishes, beside what this run measured under the same condition."""

    text: str
    claimed: float
    measured: Callable[[Results], float]
    where: str  # the script and condition that measure it


def at(r: Results, job: str, key: str, cond: str, value: float) -> float:
    """``key`` only when the run's ``cond`` number is ``value`` (a claim's condition)."""
    got = r.get(job, cond)
    if abs(got - value) > 0.05 * value:
        raise Missing(f"measured at {cond} {got:,.0f}, the claim is at {value:,.0f}")
    return r.get(job, key)


CLAIMS: tuple[Claim, ...] = (
    Claim("in-memory turn, 10 turns of history: 0.28 ms", 0.28, lambda r: r.get("vs_peers", "h10.mem"),
          "vs_peers.py, history 10"),
    Claim("in-memory turn, 1,000 turns of history: 0.29 ms", 0.29, lambda r: r.get("vs_peers", "h1000.mem"),
          "vs_peers.py, history 1,000"),
    Claim("in-memory turn at 10,000 turns: 0.43 ms", 0.43,
          lambda r: at(r, "turn_overhead", "late.median", "late.history", 10_200), "turn_overhead.py (full run)"),
    Claim("openai-agents, 10 turns of history: 2.4 ms", 2.4, lambda r: r.get("vs_peers", "h10.oai"),
          "vs_peers.py, history 10"),
    Claim("openai-agents, 1,000 turns: 80 ms", 80, lambda r: r.get("vs_peers", "h1000.oai"),
          "vs_peers.py, history 1,000"),
    Claim("pydantic-ai, 10 turns: 15.2 ms (earlier run)", 15.2, lambda r: r.get("vs_peers", "h10.pyd"),
          "vs_peers.py (pydantic-ai installed)"),
    Claim("LangGraph, 10 turns: 11.4 ms", 11.4, lambda r: r.get("vs_peers", "h10.lg"),
          "vs_peers.py (LangGraph InMemorySaver), history 10"),
    Claim("LangGraph, 1,000 turns: 127 ms", 127, lambda r: r.get("vs_peers", "h1000.lg"),
          "vs_peers.py (LangGraph InMemorySaver), history 1,000"),
    Claim("durable turn at pace, 10 turns: 4.3 ms", 4.3, lambda r: r.get("durable_pace", "pace3.h10.new.median"),
          "durable_pace.py, 3 s pace"),
    Claim("durable turn at pace, 1,000 turns: 6.0 ms", 6.0,
          lambda r: r.get("durable_pace", "pace3.h1000.new.median"), "durable_pace.py, 3 s pace"),
    Claim("durable turn at pace, 10,000 turns: 33.5 ms (loaded run)", 33.5,
          lambda r: r.get("durable_pace", "pace3.h10000.new.median"), "durable_pace.py, 3 s pace (full run only)"),
    Claim("SQLiteSession at pace, 10 turns: 8.1 ms", 8.1,
          lambda r: r.get("durable_pace", "pace3.h10.oai.median"), "durable_pace.py, 3 s pace"),
    Claim("SQLiteSession at pace, 1,000 turns: 133 ms", 133,
          lambda r: r.get("durable_pace", "pace3.h1000.oai.median"), "durable_pace.py, 3 s pace"),
    Claim("SqliteSaver at pace, 10 turns: 12.9 ms", 12.9,
          lambda r: r.get("durable_pace", "pace3.h10.lg.median"), "durable_pace.py, 3 s pace"),
    Claim("SqliteSaver at pace, 1,000 turns: 147 ms", 147,
          lambda r: r.get("durable_pace", "pace3.h1000.lg.median"), "durable_pace.py, 3 s pace"),
    Claim("back to back: 2.21 ms median", 2.21, lambda r: r.get("durable_pace", "b2b.new.median"),
          "durable_pace.py back to back"),
    Claim("back to back: 2.65 ms mean", 2.65, lambda r: r.get("durable_pace", "b2b.new.mean"),
          "durable_pace.py back to back"),
    Claim("floor (two JSON-row inserts): 1.50 ms median", 1.50, lambda r: r.get("durable_pace", "b2b.floor.median"),
          "durable_pace.py back to back"),
    Claim("lash_nb mean / floor mean: 1.55x", 1.55, lambda r: r.get("durable_pace", "b2b.ratio.new"),
          "durable_pace.py back to back"),
    Claim("new store file: 78 kB empty", 78, lambda r: r.get("durable_pace", "size.empty.new"), "durable_pace.py size"),
    Claim("new store file: 274 kB after one short turn", 274, lambda r: r.get("durable_pace", "size.one.new"),
          "durable_pace.py size"),
    Claim("1.67 kB per turn at 10,000 turns", 1.67,
          lambda r: at(r, "durable_pace", "size.per_turn.new", "size.turns", 10_000),
          "durable_pace.py size (full run)"),
    Claim("SqliteSaver 72.7 MB per turn at 10,000 turns (default durability)", 72.7,
          lambda r: at(r, "peer_checkpoint_size", "lg.default", "history", 10_000),
          "peer_checkpoint_size.py (full run)"),
    Claim("SqliteSaver 10.4 MB per turn at 10,000 turns (durability=exit)", 10.4,
          lambda r: at(r, "peer_checkpoint_size", "lg.exit", "history", 10_000),
          "peer_checkpoint_size.py (full run)"),
    Claim("SqliteSaver 7.3 MB per turn at 1,000 turns (default durability)", 7.3,
          lambda r: at(r, "peer_checkpoint_size", "lg.default", "history", 1_000),
          "peer_checkpoint_size.py (quick run)"),
    Claim("SqliteSaver 1.0 MB per turn at 1,000 turns (durability=exit)", 1.0,
          lambda r: at(r, "peer_checkpoint_size", "lg.exit", "history", 1_000), "peer_checkpoint_size.py (quick run)"),
    Claim("a commit is one commit_log row (~1 ms: 1.08 ms median)", 1.08,
          lambda r: r.get("store", "commit.terminal.median"), "store.py terminal commit (60 events, 2 tool calls)"),
)
