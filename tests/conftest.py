"""The PostgreSQL fixtures (``pg_server``, ``pg_dsn``), the MCP test servers (``mcp_servers``)
and the browser tests' ``frontend`` (``browser_harness``) are available to every test module;
``xdist_groups`` keeps the tests that share a fixture on one pytest-xdist worker
(scripts/test.sh runs the suite in parallel); ``cpu_probe`` writes each test's CPU when
``LASH_CPU_PROBE`` names a folder."""

pytest_plugins = ["pg_fixture", "mcp_servers", "xdist_groups", "browser_harness", "cpu_probe"]
