"""Provider parsing speed: raw SSE decoding, and a full provider stream over the in-process
replay transport and over the loopback socket server. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/bench_providers.py
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from lash_nb._core.llm import LlmRequest
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.openai_compat import OpenAICompatible
from lash_nb._providers.sse import SseDecoder
from lash_nb.testing import LoopbackServer, ReplayTransport, load_wire_script

DELTAS = 5000
KEY = "sk-bench-7f3a9c0d5e1b2a4c6d8e"  # a realistic length: the delta scrubber is active


def chat_script(n: int) -> dict[str, Any]:
    sse = [{"at": 0, "event": "sse", "data": json.dumps(
        {"id": "c", "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]})}
        for i in range(n)]
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": n}}
    tail = [{"at": 0, "event": "sse", "data": json.dumps(last)},
            {"at": 0, "event": "sse", "data": "[DONE]"}, {"at": 0, "event": "end"}]
    start = {"at": 0, "event": "response_start", "status": 200,
             "headers": [{"name": "content-type", "value": "text/event-stream"}]}
    return {"schema": "lash.provider-wire-script.v1", "name": "bench.chat", "provider_kind": "openai-compatible",
            "endpoint": {"method": "POST", "path": "/chat/completions"}, "timeline": [start, *sse, *tail]}


def anthropic_script(n: int) -> dict[str, Any]:
    def ev(obj: Any) -> dict[str, Any]:
        return {"at": 0, "event": "sse", "data": json.dumps(obj)}
    body = [ev({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5}}}),
            ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    body += [ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}})
             for i in range(n)]
    body += [ev({"type": "content_block_stop", "index": 0}),
             ev({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": n}}),
             ev({"type": "message_stop"}), {"at": 0, "event": "end"}]
    return {"schema": "lash.provider-wire-script.v1", "name": "bench.anthropic", "provider_kind": "anthropic",
            "endpoint": {"method": "POST", "path": "/v1/messages"},
            "timeline": [{"at": 0, "event": "response_start", "status": 200, "headers": []}, *body]}


def bench_decoder() -> None:
    frames = b"".join(f'data: {{"choices":[{{"delta":{{"content":"tok{i} caf\u00e9"}}}}]}}\n\n'.encode()
                      for i in range(20000))
    for size in (64, 1024, 16384):
        pieces = [frames[i:i + size] for i in range(0, len(frames), size)]
        t0 = time.perf_counter()
        decoder = SseDecoder()
        count = sum(len(decoder.feed(p)) for p in pieces)
        dt = time.perf_counter() - t0
        print(f"sse decode   chunk={size:>5} B: {len(frames) / dt / 1e6:7.1f} MB/s  "
              f"{count / dt / 1e3:7.1f} k events/s")


async def drain(provider: Any) -> int:
    user = Message.build(Role.USER, [(PartKind.TEXT, "go")])
    n = 0
    async for _ in provider.stream(LlmRequest(model="m", messages=[user])):
        n += 1
    await provider.aclose()
    return n


def bench_stream(label: str, make: Any, script: dict[str, Any]) -> None:
    loaded = load_wire_script(script)
    t0 = time.perf_counter()
    events = asyncio.run(drain(make(ReplayTransport([loaded]), None)))
    dt = time.perf_counter() - t0
    print(f"{label:<10} replay   : {DELTAS} deltas in {dt * 1e3:7.1f} ms = {dt / events * 1e6:6.1f} us/event")
    with LoopbackServer([loaded], time_scale=0) as server:
        t0 = time.perf_counter()
        events = asyncio.run(drain(make(None, server.base_url)))
        dt = time.perf_counter() - t0
    print(f"{label:<10} loopback : {DELTAS} deltas in {dt * 1e3:7.1f} ms = {dt / events * 1e6:6.1f} us/event")


def main() -> None:
    bench_decoder()
    bench_stream("openai", lambda t, base: OpenAICompatible((base or "https://x") + "/v1", api_key=KEY,
                                                            transport=t), chat_script(DELTAS))
    bench_stream("anthropic", lambda t, base: Anthropic(api_key=KEY, base_url=base or "https://x",
                                                        transport=t), anthropic_script(DELTAS))


if __name__ == "__main__":
    main()
