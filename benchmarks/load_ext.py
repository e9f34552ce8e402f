"""Time from ``%load_ext lash_nb`` to an idle kernel, in real kernels of this interpreter.

Each measurement starts a fresh kernel (nothing of lash_nb imported yet), runs ``import sys``
(the kernel is up and idle), then the cell ``%load_ext lash_nb``, and reports:

- ``to idle``: from sending the cell to the kernel's ``idle`` status, with jupyter_client (what
  the user waits for);
- ``in kernel``: the cell's run inside the kernel, from IPython's ``pre_run_cell`` to
  ``post_run_cell`` events (no messaging);
- the number of modules the load had imported when its cell ended, and whether anywidget / ipywidgets / pandas /
  duckdb / the runtime were among them;
- then the user's pause: a cell that waits for the event lash_nb sets when its warm-up thread
  has imported what the first turn needs (ADR 116; it starts when the load cell's kernel is
  idle); ``warm-up`` is how long that took from the load's idle (0 for a tree without it);
- then the first turn: the next cell ``r = %lash turn hello`` (offline provider, in-memory
  store) to idle; what ``%load_ext`` no longer imports is paid there unless the warm-up did;
- ``right behind``: in another fresh kernel, the load cell, the ``%config`` cell and the turn
  cell sent back to back (Run All), from the first send to the turn's idle: the hurried user,
  whose turn waits for the warm-up instead of importing beside it.

Variants, interleaved round by round (medians printed at the end, so load swings hit all alike):

- ``floor``: ``%load_ext`` of an extension that does nothing (the kernel's own cost of a
  ``%load_ext`` cell: messaging, IPython's extension manager);
- ``lash_nb``: this checkout;
- ``lash_nb (warm-up off)``: this checkout with ``LASH_NB_WARM_IMPORTS=0``, what the first turn
  costs without the warm-up, in the same run;
- with ``--against PATH`` (repeatable), named after PATH's folder: the same harness importing
  lash_nb from another checkout (e.g. ``git worktree add --detach /tmp/old 9359fc6``).

Kernels write and reuse compiled bytecode in a private temporary ``PYTHONPYCACHEPREFIX`` (a
pip-installed package has its ``.pyc`` files; a warm-up kernel per variant fills the cache),
so the numbers do not include compiling the sources.

``python -P benchmarks/load_ext.py [--rounds N] [--against PATH]`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # not benchmarks/: its scripts may shadow stdlib names

from notebook_harness import KernelHarness  # noqa: E402

SETUP = """\
import sys, time, json
_lash_bench = {"before": set(sys.modules), "t": [], "at_end": []}
def _lash_bench_mark(*_):
    _lash_bench["t"].append(time.perf_counter())
def _lash_bench_end(*_):  # what a cell had imported when it ended (before any warm-up thread)
    _lash_bench["t"].append(time.perf_counter())
    _lash_bench["at_end"].append(set(sys.modules))
get_ipython().events.register("pre_run_cell", _lash_bench_mark)
get_ipython().events.register("post_run_cell", _lash_bench_end)
"""
PROBE = """\
_lash_new = _lash_bench["at_end"][1] - _lash_bench["before"]
_lash_watch = ("anywidget", "ipywidgets", "pandas", "duckdb", "lash_nb._runtime.core")
print(json.dumps({"in_kernel": _lash_bench["t"][2] - _lash_bench["t"][1],
                  "modules": len(_lash_new),
                  "heavy": sorted(m for m in _lash_watch if m in _lash_new)}))
"""
TURN_SETUP = "%config LashMagics.store = ':memory:'\n%config LashMagics.offline_delay_s = 0\n"
TURN = "r = %lash turn hello"
# the user's pause: wait for the warm-up thread's event (a tree without one has nothing to wait for)
PAUSE = """\
import time as _t
_t0 = _t.perf_counter()
try:  # lets the warm-up import while this cell waits; False at once where none was arranged
    from lash_nb._notebook.extension import wait_until_warm as _wait
except ImportError:  # a tree without the warm-up
    _wait = lambda timeout: False  # noqa: E731
_wait(120)
print(json.dumps({"pause": _t.perf_counter() - _t0}))
"""
FLOOR_EXT = "def load_ipython_extension(ip):\n    pass\n"
NO_WARM = "lash_nb (warm-up off)"


@dataclass
class Load:
    to_idle_ms: float
    in_kernel_ms: float
    modules: int
    heavy: list[str]
    first_turn_ms: float = 0.0  # the next cell, ``%lash turn`` (in memory): what moved there
    warm_ms: float = 0.0  # from the load's idle until the warm-up's event (the pause)
    right_behind_ms: float = 0.0  # load, config and turn sent back to back: to the turn's idle


def right_behind(env: dict[str, str], extension: str) -> float:
    """Run All: the load, the config and the turn cell sent at once, to the turn's idle."""
    with KernelHarness(env=env) as k:
        k.run("import sys")
        t0 = time.perf_counter()
        cells = [k.submit(f"%load_ext {extension}"), k.submit(TURN_SETUP), k.submit(TURN)]
        for ex in cells:
            k.wait(ex, timeout=120)
            if ex.status != "ok":
                raise RuntimeError(ex.error)
        return (time.perf_counter() - t0) * 1000


def one_kernel(pythonpath: str, extension: str, env_extra: dict[str, str]) -> Load:
    env = {"PYTHONPATH": os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")]),
           **env_extra}
    with KernelHarness(env=env) as k:
        k.run(SETUP)  # events: [0] this cell's post_run_cell
        t0 = time.perf_counter()
        k.run(f"%load_ext {extension}")  # [1] pre, [2] post
        to_idle = time.perf_counter() - t0
        probe = k.run(PROBE)
        if probe.error:
            raise RuntimeError(probe.error)
        got = json.loads(probe.stdout.strip().splitlines()[-1])
        load = Load(to_idle * 1000, got["in_kernel"] * 1000, got["modules"], got["heavy"])
        if extension == "lash_nb":
            pause = k.run(PAUSE, timeout=150)
            load.warm_ms = json.loads(pause.stdout.strip().splitlines()[-1])["pause"] * 1000
            k.run(TURN_SETUP)
            t0 = time.perf_counter()
            turn = k.run(TURN)
            load.first_turn_ms = (time.perf_counter() - t0) * 1000
            if turn.error:
                raise RuntimeError(turn.error)
    if extension == "lash_nb":
        load.right_behind_ms = right_behind(env, extension)
    return load


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", action="append", default=[],
                    help="another checkout to compare (old code); may be given more than once")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the kernels inherit this environment
    with tempfile.TemporaryDirectory(prefix="lash-load-ext-") as tmp:
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        (floor_dir / "lash_floor_ext.py").write_text(FLOOR_EXT)
        env_extra = {"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        variants = {"floor": (str(floor_dir), "lash_floor_ext"), "lash_nb": (str(ROOT), "lash_nb"),
                    NO_WARM: (str(ROOT), "lash_nb")}
        for other in args.against:  # named after its folder
            variants[Path(other).resolve().name] = (str(Path(other).resolve()), "lash_nb")
        envs = {name: {**env_extra, "LASH_NB_WARM_IMPORTS": "0" if name == NO_WARM else "1"}
                for name in variants}
        for name, (path, ext) in variants.items():  # warm-up: fills the bytecode cache
            one_kernel(path, ext, envs[name])
        results: dict[str, list[Load]] = {name: [] for name in variants}
        for i in range(args.rounds):
            for name, (path, ext) in variants.items():
                got = one_kernel(path, ext, envs[name])
                results[name].append(got)
                print(f"round {i + 1} {name:14s} to idle {got.to_idle_ms:6.1f} ms, in kernel "
                      f"{got.in_kernel_ms:6.1f} ms, {got.modules} modules imported, "
                      f"heavy: {got.heavy}"
                      + (f"; warm-up {got.warm_ms:6.1f} ms, then the first %lash turn "
                         f"{got.first_turn_ms:6.1f} ms; sent right behind the load "
                         f"{got.right_behind_ms:6.1f} ms" if name != "floor" else ""), flush=True)
    print(f"\nmedians over {args.rounds} interleaved rounds (a fresh kernel each):")
    idle = {name: statistics.median(r.to_idle_ms for r in rows) for name, rows in results.items()}
    for name, rows in results.items():
        turn = statistics.median(r.first_turn_ms for r in rows)
        print(f"  {name:14s} to idle {idle[name]:6.1f} ms   in kernel "
              f"{statistics.median(r.in_kernel_ms for r in rows):6.1f} ms   modules imported "
              f"{statistics.median(r.modules for r in rows):.0f}"
              + (f"   then the first %lash turn {turn:6.1f} ms" if name != "floor" else ""))
    for name, rows in results.items():
        if name != "floor":
            both = statistics.median(r.to_idle_ms + r.first_turn_ms for r in rows)
            print(f"  {name:14s} above the floor {idle[name] - idle['floor']:6.1f} ms "
                  f"(goal: < 100 ms to idle); %load_ext + first turn {both:6.1f} ms")
    print("the first turn (ADR 116), medians:")
    for name, rows in results.items():
        if name != "floor":
            print(f"  first turn of {name}: after the pause {statistics.median(r.first_turn_ms for r in rows):6.1f} ms "
                  f"(warm-up {statistics.median(r.warm_ms for r in rows):6.1f} ms from the load's idle); "
                  f"load + config + turn sent at once {statistics.median(r.right_behind_ms for r in rows):6.1f} ms")


if __name__ == "__main__":
    main()
