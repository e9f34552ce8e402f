"""The PostgreSQL fixtures (``pg_server``, ``pg_dsn``) are available to every test module."""

pytest_plugins = ["pg_fixture"]
