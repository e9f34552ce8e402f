"""The PostgreSQL fixtures (``pg_server``, ``pg_dsn``), the MCP test servers (``mcp_servers``)
and the browser tests' ``frontend`` (``browser_harness``) are available to every test module;
``xdist_groups`` keeps the tests that share a fixture on one pytest-xdist worker
(scripts/test.sh runs the suite in parallel); ``cpu_probe`` writes each test's CPU when
``LASH_CPU_PROBE`` names a folder.

A ``VIRTUAL_ENV`` naming another environment than this interpreter's (a shell where another
venv was activated) is dropped: IPython's ``InteractiveShell`` puts that environment's
site-packages first on ``sys.path``, so after a test's first in-process shell the run imported
the other environment's packages (the lowest run tested the newest; ADR 227)."""

import os
import sys
from pathlib import Path

if os.environ.get("VIRTUAL_ENV") and Path(os.environ["VIRTUAL_ENV"]).resolve() != Path(sys.prefix).resolve():
    del os.environ["VIRTUAL_ENV"]

pytest_plugins = ["pg_fixture", "mcp_servers", "xdist_groups", "browser_harness", "cpu_probe"]
