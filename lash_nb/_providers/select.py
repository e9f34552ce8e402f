"""Pick a provider from the environment, and say which one and why.

Order: ``OPENAI_API_KEY`` -> OpenAI; ``ANTHROPIC_API_KEY`` -> Anthropic; ``OPENROUTER_API_KEY``
-> OpenRouter; ``LASH_OLLAMA_BASE_URL`` / ``OLLAMA_HOST`` -> Ollama; otherwise the offline
provider. ``LASH_MODEL`` overrides the model of whichever is chosen; ``LASH_MODEL=provider:model``
(``anthropic:claude-sonnet-4-20250514``) chooses the provider too. The reason names the
variable that decided, never its value. The provider itself is built by the registry
(:mod:`.registry`), the same code ``%lash open --provider`` and the worker use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from lash_nb._core.llm import ProviderInfo

from .registry import build_provider, check_key, default_model, ollama_endpoint, split_model_id

# the variable that selects each keyed provider, in the order they are tried
_KEYED = (("OPENAI_API_KEY", "openai", "OpenAI Chat Completions"),
          ("ANTHROPIC_API_KEY", "anthropic", "Anthropic Messages API"),
          ("OPENROUTER_API_KEY", "openrouter", "OpenRouter"))


def select_provider(environ: Mapping[str, str] | None = None) -> ProviderInfo:
    env = os.environ if environ is None else environ
    override = env.get("LASH_MODEL", "").strip()
    note = " (model from LASH_MODEL)" if override else ""
    if override:  # LASH_MODEL=anthropic:claude-... picks the provider as well as the model
        named, bare = split_model_id(override, default="env")
        if named != "env" and named is not None:
            check_key(named, env, again="set it, or change LASH_MODEL")
            return ProviderInfo(build_provider(named, model=bare, environ=env), bare,
                                f"LASH_MODEL names {named}: model {bare}",
                                {"variable": "LASH_MODEL"})
    for variable, name, label in _KEYED:
        if env.get(variable, "").strip():
            model = override or default_model(name, env)
            return ProviderInfo(build_provider(name, model=model, environ=env), model,
                                f"{variable} is set: {label}, model {model}{note}",
                                {"variable": variable})
    _, ollama_variable = ollama_endpoint(env)
    if ollama_variable is not None:
        model = override or default_model("ollama", env)
        return ProviderInfo(build_provider("ollama", model=model, environ=env), model,
                            f"{ollama_variable} is set: Ollama (OpenAI-compatible), "
                            f"model {model}{note}", {"variable": ollama_variable})
    return ProviderInfo(build_provider("offline", environ=env), default_model("offline"),
                        "no OPENAI_API_KEY, ANTHROPIC_API_KEY, OPENROUTER_API_KEY, "
                        "LASH_OLLAMA_BASE_URL or OLLAMA_HOST: the offline model (no key, no network)",
                        {"variable": None})
