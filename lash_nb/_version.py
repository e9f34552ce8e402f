"""The one place the version is written (pyproject.toml reads it; so does packaging/lash-nb)."""

__version__ = "0.1.0"
