"""Wire-script replay doubles: an in-process httpx transport and a real loopback server."""

from lash_nb._providers.loopback import LoopbackServer
from lash_nb._providers.wire import (
    RecordedRequest,
    ReplayTransport,
    WireScript,
    load_wire_script,
    load_wire_scripts,
)

__all__ = [
    "LoopbackServer",
    "RecordedRequest",
    "ReplayTransport",
    "WireScript",
    "load_wire_script",
    "load_wire_scripts",
]
