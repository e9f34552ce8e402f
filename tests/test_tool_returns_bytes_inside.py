"""A tool returning a dict that holds raw bytes (an HTTP tool's ``{"status": ..., "content":
r.content}``) reaches the model and the store as JSON, the bytes as their ``str()``.

ADR 188 says a value inside a container that pydantic cannot write becomes its ``str()`` and
the rest stays JSON. Bytes that are not UTF-8 are not such a value for pydantic (it knows
bytes, and fails on them), so before (docs/adr/0201) the whole dict became Python's repr: the
model read ``{'status': 200, 'content': b'\\x89PNG...'}`` and the store held one string, so
``output->>'status'`` in SQL found nothing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00"


@tool
def download(url: str) -> dict:
    """Fetch a URL."""
    return {"status": 200, "url": url, "content": PNG_HEAD, "headers": [b"x-id: 7"]}


def test_a_dict_with_bytes_that_are_not_text_stays_json(tmp_path: Path) -> None:
    sent: list[str] = []

    def model(request):  # the first call asks for the tool, the second reads its result
        results = [p.content for m in request.messages for p in m.parts
                   if p.kind.value == "tool_result"]
        if not results:
            return [tool_call("download", '{"url": "https://example.org/a.png"}')]
        sent.extend(results)
        return "fetched"

    path = tmp_path / "lash.duckdb"

    async def body() -> list[str]:
        core = LashCore.builder().provider(FunctionProvider(model)).tools(download).store(path).build()
        s = await core.session("agent").open()
        await s.turn("download it").run()
        rows = s.store.query("SELECT output->>'$.status' AS status, output->>'$.url' AS url "
                             "FROM tool_calls")
        return [tuple(r) for r in rows.values.tolist()]

    rows = asyncio.run(body())
    assert rows == [("200", "https://example.org/a.png")]
    assert json.loads(sent[0]) == {"status": 200, "url": "https://example.org/a.png",
                                   "content": str(PNG_HEAD), "headers": ["x-id: 7"]}
