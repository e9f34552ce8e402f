"""``@tool``: a typed Python function as a tool, its schema and its argument validation.

Theory of operation
- At decoration the signature becomes a pydantic model (one field per parameter, its
  docstring description and default); the manifest's input schema is that model's JSON
  schema with shared types under ``$defs`` and no generated titles. Unknown arguments are
  refused (``additionalProperties: false``) unless the function takes ``**kwargs`` (then
  they are passed on, coerced to its annotation when it has one). A model gives named
  arguments only: ``*args`` stays empty, and a function with nothing but ``*args`` (or
  ``*args, **kwargs``: a decorator without ``functools.wraps``) is refused at decoration.
- On every call the model's arguments are validated and coerced to the declared types
  (``"3"`` -> ``3`` for ``n: int``, a dict -> ``Point`` for ``p: Point``) before the function
  runs. Invalid arguments raise :class:`~lash_nb._errors.ToolArgumentsInvalid`, which the
  turn returns to the model as an error result naming each bad field, so it can correct
  the call.
- Retry bound: a tool takes at most ``max_retries`` invalid calls per turn (default 3,
  ``@tool(max_retries=...)``). The call that reaches the bound, and every later call of that
  tool in the same turn, is refused without running and tells the model to stop calling it
  (ADR 35). The count is kept per (session, turn) for the last few hundred turns.
- Return value: converted the way pydantic writes JSON (a pydantic model or a dataclass
  as an object, dates as ISO text, enums as their values, sets as lists), so the model reads
  JSON and the store holds an object, not Python's repr. A numpy array or scalar becomes
  numbers (``tolist()``: numpy's repr elides an array's middle with "..."), a pandas Series
  a one-column DataFrame (shown as a DataFrame is). Inside a container or a model, a value
  none of these covers becomes its ``str()``, the rest stays JSON (bytes that are not UTF-8
  too: pydantic fails on them rather than calling back). What pydantic cannot write
  at the top (a DataFrame, a figure, bytes) and a container past :data:`_PLAIN_ITEMS` items
  (bounded by items where it enters the session) are returned as they are. A dict whose
  keys would be one JSON key (``{1: "a", "1": "b"}``) is its ``str()``, which keeps both
  values (ADR 219).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import re
import threading
import typing
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core.approval import ApprovalPolicy, approval_policy
from .._core.json_text import keyed_as_text
from .._core.tool_output import check_max_output
from .._core.tools import ToolContext, ToolManifest, ToolProvider
from .._errors import ConfigurationError, ToolArgumentsInvalid
from .docstrings import parse_docstring
from .mcp import MCPServer

DEFAULT_MAX_RETRIES = 3
_TURNS_REMEMBERED = 512
_CONTEXT_NAMES = ("context", "ctx")


def _strip_titles(schema: Any, *, properties: bool = False) -> Any:
    """pydantic's generated ``title`` keys say nothing the names do not; drop them (never a
    property that happens to be called ``title``)."""
    if isinstance(schema, list):
        return [_strip_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and not properties and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {k: _strip_titles(v) for k, v in value.items()}
        elif key in ("default", "const", "enum", "examples", "required"):
            out[key] = value
        else:
            out[key] = _strip_titles(value)
    return out


def _annotated_description(annotation: Any) -> str | None:
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, str):
                return meta
    return None


def _defined(fn: Callable[..., Any]) -> tuple[Any, frozenset[str]]:
    """What gives a callable's name, docstring and type hints (the function under a
    ``functools.partial``, a callable object's ``__call__``), and the keyword arguments a
    partial binds (not offered to the model)."""
    bound: set[str] = set()
    while isinstance(fn, functools.partial):
        bound |= set(fn.keywords)
        fn = fn.func
    plain = inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn)
    if not plain and not isinstance(fn, type) and callable(fn):
        return _Object(fn, type(fn).__call__), frozenset(bound)
    return fn, frozenset(bound)


class _Object:
    """A callable object seen as a function: its class's name and docstring (else its
    ``__call__``'s), its ``__call__``'s type hints."""

    def __init__(self, obj: Any, call: Any) -> None:
        self.__name__ = type(obj).__name__
        self.__doc__ = type(obj).__doc__ or call.__doc__
        self.hints_of = call


def _context_param(params: Mapping[str, inspect.Parameter], hints: Mapping[str, Any]) -> str | None:
    """The parameter annotated ``ToolContext`` (``Optional`` too), else one named ``context``
    or ``ctx`` with no annotation (or ``Any``); a ``context: str`` is the model's argument
    like any other."""
    for pname in params:
        hint = hints.get(pname)
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        if hint is ToolContext or ToolContext in typing.get_args(hint):
            return pname
    return next((n for n in _CONTEXT_NAMES
                 if n in params and (params[n].annotation is inspect.Parameter.empty
                                     or hints.get(n) is Any)), None)


class ArgumentsModel:
    """A function's parameters as a pydantic model: the JSON schema and the validator."""

    def __init__(self, fn: Callable[..., Any], param_docs: Mapping[str, str], name: str) -> None:
        import pydantic

        sig = inspect.signature(fn)
        defined, bound = _defined(fn)
        try:
            hints = typing.get_type_hints(getattr(defined, "hints_of", defined), include_extras=True)
        except Exception as err:
            raise ConfigurationError(
                f"tool {name!r}: its type hints cannot be resolved ({type(err).__name__}: {err}); "
                "define the types it names before decorating it"
            ) from None
        # the parameter the call's ToolContext is passed in (not the model's to give)
        self.context_name = _context_param(sig.parameters, hints)
        fields: dict[str, Any] = {}
        self.names: dict[str, str] = {}  # model field -> parameter name
        self.positional: list[str] = []  # positional-only parameters, in order
        self.var_keyword = False
        star: str | None = None  # the *args parameter
        extra: Any = None  # the annotation of **kwargs
        double = ""  # the **kwargs parameter
        for pname, p in sig.parameters.items():
            if pname in bound:
                continue  # bound by a partial: not the model's to give
            if p.kind is p.VAR_KEYWORD:
                self.var_keyword, double = True, pname
                extra = hints.get(pname)
                continue
            if p.kind is p.VAR_POSITIONAL:
                star = pname
                continue
            if pname == self.context_name:
                continue
            if p.kind is p.POSITIONAL_ONLY:
                self.positional.append(pname)
            annotation = hints.get(pname, Any)
            description = param_docs.get(pname) or _annotated_description(annotation)
            default = ... if p.default is inspect.Parameter.empty else p.default
            field_name = pname
            if pname.startswith("_") or hasattr(pydantic.BaseModel, pname):
                field_name = f"arg_{len(fields)}_{pname.lstrip('_')}"
            fields[field_name] = (annotation, pydantic.Field(default, alias=pname,
                                                             description=description))
            self.names[field_name] = pname
        if star is not None and not fields:
            _refuse_star_only(name, star, hints.get(star), double=double)
        config = pydantic.ConfigDict(extra="allow" if self.var_keyword else "forbid",
                                     arbitrary_types_allowed=True, populate_by_name=False)
        # typed **kwargs: the extra arguments are validated and coerced to their annotation
        annotations = {} if extra in (None, Any) else {"__pydantic_extra__": dict[str, extra]}
        base: type[pydantic.BaseModel] = type(f"{name}_base", (pydantic.BaseModel,),
                                              {"__annotations__": annotations,
                                               "model_config": config})
        try:
            self.model: type[pydantic.BaseModel] = pydantic.create_model(f"{name}_arguments", __base__=base, **fields)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a default JSON cannot show is left out
                schema = self.model.model_json_schema(by_alias=True)
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigurationError(
                f"tool {name!r}: a parameter type has no JSON schema ({first}); annotate it "
                "with a plain type, a dataclass, a TypedDict or a pydantic model"
            ) from None
        schema = _strip_titles(schema)
        schema.pop("description", None)  # a model docstring is not the tool's
        if self.var_keyword and not annotations:
            schema.pop("additionalProperties", None)
        self.schema: dict[str, Any] = {"type": "object", **schema}
        self._validate = self.model.model_validate
        self._error_type = pydantic.ValidationError

    def validate(self, args: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Coerced ``(positional, keyword)`` arguments, or ``ToolArgumentsInvalid``."""
        try:
            model = self._validate(args)
        except self._error_type as err:
            raise ToolArgumentsInvalid(_describe(err)) from None
        values = model.__dict__
        kwargs = {self.names[f]: v for f, v in values.items()}
        if self.var_keyword and model.__pydantic_extra__:
            kwargs.update(model.__pydantic_extra__)
        positional = [kwargs.pop(p) for p in self.positional]
        return positional, kwargs


_API_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _api_name(name: str) -> str:
    """``name`` when every model API takes it as a tool name (OpenAI's rule, the narrowest:
    letters, digits, ``_``, ``-``, 64 at most); else a one-line error suggesting one."""
    if _API_NAME.fullmatch(name):
        return name
    suggested = re.sub(r"[^A-Za-z0-9_-]", "_", name).strip("_")[:64] or "tool"
    raise ConfigurationError(
        f"tool name {name!r} is not one model APIs take (letters, digits, '_' and '-', at most "
        f"64); name it e.g. @tool(name={suggested!r})")


def _refuse_star_only(name: str, star: str, annotation: Any, *, double: str) -> None:
    """A function whose only parameters are ``*args`` (and ``**kwargs``): a one-line error."""
    if double:
        raise ConfigurationError(
            f"tool {name!r} takes only (*{star}, **{double}), which tells a model nothing of "
            "what to give: a decorator without @functools.wraps(fn) hides the function's "
            "parameters; add it to the decorator, or name the parameters")
    kind = getattr(annotation, "__name__", None) if annotation not in (None, Any) else None
    kind = kind or "str"
    raise ConfigurationError(
        f"tool {name!r} takes only *{star}, which a model cannot give (it calls a tool with "
        f"named arguments); name the parameters, e.g. def {name}({star}: list[{kind}]) or "
        f"def {name}(a: {kind}, b: {kind})")


def _describe(err: Any) -> str:
    """One line per bad field: where, what is wrong, what was given (shortened)."""
    parts = []
    for e in err.errors(include_url=False)[:10]:
        where = ".".join(str(x) for x in e.get("loc", ())) or "(arguments)"
        given = "" if e.get("type") == "missing" else f" (got {_short(e.get('input'))})"
        parts.append(f"{where}: {e.get('msg', 'invalid')}{given}")
    return "; ".join(parts)


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FunctionTool:
    """A typed Python function (sync or async) exposed as a tool. Made by :func:`tool`."""

    validates_arguments = True  # missing arguments are its validation's (and retry bound's)
    keys_as_json = True  # its outputs' dict keys are text already (_plain; ADR 219)

    def __init__(
        self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
        inline: bool = False, max_retries: int = DEFAULT_MAX_RETRIES,
        approval: str | ApprovalPolicy | None = None, max_output: int | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"@tool needs a function, got {type(fn).__name__}")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 1:
            raise ConfigurationError("max_retries must be a positive int (invalid calls per turn)")
        defined, _bound = _defined(fn)
        summary, param_docs = parse_docstring(defined.__doc__)
        self.fn = fn
        self.inline = inline
        self.name = _api_name(name or defined.__name__)
        self.max_retries = max_retries
        # characters of its output the model is sent (None: the session's; ADR 174)
        self.max_output = None if max_output is None else check_max_output(
            max_output, f"@tool max_output of {self.name!r}")
        self.approval = None if approval is None else approval_policy(
            approval, what=f"@tool approval of {self.name!r}")
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.arguments = ArgumentsModel(fn, param_docs, self.name)
        self.context_name = self.arguments.context_name
        self.wants_context = self.context_name is not None
        self.manifest = ToolManifest(
            id=f"tool:{self.name}",
            name=self.name,
            description=description if description is not None else summary,
            input_schema=self.arguments.schema,
        )
        self._invalid: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.__doc__ = defined.__doc__
        self.__name__ = self.name

    @property
    def runs_on_thread(self) -> bool:
        """A plain function (not ``inline``): a stop cannot cut it, only stop waiting for it."""
        return not self.is_async and not self.inline

    def tool_manifests(self) -> Sequence[ToolManifest]:
        return (self.manifest,)

    def approval_for(self, name: str) -> ApprovalPolicy | None:
        """The tool's own approval policy (None: the session's default decides)."""
        return self.approval

    def _check(self, args: Mapping[str, Any], context: ToolContext) -> tuple[list[Any], dict[str, Any]]:
        key = (context.session_id, context.turn_id)
        used = self._invalid.get(key, 0)
        if used >= self.max_retries:
            raise ToolArgumentsInvalid(
                f"tool {self.name!r} is not run again in this turn after {used} calls with "
                "invalid arguments; answer without it")
        try:
            return self.arguments.validate(args)
        except ToolArgumentsInvalid as err:
            used += 1
            self._invalid[key] = used
            self._invalid.move_to_end(key)
            while len(self._invalid) > _TURNS_REMEMBERED:
                self._invalid.popitem(last=False)
            left = self.max_retries - used
            advice = (f"fix the arguments and call {self.name!r} again ({left} "
                      f"{'try' if left == 1 else 'tries'} left in this turn)" if left else
                      f"that was the last try: do not call {self.name!r} again in this turn")
            raise ToolArgumentsInvalid(
                f"invalid arguments for tool {self.name!r}: {err}; {advice}") from None

    def check_arguments(self, args: Mapping[str, Any], context: ToolContext) -> None:
        """Validate without running (``ToolArgumentsInvalid``, counted in the retry bound):
        a call waiting for approval is checked first, so nobody is asked about a bad call."""
        self._check(args, context)

    async def execute(self, name: str, args: Mapping[str, Any], context: ToolContext) -> Any:
        positional, kwargs = self._check(args, context)
        if self.context_name is not None:
            kwargs[self.context_name] = context
        if self.is_async:
            called = self.fn(*positional, **kwargs)
            if inspect.isasyncgen(called):  # an async generator: what it yields
                return _plain([item async for item in called])
            return _plain(await called)
        # a sync tool runs on a worker thread so the loop (widgets, Stop) stays live;
        # inline=True runs it on the loop for trivial functions
        if self.inline:
            result = _drained(self.fn, *positional, **kwargs)
        else:
            result = await _on_daemon_thread(self.name, _drained, self.fn, *positional,
                                             **kwargs)
        if inspect.isawaitable(result):
            return _plain(await result)
        return _plain(result)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tool {self.name}: {self.manifest.description[:50]!r}>"


_PLAIN_ITEMS = 10_000  # a longer list or dict is left to the session's bound, cut by items


def _plain(value: Any) -> Any:
    """A function's return as JSON holds it, where pydantic can write it (the module
    docstring); else ``value`` itself."""
    if value is None or isinstance(value, (str, int, float, bytes, bytearray, memoryview)):
        return value
    if _is_series(value):
        return value.to_frame()
    if _is_numpy(value):
        value = value.tolist()
    containers = (list, tuple, dict, set, frozenset)
    if isinstance(value, containers) and len(value) > _PLAIN_ITEMS:
        return value
    value = keyed_as_text(value)  # {1: "a", "1": "b"}: pydantic would keep one value (0219)
    if isinstance(value, str):
        return value
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value)
    except Exception:  # a DataFrame, a figure, bytes that are not UTF-8: shown as before
        pass
    if not isinstance(value, containers) and not dataclasses.is_dataclass(value) and not hasattr(
            type(value), "model_dump"):
        return value
    try:  # a value inside it pydantic cannot write: that one as numbers or text
        return to_jsonable_python(value, fallback=_inner)
    except Exception:
        pass
    try:  # bytes that are not UTF-8 inside it (pydantic fails on them): their str() (0201)
        return to_jsonable_python(_bytes_as_text(value), fallback=_inner)
    except Exception:
        return value


def _bytes_as_text(value: Any) -> Any:
    """``value`` with the bytes inside its lists, tuples, sets and dicts that are not UTF-8
    replaced by their ``str()`` (``b'\\x89PNG...'``); other values as they are."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return str(data)
        return data
    if isinstance(value, dict):
        return {k: _bytes_as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_bytes_as_text(v) for v in value]
    return value


def _inner(value: Any) -> Any:
    """A value inside a returned container that pydantic cannot write."""
    if _is_numpy(value):
        return value.tolist()
    if _is_series(value):
        return value.tolist()
    return str(value)


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and callable(getattr(value, "tolist", None))


def _is_series(value: Any) -> bool:
    return type(value).__name__ == "Series" and type(value).__module__.startswith("pandas") \
        and callable(getattr(value, "to_frame", None))


async def _on_daemon_thread(label: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(...)`` on a thread of its own, as ``asyncio.to_thread`` (the caller's context
    vars), but a daemon thread: a call a stop left running (Python cannot stop a thread) does
    not hold the interpreter's exit, as the loop's default executor's threads do (a script
    that stopped a turn hung in ``asyncio.run`` until the tool returned)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():  # the call was cancelled meanwhile: its result is dropped
            return
        if error is None:
            done.set_result(value)
        else:
            done.set_exception(error)

    def work() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = context.run(fn, *args, **kwargs)
        except BaseException as err:  # given to the awaiting call, as to_thread gives it
            error = err
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name=f"lash-tool-{label}", daemon=True).start()
    return await done


def _drained(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(...)``; a generator's items as a list (its body runs here, on the tool's thread),
    not the generator object, whose repr is all the model would read."""
    result = fn(*args, **kwargs)
    return list(result) if inspect.isgenerator(result) else result


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None,
    description: str | None = None, inline: bool = False, max_retries: int = DEFAULT_MAX_RETRIES,
    approval: str | ApprovalPolicy | None = None, max_output: int | None = None,
) -> Any:
    """Turn a typed function into a tool; the docstring gives the description and the
    per-argument descriptions (Google, NumPy or Sphinx style). Use as ``@tool`` or
    ``@tool(name=..., description=..., max_retries=...)``. Arguments are validated and
    coerced to the annotated types before the function runs; a tool takes ``max_retries``
    invalid calls per turn. Sync functions run on a worker thread (``inline=True``: on the
    event loop). A generator (``yield``, sync or async) gives the list of what it yields.
    A parameter annotated ``ToolContext`` (or named ``context`` / ``ctx`` without a type)
    receives the call's context and is not offered to the model. ``approval``:
    ``"always"`` (run), ``"ask"`` (wait for Approve / Deny) or ``"never"`` (deny); unset,
    the session's default applies (``session.approvals()``).
    ``max_output``: characters of its output the model is sent and the session keeps (unset:
    the session's, 65,536 by default); past it, the head and the tail around a line saying
    how much was left out (ADR 174)."""
    if max_output is not None:  # a bad value fails at the decorator, not at the function
        check_max_output(max_output, "@tool max_output")
    if fn is None:
        return lambda f: FunctionTool(f, name=name, description=description, inline=inline,
                                      max_retries=max_retries, approval=approval,
                                      max_output=max_output)
    return FunctionTool(fn, name=name, description=description, inline=inline,
                        max_retries=max_retries, approval=approval, max_output=max_output)


def as_tool_provider(obj: Any) -> ToolProvider:
    if isinstance(obj, FunctionTool):
        return obj
    if isinstance(obj, MCPServer) and not obj.running:
        raise ConfigurationError(
            f"MCP server {obj.name!r} is not started, so it has no tools yet: "
            "await session.tools().add_server(server), or await server.start() first")
    if callable(obj) and not hasattr(obj, "tool_manifests"):
        return FunctionTool(obj)
    if hasattr(obj, "tool_manifests") and hasattr(obj, "execute"):
        return obj  # type: ignore[no-any-return]
    raise TypeError(
        f"{obj!r} is not a tool: pass a function (optionally decorated with @tool) or an "
        "object with tool_manifests() and async execute(name, args, context)"
    )
