"""lash_nb: durable LLM agent sessions for Jupyter.

Everyday names live here; providers, stores, reports and test doubles have their own
namespaces (``lash_nb.providers``, ``lash_nb.stores``, ``lash_nb.reports``, ``lash_nb.testing``).
In a notebook: ``%load_ext lash_nb`` then ``%lash help``.
"""

from ._core.cancel import CancellationToken
from ._core.queue import DeliveryPolicy, SlotPolicy
from ._core.records import TurnInput, TurnOutcome, TurnStop
from ._tools.function import tool
from ._tools.mcp import MCPServer
from ._errors import LashError
from ._runtime.core import LashCore
from ._runtime.sync import run_sync
from ._version import __version__

__all__ = [
    "LashCore",
    "TurnInput",
    "TurnOutcome",
    "TurnStop",
    "CancellationToken",
    "DeliveryPolicy",
    "SlotPolicy",
    "tool",
    "MCPServer",
    "LashError",
    "run_sync",
    "load_ipython_extension",
]


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    from ._notebook.extension import load_ipython_extension as _load

    _load(ipython)
