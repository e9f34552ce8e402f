"""Model providers (public namespace; re-exports only).

- ``OfflineProvider``: deterministic, no key, streams visibly (the default without a key).
- ``FunctionProvider``: a model written as a Python function (tests, custom scripts).
- ``OpenAICompatible``: Chat Completions (OpenAI, OpenRouter, Ollama, vLLM).
- ``OpenAIResponses``: the OpenAI Responses API (reasoning kept across turns, stateless).
- ``Anthropic``: the Messages API.
- ``GoogleGemini``: the Gemini API (``streamGenerateContent``).
- ``select_provider()``: pick one from the environment and say why.
"""

from typing import Any

from ._core.llm import (
    Completed,
    LlmPart,
    LlmRequest,
    LlmResponse,
    LlmToolSpec,
    LlmTransportError,
    Provider,
    ProviderFailureKind,
    ProviderInfo,
    ReasoningTextDelta,
    RetryPolicy,
    TerminalReason,
    TextDelta,
    UsageReported,
)
from ._providers.function import FunctionProvider
from ._providers.offline import OfflineProvider

_LAZY = {
    "OpenAICompatible": ("._providers.openai_compat", "OpenAICompatible"),
    "Anthropic": ("._providers.anthropic", "Anthropic"),
    "OpenAIResponses": ("._providers.openai_responses", "OpenAIResponses"),
    "GoogleGemini": ("._providers.google", "GoogleGemini"),
    "select_provider": ("._providers.select", "select_provider"),
}

__all__ = [
    "OfflineProvider", "FunctionProvider", "OpenAICompatible", "OpenAIResponses", "Anthropic",
    "GoogleGemini", "select_provider",
    "Provider", "ProviderInfo", "LlmRequest", "LlmResponse", "LlmPart", "LlmToolSpec",
    "TextDelta", "ReasoningTextDelta", "Completed", "LlmTransportError", "ProviderFailureKind",
    "TerminalReason", "RetryPolicy", "UsageReported",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, __package__), attr)
    raise AttributeError(f"module 'lash_nb.providers' has no attribute {name!r}")
