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
openai      openai-compatible     OPENAI_API_KEY     $OPENAI_BASE_URL, else api.openai.com;
                                                     max_completion_tokens
anthropic   anthropic             ANTHROPIC_API_KEY  $ANTHROPIC_BASE_URL, else
                                                     api.anthropic.com
openrouter  openrouter            OPENROUTER_API_KEY openrouter.ai, X-Title: lash_nb
ollama      ollama                (none)             $LASH_OLLAMA_BASE_URL, else $OLLAMA_HOST,
                                                     else localhost:11434
openai-     openai-responses      OPENAI_API_KEY     $OPENAI_BASE_URL, else api.openai.com
responses                                            /v1/responses (store: false)
google      google                GOOGLE_API_KEY,    generativelanguage.googleapis.com
                                  else GEMINI_API_KEY
litellm     litellm               (LiteLLM's own)    LiteLLM (extra ``litellm``); needs a model,
                                                     e.g. ``litellm:bedrock/...``
==========  ====================  =================  ==================================

A model is named ``provider:model`` wherever one is named (``%lash open --model``,
``LASH_MODEL``, ``worker --model``, ``LashCore.builder().model(...)``): the prefix is one of
the names above (``openai:gpt-4.1-mini``, ``anthropic:claude-sonnet-4-20250514``,
``google:gemini-2.5-flash``, ``openai-responses:gpt-5-mini``, ``ollama:qwen2.5:7b``).
:func:`split_model_id` is the one parser. A bare model keeps the provider chosen otherwise;
a prefix made of letters that names no provider is refused with a did-you-mean, unless a
provider is already chosen (then it is part of the model name, as Ollama's ``qwen:7b``).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lash_nb._errors import ConfigurationError

if TYPE_CHECKING:
    from typing import TypeAlias

    from .anthropic import Anthropic
    from .google import GoogleGemini
    from .offline import OfflineProvider
    from .openai_compat import OpenAICompatible
    from .openai_responses import OpenAIResponses
    from .via_litellm import LiteLLMProvider

    BuiltProvider: TypeAlias = (OfflineProvider | OpenAICompatible | Anthropic | OpenAIResponses | GoogleGemini
                     | LiteLLMProvider)

NAMES = ("offline", "openai", "anthropic", "openrouter", "ollama", "openai-responses", "google",
         "litellm")
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                 "openrouter": "OPENROUTER_API_KEY", "openai-responses": "OPENAI_API_KEY",
                 "google": "GEMINI_API_KEY"}
# a provider whose key may also come from another variable (the google-genai SDK's order)
KEY_FALLBACKS = {"google": ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
# every variable a key is read from
KEY_NAMES = tuple(dict.fromkeys((*KEY_VARIABLES.values(),
                                 *(v for vs in KEY_FALLBACKS.values() for v in vs))))
# every variable build_provider reads (the keys and these settings): a change to one means a
# different provider
ENV_VARIABLES = (*KEY_NAMES, "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                 "ANTHROPIC_BASE_URL", "LASH_OLLAMA_BASE_URL", "OLLAMA_HOST", "LASH_OLLAMA_MODEL")

# the provider id (kind) each name builds: a session records the kind (ADR 28)
KINDS = {"offline": "offline", "openai": "openai-compatible", "anthropic": "anthropic",
         "openrouter": "openrouter", "ollama": "ollama", "openai-responses": "openai-responses",
         "google": "google", "litellm": "litellm"}
# names people write for a provider that is called otherwise here
_ALIASES = {"gemini": "google", "vertex": "google", "claude": "anthropic", "gpt": "openai",
            "responses": "openai-responses", "chatgpt": "openai"}
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z_-]*$")

OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
OPENROUTER_MODEL = "openai/gpt-4.1-mini"
OPENAI_RESPONSES_MODEL = "gpt-5-mini"
GOOGLE_MODEL = "gemini-2.5-flash"
OLLAMA_MODEL = "llama3.2"
OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
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
    if name == "litellm":
        raise ConfigurationError("--provider litellm has no default model; name one, e.g. "
                                 "--model litellm:bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0")
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


def environment_fingerprint(name: str, environ: Mapping[str, str] | None = None) -> str:
    """A digest of the variables ``build_provider(name)`` reads (keys among them, so a digest
    and not the values): equal digests build the same provider. The offline provider reads
    none."""
    if name == "offline":
        return ""
    import hashlib

    env = os.environ if environ is None else environ
    digest = hashlib.sha256()
    for var in ENV_VARIABLES:
        digest.update(f"{var}={env.get(var, '')}\0".encode())
    return digest.hexdigest()


def build_provider(name: str, *, model: str | None = None,
                   environ: Mapping[str, str] | None = None,
                   offline_delay_s: float | None = None) -> BuiltProvider:
    """The provider called ``name`` (one of :data:`NAMES`), for ``model`` or its default.
    Keys come from ``environ`` (default ``os.environ``) and are handed to the provider only."""
    env = os.environ if environ is None else environ
    if name not in NAMES:
        raise _unknown(name)
    if model:
        model = split_model_id(model, provider=name)[1]
    model = model or default_model(name, env)
    if name == "offline":
        from .offline import OfflineProvider

        return OfflineProvider() if offline_delay_s is None else OfflineProvider(
            delay_s=offline_delay_s)
    key = _key(name, env)
    if name == "litellm":
        from .via_litellm import LiteLLMProvider

        return LiteLLMProvider(model)
    # OpenAI's SDK variables, read from ``env`` like the key (not from os.environ)
    openai_base = env.get("OPENAI_BASE_URL", "").strip() or OPENAI_BASE_URL
    if name == "openai-responses":
        from .openai_responses import OpenAIResponses

        return OpenAIResponses(openai_base, api_key=key, model=model,
                               organization=env.get("OPENAI_ORG_ID", "").strip(),
                               project=env.get("OPENAI_PROJECT_ID", "").strip())
    if name == "google":
        from .google import GoogleGemini

        return GoogleGemini(api_key=key, model=model)
    if name == "anthropic":
        from .anthropic import Anthropic

        # the Anthropic SDK's variable for a gateway, read from ``env`` like the key
        base = env.get("ANTHROPIC_BASE_URL", "").strip().rstrip("/") or ANTHROPIC_BASE_URL
        return Anthropic(api_key=key, model=model, base_url=base)
    from .openai_compat import OpenAICompatible

    if name == "openai":
        # the organization and project headers from the SDK's variables, as openai-responses
        sdk = {h: v for h, var in (("OpenAI-Organization", "OPENAI_ORG_ID"),
                                   ("OpenAI-Project", "OPENAI_PROJECT_ID"))
               if (v := env.get(var, "").strip())}
        return OpenAICompatible(openai_base, api_key=key, model=model, headers=sdk or None,
                                max_tokens_field="max_completion_tokens")
    if name == "openrouter":
        return OpenAICompatible(OPENROUTER_BASE_URL, api_key=key, api_key_env="OPENROUTER_API_KEY",
                                model=model, headers={"X-Title": "lash_nb"}, kind="openrouter")
    base, _ = ollama_endpoint(env)
    return OpenAICompatible(base, api_key_env=None, model=model, kind="ollama")


def split_model_id(text: str, *, provider: str | None = None,
                   default: str | None = None) -> tuple[str | None, str]:
    """``"provider:model"`` -> ``(provider name, model)``; a bare model -> ``(provider or
    default, model)``. ``provider`` is one the user chose explicitly (``--provider``): a
    prefix naming another is refused. ``default`` is one chosen by configuration: a prefix
    replaces it. Errors are one line and say what to write."""
    model = text.strip()
    head, sep, rest = model.partition(":")
    chosen = provider or default
    if sep and head.lower() in KINDS:
        name, rest = head.lower(), rest.strip()
        if not rest:
            raise ConfigurationError(f"model id {model!r} names no model after {name}:; write "
                                     f"{name}:MODEL, or leave the model out for {name}'s default")
        if provider is not None and provider != name:
            raise ConfigurationError(f"model id {model!r} is for provider {name}, but the "
                                     f"provider given is {provider}; give one of them")
        return name, rest
    if sep and _PREFIX.match(head):
        close = _ALIASES.get(head.lower()) or next(
            iter(difflib.get_close_matches(head.lower(), list(KINDS), n=1, cutoff=0.6)), None)
        if close is not None or chosen is None:
            hint = f"did you mean {close}:{rest}? " if close else ""
            raise ConfigurationError(
                f"unknown provider {head!r} in model id {model!r}; {hint}write PROVIDER:MODEL "
                f"with PROVIDER one of {', '.join(NAMES)}")
    return chosen, model


def model_for_kind(kind: str, model: str) -> str:
    """A builder's model for a provider object of ``kind``: a ``provider:`` prefix naming the
    same provider is dropped, one naming another registry provider is refused, and any other
    model (a custom provider's ``openai:...`` label, an Ollama tag) is kept as written."""
    head, sep, _ = model.partition(":")
    name = head.strip().lower()
    if not sep or name not in KINDS:
        return model
    if KINDS[name] == kind:
        return split_model_id(model, provider=name)[1]
    if kind in KINDS.values():
        raise ConfigurationError(f"model id {model!r} is for provider {name}, but the session's "
                                 f"provider is {kind}; drop the prefix or use that provider")
    return model


def _key(name: str, env: Mapping[str, str]) -> str | None:
    for var in KEY_FALLBACKS.get(name, (KEY_VARIABLES.get(name, ""),)):
        value = env.get(var, "").strip() if var else ""
        if value:
            return value
    return None


def _unknown(name: str) -> ConfigurationError:
    return ConfigurationError(f"unknown provider {name!r}; use one of {', '.join(NAMES)}")
