"""``%lash mcp add / list / remove`` in an IPython shell, with a real server (mcp-server-time)."""

from __future__ import annotations

import sys

import pytest
from IPython.core.error import UsageError
from mcp_servers import need
from notebook_harness import ReraisingShell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    shell.run_cell("%config LashMagics.store = ':memory:'")
    yield shell
    shell.close()


@pytest.mark.slow
def test_mcp_add_list_and_remove_a_stdio_server(sh, mcp_servers, capsys):
    exe = need(mcp_servers, "time")
    sh.run_cell("%lash open s1 --no-tools")
    sh.run_cell(f"server = %lash mcp add clock --approval ask -- {exe}")
    assert "MCP server 'clock' started (stdio): get_current_time, convert_time" in capsys.readouterr().out
    server = sh.user_ns["server"]
    assert server.running
    sh.run_cell("b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics()"
                ".ctx.bindings['s1']\npolicies = {r['name']: r['approval'] for r in "
                "b.session.tools().all_tools()}")
    assert sh.user_ns["policies"] == {"get_current_time": "ask", "convert_time": "ask"}
    listing = sh.run_cell("%lash mcp list").data
    assert "| clock | stdio |" in listing and "running" in listing and "get_current_time" in listing
    with pytest.raises(UsageError, match="already added; %lash mcp remove clock first"):
        sh.run_cell(f"%lash mcp add clock -- {exe}")
    sh.run_cell("%lash mcp remove clock")
    assert not server.running
    assert "no MCP servers" in sh.run_cell("%lash mcp list").data


def test_mcp_usage_errors_are_one_line(sh):
    sh.run_cell("%lash open s1 --no-tools")
    with pytest.raises(UsageError, match=r"needs -- COMMAND ARGS .stdio. or --url URL"):
        sh.run_cell("%lash mcp add clock")
    with pytest.raises(UsageError, match="needs a server NAME"):
        sh.run_cell("%lash mcp remove")
    with pytest.raises(UsageError, match="no MCP server 'nope'"):
        sh.run_cell("%lash mcp remove nope")
    with pytest.raises(UsageError, match="did not start"):
        sh.run_cell("%lash mcp add broken -- /bin/false")
    with pytest.raises(UsageError, match=r"^%lash mcp --approval 'maybe' is not one of "
                                         r"always, ask, never; see %lash help$"):
        sh.run_cell("%lash mcp add clock --approval maybe -- /bin/false")


_WEATHER_SERVER = """
from mcp.server.mcpserver import MCPServer
app = MCPServer("forecasts")

@app.tool()
def weather(city: str) -> str:
    return "sunny in " + city

app.run()
"""


def test_a_server_tool_named_like_a_notebook_tool_is_refused_with_the_prefix_to_use(sh, tmp_path):
    # the advice was @tool(name=...) / session.tools().remove_source('live:1'): neither
    # renames a server's tool, and a notebook user adds servers with %lash mcp add
    pytest.importorskip("mcp")
    script = tmp_path / "forecasts.py"
    script.write_text(_WEATHER_SERVER)
    sh.run_cell("from lash_nb import tool\n@tool\ndef weather(city: str) -> str:\n"
                "    'The weather in a city.'\n    return 'rain in ' + city\n")
    sh.run_cell("%lash open s1")
    with pytest.raises(UsageError) as err:
        sh.run_cell(f"%lash mcp add forecasts -- {sys.executable} {script}")
    msg = str(err.value)
    assert msg == ("MCP server 'forecasts' has a tool named 'weather', which the session "
                   "already has (source 'live:1'); add the server with a prefix: "
                   "%lash mcp add forecasts --prefix forecasts_ -- ..., or "
                   "MCPServer.stdio(..., prefix='forecasts_')")
    assert "no MCP servers" in sh.run_cell("%lash mcp list").data  # nothing was added
    sh.run_cell(f"%lash mcp add forecasts --prefix forecasts_ -- {sys.executable} {script}")
    listing = sh.run_cell("%lash mcp list").data
    assert "| forecasts | stdio |" in listing and "forecasts_weather" in listing


DSN_PASSWORD = "s3cret-pw-4471"
TOKEN = "tok_live_9f8e7d6c5b4a"


def test_credentials_on_the_server_command_line_are_not_shown(sh, tmp_path):
    # the official postgres server takes its DSN as an argument; others take --token,
    # --api-key or a URL with ?token=: %lash mcp list (saved with the notebook), the
    # server's repr and a start error showed them as typed
    pytest.importorskip("mcp")
    script = tmp_path / "forecasts.py"
    script.write_text(_WEATHER_SERVER)
    sh.run_cell("%lash open s1 --no-tools")
    sh.run_cell(f"db = %lash mcp add db -- {sys.executable} {script} "
                f"postgresql://me:{DSN_PASSWORD}@db.internal/sales --token {TOKEN} "
                f"--client-secret={TOKEN}")
    listing = sh.run_cell("%lash mcp list").data
    shown = (f"{script} postgresql://me:[redacted]@db.internal/sales --token [redacted] "
             "--client-secret=[redacted]")
    assert shown in listing
    with pytest.raises(UsageError) as err:
        sh.run_cell(f"%lash mcp add web --url 'https://mcp.example.invalid/mcp?token={TOKEN}'")
    with pytest.raises(UsageError) as err2:
        sh.run_cell(f"%lash mcp add bad -- /bin/false --api-key {TOKEN}")
    assert "https://mcp.example.invalid/mcp?token=[redacted]" in str(err.value)
    assert "/bin/false --api-key [redacted]" in str(err2.value)
    for text in (listing, repr(sh.user_ns["db"]), str(err.value), str(err2.value)):
        assert DSN_PASSWORD not in text and TOKEN not in text


_KEYED_SERVER = """
import os
from mcp.server.mcpserver import MCPServer
app = MCPServer("keyed")

@app.tool()
def weather(city: str) -> str:
    key = os.environ.get("WEATHER_API_KEY")
    return f"{city}: " + ("no key" if key is None else f"key of {len(key)} characters")

app.run()
"""


def test_mcp_add_passes_a_kernel_variable_to_the_server_with_env(sh, tmp_path, monkeypatch):
    # a server reads its API key from its environment; the SDK starts it with only HOME,
    # PATH and a few others, and %lash mcp add had no way to hand it the key
    pytest.importorskip("mcp")
    script = tmp_path / "keyed.py"
    script.write_text(_KEYED_SERVER)
    monkeypatch.setenv("WEATHER_API_KEY", "wk-live-0123456789")
    sh.run_cell("%lash open s1 --no-tools")
    with pytest.raises(UsageError, match=r"^%lash mcp add: --env NOPE_TOKEN: NOPE_TOKEN is not "
                                         r"set in the kernel's environment; set it \(os.environ"):
        sh.run_cell(f"%lash mcp add w --env NOPE_TOKEN -- {sys.executable} {script}")
    with pytest.raises(UsageError, match=r"--timeout 0: a timeout is a finite number of seconds above 0"):
        sh.run_cell(f"%lash mcp add w --timeout 0 -- {sys.executable} {script}")
    sh.run_cell(f"w = %lash mcp add w --env WEATHER_API_KEY --timeout 300 -- {sys.executable} "
                f"{script}")
    assert sh.user_ns["w"].timeout_s == 300
    sh.run_cell("r = %lash turn What does weather say for 'Oslo'?")
    assert sh.user_ns["r"].tool_calls[0].output == {"result": "Oslo: key of 18 characters"}
    sh.run_cell("%lash mcp remove w")
    sh.run_cell("other = 'abc-1234'")
    sh.run_cell(f"%lash mcp add w --env WEATHER_API_KEY={{other}} -- {sys.executable} {script}")
    sh.run_cell("r = %lash turn What does weather say for 'Lima'?")
    assert sh.user_ns["r"].tool_calls[0].output == {"result": "Lima: key of 8 characters"}
    listing = sh.run_cell("%lash mcp list").data
    assert "abc-1234" not in listing and "wk-live" not in listing


@pytest.mark.parametrize("given", ["inf", "nan", "-5", "0", "1e400"])
def test_mcp_add_refuses_a_timeout_that_is_not_a_finite_number_of_seconds(sh, given):
    """``--timeout inf`` (or ``1e400``) was taken and the server started: only nan, 0 and
    negatives were refused, each called "not a number of seconds above 0". Now one line
    says what is allowed (ADR 219); ``MCPServer(timeout_s=...)`` took any value."""
    sh.run_cell("%lash open s1 --no-tools")
    with pytest.raises(UsageError) as refused:
        sh.run_cell(f"%lash mcp add w --timeout {given} -- {sys.executable} server.py")
    line = str(refused.value)
    assert "\n" not in line and "a finite number of seconds above 0" in line, line
    assert "--timeout 300" in line, line
    assert "no MCP servers" in sh.run_cell("%lash mcp list").data  # nothing was added


@pytest.mark.parametrize("given", [float("inf"), float("nan"), -1.0, 0, "60"])
def test_an_mcp_server_refuses_a_timeout_that_is_not_a_finite_number_of_seconds(given):
    from lash_nb import MCPServer
    from lash_nb.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as refused:
        MCPServer.stdio("w", sys.executable, "server.py", timeout_s=given)
    assert "timeout_s" in str(refused.value) and "finite number of seconds above 0" in str(
        refused.value)
