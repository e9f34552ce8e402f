"""Where a back-to-back durable turn's time goes, and why threads cannot hide it.

``durable_pace.py --only b2b`` compares a lash_nb turn with its floor (two autocommit
JSON-row INSERTs). This script splits the lash_nb turn itself, in one process, rounds
interleaved:

1. **the turn as shipped**: its two ``commit_log`` INSERTs (timed at the connection) and the
   Python around them (turn minus INSERTs);
2. **the same turn with the ``commit_log`` INSERTs skipped** (a throwaway store whose log
   misses its rows): the Python alone, with no DuckDB statement in between;
3. **the floor**: the two INSERTs raw, as ``durable_pace.py`` measures them;
4. **the same turn on the in-memory store**: the runtime's own Python, with no DuckDB store.

(1) minus (2) is what running DuckDB between the Python costs the Python (caches, the CPU).
The Python a turn may spend for the mean to stay within 1.3x the floor is 0.3 x the floor.
To split that cost, the skipped INSERTs are also replaced by a wait as long as one INSERT:
``time.sleep`` (the CPU idles, as it does while DuckDB waits for fsync) and a busy loop (it
stays awake and touches no memory). Python slower after the sleep than after the busy loop is
the price of an idle CPU waking up, which no change to the Python avoids.

5. **Can a thread hide the INSERT?** A waiting worker thread runs a job while this thread runs
   ~0.3 ms of pure Python. A job that releases the GIL (``time.sleep``, ``hashlib`` on 3 MB)
   overlaps: the pair takes about the longer of the two. If DuckDB's ``execute`` released it,
   an INSERT would overlap the same way; the pair's time says whether it does. It needs a
   free core and this thread to get the GIL back as soon as its Python ends: on a loaded
   machine even ``hashlib`` shows no overlap there.
6. **Is the GIL free while DuckDB inserts?** A spinner thread's rate while this thread runs
   INSERTs, against its rate alone. A GIL held through ``execute`` would stop it (0%); it
   keeps running (DuckDB 2.0 releases the GIL while the statement runs and waits for the
   disk). So an INSERT could overlap the turn's Python: what stops a turn from doing that is
   the order lash keeps (the user message durable before the model is called), not DuckDB.

    python benchmarks/b2b_anatomy.py [--turns 400] [--only turns|overlap|gil]

Internal hooks are patched from here (``commit._apply``, ``SessionWriter.commit``): this
script reads the code it measures and may need a touch when those names change.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOG_INSERT = "INSERT INTO commit_log"


class Probe:
    """Times (or skips) the ``commit_log`` INSERTs of the commits run while it is on."""

    def __init__(self) -> None:
        self.on = False
        self.skip = False
        self.stand_in = ""  # with skip: "sleep" or "spin" for wait_s in place of each INSERT
        self.wait_s = 0.0
        self.insert_s = 0.0
        self.sizes: list[int] = []  # the log rows' body lengths, in commit order
        self.marks: list[tuple[float, float]] = []  # (clock, insert_s) as each commit starts, ends

    def install(self) -> None:
        from lash_nb._store.duckdb import commit

        probe, apply = self, commit._apply

        class Con:
            def __init__(self, con) -> None:
                self._con = con

            def execute(self, sql, *args):
                if not (probe.on and sql.startswith(LOG_INSERT)):
                    return self._con.execute(sql, *args)
                probe.sizes.append(len(args[0][3]))
                if probe.skip:
                    if probe.stand_in:
                        t0 = time.perf_counter()
                        if probe.stand_in == "sleep":
                            time.sleep(probe.wait_s)
                        else:
                            while time.perf_counter() - t0 < probe.wait_s:
                                pass
                        probe.insert_s += time.perf_counter() - t0
                    return None
                t0 = time.perf_counter()
                try:
                    return self._con.execute(sql, *args)
                finally:
                    probe.insert_s += time.perf_counter() - t0

            def __getattr__(self, name):
                return getattr(self._con, name)

        def timed_apply(con, hold, c, *, direct):
            probe.marks.append((time.perf_counter(), probe.insert_s))
            try:
                return apply(Con(con), hold, c, direct=direct)
            finally:
                probe.marks.append((time.perf_counter(), probe.insert_s))

        commit._apply = timed_apply


async def in_memory(dp):
    """``dp.Lash`` on the in-memory store: the same tools, model and prompts."""
    from lash_nb import LashCore
    from lash_nb.providers import FunctionProvider

    t = dp._sibling("turn_overhead")
    lash = dp.Lash()
    lash.core = (LashCore.builder().provider(FunctionProvider(t.model)).model("bench")
                 .tools(t.get_weather).build())
    lash.session = await lash.core.session("bench").open()
    for i in range(10):
        await lash.session.turn(dp.user_text(i)).run()
    lash.i = 10
    return lash


PHASES = ("before the first commit (the user message, the context)",
          "first commit: its Python", "first commit: its INSERT",
          "between the commits (two model calls, the tool, the events)",
          "final commit: its Python", "final commit: its INSERT", "after the final commit")


def stats(xs: list[float]) -> str:
    return f"median {statistics.median(xs):6.3f} ms  mean {statistics.fmean(xs):6.3f}"


async def turns(args) -> None:
    sys.path.insert(0, str(HERE))
    import durable_pace as dp  # its Lash: the turn the back-to-back row measures

    probe = Probe()
    probe.install()
    tmp = tempfile.mkdtemp()
    real, skipped = dp.Lash(), dp.Lash()
    await real.open(f"{tmp}/real.duckdb", 10)
    await skipped.open(f"{tmp}/skipped.duckdb", 10)
    memory = await in_memory(dp)
    import duckdb

    con = duckdb.connect(f"{tmp}/floor.duckdb", config={"threads": 1})
    con.execute("CREATE TABLE log (session_id VARCHAR, head_revision BIGINT, written_at TIMESTAMP, body JSON)")
    rev = [0]

    def floor_turn() -> float:
        t0 = time.perf_counter()
        for body in rows:
            rev[0] += 1
            con.execute("INSERT INTO log VALUES (?, ?, epoch_ms(?::BIGINT), ?)", ["s", rev[0], 0, body])
        return (time.perf_counter() - t0) * 1000

    probe.on = True  # warm both stores; the floor's rows are as long as a turn's two
    for _ in range(10):
        await real.turn()
        await skipped.turn()
    probe.on = False
    small, large = probe.sizes[-2:]
    rows = [json.dumps({"x": "a" * (small - 8)}), json.dumps({"x": "b" * (large - 8)})]
    turn_ms, insert_ms, bare_ms, floor_ms, memory_ms = [], [], [], [], []
    phases: list[list[float]] = []  # per real turn, seconds: see PHASES
    after: dict[str, list[float]] = {"sleep": [], "spin": []}  # turn minus its stand-ins
    probe.on, probe.insert_s = True, 0.0  # one INSERT's length, for the stand-ins
    for _ in range(20):
        await real.turn()
    probe.on = False
    probe.wait_s = probe.insert_s / 40
    per = 10
    for r in range(max(1, args.turns // per)):
        order = ("real", "skipped", "sleep", "floor", "memory", "spin")
        for side in (order if r % 2 else order[::-1]):
            await real.settle()  # no idle fold works beside a round (durable_pace.py)
            await skipped.settle()
            gc.collect()
            for _ in range(per):
                if side == "floor":
                    floor_ms.append(floor_turn())
                    continue
                if side == "memory":
                    memory_ms.append(await memory.turn())
                    continue
                probe.on, probe.skip, probe.insert_s = True, side != "real", 0.0
                probe.stand_in = side if side in after else ""
                probe.marks.clear()
                t0 = time.perf_counter()
                ms = await (real if side == "real" else skipped).turn()
                t1 = time.perf_counter()
                probe.on = False
                if side == "real":
                    turn_ms.append(ms)
                    insert_ms.append(probe.insert_s * 1000)
                    if len(probe.marks) == 4:  # the turn's two commits
                        (s0, i0), (e0, i1), (s1, i2), (e1, i3) = probe.marks
                        phases.append([s0 - t0, e0 - s0 - (i1 - i0), i1 - i0, s1 - e0,
                                       e1 - s1 - (i3 - i2), i3 - i2, t1 - e1])
                elif side == "skipped":
                    bare_ms.append(ms)
                else:
                    after[side].append(ms - probe.insert_s * 1000)
    python_ms = [t - i for t, i in zip(turn_ms, insert_ms, strict=True)]
    fl = statistics.fmean(floor_ms)
    print(f"## a back-to-back durable turn, split ({len(turn_ms)} turns a side, rounds interleaved)")
    print(f"   {'turn as shipped':42s} {stats(turn_ms)}")
    print(f"   {'  its two commit_log INSERTs':42s} {stats(insert_ms)}")
    print(f"   {'  its Python (turn minus INSERTs)':42s} {stats(python_ms)}")
    print(f"   {'turn with the INSERTs skipped (Python only)':42s} {stats(bare_ms)}")
    print(f"   {'floor: two JSON-row INSERTs (raw)':42s} {stats(floor_ms)}   rows {small} + {large} B")
    print(f"   {'the same turn on the in-memory store':42s} {stats(memory_ms)}")
    print(f"   turn mean / floor mean {statistics.fmean(turn_ms) / fl:.2f}x; Python a turn may spend "
          f"for 1.3x: {0.3 * fl:.3f} ms (mean), spent {statistics.fmean(python_ms):.3f} ms, of which "
          f"{statistics.fmean(python_ms) - statistics.fmean(bare_ms):.3f} ms is the slowdown DuckDB "
          f"between the Python causes")
    cols = [statistics.median(c) * 1000 for c in zip(*phases, strict=True)]
    print(f"   the real turn in order (medians of {len(phases)} turns with two commits, ms):")
    for name, ms in zip(PHASES, cols, strict=True):
        print(f"     {name:62s} {ms:6.3f}")
    print(f"   the Python between the two commits, which no reordering may run beside an INSERT (the "
          f"user message is durable before the model is called, the answer before the turn returns): "
          f"{cols[3]:.3f} ms median, against {0.3 * statistics.median(floor_ms):.3f} ms, 0.3x the "
          f"floor's median")
    print(f"   the same Python with each INSERT replaced by a wait as long ({probe.wait_s * 1000:.3f} ms):")
    print(f"   {'  after time.sleep (the CPU idles)':42s} {stats(after['sleep'])}")
    print(f"   {'  after a busy loop (the CPU stays awake)':42s} {stats(after['spin'])}")
    print(f"   an idle wait costs the Python after it "
          f"{statistics.fmean(after['sleep']) - statistics.fmean(after['spin']):.3f} ms a turn (mean) "
          f"of the slowdown above")
    slowdown = statistics.fmean(python_ms) - statistics.fmean(bare_ms)
    floor_python = statistics.fmean(memory_ms) + slowdown
    print(f"   estimate: a DuckDB store whose own Python cost nothing leaves the in-memory turn plus "
          f"the slowdown, {floor_python:.3f} ms of Python: {(fl + floor_python) / fl:.2f}x the floor")
    await real.close()
    await skipped.close()
    con.close()


def overlap(args) -> None:
    import duckdb

    tmp = tempfile.mkdtemp()
    con = duckdb.connect(f"{tmp}/overlap.duckdb", config={"threads": 1})
    con.execute("CREATE TABLE log (session_id VARCHAR, head_revision BIGINT, written_at TIMESTAMP, body JSON)")
    body = json.dumps({"x": "a" * 1288})
    blob = b"x" * 3_000_000
    n = [0]

    def insert() -> None:
        n[0] += 1
        con.execute("INSERT INTO log VALUES (?, ?, epoch_ms(?::BIGINT), ?)", ["s", n[0], 0, body])

    def python(k: int = 20_000) -> int:
        s = 0
        for i in range(k):
            s += i
        return s

    jobs = {"time.sleep(0.6 ms)": lambda: time.sleep(0.0006),
            "hashlib.sha256(3 MB)": lambda: hashlib.sha256(blob).digest(),
            "DuckDB INSERT (autocommit)": insert}
    todo: queue.SimpleQueue = queue.SimpleQueue()
    done: queue.SimpleQueue = queue.SimpleQueue()
    started = threading.Event()

    def worker() -> None:
        while True:
            job = todo.get()
            started.set()
            job()
            done.put(None)

    threading.Thread(target=worker, daemon=True).start()
    py_alone = []
    for _ in range(100):
        t0 = time.perf_counter()
        python()
        py_alone.append((time.perf_counter() - t0) * 1000)
    py = statistics.median(py_alone)
    print(f"\n## can a worker thread hide a job behind this thread's Python ({py:.3f} ms of it)?")
    for name, job in jobs.items():
        alone, pair = [], []
        for _ in range(args.pairs):  # alone and paired in turns: a burst of load hits both
            t0 = time.perf_counter()
            job()
            alone.append((time.perf_counter() - t0) * 1000)
            started.clear()
            t0 = time.perf_counter()
            todo.put(job)
            started.wait()
            python()
            done.get()
            pair.append((time.perf_counter() - t0) * 1000)
        a, p = statistics.median(alone), statistics.median(pair)
        hidden = max(0.0, (a + py - p) / min(a, py)) if min(a, py) else 0.0
        print(f"   {name:28s} alone {a:6.3f} ms   with the Python beside it {p:6.3f} ms   "
              f"(sum {a + py:6.3f}, longer {max(a, py):6.3f}: {min(hidden, 1.0):4.0%} of the shorter hidden)")
    con.close()


def gil(args) -> None:
    """Does DuckDB's ``execute`` let other Python run while the INSERT waits for the disk?

    A spinner thread counts loop iterations, first while this thread sleeps (the GIL is free
    all the time), then while this thread runs the INSERTs one after the other. Its rate
    during the INSERTs, as a share of its rate alone, is the share of the INSERTs' time the
    GIL was free. (The pair test below answers a different question: whether a second
    thread finishes sooner, which also needs a free core and this thread to get the GIL
    back at once.)"""
    import duckdb

    tmp = tempfile.mkdtemp()
    con = duckdb.connect(f"{tmp}/gil.duckdb", config={"threads": 1})
    con.execute("CREATE TABLE log (session_id VARCHAR, head_revision BIGINT, written_at TIMESTAMP, body JSON)")
    body = json.dumps({"x": "b" * 7000})
    n = [0]

    def spin_while(work: Callable[[], None]) -> tuple[float, float]:
        stop, count = threading.Event(), [0]

        def spinner() -> None:
            k = 0
            while not stop.is_set():
                k += 1
            count[0] = k

        th = threading.Thread(target=spinner)
        th.start()
        t0 = time.perf_counter()
        work()
        took = time.perf_counter() - t0
        stop.set()
        th.join()
        return count[0] / took, took

    def inserts() -> None:
        for _ in range(args.gil_inserts):
            n[0] += 1
            con.execute("INSERT INTO log VALUES (?, ?, epoch_ms(?::BIGINT), ?)", ["s", n[0], 0, body])

    shares, per_insert = [], []
    for _ in range(5):
        during, took = spin_while(inserts)
        alone, _ = spin_while(lambda t=took: time.sleep(t))
        shares.append(during / alone)
        per_insert.append(took / args.gil_inserts * 1000)
    print(f"\n## is the GIL free while DuckDB inserts? ({args.gil_inserts} autocommit INSERTs of 7 kB, 5 rounds)")
    print(f"   a spinner thread ran at {statistics.median(shares):.0%} of its rate alone (median; rounds "
          f"{', '.join(f'{s:.0%}' for s in shares)}); one INSERT took {statistics.median(per_insert):.3f} ms "
          f"with the spinner beside it (this thread waits for the GIL after each, up to "
          f"{sys.getswitchinterval() * 1000:.0f} ms)")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--gil-inserts", type=int, default=100)
    ap.add_argument("--only", choices=("turns", "overlap", "gil"))
    args = ap.parse_args()
    if args.only in (None, "turns"):
        asyncio.run(turns(args))
    if args.only in (None, "overlap"):
        overlap(args)
    if args.only in (None, "gil"):
        gil(args)


if __name__ == "__main__":
    main()
