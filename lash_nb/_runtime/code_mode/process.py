"""How the sandbox kernel's process is launched (ADR 70): the ``unshare`` namespaces when
they are available, the rlimits applied by ``launch.py`` before the kernel starts, the
environment built from nothing, and the parent-death signal."""

from __future__ import annotations

import ctypes
import functools
import shutil
import signal
import subprocess
import sys
from pathlib import Path

_LAUNCH = Path(__file__).with_name("launch.py")


@functools.cache
def namespace_prefix() -> list[str]:
    """The ``unshare`` prefix that works here (network + PID namespaces), else [] (probed
    once per process)."""
    exe = shutil.which("unshare")
    if exe is None or not sys.platform.startswith("linux"):
        return []
    prefix = [exe, "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc",
              "--kill-child"]
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return prefix if ok else []


def sandbox_env(workdir: str) -> dict[str, str]:
    """The kernel's whole environment: nothing inherited from the host."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "MALLOC_ARENA_MAX": "2",  # address-space limit: glibc reserves 64 MB per arena
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def kernel_argv(prefix: list[str], *, cpu_s: int, memory_bytes: int,
                file_bytes: int) -> list[str]:
    """The kernel command: namespaces, then ``launch.py`` (limits), then the ipykernel."""
    return [*prefix, sys.executable, str(_LAUNCH), str(cpu_s), str(memory_bytes),
            str(file_bytes), "--", sys.executable, "-m", "ipykernel_launcher",
            "-f", "{connection_file}", "--HistoryManager.enabled=False"]


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the thread that started it dies, so a notebook
    kernel that is killed (not shut down) takes its sandbox along (``PR_SET_PDEATHSIG``)."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


__all__ = ["die_with_parent", "kernel_argv", "namespace_prefix", "sandbox_env"]
