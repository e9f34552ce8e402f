"""``LiteLLMProvider``: models LiteLLM can reach (Bedrock, Vertex, Azure, and about a hundred
more), for breadth. An optional extra (``pip install 'lash-nb-core[litellm]'``), never a core
dependency: LiteLLM and its dependencies are large, and the native providers cover OpenAI,
Anthropic and Gemini without it.

Theory of operation
- One call is ``litellm.acompletion(model=..., messages=..., stream=True)`` with the Chat
  Completions messages the OpenAI-compatible provider sends (``chat_messages``) and
  ``stream_options.include_usage``; LiteLLM translates them for the model's own API. Its
  chunks are OpenAI-shaped and fold through the same ``ChatAccumulator`` (text, reasoning,
  tool-call deltas, usage once from the final chunk).
- LiteLLM's own retries are off (``num_retries=0``, ``max_retries=0``): the runtime's retry
  ladder decides, once, from the classified failure.
- Failures: LiteLLM raises OpenAI-style exceptions carrying ``status_code``; they are
  classified by the one classifier (``classify.classify_http_error``): 429, quota, 5xx,
  overload, auth, and ``context_overflow`` (LiteLLM's ``ContextWindowExceededError`` or the
  provider's wording). Connection errors and timeouts retry. Every message is scrubbed of the
  key (when one is passed), of a password in ``api_base`` and of the values of credential
  headers in ``extra`` (ADR 146, 153), and of credential shapes; the repr and a connection
  error show ``api_base`` with ``[redacted]`` for its password. A failure LiteLLM raises
  before sending anything (no key anywhere: the OpenAI SDK's own error, wrapped as status 500)
  is one line saying what to set, not retried; a stream cut after some text (LiteLLM's
  ``MidStreamFallbackError``, its cause in ``original_exception``) is a dropped stream; on
  LiteLLM 1.60, which makes up a "stop" for a stream the server closed early, an OpenAI-style
  route that received no finish_reason is an incomplete response (ADR 0222).
- A user and password in ``api_base`` are sent as basic auth, taken out of the URL into an
  ``Authorization`` header LiteLLM passes on (``extra_headers``): what httpx (LiteLLM 1.60's
  transport), requests and lash_nb's own HTTP providers do with them. LiteLLM 1.110's aiohttp
  transport refuses a URL's credentials beside the ``Authorization`` header it sets for the
  key, so left in the URL every call failed (ADR 209). Beside an explicit ``Authorization``
  header in ``extra`` they are a ``ConfigurationError``: two values for one header.
- LiteLLM is told to use its bundled price map (``LITELLM_LOCAL_MODEL_COST_MAP``, unless set):
  importing it would otherwise fetch one from the network.
- Keys: ``api_key=`` if given, else whatever LiteLLM reads from the environment for the model's
  provider (``AWS_*``, ``AZURE_*``, ``VERTEXAI_*``, ...). lash_nb never reads or stores them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from .._core.llm import (
    Completed,
    LlmRequest,
    LlmStreamEvent,
    LlmTransportError,
    ProviderFailureKind,
)
from .._core.secrets import Scrubber
from .._errors import ConfigurationError
from . import classify
from .exchange import credentials, shown_url
from .openai_compat import ChatAccumulator, chat_messages, chat_tools
from .redaction import DeltaScrub, scrubbed_response

KIND = "litellm"


def _litellm() -> Any:
    import importlib
    import os

    # LiteLLM fetches its model price map from the network when imported, unless told not to;
    # lash_nb opens no connection the user did not ask for
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        return importlib.import_module("litellm")  # optional: not imported for type checks
    except ImportError as err:
        raise ConfigurationError(
            "LiteLLMProvider needs LiteLLM; pip install 'lash-nb-core[litellm]'") from err


def _headers(extra: Mapping[str, Any]) -> dict[str, str]:
    """The headers LiteLLM sends besides its own: ``extra_headers`` and ``headers``."""
    out: dict[str, str] = {}
    for name in ("extra_headers", "headers"):
        given = extra.get(name)
        if isinstance(given, Mapping):
            out.update({str(k): v for k, v in given.items() if isinstance(v, str)})
    return out


def _basic_auth(api_base: str | None) -> tuple[str | None, str | None]:
    """``api_base`` without its user and password, and the ``Authorization`` value they make
    (``Basic base64(user:password)``, unquoted as httpx does); ``(api_base, None)`` when the
    URL carries none."""
    if not api_base:
        return api_base, None
    parts = urlsplit(api_base)
    if not (parts.username or parts.password):  # as httpx: "http://@host" sends none
        return api_base, None
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    host = parts.netloc.rpartition("@")[2]
    return (urlunsplit(parts._replace(netloc=host)),
            "Basic " + base64.b64encode(pair.encode()).decode())


class LiteLLMProvider:
    """A model through LiteLLM: ``LiteLLMProvider("bedrock/anthropic.claude-3-5-sonnet...")``.
    ``api_base`` / ``api_key`` go to LiteLLM as given; ``extra`` adds LiteLLM arguments."""

    kind = KIND

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 timeout: float = 300.0, extra: Mapping[str, Any] | None = None) -> None:
        if not model:
            raise ConfigurationError("LiteLLMProvider needs a model, e.g. 'bedrock/...' or "
                                     "'azure/<deployment>'")
        self.model = model
        self.default_model = model
        self.api_base = api_base
        self.timeout = timeout
        self._api_key = api_key
        self._extra = dict(extra or {})
        self._send_base, self._basic = _basic_auth(api_base)
        headers = _headers(self._extra)
        if self._basic and any(name.lower() == "authorization" for name in headers):
            raise ConfigurationError(
                f"LiteLLMProvider: api_base {shown_url(api_base or '')} carries a user and "
                "password (basic auth) and extra sets an Authorization header too: both are "
                "the Authorization header; keep one")
        # a gateway's password in api_base and its key in a header are secrets too (ADR 153)
        also = credentials(api_base or "", headers)
        key = self._extra.get("api_key")
        self._scrubber = Scrubber([*([api_key] if api_key else []), *also,
                                   *([key] if isinstance(key, str) and key else [])])

    def __repr__(self) -> str:
        key = "set" if self._api_key else "from the environment"
        base = shown_url(self.api_base) if self.api_base else None
        return f"LiteLLMProvider(model={self.model!r}, api_base={base!r}, api_key={key})"

    def scrub(self, text: str) -> str:
        return self._scrubber.scrub(text)

    def scrub_value(self, value: Any) -> Any:
        """``value`` (a tool's output: the user's data) without this provider's key, in any
        encoding; every other value, credential-shaped or not, stays as it is."""
        return self._scrubber.scrub_value(value)

    def arguments(self, request: LlmRequest) -> dict[str, Any]:
        """The keyword arguments of ``litellm.acompletion`` (the key left out)."""
        args: dict[str, Any] = {
            "model": request.model or self.model, "messages": chat_messages(request),
            "stream": True, "stream_options": {"include_usage": True}, "timeout": self.timeout,
            "num_retries": 0, "max_retries": 0,
        }
        if request.tools:
            args.update(chat_tools(request))
        if request.max_output_tokens:
            args["max_tokens"] = request.max_output_tokens
        if self._send_base:
            args["api_base"] = self._send_base  # its user and password go as a header
        args.update(self._extra)
        return args

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]:
        litellm = _litellm()
        args = self.arguments(request)
        if self._api_key:
            args["api_key"] = self._api_key
        if self._basic:
            args["extra_headers"] = {**(args.get("extra_headers") or {}),
                                     "Authorization": self._basic}
        acc = ChatAccumulator()
        guard = DeltaScrub(self._scrubber)  # a key split across deltas is held back, as HTTP's
        failure: LlmTransportError | None = None
        response: Any = None
        try:
            response = await litellm.acompletion(**args)
            async for chunk in response:
                data = chunk.model_dump() if hasattr(chunk, "model_dump") else dict(chunk)
                for choice in data.get("choices") or ():
                    if choice.get("index") is None:  # LiteLLM leaves the first chunk's unset
                        choice["index"] = 0
                for event in guard.apply(acc.apply(data)):
                    yield event
        except LlmTransportError as err:
            failure = err
        except Exception as exc:  # LiteLLM's (OpenAI-style) exceptions, classified once
            failure = self._classify(exc, output_started=acc.started)
        if failure is None and (acc.finish_reason is None or _made_up_finish(response)):
            failure = classify.missing_terminal_error(KIND, "a finish_reason", request_id=None,
                                                      output_started=acc.started)
        for event in guard.flush(failed=failure is not None):
            yield event
        if failure is not None:
            raise failure
        yield Completed(scrubbed_response(self._scrubber, acc.response(None)))

    def _classify(self, exc: BaseException, *, output_started: bool) -> LlmTransportError:
        name = type(exc).__name__
        message = self.scrub(str(exc))
        causes = _causes(exc)
        if causes & _TIMEOUTS:  # the MRO names: a TimeoutError subclass too
            return classify.timeout_error(KIND, "response", self.timeout,
                                          output_started=output_started)
        if "MidStreamFallbackError" in causes:  # the server's stream ended early (1.110)
            cut = getattr(exc, "original_exception", None)  # what it says, once
            return classify.dropped_stream_error(KIND, cut if isinstance(cut, BaseException)
                                                 else exc, request_id=None,
                                                 output_started=output_started,
                                                 scrub=self.scrub)
        unsent = _refused_before_sending(exc)
        if unsent is not None and not output_started:
            return self._not_sent(unsent)
        status = getattr(exc, "status_code", None)
        if name == "ContextWindowExceededError":
            status = 400 if not isinstance(status, int) else status
            message = f"context_length_exceeded: {message}"
        # LiteLLM reports a connection it could not make as a status 500 error (APIError in
        # 1.60, InternalServerError in 1.110) caused by OpenAI's APIConnectionError: no
        # server answered, so it is not "a server error" (the status alone said so)
        if causes & _NOT_CONNECTED or not isinstance(status, int) or status < 400:
            if output_started:
                return classify.dropped_stream_error(KIND, exc, request_id=None,
                                                     output_started=True, scrub=self.scrub)
            return classify.connect_error(KIND, exc, shown_url(self.api_base or self.model),
                                          scrub=self.scrub)
        body = json.dumps({"error": {"message": message,
                                     "code": getattr(exc, "code", None) or name}})
        hint = "the key LiteLLM uses for this model"
        if self._basic:
            hint = ("the user and password in api_base (sent as basic auth, in the "
                    f"Authorization header) and {hint}")
        err = classify.classify_http_error(status, httpx.Headers(), body, provider=KIND,
                                           key_hint=hint, scrub=self.scrub)
        err.output_started = output_started
        return err

    def _not_sent(self, cause: BaseException) -> LlmTransportError:
        """LiteLLM (or the SDK inside it) refused the call before any request went out: a
        setting is wrong, and every retry would fail the same way."""
        said = " ".join(self.scrub(str(cause)).split())[:240]
        credential = any(w in said.lower() for w in ("api_key", "credential", "api key"))
        kind = (ProviderFailureKind.AUTH if credential
                else ProviderFailureKind.VALIDATION)
        what = ("give LiteLLMProvider its api_key or set the key variable LiteLLM reads for "
                f"{self.model}" if credential else "check its api_base, api_key and extra")
        return LlmTransportError(
            f"{KIND} did not send the request ({type(cause).__name__}: {said}); no server was "
            f"asked: {what}; retrying will not help",
            kind=kind, retryable=False, code="not_sent")

    async def aclose(self) -> None:
        return None


_TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "TimeoutException", "ReadTimeout",
                       "ConnectTimeout", "TimeoutError"})
_NOT_CONNECTED = frozenset({"APIConnectionError", "ConnectError", "ConnectionError",
                            "ClientConnectorError", "RemoteProtocolError"})


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, as LiteLLM chains them (its exception, its provider error,
    the SDK's, the transport's, the socket's; a ``MidStreamFallbackError`` keeps its cause in
    ``original_exception``); a cycle or a chain longer than 12 stops the walk."""
    out: list[BaseException] = []
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(seen) < 12:
        seen.add(id(link))
        out.append(link)
        original = getattr(link, "original_exception", None)
        link = link.__cause__ or (original if isinstance(original, BaseException)
                                  else None) or link.__context__
    return out


# routes whose chunks go through LiteLLM's OpenAI chunk reader, which records the server's
# finish_reason when one arrives (``received_finish_reason``)
_OPENAI_CHUNKS = frozenset({"openai", "azure", "hosted_vllm", "openrouter", "groq", "deepseek"})


def _made_up_finish(response: Any) -> bool:
    """LiteLLM 1.60 ends a stream that the server closed early with a ``finish_reason`` of
    its own ("stop"); 1.110 raises ``MidStreamFallbackError`` instead. On a route whose
    server always sends one, no received reason means the answer was cut (ADR 0222)."""
    if getattr(response, "custom_llm_provider", None) not in _OPENAI_CHUNKS:
        return False
    received = (getattr(response, "received_finish_reason", "unknown"),
                getattr(response, "intermittent_finish_reason", None))
    return received == (None, None)


def _causes(exc: BaseException) -> frozenset[str]:
    """The class names (each class's whole MRO) of ``exc`` and of its causes."""
    return frozenset(c.__name__ for link in _chain(exc) for c in type(link).__mro__)


# a server's answer somewhere below LiteLLM's own exception (whose classes derive from the
# OpenAI SDK's status errors whether or not a server answered)
_ANSWERED = frozenset({"HTTPStatusError", "APIStatusError", "ClientResponseError"})


def _refused_before_sending(exc: BaseException) -> BaseException | None:
    """The root cause when the call failed before any request went out: the OpenAI SDK's own
    ``OpenAIError`` (no key: "Missing credentials") or a plain ``ValueError`` (aiohttp: a
    URL's credentials beside an Authorization header), with no server's answer in the chain.
    None otherwise (a subclass, a decode error of an answer, is not one)."""
    chain = _chain(exc)
    if any(c.__name__ in _ANSWERED for link in chain[1:] for c in type(link).__mro__):
        return None
    root = chain[-1]
    if type(root) is ValueError or (type(root).__name__ == "OpenAIError"
                                    and type(root).__module__.split(".")[0] == "openai"):
        return root
    return None

