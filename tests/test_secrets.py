"""An API key never reaches the store, the event log, reprs or an executed notebook.

Turns run with a recognisable fake key against the loopback server (real sockets), one that
succeeds and one the server refuses with 401; then the DuckDB file bytes, the stored events
and turn results, and an executed notebook's JSON are searched for the key.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lash_nb import LashCore
from lash_nb.providers import OpenAICompatible
from lash_nb.stores import DuckDBStore
from lash_nb.testing import LoopbackServer

KEY = "sk-test-LEAKCHECK-7f3a9c"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "wire-scripts"
HERE = Path(__file__).resolve().parent / "wire_scripts"
TEXT = SHARED / "openai-compatible.chat-runtime-text-stream.json"
AUTH = HERE / "openai-compatible.auth-401.json"

pytestmark = pytest.mark.skipif(not TEXT.exists(), reason=f"shared wire scripts not found at {SHARED}")


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_the_key_is_not_in_the_store_events_results_or_reprs(tmp_path):
    async def body():
        with LoopbackServer([TEXT, AUTH], time_scale=0) as srv:
            store = DuckDBStore(tmp_path / "secrets.duckdb", idle_release_s=None)
            ok = OpenAICompatible(base_url=srv.base_url, api_key=KEY, model="openai/gpt-5.4")
            core = LashCore.builder().provider(ok).store(store).build()
            s = await core.session("s").open()
            first = await s.turn("hello").run()
            refused = await s.turn("again").provider(
                OpenAICompatible(base_url=srv.base_url, api_key=KEY)).model("gpt-test").run()
            assert srv.errors == []
            events = await store.load_events("s")
            turns = await store.load_turns("s")
            texts = [repr(core), repr(s), repr(ok), repr(first), repr(refused),
                     json.dumps([e.to_json() for e in events]),
                     json.dumps([t.result for t in turns], default=str),
                     json.dumps(s.export_state()),
                     store.query("SELECT * FROM sessions").to_json(date_format="iso")]
            await core.close()
            return first, refused, texts
    first, refused, texts = asyncio.run(body())
    assert first.result.is_success()
    assert str(refused.result.outcome) == "stopped: provider_error"
    assert all(KEY not in t for t in texts)
    assert KEY.encode() not in _all_bytes(tmp_path)  # the file and any WAL


@pytest.mark.slow
def test_the_key_is_not_in_an_executed_notebook(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the kernel inherits it; no cell contains it
    cells = [
        ("from lash_nb import LashCore\nfrom lash_nb.providers import OpenAICompatible\n"
        "from lash_nb.testing import LoopbackServer"),
        (f"srv = LoopbackServer([{str(TEXT)!r}, {str(AUTH)!r}], time_scale=0)\nsrv.start()\n"
        "p = OpenAICompatible(base_url=srv.base_url, model='openai/gpt-5.4')\n"
        "core = LashCore.builder().provider(p).store('nb.duckdb').build()\n"
        "s = await core.session('nb').open()\np, core"),
        "out = await s.turn('hello').run()\nout.result, out.result.to_json()",
        ("bad = await s.turn('again').provider(OpenAICompatible(base_url=srv.base_url)).model('gpt-test').run()\n"
        "print(bad.result.errors, srv.errors)\nbad.result"),
        "import os\nprint(sorted(k for k in os.environ if 'KEY' in k))\ns.usage_report()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = nbformat.writes(nb)
    assert "stopped: provider_error" in text and "OPENAI_API_KEY" in text  # the cells ran
    assert "status 401" in text or "401" in text
    assert KEY not in text
    assert KEY.encode() not in _all_bytes(tmp_path)


def test_a_command_line_shows_no_option_value_url_password_or_query_secret_named_so() -> None:
    from lash_nb._core.secrets import scrub_command

    assert scrub_command(["npx", "-y", "@modelcontextprotocol/server-postgres",
                          "postgresql://me:pw-771@db/sales"]) == (
        "npx -y @modelcontextprotocol/server-postgres postgresql://me:[redacted]@db/sales")
    assert scrub_command(["srv", "--token", "t1", "--github-token", "t2", "--api-key=t3",
                          "--client-secret", "t4", "--port", "8080", "--keyboard", "us"]) == (
        "srv --token [redacted] --github-token [redacted] --api-key=[redacted] "
        "--client-secret [redacted] --port 8080 --keyboard us")
    assert scrub_command(["srv", "https://h/mcp?api_key=k1&X-Amz-Signature=s1&page=2"]) == (
        "srv https://h/mcp?api_key=[redacted]&X-Amz-Signature=[redacted]&page=2")
