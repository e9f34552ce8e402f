"""The one place a provider is built from a name.

``select_provider()`` (the default builder), ``%lash open --provider NAME`` and
``python -m lash_nb worker --provider NAME`` all call :func:`build_provider`, so a session
opened by one and resumed by another records and finds the same provider id (``kind``).
A provider id is what a session remembers; changing one here strands every stored session
of that provider (ADR 28), so the ids below are fixed:

==========  ====================  =================  ==================================
name        provider id (kind)    key variable       endpoint
==========  ====================  =================  ==================================
offline     offline               (none)             in process
openai      openai-compatible     OPENAI_API_KEY     api.openai.com, max_completion_tokens
anthropic   anthropic             ANTHROPIC_API_KEY  api.anthropic.com
openrouter  openrouter            OPENROUTER_API_KEY openrouter.ai, X-Title: lash_nb
ollama      ollama                (none)             $LASH_OLLAMA_BASE_URL, else $OLLAMA_HOST,
                                                     else localhost:11434
openai-     openai-responses      OPENAI_API_KEY     $OPENAI_BASE_URL, else api.openai.com
responses                                            /v1/responses (store: false)
google      google                GOOGLE_API_KEY,    generativelanguage.googleapis.com
                                  else GEMINI_API_KEY
==========  ====================  =================  ==================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lash_nb._errors import ConfigurationError

if TYPE_CHECKING:
    from .anthropic import Anthropic
    from .google import GoogleGemini
    from .offline import OfflineProvider
    from .openai_compat import OpenAICompatible
    from .openai_responses import OpenAIResponses

    BuiltProvider = OfflineProvider | OpenAICompatible | Anthropic | OpenAIResponses | GoogleGemini

NAMES = ("offline", "openai", "anthropic", "openrouter", "ollama", "openai-responses", "google")
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                 "openrouter": "OPENROUTER_API_KEY", "openai-responses": "OPENAI_API_KEY",
                 "google": "GEMINI_API_KEY"}
# a provider whose key may also come from another variable (the google-genai SDK's order)
KEY_FALLBACKS = {"google": ("GOOGLE_API_KEY", "GEMINI_API_KEY")}

OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
OPENROUTER_MODEL = "openai/gpt-4.1-mini"
OPENAI_RESPONSES_MODEL = "gpt-5-mini"
GOOGLE_MODEL = "gemini-2.5-flash"
OLLAMA_MODEL = "llama3.2"
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OLLAMA_BASE_URL = "http://localhost:11434/v1"


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


def ollama_endpoint(env: Mapping[str, str]) -> tuple[str, str | None]:
    """The Ollama base URL and the variable that decided it (None: the local default)."""
    base = env.get("LASH_OLLAMA_BASE_URL", "").strip()
    if base:
        return base.rstrip("/"), "LASH_OLLAMA_BASE_URL"
    host = env.get("OLLAMA_HOST", "").strip()
    if host:
        return ollama_base_url(host), "OLLAMA_HOST"
    return OLLAMA_BASE_URL, None


def default_model(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The model ``name`` uses when none is given."""
    env = os.environ if environ is None else environ
    if name == "offline":
        from .offline import OFFLINE_MODEL

        return OFFLINE_MODEL
    if name == "ollama":
        return env.get("LASH_OLLAMA_MODEL", "").strip() or OLLAMA_MODEL
    models = {"openai": OPENAI_MODEL, "anthropic": ANTHROPIC_MODEL, "openrouter": OPENROUTER_MODEL,
              "openai-responses": OPENAI_RESPONSES_MODEL, "google": GOOGLE_MODEL}
    if name not in models:
        raise _unknown(name)
    return models[name]


def check_key(name: str, environ: Mapping[str, str] | None = None, *,
              again: str = "run %lash open again") -> None:
    """A keyed provider without its key fails before the first turn, naming the variable."""
    env = os.environ if environ is None else environ
    var = KEY_VARIABLES.get(name)
    if var is not None and _key(name, env) is None:
        raise ConfigurationError(
            f"--provider {name} needs {var}, which is not set; set it in the environment "
            f"(os.environ[{var!r}] = ...) and {again}, or use --provider offline"
        )


def build_provider(name: str, *, model: str | None = None,
                   environ: Mapping[str, str] | None = None,
                   offline_delay_s: float | None = None) -> BuiltProvider:
    """The provider called ``name`` (one of :data:`NAMES`), for ``model`` or its default.
    Keys come from ``environ`` (default ``os.environ``) and are handed to the provider only."""
    env = os.environ if environ is None else environ
    if name not in NAMES:
        raise _unknown(name)
    model = model or default_model(name, env)
    if name == "offline":
        from .offline import OfflineProvider

        return OfflineProvider() if offline_delay_s is None else OfflineProvider(
            delay_s=offline_delay_s)
    key = _key(name, env)
    if name == "openai-responses":
        from .openai_responses import OpenAIResponses

        return OpenAIResponses(api_key=key, model=model)
    if name == "google":
        from .google import GoogleGemini

        return GoogleGemini(api_key=key, model=model)
    if name == "anthropic":
        from .anthropic import Anthropic

        return Anthropic(api_key=key, model=model)
    from .openai_compat import OpenAICompatible

    if name == "openai":
        return OpenAICompatible("https://api.openai.com/v1", api_key=key, model=model,
                                max_tokens_field="max_completion_tokens")
    if name == "openrouter":
        return OpenAICompatible(OPENROUTER_BASE_URL, api_key=key, api_key_env="OPENROUTER_API_KEY",
                                model=model, headers={"X-Title": "lash_nb"}, kind="openrouter")
    base, _ = ollama_endpoint(env)
    return OpenAICompatible(base, api_key_env=None, model=model, kind="ollama")


def _key(name: str, env: Mapping[str, str]) -> str | None:
    for var in KEY_FALLBACKS.get(name, (KEY_VARIABLES.get(name, ""),)):
        value = env.get(var, "").strip() if var else ""
        if value:
            return value
    return None


def _unknown(name: str) -> ConfigurationError:
    return ConfigurationError(f"unknown provider {name!r}; use one of {', '.join(NAMES)}")
