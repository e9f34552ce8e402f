"""Model providers (public namespace; re-exports only).

- ``OfflineProvider``: deterministic, no key, streams visibly (the default without a key).
- ``FunctionProvider``: a model written as a Python function (tests, custom scripts).
- ``OpenAICompatible``: Chat Completions (OpenAI, OpenRouter, Ollama, vLLM).
- ``OpenAIResponses``: the OpenAI Responses API (reasoning kept across turns, stateless).
- ``Anthropic``: the Messages API.
- ``GoogleGemini``: the Gemini API (``streamGenerateContent``).
- ``LiteLLMProvider``: any model LiteLLM reaches (Bedrock, Vertex, Azure, ...); extra ``litellm``.
- ``select_provider()``: pick one from the environment and say why.
"""

import typing as _typing

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

if _typing.TYPE_CHECKING:  # imported on first use (httpx loads with them)
    from ._providers.anthropic import Anthropic
    from ._providers.google import GoogleGemini
    from ._providers.openai_compat import OpenAICompatible
    from ._providers.openai_responses import OpenAIResponses
    from ._providers.select import select_provider
    from ._providers.via_litellm import LiteLLMProvider

_LAZY = {
    "OpenAICompatible": ("._providers.openai_compat", "OpenAICompatible"),
    "Anthropic": ("._providers.anthropic", "Anthropic"),
    "OpenAIResponses": ("._providers.openai_responses", "OpenAIResponses"),
    "GoogleGemini": ("._providers.google", "GoogleGemini"),
    "select_provider": ("._providers.select", "select_provider"),
    "LiteLLMProvider": ("._providers.via_litellm", "LiteLLMProvider"),
}

__all__ = [
    "Anthropic",
    "Completed",
    "FunctionProvider",
    "GoogleGemini",
    "LiteLLMProvider",
    "LlmPart",
    "LlmRequest",
    "LlmResponse",
    "LlmToolSpec",
    "LlmTransportError",
    "OfflineProvider",
    "OpenAICompatible",
    "OpenAIResponses",
    "Provider",
    "ProviderFailureKind",
    "ProviderInfo",
    "ReasoningTextDelta",
    "RetryPolicy",
    "TerminalReason",
    "TextDelta",
    "UsageReported",
    "select_provider",
]


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, __package__), attr)
    raise AttributeError(f"module 'lash_nb.providers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
