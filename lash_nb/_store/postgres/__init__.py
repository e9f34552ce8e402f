"""The PostgreSQL store: many sessions, many workers, many machines. See ``store.py``."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
