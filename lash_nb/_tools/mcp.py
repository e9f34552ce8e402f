"""``MCPServer``: a Model Context Protocol server as a tool source (the ``mcp`` SDK, extra).

Theory of operation
- ``await server.start()`` spawns the server (stdio: a child process speaking JSON-RPC on
  its stdin/stdout; streamable HTTP: a URL), initializes the session and lists its tools.
  One background task owns the connection from start to ``aclose()`` (the SDK's streams and
  task groups must be entered and left by one task); calls are made from the turn's task on
  the same event loop.
- Manifests: id ``mcp:<server>:<tool>``, name ``<prefix><tool>`` (no prefix by default; two
  servers with one tool name are refused at registration like any two tools), the server's
  input schema as is, its description cut at :data:`MAX_DESCRIPTION` characters. A tool whose
  input schema is not an object schema (or is too large), and the second of two tools whose
  names read the same for a model, are left out (:mod:`.mcp_listing`), named in ``left_out``
  and in one warning on ``lash_nb.mcp``; the server's other tools work.
  A ``notifications/tools/list_changed`` from the server lists the tools again and calls
  every ``on_tools_changed`` callback (``session.tools().add_server`` re-adds the source, so
  the catalog follows); one listing runs at a time, and the changes announced meanwhile
  make one more.
- Results: structured content (a JSON object) when the server gives one, else the text
  parts joined (images and resources are named, not inlined). A result flagged ``isError``,
  a protocol error and a dead server raise :class:`ToolServerError`, which the turn gives
  the model as an error result. Server text is cleaned by the turn like any tool output;
  bytes a stdio server sends that are not UTF-8 read as U+FFFD. Its error texts (and its
  last error output) lose the values of its secret-named ``env`` variables
  (``SLACK_BOT_TOKEN``) and of its secret-named options (``--token X``, a URL's password or
  ``?key=``) wherever they appear, URL passwords and credential shapes; so do its successful
  results, which the turn bounds (``max_output``) and then scrubs with
  :meth:`MCPServer.scrub_result` before the model, the events or the store see them (ADR 174).
- A stdio server's stderr is read into :class:`~lash_nb._tools.error_output.ErrorOutput`
  (bounded, scrubbed as above, never on disk): ``error_output`` and ``%lash mcp log`` show
  it, and an error quotes its last line that says something.
- Life: stopped by ``aclose()``, by the session's ``close()`` (servers added with
  ``add_server``) or the core's ``close()`` (servers given to the builder). At process exit
  (a kernel shut down or restarted) any child still running is terminated with its process
  group (a launcher's helpers too).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import importlib
import logging
import math
import os
import re
import signal
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core.approval import ApprovalPolicy, policy_map
from .._core.attachments import Attachment, TextWithImages, make_attachment
from .._core.secrets import (
    Scrubber,
    command_secrets,
    scrub_command,
    scrub_urls,
    secret_named,
    url_secrets,
)
from .._core.text import clean_json, clean_text
from .._core.tool_output import check_max_output
from .._core.tools import ToolContext, ToolManifest
from .._errors import ConfigurationError, LashError, ToolServerError
from .error_output import ErrorOutput
from .mcp_listing import ToolListFilter, printable, shown_name

_RUNNING: weakref.WeakSet[MCPServer] = weakref.WeakSet()
log = logging.getLogger("lash_nb.mcp")  # a tool left out of a server's listing, once
MAX_DESCRIPTION = 4096  # characters of a tool's description a model is sent
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _need_mcp() -> Any:
    try:
        import mcp
    except ImportError:
        raise ConfigurationError(
            "MCP servers need the mcp package: pip install 'lash-nb-core[mcp]'") from None
    return mcp


# how long a start may take at least, whatever the calls' timeout: a server started by a
# launcher (npx, uvx) may first download itself, and a short ``--timeout`` is for the calls
START_WAIT_S = 60.0


class MCPServer:
    """A Model Context Protocol server whose tools join a session's catalog.

    Make one with :meth:`stdio` (a command) or :meth:`http` (a streamable HTTP URL), then
    ``await session.tools().add_server(server)`` (starts it) or ``await server.start()`` and
    pass it to ``LashCore.builder().tools(...)``."""

    def __init__(self, name: str, *, command: str | None = None, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 url: str | None = None, prefix: str = "", timeout_s: float = 60.0,
                 approval: str | ApprovalPolicy | Mapping[str, Any] | None = None,
                 max_output: int | None = None) -> None:
        if not isinstance(name, str) or not name or not set(name) <= _NAME_OK:
            raise ConfigurationError(
                f"MCP server name {name!r} must be letters, digits, '_', '-' or '.'")
        if (command is None) == (url is None):
            raise ConfigurationError("an MCP server needs a command (stdio) or a url (http), not both")
        if (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                or not 0 < timeout_s < math.inf):  # nan too
            raise ConfigurationError(
                f"timeout_s of MCP server {name!r} is {timeout_s!r}: a timeout is a finite "
                "number of seconds above 0; give e.g. timeout_s=300")
        self.name = name
        self.command, self.args = command, list(args)
        self.env, self.cwd = dict(env) if env else None, cwd
        # what it was handed as secrets: the values of its secret-named variables
        # (SLACK_BOT_TOKEN=...), of secret-named options (--token X) and a URL's password and
        # secret-named query values: never in its errors or results, in any encoding
        handed = [v for k, v in (self.env or {}).items() if secret_named(k) and isinstance(v, str)]
        handed += command_secrets([command, *self.args]) if command is not None else url_secrets(
            str(url))
        self._secrets = Scrubber(handed)
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        # characters of one result the model is sent (None: the session's; ADR 174)
        self.max_output = None if max_output is None else check_max_output(
            max_output, f"max_output of MCP server {name!r}")
        # approval: one policy for all its tools or {server tool name: policy, "*": rest}
        self.approval, self._approval_named = policy_map(approval, what=f"approval of MCP server {name!r}")
        self.on_tools_changed: list[Callable[[], None]] = []
        self._tools: list[Any] = []  # mcp Tool objects
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._errors: ErrorOutput | None = None  # a stdio server's stderr
        self._pids: set[int] = set()
        self._names: dict[str, str] = {}  # manifest name -> the server's tool name
        self._relisting: asyncio.Task[None] | None = None  # listing its tools again
        self._relist_again = False  # a change was announced while it listed
        self.error: str | None = None  # why it stopped, when it stopped on its own
        # its tools the last listing left out (no object schema, a name taken): name -> why
        self.left_out: dict[str, str] = {}
        self._listing_left_out: dict[str, str] = {}
        self._warned: set[str] = set()

    @classmethod
    def stdio(cls, name: str, command: str, *args: str, env: Mapping[str, str] | None = None,
              cwd: str | None = None, prefix: str = "", timeout_s: float = 60.0,
              approval: str | ApprovalPolicy | Mapping[str, Any] | None = None,
              max_output: int | None = None) -> MCPServer:
        """A server started as ``command args...``, speaking MCP on its stdin/stdout.
        ``approval``: ``"ask"`` / ``"never"`` / ``"always"`` for all its tools, or
        ``{"write_file": "ask", "*": "always"}`` by the server's tool names. ``max_output``:
        characters of one result the model is sent (unset: the session's, 65,536)."""
        return cls(name, command=command, args=args, env=env, cwd=cwd, prefix=prefix,
                   timeout_s=timeout_s, approval=approval, max_output=max_output)

    @classmethod
    def http(cls, name: str, url: str, *, prefix: str = "", timeout_s: float = 60.0,
             approval: str | ApprovalPolicy | Mapping[str, Any] | None = None,
             max_output: int | None = None) -> MCPServer:
        """A running server reached over streamable HTTP at ``url`` (e.g. ``.../mcp``);
        ``approval`` and ``max_output`` as in :meth:`stdio`."""
        return cls(name, url=url, prefix=prefix, timeout_s=timeout_s, approval=approval,
                   max_output=max_output)

    # ------------------------------------------------------------------ life
    @property
    def running(self) -> bool:
        return self._session is not None

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    @property
    def target(self) -> str:
        """The command line or URL, for errors and the repr: credential shapes in it (an
        ``--token X`` / ``--api-key=X`` argument, a URL's password, ``?token=``) are
        ``[redacted]``."""
        if self.command is not None:
            return scrub_command([self.command, *self.args])
        return scrub_urls(str(self.url))

    @property
    def error_output(self) -> str:
        """What a stdio server wrote to its stderr since it was last started: its last lines,
        ``[N earlier lines dropped]`` first when there were more, without its secrets (an
        HTTP server's is where it runs: empty)."""
        return self._errors.text() if self._errors is not None else ""

    async def start(self) -> MCPServer:
        """Connect, initialize and list the tools; a server that cannot start raises a
        one-line :class:`ToolServerError` with its last error output."""
        if self.running:
            return self
        _need_mcp()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ready: asyncio.Future[None] = self._loop.create_future()
        self.error = None
        self._task = self._loop.create_task(self._run(ready), name=f"mcp:{self.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), max(self.timeout_s, START_WAIT_S))
        except BaseException as err:
            task = self._task
            if task is not None and not ready.done():  # it never started: nothing to stop
                task.cancel()  # gracefully (aclose would wait 10 s for it)
                with contextlib.suppress(BaseException):
                    await task
            await self.aclose()
            if ready.done() and not ready.cancelled():
                ready.exception()  # read: reported once, as the error below
            if isinstance(err, asyncio.CancelledError):
                raise
            await self._settle()
            raise ToolServerError(
                f"MCP server {self.name!r} ({self.target}) did not start: {self._why(err)}; "
                "check the command or URL (run it in a terminal to see)") from None
        _RUNNING.add(self)
        return self

    async def aclose(self) -> None:
        """Stop the server (a stdio child is terminated); safe to call twice."""
        task, self._task = self._task, None
        if self._stop is not None:
            self._stop.set()
        if task is not None and not task.done():
            if task.get_loop() is asyncio.get_running_loop():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 10)
                except (TimeoutError, Exception):
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            else:  # another loop (a notebook restarting its loop thread): kill the child
                _kill(self._pids)
        self._session = None
        _RUNNING.discard(self)

    async def __aenter__(self) -> MCPServer:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        from mcp.client.session import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                read = ToolListFilter(read, self.name, self._leave_out)
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message))
                await session.initialize()
                self._tools = await self._list(session)
                self._session = session
                if not ready.done():
                    ready.set_result(None)
                assert self._stop is not None
                await self._stop.wait()
        except BaseException as err:
            if not ready.done():
                ready.set_exception(err if isinstance(err, Exception) else ToolServerError(repr(err)))
            elif self._stop is not None and not self._stop.is_set():
                if isinstance(err, Exception):
                    await self._settle()
                self.error = self._why(err)
            if not isinstance(err, Exception):
                raise
        finally:
            self._session = None

    def _transport(self) -> Any:
        if self.command is None:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(str(self.url))
        from mcp.client.stdio import StdioServerParameters, stdio_client

        errors = self._errors = ErrorOutput(self.name, self._scrub)
        assert errors.writer is not None
        # "replace": one byte that is not UTF-8 (a file passed on as read) would stop the
        # SDK's reader, and every call would wait for its timeout
        params = StdioServerParameters(command=self.command, args=self.args, env=self.env,
                                       cwd=self.cwd, encoding_error_handler="replace")
        before = _children()
        cm = stdio_client(params, errlog=errors.writer)

        @contextlib.asynccontextmanager
        async def tracked() -> Any:
            pids: set[int] = set()
            try:
                async with cm as streams:
                    errors.spawned()  # the server has its stderr; ours would keep it open
                    # the SDK starts the server as a session leader: a new child that is one
                    pids = {p for p in _children() - before if _leads_session(p)}
                    self._pids |= pids  # for the exit-time clean-up
                    yield streams
            finally:
                errors.spawned()  # also when it could not be spawned
                # the SDK stopped the server; a helper its launcher (npx, a shell script)
                # started lives on in its process group: end it now, while the group id
                # cannot belong to anyone else
                _kill_groups(pids)
                self._pids -= pids

        return tracked()

    def _why(self, err: BaseException) -> str:
        while isinstance(err, BaseExceptionGroup) and err.exceptions:
            err = err.exceptions[0]
        text = f"{type(err).__name__}: {err}".strip().rstrip(":")
        if isinstance(err, asyncio.TimeoutError):  # a start's wait (a call's has its own text)
            text = f"no answer in {max(self.timeout_s, START_WAIT_S):g} s"
        tail = _last_error_line(self._errors.lines()) if self._errors is not None else ""
        why = f"{text} (its last error output: {tail[:200]})" if tail else text
        return self._scrub(why).replace("\n", " ")  # a server may log its request, key and all

    async def _settle(self) -> None:
        """Let the reader of a stdio server's stderr take in what the server wrote before it
        exited (at most a second), so an error can quote its last words."""
        if self._errors is not None:
            await asyncio.to_thread(self._errors.wait, 1.0)

    def _scrub(self, text: str) -> str:
        """The server's own secrets (its env), URL passwords and credential shapes out."""
        return scrub_urls(self._secrets.scrub_exact(text))

    def scrub_result(self, text: str) -> str:
        """A string of one of its successful results without its secrets (as its errors):
        the turn applies it to every string of the result, after bounding it (ADR 174)."""
        return self._scrub(text)

    def _leave_out(self, name: str, reason: str) -> None:
        """A ``tools/list`` answer had an entry it cannot offer (:class:`ToolListFilter`)."""
        if name:
            self._listing_left_out[name] = reason
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(reason)

    async def _list(self, session: Any) -> list[Any]:
        tools: list[Any] = []
        cursor = None
        self._listing_left_out = {}
        while True:
            if cursor is None:
                page = await session.list_tools()
            else:
                from mcp import types

                page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                self.left_out = self._listing_left_out
                if "jsonschema" not in sys.modules and any(t.output_schema for t in tools):
                    # the SDK checks such a tool's result with jsonschema, imported on the
                    # first call: on the loop, that import held it 1.5 s; load it here instead
                    with contextlib.suppress(ImportError):  # the SDK then says so itself
                        await asyncio.to_thread(importlib.import_module, "jsonschema")
                return tools

    async def _on_message(self, message: Any) -> None:
        from mcp import types

        if isinstance(message, types.ToolListChangedNotification):
            # one listing at a time: changes announced while it runs make one more listing
            # (a burst of notifications is two listings, not one each)
            if self._relisting is not None and not self._relisting.done():
                self._relist_again = True
            else:
                self._relisting = asyncio.get_running_loop().create_task(self._relist())

    async def _relist(self) -> None:
        again = True
        while again:
            self._relist_again = False
            session = self._session
            if session is None:
                return
            try:
                self._tools = await self._list(session)
            except Exception as err:
                self.error = f"listing its tools again failed: {self._why(err)}"
                return
            for callback in list(self.on_tools_changed):
                callback()
            again = self._relist_again

    # ------------------------------------------------------------------ tool provider
    def tool_manifests(self) -> Sequence[ToolManifest]:
        """The server's tools; its text is untrusted: names are cut to what model APIs take
        (letters, digits, ``_``, ``-``; 64 characters), descriptions and schemas cleaned."""
        out = []
        self._names = {}
        for t in self._tools:
            name = shown_name(f"{self.prefix}{t.name}")
            if name in self._names:  # 'a.b' after 'a_b': one name for a model, the first keeps it
                self._leave_out(name, (
                    f"MCP server {self.name!r}: tool {name!r} left out: its name reads {name!r} "
                    f"for a model, as tool {printable(self._names[name])!r} does, which keeps "
                    "it; the server must name its tools apart"))
                continue
            self._names[name] = t.name
            schema = clean_json(dict(t.input_schema or {"type": "object"}))
            description = clean_text(t.description or "")
            if len(description) > MAX_DESCRIPTION:  # it goes with every model call
                description = description[:MAX_DESCRIPTION] + " [cut]"
            out.append(ToolManifest(f"mcp:{self.name}:{clean_text(t.name)}", name,
                                    description, schema))
        return out

    def approval_for(self, name: str) -> ApprovalPolicy | None:
        """The policy for one of its tools (by the catalog name or the server's own name)."""
        named = self._approval_named
        if named:
            found = named.get(name) or named.get(self._names.get(name, name))
            if found is not None:
                return found
        return self.approval

    async def execute(self, name: str, args: Mapping[str, Any], context: ToolContext) -> Any:
        session = self._session
        if session is None:
            why = f" ({self.error})" if self.error else ""
            raise ToolServerError(f"MCP server {self.name!r} is not running{why}; start it "
                                  f"again (%lash mcp remove {self.name}, then %lash mcp add; "
                                  "or session.tools().add_server(...))")
        if asyncio.get_running_loop() is not self._loop:
            raise ToolServerError(f"MCP server {self.name!r} was started on another event loop; "
                                  "start it where the session's turns run")
        tool_name = self._names.get(name, name)
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        try:
            result = await session.call_tool(tool_name, dict(args),
                                             read_timeout_seconds=self.timeout_s)
        except MCPError as err:
            if err.code == CONNECTION_CLOSED:
                await self._settle()
                raise self._lost(err) from None
            if err.code == REQUEST_TIMEOUT:
                raise ToolServerError(
                    f"MCP server {self.name!r}: tool {tool_name!r} gave no answer in "
                    f"{self.timeout_s:g} s; a slower tool needs a longer timeout (%lash mcp add "
                    f"{self.name} --timeout S ..., or MCPServer.{self.transport}(..., "
                    "timeout_s=S))") from None
            raise ToolServerError(f"MCP server {self.name!r}: {self._scrub(str(err))}") from None
        except (OSError, EOFError) as err:
            await self._settle()
            raise ToolServerError(f"MCP server {self.name!r} failed: {self._why(err)}") from None
        if result.is_error:
            text = _content_text(result.content)
            raise ToolServerError(f"MCP server {self.name!r}, tool {tool_name!r}: "
                                  f"{self._scrub(text) or 'an error with no text'}")
        if result.structured_content is not None:
            return result.structured_content
        images: list[Attachment] = []
        text = _content_text(result.content, images=images, tool=tool_name)
        return TextWithImages(text, tuple(images)) if images else text

    def _lost(self, err: BaseException) -> ToolServerError:
        """The connection closed under a call (a stdio server exited, crashed, was killed):
        the server reads stopped, with why (its last error output), and is let go."""
        if self._stop is None or self._stop.is_set():  # we stopped it (removed, closed)
            return ToolServerError(f"MCP server {self.name!r} was stopped during the call")
        why = self._why(err)
        self.error = f"it stopped during a call: {why}"
        self._session = None
        if self._stop is not None:
            self._stop.set()  # its task leaves the SDK's context, which reaps the process
        _RUNNING.discard(self)
        return ToolServerError(
            f"MCP server {self.name!r} stopped during the call ({why}); add it again to use "
            f"its tools (%lash mcp remove {self.name}, then %lash mcp add; or "
            "session.tools().add_server(...))")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MCPServer {self.name} {self.transport} {self.target!r} {state}, {len(self._tools)} tools>"


async def close_servers(registry: Any, *, prefix: str) -> None:
    """Stop every MCP server among ``registry``'s sources whose id starts with ``prefix``
    (``live:`` at a session's close: the servers the session added)."""
    for sid, provider in list(registry.sources.items()):
        if isinstance(provider, MCPServer) and sid.startswith(prefix):
            await provider.aclose()


_NOT_THE_ERROR = re.compile(r"Node\.js v[\d.]+|at .*|\^+|\s*")  # node's trailer, frames, carets


def _last_error_line(lines: Sequence[str]) -> str:
    """The last line of a server's error output that says something: not node's closing
    ``Node.js v20.x``, a stack frame or a caret line (the error is above them)."""
    for line in reversed(lines):
        if not _NOT_THE_ERROR.fullmatch(line.strip()):
            return line.strip()
    return ""


def _content_text(content: Sequence[Any], *, images: list[Attachment] | None = None,
                  tool: str = "") -> str:
    """A result's content as text; with ``images``, each image it holds is appended there
    (decoded; the text says it is attached below) instead of being named only."""
    out = []
    for c in content:
        kind = getattr(c, "type", "")
        if kind == "text":
            out.append(c.text)
        elif kind == "image" and images is not None and (image := _image_of(c, tool, images)):
            out.append(f"[image {image.ref.describe()}, attached below]")
        elif kind in ("image", "audio"):
            out.append(f"[{kind} {getattr(c, 'mime_type', '')}, {len(getattr(c, 'data', '') or '')} base64 chars]")
        elif kind == "resource":
            res = c.resource
            out.append(getattr(res, "text", None) or f"[resource {res.uri}]")
        elif kind == "resource_link":
            out.append(f"[resource {c.uri}]")
        else:
            out.append(f"[{kind or type(c).__name__}]")
    return "\n".join(out)


def _image_of(content: Any, tool: str, images: list[Attachment]) -> Attachment | None:
    """The attachment of an MCP image content (None: not base64, or past the attachment
    limit: then it is only named, as before)."""
    try:
        data = base64.b64decode(getattr(content, "data", "") or "", validate=True)
        image = make_attachment(data, str(getattr(content, "mime_type", "") or "image/png"),
                                label=f"{tool} image {len(images) + 1}")
    except (ValueError, LashError):
        return None
    images.append(image)
    return image


def _children() -> set[int]:
    """This process's child pids (Linux /proc; empty elsewhere)."""
    me = str(os.getpid())
    out: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{me}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{me}/task/{task}/children") as f:
                out.update(int(p) for p in f.read().split())
    return out


def _leads_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except OSError:
        return False


def _kill_groups(pids: set[int]) -> None:
    """SIGTERM to what is left of each server's process group (the server stopped)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)


def _kill(pids: set[int]) -> None:
    """SIGTERM to each server still our child, with its process group (the SDK starts each
    server in a session of its own): a launcher and the helpers it started go together."""
    for pid in pids:
        if not _our_child(pid):
            continue  # gone, and the pid may be someone else's now
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)


def _our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return not os.path.isdir("/proc")  # no /proc to ask: as before
    return fields[0] != "Z" and fields[1] == str(os.getpid())


@atexit.register
def _terminate_running() -> None:
    """A kernel that exits with servers still running takes their children with it."""
    for server in list(_RUNNING):
        _kill(server._pids)
