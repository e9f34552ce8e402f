"""A user whose turn failed with "check $OPENAI_API_KEY" fixes the variable in the notebook
(``os.environ[...] = ...``) and runs ``%lash open`` again, as the message says: the next turn
uses the new key and base URL (it kept the first ones until a kernel restart). A base URL
without ``http://`` is refused at open in one line instead of retried as a network error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from local_openai import ChatHandler, serve
from notebook_harness import lash_shell

GOOD = "sk-test-the-right-key-0002"


class _Gate(ChatHandler):
    """Answers only requests carrying the right key; tells each answer's path apart."""

    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        if self.headers.get("Authorization") != f"Bearer {GOOD}":
            return 401, "invalid api key"
        return 200, f"ok via {self.path}"


@pytest.fixture
def port() -> Iterator[int]:
    with serve(_Gate) as p:
        yield p


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def test_a_key_fixed_in_the_notebook_is_used_after_open_again(sh, port, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-a-wrong-key-0001")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    sh.run_cell("%lash open s1 --store t.duckdb --provider openai --model gpt-test")
    first = sh.run_cell("r1 = %lash turn hello\nr1")
    assert str(first.outcome) == "stopped: provider_error"
    sh.run_cell(f"import os\nos.environ['OPENAI_API_KEY'] = {GOOD!r}\n"
                f"os.environ['OPENAI_BASE_URL'] = 'http://127.0.0.1:{port}/gateway/v1'")
    sh.run_cell("%lash open s1 --store t.duckdb --provider openai --model gpt-test")
    second = sh.run_cell("r2 = %lash turn hello again\nr2")
    assert str(second.outcome) == "finished: assistant_message"
    assert second.assistant_output.safe_text == "ok via /gateway/v1/chat/completions"
    # the session kept its first turn: one session, both turns in the store
    n = sh.run_cell("%lash sql SELECT count(*) AS n FROM turns WHERE session_id = 's1'")
    assert n["n"].tolist() == [2]


def test_a_base_url_without_a_scheme_is_refused_at_open(sh, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", GOOD)
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000/v1")
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash open s1 --store t.duckdb --provider openai --model gpt-test")
    assert str(info.value) == (
        "openai-compatible: base_url 'localhost:8000/v1' does not start with http:// or "
        "https://; write it in full (e.g. http://localhost:8000/v1), in OPENAI_BASE_URL "
        "if it comes from there")
    assert list(tmp_path.iterdir()) == []  # refused before the store was opened
