"""Command line: ``python -m lash_nb demo``, ``worker``, ``migrate-store``, ``prune-blobs`` and
``backup``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._store.target import is_dsn, is_duckdb_path

if TYPE_CHECKING:
    from ._core.llm import Provider

EX_TEMPFAIL = 75  # sysexits.h: a worker's stop cut a turn and handed its batch back to be retried


def _on_store(make: Callable[[], Any], job: Callable[[Any], Awaitable[Any]],
              done: Callable[[Any], str]) -> int:
    """``job(store)`` on the store ``make()`` opens (closed after); ``done(result)`` printed,
    or one ``error:`` line (status 2) for a LashError."""
    from ._errors import LashError

    async def run() -> Any:
        store = make()
        try:
            return await job(store)
        finally:
            await store.close()

    try:
        result = asyncio.run(run())
    except LashError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(done(result))
    return 0


def _prune_blobs(target: str, older_than_s: float) -> int:
    from ._errors import LashError
    from ._runtime.core import open_store
    from ._store.base import stores_blobs

    async def prune(store: Any) -> int:
        if not stores_blobs(store):
            raise LashError(f"{target} keeps no attachments; nothing to prune")
        return int(await store.prune_blobs(older_than_s=older_than_s))

    return _on_store(lambda: open_store(target), prune,
                     lambda n: f"{target}: {n} unreferenced blob(s) deleted")


def _backup(path: str, dest: str, *, overwrite: bool) -> int:
    """A whole, consistent copy of a DuckDB store that processes hold open (ADR 175): this
    process waits in the file's line, the holder hands it over between its steps."""
    if is_dsn(path):
        print("error: backup copies a DuckDB file; back up PostgreSQL with pg_dump",
              file=sys.stderr)
        return 2
    if not os.path.isfile(path):
        print(f"error: {path} is not a file; pass the store's .duckdb file", file=sys.stderr)
        return 2
    from ._store.duckdb import DuckDBStore

    return _on_store(lambda: DuckDBStore(path), lambda s: s.backup(dest, overwrite=overwrite),
                     lambda size: f"{path} copied whole to {dest} ({size} bytes); open the "
                                  f"copy with --store {dest}")


def worker_provider(name: str, *, model: str | None, delay_s: float) -> Provider:
    """``--provider``: a registry name (the one ``%lash open --provider`` takes) or ``env``
    (chosen from the environment, as the default builder does)."""
    from ._errors import ConfigurationError
    from ._providers.registry import NAMES, build_provider, check_key
    from ._providers.select import select_provider

    if name == "env":
        import os

        info = select_provider({**os.environ, "LASH_MODEL": model} if model else None)
        print(f"provider: {info.reason}", file=sys.stderr)
        provider: Provider = info.provider
        return provider
    if name not in NAMES:
        raise SystemExit(f"unknown --provider {name!r}; use one of offline, env, "
                         f"{', '.join(n for n in NAMES if n != 'offline')}")
    try:
        check_key(name, again="start the worker again")
    except ConfigurationError as e:
        raise SystemExit(str(e)) from None
    return build_provider(name, model=model, offline_delay_s=delay_s)


def worker_model(provider: str | None, model: str | None) -> tuple[str, str | None]:
    """``--provider`` and ``--model`` as one choice: ``--model openai:gpt-4.1-mini`` picks the
    provider too; a prefix naming another provider than ``--provider`` is refused."""
    from ._errors import ConfigurationError
    from ._providers.registry import split_model_id

    if not model:
        return provider or "offline", None
    explicit = None if provider in (None, "env") else provider
    try:
        name, bare = split_model_id(model, provider=explicit, default=provider or "offline")
    except ConfigurationError as e:
        raise SystemExit(str(e)) from None
    return name or "offline", bare


def _log_to_stderr() -> None:
    """The worker's lines (``lash_nb.*`` at INFO, everything else at WARNING) on stderr, one
    message per line, unless the process configured logging already."""
    import logging

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    if logging.getLogger("lash_nb").level == logging.NOTSET:
        logging.getLogger("lash_nb").setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    from ._version import __version__

    ap = argparse.ArgumentParser(
        prog="python -m lash_nb", allow_abbrev=False,
        description="lash_nb from a terminal: run the demo, drain queued work with a worker, or "
                    "look after a DuckDB store (migrate, prune attachment bytes, back up).")
    ap.add_argument("--version", action="version", version=f"lash_nb {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", allow_abbrev=False, help="run the main job end to end with the offline provider")
    demo.add_argument("--store", default="lash-demo.duckdb", help="DuckDB file (default lash-demo.duckdb)")
    demo.add_argument("--delay", type=float, default=0.02, help="seconds between streamed words")
    work = sub.add_parser("worker", allow_abbrev=False, help="drain queued work from a store")
    work.add_argument("--store", required=True, help="DuckDB path or postgresql:// DSN")
    scope = work.add_mutually_exclusive_group()
    scope.add_argument("--session", help="drain only this session")
    scope.add_argument("--all", action="store_true", help="drain every session (default)")
    work.add_argument("--provider", default=None,
                      help="offline (default), env (chosen from the environment), openai, "
                           "anthropic, openrouter, ollama, openai-responses, google or litellm")
    work.add_argument("--model", default=None,
                      help="a model, or provider:model (openai:gpt-4.1-mini) to pick the provider too")
    work.add_argument("--delay", type=float, default=0.0, help="offline provider: seconds per word")
    work.add_argument("--tools", action="append", default=[], help="module:attr of tools to load")
    work.add_argument("--approver", default=None, metavar="MODULE:ATTR",
                      help="answers tool calls whose approval is 'ask' (default: they are denied)")
    work.add_argument("--concurrency", type=int, default=1)
    work.add_argument("--poll", type=float, default=0.2, help="seconds between polls when idle")
    work.add_argument("--grace", type=float, default=5.0,
                      help="on SIGTERM / SIGINT, seconds a running turn may finish (default 5); "
                           "a turn still running then is cut and its batch goes back to the "
                           "queue, its attempt not counted, for the next worker; the exit "
                           "status is then 75 (EX_TEMPFAIL), else 0; a second signal (Ctrl-C "
                           "twice) cuts it at once")
    work.add_argument("--lease-ttl-ms", type=int, default=None,
                      help="session lease TTL: a dead worker's claims run elsewhere after it")
    work.add_argument("--max-attempts", type=int, default=None, metavar="N",
                      help="tries per queued batch before it is parked failed (default 3); "
                           "a turn cut by a worker's stop is not a try")
    work.add_argument("--exit-when-idle", type=float, default=None, metavar="S",
                      help="exit after S idle seconds (scripts and tests)")
    mig = sub.add_parser("migrate-store", allow_abbrev=False, help="move a lash DuckDB file to this schema version")
    mig.add_argument("path", help="the DuckDB file")
    prune = sub.add_parser("prune-blobs", allow_abbrev=False,
                           help="delete attachment bytes nothing references any more")
    prune.add_argument("store", help="the DuckDB file or postgresql:// DSN")
    prune.add_argument("--older-than", type=float, default=3600.0, metavar="S",
                       help="keep blobs stored in the last S seconds (default 3600: a turn "
                            "may be about to commit them)")
    back = sub.add_parser("backup", allow_abbrev=False, help="copy a DuckDB store whole while processes use it")
    back.add_argument("store", help="the DuckDB file")
    back.add_argument("dest", help="the new file (e.g. shared/team.duckdb)")
    back.add_argument("--overwrite", action="store_true", help="replace dest if it exists")
    args = ap.parse_args(argv)
    _refuse_empty_names(sub.choices[args.command], args)
    if args.command == "backup":
        return _backup(args.store, args.dest, overwrite=args.overwrite)
    if args.command == "prune-blobs":
        return _prune_blobs(args.store, args.older_than)
    if args.command == "migrate-store":
        from ._errors import StoreError
        from ._store.duckdb import migrate_duckdb
        from ._store.duckdb.lock import after_migration

        try:
            old, new = migrate_duckdb(args.path)
        except StoreError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{args.path}: schema version {old} -> {new}; {after_migration(old)}" if old != new
              else f"{args.path}: already at schema version {new}")
        return 0
    if args.command == "demo":
        from ._errors import LashError
        from ._runtime.demo import run_demo

        try:
            asyncio.run(run_demo(args.store, args.delay))
        except LashError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    from ._errors import LashError
    from ._runtime.worker import load_approver, load_tools, run_worker

    _check_worker_ranges(work, args)
    _log_to_stderr()
    name, model = worker_model(args.provider, args.model)
    tools, approver = load_tools(args.tools), load_approver(args.approver)
    if (is_duckdb_path(args.store) and not os.path.exists(args.store)
            and os.path.isdir(os.path.dirname(os.path.abspath(args.store)))):
        print(f"{args.store} did not exist: this worker created an empty store there; work "
              "queued in another store does not reach it (check --store)", file=sys.stderr)
    try:
        stats = asyncio.run(run_worker(
            args.store, session_id=args.session,
            provider=worker_provider(name, model=model, delay_s=args.delay),
            model=model, tools=tools, concurrency=args.concurrency,
            poll_s=args.poll, grace_s=args.grace, max_idle_s=args.exit_when_idle,
            lease_ttl_ms=args.lease_ttl_ms, max_attempts=args.max_attempts,
            approver=approver,
        ))
    except LashError as e:  # a store it cannot open, a refused setting: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if stats.store_refused is not None:
        again = ("start a worker of the upgraded lash_nb" if stats.store_outgrown
                 else "start the worker again once the store can be written there")
        print(f"worker stopped: {stats.store_refused}; the queued work stays in the queue: "
              f"{again}", file=sys.stderr)
        return 2 if stats.store_outgrown else EX_TEMPFAIL
    returned = (f"; {len(stats.returned)} batch(es) cut by the stop returned to the queue: "
                + ", ".join(b for _, b in stats.returned)) if stats.returned else ""
    print(f"worker done: {stats.turns} turns {stats.outcomes}{returned}", file=sys.stderr)
    return EX_TEMPFAIL if stats.returned else 0


# the options and arguments that name a store or a session, with an example of each
_NAMES = {"store": "lash.duckdb", "session": "analysis", "dest": "copy.duckdb",
          "path": "lash.duckdb"}


def _refuse_empty_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--session "$NAME"`` with NAME unset drained every session, ``--store ""`` opened an
    in-memory DuckDB: an empty name is refused before anything is opened (ADR 192)."""
    for dest, example in _NAMES.items():
        value = getattr(args, dest, None)
        if value is not None and not value.strip():
            option = next((o for a in parser._actions if a.dest == dest
                           for o in a.option_strings), dest)
            parser.error(f"{option} is empty (an empty variable?); give one, e.g. "
                         f"{option} {example}" if option.startswith("-") else
                         f"the {dest} is empty (an empty variable?); give one, e.g. {example}")


def _check_worker_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Numbers a worker cannot run with are refused before anything is opened (a worker with
    ``--concurrency 0`` would sit idle forever beside queued work)."""
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.max_attempts is not None and args.max_attempts < 1:
        parser.error("--max-attempts must be at least 1")
    if args.poll <= 0:
        parser.error("--poll must be more than 0 seconds")
    if args.grace < 0:
        parser.error("--grace must be 0 seconds or more")


if __name__ == "__main__":
    raise SystemExit(main())
