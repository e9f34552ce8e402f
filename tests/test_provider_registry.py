"""One provider registry serves ``select_provider``, ``%lash open --provider`` and the worker.

The user's situation: a session opened in a notebook with ``%lash open --provider openrouter``
is resumed the next morning by a script or worker that builds its core from the environment
(the default builder). Both must build the same provider, so the recorded provider id matches
and the turn runs instead of failing with ``ProviderUnavailable``. No network: every HTTP
request is answered on the spot by a mock transport with a 401 (the turn then ends
``stopped: provider_error`` and is committed, which records the provider id).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell

from lash_nb import LashCore
from lash_nb._core.llm import LlmRequest, LlmTransportError
from lash_nb._providers import exchange
from lash_nb._providers.registry import build_provider
from lash_nb.providers import select_provider

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "LASH_OLLAMA_BASE_URL",
        "OLLAMA_HOST", "LASH_OLLAMA_MODEL", "LASH_MODEL", "OPENAI_BASE_URL", "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID", "ANTHROPIC_BASE_URL")


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Every provider HTTP request, answered 401 without touching the network."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    real_init = exchange.HttpExchange.__init__

    def init(self: Any, **kw: Any) -> None:
        kw["transport"] = httpx.MockTransport(answer)
        real_init(self, **kw)

    monkeypatch.setattr(exchange.HttpExchange, "__init__", init)
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    return seen


@pytest.fixture
def sh(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    yield shell
    shell.close()


def _close_notebook_sessions(sh: Any) -> None:
    sh.user_ns["_lash_ctx"] = sh.ip.magics_manager.registry["LashMagics"].ctx
    sh.run_cell("await _lash_ctx.close()")


def _resume_with_default_builder(path: str) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        core = LashCore.builder().store(path).build()
        try:
            session = await core.session("s1").open()
            output = await session.turn("good morning").run()
            return str(output.result.outcome), session.policy_snapshot().provider_id
        finally:
            await core.close()

    return asyncio.run(go())


def test_a_session_opened_with_provider_openrouter_resumes_under_the_default_builder(
        sh: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        requests: list[httpx.Request]) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-key")
    path = str(tmp_path / "lash.duckdb")
    sh.run_cell(f"%lash open s1 --provider openrouter --store {path}")
    sh.run_cell("r = %lash turn hello")
    assert str(sh.user_ns["r"].outcome) == "stopped: provider_error"
    _close_notebook_sessions(sh)
    outcome, provider_id = _resume_with_default_builder(path)
    assert outcome == "stopped: provider_error"  # it ran (and hit the mocked 401)
    assert provider_id == "openrouter"
    assert [str(r.url) for r in requests] == ["https://openrouter.ai/api/v1/chat/completions"] * 2


def test_notebook_open_and_select_provider_build_the_same_openrouter_request(
        sh: Any, monkeypatch: pytest.MonkeyPatch, requests: list[httpx.Request]) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-key")
    sh.run_cell("%config LashMagics.store = ':memory:'")
    sh.run_cell("%lash open s1 --provider openrouter")
    sh.run_cell("r = %lash turn hello")
    info = select_provider()
    assert info.provider.kind == "openrouter"
    asyncio.run(_one_call(info.provider))
    a, b = requests
    assert (a.url, a.headers.get("x-title")) == (b.url, b.headers.get("x-title")) == (
        "https://openrouter.ai/api/v1/chat/completions", "lash_nb")


def test_notebook_ollama_follows_ollama_host_like_select_provider(
        sh: Any, monkeypatch: pytest.MonkeyPatch, requests: list[httpx.Request]) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu.lan:9000")
    sh.run_cell("%config LashMagics.store = ':memory:'")
    sh.run_cell("%lash open s1 --provider ollama")
    sh.run_cell("r = %lash turn hello")
    info = select_provider()
    assert info.provider.kind == "ollama"
    asyncio.run(_one_call(info.provider))
    assert [str(r.url) for r in requests] == ["http://gpu.lan:9000/v1/chat/completions"] * 2
    assert all("authorization" not in r.headers for r in requests)


def test_notebook_openai_sends_max_completion_tokens_like_select_provider(
        monkeypatch: pytest.MonkeyPatch, requests: list[httpx.Request]) -> None:
    from lash_nb._core.llm import LlmRequest
    from lash_nb._providers.registry import build_provider

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    request = LlmRequest(model="", messages=(), max_output_tokens=50)
    by_name = build_provider("openai").payload(request)
    by_env = select_provider().provider.payload(request)
    assert by_name["max_completion_tokens"] == by_env["max_completion_tokens"] == 50
    assert "max_tokens" not in by_name


def test_notebook_openai_follows_openai_base_url_like_the_sdk(
        sh: Any, monkeypatch: pytest.MonkeyPatch, requests: list[httpx.Request]) -> None:
    """A user whose OpenAI traffic goes through a gateway sets ``OPENAI_BASE_URL`` (the
    official SDK's variable, which ``--provider openai-responses`` already follows). The
    turn went to api.openai.com instead, carrying the gateway's key there."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-gateway-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8400/v1/")
    sh.run_cell("%config LashMagics.store = ':memory:'")
    sh.run_cell("%lash open s1 --provider openai")
    sh.run_cell("r = %lash turn hello")
    assert str(sh.user_ns["r"].outcome) == "stopped: provider_error"  # the mocked 401
    info = select_provider()
    assert info.provider.kind == "openai-compatible"
    asyncio.run(_one_call(info.provider))
    assert [str(r.url) for r in requests] == ["http://127.0.0.1:8400/v1/chat/completions"] * 2


@pytest.mark.parametrize("name", ["openai", "openai-responses"])
def test_select_provider_takes_openai_base_url_from_the_environ_it_is_given(
        name: str, requests: list[httpx.Request]) -> None:
    """``select_provider(environ)`` (the worker's ``--provider env --model ...``, a script
    choosing for another environment) builds from that mapping: the key came from it, the
    base URL came from ``os.environ`` (openai-responses) or nowhere (openai)."""
    env = {"OPENAI_API_KEY": "sk-gateway-key", "OPENAI_BASE_URL": "http://127.0.0.1:8400/v1",
           "LASH_MODEL": f"{name}:gpt-5-mini"}
    provider = select_provider(env).provider
    asyncio.run(_one_call(provider))
    path = "responses" if name == "openai-responses" else "chat/completions"
    assert [str(r.url) for r in requests] == [f"http://127.0.0.1:8400/v1/{path}"]
    assert requests[0].headers["authorization"] == "Bearer sk-gateway-key"


def test_notebook_anthropic_follows_anthropic_base_url_like_the_sdk(
        sh: Any, monkeypatch: pytest.MonkeyPatch, requests: list[httpx.Request]) -> None:
    """``ANTHROPIC_BASE_URL`` is the Anthropic SDK's variable for a gateway or proxy: a user
    who set it for the SDK had ``--provider anthropic`` send the prompt and the gateway's
    key to api.anthropic.com instead."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-gateway-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8401/")
    sh.run_cell("%config LashMagics.store = ':memory:'")
    sh.run_cell("%lash open s1 --provider anthropic")
    sh.run_cell("r = %lash turn hello")
    assert str(sh.user_ns["r"].outcome) == "stopped: provider_error"  # the mocked 401
    env = {"ANTHROPIC_API_KEY": "sk-ant-gateway-key", "ANTHROPIC_BASE_URL": "http://127.0.0.1:8402",
           "LASH_MODEL": "anthropic:claude-sonnet-4-20250514"}
    asyncio.run(_one_call(select_provider(env).provider))  # the environ it is given
    assert [str(r.url) for r in requests] == ["http://127.0.0.1:8401/v1/messages",
                                              "http://127.0.0.1:8402/v1/messages"]
    assert requests[0].headers["x-api-key"] == "sk-ant-gateway-key"


@pytest.mark.parametrize("name", ["openai", "openai-responses"])
def test_openai_sends_the_organization_and_project_of_the_sdk_variables(
        name: str, requests: list[httpx.Request]) -> None:
    """A key scoped to an organization and project (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``,
    which the official SDK sends as headers) is billed there only when they are sent:
    ``openai-responses`` sent them, ``openai`` did not."""
    env = {"OPENAI_API_KEY": "sk-test-key", "OPENAI_ORG_ID": "org-abc",
           "OPENAI_PROJECT_ID": "proj_123", "LASH_MODEL": f"{name}:gpt-5-mini"}
    asyncio.run(_one_call(select_provider(env).provider))
    assert requests[0].headers["openai-organization"] == "org-abc"
    assert requests[0].headers["openai-project"] == "proj_123"


def test_worker_provider_names_are_the_registry_names() -> None:
    from lash_nb.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["worker", "--store", "x.duckdb", "--provider", "nope"])
    assert ("unknown --provider 'nope'; use one of offline, env, openai, anthropic, "
            "openrouter, ollama") in str(info.value)


def test_worker_builds_an_openrouter_provider_by_name(monkeypatch: pytest.MonkeyPatch,
                                                      requests: list[httpx.Request]) -> None:
    from lash_nb.__main__ import worker_provider

    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-key")
    provider = worker_provider("openrouter", model=None, delay_s=0.0)
    assert provider.kind == "openrouter"
    assert provider.model == "openai/gpt-4.1-mini"


def test_a_keyed_provider_without_its_key_fails_at_open_naming_the_variable(sh: Any) -> None:
    sh.run_cell("%config LashMagics.store = ':memory:'")
    with pytest.raises(UsageError, match="--provider openrouter needs OPENROUTER_API_KEY"):
        sh.run_cell("%lash open s1 --provider openrouter")


async def _one_call(provider: Any) -> None:
    """One model call, as a turn would make it (the mocked server refuses it)."""
    from lash_nb._core.llm import LlmRequest, LlmTransportError

    with pytest.raises(LlmTransportError, match="HTTP 401"):
        async for _ in provider.stream(LlmRequest(model="", messages=())):
            pass


def test_a_401_says_check_the_api_key_argument_or_the_variable(
        requests: list[httpx.Request], monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint named ``the api_key= argument``: ``api_key=<word>`` is a credential shape, so
    the scrubber replaced the next word and the user read "check the api_key= [redacted] or
    $OPENAI_API_KEY", as if a key had been printed and hidden."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-HINT-0123456789abcdef")
    provider = build_provider("openai", model="gpt-4.1-mini", offline_delay_s=0)

    async def call() -> str:
        with pytest.raises(LlmTransportError) as err:
            async for _ in provider.stream(LlmRequest(model="gpt-4.1-mini", messages=())):
                pass
        return str(err.value)

    message = asyncio.run(call())
    assert len(requests) == 1
    assert "HTTP 401" in message
    assert "check the api_key argument or $OPENAI_API_KEY" in message
    assert "[redacted]" not in message  # nothing secret was in it
