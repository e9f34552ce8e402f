"""``json_text.encoder``: the text (and the errors) of ``json.JSONEncoder(**options).encode``
with the C encoder built once. The expectation is the standard library's own encoder, built
per call as before; a store's log rows and node contents are this text, byte for byte."""

from __future__ import annotations

import asyncio
import enum
import json
import math
import threading

import pytest

from lash_nb._core.json_text import encoder

OPTIONS = [
    {"separators": (",", ":"), "default": str},  # rows.dumps, node contents
    {"separators": (",", ":"), "default": str, "check_circular": False},  # a log row's body
    {"sort_keys": True, "default": str},  # the commit hash
    {},  # json.dumps
    {"ensure_ascii": False, "check_circular": False, "default": repr, "allow_nan": False},
]


class Colour(str, enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "opaque <é>"

    __repr__ = __str__


VALUES = [
    None, True, 0, -1, 2**70, 1.5, 0.1, 1e16, 1e-5, -0.0, math.inf, -math.inf, math.nan,
    "", "plain", "quote \" backslash \\ newline \n tab \t nul \x00", "é ü 中文 😀 \ud800",
    [], {}, (), [1, [2, [3, {"a": None}]]], ("tuple", 1),
    {"z": 1, "a": 2, "m": {"y": [1.25, "x"], "b": False}},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"enum": Colour.RED, "opaque": Opaque(), "set": {1}, "bytes": b"\x01"},
    {"content": json.dumps({"id": "m1", "parts": [{"content": "{\"city\": \"Paris\"}"}]})},
]


def expected(options: dict, value: object) -> tuple[str, object]:
    try:
        return "text", json.JSONEncoder(**options).encode(value)
    except Exception as e:  # the error is the expectation
        return "error", (type(e), str(e))


def got(encode, value: object) -> tuple[str, object]:
    try:
        return "text", encode(value)
    except Exception as e:
        return "error", (type(e), str(e))


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(sorted(o)) or "defaults")
def test_same_text_and_errors_as_the_standard_encoder(options):
    encode = encoder(**options)
    for value in VALUES * 2:  # twice: the reused encoder, after a first use
        assert got(encode, value) == expected(options, value), value


def test_a_failed_encode_leaves_nothing_behind():
    """A circular value fails as before; the containers it had entered are not taken for a
    cycle by the next call (the stdlib's per-call markers; here that encoder is dropped)."""
    encode = encoder(separators=(",", ":"), default=str)
    inner = {"k": [1, 2]}
    loop: list = [inner]
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        encode(loop)
    assert encode([inner, inner]) == '[{"k":[1,2]},{"k":[1,2]}]'
    bad = {"x": inner, "y": 1}

    def boom(value: object) -> str:
        raise TypeError("no")

    raising = encoder(default=boom)
    with pytest.raises(TypeError, match="no"):
        raising([inner, object()])
    assert raising([inner, inner]) == '[{"k": [1, 2]}, {"k": [1, 2]}]'
    assert encode(bad) == '{"x":{"k":[1,2]},"y":1}'


def test_a_default_that_encodes_the_same_value_again():
    """``default`` calling the same encode on the same thread (a nested call) sees its own
    markers, as the stdlib's per-call encoder did: no false cycle."""
    shared = {"a": 1}
    encode = None

    class Holder:
        def __str__(self) -> str:
            assert encode is not None
            return encode(shared)

    encode = encoder(separators=(",", ":"), default=str)
    value = {"shared": shared, "holder": Holder()}
    assert encode(value) == json.JSONEncoder(separators=(",", ":"), default=str).encode(value)


def test_threads_encoding_the_same_containers_at_once():
    """Each thread has its markers: two threads encoding the same dict at once (a ``default``
    that lets the other run meanwhile) never see a false cycle."""
    shared = {"list": [1, 2, 3]}
    started = threading.Barrier(2)

    class Slow:
        def __str__(self) -> str:
            started.wait(timeout=10)  # both threads are inside ``shared`` now
            return "slow"

    encode = encoder(separators=(",", ":"), default=str)
    value = {"shared": shared, "slow": Slow()}
    want = json.JSONEncoder(separators=(",", ":"), default=str).encode({"shared": shared, "slow": "slow"})
    results: list[object] = []

    def run() -> None:
        results.append(got(encode, value))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert results == [("text", want), ("text", want)]


def test_a_stored_turn_is_the_text_the_standard_encoder_writes(tmp_path):
    """A user's turn on a DuckDB file: its commit_log rows, read back raw, are the text the
    standard encoder makes of their decoded bodies (the stored format is unchanged), and
    every node's stored content is too."""
    from lash_nb import LashCore, tool
    from lash_nb._core.llm import LlmPart, LlmResponse, TerminalReason
    from lash_nb._core.records import PartKind
    from lash_nb._core.usage import TokenUsage
    from lash_nb._store.duckdb import commit as commits
    from lash_nb.providers import FunctionProvider

    @tool
    async def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city} — 21 °C \"dry\""

    def model(request):
        last = request.messages[-1]
        if last.parts and last.parts[-1].kind is PartKind.TOOL_RESULT:
            return LlmResponse(parts=(LlmPart.text_part("Sunny in Zürich: \"21 °C\"\n😀"),),
                               usage=TokenUsage(100, 10))
        return LlmResponse(parts=(LlmPart.tool_call("c1", "weather", '{"city": "Zürich"}'),),
                           usage=TokenUsage(100, 10), terminal_reason=TerminalReason.TOOL_USE)

    rows: list[str] = []
    apply = commits._apply

    class Spy:
        def __init__(self, con) -> None:
            self._con = con

        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO commit_log"):
                rows.append(args[0][3])
            return self._con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._con, name)

    async def main() -> None:
        core = (LashCore.builder().provider(FunctionProvider(model)).model("m").tools(weather)
                .store(str(tmp_path / "s.duckdb")).build())
        session = await core.session("s").open()
        for i in range(2):
            await session.turn(f"weather {i}: ünïcode \"quoted\"").run()
        await core.store.close()

    commits._apply = lambda con, hold, c, *, direct: apply(Spy(con), hold, c, direct=direct)
    try:
        asyncio.run(main())
    finally:
        commits._apply = apply
    assert len(rows) == 4
    stdlib = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False)
    node = json.JSONEncoder(separators=(",", ":"), default=str)
    for body in rows:
        data = json.loads(body)
        assert body == stdlib.encode(data)
        for content in data["tables"]["graph_nodes"]["content"]:
            assert content == node.encode(json.loads(content))
        for payload in data["tables"].get("turn_events", {}).get("payload", []):
            assert payload == node.encode(json.loads(payload))
    assert "\\u00fc" in rows[0]  # ü, escaped as before (ensure_ascii)


@pytest.mark.parametrize("other", [
    lambda *args: (_ for _ in ()).throw(TypeError("takes 10 arguments")),  # a new signature
    lambda *args: (lambda value, level: ["[]"]),  # another meaning of the same arguments
])
def test_a_python_whose_c_encoder_differs_gets_the_stdlib_encoder(monkeypatch, other):
    """``c_make_encoder`` is private: a Python that changes it must not break lash_nb's
    import or its stored text."""
    from json import encoder as stdlib
    from types import SimpleNamespace

    from lash_nb._core import json_text

    # what json_text sees of json.encoder; the stdlib itself keeps its own constructor
    monkeypatch.setattr(json_text, "_stdlib", SimpleNamespace(
        c_make_encoder=other, encode_basestring=stdlib.encode_basestring,
        encode_basestring_ascii=stdlib.encode_basestring_ascii))
    value = {"b": [1, 2.5, "é"], "a": None}
    assert ([encoder(**options)(value) for options in OPTIONS]
            == [json.JSONEncoder(**options).encode(value) for options in OPTIONS])
