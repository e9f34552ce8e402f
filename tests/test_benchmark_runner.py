"""benchmarks/issue21.py: the runner that prints issue 21's table from one run.

No timing here: the runner's --help, that its rows cover every row of the issue, that it reads
the lines the scripts print (samples written by hand in each script's format), and that a
failing script or a number it did not print becomes a row that says so instead of a crash.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "benchmarks" / "issue21.py"

# the issue's table, its "keep" rows and nothing else (hand-written from the issue text)
ISSUE_ROWS = {
    "pace": "durable turn at a human's pace",
    "b2b": "back-to-back durable turn",
    "plain_queued": "a plain turn while anything is queued",
    "drain": "queue drain overhead",
    "encoding": "model request encoding",
    "enqueue": "enqueue on DuckDB",
    "await": "await_queued_work_batch latency",
    "file_size": "file size",
    "resume": "resume a 10,000-turn session",
    "usage_frame": "usage_frame",
    "widget": "live widget stream",
    "load_ext": "%load_ext lash_nb",
    "lead_inmem": "in-memory turn",
    "lead_hot": "hot durable",
    "lead_analysis": "usage_frame vs raw",
}


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("issue21_runner", RUNNER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def test_help_runs_and_names_every_row() -> None:
    done = subprocess.run([sys.executable, "-P", str(RUNNER), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--against" in done.stdout
    for key in ISSUE_ROWS:
        assert key in done.stdout


def test_the_rows_are_the_issues_rows_each_with_a_script(runner: ModuleType) -> None:
    keys = [row.key for row in runner.ROWS]
    assert sorted(keys) == sorted(ISSUE_ROWS)
    for row in runner.ROWS:
        assert ISSUE_ROWS[row.key].lower() in row.measure.lower()
        for job in row.jobs:
            spec = runner.JOBS[job]
            if spec.script.startswith("anchors:") or spec.optional:
                continue
            assert (ROOT / spec.script).exists(), spec.script


def test_reads_durable_pace_lines(runner: ModuleType) -> None:
    text = """
## durable turn at a human's pace (3 s between turns), history 10 turns, folds included
   lash_nb (this checkout), DuckDB        median   13.10 ms  mean   14.00  p90   15.00  max   16.00  n=8
   lash_nb (baseline checkout), DuckDB    median   86.50 ms  mean   90.00  p90   95.00  max   99.00  n=8
   openai-agents + SQLiteSession          median   28.40 ms  mean   29.00  p90   30.00  max   31.00  n=8
   LangGraph + SqliteSaver                median   29.00 ms  mean   30.00  p90   31.00  max   32.00  n=8

## back-to-back durable turns, history 10 -> 410, rounds of 10, idle folds settled before each round (their work below)
   lash_nb (this checkout)                median    2.94 ms  mean    3.40  p90    4.00  max   24.50  n=400
   floor: two JSON-row INSERTs (raw)      median    1.50 ms  mean    1.76  p90    2.00  max    5.00  n=400
   lash mean / floor mean: 1.93x   (baseline 2.97x)

## file size (store closed: checkpointed)
   lash_nb, empty                   77.8 kB   (baseline     798.7 kB)
   lash_nb, one short turn         274.4 kB   (baseline   3,680.0 kB)
   lash_nb growth per turn, 10 -> 10000 turns: 2.31 kB/turn   (baseline 2.36)
   openai-agents SQLiteSession: empty 24.6 kB, 10 turns 32.8 kB
"""
    got = runner.parse("durable_pace", text)
    assert got["pace3.h10.new.median"] == 13.1
    assert got["pace3.h10.old.median"] == 86.5
    assert got["pace3.h10.oai.median"] == 28.4
    assert got["pace3.h10.lg.median"] == 29.0
    assert got["b2b.new.mean"] == 3.4 and got["b2b.floor.mean"] == 1.76
    assert got["b2b.ratio.new"] == 1.93 and got["b2b.ratio.old"] == 2.97
    assert got["size.empty.new"] == 77.8 and got["size.one.old"] == 3680.0
    assert got["size.per_turn.new"] == 2.31 and got["size.turns"] == 10000
    assert got["size.oai.empty"] == 24.6


def test_reads_queue_pace_with_and_without_the_old_column(runner: ModuleType) -> None:
    against = """1 interleaved rounds (child processes), medians; ms unless stated
== duckdb                                             old        new
  plain turn, depth     0                            35.10       8.10
  enqueue burst of 1,000 (batches/s)                 66.00    2210.00
  await: returned before the commit (of 10)              -       0.00
"""
    got = runner.parse("queue_pace", against)
    assert got["duckdb|plain turn, depth 0|old"] == 35.1
    assert got["duckdb|plain turn, depth 0|new"] == 8.1
    assert got["duckdb|enqueue burst of 1,000 (batches/s)|new"] == 2210.0
    assert "duckdb|await: returned before the commit (of 10)|old" not in got
    alone = "== duckdb (1 rounds, medians; ms unless stated)\n  plain turn, depth  1000      27.60\n"
    assert runner.parse("queue_pace", alone) == {"duckdb|plain turn, depth 1000|new": 27.6}


def test_a_row_line_wins_over_the_human_line(runner: ModuleType) -> None:
    text = ('median over 3: 180 ms\nROW load_ext {"median_ms": 90.5, "rounds_importing_widgets": 0}\n'
            'ROW other_script {"median_ms": 1.0}\n')
    got = runner.parse("load_ext", text)
    assert got == {"median_ms": 90.5, "rounds": 3.0, "rounds_importing_widgets": 0.0}
    assert runner.parse("load_ext", "ROW load_ext {not json}\n") == {}
    # two jobs run durable_pace.py (3 s pace, no pause): both read its ROW lines
    hot = runner.parse("hot_durable", 'ROW durable_pace {"pace0.h1000.new.median": 6.1}\n')
    assert hot == {"pace0.h1000.new.median": 6.1}


def test_a_failing_script_is_a_failed_row_not_a_crash(runner: ModuleType, tmp_path: Path) -> None:
    run = runner.run_script("load_ext", "new", [sys.executable, "-c",
                                                "import sys; sys.stderr.write('boom: no kernel\\n'); sys.exit(3)"],
                            env={}, cwd=str(tmp_path), timeout_s=120)
    assert not run.ok and run.failure() == "exit 3: boom: no kernel"
    results = runner.Results()
    results.runs[("load_ext", "new")] = run
    results.metrics[("load_ext", "new")] = {}
    (line,) = [ln for ln in runner.table(runner.ROWS, results) if ln.startswith("| load_ext |")]
    assert "load_ext failed: exit 3: boom: no kernel" in line
    assert "? (load_ext failed" in line  # met? says it cannot tell


def test_a_number_that_was_not_printed_is_named_not_guessed(runner: ModuleType) -> None:
    results = runner.Results()
    results.runs[("reports", "new")] = runner.Run("reports", "new", [], returncode=0, stdout="built nothing\n")
    results.metrics[("reports", "new")] = runner.parse("reports", "built nothing\n")
    (line,) = [ln for ln in runner.table(runner.ROWS, results) if ln.startswith("| usage_frame |")]
    cells = line.strip("| ").split(" | ")
    assert cells[3].startswith("not parsed: reports")  # lash_nb now
    assert cells[-1].startswith("? (not parsed: reports")  # met? says it cannot tell


def test_alternated_runs_of_one_script_give_the_median_of_each_number(runner: ModuleType) -> None:
    runs = ["median over 3: 300 ms", "median over 3: 100 ms", "median over 3: 120 ms"]
    got = runner.parse("load_ext", runner.PAIR.join(runs))
    assert got["median_ms"] == 120.0
    assert got["rounds"] == 3.0


def test_a_script_that_cannot_drive_the_old_tree_still_gives_the_new_numbers(runner: ModuleType,
                                                                           tmp_path: Path) -> None:
    script = tmp_path / "fake_load_ext.py"
    script.write_text("import sys\n"
                      "if '--against' in sys.argv:\n"
                      "    sys.exit('the old tree has no load_ext')\n"
                      "print('median over 3: 90 ms')\n")
    job = runner.Job("load_ext", str(script), (), (), before="flag")
    results = runner.Results()
    runner.run_job(job, quick=True, old_tree=tmp_path, tmp=tmp_path, results=results, log=lambda s: None)
    assert results.metrics[("load_ext", "new")]["median_ms"] == 90.0
    assert results.runs[("load_ext", "old")].failure() == "exit 1: the old tree has no load_ext"
    (line,) = [ln for ln in runner.table(runner.ROWS, results) if ln.startswith("| load_ext |")]
    cells = line.strip("| ").split(" | ")
    assert cells[3].startswith("90.0 ms to idle")
    assert cells[4] == "load_ext (old) failed: exit 1: the old tree has no load_ext"


def test_reads_the_interleaved_load_ext_format_and_judges_above_the_floor(runner: ModuleType) -> None:
    text = """round 1 lash_nb        to idle   95.0 ms, in kernel   40.0 ms, 12 modules imported, heavy: []
medians over 3 interleaved rounds (a fresh kernel each):
  floor          to idle   30.0 ms   in kernel    1.0 ms   modules imported 0
  lash_nb        to idle   95.0 ms   in kernel   40.0 ms   modules imported 12   then the first %lash turn  800.0 ms
  old            to idle  276.0 ms   in kernel  200.0 ms   modules imported 80   then the first %lash turn  300.0 ms
"""
    got = runner.parse("load_ext", text)
    assert got["median_ms"] == 95.0 and got["floor.median_ms"] == 30.0 and got["old.median_ms"] == 276.0
    assert got["rounds_importing_widgets"] == 0 and got["modules"] == 12
    results = runner.Results()
    results.runs[("load_ext", "new")] = runner.Run("load_ext", "new", [], returncode=0, stdout=text)
    results.metrics[("load_ext", "new")] = got
    (line,) = [ln for ln in runner.table(runner.ROWS, results) if ln.startswith("| load_ext |")]
    cells = line.strip("| ").split(" | ")
    assert cells[4].startswith("276 ms to idle")
    assert cells[-1].startswith("met: 65.0 ms above the kernel's own %load_ext < 100 ms: yes")


def test_reads_cold_resume_lines(runner: ModuleType) -> None:
    text = """
fresh process per sample, 2 interleaved rounds, medians (open = ...)
  lash_nb new: 10,000-turn session  open 120.0 ms   read 300.0 ms   open+read 420.0 ms (cpu 400.0 ms)   (40,000
  lash_nb new: branched session  open  60.0 ms   read 100.0 ms   open+read 160.0 ms (cpu 150.0 ms)   (8,000
  lash_nb old: 10,000-turn session  open 250.0 ms   read 900.0 ms   open+read 1150.0 ms (cpu 1100.0 ms)   (40,000
  raw floor: duckdb.connect + rows + json.loads  open 40.0 ms   read 360.0 ms   open+read 400.0 ms (cpu 390.0 ms)
"""
    got = runner.parse("cold_resume", text)
    assert got == {"open_ms": 120.0, "decode_ms": 420.0, "history": 10000.0, "branched_open_ms": 60.0,
                   "old_open_ms": 250.0, "old_decode_ms": 1150.0, "raw_floor_ms": 400.0}


def test_every_claim_the_runner_checks_is_a_number_the_readme_publishes(runner: ModuleType) -> None:
    """The runner prints "the README's claims against this run": a claim it holds that the
    README no longer says (the list had gone stale: 22.9 ms at the pace where the README said 4.6) would
    check a number nobody publishes."""
    import re

    readme = (ROOT / "README.md").read_text()
    claims = runner.CLAIMS
    assert len(claims) >= 20
    for claim in claims:
        m = re.search(r"(\d[\d,]*(?:\.\d+)?)\s*(?:ms|kB|MB|x)\b", claim.text)
        assert m is not None, claim.text
        assert m.group(1) in readme, f"the README does not say {m.group(1)}: {claim.text}"
