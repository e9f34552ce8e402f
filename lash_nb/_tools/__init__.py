"""Tool sources built on third-party packages: typed Python functions (schemas and argument
validation with pydantic) and Model Context Protocol servers (the ``mcp`` SDK, an extra).

Layering: ``_runtime`` -> ``_tools`` -> ``_core``. ``_core/tools.py`` keeps the pure part
(manifests, the ``ToolProvider`` protocol, the registry); this package is the one home of
``pydantic`` and ``mcp`` inside lash_nb. Both are imported lazily: ``import lash_nb`` pays
for neither; decorating a function with ``@tool`` imports pydantic, adding an MCP server
imports ``mcp``.
"""

from .function import FunctionTool, as_tool_provider, tool

__all__ = ["FunctionTool", "as_tool_provider", "tool"]
