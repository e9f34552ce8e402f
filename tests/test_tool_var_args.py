"""``@tool`` on a function whose parameters are ``*args`` / ``**kwargs``.

A model calls a tool with named arguments (a JSON object), so ``*args`` can never be filled:
``@tool def total(*numbers)`` made a tool the model could only call with no numbers, and a
function wrapped by a decorator without ``functools.wraps`` (signature ``(*args, **kwargs)``)
became a tool showing no parameters at all, with ``wrapper`` as its name. Both are now one-line
errors at decoration that say what to write. ``**labels: str`` alone is a sensible tool (any
named values of one type): its schema says so and the values are coerced to the type.
"""

from __future__ import annotations

import functools
import json

import pytest

from lash_nb import LashCore, run_sync, tool
from lash_nb._errors import ConfigurationError
from lash_nb.testing import scripted, tool_call


def _one_line_error(fn, **options) -> str:
    with pytest.raises(ConfigurationError) as info:
        tool(**options)(fn) if options else tool(fn)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_function_with_only_star_args_is_refused_saying_to_name_the_parameters():
    def total(*numbers: float) -> float:
        """Add numbers."""
        return sum(numbers)

    assert _one_line_error(total) == (
        "tool 'total' takes only *numbers, which a model cannot give (it calls a tool with "
        "named arguments); name the parameters, e.g. def total(numbers: list[float]) or "
        "def total(a: float, b: float)")


def test_a_wrapper_without_functools_wraps_is_refused_saying_so():
    def logged(fn):
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper

    @logged
    def lookup(q: str) -> str:
        return q

    assert _one_line_error(lookup, name="lookup") == (
        "tool 'lookup' takes only (*args, **kwargs), which tells a model nothing of what to "
        "give: a decorator without @functools.wraps(fn) hides the function's parameters; add "
        "it to the decorator, or name the parameters")

    def logged_well(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper

    def find(q: str) -> str:
        return q

    good = tool(logged_well(find))
    assert (good.name, good.manifest.input_schema["properties"]) == ("find", {"q": {"type": "string"}})


def test_star_args_beside_named_parameters_is_kept_empty_and_not_shown():
    def f(x: int, *rest: str) -> int: ...
    assert tool(f).manifest.input_schema == {
        "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
        "additionalProperties": False}


def test_only_typed_kwargs_shows_their_type_and_coerces_the_values():
    seen = []

    @tool
    def set_counts(**counts: int) -> str:
        """Set named counters."""
        seen.append(counts)
        return "ok"

    assert set_counts.manifest.input_schema == {
        "type": "object", "properties": {}, "additionalProperties": {"type": "integer"}}

    async def body():
        provider = scripted([tool_call("set_counts", json.dumps({"apples": "3", "pears": 4}), "c1")],
                            [tool_call("set_counts", json.dumps({"apples": "many"}), "c2")],
                            "done")
        core = LashCore.builder().provider(provider).model("m").tools(set_counts).build()
        s = await core.session("s").open()
        out = await s.turn("count").run()
        await core.close()
        return out

    out = run_sync(body())
    assert seen == [{"apples": 3, "pears": 4}]  # "3" became 3; "many" never reached it
    bad = out.result.tool_calls[1]
    assert bad.status == "failure"
    assert bad.output.startswith("ToolArgumentsInvalid: invalid arguments for tool 'set_counts': "
                                 "apples: Input should be a valid integer")


def test_untyped_kwargs_alone_take_any_named_values():
    seen = []

    @tool
    def tag(**labels) -> str:
        """Tag the row with the given labels."""
        seen.append(labels)
        return "ok"

    assert tag.manifest.input_schema == {"type": "object", "properties": {}}

    async def body():
        provider = scripted([tool_call("tag", json.dumps({"color": "red", "n": 2}), "c1")], "done")
        core = LashCore.builder().provider(provider).model("m").tools(tag).build()
        s = await core.session("s").open()
        await s.turn("tag").run()
        await core.close()

    run_sync(body())
    assert seen == [{"color": "red", "n": 2}]


def test_a_parameter_named_fn_reaches_a_plain_function() -> None:
    """``def apply(fn: str)`` failed with "got multiple values for argument 'fn'": the
    helper that ran it on a thread took its own ``fn`` from the keyword arguments."""
    import asyncio

    from lash_nb import LashCore, tool
    from lash_nb.providers import FunctionProvider
    from lash_nb.testing import tool_call

    @tool
    def apply(fn: str, label: str = "x") -> str:
        """Apply a named function."""
        return f"applied {fn} as {label}"

    def model(request):  # type: ignore[no-untyped-def]
        if request.messages[-1].tool_results():
            return "done"
        return [tool_call("apply", '{"fn": "sqrt", "label": "root"}', "c1")]

    async def body():  # type: ignore[no-untyped-def]
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(apply).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        await core.close()
        return out

    out = asyncio.run(body())
    assert out.result.tool_calls[0].output == "applied sqrt as root"
