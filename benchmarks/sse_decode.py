"""SSE decoder throughput on large inputs: one event of 1, 8 and 50 MB whose data line has no
newline until its end (a huge tool-call argument, or a server that never frames its events),
fed in network-sized chunks (4 KiB by default: a TLS record is at most 16 KiB and
sockets often deliver less), plus the same volume as many small events. Prints MB/s and the
peak traced memory; asserts nothing.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/sse_decode.py [--sizes 1,8,50] [--chunk 4096]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from lash_nb._providers.sse import SseDecoder


def decoder(max_mb: int) -> SseDecoder:
    try:
        return SseDecoder(max_event_bytes=max_mb * 2**20)  # type: ignore[call-arg]
    except TypeError:  # the decoder before max_event_bytes existed
        return SseDecoder()


def run(label: str, wire: bytes, *, trace: bool, chunk: int) -> None:
    pieces = [wire[i:i + chunk] for i in range(0, len(wire), chunk)]
    d = decoder(len(wire) // 2**20 + 1)
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    events = 0
    for piece in pieces:
        events += len(d.feed(piece))
    events += len(d.flush())
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    if trace:
        tracemalloc.stop()
    print(f"{label:<34} {len(wire) / 2**20:6.1f} MB in {dt:7.3f} s = {len(wire) / 2**20 / dt:8.1f} MB/s"
          f"  events={events}  peak traced={peak:7.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,8,50", help="MB, comma separated")
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per feed() call")
    parser.add_argument("--no-trace", action="store_true", help="skip tracemalloc (it slows decoding)")
    args = parser.parse_args()
    for mb in (int(s) for s in args.sizes.split(",")):
        body = b"x" * (mb * 2**20)
        run(f"one {mb} MB event, no newline", b"data: " + body + b"\n\n", trace=not args.no_trace, chunk=args.chunk)
        small = b'data: {"choices":[{"delta":{"content":"tok caf\xc3\xa9"}}]}\n\n'
        run(f"{mb} MB of small events", small * (mb * 2**20 // len(small)), trace=False, chunk=args.chunk)


if __name__ == "__main__":
    main()
