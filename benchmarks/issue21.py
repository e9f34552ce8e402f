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
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = ROOT.parent / "shared" / "anchors"
DEFAULT_AGAINST = "24d40b7"


def _sibling(name: str) -> ModuleType:
    """A module of this folder, loaded by path (the folder is not put on ``sys.path``)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


_lines, _rows = _sibling("issue21_lines"), _sibling("issue21_rows")
Job, Newer, JOBS, README_JOBS, ROW_LINES, PAIR = (_lines.Job, _lines.Newer, _lines.JOBS, _lines.README_JOBS,
                                                  _lines.ROW_LINES, _lines.PAIR)
Run, run_script, parse = _lines.Run, _lines.run_script, _lines.parse
Missing, Results, Row, ROWS, CLAIMS, ms = _rows.Missing, _rows.Results, _rows.Row, _rows.ROWS, _rows.CLAIMS, _rows.ms
Cell = Callable[[Results], str]

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
