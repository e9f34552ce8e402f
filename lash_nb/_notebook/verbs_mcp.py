"""``%lash mcp``: MCP servers as tool sources of the bound session.

``%lash mcp add NAME [--prefix P] [--approval always|ask|never] [--env NAME[=VALUE]]... --
COMMAND ARGS...`` starts a stdio server (``--approval ask``: each call of its tools waits for
Approve / Deny; ``--env``: a variable of the kernel's environment, or a value, it is given;
``--timeout S``: seconds a start or a call may take, 60 by default; ``--max-output N``:
characters of one result the model is sent, the session's 65,536 by default),
``%lash mcp add NAME --url URL`` connects to a streamable HTTP one (``{var}`` in the command
or URL is a notebook variable, as in prompts); both put the server's
tools into the session's catalog (``%lash tools`` toggles them). ``%lash mcp list`` shows the
session's servers; ``%lash mcp log NAME`` what a stdio one wrote to its stderr (its last
lines, without its secrets); ``%lash mcp remove NAME`` stops one and takes its tools out.
Servers stop with the session (``%lash open`` of another, kernel shutdown).
"""

from __future__ import annotations

import math
import os
import shlex
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .._tools.mcp import MCPServer
from .card import Card
from .parsing import interpolate, parse, parser

if TYPE_CHECKING:
    from .magics import LashMagics

MCP = parser("mcp", "MCP servers as tool sources: add NAME -- COMMAND ARGS | add NAME --url URL "
                    "| list | log NAME | remove NAME")
MCP.add_argument("action", choices=("add", "list", "log", "remove"))
MCP.add_argument("name", nargs="?", default=None)
MCP.add_argument("--url", default=None)
MCP.add_argument("--prefix", default="")
MCP.add_argument("--approval", default=None, choices=("always", "ask", "never"))
MCP.add_argument("--env", action="append", default=[])
MCP.add_argument("--timeout", type=float, default=60.0)
MCP.add_argument("--max-output", type=int, default=None)
MCP.add_argument("--session", default=None)


def mcp_args(m: LashMagics, argline: str, cell: str | None) -> Any:
    head, sep, tail = f" {argline} ".partition(" -- ")
    a = parse(MCP, head.strip())
    ns = m.user_ns
    if a.url:
        a.url = interpolate(a.url, ns, where="the URL")
    try:
        a.command = ([interpolate(w, ns, where="the command") for w in shlex.split(tail)]
                     if sep else [])
    except ValueError as err:
        raise UsageError(f"%lash mcp add: the command after -- does not parse ({err})") from None
    if a.action in ("add", "log", "remove") and not a.name:
        raise UsageError(f"%lash mcp {a.action} needs a server NAME; see %lash help")
    if a.action == "add" and bool(a.command) == bool(a.url):
        raise UsageError("%lash mcp add NAME needs -- COMMAND ARGS (stdio) or --url URL (HTTP), "
                         "one of them")
    a.env = server_env(a.env, ns)
    if not 0 < a.timeout < math.inf:  # nan too
        raise UsageError(f"%lash mcp add: --timeout {a.timeout:g}: a timeout is a finite "
                         "number of seconds above 0; give e.g. --timeout 300")
    if a.max_output is not None and a.max_output < 1:
        raise UsageError(f"%lash mcp add: --max-output {a.max_output} is not a number of "
                         "characters above 0; give e.g. --max-output 200000")
    if a.env and a.url:
        raise UsageError("%lash mcp add: --env is for a server started with -- COMMAND ARGS, "
                         "not one reached with --url")
    return a


def server_env(specs: list[str], ns: dict[str, Any]) -> dict[str, str]:
    """``--env NAME`` (the kernel's ``os.environ[NAME]``) or ``--env NAME=VALUE`` (``{var}``
    in VALUE is a notebook variable): the SDK starts a stdio server with only a few variables
    (HOME, PATH, ...), so a key it reads from its environment must be handed to it."""
    env: dict[str, str] = {}
    for spec in specs:
        name, eq, value = spec.partition("=")
        if not name.isidentifier():
            raise UsageError(f"%lash mcp add: --env {spec.partition('=')[0]!r} is not a "
                             "variable name; give --env NAME or --env NAME=VALUE")
        if eq:
            env[name] = interpolate(value, ns, where="--env")
        elif name in os.environ:
            env[name] = os.environ[name]
        else:
            raise UsageError(f"%lash mcp add: --env {name}: {name} is not set in the kernel's "
                             f"environment; set it (os.environ[{name!r}] = ...) or give "
                             f"--env {name}=VALUE")
    return env


async def mcp(m: LashMagics, argline: str, cell: str | None, assigned: bool) -> Any:
    a = mcp_args(m, argline, cell)
    b = await m.ctx.binding(a.session, stored=a.action != "add")  # a read of a typo: refused
    admin = b.session.tools()
    servers = {s.name: (sid, s) for sid, s in admin.servers()}
    if a.action == "add":
        if a.name in servers:
            raise UsageError(f"an MCP server {a.name!r} is already added; "
                             f"%lash mcp remove {a.name} first")
        server = (MCPServer.http(a.name, a.url, prefix=a.prefix, approval=a.approval,
                                 timeout_s=a.timeout, max_output=a.max_output) if a.url else
                  MCPServer.stdio(a.name, *a.command, prefix=a.prefix, approval=a.approval,
                                  env=a.env or None, timeout_s=a.timeout,
                                  max_output=a.max_output))
        await admin.add_server(server)
        names = ", ".join(t.name for t in server.tool_manifests()) or "(none)"
        left = (f"; left out (their inputSchema is not an object schema): "
                f"{', '.join(sorted(server.left_out))}") if server.left_out else ""
        print(f"MCP server {a.name!r} started ({server.transport}): {names}{left}")
        return server if assigned else None
    if a.action == "log":
        if a.name not in servers:
            raise UsageError(f"no MCP server {a.name!r}; %lash mcp list shows them")
        server = servers[a.name][1]
        print(server.error_output or (
            f"MCP server {a.name!r} wrote no error output" if server.transport == "stdio" else
            f"MCP server {a.name!r} is reached over HTTP: its error output is where it runs"))
        return None
    if a.action == "remove":
        if a.name not in servers:
            raise UsageError(f"no MCP server {a.name!r}; %lash mcp list shows them")
        sid, server = servers[a.name]
        admin.remove_source(sid)
        await server.aclose()
        print(f"MCP server {a.name!r} stopped and its tools removed")
        return None
    rows = ["| server | transport | command / URL | state | tools |", "|---|---|---|---|---|"]
    for _sid, s in admin.servers():
        state = "running" if s.running else f"stopped{': ' + s.error if s.error else ''}"
        if s.left_out:
            state += f" (left out: {', '.join(sorted(s.left_out))})"
        tools = ", ".join(t.name for t in s.tool_manifests())
        rows.append(f"| {_cell(s.name)} | {s.transport} | `{_cell(s.target)}` | {_cell(state)} "
                    f"| {_cell(tools)} |")
    if len(rows) == 2:
        return Card("no MCP servers; add one with `%lash mcp add NAME -- COMMAND ARGS` "
                        "or `--url URL`")
    return Card("\n".join(rows))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")
