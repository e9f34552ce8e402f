"""``SessionParts``: the collaborators of one opened session, handed to the code that runs
its turns, drains and tool changes (so none of it reaches into ``LashSession``).

``LashSession`` (``session.py``) is the public facade over these parts; ``TurnRun``,
``queue.py`` and ``tool_admin.py`` are written against them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._core.llm import Provider, RetryPolicy
from .._core.queue import DEFAULT_MAX_ATTEMPTS
from .._store.base import SessionStore
from .approval import Approvals
from .attachments import BlobCache
from .cancel import TurnCancelRegistry
from .catalog import ToolCatalog
from .code_mode.mode import CodeMode
from .feed import SessionFeed
from .prompt_layers import SessionSurface
from .state import SessionState
from .writer import SessionWriter


@dataclass
class SessionParts:
    state: SessionState
    store: SessionStore
    provider: Provider  # the session's provider (a turn may bring its own)
    writer: SessionWriter
    feed: SessionFeed
    catalog: ToolCatalog
    cancels: TurnCancelRegistry
    retry_policy: RetryPolicy
    closed: Callable[[], bool]
    max_batch_attempts: int = DEFAULT_MAX_ATTEMPTS  # claims of a queued batch before it parks
    approvals: Approvals = field(default_factory=Approvals)  # tool approval (approval.py)
    blobs: BlobCache = field(default_factory=BlobCache)  # attachment bytes by content id
    # core prompt layer, plugins, prompt cache, turn phase probe (prompt_layers.py)
    surface: SessionSurface = field(default_factory=SessionSurface)
    core: Any = None  # the LashCore that opened the session (child sessions open through it)
    code_mode: CodeMode | None = None  # the session runs lash's RLM protocol (code mode)
    # the live provider's kind when the session was recorded with another and nobody named
    # one: plain and queued turns are refused (ProviderUnavailable) until one is (ADR 0201)
    provider_mismatch: str | None = None

    @property
    def session_id(self) -> str:
        return self.state.session_id
