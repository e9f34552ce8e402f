"""``Sandbox``: the code-mode REPL, a Python kernel in its own process (jupyter_client).

Theory of operation
- It is never the user's kernel: a fresh ``ipykernel`` started by :meth:`Sandbox.start` in a
  temporary working directory, with a minimal environment (no variable of the host's: no
  keys, no tokens), under resource limits set in the child before the kernel starts
  (``launch.py``: CPU seconds and address space for the process, a file-size cap), and, where
  ``unshare`` can make namespaces without privileges, in its own network namespace (no network)
  and PID namespace with its own ``/proc`` (the host's processes, their environments
  included, are invisible). ZeroMQ runs over Unix sockets in the working directory, so the
  kernel needs no network. Filesystem isolation is NOT provided: the kernel can read what
  the user's account can (ADR 0070).
- :meth:`run_cell` executes one cell and collects its outputs (stream text, results,
  displays, the error) up to ``output_chars``; the rest is dropped and marked truncated.
  Calls the cell makes back to the host (``submit``, ``llm_query``, host tools) arrive as
  ``input_request`` messages on the kernel's stdin channel whose prompt starts with
  ``BRIDGE_PREFIX``; ``on_request`` answers each, and the reply goes back as the input.
- Wall time per cell counts the kernel's own time, not the time a cell waits on a host call
  (a tool, its approval by the user, ``llm_query``): those are bounded as model tool calls
  are, by Stop. Past ``cell_wall_s`` the cell is interrupted; if it is not idle
  ``interrupt_grace_s`` later the kernel is restarted (variables are lost; the output says
  so). A kernel that died (the CPU limit kills it, or the OOM killer) is restarted too.
- A sandbox never outlives the process that started it: the ``unshare`` process gets
  ``PR_SET_PDEATHSIG`` (killed when the starting thread dies, even by SIGKILL) and an
  ``atexit`` kill; ``unshare --kill-child`` takes the kernel with it.
- Cancel (Stop): the task running :meth:`run_cell` is cancelled; the sandbox interrupts the
  cell at once and waits for the kernel to be idle in the background; the next cell first
  waits for that (restarting if it does not come). The outputs so far stay on ``current``.
  Every use of the kernel (a cell, the prelude, the tools' functions) first waits for that
  settling: two readers of the kernel's messages would each lose the other's.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..._errors import CodeExecutionUnavailable
from .bridge import BRIDGE_PREFIX, tool_stubs
from .process import die_with_parent, kernel_argv, namespace_prefix, sandbox_env

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_KEEP_MIMES = ("text/plain", "text/html", "image/png")
_MAX_IMAGE_CHARS = 400_000


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandbox. ``cpu_s`` and ``memory_bytes`` hold for the kernel process
    (its whole life, not per cell); 0 turns a limit off."""

    cell_wall_s: float = 120.0
    cpu_s: int = 1800
    memory_bytes: int = 4 * 2**30
    file_bytes: int = 2**30
    output_chars: int = 20_000
    start_timeout_s: float = 60.0
    interrupt_grace_s: float = 5.0


@dataclass
class CellOutput:
    """What one cell gave. ``status``: ok | error | timeout | died | cancelled."""

    code: str
    text: str = ""  # stdout, stderr and text/plain results in arrival order
    displays: list[dict[str, str]] = field(default_factory=list)  # {mime: data}
    error: str | None = None
    status: str = "running"
    truncated: bool = False
    duration_ms: float = 0.0
    note: str | None = None  # what happened to the sandbox (restarted, ...)

    def add_text(self, text: str, cap: int) -> None:
        room = cap - len(self.text)
        if room <= 0:
            self.truncated = self.truncated or bool(text)
            return
        if len(text) > room:
            self.truncated = True
        self.text += text[:room]


OnRequest = Callable[[dict[str, Any]], Awaitable[Any]]
OnOutput = Callable[[str], None]


class Sandbox:
    def __init__(self, limits: SandboxLimits | None = None, *, network: bool = False) -> None:
        self.limits = limits or SandboxLimits()
        self.allow_network = network
        self.workdir: str | None = None
        self.isolation = "not started"
        self.restarts = 0
        self.current: CellOutput | None = None
        self.started_s: float | None = None  # seconds the last start took
        self._km: Any = None
        self._kc: Any = None
        self._settling: asyncio.Task[str] | None = None
        self._prelude = ""  # code run after every (re)start, silently
        self._tools = ""  # the host tools' functions, likewise
        self._host_s = 0.0  # seconds the running cell spent waiting on host calls
        self._host_busy = False

    @property
    def started(self) -> bool:
        return self._kc is not None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        if self._kc is not None:
            return
        try:
            from jupyter_client.kernelspec import KernelSpec
            from jupyter_client.manager import AsyncKernelManager
        except ImportError as err:
            raise CodeExecutionUnavailable(
                "code mode needs jupyter_client and ipykernel; pip install 'lash-nb-core[code]'"
            ) from err
        t0 = time.perf_counter()
        self.workdir = self.workdir or tempfile.mkdtemp(prefix="lash-sandbox-")
        prefix = [] if self.allow_network else namespace_prefix()
        self.isolation = ("network off, own PID namespace" if prefix else
                          "network on: unshare cannot make namespaces here")
        lim = self.limits
        argv = kernel_argv(prefix, cpu_s=lim.cpu_s, memory_bytes=lim.memory_bytes,
                           file_bytes=lim.file_bytes)
        km = AsyncKernelManager(transport="ipc", ip=os.path.join(self.workdir, "k"),
                                connection_file=os.path.join(self.workdir, "kernel.json"))
        # the kernel command is ours, not an installed kernelspec; interrupts go as a message
        # on the control channel (the kernel may be another PID namespace's pid 1)
        km._kernel_spec = KernelSpec(argv=argv, language="python", display_name="lash sandbox",
                                     interrupt_mode="message")
        try:
            extra = {"preexec_fn": die_with_parent} if sys.platform.startswith("linux") else {}
            await km.start_kernel(env=sandbox_env(self.workdir), cwd=self.workdir, **extra)
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=lim.start_timeout_s)
        except Exception as err:
            with contextlib.suppress(Exception):
                await km.shutdown_kernel(now=True)
            raise CodeExecutionUnavailable(
                f"the code-mode sandbox kernel did not start ({type(err).__name__}: {err}); "
                "check that ipykernel is installed in this Python") from err
        self._km, self._kc = km, kc
        atexit.register(self._kill_now)  # a sandbox never outlives the user's kernel
        for code in (_SURROGATE_SAFE_PACK, _OLD_MATPLOTLIB_INLINE, self._prelude, self._tools):
            if code:
                await self._quiet(code)
        self.started_s = time.perf_counter() - t0

    async def close(self) -> None:
        atexit.unregister(self._kill_now)
        kc, km, self._kc, self._km = self._kc, self._km, None, None
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            with contextlib.suppress(Exception):
                await km.shutdown_kernel(now=True)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    async def restart(self) -> None:
        """A fresh kernel in the same working directory (files stay, variables go)."""
        atexit.unregister(self._kill_now)
        km, kc = self._km, self._kc
        self._km = self._kc = None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            with contextlib.suppress(Exception):
                await km.shutdown_kernel(now=True)
        self.restarts += 1
        await self.start()

    async def set_prelude(self, code: str) -> None:
        """Code run now (if started) and after every restart, with no output kept (the
        session using the sandbox sets it: its bridge and shared data)."""
        self._prelude = code
        if self._kc is not None:
            await self._quiet(code)

    async def set_tools(self, names: list[str]) -> None:
        """Define one function per host tool in the kernel (now and after restarts)."""
        self._tools = tool_stubs(names)
        if self._kc is not None and self._tools:
            await self._quiet(self._tools)

    async def reset(self) -> None:
        """Forget every variable (``%reset``) and run the prelude again."""
        await self._settle()
        await self._quiet("get_ipython().run_line_magic('reset', '-f')")
        if self._prelude:
            await self._quiet(self._prelude)

    def _kill_now(self) -> None:
        proc = getattr(getattr(self._km, "provisioner", None), "process", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()  # unshare --kill-child takes the kernel with it

    async def pid(self) -> int | None:
        prov = getattr(self._km, "provisioner", None)
        proc = getattr(prov, "process", None)
        return getattr(proc, "pid", None)

    # ------------------------------------------------------------------ cells
    async def run_cell(self, code: str, on_request: OnRequest,
                       on_output: OnOutput | None = None) -> CellOutput:
        await self.start()
        await self._settle()
        out = self.current = CellOutput(code)
        self._host_s, self._host_busy = 0.0, False
        kc, lim = self._kc, self.limits
        t0 = time.perf_counter()
        msg_id = _msg_id(kc.execute(code, store_history=False, allow_stdin=True,
                                    stop_on_error=False))
        stdin = asyncio.ensure_future(self._serve_stdin(msg_id, on_request))
        try:
            if not await self._collect_in_wall_time(msg_id, out, on_output, t0):
                await self._after_wall_time(msg_id, out)
            if out.status == "died":
                await self.restart()
                out.note = "sandbox restarted"
                out.error = ("the sandbox kernel died during this cell (it exited, or hit a "
                             f"resource limit: {lim.cpu_s} CPU seconds or memory); it was "
                             "restarted and its variables are gone")
        except asyncio.CancelledError:
            out.status = "cancelled"
            out.duration_ms = _ms(t0)
            self._interrupt_now()
            self._settling = asyncio.ensure_future(self._drain(msg_id))
            raise
        finally:
            # a host call cut here (a tool, llm_query) records itself before the turn commits
            stdin.cancel()
            await asyncio.wait({stdin}, timeout=lim.interrupt_grace_s)
        out.duration_ms = _ms(t0)
        return out

    async def _collect_in_wall_time(self, msg_id: str, out: CellOutput,
                                    on_output: OnOutput | None, t0: float) -> bool:
        """Collect the cell; False when it ran past its wall time. Time the cell spends
        waiting on the host (a tool waiting for the user's approval, ``llm_query``) does not
        count against it."""
        task = asyncio.ensure_future(self._collect(msg_id, out, on_output))
        try:
            while True:
                left = self.limits.cell_wall_s + self._host_s - (time.perf_counter() - t0)
                if self._host_busy:
                    left = max(left, 0.5)  # look again once the host call is over
                if left <= 0:
                    return False
                done, _ = await asyncio.wait({task}, timeout=left)
                if done:
                    task.result()
                    return True
        finally:
            task.cancel()

    async def _collect(self, msg_id: str, out: CellOutput,
                       on_output: OnOutput | None = None) -> None:
        cap = self.limits.output_chars
        while True:
            try:
                msg = await self._kc.get_iopub_msg(timeout=0.5)
            except Exception:  # queue.Empty: is the kernel still there?
                if not await self._km.is_alive():
                    out.status = "died"  # the caller restarts it, outside the wall-time wait
                    return
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                before = len(out.text)
                out.add_text(content.get("text", ""), cap)
                if on_output is not None and len(out.text) > before:
                    on_output(out.text[before:])
            elif kind in ("execute_result", "display_data"):
                self._display(content.get("data", {}), out, cap)
            elif kind == "error":
                tb = "\n".join(content.get("traceback", ())) or (
                    f"{content.get('ename')}: {content.get('evalue')}")
                out.error = _ANSI.sub("", tb)[-4000:]
            elif kind == "status" and content.get("execution_state") == "idle":
                if out.status == "running":
                    out.status = "error" if out.error else "ok"
                return

    def _display(self, data: dict[str, Any], out: CellOutput, cap: int) -> None:
        kept = {m: str(data[m]) for m in _KEEP_MIMES if m in data}
        if "image/png" in kept and len(kept["image/png"]) > _MAX_IMAGE_CHARS:
            del kept["image/png"]
        if "text/plain" in kept:
            out.add_text(kept["text/plain"].rstrip("\n") + "\n", cap)
        if set(kept) - {"text/plain"} and len(out.displays) < 8:
            out.displays.append(kept)

    async def _after_wall_time(self, msg_id: str, out: CellOutput) -> None:
        lim = self.limits
        out.status = "timeout"
        self._interrupt_now()
        try:
            if await asyncio.wait_for(self._drain(msg_id), lim.interrupt_grace_s) == "died":
                raise TimeoutError  # the interrupt killed it: restart below
            out.error = (f"the cell ran past the wall-time limit of {lim.cell_wall_s:g} s and "
                         "was interrupted; variables are kept")
        except TimeoutError:
            await self.restart()
            out.note = "sandbox restarted"
            out.error = (f"the cell ran past the wall-time limit of {lim.cell_wall_s:g} s and did "
                         "not stop when interrupted; the sandbox was restarted and its variables "
                         "are gone")

    def _interrupt_now(self) -> None:
        km = self._km
        if km is None:
            return
        # interrupt_mode "message": one control message, sent synchronously
        msg = km.session.msg("interrupt_request", content={})
        km._connect_control_socket()
        km.session.send(km._control_socket, msg)

    async def _drain(self, msg_id: str) -> str:
        """Read this cell's messages until the kernel is idle again (or died)."""
        out = CellOutput("")
        await self._collect(msg_id, out)
        return out.status

    async def _settle(self) -> None:
        task, self._settling = self._settling, None
        if task is None:
            return
        try:
            status = await asyncio.wait_for(task, self.limits.interrupt_grace_s)
        except (TimeoutError, Exception):
            status = "died"
        if status == "died":  # the cut cell did not come back to idle: a fresh kernel
            await self.restart()

    async def _serve_stdin(self, msg_id: str, on_request: OnRequest) -> None:
        kc = self._kc
        while True:
            try:
                msg = await kc.get_stdin_msg(timeout=3600)
            except Exception:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            prompt = str(msg["content"].get("prompt", ""))
            if not prompt.startswith(BRIDGE_PREFIX):
                kc.input("")  # input() in a cell: there is no keyboard here, it reads ""
                continue
            self._host_busy, started = True, time.perf_counter()
            try:
                request = json.loads(prompt[len(BRIDGE_PREFIX):])
                value = await on_request(request)
                reply = {"ok": True, "value": value}
            except asyncio.CancelledError:
                raise
            except Exception as err:
                reply = {"ok": False, "error": str(err) or type(err).__name__}
            finally:
                self._host_busy = False
                self._host_s += time.perf_counter() - started
            kc.input(json.dumps(reply, default=str))

    async def _quiet(self, code: str) -> None:
        await self._settle()  # one reader of the kernel's messages at a time
        kc = self._kc
        msg_id = _msg_id(kc.execute(code, silent=True, store_history=False, allow_stdin=False))
        out = CellOutput(code)
        await asyncio.wait_for(self._collect(msg_id, out), self.limits.start_timeout_s)
        if out.status == "died":
            raise CodeExecutionUnavailable("the sandbox kernel died while it was prepared")
        if out.error:
            raise CodeExecutionUnavailable(f"the sandbox could not be prepared: {out.error[-500:]}")


# A message holding a high lone surrogate (``"\ud800"``: text decoded with surrogatepass, a
# slice through an emoji's UTF-16 pair) has no UTF-8 form: the kernel's packer raised and the
# message was lost, so a cell that raised such an error read "ok" with no error, and a print
# came back as the packer's traceback. Such a message goes as ASCII JSON (the surrogate as a
# ``\ud800`` escape); the host reads it and replaces the surrogate (``clean_text``).
_SURROGATE_SAFE_PACK = """
def _lash_safe_pack(session=get_ipython().kernel.session):
    import json
    from jupyter_client.jsonutil import json_default
    pack = session.pack
    def safe(obj):
        try:
            return pack(obj)
        except ValueError:
            return json.dumps(obj, default=json_default, ensure_ascii=True).encode()
    session.pack = safe
_lash_safe_pack()
del _lash_safe_pack
"""

# matplotlib < 3.9 under IPython 9 draws a figure a cell shows as text only (its inline
# backend is named but its PNG formatter not registered); ``%matplotlib inline`` registers it.
# Newer matplotlib needs nothing, and nothing is imported when matplotlib is not installed.
_OLD_MATPLOTLIB_INLINE = """
import importlib.metadata as _lash_md
try:
    _lash_v = tuple(int(x) for x in _lash_md.version("matplotlib").split(".")[:2])
except Exception:
    _lash_v = None
if _lash_v is not None and _lash_v < (3, 9):
    get_ipython().run_line_magic("matplotlib", "inline")
del _lash_md, _lash_v
"""


def _msg_id(sent: Any) -> str:
    """The id of a message a kernel client sent: jupyter_client 8.0 returns it wrapped in a
    finished future, later versions as the string itself (the lowest declared version is
    8.0: without this, every cell there waited for replies to a future and timed out)."""
    return sent if isinstance(sent, str) else str(sent.result())


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


__all__ = ["CellOutput", "Sandbox", "SandboxLimits"]
