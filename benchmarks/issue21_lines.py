"""The scripts behind issue 21's rows and how their printed lines are read (for
``benchmarks/issue21.py``; see its docstring).

A job is one script invocation; its stdout becomes a flat dict of numbers under the runner's
keys (``Metrics``). Human lines are matched with regular expressions written against each
script's print format; a ``ROW <script> {...}`` line carries the same keys and wins.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    Job("cold_resume", "benchmarks/cold_resume.py", ("--rounds", "4"), ("--rounds", "5"), before="flag",
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
