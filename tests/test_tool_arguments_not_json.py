"""A tool call whose arguments are not a JSON object does not run.

A model's arguments can arrive broken: a stream cut at ``max_tokens`` leaves
``{"path": "/tmp/build", "recursive": tr``, and some servers send a JSON string or a list.
Such a call used to run with no arguments at all: a tool whose parameters have defaults then
did what nobody asked (``cleanup()`` on ``"."`` instead of ``/tmp/build``), and the record
read as a success. Now the call is an error result the model reads and can correct, naming
what was wrong and quoting what it sent; the function is never called, and an approval is not
asked for a call that cannot run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


def _turn(args_text: str, *, approval: str = "always") -> tuple[Any, list[Any], list[Any]]:
    ran: list[Any] = []
    asked: list[Any] = []

    @tool(approval=approval)
    def cleanup(path: str = ".", recursive: bool = False) -> str:
        """Delete the files under a folder."""
        ran.append((path, recursive))
        return f"deleted {path}"

    seen: list[Any] = []

    def model(request: Any) -> Any:
        results = request.messages[-1].tool_results()
        if results:
            seen.extend(results)
            return "done"
        return [tool_call("cleanup", args_text, "c1")]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            cleanup).build()
        s = await core.session("s").open()
        s.approvals().set_approver(lambda request: asked.append(request) or True)
        out = await s.turn("clean the build folder").run()
        await core.close()
        return out

    out = asyncio.run(body())
    return out, ran, seen + asked


def test_a_call_whose_arguments_were_cut_off_does_not_run_with_the_defaults() -> None:
    out, ran, seen = _turn('{"path": "/tmp/build", "recursive": tr')
    assert ran == []
    call = out.result.tool_calls[0]
    assert call.success is False
    assert "not a JSON object" in call.output
    assert '{"path": "/tmp/build", "recursive": tr' in call.output  # what the model sent
    assert "call 'cleanup' again" in call.output
    assert seen and "not a JSON object" in seen[0].content  # the model reads the same error
    assert str(out.result.outcome) == "finished: assistant_message"


def test_arguments_that_are_json_but_not_an_object_do_not_run_the_tool() -> None:
    for text in ('"/tmp/build"', '["/tmp/build", true]', "null"):
        out, ran, _seen = _turn(text)
        assert ran == [], text
        assert "not a JSON object" in out.result.tool_calls[0].output, text


def test_no_approval_is_asked_for_a_call_whose_arguments_are_broken() -> None:
    out, ran, seen = _turn('{"path": "/tmp/bu', approval="ask")
    assert ran == []
    assert [s for s in seen if hasattr(s, "approve")] == []  # nobody was asked
    assert out.result.tool_calls[0].approval is None


def test_a_call_with_no_arguments_at_all_still_runs() -> None:
    for text in ("", "{}"):  # some servers send "" for a call without arguments
        out, ran, _seen = _turn(text)
        assert ran == [(".", False)], text
        assert out.result.tool_calls[0].success is True
