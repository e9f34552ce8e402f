"""Model request encoding per call with a real provider's wire format (OpenAI-compatible
Chat Completions, Anthropic Messages), at 10 / 1,000 / 10,000 turns of history (4 messages a
turn).

Each sample is one model call of a new turn on a growing history: ``build_http_request``
(what the provider sends: messages encoded once each across calls) beside the full encode
it replaced (``json.dumps(payload(request))``, the whole history on every call), interleaved.

    python -P benchmarks/request_encoding.py
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from lash_nb._core.graph import SessionGraph, SessionNode
from lash_nb._core.llm import LlmRequest
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.openai_compat import OpenAICompatible


def add(graph: SessionGraph, role: Role, part: Part) -> None:
    nid = f"n{len(graph)}"
    graph.append(SessionNode(nid, graph.leaf_node_id, "message", Message(nid, role, (part,)),
                             None, 1, "t"))


def exchange(graph: SessionGraph, k: int, upto: int = 4) -> None:
    steps = [
        (Role.USER, Part(f"u{k}", PartKind.TEXT, f"turn {k}: what is the weather in Paris?")),
        (Role.ASSISTANT, Part(f"c{k}", PartKind.TOOL_CALL, '{"city": "Paris"}',
                              tool_call_id=f"call_{k}", tool_name="get_weather")),
        (Role.USER, Part(f"r{k}", PartKind.TOOL_RESULT, "sunny, 21C, wind W 10 km/h",
                         tool_call_id=f"call_{k}")),
        (Role.ASSISTANT, Part(f"a{k}", PartKind.PROSE, "It is sunny in Paris, 21 degrees.")),
    ]
    for role, part in steps[:upto]:
        add(graph, role, part)


def main() -> None:
    for name, provider in (("OpenAI-compatible", OpenAICompatible(api_key="sk-bench", model="gpt-bench")),
                           ("Anthropic", Anthropic(api_key="sk-ant-bench", model="gpt-bench"))):
        run(name, provider)


def run(name: str, provider: Any) -> None:
    print(f"# request_encoding: {name} body per model call, medians")
    for history in (10, 1000, 10_000):
        graph = SessionGraph()
        for k in range(history):
            exchange(graph, k)
        provider.build_http_request(LlmRequest("gpt-bench", graph.view(), system_prompt="Be brief."))
        new_ms: list[float] = []
        full_ms: list[float] = []
        k = history
        for _ in range(15 if history < 10_000 else 8):
            add(graph, Role.USER, Part(f"u{k}", PartKind.TEXT, f"turn {k}: and tomorrow?"))
            request = LlmRequest("gpt-bench", graph.view(), system_prompt="Be brief.")
            t0 = time.perf_counter()
            body = provider.build_http_request(request).content
            t1 = time.perf_counter()
            full = json.dumps(provider.payload(request)).encode()
            t2 = time.perf_counter()
            assert body == full
            new_ms.append((t1 - t0) * 1000)
            full_ms.append((t2 - t1) * 1000)
            add(graph, Role.ASSISTANT, Part(f"a{k}", PartKind.PROSE, "Rain, 14 degrees."))
            k += 1
        print(f"   history {history:6d} turns: lash_nb build_http_request median "
              f"{statistics.median(new_ms):8.3f} ms   full re-encode (before) "
              f"{statistics.median(full_ms):8.3f} ms   body {len(full) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
