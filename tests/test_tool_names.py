"""``@tool`` names a model API refuses: spaces and punctuation, a lambda's ``<lambda>``, more
than 64 characters, a letter outside ASCII. OpenAI, Anthropic and Gemini take letters, digits,
``_`` and ``-`` (64 at most for OpenAI); a catalog with any other name made every turn of the
session fail with the API's 400. Now it is a one-line error at decoration naming a name to
use instead.
"""

from __future__ import annotations

import pytest

from lash_nb import LashCore, tool
from lash_nb._errors import ConfigurationError
from lash_nb.testing import scripted


@pytest.mark.parametrize("name, suggested", [
    ("my tool!", "my_tool"),
    ("naïve", "na_ve"),
    ("x" * 65, "x" * 64),
    ("weather.today", "weather_today"),
])
def test_a_name_no_model_api_takes_is_a_one_line_error_suggesting_one(name, suggested):
    def f(q: str) -> str:
        return q

    with pytest.raises(ConfigurationError) as info:
        tool(name=name)(f)
    message = str(info.value)
    assert message == (f"tool name {name!r} is not one model APIs take (letters, digits, '_' "
                       f"and '-', at most 64); name it e.g. @tool(name={suggested!r})")


def test_a_lambda_is_asked_for_a_name():
    with pytest.raises(ConfigurationError) as info:
        LashCore.builder().provider(scripted("x")).model("m").tools(lambda q: q)
    assert str(info.value) == ("tool name '<lambda>' is not one model APIs take (letters, "
                               "digits, '_' and '-', at most 64); name it e.g. "
                               "@tool(name='lambda')")
    named = tool(name="echo")(lambda q: q)
    assert named.name == "echo"


def test_names_model_apis_take_are_kept():
    for name in ("lookup", "get-weather", "a_1", "x" * 64):
        assert tool(name=name)(lambda q: q).name == name
