"""A server that echoes the key back in the model's text, written so that markdown decodes it
(HTML character references, backslash escapes) or spread over markup (``sk-proj-**ECHO**q7``,
which a browser shows as one word): the raw text holds no key, but the rendered answer would.
The key must not reach the turn's record (HTML, markdown read by a renderer, plain text) or the
live widget's state, as it does not reach the store.

The server is a small ``http.server`` speaking OpenAI's streamed chat completions; the notebook
is an IPython shell with ``%lash open --provider openai`` pointed at it by
``OPENAI_BASE_URL``, the key only in the environment.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output
from local_openai import ChatHandler, serve
from markdown_it import MarkdownIt
from notebook_harness import ReraisingShell, lash_shell, widgets_made

KEY = "sk-proj-ECHOq7Zx93hfTT0aBcDe"


def _decimal(text: str) -> str:
    return "".join(f"&#{ord(c)};" for c in text)


ENCODINGS = {
    "decimal": _decimal(KEY),
    "hex": "".join(f"&#x{ord(c):x};" for c in KEY),
    "mixed": KEY[:4] + _decimal(KEY[4:12]) + KEY[12:],
    "backslash": KEY.replace("-", "\\-"),
    "emphasis": KEY[:8] + "**" + KEY[8:12] + "**" + KEY[12:],
    "code": KEY[:8] + "`" + KEY[8:12] + "`" + KEY[12:],
}


class _Echo(ChatHandler):
    """Streams the request's key back, in the encoding the prompt's last word names, split
    across two deltas."""

    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        key = self.headers["Authorization"].split(" ", 1)[1]
        encoding = body["messages"][-1]["content"].split()[-1]
        echoed = ENCODINGS[encoding].replace(KEY, key) if key == KEY else key
        half = len(echoed) // 2
        return 200, ["Your key is ", echoed[:half], echoed[half:] + " (echoed)."]


@pytest.fixture
def echo_server() -> Iterator[str]:
    with serve(_Echo) as port:
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def sh(tmp_path, monkeypatch, echo_server):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", echo_server)
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def _seen(rendered: str) -> str:
    """The text a browser shows for HTML ``rendered``: its tags gone, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", rendered))


def _shown(text: str) -> str:
    """What a reader of ``text`` as markdown sees: rendered by CommonMark, as a browser shows it."""
    return _seen(MarkdownIt("commonmark").render(text))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_key_echoed_in_a_form_markdown_decodes_is_not_in_the_record(
        sh, tmp_path: Path, encoding: str) -> None:
    sh.run_cell("%lash open echo --store echo.duckdb --provider openai --model gpt-4.1-mini")
    with capture_output() as cap, widgets_made() as made:
        sh.run_cell(f"%%lash -o r\nplease echo my key {encoding}\n")
    result = sh.user_ns["r"]
    assert str(result.outcome) == "finished: assistant_message"
    assert "Your key is" in result.assistant_output.safe_text  # the echo came back
    bundles = [o.data for o in cap.outputs]
    records = [b for b in bundles if "text/html" in b and "Your key is" in b["text/html"]]
    assert records, bundles
    for data in bundles:
        for mime, text in data.items():
            assert KEY not in text, (mime, text[:500])
        if "text/markdown" in data:
            assert KEY not in _shown(data["text/markdown"])
        if "text/html" in data:
            assert KEY not in _seen(data["text/html"])
    # the live widget's state (saved with the notebook when widget state is saved)
    widgets = [w for w in made if type(w).__name__ == "TurnWidget"]
    shown = [_seen(" ".join(w.html.values())) for w in widgets]  # the rendered prose
    assert any("Your key is" in s for s in shown)
    assert all(KEY not in s for s in shown)
    # every synced trait (the Layout it referred to is closed with it: not a reference now)
    assert all(KEY not in json.dumps(w.get_state([k for k in w.keys if k != "layout"]),
                                     default=str) for w in widgets)
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert KEY.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


def test_a_replay_in_a_kernel_that_only_has_the_key_in_its_environment_renders_no_key(
        tmp_path: Path, monkeypatch) -> None:
    """The next morning: the store holds the echoed answer in its encoded form, the kernel was
    restarted and the session opened with no keyed provider alive; the key is in the
    environment, as the notebook's provider would read it."""
    from lash_nb import LashCore, run_sync
    from lash_nb.providers import FunctionProvider

    key = "sk-proj-REPLAYq7Zx93hfTT0aBcDe"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", key)

    async def yesterday() -> None:
        echo = FunctionProvider(lambda request: f"Your key is {_decimal(key)}.")
        core = LashCore.builder().provider(echo).store("old.duckdb").build()
        s = await core.session("old").open()
        await s.turn("echo my key").run()
        await core.close()

    run_sync(yesterday())
    shell = ReraisingShell()
    try:
        shell.run_cell("%load_ext lash_nb._notebook.extension")
        shell.run_cell("%lash open old --store old.duckdb --provider offline")
        record = shell.run_cell("%lash replay")
        data = record._repr_mimebundle_()
        data = data[0] if isinstance(data, tuple) else data
        assert "Your key is" in data["text/html"]
        assert key not in _seen(data["text/html"])
        assert key not in _shown(data["text/plain"])
    finally:
        shell.close()
