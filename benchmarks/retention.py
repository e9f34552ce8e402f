"""Retention: how much a DuckDB store file gives back, and what a vacuum costs.

    .venv/bin/python benchmarks/retention.py [--turns 200] [--text-bytes 4000]

A store holds a big session (``--turns`` turns of incompressible text) and a small one. The
big session is deleted and ``core.vacuum()`` runs: the file size is printed after the turns,
after the delete (DuckDB keeps the freed blocks: it does not shrink by itself) and after the
vacuum, with the time the vacuum took. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore


def size(path: str) -> int:
    wal = path + ".wal"
    return os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)


async def main(turns: int, text_bytes: int) -> None:
    folder = tempfile.mkdtemp(prefix="lash-retention-")
    path = os.path.join(folder, "bench.duckdb")
    provider = FunctionProvider(lambda r: "ok " + r.messages[-1].text()[:64], kind="function")
    core = LashCore.builder().provider(provider).model("m").store(DuckDBStore(path)).build()
    big = await core.session("big").open()
    for i in range(turns):
        await big.turn(f"{i} " + os.urandom(text_bytes // 2).hex()).run()
    small = await core.session("small").open()
    await small.turn("keep me").run()
    await big.close()
    await small.close()
    await core.store.release_file()  # checkpointed: the sizes below are the file's own
    print(f"after {turns} turns of {text_bytes} bytes: {size(path) / 1e6:.2f} MB")
    await core.delete_session("big")
    await core.store.release_file()
    print(f"after deleting the big session: {size(path) / 1e6:.2f} MB (DuckDB keeps the blocks)")
    t0 = time.perf_counter()
    report = await core.vacuum()
    took = (time.perf_counter() - t0) * 1000
    print(f"vacuum: {report.file_bytes_before / 1e6:.2f} MB -> {report.file_bytes_after / 1e6:.2f} MB "
          f"in {took:.0f} ms; on disk now {size(path) / 1e6:.2f} MB")
    again = await core.session("small").open()
    print("small session after vacuum:", [m.text() for m in again.read_view().messages()])
    await core.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--text-bytes", type=int, default=4000)
    a = ap.parse_args()
    asyncio.run(main(a.turns, a.text_bytes))
