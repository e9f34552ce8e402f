"""``@tool`` schemas: what a model is shown for each kind of parameter (hand-written expected
schemas), parameter descriptions from the three docstring styles, and one-line errors for
tools that cannot be registered (same name twice, types with no schema)."""

from __future__ import annotations

import datetime
import enum
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
from typing_extensions import TypedDict

from lash_nb import LashCore, tool
from lash_nb._core.tools import ToolRegistry
from lash_nb._errors import ConfigurationError, ToolNameConflict
from lash_nb.testing import scripted


@dataclass
class Point:
    x: int
    y: int


class Box(TypedDict):
    label: str
    weight: float


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


POINT = {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
         "required": ["x", "y"], "additionalProperties": False}
# pydantic 2.12 does not pass the arguments' "no unknown keys" on to a plain dataclass; 2.14 does
POINT_2_12 = {k: v for k, v in POINT.items() if k != "additionalProperties"}


def schema_of(fn):
    return tool(fn).manifest.input_schema


def one_param(prop, *, required=True, defs=None):
    out = {"type": "object", "properties": {"v": prop}, "additionalProperties": False}
    if required:
        out["required"] = ["v"]
    if defs:
        out["$defs"] = defs
    return out


def test_a_dataclass_parameter_is_a_shared_definition():
    def f(v: Point): ...
    assert schema_of(f) in (one_param({"$ref": "#/$defs/Point"}, defs={"Point": POINT}),
                            one_param({"$ref": "#/$defs/Point"}, defs={"Point": POINT_2_12}))


def test_a_typeddict_parameter_lists_its_keys():
    def f(v: Box): ...
    box = {"type": "object", "properties": {"label": {"type": "string"},
                                            "weight": {"type": "number"}},
           "required": ["label", "weight"], "additionalProperties": False}
    assert schema_of(f) == one_param({"$ref": "#/$defs/Box"}, defs={"Box": box})


def test_date_and_uuid_are_formatted_strings():
    def f(v: datetime.date): ...
    def g(v: uuid.UUID): ...
    assert schema_of(f) == one_param({"type": "string", "format": "date"})
    assert schema_of(g) == one_param({"type": "string", "format": "uuid"})


def test_a_tuple_has_one_schema_per_position():
    def f(v: tuple[int, str]): ...
    assert schema_of(f) == one_param({
        "type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2, "maxItems": 2})


def test_a_dict_keeps_its_value_type():
    def f(v: dict[str, int]): ...
    assert schema_of(f) == one_param({"type": "object", "additionalProperties": {"type": "integer"}})


def test_a_list_of_dataclasses_references_the_item_schema():
    def f(v: list[Point]): ...
    items = {"type": "array", "items": {"$ref": "#/$defs/Point"}}
    assert schema_of(f) in (one_param(items, defs={"Point": POINT}),
                            one_param(items, defs={"Point": POINT_2_12}))


def test_optional_literal_and_enum():
    def f(v: int | None = None): ...
    def g(v: Literal["asc", "desc"] = "asc"): ...
    def h(v: Color): ...
    assert schema_of(f) == one_param({"anyOf": [{"type": "integer"}, {"type": "null"}],
                                      "default": None}, required=False)
    assert schema_of(g) == one_param({"type": "string", "enum": ["asc", "desc"], "default": "asc"},
                                     required=False)
    assert schema_of(h) == one_param({"$ref": "#/$defs/Color"},
                                     defs={"Color": {"type": "string", "enum": ["red", "blue"]}})


def test_google_numpy_and_sphinx_docstrings_describe_parameters():
    def google(a: int, b: str = "x"):
        """Add things.

        Args:
            a (int): the first
                one, continued
            b: the second
        Returns:
            nothing: really
        """

    def numpy(a: int, b: str = "x"):
        """Add things.

        Parameters
        ----------
        a : int
            the first
            one, continued
        b : str
            the second

        Returns
        -------
        None
        """

    def sphinx(a: int, b: str = "x"):
        """Add things.

        :param a: the first
            one, continued
        :param str b: the second
        :returns: nothing
        """

    for fn in (google, numpy, sphinx):
        m = tool(fn).manifest
        assert m.description == "Add things.", fn.__name__
        assert m.input_schema["properties"] == {
            "a": {"type": "integer", "description": "the first one, continued"},
            "b": {"type": "string", "description": "the second", "default": "x"},
        }, fn.__name__


def test_annotated_text_describes_a_parameter_and_context_is_not_shown():
    def f(q: Annotated[str, "what to look for"], context=None): ...
    assert schema_of(f) == {"type": "object", "additionalProperties": False, "required": ["q"],
                            "properties": {"q": {"type": "string",
                                                 "description": "what to look for"}}}


def test_a_parameter_named_like_a_pydantic_method_keeps_its_name():
    def f(schema: str, json: int = 1): ...
    props = schema_of(f)["properties"]
    assert props == {"schema": {"type": "string"}, "json": {"type": "integer", "default": 1}}


def test_kwargs_tools_accept_extra_arguments():
    def f(a: int, **rest): ...
    assert schema_of(f) == {"type": "object", "properties": {"a": {"type": "integer"}},
                            "required": ["a"]}


def test_a_type_with_no_schema_is_a_one_line_error_at_decoration():
    class Opaque:
        pass

    def f(v: Opaque): ...
    with pytest.raises(ConfigurationError) as err:
        tool(f)
    assert "tool 'f'" in str(err.value) and "\n" not in str(err.value)


def test_two_tools_with_one_name_are_a_one_line_error_at_registration():
    @tool
    def lookup(q: str) -> str:
        return q

    @tool(name="lookup")
    def other(q: str) -> str:
        return q

    with pytest.raises(ToolNameConflict) as err:
        LashCore.builder().provider(scripted("x")).model("m").tools(lookup, other)
    msg = str(err.value)
    assert "'lookup'" in msg and "name=" in msg and "\n" not in msg

    async def body():
        core = LashCore.builder().provider(scripted("x")).model("m").tools(lookup).build()
        s = await core.session("s").open()
        before = s.tools().state()
        with pytest.raises(ToolNameConflict):
            s.tools().add_provider(other)
        assert s.tools().state() == before  # nothing changed
    import asyncio
    asyncio.run(body())


def test_re_adding_a_source_under_its_id_refreshes_it():
    class Listing:
        def __init__(self, names):
            self.names = names

        def tool_manifests(self):
            from lash_nb._core.tools import ToolManifest
            return [ToolManifest(f"x:{n}", n, "", {"type": "object"}) for n in self.names]

        async def execute(self, name, args, context):
            return name

    reg = ToolRegistry()
    src = Listing(["a", "b"])
    sid = reg.add_source(src)
    gen = reg.generation
    src.names = ["b", "c"]
    reg.add_source(src, sid)
    assert [m.name for m in reg.members()] == ["b", "c"] and reg.generation == gen + 1
