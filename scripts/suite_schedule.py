"""Replay a parallel run's schedule from its durations: when would each xdist worker end?

    python scripts/suite_schedule.py RUN.log [--workers 4] [--show 15]

RUN.log is the output of a run with ``--durations=0`` (``bash scripts/test.sh --durations=0``
prints it for the newest run; a line a log tool prefixed is read too). This script collects the
suite here (``pytest --collect-only`` with tests/xdist_groups.py, the newest run's order and
groups) and deals the work units to the workers the way ``--dist loadgroup`` does (xdist 3.8:
one unit to each worker, then another to each worker left with two tests or fewer, and again
each time a test ends), each test taking the time the log gives it (setup + call + teardown;
tests the log does not list took under 5 ms).

It answers whether a run's length comes from its schedule (one worker ending long after the
others: a long unit dealt late) or from its work (all workers ending together: only less work,
or less waiting, makes the run shorter). ADR 187.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import re
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOSING = re.compile(r"\d+ (passed|failed)")
LINE = re.compile(r"(?:^|\s)([\d.]+)s (call|setup|teardown)\s+(\S.*?)\s*$")


def durations(log: Path) -> dict[str, float]:
    """The first run's durations in the log (scripts/test.sh prints the lowest run's after)."""
    spent: dict[str, float] = defaultdict(float)
    inside = False
    for line in log.read_text(errors="replace").splitlines():
        if "slowest" in line and "durations" in line:
            inside = True
            continue
        if inside and ("short test summary" in line or CLOSING.search(line)):
            break
        m = LINE.search(line) if inside else None
        if m:
            node = re.sub(r"@[^\]\s]*$", "", m.group(3))  # xdist's "@group" suffix, if any
            spent[node] += float(m.group(1))
    return spent


def units_in_order() -> list[tuple[str, str]]:
    """(node id, work unit) for each test, in the order the scheduler deals them."""
    import pytest

    sys.path.insert(0, str(ROOT / "tests"))

    class Dump:
        def __init__(self) -> None:
            self.got: list[tuple[str, str]] = []

        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(self, session: Any) -> None:
            groups = sys.modules["xdist_groups"]
            unit = session.config.stash.get(groups._units_key, {})
            self.got = [(item.nodeid, unit.get(str(id(item)), item.nodeid))
                        for item in session.items]

    dump = Dump()
    with contextlib.redirect_stdout(io.StringIO()):  # not the list of every test
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir",
                            str(ROOT), str(ROOT / "tests")], plugins=[dump])
    if code not in (0, 5) or not dump.got:
        raise SystemExit(f"collecting the suite failed (pytest exit {code})")
    return dump.got


def replay(order: list[tuple[str, str]], spent: dict[str, float], workers: int) -> list[Any]:
    queue: OrderedDict[str, list[str]] = OrderedDict()
    for node, unit in order:
        queue.setdefault(unit, []).append(node)
    pending: list[list[str]] = [[] for _ in range(workers)]
    clock = [0.0] * workers
    dealt: list[list[tuple[float, str, float]]] = [[] for _ in range(workers)]

    def deal(w: int) -> None:
        if queue:
            unit, nodes = queue.popitem(last=False)
            pending[w].extend(nodes)
            dealt[w].append((clock[w], unit, sum(spent.get(n, 0.0) for n in nodes)))

    for w in range(workers):
        deal(w)
    for w in range(workers):
        if len(pending[w]) <= 2:
            deal(w)
    running = [(spent.get(pending[w][0], 0.0), w) for w in range(workers) if pending[w]]
    heapq.heapify(running)
    while running:
        now, w = heapq.heappop(running)
        clock[w] = now
        pending[w].pop(0)
        if len(pending[w]) <= 2:
            deal(w)
        if pending[w]:
            heapq.heappush(running, (now + spent.get(pending[w][0], 0.0), w))
    return [(clock[w], dealt[w]) for w in range(workers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--show", type=int, default=10, help="longest units listed per worker")
    args = parser.parse_args()
    spent = durations(args.log)
    if not spent:
        raise SystemExit(f"{args.log} has no durations: run with --durations=0")
    order = units_in_order()
    listed = sum(1 for node, _ in order if node in spent)
    total = sum(spent.get(node, 0.0) for node, _ in order)
    print(f"{len(order)} tests ({listed} with a duration in the log), "
          f"{len({u for _, u in order})} work units, {total:.0f} s of test time")
    print(f"evenly spread over {args.workers} workers: {total / args.workers:.0f} s each")
    for w, (end, units) in enumerate(replay(order, spent, args.workers)):
        print(f"gw{w}: ends at {end:.0f} s, {len(units)} units")
        for start, unit, took in sorted(units, key=lambda u: -u[2])[:args.show]:
            print(f"    {took:7.1f} s from {start:6.0f} s  {unit}")


if __name__ == "__main__":
    main()
