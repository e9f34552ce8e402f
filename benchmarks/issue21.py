"""Issue 21's table from one run: each row's benchmark script, lash_nb now beside the code
before (an old tree checked out for this run) and the peers or the raw floor, and whether the
issue's goal is met, computed from the numbers the scripts printed.

    python -P benchmarks/issue21.py [--quick] [--against 24d40b7] [--only pace,b2b,...]
        [--keep-logs DIR] [--list]

- ``--against`` takes a commit (checked out with ``git worktree add --detach`` into a temporary
  folder and removed at the end) or the path of an existing checkout. Default 24d40b7: the code
  before any performance work. ``--against none`` runs without a before column.
- ``--quick`` is a smoke run: fewer rounds and smaller sizes (each row states its condition);
  the full run uses the issue's sizes (10,000 turns, 1M usage rows) and takes long.
- Scripts run one after another in child processes (``python -P``, PYTHONPATH set to the tree
  measured). The "before" of a row comes, in order of preference, from the script's own
  ``--against``/``--baseline`` (old and new interleaved in one script run), from the same
  script run with PYTHONPATH pointing at the old tree, or from the old tree's own copy of the
  script. A script that fails, times out or prints nothing usable shows as a failed row with
  its last stderr line; the runner goes on.
- Every cell is parsed from what the scripts print; a number that could not be parsed is shown
  as ``not parsed: <what>`` and its row's "met" says so rather than guessing.

Machine-readable lines: a script may print lines ``ROW <script> <json object>``, ``<script>``
being its file name without ``.py`` and the object mapping this runner's keys for it to
numbers, e.g. ``ROW load_ext {"median_ms": 92.0, "rounds": 7}``; such numbers replace what the
runner read from the human lines. ``ROW_LINES`` (``--list``) lists the lines wanted from the
scripts that do not print them yet; the runner works without them.

Timings on a shared 2-core machine swing: compare within one run (the scripts interleave rounds
and print medians); counts (statements, bytes) are the solid evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = ROOT.parent / "shared" / "anchors"
DEFAULT_AGAINST = "24d40b7"

# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One script invocation whose printed lines feed one or more rows.

    ``before``: how the old tree is measured: ``"flag"`` appends ``flag OLD`` to one run (the
    script interleaves old and new itself); ``"pythonpath"`` runs this script a second time with
    the old tree on PYTHONPATH; ``"old_script"`` runs the old tree's copy of the script (for
    scripts that find the package from their own location); ``None``: no before.
    """

    name: str
    script: str  # relative to the repository root, or "anchors:<file>"
    quick: tuple[str, ...]
    full: tuple[str, ...]
    before: str | None = None
    flag: str = "--against"
    timeout_s: float = 3600
    optional: bool = False  # the script may not exist yet: skipped without a failure
    pairs: int = 1  # new/old runs alternated this many times (medians): for short scripts
    newer: Newer | None = None  # how to run a rewritten version of the script, once it lands


@dataclass(frozen=True)
class Newer:
    """Arguments for a newer version of a script, recognised by a text in its source."""

    marker: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    before: str | None
    flag: str = "--against"


JOBS: dict[str, Job] = {j.name: j for j in (
    Job("durable_pace", "benchmarks/durable_pace.py",
        ("--histories", "10,1000", "--rounds", "3", "--b2b", "80", "--size-turns", "200"),
        ("--histories", "10,1000,10000", "--rounds", "8", "--b2b", "400", "--size-turns", "10000"),
        before="flag", flag="--baseline"),
    Job("hot_durable", "benchmarks/durable_pace.py",
        ("--only", "pace", "--pace", "0", "--histories", "1000", "--rounds", "3", "--size-turns", "20"),
        ("--only", "pace", "--pace", "0", "--histories", "1000", "--rounds", "10", "--size-turns", "20"),
        before="flag", flag="--baseline"),
    Job("queue_pace", "benchmarks/queue_pace.py", ("--rounds", "1"), ("--rounds", "5"), before="flag"),
    Job("queue_statements", "benchmarks/queue_statements.py", (), (), before="pythonpath"),
    Job("request_encoding", "benchmarks/request_encoding.py", (), ()),
    Job("reports", "benchmarks/reports.py", ("200000", "--by-turn"), ("1000000", "--by-turn"),
        before="pythonpath"),
    Job("widget_stream", "benchmarks/widget_stream.py", ("--n", "2000"), ("--n", "10000"),
        before="pythonpath"),
    Job("load_ext", "benchmarks/load_ext.py", ("3",), ("7",), before="old_script", pairs=2,
        newer=Newer('"--against"', ("--rounds", "3"), ("--rounds", "7"), before="flag")),
    Job("store", "benchmarks/store.py", ("--turns", "30"), ("--turns", "200"), before="pythonpath"),
    Job("cold_resume", "benchmarks/cold_resume.py", ("--rounds", "2"), ("--rounds", "5"), before="flag",
        optional=True),
    Job("anchors_resume", "anchors:bench_resume.py", ("--quick",), ()),
    Job("turn_overhead", "benchmarks/turn_overhead.py", ("--quick",), (), before="pythonpath", pairs=3),
    Job("vs_peers", "benchmarks/vs_peers.py", ("--histories", "10,1000"), ("--histories", "10,1000,10000"),
        before="pythonpath"),
    Job("peer_checkpoint_size", "benchmarks/peer_checkpoint_size.py",
        ("--history", "1000", "--turns", "3"), ("--history", "10000", "--turns", "3")),
)}
README_JOBS = ("peer_checkpoint_size",)  # numbers only the README publishes: run when every row runs
PAIR = "\n#-- next run of the same script --\n"  # between the stdouts of a job's alternated runs

# the lines wanted from scripts that do not print ROW lines yet (for the lead; the human lines
# are parsed meanwhile). Values are examples; the keys are the ones the rows read.
ROW_LINES: dict[str, list[str]] = {
    "durable_pace": [
        ('ROW durable_pace {"pace3.h10.new.median": 13.1, "pace3.h10.new.mean": 14.0, "pace3.h10.old.median": '
        '86.5, "pace3.h10.oai.median": 28.4, "pace3.h10.lg.median": 29.0}  (one per history; pace0 with --pace 0)'),
        ('ROW durable_pace {"b2b.new.median": 2.94, "b2b.new.mean": 3.40, "b2b.new.max": 24.5, "b2b.old.median": '
        '3.42, "b2b.old.mean": 5.24, "b2b.old.max": 48.8, "b2b.floor.median": 1.50, "b2b.floor.mean": 1.76, '
        '"b2b.ratio.new": 1.93, "b2b.ratio.old": 2.97}'),
        ('ROW durable_pace {"size.empty.new": 77.8, "size.one.new": 274.4, "size.turns": 10000, '
        '"size.per_turn.new": 2.31, "size.empty.old": 798.7, "size.one.old": 3682.3, "size.per_turn.old": 2.36, '
        '"size.oai.empty": 24.6, "size.oai.ten": 32.8}  (kB)'),
    ],
    "queue_pace": [
        ('ROW queue_pace {"duckdb|plain turn, depth 0|new": 8.1, "duckdb|plain turn, depth 0|old": 35.1, ...}  '
        '(every "label|side" it prints today; labels as printed, spaces collapsed)'),
    ],
    "load_ext": ['ROW load_ext {"median_ms": 92.0, "rounds": 7, "rounds_importing_widgets": 0}'],
    "cold_resume": [
        ('ROW cold_resume {"history": 10000, "open_ms": 120.0, "decode_ms": 400.0, "old_open_ms": 220.0, '
        '"old_decode_ms": 900.0, "active_path_rows_read": 50}  (ms; fresh process each)'),
    ],
}


@dataclass
class Run:
    job: str
    side: str  # "new" or "old"
    argv: list[str]
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self) -> str:
        if self.note:
            return self.note
        last = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        why = last[-1].strip() if last else "no output on stderr"
        return f"exit {self.returncode}: {why[:160]}"


def run_script(job: str, side: str, argv: list[str], *, env: dict[str, str], cwd: str,
               timeout_s: float) -> Run:
    """Run one child process to its end; never raises for the child's failure or timeout."""
    run = Run(job, side, argv)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        run.stdout = _text(e.stdout)
        run.stderr = _text(e.stderr)
        run.note = f"timed out after {timeout_s:.0f} s"
    except OSError as e:
        run.note = f"could not start: {e}"
    else:
        run.returncode, run.stdout, run.stderr = done.returncode, done.stdout, done.stderr
    run.seconds = time.perf_counter() - t0
    return run


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")


# --------------------------------------------------------------------------- parsing

Metrics = dict[str, float]
NUM = r"(-?[\d,]*\.?\d+)"


def num(s: str) -> float:
    return float(s.replace(",", ""))


def row_lines(text: str) -> dict[str, list[dict[str, object]]]:
    """``ROW <key> <json>`` lines, by key (a key may repeat: one object per line)."""
    out: dict[str, list[dict[str, object]]] = {}
    for line in text.splitlines():
        m = re.match(r"^ROW (\S+) (\{.*\})\s*$", line)
        if not m:
            continue
        try:
            obj = json.loads(m.group(2))
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.setdefault(m.group(1), []).append(obj)
    return out


def flatten(prefix: str, obj: object, into: Metrics) -> None:
    if isinstance(obj, (bool, int, float)):
        into[prefix] = float(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, into)


def parse_row_json(job: str, text: str) -> Metrics:
    """The numbers of every ``ROW <script> {...}`` line of this job's script, by the runner's keys
    (two jobs may run one script: ``durable_pace`` and ``hot_durable``)."""
    out: Metrics = {}
    for obj in row_lines(text).get(Path(JOBS[job].script.split(":")[-1]).stem, []):
        flatten("", obj, out)
    return out


def parse_durable_pace(text: str) -> Metrics:
    out: Metrics = {}
    section = ""
    names = {"this checkout": "new", "baseline checkout": "old", "SQLiteSession": "oai",
             "SqliteSaver": "lg", "floor": "floor"}
    for line in text.splitlines():
        if m := re.match(r"## durable turn at a human's pace \(([\d.]+) s between turns\), history (\d+)", line):
            section = f"pace{num(m.group(1)):g}.h{m.group(2)}"
        elif line.startswith("## back-to-back"):
            section = "b2b"
        elif line.startswith("## file size"):
            section = "size"
        elif m := re.match(r"\s+(.+?)\s+median\s+" + NUM + r" ms\s+mean\s+" + NUM + r"\s+p90\s+" + NUM
                           + r"\s+max\s+" + NUM, line):
            who = next((v for k, v in names.items() if k in m.group(1)), None)
            if who and section:
                for i, stat in enumerate(("median", "mean", "p90", "max"), start=2):
                    out[f"{section}.{who}.{stat}"] = num(m.group(i))
        elif m := re.search(r"lash mean / floor mean: " + NUM + r"x(?:.*baseline " + NUM + r"x)?", line):
            out["b2b.ratio.new"] = num(m.group(1))
            if m.group(2):
                out["b2b.ratio.old"] = num(m.group(2))
        elif m := re.match(r"\s+lash_nb, (.+?)\s+" + NUM + r" kB(?:.*baseline\s+" + NUM + r" kB)?", line):
            label = {"empty": "empty", "one short turn": "one", "10 turns": "ten"}.get(m.group(1).strip(), "big")
            out[f"size.{label}.new"] = num(m.group(2))
            if m.group(3):
                out[f"size.{label}.old"] = num(m.group(3))
        elif m := re.search(r"growth per turn, 10 -> (\d+) turns: " + NUM + r" kB/turn(?:.*baseline " + NUM + ")?",
                            line):
            out["size.turns"] = num(m.group(1))
            out["size.per_turn.new"] = num(m.group(2))
            if m.group(3):
                out["size.per_turn.old"] = num(m.group(3))
        elif m := re.search(r"SQLiteSession: empty " + NUM + r" kB, 10 turns " + NUM + r" kB", line):
            out["size.oai.empty"], out["size.oai.ten"] = num(m.group(1)), num(m.group(2))
    return out


def _label(s: str) -> str:
    return " ".join(s.split())


def parse_queue_pace(text: str) -> Metrics:
    """``== store`` sections of ``label  [old]  new`` lines (``-`` for a missing old)."""
    out: Metrics = {}
    store = ""
    two = False  # the --against layout: an "old new" header, two columns on every line
    for line in text.splitlines():
        if m := re.match(r"== (\w+)", line):
            store, two = m.group(1), bool(re.search(r"\bold\s+new\s*$", line))
        elif store and two and (m := re.match(r"  (\S.*?)\s+(-|" + NUM + r")\s+" + NUM + r"\s*$", line)):
            out[f"{store}|{_label(m.group(1))}|old"] = num(m.group(2)) if m.group(2) != "-" else math.nan
            out[f"{store}|{_label(m.group(1))}|new"] = num(m.group(4))
        elif store and not two and (m := re.match(r"  (\S.*?)\s+" + NUM + r"\s*$", line)):
            out[f"{store}|{_label(m.group(1))}|new"] = num(m.group(2))
    return {k: v for k, v in out.items() if not math.isnan(v)}


def parse_queue_statements(text: str) -> Metrics:
    out: Metrics = {}
    store = ""
    for line in text.splitlines():
        if m := re.match(r"== (\w+)", line):
            store = m.group(1)
        elif m := re.match(r"\s+(.+?):\s+(\d+) statements, (\d+) BEGIN(?:, (\d+) durable)?", line):
            out[f"{store}|{_label(m.group(1))}|statements"] = num(m.group(2))
            out[f"{store}|{_label(m.group(1))}|begin"] = num(m.group(3))
            if m.group(4):
                out[f"{store}|{_label(m.group(1))}|durable"] = num(m.group(4))
    return out


def parse_request_encoding(text: str) -> Metrics:
    out: Metrics = {}
    provider = ""
    for line in text.splitlines():
        if m := re.match(r"# request_encoding: (\S+)", line):
            provider = m.group(1)
        elif m := re.search(r"history\s+(\d+) turns: .*?median\s+" + NUM + r" ms.*?full re-encode \(before\)\s+"
                            + NUM + r" ms", line):
            out[f"{provider}.h{m.group(1)}.new"] = num(m.group(2))
            out[f"{provider}.h{m.group(1)}.full"] = num(m.group(3))
    return out


def parse_reports(text: str) -> Metrics:
    out: Metrics = {}
    for line in text.splitlines():
        if m := re.match(r"usage_frame\(store, by='(\w+)'\).*?median\s+" + NUM + " ms", line):
            out[f"{m.group(1)}.lash"] = num(m.group(2))
            last = m.group(1)
        elif m := re.match(r"same SQL, independent.*?median\s+" + NUM + r" ms\s+ratio " + NUM, line):
            out[f"{last}.raw"], out[f"{last}.ratio"] = num(m.group(1)), num(m.group(2))
        elif m := re.match(r"built ([\d,]+) usage rows", line):
            out["rows"] = num(m.group(1))
        elif m := re.match(r"pandas groupby.*?median\s+" + NUM + " ms", line):
            out["model.pandas"] = num(m.group(1))
    return out


def parse_widget_stream(text: str) -> Metrics:
    out: Metrics = {}
    for line in text.splitlines():
        if m := re.match(r"(\w+)(?: \(([\d,]+)\))?\s+([\d,]+)\s+([\d,]+)\s+" + NUM + r"\s+" + NUM + r" µs", line):
            out[f"{m.group(1)}.msgs"] = num(m.group(3))
            out[f"{m.group(1)}.mb"] = num(m.group(5))
        elif m := re.search(r"linear check: .*? ([\d,]+) deltas " + NUM + r" MB, ([\d,]+) deltas " + NUM
                            + r" MB, ratio " + NUM, line):
            out["linear.n"], out["linear.mb_n"] = num(m.group(1)), num(m.group(2))
            out["linear.n4"], out["linear.mb_n4"] = num(m.group(3)), num(m.group(4))
            out["linear.ratio"] = num(m.group(5))
            if h := re.search(r"rendered prose HTML " + NUM + " MB and " + NUM + " MB", line):
                out["linear.html_n"], out["linear.html_n4"] = num(h.group(1)), num(h.group(2))
    return out


def imports_widgets(line: str) -> bool:
    """A lash_nb round of load_ext.py (either format) that imported anywidget or ipywidgets."""
    if "widgets imported:" in line:
        return "[]" not in line
    return bool(re.match(r"round \d+ lash_nb\s", line) and re.search(r"heavy: .*(anywidget|ipywidgets)", line))


def parse_load_ext(text: str) -> Metrics:
    """Two formats: one variant (``median over N: X ms``), or variants interleaved (``floor``,
    ``lash_nb``, the ``--against`` tree named by its folder) with ``medians over N ...`` lines."""
    out: Metrics = {}
    widgets = 0
    medians = False
    for line in text.splitlines():
        if m := re.match(r"median over (\d+): " + NUM + " ms", line):
            out["median_ms"], out["rounds"] = num(m.group(2)), num(m.group(1))
        elif imports_widgets(line):
            widgets += 1
        elif m := re.match(r"medians over (\d+) interleaved rounds", line):
            medians, out["rounds"] = True, num(m.group(1))
        elif medians and (m := re.match(r"\s+(\S+)\s+to idle\s+" + NUM + r" ms\s+in kernel\s+" + NUM
                                        + r" ms\s+modules imported (\d+)", line)):
            pre = {"lash_nb": "", "floor": "floor."}.get(m.group(1), "old.")
            out[pre + "median_ms"], out[pre + "modules"] = num(m.group(2)), num(m.group(4))
    if "median_ms" in out:
        out["rounds_importing_widgets"] = widgets
    return out


def parse_store(text: str) -> Metrics:
    out: Metrics = {}
    for line in text.splitlines():
        if m := re.match(r"\s+(linear|branched every \d+)\s+(\w+)\s+\(\s*(\d+) on path\)\s+load cold\s+" + NUM
                         + r" ms\s+warm\s+" + NUM + r" ms\s+LashCore open\s+" + NUM + r" ms\s+then read all\s+"
                         + NUM, line):
            key = f"{m.group(1).split()[0]}.{m.group(2)}"
            for i, stat in enumerate(("cold", "warm", "core_open", "read_all"), start=4):
                out[f"{key}.{stat}"] = num(m.group(i))
        elif m := re.match(r"\s+duckdb terminal commit\s+median\s+" + NUM, line):
            out["commit.terminal.median"] = num(m.group(1))
        elif m := re.match(r"\s+duckdb progress \+ terminal\s+median\s+" + NUM, line):
            out["commit.turn.median"] = num(m.group(1))
    return out


def parse_cold_resume(text: str) -> Metrics:
    """``label  open X ms  read Y ms  open+read Z ms`` lines: lash_nb of this tree (``new``) and
    of the ``--against`` tree (named by its folder), the raw floor, openai-agents."""
    out: Metrics = {}
    for line in text.splitlines():
        m = re.match(r"\s+(.+?)\s+open\s+" + NUM + r" ms\s+read\s+" + NUM + r" ms\s+open\+read\s+" + NUM, line)
        if not m:
            continue
        label, op, both_ms = m.group(1), num(m.group(2)), num(m.group(4))
        if who := re.match(r"lash_nb (\S+): ([\d,]+)-turn session", label):
            pre = "" if who.group(1) == "new" else "old_"
            out[pre + "open_ms"], out[pre + "decode_ms"] = op, both_ms
            out["history"] = num(who.group(2))
        elif who := re.match(r"lash_nb (\S+): branched session", label):
            out[("" if who.group(1) == "new" else "old_") + "branched_open_ms"] = op
        elif label.startswith("raw floor"):
            out["raw_floor_ms"] = both_ms
        elif label.startswith("openai-agents"):
            out["oai_ms"] = both_ms
    return out


def parse_anchors_resume(text: str) -> Metrics:
    out: Metrics = {}
    for line in text.splitlines():
        if m := re.match(r"\s+(.+?)\s+(open\+read: )?n=\d+\s+min=" + NUM + " median=" + NUM, line):
            key = ("fresh|" if m.group(2) else "warm|") + _label(m.group(1))
            out[key] = num(m.group(4))
    return out


def parse_turn_overhead(text: str) -> Metrics:
    out: Metrics = {}
    found = [(num(m.group(1)), num(m.group(2)), num(m.group(3))) for m in
             re.finditer(r"history ~(-?\d+)-(\d+) turns: median " + NUM, text)]
    if len(found) == 2:
        out["early.median"], out["early.history"] = found[0][2], found[0][1]
        out["late.median"], out["late.history"] = found[1][2], found[1][1]
    return out


def parse_vs_peers(text: str) -> Metrics:
    out: Metrics = {}
    history = ""
    short = {"lash_nb (memory store)": "mem", "lash_nb (DuckDB file, durable)": "duck",
             "openai-agents": "oai", "pydantic-ai": "pyd", "LangGraph (InMemorySaver)": "lg"}
    for line in text.splitlines():
        if m := re.match(r"## history = (\d+) turns", line):
            history = m.group(1)
        elif (history and (m := re.match(r"\s+(.+?)\s+median\s+" + NUM + " ms", line))
              and (who := short.get(m.group(1).strip())) is not None):
            out[f"h{history}.{who}"] = num(m.group(2))
    return out


def parse_peer_checkpoint_size(text: str) -> Metrics:
    out: Metrics = {}
    for line in text.splitlines():
        if m := re.match(r"file growth per turn after ([\d,]+) turns", line):
            out["history"] = num(m.group(1))
        elif m := re.search(r"durability=(\w+).*?:\s+" + NUM + " MB/turn", line):
            out[f"lg.{m.group(1)}"] = num(m.group(2))
        elif m := re.search(r"lash_nb DuckDBStore.*?:\s+" + NUM + " kB/turn", line):
            out["lash_kb_per_turn"] = num(m.group(1))
    return out


PARSERS: dict[str, Callable[[str], Metrics]] = {
    "durable_pace": parse_durable_pace, "hot_durable": parse_durable_pace,
    "queue_pace": parse_queue_pace, "queue_statements": parse_queue_statements,
    "request_encoding": parse_request_encoding, "reports": parse_reports,
    "widget_stream": parse_widget_stream, "load_ext": parse_load_ext, "store": parse_store,
    "cold_resume": parse_cold_resume, "anchors_resume": parse_anchors_resume,
    "turn_overhead": parse_turn_overhead, "vs_peers": parse_vs_peers,
    "peer_checkpoint_size": parse_peer_checkpoint_size,
}


def parse(job: str, text: str) -> Metrics:
    """The numbers of one job's stdout; of several alternated runs (joined by ``PAIR``), the
    median of each number."""
    runs = []
    for part in text.split(PAIR):
        got = PARSERS[job](part)
        got.update(parse_row_json(job, part))  # a ROW line's number replaces the human line's
        runs.append(got)
    keys = dict.fromkeys(k for got in runs for k in got)
    return {k: statistics.median(got[k] for got in runs if k in got) for k in keys}


# --------------------------------------------------------------------------- rows


class Missing(Exception):
    """A number a row needs was not printed (or its script failed)."""


@dataclass
class Results:
    runs: dict[tuple[str, str], Run] = field(default_factory=dict)
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
    Row("b2b", "back-to-back durable turn, folds included", "mean <= 1.3x lash's floor (two JSON-row inserts)",
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
    Claim("in-memory turn, 10 turns of history: 0.54 ms", 0.54, lambda r: r.get("vs_peers", "h10.mem"),
          "vs_peers.py, history 10"),
    Claim("in-memory turn, 1,000 turns of history: 0.44 ms", 0.44, lambda r: r.get("vs_peers", "h1000.mem"),
          "vs_peers.py, history 1,000"),
    Claim("in-memory turn at 10,000 turns: 0.43 ms", 0.43,
          lambda r: at(r, "turn_overhead", "late.median", "late.history", 10_200), "turn_overhead.py (full run)"),
    Claim("openai-agents, 10 turns of history: 24.5 ms", 24.5, lambda r: r.get("vs_peers", "h10.oai"),
          "vs_peers.py, history 10"),
    Claim("openai-agents, 1,000 turns: 460 ms", 460, lambda r: r.get("vs_peers", "h1000.oai"),
          "vs_peers.py, history 1,000"),
    Claim("pydantic-ai, 10 turns: 15.2 ms (earlier run)", 15.2, lambda r: r.get("vs_peers", "h10.pyd"),
          "vs_peers.py (pydantic-ai installed)"),
    Claim("LangGraph, 10 turns: 26.3 ms", 26.3, lambda r: r.get("vs_peers", "h10.lg"),
          "vs_peers.py (LangGraph InMemorySaver), history 10"),
    Claim("LangGraph, 1,000 turns: 648 ms", 648, lambda r: r.get("vs_peers", "h1000.lg"),
          "vs_peers.py (LangGraph InMemorySaver), history 1,000"),
    Claim("durable turn at pace, 10 turns: 22.9 ms", 22.9, lambda r: r.get("durable_pace", "pace3.h10.new.median"),
          "durable_pace.py, 3 s pace"),
    Claim("durable turn at pace, 1,000 turns: 13.8 ms", 13.8,
          lambda r: r.get("durable_pace", "pace3.h1000.new.median"), "durable_pace.py, 3 s pace"),
    Claim("durable turn at pace, 10,000 turns: 13.2 ms", 13.2,
          lambda r: r.get("durable_pace", "pace3.h10000.new.median"), "durable_pace.py, 3 s pace (full run only)"),
    Claim("SQLiteSession at pace, 10 turns: 28.4 ms", 28.4,
          lambda r: r.get("durable_pace", "pace3.h10.oai.median"), "durable_pace.py, 3 s pace"),
    Claim("SQLiteSession at pace, 1,000 turns: 393 ms", 393,
          lambda r: r.get("durable_pace", "pace3.h1000.oai.median"), "durable_pace.py, 3 s pace"),
    Claim("SqliteSaver at pace, 10 turns: 29.0 ms", 29.0,
          lambda r: r.get("durable_pace", "pace3.h10.lg.median"), "durable_pace.py, 3 s pace"),
    Claim("SqliteSaver at pace, 1,000 turns: 476 ms", 476,
          lambda r: r.get("durable_pace", "pace3.h1000.lg.median"), "durable_pace.py, 3 s pace"),
    Claim("back to back: 2.94 ms median", 2.94, lambda r: r.get("durable_pace", "b2b.new.median"),
          "durable_pace.py back to back"),
    Claim("back to back: 3.40 ms mean", 3.40, lambda r: r.get("durable_pace", "b2b.new.mean"),
          "durable_pace.py back to back"),
    Claim("floor (two JSON-row inserts): 1.50 ms median", 1.50, lambda r: r.get("durable_pace", "b2b.floor.median"),
          "durable_pace.py back to back"),
    Claim("lash_nb mean / floor mean: 1.93x", 1.93, lambda r: r.get("durable_pace", "b2b.ratio.new"),
          "durable_pace.py back to back"),
    Claim("new store file: 78 kB empty", 78, lambda r: r.get("durable_pace", "size.empty.new"), "durable_pace.py size"),
    Claim("new store file: 274 kB after one short turn", 274, lambda r: r.get("durable_pace", "size.one.new"),
          "durable_pace.py size"),
    Claim("2.3 kB per turn at 10,000 turns", 2.3,
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
    Claim("a commit is one commit_log row (~3-4 ms)", 3.5, lambda r: r.get("store", "commit.terminal.median"),
          "store.py terminal commit (60 events, 2 tool calls)"),
)


# --------------------------------------------------------------------------- running


def checkout(against: str, tmp: Path) -> tuple[Path | None, str]:
    """(old tree, note): an existing folder as is, else a commit checked out for this run."""
    if against.lower() == "none":
        return None, "no before column (--against none)"
    if Path(against).is_dir():
        return Path(against).resolve(), f"old tree: {against} (as given)"
    where = tmp / "old"
    done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), against],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"could not check out {against}: {done.stderr.strip().splitlines()[-1:]}"
    return where, f"old tree: {against} checked out at {where} (removed at the end)"


def remove_checkout(where: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                   capture_output=True, text=True)


def script_path(job: Job, tree: Path) -> Path:
    if job.script.startswith("anchors:"):
        return ANCHORS / job.script.split(":", 1)[1]
    return tree / job.script


def run_job(job: Job, *, quick: bool, old_tree: Path | None, tmp: Path, results: Results,
            log: Callable[[str], None]) -> None:
    script = script_path(job, ROOT)
    if job.newer is not None and script.exists() and job.newer.marker in script.read_text():
        n = job.newer
        job = dataclasses.replace(job, quick=n.quick, full=n.full, before=n.before, flag=n.flag, pairs=1)
    args = list(job.quick if quick else job.full)
    base_env = dict(os.environ, ANCHORS_DATA=str(tmp / f"anchors-{job.name}"))
    base_env.pop("PYTHONPATH", None)
    os.makedirs(base_env["ANCHORS_DATA"], exist_ok=True)
    if not script.exists():
        if job.optional:
            log(f"# {job.name}: {job.script} does not exist in this tree: skipped")
            return
        results.runs[(job.name, "new")] = Run(job.name, "new", [], note=f"{job.script} not found")
        return
    cond = " ".join(args)

    def go(side: str, argv: list[str], tree: Path) -> Run:
        env = dict(base_env, PYTHONPATH=str(tree))
        log(f"# running {job.name} ({side}): {' '.join(argv[1:])}")
        run = run_script(job.name, side, argv, env=env, cwd=str(tmp), timeout_s=job.timeout_s)
        log(f"#   {'ok' if run.ok else 'FAILED (' + run.failure() + ')'} in {run.seconds:.0f} s")
        earlier = results.runs.get((job.name, side))
        if earlier is not None and earlier.ok and run.ok:  # alternated runs: keep every stdout
            run.stdout = earlier.stdout + PAIR + run.stdout
            run.seconds += earlier.seconds
        if earlier is None or earlier.ok:  # a failure stays visible
            results.runs[(job.name, side)] = run
        got = results.runs[(job.name, side)]
        results.metrics[(job.name, side)] = parse(job.name, got.stdout) if got.stdout else {}
        return run

    py = [sys.executable, "-P", str(script)]
    if job.before == "flag" and old_tree is not None:
        run = go("new", py + args + [job.flag, str(old_tree)], ROOT)
        if not run.ok:  # the old tree may lack what the script drives: run the new side alone
            results.runs[(job.name, "old")] = results.runs.pop((job.name, "new"))
            results.metrics.pop((job.name, "new"), None)
            go("new", py + args, ROOT)
    else:
        go("new", py + args, ROOT)
    old_argv = py + args
    if old_tree is not None and job.before == "old_script":
        own = script_path(job, old_tree)
        if not own.exists():
            results.runs[(job.name, "old")] = Run(job.name, "old", [], note=f"{job.script} not in the old tree")
            results.conditions[job.name] = cond
            return
        old_argv = [sys.executable, "-P", str(own), *args]
    if old_tree is not None and job.before in ("pythonpath", "old_script"):
        go("old", old_argv, old_tree)
        for i in range(1, job.pairs):  # new, old | old, new | ... : the same drift for both
            for side in (("old", "new") if i % 2 else ("new", "old")):
                go(side, old_argv if side == "old" else py + args, old_tree if side == "old" else ROOT)
        if job.pairs > 1:
            cond += f" (x{job.pairs}, new and old alternated, medians)"
    results.conditions[job.name] = cond


def save_logs(folder: Path, results: Results) -> None:
    """Each run's stdout, stderr and exit status (``--from-logs`` prints the table again)."""
    folder.mkdir(parents=True, exist_ok=True)
    for (job, side), run in results.runs.items():
        (folder / f"{job}.{side}.out").write_text(run.stdout)
        (folder / f"{job}.{side}.err").write_text(run.stderr)
        (folder / f"{job}.{side}.json").write_text(json.dumps(
            {"argv": run.argv, "returncode": run.returncode, "note": run.note, "seconds": run.seconds,
             "condition": results.conditions.get(job, "")}))


def load_logs(folder: Path) -> Results:
    results = Results()
    for meta in sorted(folder.glob("*.json")):
        job, side = meta.name.removesuffix(".json").rsplit(".", 1)
        if job not in JOBS:
            continue
        info = json.loads(meta.read_text())
        run = Run(job, side, info["argv"], info["returncode"], (folder / f"{job}.{side}.out").read_text(),
                  (folder / f"{job}.{side}.err").read_text(), info["seconds"], info["note"])
        results.runs[(job, side)] = run
        results.metrics[(job, side)] = parse(job, run.stdout) if run.stdout else {}
        results.conditions[job] = info.get("condition", "")
    return results


def cell(fn: Cell, r: Results) -> str:
    try:
        return fn(r)
    except Missing as e:
        return str(e)
    except (KeyError, ValueError, ZeroDivisionError, IndexError) as e:
        return f"not parsed: {type(e).__name__} {e}"


def verdict(row: Row, r: Results) -> str:
    try:
        ok, why = row.met(r)
    except Missing as e:
        return f"? ({e})"
    except (KeyError, ValueError, ZeroDivisionError, IndexError) as e:
        return f"? (not parsed: {type(e).__name__} {e})"
    return f"{'met' if ok else 'not met'}: {why}"


def md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: tuple[Row, ...], r: Results) -> list[str]:
    out = ["| row | measure | goal | lash_nb now | before (old tree) | peer / floor, same run | met? |",
           "|---|---|---|---|---|---|---|"]
    out.extend("| " + " | ".join(md(x) for x in (
        row.key, row.measure, row.goal, cell(row.now, r), cell(row.before, r), cell(row.peer, r),
        verdict(row, r))) + " |" for row in rows)
    return out


def claims_table(r: Results) -> list[str]:
    out = ["| README claim | measured now | now / claimed | script, condition |", "|---|---|---|---|"]
    for c in CLAIMS:
        try:
            m = c.measured(r)
            ratio = m / c.claimed
            flag = "" if 0.67 <= ratio <= 1.5 else " (differs by more than 1.5x)"
            out.append(f"| {md(c.text)} | {ms(m)} | {ratio:.2f}{flag} | {md(c.where)} |")
        except Missing as e:
            out.append(f"| {md(c.text)} | {md(str(e))} | - | {md(c.where)} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="rows: " + ", ".join(r.key for r in ROWS))
    ap.add_argument("--quick", action="store_true", help="a smoke run: fewer rounds, smaller sizes")
    ap.add_argument("--against", default=DEFAULT_AGAINST,
                    help="the code before: a commit (checked out for the run) or a checkout's path; "
                         f"'none' for no before column (default {DEFAULT_AGAINST})")
    ap.add_argument("--only", default="", help="comma-separated row keys (default: every row)")
    ap.add_argument("--keep-logs", default="", help="a folder for each script's stdout and stderr")
    ap.add_argument("--from-logs", default="", help="print the table from a --keep-logs folder; run nothing")
    ap.add_argument("--list", action="store_true",
                    help="print the rows, their scripts and the ROW lines wanted; run nothing")
    args = ap.parse_args(argv)
    rows = ROWS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {r.key for r in ROWS}
        if unknown:
            ap.error(f"unknown row(s) {sorted(unknown)}; rows are: {', '.join(r.key for r in ROWS)}")
        rows = tuple(r for r in ROWS if r.key in wanted)
    if args.list:
        for row in ROWS:
            print(f"{row.key:14s} {row.measure} -> {', '.join(JOBS[j].script for j in row.jobs)}")
        print("\nROW lines wanted from scripts that do not print them yet:")
        for job, lines in ROW_LINES.items():
            for line in lines:
                print(f"  {JOBS[job].script}: {line}")
        return 0
    jobs = list(dict.fromkeys([*(j for row in rows for j in row.jobs), *(() if args.only else README_JOBS)]))
    tmp = Path(tempfile.mkdtemp(prefix="lash-issue21-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t0 = time.perf_counter()
    if args.from_logs:
        results, note = load_logs(Path(args.from_logs)), f"re-read from {args.from_logs}"
    else:
        results = Results()
        old_tree, note = checkout(args.against, tmp)

        def log(s: str) -> None:
            print(s, file=sys.stderr, flush=True)

        log(f"# {note}")
        # a TERM (or an INT, which a background shell ignores) ends the running script and
        # still removes the checkout: subprocess.run kills its child on the way out
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            for name in jobs:
                run_job(JOBS[name], quick=args.quick, old_tree=old_tree, tmp=tmp, results=results, log=log)
        finally:
            if old_tree is not None and old_tree.is_relative_to(tmp):
                remove_checkout(old_tree)
    if args.keep_logs:
        save_logs(Path(args.keep_logs), results)
    mode = "logged" if args.from_logs else "quick" if args.quick else "full"
    print(f"# issue 21 rows, {mode} run started {started}, "
          f"{time.perf_counter() - t0:.0f} s; {note}; cpus={os.cpu_count()}, "
          f"load {', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    print("# conditions: " + "; ".join(f"{JOBS[k].script} {v}".strip() for k, v in results.conditions.items()))
    print()
    print("\n".join(table(rows, results)))
    if not args.only:
        print("\n## README claims against this run")
        print("\n".join(claims_table(results)))
    failed = sorted({f"{job} ({side})" for (job, side), run in results.runs.items() if not run.ok})
    if failed:
        print(f"\n# failed runs: {', '.join(failed)} (their rows say why)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
