"""An image an MCP tool returns reaches the model as an image.

server-everything's ``get-tiny-image`` answers with a text, a PNG and another text. The model
was sent the texts and ``[image image/png, 5380 base64 chars]``: it never saw the picture,
where a Python tool returning a figure shows it the picture (ADR 50) and pydantic-ai passes an
MCP image on as binary content. Now the image is attached to the tool result like a Python
tool's picture (its bytes stored once in the store's blobs table) and the text says where.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mcp_servers import need

pytest.importorskip("mcp")

from lash_nb import LashCore, MCPServer
from lash_nb.providers import OfflineProvider


def test_an_mcp_tools_image_reaches_the_model_and_the_store(mcp_servers: Any, tmp_path: Path) -> None:
    js = need(mcp_servers, "everything")

    async def body() -> tuple[Any, Any]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(
            str(tmp_path / "s.duckdb")).build()
        s = await core.session("s").open()
        await s.tools().add_server(MCPServer.stdio("everything", "node", js, "stdio"))
        out = await s.turn("What does get-tiny-image say?").run()
        blobs = core.store.query("SELECT media_type FROM blobs")
        await core.close()
        return out, blobs

    out, blobs = asyncio.run(body())
    call = out.result.tool_calls[0]
    assert call.success is True
    assert "base64 chars" not in str(call.output)
    assert "image/png" in str(call.output) and "attached below" in str(call.output)
    # the offline model lists what reached it with its bytes (its rules: "It received: ...")
    assert "It received: [image" in out.text and "image/png" in out.text
    assert list(blobs["media_type"]) == ["image/png"]
