"""The PostgreSQL fixtures (``pg_server``, ``pg_dsn``) and the MCP test servers
(``mcp_servers``) are available to every test module."""

pytest_plugins = ["pg_fixture", "mcp_servers"]
