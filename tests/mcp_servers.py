"""Real MCP servers nobody here wrote, for the MCP tests: ``@modelcontextprotocol/server-
everything`` (npm; stdio and streamable HTTP) and ``mcp-server-time`` (PyPI; stdio).

``LASH_NB_MCP_SERVERS`` names a folder where ``scripts/test.sh`` installed them
(``npm/`` and ``venv/``); without it they are installed once into ``~/.cache/lash-nb/mcp-servers``
(where scripts/test.sh puts them too). The install holds a file lock there, so xdist workers
wait for one install instead of each making its own. A failed install skips the tests that need
the server, saying why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import pytest
except ImportError:  # scripts/test.sh runs the installer before pytest is installed
    pytest = None  # type: ignore[assignment]

EVERYTHING = "@modelcontextprotocol/server-everything"
_EVERYTHING_JS = "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
_TIME = "venv/bin/mcp-server-time"


def install(root: Path) -> dict[str, str]:
    """Install what is missing under ``root``; ``{server: path or 'skip: reason'}``."""
    out: dict[str, str] = {}
    js = root / _EVERYTHING_JS
    if not js.exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            out["everything"] = "skip: npm / node are not installed"
        else:
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                                str(root / "npm"), EVERYTHING], capture_output=True, text=True,
                               timeout=600)
            if r.returncode != 0:
                out["everything"] = f"skip: npm install {EVERYTHING} failed: {r.stderr.strip()[-200:]}"
    out.setdefault("everything", str(js) if js.exists() else f"skip: {js} is missing")
    exe = root / _TIME
    if not exe.exists():
        r = subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], capture_output=True,
                           text=True, timeout=300)
        if r.returncode == 0:
            r = subprocess.run([str(root / "venv/bin/python"), "-m", "pip", "install", "-q",
                                "--disable-pip-version-check", "mcp-server-time"],
                               capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            out["time"] = f"skip: pip install mcp-server-time failed: {r.stderr.strip()[-200:]}"
    out.setdefault("time", str(exe) if exe.exists() else f"skip: {exe} is missing")
    return out


def default_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "lash-nb" / "mcp-servers"


def _mcp_servers() -> dict[str, str]:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    root = Path(os.environ.get("LASH_NB_MCP_SERVERS") or default_root())
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return install(root)


if pytest is not None:
    mcp_servers = pytest.fixture(scope="session", name="mcp_servers")(_mcp_servers)


def need(servers: dict[str, str], name: str) -> str:
    where = servers[name]
    if where.startswith("skip: "):
        pytest.skip(where[len("skip: "):])
    return where


if __name__ == "__main__":  # scripts/test.sh: python tests/mcp_servers.py DIR
    for name, where in install(Path(sys.argv[1])).items():
        print(f"mcp server {name}: {where}")
