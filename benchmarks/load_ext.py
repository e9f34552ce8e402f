"""Time from ``%load_ext lash_nb`` to an idle kernel, in real kernels of this interpreter.

Each measurement starts a fresh kernel (nothing of lash_nb imported yet), runs ``import sys``
(the kernel is up and idle), then the cell ``%load_ext lash_nb``, and reports:

- ``to idle``: from sending the cell to the kernel's ``idle`` status, with jupyter_client (what
  the user waits for);
- ``in kernel``: the cell's run inside the kernel, from IPython's ``pre_run_cell`` to
  ``post_run_cell`` events (no messaging);
- the number of modules the load imported, and whether anywidget / ipywidgets / pandas /
  duckdb / the runtime were among them;
- then, to show where the work went: the next cell ``r = %lash turn hello`` (offline provider,
  in-memory store) to idle; what ``%load_ext`` no longer imports is paid there, once.

Variants, interleaved round by round (medians printed at the end, so load swings hit all alike):

- ``floor``: ``%load_ext`` of an extension that does nothing (the kernel's own cost of a
  ``%load_ext`` cell: messaging, IPython's extension manager);
- ``lash_nb``: this checkout;
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
_lash_bench = {"before": set(sys.modules), "t": []}
def _lash_bench_mark(*_):
    _lash_bench["t"].append(time.perf_counter())
get_ipython().events.register("pre_run_cell", _lash_bench_mark)
get_ipython().events.register("post_run_cell", _lash_bench_mark)
"""
PROBE = """\
_lash_new = set(sys.modules) - _lash_bench["before"]
_lash_watch = ("anywidget", "ipywidgets", "pandas", "duckdb", "lash_nb._runtime.core")
print(json.dumps({"in_kernel": _lash_bench["t"][2] - _lash_bench["t"][1],
                  "modules": len(_lash_new),
                  "heavy": sorted(m for m in _lash_watch if m in _lash_new)}))
"""
TURN_SETUP = "%config LashMagics.store = ':memory:'\n%config LashMagics.offline_delay_s = 0\n"
FLOOR_EXT = "def load_ipython_extension(ip):\n    pass\n"


@dataclass
class Load:
    to_idle_ms: float
    in_kernel_ms: float
    modules: int
    heavy: list[str]
    first_turn_ms: float = 0.0  # the next cell, ``%lash turn`` (in memory): what moved there


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
            k.run(TURN_SETUP)
            t0 = time.perf_counter()
            turn = k.run("r = %lash turn hello")
            load.first_turn_ms = (time.perf_counter() - t0) * 1000
            if turn.error:
                raise RuntimeError(turn.error)
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
        variants = {"floor": (str(floor_dir), "lash_floor_ext"), "lash_nb": (str(ROOT), "lash_nb")}
        for other in args.against:  # named after its folder
            variants[Path(other).resolve().name] = (str(Path(other).resolve()), "lash_nb")
        for path, ext in variants.values():  # warm-up: fills the bytecode cache
            one_kernel(path, ext, env_extra)
        results: dict[str, list[Load]] = {name: [] for name in variants}
        for i in range(args.rounds):
            for name, (path, ext) in variants.items():
                got = one_kernel(path, ext, env_extra)
                results[name].append(got)
                print(f"round {i + 1} {name:14s} to idle {got.to_idle_ms:6.1f} ms, in kernel "
                      f"{got.in_kernel_ms:6.1f} ms, {got.modules} modules imported, "
                      f"heavy: {got.heavy}"
                      + (f"; then the first %lash turn {got.first_turn_ms:6.1f} ms"
                         if name != "floor" else ""), flush=True)
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


if __name__ == "__main__":
    main()
