"""select_provider picks from the environment in a fixed order and says why."""

from __future__ import annotations

import importlib.util

import pytest

from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.openai_compat import OpenAICompatible
from lash_nb._providers.registry import ollama_base_url
from lash_nb._providers.select import select_provider

HAS_OFFLINE = importlib.util.find_spec("lash_nb._providers.offline") is not None


def test_openai_key_selects_openai_chat_completions() -> None:
    info = select_provider({"OPENAI_API_KEY": "sk-a", "ANTHROPIC_API_KEY": "sk-b"})
    assert isinstance(info.provider, OpenAICompatible)
    assert info.provider.base_url == "https://api.openai.com/v1"
    assert info.model == "gpt-4.1-mini"
    assert info.reason.startswith("OPENAI_API_KEY is set")


def test_anthropic_key_selects_anthropic_when_no_openai_key() -> None:
    info = select_provider({"ANTHROPIC_API_KEY": "sk-b", "OPENROUTER_API_KEY": "sk-c"})
    assert isinstance(info.provider, Anthropic)
    assert info.reason.startswith("ANTHROPIC_API_KEY is set")


def test_openrouter_key_selects_openrouter() -> None:
    info = select_provider({"OPENROUTER_API_KEY": "sk-c", "OLLAMA_HOST": "localhost"})
    assert isinstance(info.provider, OpenAICompatible)
    assert info.provider.base_url == "https://openrouter.ai/api/v1"
    assert info.model == "openai/gpt-4.1-mini"


def test_ollama_needs_no_key_and_sends_no_auth_header() -> None:
    info = select_provider({"LASH_OLLAMA_BASE_URL": "http://box:11434/v1/", "LASH_OLLAMA_MODEL": "qwen3"})
    assert info.provider.base_url == "http://box:11434/v1"
    assert info.model == "qwen3"
    assert info.reason.startswith("LASH_OLLAMA_BASE_URL is set")
    assert repr(info.provider).count("api_key=none") == 1


@pytest.mark.parametrize("host, url", [
    ("localhost", "http://localhost:11434/v1"),
    ("0.0.0.0", "http://127.0.0.1:11434/v1"),
    ("0.0.0.0:9000", "http://127.0.0.1:9000/v1"),
    ("http://gpu.lan:8080", "http://gpu.lan:8080/v1"),
    ("https://ollama.example/", "https://ollama.example:11434/v1"),
])
def test_ollama_host_forms_become_a_v1_base_url(host: str, url: str) -> None:
    assert ollama_base_url(host) == url


def test_lash_model_overrides_the_default_model() -> None:
    info = select_provider({"ANTHROPIC_API_KEY": "sk-b", "LASH_MODEL": "claude-x"})
    assert info.model == "claude-x" and info.provider.model == "claude-x"
    assert "LASH_MODEL" in info.reason


def test_blank_variables_count_as_unset() -> None:
    if not HAS_OFFLINE:
        pytest.skip("lash_nb._providers.offline is not written yet")
    info = select_provider({"OPENAI_API_KEY": "  ", "OLLAMA_HOST": ""})
    assert info.provider.kind == "offline"


def test_no_variables_selects_the_offline_provider_and_names_what_was_missing() -> None:
    if not HAS_OFFLINE:
        pytest.skip("lash_nb._providers.offline is not written yet")
    info = select_provider({})
    assert info.provider.kind == "offline"
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "OLLAMA_HOST"):
        assert name in info.reason


def test_the_reason_never_contains_a_variable_value() -> None:
    env = {"OLLAMA_HOST": "secret-host.internal:1234"}
    info = select_provider(env)
    assert "secret-host" not in info.reason and "OLLAMA_HOST" in info.reason
