"""The notebooks in ``notebooks/`` run headless (nbclient) with no API key, and git holds
them without outputs.

Each notebook runs in its own kernel with a temporary working directory, so the DuckDB files
it writes never land in the repo. A cell that raises fails the test (nbclient raises
``CellExecutionError``). The expected strings below follow from the offline provider's
documented rules (``lash_nb/_providers/offline.py``) and the tools the notebooks define,
not from running the code.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STRIP = ROOT / "scripts" / "strip_notebooks.py"
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY",
                 "LASH_OLLAMA_BASE_URL", "OLLAMA_HOST", "LASH_MODEL")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def execute(name: str, cwd: Path) -> Any:
    """Run ``notebooks/<name>`` top to bottom in a fresh kernel with ``cwd`` as its working
    directory; return the executed notebook."""
    for attempt in range(3):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        )
        try:
            client.execute()
            return nb
        except RuntimeError as err:
            # the TCP ports picked free were taken by another test's kernel before this one
            # bound them (parallel runs): it died at start, before any cell; start another
            if "Kernel died before replying to kernel_info" not in str(err) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def texts(nb: Any) -> str:
    """Every stream and text/plain or text/markdown output, joined. A cell's consecutive
    chunks of one stream are one text (the kernel may flush a line in two messages)."""
    parts: list[str] = []
    for cell in nb.cells:
        stream = None
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                if stream == out["name"]:
                    parts[-1] += out["text"]
                else:
                    parts.append(out["text"])
                stream = out["name"]
                continue
            stream = None
            if "data" in out:
                parts.extend(out["data"][mime] for mime in ("text/plain", "text/markdown")
                             if mime in out["data"])
    return "\n".join(parts)


def error_outputs(nb: Any) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in c.get("outputs", [])
            if o["output_type"] == "error"]


def stderr_outputs(nb: Any) -> list[str]:
    return [o["text"] for c in nb.cells for o in c.get("outputs", [])
            if o["output_type"] == "stream" and o["name"] == "stderr"]


def widget_states(nb: Any, model_name: str) -> list[dict[str, Any]]:
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return [m["state"] for m in saved.values() if m.get("model_name") == model_name
            or m.get("state", {}).get("_model_name") == model_name]


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def real_providers_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``04-real-providers.ipynb`` run once without keys: what it prints and what the strip
    script removes are read from the same run, as a user runs it once (ADR 208). Each test
    gets a copy of the executed notebook."""
    with pytest.MonkeyPatch.context() as mp:
        for name in KEY_VARIABLES:
            mp.delenv(name, raising=False)
        return execute("04-real-providers.ipynb", tmp_path_factory.mktemp("real-providers"))


def test_every_notebook_in_the_folder_has_a_test_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [
        "01-quickstart.ipynb", "02-queue.ipynb", "03-usage-analysis.ipynb",
        "04-real-providers.ipynb", "05-tools-and-mcp.ipynb", "06-configure-and-plugins.ipynb",
        "07-child-sessions-and-retention.ipynb", "08-attachments.ipynb", "09-code-mode.ipynb",
    ]


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_quickstart_runs_turns_with_tools_stops_one_and_resumes_from_the_file(tmp_path, no_keys):
    nb = execute("01-quickstart.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    assert (tmp_path / "quickstart.duckdb").is_file()
    assert not list(NOTEBOOKS.glob("*.duckdb"))
    # the offline model answers "<tool> returned <output>." after a tool call
    assert "weather returned sunny, 21 C." in out
    assert "add returned 42.0." in out
    assert "[('add', {'a': 2.0, 'b': 40.0}, 42.0)]" in out
    assert "weather returned snow, -3 C." in out  # {city} interpolated to Oslo
    # the stop cell cancels after five streamed words
    assert "Stop after 5 words: 1 turn(s) cancelled" in out
    assert "stopped: cancelled | 'You said: Tell me a'" in out
    # four turns were committed before the restart; the resumed session adds a fifth
    assert "4 turns and" in out
    assert "finished: assistant_message | weather returned cloudy, 12 C." in out
    assert "turns now: 5" in out
    # the widgets' final state is saved in the notebook: three finished turns, one stopped,
    # and the replay of the Oslo turn (`%lash replay {oslo.turn_id}`) drawn from the store
    turn_widgets = [s for s in widget_states(nb, "AnyModel") if "outcome" in s]
    assert sorted(s["outcome"] for s in turn_widgets) == (
        ["finished: assistant_message"] * 4 + ["stopped: cancelled"])
    oslo = [s["turn_id"] for s in turn_widgets if "'Oslo'" in s["prompt"]]
    assert len(oslo) == 2 and len(set(oslo)) == 1, oslo


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_queue_notebook_drains_in_the_kernel_and_in_a_worker_process(tmp_path, no_keys):
    nb = execute("02-queue.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    assert "same batch: True" in out
    # the three join batches with one merge key became one turn
    assert "| 3 batch(es)" in out
    assert "cancelled: qwb:" in out and "second cancel: None" in out
    assert "the turn took the batch: True" in out
    assert "done: ['weather returned snow, -3 C.']" in out
    assert "worker exit code 0" in out
    assert "worker done: 3 turns {'finished: assistant_message': 3}" in out
    assert "pending now: 0" in out
    assert "weather returned cloudy, 12 C." in out  # Lima, answered by the worker
    assert not (NOTEBOOKS / "queue_tools.py").exists()


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_usage_analysis_notebook_reports_the_store_and_an_imported_lash_trace(tmp_path, no_keys):
    nb = execute("03-usage-analysis.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    # the notebook itself asserts the frame matches the ledger; both lines are printed
    frame_line = next(line for line in out.splitlines() if line.startswith("frame  :"))
    ledger_line = next(line for line in out.splitlines() if line.startswith("ledger :"))
    assert frame_line.split(":", 1)[1] == ledger_line.split(":", 1)[1]
    assert "LashSession('analysis', provider='offline', model='lash-offline', turns=8)" in out
    assert "LashTrace('lash-trace.jsonl', 15 records, 0 bad lines, 0 newer-schema lines)" in out
    # the trace's gpt-4.1-mini calls, summed by hand: input 1200+1300, output 40+12,
    # cache read 800+1200; total = 2500 + 52 + 2000 = 4552
    trace_usage = [o["data"]["text/plain"] for c in nb.cells if c.source.startswith('usage_frame(trace')
                   for o in c.get("outputs", []) if "data" in o]
    assert len(trace_usage) == 1
    assert all(n in trace_usage[0].split() for n in ("gpt-4.1-mini", "2500", "52", "2000", "4552"))
    assert "provider_error" in out and "connection_reset" in out and "rate_limit" in out
    # charts display as Vega-Lite with the SVG as fallback in the same output
    charts = [o["data"] for c in nb.cells for o in c.get("outputs", [])
              if "data" in o and "application/vnd.vegalite.v5+json" in o["data"]]
    assert len(charts) == 5
    assert all("<svg" in d["image/svg+xml"] for d in charts)
    # the `{name}` in SQL example shows rows: the weather calls of section 1, in order
    # (Paris, Oslo, then the two queued questions about Lima); it showed an empty table
    # when the tools ran under its 1 ms threshold
    sql = [o["data"]["text/plain"] for c in nb.cells if "%lash sql" in c.source
           and "{" in c.source for o in c.get("outputs", []) if "data" in o]
    assert len(sql) == 1
    assert re.findall(r'"(Paris|Oslo|Lima)"', sql[0]) == ["Paris", "Oslo", "Lima", "Lima"]
    # the bundled price snapshot is not denied in the prose (README: prices "default")
    assert not [c for c in nb.cells if c.cell_type == "markdown" and "nothing is bundled" in c.source]


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_real_providers_notebook_skips_the_key_cells_cleanly_without_keys(real_providers_run):
    nb = copy.deepcopy(real_providers_run)
    out = texts(nb)
    assert error_outputs(nb) == []
    assert stderr_outputs(nb) == []
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"):
        assert f"skipped: {variable} is not set" in out
    assert "skipped: no Ollama server at localhost:11434" in out
    # without keys select_provider() falls back to the offline model, which still runs a turn
    assert "the offline model (no key, no network)" in out
    assert "finished: assistant_message" in out


def _sse_script(name: str, chunks: list[dict[str, Any]], *, tools: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": {"equals": "llama3.2"}, "stream": {"equals": True}}
    if tools:
        body["tools[0].function.name"] = {"equals": "weather"}
    timeline: list[dict[str, Any]] = [{"at": 0, "event": "response_start", "status": 200,
                                       "headers": [{"name": "content-type", "value": "text/event-stream"}]}]
    for i, chunk in enumerate(chunks, start=1):
        timeline.append({"at": i, "event": "sse", "data": json.dumps(chunk)})
    timeline += [{"at": len(chunks) + 1, "event": "sse", "data": "[DONE]"},
                 {"at": len(chunks) + 2, "event": "end"}]
    return {"schema": "lash.provider-wire-script.v1", "name": name,
            "provider_kind": "openai-compatible",
            "endpoint": {"method": "POST", "path": "/chat/completions"},
            "request_match": {"body": body}, "timeline": timeline}


def _weather_exchange(city: str, answer: str) -> list[dict[str, Any]]:
    call = {"choices": [{"index": 0, "delta": {"tool_calls": [{
        "index": 0, "id": f"call_{city}", "type": "function",
        "function": {"name": "weather", "arguments": json.dumps({"city": city})}}]},
        "finish_reason": None}]}
    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}}
    text = {"choices": [{"index": 0, "delta": {"content": answer}, "finish_reason": None}]}
    stop = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 70, "completion_tokens": 9, "total_tokens": 79}}
    return [_sse_script(f"{city}-call", [call, done], tools=True),
            _sse_script(f"{city}-answer", [text, stop], tools=True)]


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_real_providers_notebook_runs_its_ollama_section_against_a_local_server(
    tmp_path, no_keys, monkeypatch
):
    """An OpenAI-compatible server on loopback stands in for Ollama: both the select_provider
    cell (OLLAMA_HOST is set) and the Ollama section run real turns over real sockets."""
    from lash_nb.testing import LoopbackServer

    scripts = _weather_exchange("Paris", "Paris is sunny.") + _weather_exchange("Oslo", "Oslo has snow.")
    with LoopbackServer(scripts) as server:
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")
        nb = execute("04-real-providers.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    assert server.errors == []
    assert server.remaining == 0
    assert "OLLAMA_HOST is set: Ollama (OpenAI-compatible), model llama3.2" in out
    assert f"an Ollama server answers at 127.0.0.1:{server.port}" in out
    assert "[tool weather -> 'sunny, 21 C']" in out
    assert "[tool weather -> 'snow, -3 C']" in out
    assert "Paris is sunny." in out and "Oslo has snow." in out
    # the second request of each turn carries the tool result back to the model
    tool_results = [m for r in server.requests for m in r.body["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_results] == ["sunny, 21 C", "snow, -3 C"]


# --------------------------------------------------------------------------- stripped in git


def test_the_real_providers_notebook_names_every_provider_the_magic_takes():
    """Its prose said "two wire protocols" and listed five ``--provider`` names; the magic
    takes more (``%lash open --provider gemini`` lists them in its error)."""
    from lash_nb._providers.registry import NAMES

    nb = json.loads((NOTEBOOKS / "04-real-providers.ipynb").read_text(encoding="utf-8"))
    said = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"
                and "`--provider` is one of" in "".join(c["source"]))
    assert [n for n in NAMES if f"`{n}`" not in said] == []


def test_the_retention_notebook_explains_vacuum_just_before_the_cell_that_runs_it():
    """Its vacuum paragraph stood between the refused delete and the delete with --yes."""
    nb = json.loads((NOTEBOOKS / "07-child-sessions-and-retention.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"]]
    at = next(i for i, text in enumerate(cells) if text.startswith("`vacuum()` deletes"))
    assert "vacuum()" in cells[at + 1] and nb["cells"][at + 1]["cell_type"] == "code"
    assert "--delete scratch --yes" in cells[at - 1]


def _markdown(name: str) -> str:
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_the_quickstart_says_what_a_second_run_on_its_store_shows(tmp_path, monkeypatch):
    """A user runs the quickstart a second morning, on the same ``quickstart.duckdb``:
    ``--fresh`` starts the conversation over, and the store keeps the first run's turns, so
    ``turns=`` and the SQL tables count them. Its text said a second run "gives the same
    result"; it says what the second run shows."""
    from notebook_harness import lash_shell

    open_line = "session = %lash open quickstart --fresh --store quickstart.duckdb --provider offline"
    with lash_shell(tmp_path, monkeypatch) as sh:
        for _ in range(2):  # two mornings: the notebook's open, then a turn
            sh.run_cell(open_line)
            first_seen = repr(sh.user_ns["session"])
            sh.run_cell("%lash turn What does weather say for 'Paris'?")
        frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")
        sh.run_cell("await session.core.close()")
    assert "turns=1)" in first_seen  # the first morning's turn, counted after --fresh
    assert int(frame["n"].iloc[0]) == 2
    text = _markdown("01-quickstart.ipynb")
    assert "gives the same result" not in text
    assert "count the earlier runs' turns too" in text
    assert "adds its\nbatches to the first run's" in _markdown("02-queue.ipynb")


def test_committed_notebooks_have_no_outputs_or_execution_counts():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert "widgets" not in nb.get("metadata", {}), path.name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [], f"{path.name}: a cell has outputs"
                assert cell["execution_count"] is None, f"{path.name}: a cell has a count"
    check = subprocess.run([sys.executable, str(STRIP), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_strip_script_removes_outputs_counts_and_widget_state_and_keeps_sources(
        tmp_path, real_providers_run):
    executed = copy.deepcopy(real_providers_run)
    path = tmp_path / "executed.ipynb"
    nbformat.write(executed, path)
    assert subprocess.run([sys.executable, str(STRIP), "--check", str(path)]).returncode == 1

    done = subprocess.run([sys.executable, str(STRIP), str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "stripped" in done.stdout
    stripped = json.loads(path.read_text(encoding="utf-8"))
    original = json.loads((NOTEBOOKS / "04-real-providers.ipynb").read_text(encoding="utf-8"))
    assert [c["source"] for c in stripped["cells"]] == [c["source"] for c in original["cells"]]
    assert all(c["outputs"] == [] and c["execution_count"] is None
               for c in stripped["cells"] if c["cell_type"] == "code")
    assert "widgets" not in stripped["metadata"]
    assert subprocess.run([sys.executable, str(STRIP), "--check", str(path)]).returncode == 0
    nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.slow  # runs a whole notebook in a kernel, starts an MCP server
def test_tools_notebook_validates_arguments_and_uses_an_mcp_server(tmp_path, no_keys):
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    nb = execute("05-tools-and-mcp.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    # nothing under any cell: the MCP tool's first call once printed "held the event loop
    # ... make it a plain def" (the SDK's jsonschema import, on the loop)
    assert stderr_outputs(nb) == []
    # the date string was converted before the function ran: 2026-01-01 -> 2026-12-25
    assert "days_until returned 358 days (got a date)." in out
    # a bad date is an error result the model reads; the turn still finishes
    assert ("invalid arguments for tool 'days_until': day: Input should be a valid date" in out
            and "(got 'someday')" in out and "2 tries left in this turn" in out)
    assert "finished: assistant_message" in out
    # the MCP server's tool answered (structured content) and the server was stopped
    assert "MCP server 'loud' started (stdio): shout" in out
    assert "| loud | stdio |" in out and "| running | shout |" in out
    assert 'shout returned {"result": "HELLO FROM THE NOTEBOOK!"}.' in out
    assert "MCP server 'loud' stopped and its tools removed" in out
    # approval answered by a callback: the scratch table was dropped, the other call denied
    assert "drop_table returned dropped scratch_tmp." in out
    assert "drop_table returned the call to tool 'drop_table' was denied by the api;" in out
    assert "- tool `drop_table` done" in out and "(approved by api)" in out
    assert "- tool `drop_table` denied, " in out and "(denied by api)" in out
    rows = [" ".join(t.split()[1:]) for t in out.split("\n") if t.split()[1:2] == ["drop_table"]]
    assert rows == ["drop_table success approved api", "drop_table failure denied api"]


@pytest.mark.slow  # runs a whole notebook in a kernel
def _cell_text(nb: Any, starts: str) -> str:
    cell = next(c for c in nb.cells if c.source.startswith(starts))
    return "".join(o.get("text", "") for o in cell.outputs)


def test_configure_notebook_switches_model_layers_prompts_and_runs_a_plugin(tmp_path, no_keys):
    first = execute("06-configure-and-plugins.ipynb", tmp_path)
    # a second morning on the same stores: the plugin section starts as it did the first
    # time, not with the prompt and model section 4 configured the day before
    nb = execute("06-configure-and-plugins.ipynb", tmp_path)
    shown = "print(analyst.rendered_prompt())"
    assert _cell_text(nb, shown) == _cell_text(first, shown)
    assert "You are terse." not in _cell_text(nb, shown)
    out = texts(nb)
    assert error_outputs(nb) == []
    # configure: the model after the patch, and again after the core was reopened
    assert "'lash-offline-large'" in out
    # %lash prompt before anything was set, then the session layer (intro + a guidance slot)
    assert '(no system prompt: set one with %lash prompt --set "...")' in out
    assert ("You are a careful analyst.\n\n## Guidance\n\n### Numbers\n\n"
            "Round every number to two decimals.") in out
    # the cell that sets the intro and adds a slot says so in a line each, the prompt not
    # twice (each change printed the whole prompt); the next cell's %lash prompt shows it
    changes = next(c for c in nb.cells if c.source.startswith("%lash prompt --set"))
    said = "".join(o.get("text", "") for o in changes.outputs)
    assert len(said.splitlines()) == 2 and said.count("You are a careful analyst.") <= 1, said
    # the turn layer from Python rendered under the Environment section
    assert "## Environment\n\n### Data\n\ndf has 3 columns: city, day, temp_f" in out
    # the plugin's tool: (451 - 32) * 5 / 9 = 232.77... -> "232.8 °C"; its prompt and operation
    assert "to_celsius returned 232.8 °C." in out
    assert "### Project Instructions\n\nTemperatures in reports are in Celsius." in out
    assert "('units', ['celsius', 'fahrenheit'])" in out
    # reopened from the file: model and prompt layer kept
    assert ("'You are terse.\\n\\n## Guidance\\n\\n### Project Instructions\\n\\n"
            "Temperatures in reports are in Celsius.'") in out
    # reset: no messages left, the spend stays
    assert "(0, 0)" not in out and "\n(0, " in out
    assert (tmp_path / "plugins.duckdb").is_file() and (tmp_path / "configure.duckdb").is_file()
    # a tool ran a child session: its id names the tool call, the parent is recorded, and the
    # child's tokens are counted apart from the parent's
    assert "child: lead.call_" in out and "| parent recorded: lead" in out
    children = [ln for ln in out.splitlines() if ln.startswith("parent tokens:")]
    assert children and int(children[-1].rsplit("children: ", 1)[1]) > 0


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_children_notebook_nests_a_child_turn_parks_resumes_and_deletes(tmp_path, no_keys):
    execute("07-child-sessions-and-retention.ipynb", tmp_path)
    # read on a second morning, on the same stores: the parked session's transcript is this
    # run's, not the first run's with this one's after it
    nb = execute("07-child-sessions-and-retention.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    # the tool ran a child session; the offline model echoed the child's prompt
    asked = "You said: Please answer briefly: what is a child session?"
    assert "> child session `research.call_" in out
    assert "· finished: assistant_message: " + asked in out
    assert "ask_helper returned " + asked in out
    saved = [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
             if "text/html" in o.get("data", {}) and "ask_helper" in o["data"]["text/html"]]
    assert saved and 'class="lash-child"' in saved[-1]  # the saved snapshot keeps the nesting
    assert "child:research.call_" in out  # %lash usage --by source
    assert "research.call_" in out and "parent tokens:" in out
    assert "refused: cannot park session 'notes': another handle of it is alive" in out
    assert "['remember the number 7', 'You said: remember the number 7 (This is']" in out
    assert "tombstoned nodes: 2" in out
    assert "'back on track'" in out and "a detour" not in out.split("tombstoned nodes: 2")[1]
    assert "add --yes to confirm" in "\n".join(stderr_outputs(nb))
    assert "deleted session 'scratch' (its turns, usage and queued work)" in out
    assert "vacuum of lifecycle.duckdb: VacuumReport(removed_node_count=2" in out
    assert not (tmp_path / "children.duckdb.lash-compact").exists()


@pytest.mark.slow  # runs a whole notebook in a kernel
def test_attachments_notebook_sends_a_figure_and_a_dataframe_and_reopens_them(tmp_path, no_keys):
    nb = execute("08-attachments.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    # the offline model lists what reached it; the frame is whole CSV:
    # ",month,units\n0,Jan,120\n1,Feb,95\n2,Mar,180\n3,Apr,150\n" = 13 + 10 + 9 + 10 + 10 bytes
    assert "It received: [image fig: image/png, " in out
    assert "[file sales: text/csv, 52 bytes]" in out
    assert "plot_units returned an image [image plot_units output: image/png, " in out
    # fig attached twice is one blob: 3 rows (fig, sales, the tool's plot)
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "media_type  byte_len" in line)
    assert [line.split()[0] for line in lines[head + 1:head + 5]][:3] == ["0", "1", "2"]
    assert not lines[head + 4].startswith("3 ")
    assert "The conversation holds 4 attachments; 4 came with their bytes." in out
    # reopened from the file: the 4 attachments are sent again, read from the store
    assert out.count("The conversation holds 4 attachments; 4 came with their bytes.") >= 2
    html = [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
            if "text/html" in o.get("data", {})]
    records = [h for h in html if "lash-attachments" in h]
    assert any('<img class="lash-thumb" src="data:image/png;base64,' in h for h in records)
    assert any('<pre class="lash-table-preview">,month,units\n0,Jan,120' in h for h in records)
    # the chart plot_units returned: a thumbnail under the tool's row of the saved record,
    # which needs no kernel and no widget state (ADR 232)
    [tool_record] = [h for h in html if '<span class="lash-tool-name">plot_units</span>' in h]
    assert re.search(r'<span class="lash-tool-name">plot_units</span>.*?</details>'
                     r'<div class="lash-attachments"><figure class="lash-attachment">'
                     r'<img class="lash-thumb" src="data:image/png;base64,', tool_record, re.DOTALL)
    assert "plot_units output · image/png" in tool_record


@pytest.mark.slow  # runs a whole notebook in a kernel, which starts a sandbox kernel
def test_code_mode_notebook_answers_a_dataframe_question_in_code_offline(tmp_path, no_keys):
    nb = execute("09-code-mode.ipynb", tmp_path)
    out = texts(nb)
    assert error_outputs(nb) == []
    # the offline model's code-mode rule on the notebook's 8 rows, worked out by hand:
    # north (120+100+110)/3, south (80+40)/2, east (60+90)/2, west 70; total 670
    assert ("finished: final_value {'east': 75.0, 'north': 110.0, 'south': 60.0, "
            "'west': 70.0}") in out
    assert "\n670\n" in f"\n{out}\n"
    # two turns of two cells each, committed as started/completed pairs
    assert re.search(r"code_cell_completed\s+4$", out, re.M)
    assert re.search(r"code_cell_started\s+4$", out, re.M)
    # the markdown above that query names every event type the query shows (it said "a pair")
    shown = set(re.findall(r"\b(code_cell_\w+)\s+\d+$", out, re.M))
    said = next(c.source for c in nb.cells if c.cell_type == "markdown"
                and "What was committed" in c.source)
    assert shown and all(f"`{t}`" in said for t in shown), (shown, said)
    # the saved record of the %%lash turn shows its two cells (code and output), no widget
    records = [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
               if "data" in o and "lash-cell" in o["data"].get("text/html", "")]
    assert len(records) == 2
    assert records[0].count('<pre class="lash-cell-code">') == 2
    assert "sales (8, 2) [&#x27;region&#x27;, &#x27;revenue&#x27;]" in records[0]
    # the second turn lists the shared DataFrame only, not the one its first turn picked
    # (the text above says it prints each shared DataFrame)
    second = next(c for c in nb.cells if c.source.startswith("total = %lash turn"))
    shown_second = "".join(o.get("text", "") for o in second.outputs)
    assert "sales (8, 2) ['region', 'revenue']" in out
    assert "frame (8, 2)" not in out and "frame (8, 2)" not in shown_second
