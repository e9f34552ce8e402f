"""What the PostgreSQL pool's dead-connection check costs a store call (ADR 0170).

Before a pooled connection is lent, ``io._said_goodbye`` polls its socket (no round trip).
This measures a cheap store read (``load_turns`` of a one-turn session) on the kernel's
loop, rounds interleaved: with the check, and with it replaced by ``False`` (the floor: the
code before ADR 0170 lent the connection unchecked). Also the check alone, per call.

    .venv/bin/python benchmarks/pg_liveness.py [--calls 2000] [--rounds 6]

Without ``--dsn`` a throwaway server is started from the Debian packages (tests/pg_fixture.py).
Numbers print to stdout; nothing is asserted.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "tests"))

import argparse  # noqa: E402  (after the path fix: this folder's queue.py shadows asyncio's)
import asyncio  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


async def run(dsn: str, calls: int, rounds: int) -> None:
    from lash_nb._runtime.core import LashCore
    from lash_nb._store.postgres import io
    from lash_nb.providers import OfflineProvider

    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(dsn).build()
    store = core.store
    checked = io._said_goodbye
    try:
        session = await core.session("s").open()
        await session.turn("one turn").run()

        async def per_call_us() -> float:
            t0 = time.perf_counter()
            for _ in range(calls):
                await store.load_turns("s")
            return (time.perf_counter() - t0) / calls * 1e6

        await per_call_us()  # warm
        on: list[float] = []
        off: list[float] = []
        for _ in range(rounds):
            io._said_goodbye = checked
            on.append(await per_call_us())
            io._said_goodbye = lambda con: False  # the floor: no check
            off.append(await per_call_us())
        io._said_goodbye = checked
        pool = store._loop_pools[asyncio.get_running_loop()]
        con = await pool._borrow()
        t0 = time.perf_counter()
        for _ in range(calls * 10):
            checked(con)
        alone = (time.perf_counter() - t0) / (calls * 10) * 1e6
        await pool._give_back(con)
    finally:
        io._said_goodbye = checked
        await store.close()
    print(f"load_turns, {calls} calls a round, {rounds} rounds interleaved (median of rounds):")
    print(f"  with the check      {statistics.median(on):8.1f} us a call")
    print(f"  without (floor)     {statistics.median(off):8.1f} us a call")
    print(f"  the check alone     {alone:8.2f} us a call")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dsn", default=None, help="a database DSN to use (else a throwaway server)")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    from pg_fixture import PgServer, start_postgres

    server = PgServer(args.dsn) if args.dsn else start_postgres(fast=True)
    try:
        dsn = args.dsn or server.create_database()
        print(f"{os.cpu_count()} CPUs, server {'given' if args.dsn else 'throwaway, fsync off'}")
        asyncio.run(run(dsn, args.calls, args.rounds))
    finally:
        if not args.dsn:
            server.stop()


if __name__ == "__main__":
    main()
