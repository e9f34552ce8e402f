"""A secret in a variable of the environment that is not a provider key stays out of what
lash keeps (ADR 211).

A data scientist's kernel holds more secrets than the model providers' keys: ``HF_TOKEN``
for the Hub, ``AWS_SECRET_ACCESS_KEY``, ``JUPYTER_TOKEN``, a ``DATABASE_URL`` with its
password. A tool of theirs prints its configuration while it runs, returns a connection
summary, or fails with a message quoting what it was given. Before ADR 211 only the provider
key variables were known keys (ADR 196): these values went into the DuckDB file, the saved
notebook (the tool row's printed box and output) and the log the traceback is written to.
Values of variables named like a secret (and the password of a URL in any variable) are
known keys now; every other value of the environment stays as the tool wrote it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore
from lash_nb.testing import tool_call

HF = "hf_kQ7rW2xZ9pL4mN8vB3cT6yU1"
AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
DB_PASSWORD = "s3cr3t-Pg-pass-88"
DB_URL = f"postgresql://analyst:{DB_PASSWORD}@db.internal:5432/sales"
PLAIN = "plain-setting-value-4471"  # a variable named like no secret: stays
SECRETS = (HF, AWS, DB_PASSWORD)


def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS)
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    monkeypatch.setenv("MY_SETTING", PLAIN)


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}.wal")) if p.exists())


class Model:
    """Calls the tool once with ``args``, then answers; keeps every request's text."""

    def __init__(self, name: str, args: str) -> None:
        self.replies: list[Any] = [[tool_call(name, args, "c1")]]
        self.sent: list[str] = []

    def __call__(self, request: Any) -> Any:
        self.sent.append("\n".join(p.content for m in request.messages for p in m.parts))
        return self.replies.pop(0) if self.replies else "done"


@tool
def connect(fail: bool = False) -> str:
    """Connect to the sales database and the Hub."""
    print("config:", os.environ["HF_TOKEN"], os.environ["DATABASE_URL"], os.environ["MY_SETTING"])
    if fail:
        raise RuntimeError(f"login refused for {os.environ['AWS_SECRET_ACCESS_KEY']} "
                           f"at {os.environ['DATABASE_URL']}")
    return (f"connected with {os.environ['AWS_SECRET_ACCESS_KEY']} to "
            f"{os.environ['DATABASE_URL']} ({os.environ['MY_SETTING']})")


def _turn(tmp_path: Path, args: str) -> tuple[Any, Model, bytes]:
    model = Model("connect", args)
    path = tmp_path / "env.duckdb"

    async def body() -> Any:
        store = DuckDBStore(path, idle_release_s=None)
        core = (LashCore.builder().provider(FunctionProvider(model)).model("m")
                .tools(connect).store(store).build())
        s = await core.session("s").open()
        out = await s.turn("connect please").run()
        await core.close()
        return out.result

    return asyncio.run(body()), model, _file_bytes(path)


def test_a_tool_printing_and_returning_environment_secrets_keeps_none_of_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch)
    result, model, stored = _turn(tmp_path, "{}")
    (call,) = result.tool_calls
    assert call.success is True
    assert call.output == ("connected with [redacted] to "
                           "postgresql://analyst:[redacted]@db.internal:5432/sales "
                           f"({PLAIN})")
    assert call.printed == ("config: [redacted] postgresql://analyst:[redacted]@db.internal:"
                            f"5432/sales {PLAIN}\n")
    for secret in SECRETS:
        assert secret not in model.sent[1]  # the request carrying the output to the model
        assert secret.encode() not in stored
    assert PLAIN.encode() in stored  # the tool's other data is kept as it was


def test_a_tool_failing_with_an_environment_secret_in_its_message_logs_and_keeps_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    _env(monkeypatch)
    with caplog.at_level(logging.INFO, logger="lash_nb"):
        result, model, stored = _turn(tmp_path, '{"fail": true}')
    (call,) = result.tool_calls
    assert call.success is False
    assert call.output == ("RuntimeError: login refused for [redacted] at "
                           "postgresql://analyst:[redacted]@db.internal:5432/sales")
    (kept,) = result.tool_tracebacks.values()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError: login refused for" in logged  # the traceback was logged
    for secret in SECRETS:
        assert secret not in kept and secret not in logged
        assert secret not in model.sent[1]
        assert secret.encode() not in stored


def test_values_that_are_not_secrets_stay_though_their_variable_is_named_like_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path, a number, a switch, a word: no secret, and taking them out of every prompt and
    output would only garble them."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/home/me/gcp/service.json")
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "86400000")
    monkeypatch.setenv("USE_AUTH", "true")
    monkeypatch.setenv("AUTH_MODE", "disabled")

    @tool(name="connect")
    def show() -> str:
        """Show the settings."""
        return " ".join(os.environ[n] for n in
                        ("GOOGLE_APPLICATION_CREDENTIALS", "TOKEN_TTL_SECONDS", "USE_AUTH",
                         "AUTH_MODE"))

    model = Model("connect", "{}")

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(show).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        await core.close()
        return out.result

    result = asyncio.run(body())
    assert result.tool_calls[0].output == "/home/me/gcp/service.json 86400000 true disabled"


@pytest.mark.slow
def test_the_saved_notebook_the_store_and_the_log_hold_no_environment_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole situation in a kernel run by nbclient, the notebook saved to disk."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _env(monkeypatch)  # the kernel inherits them; no cell contains one
    cells = [
        ("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0\nimport logging\n"
        "logging.basicConfig(filename='kernel.log', level=logging.INFO, force=True)"),
        ("from lash_nb import tool\nimport os\n"
        "@tool\n"
        "def connect(fail: bool = False) -> str:\n"
        "    '''Connect to the sales database and the Hub.'''\n"
        "    print('config:', os.environ['HF_TOKEN'], os.environ['DATABASE_URL'])\n"
        "    if fail:\n"
        "        raise RuntimeError('login refused for ' + os.environ['AWS_SECRET_ACCESS_KEY'])\n"
        "    return 'connected with ' + os.environ['AWS_SECRET_ACCESS_KEY']"),
        "%lash open s --store nb.duckdb",
        "%%lash\nplease connect",
        "%%lash\nplease connect fail=true",
        "%lash sql SELECT name, output, printed FROM tool_calls",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "s.ipynb")
    saved = (tmp_path / "s.ipynb").read_text(encoding="utf-8")
    # it ran: the record shows the printed box and the failed call's message
    assert 'class=\\"lash-tool-printed\\"' in saved and "RuntimeError: login refused for" in saved
    log = (tmp_path / "kernel.log").read_text(encoding="utf-8")
    assert "RuntimeError: login refused for" in log  # the traceback was logged
    stored = _file_bytes(tmp_path / "nb.duckdb")
    for secret in SECRETS:
        assert secret not in saved and json.dumps(secret) not in saved
        assert secret not in log
        assert secret.encode() not in stored
