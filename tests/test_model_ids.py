"""``provider:model`` ids wherever a model is named: ``%lash open --model``, ``LASH_MODEL``, the
worker's ``--model`` and the builders; one parser (the provider registry's); a typo in the
prefix is one line with a did-you-mean, and an Ollama tag (``qwen:7b``) still works."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell

from lash_nb import LashCore
from lash_nb._errors import ConfigurationError
from lash_nb._providers.registry import split_model_id
from lash_nb._providers.select import select_provider
from lash_nb.providers import Anthropic, FunctionProvider

KEYS = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test",
        "GEMINI_API_KEY": "g-test"}


@pytest.mark.parametrize(("text", "provider", "default", "expected"), [
    ("openai:gpt-4.1-mini", None, None, ("openai", "gpt-4.1-mini")),
    ("anthropic:claude-sonnet-4-20250514", None, "offline",
     ("anthropic", "claude-sonnet-4-20250514")),
    ("google:gemini-2.5-flash", None, None, ("google", "gemini-2.5-flash")),
    ("openai-responses:gpt-5-mini", "openai-responses", None, ("openai-responses", "gpt-5-mini")),
    ("ollama:qwen2.5:7b", None, None, ("ollama", "qwen2.5:7b")),
    ("gpt-4.1-mini", None, "openai", ("openai", "gpt-4.1-mini")),
    ("qwen:7b", "ollama", None, ("ollama", "qwen:7b")),  # a tag, the provider is chosen
    ("llama3.2:3b", None, "ollama", ("ollama", "llama3.2:3b")),
    ("openrouter:openai/gpt-4.1-mini", None, None, ("openrouter", "openai/gpt-4.1-mini")),
])
def test_model_ids_split_into_provider_and_model(text, provider, default, expected):
    assert split_model_id(text, provider=provider, default=default) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("antropic:claude-x", "did you mean anthropic:claude-x?"),
    ("gemini:gemini-2.5-flash", "did you mean google:gemini-2.5-flash?"),
    ("opnai:gpt-4.1", "did you mean openai:gpt-4.1?"),
    ("bedrock:titan", "write PROVIDER:MODEL with PROVIDER one of offline, openai, anthropic"),
    ("openai:", "names no model after openai:"),
])
def test_a_bad_prefix_is_one_line_saying_what_to_write(text, message):
    with pytest.raises(ConfigurationError, match=message.replace("?", r"\?")) as err:
        split_model_id(text)
    assert "\n" not in str(err.value)


def test_a_prefix_naming_another_provider_than_the_one_given_is_refused():
    with pytest.raises(ConfigurationError, match="is for provider anthropic, but the provider "
                                                 "given is openai"):
        split_model_id("anthropic:claude-x", provider="openai")


# ---------------------------------------------------------------------------- the notebook
@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.store = ':memory:'")
    yield shell
    shell.close()


def _binding(sh: Any, name: str) -> Any:
    return sh.ip.magics_manager.registry["LashMagics"].ctx.bindings[name]


@pytest.mark.parametrize(("model_id", "kind", "model"), [
    ("openai:gpt-4.1-mini", "openai-compatible", "gpt-4.1-mini"),
    ("anthropic:claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4-20250514"),
    ("google:gemini-2.5-flash", "google", "gemini-2.5-flash"),
    ("openai-responses:gpt-5-mini", "openai-responses", "gpt-5-mini"),
])
def test_open_with_a_model_id_opens_that_provider_and_model(sh, model_id, kind, model):
    sh.run_cell(f"s = %lash open s1 --model {model_id}")
    b = _binding(sh, "s1")
    assert (b.session.provider.kind, b.session.policy_snapshot().model) == (kind, model)
    assert sh.user_ns["s"] is b.session


def test_open_with_a_misspelt_prefix_is_a_usage_error_with_did_you_mean(sh):
    with pytest.raises(UsageError, match=r"did you mean anthropic:claude-x\?"):
        sh.run_cell("%lash open s1 --model antropic:claude-x")


def test_open_with_provider_and_a_model_of_another_provider_is_refused(sh):
    with pytest.raises(UsageError, match="is for provider anthropic"):
        sh.run_cell("%lash open s1 --provider openai --model anthropic:claude-x")


def test_an_ollama_tag_is_a_model_name_when_the_provider_is_ollama(sh):
    sh.run_cell("s = %lash open s1 --provider ollama --model qwen:7b")
    assert _binding(sh, "s1").session.policy_snapshot().model == "qwen:7b"


def test_the_configured_default_model_may_name_the_provider(sh):
    sh.run_cell("%config LashMagics.model = 'anthropic:claude-sonnet-4-20250514'")
    sh.run_cell("s = %lash open s1")
    b = _binding(sh, "s1")
    assert (b.provider, b.session.provider.kind) == ("anthropic", "anthropic")


# ---------------------------------------------------------------------------- LASH_MODEL
def test_lash_model_with_a_prefix_chooses_the_provider_over_the_key_order():
    info = select_provider({**KEYS, "LASH_MODEL": "google:gemini-2.5-pro"})
    assert (info.provider.kind, info.model) == ("google", "gemini-2.5-pro")
    assert info.reason == "LASH_MODEL names google: model gemini-2.5-pro"


def test_lash_model_naming_a_provider_without_its_key_says_which_variable():
    with pytest.raises(ConfigurationError, match="needs ANTHROPIC_API_KEY"):
        select_provider({"LASH_MODEL": "anthropic:claude-x"})


def test_lash_model_without_a_prefix_keeps_the_key_order():
    info = select_provider({**KEYS, "LASH_MODEL": "gpt-4.1"})
    assert (info.provider.kind, info.model) == ("openai-compatible", "gpt-4.1")


# ---------------------------------------------------------------------------- worker, builders
def test_the_worker_model_picks_the_provider_and_refuses_a_conflict():
    from lash_nb.__main__ import worker_model

    assert worker_model(None, "openai-responses:gpt-5-mini") == ("openai-responses", "gpt-5-mini")
    assert worker_model(None, None) == ("offline", None)
    assert worker_model("env", "anthropic:claude-x") == ("anthropic", "claude-x")
    with pytest.raises(SystemExit, match="is for provider openai, but the provider given is "
                                         "anthropic"):
        worker_model("anthropic", "openai:gpt-4.1-mini")


def test_the_builder_builds_the_provider_a_model_id_names(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    core = LashCore.builder().model("anthropic:claude-sonnet-4-20250514").build()
    assert (core.provider.kind, core.policy.model) == ("anthropic", "claude-sonnet-4-20250514")


def test_the_builder_drops_a_matching_prefix_and_refuses_another_providers():
    core = (LashCore.builder().provider(Anthropic(api_key="k", model="claude-a"))
            .model("anthropic:claude-b").build())
    assert core.policy.model == "claude-b"
    with pytest.raises(ConfigurationError, match="session's provider is anthropic"):
        LashCore.builder().provider(Anthropic(api_key="k")).model("openai:gpt-4.1").build()


def test_a_custom_provider_keeps_its_model_label_as_written():
    provider = FunctionProvider(lambda _r: "ok")

    async def body() -> str:
        core = LashCore.builder().provider(provider).build()
        s = await core.session("s").model("openai:gpt-5-mini").open()
        model: str = s.policy_snapshot().model
        await core.close()
        return model

    assert asyncio.run(body()) == "openai:gpt-5-mini"


def test_a_litellm_model_id_builds_the_litellm_provider_which_says_how_to_install_it(monkeypatch):
    import sys

    from lash_nb._core.llm import LlmRequest

    monkeypatch.setitem(sys.modules, "litellm", None)  # as on a machine without the extra
    core = LashCore.builder().model("litellm:bedrock/anthropic.claude-3-haiku").build()
    assert (core.provider.kind, core.policy.model) == ("litellm", "bedrock/anthropic.claude-3-haiku")

    async def first_event() -> Any:
        return await anext(core.provider.stream(LlmRequest(model=core.policy.model, messages=[])))

    with pytest.raises(ConfigurationError, match=r"pip install 'lash-nb-core\[litellm\]'"):
        asyncio.run(first_event())
    from lash_nb._providers.registry import build_provider

    with pytest.raises(ConfigurationError, match="--provider litellm has no default model"):
        build_provider("litellm")
