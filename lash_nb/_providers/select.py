"""Pick a provider from the environment, and say which one and why.

Order: ``OPENAI_API_KEY`` -> OpenAI; ``ANTHROPIC_API_KEY`` -> Anthropic; ``OPENROUTER_API_KEY``
-> OpenRouter; ``GOOGLE_API_KEY`` / ``GEMINI_API_KEY`` -> Gemini; ``LASH_OLLAMA_BASE_URL`` / ``OLLAMA_HOST`` -> Ollama; otherwise the offline
provider. ``LASH_MODEL`` overrides the model of whichever is chosen. The reason names the
variable that decided, never its value. Keys are read here only to hand them to the
provider; they are not kept in :class:`ProviderInfo`.
"""

from __future__ import annotations

import os
from typing import Mapping

from lash_nb._core.llm import ProviderInfo

from .anthropic import Anthropic
from .openai_compat import OpenAICompatible

OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
OPENROUTER_MODEL = "openai/gpt-4.1-mini"
OLLAMA_MODEL = "llama3.2"
GOOGLE_MODEL = "gemini-2.5-flash"
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"


def ollama_base_url(host: str) -> str:
    """``OLLAMA_HOST`` forms (``host``, ``host:port``, ``http://host:port``) -> ``.../v1``."""
    url = host.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    scheme, _, rest = url.partition("://")
    if rest.startswith("0.0.0.0"):  # a bind address, not a place to connect to
        rest = "127.0.0.1" + rest[len("0.0.0.0"):]
    if ":" not in rest.split("/", 1)[0]:
        head, slash, tail = rest.partition("/")
        rest = f"{head}:11434{slash}{tail}"
    url = f"{scheme}://{rest}"
    return url if url.endswith("/v1") else f"{url}/v1"


def select_provider(environ: Mapping[str, str] | None = None) -> ProviderInfo:
    env = os.environ if environ is None else environ

    def has(name: str) -> bool:
        return bool(env.get(name, "").strip())

    override = env.get("LASH_MODEL", "").strip()
    note = " (model from LASH_MODEL)" if override else ""
    provider: OpenAICompatible | Anthropic
    if has("OPENAI_API_KEY"):
        model = override or OPENAI_MODEL
        provider = OpenAICompatible("https://api.openai.com/v1", api_key=env["OPENAI_API_KEY"],
                                    model=model, max_tokens_field="max_completion_tokens")
        return ProviderInfo(provider, model, f"OPENAI_API_KEY is set: OpenAI Chat Completions, "
                                             f"model {model}{note}", {"variable": "OPENAI_API_KEY"})
    if has("ANTHROPIC_API_KEY"):
        model = override or ANTHROPIC_MODEL
        provider = Anthropic(api_key=env["ANTHROPIC_API_KEY"], model=model)
        return ProviderInfo(provider, model, f"ANTHROPIC_API_KEY is set: Anthropic Messages API, "
                                             f"model {model}{note}", {"variable": "ANTHROPIC_API_KEY"})
    if has("OPENROUTER_API_KEY"):
        model = override or OPENROUTER_MODEL
        provider = OpenAICompatible(OPENROUTER_BASE_URL, api_key=env["OPENROUTER_API_KEY"],
                                    api_key_env="OPENROUTER_API_KEY", model=model,
                                    headers={"X-Title": "lash_nb"})
        return ProviderInfo(provider, model, f"OPENROUTER_API_KEY is set: OpenRouter, "
                                             f"model {model}{note}", {"variable": "OPENROUTER_API_KEY"})
    for variable in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):  # the google-genai SDK's order
        if has(variable):
            from .google import GoogleGemini

            model = override or GOOGLE_MODEL
            return ProviderInfo(GoogleGemini(api_key=env[variable], model=model), model,
                                f"{variable} is set: Google Gemini API, model {model}{note}",
                                {"variable": variable})
    for variable in ("LASH_OLLAMA_BASE_URL", "OLLAMA_HOST"):
        if has(variable):
            raw = env[variable]
            base = raw.strip().rstrip("/") if variable == "LASH_OLLAMA_BASE_URL" else ollama_base_url(raw)
            model = override or env.get("LASH_OLLAMA_MODEL", "").strip() or OLLAMA_MODEL
            provider = OpenAICompatible(base, api_key_env=None, model=model)
            return ProviderInfo(provider, model, f"{variable} is set: Ollama (OpenAI-compatible), "
                                                 f"model {model}{note}", {"variable": variable})
    from lash_nb._providers.offline import OFFLINE_MODEL, OfflineProvider

    return ProviderInfo(OfflineProvider(), OFFLINE_MODEL,
                        "no OPENAI_API_KEY, ANTHROPIC_API_KEY, OPENROUTER_API_KEY, GOOGLE_API_KEY, "
                        "GEMINI_API_KEY, LASH_OLLAMA_BASE_URL or OLLAMA_HOST: the offline model (no key, no network)",
                        {"variable": None})
