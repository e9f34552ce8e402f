"""A real PostgreSQL server for tests and benchmarks: started once, on a temp dir and a
free loopback port, from the Debian packages (``/usr/lib/postgresql/<v>/bin``).

As root the server runs as the ``postgres`` user (``initdb`` refuses root). Set
``LASH_PG_DSN`` to use a server you already run instead. When no server can be started the
fixtures skip with the reason.

One server per test run, also under pytest-xdist: the first process that needs it starts it
(under a file lock in the run's folder, which the controlling pytest process names in
``LASH_PG_RUN_DIR`` before any worker starts) and writes its DSN there; the other workers
connect to it, each test on a fresh database. The controlling process stops it at the end of
the run. Without the plugin's hooks (a benchmark importing ``shared_server``) the process that
started the server stops it at exit.

``tests/conftest.py`` registers the fixtures for every test module (``pytest_plugins``).
"""

from __future__ import annotations

import atexit
import fcntl
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class PgServer:
    dsn: str  # the maintenance database (``postgres``)
    data_dir: str | None = None
    pg_ctl: str | None = None
    user: str | None = None
    log_path: str | None = None
    opts: str | None = None  # the server's ``pg_ctl -o`` options (to start it again)

    def dsn_for(self, dbname: str) -> str:
        return self.dsn.rsplit("/", 1)[0] + "/" + dbname

    def create_database(self, prefix: str = "lash") -> str:
        """A fresh empty database; returns its DSN."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    # a server of its own (``own_pg_server``) is stopped and started by its tests
    def _ctl(self, *args: str) -> None:
        assert self.data_dir is not None and self.pg_ctl is not None, "not a server we started"
        _run([self.pg_ctl, "-D", self.data_dir, *args], self.user)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m <mode>``: every connection is cut, the server comes back."""
        # -l: the restarted server writes its log there, not into our pipe (run() would wait)
        self._ctl("-m", mode, "-o", self.opts or "", "-l", self.log_path or os.devnull, "-w",
                  "restart")

    def halt(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>``; :meth:`start` brings it back on the same port."""
        self._ctl("-m", mode, "-w", "stop")

    def start(self) -> None:
        self._ctl("-o", self.opts or "", "-l", self.log_path or os.devnull, "-w", "start")

    def terminate_backends(self, dbname: str) -> int:
        """``pg_terminate_backend`` on every other connection to ``dbname``, as an admin
        would; returns how many were ended."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as con:
            rows = con.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", [dbname]).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def stop(self) -> None:
        if self.data_dir is None or self.pg_ctl is None:
            return
        _run([self.pg_ctl, "-D", self.data_dir, "-m", "immediate", "-w", "stop"], self.user,
             check=False)
        shutil.rmtree(os.path.dirname(self.data_dir), ignore_errors=True)


class PgUnavailable(RuntimeError):
    pass


def _run(cmd: list[str], user: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    kw = {} if user is None else {"user": user}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]
    if check and out.returncode != 0:
        raise PgUnavailable(f"{os.path.basename(cmd[0])} failed: {(out.stderr or out.stdout).strip()[-400:]}")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_templates: dict[str, str] = {}  # bindir -> a data dir from initdb that this process copies


def _init_data(bindir: str, data: str, user: str | None) -> None:
    """A new cluster in ``data``: a copy of one ``initdb`` ran once in this process (initdb
    was most of a server's start, ~1 s of CPU, and a worker process starts up to a dozen
    servers of tests that stop and restart their own). The copy never ran as a server; the
    port and socket folder come from the start options."""
    template = _templates.get(bindir)
    if template is None:
        base = tempfile.mkdtemp(prefix="lash-pg-template-")
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(base, pw.pw_uid, pw.pw_gid)
        template = os.path.join(base, "data")
        try:
            _run([f"{bindir}/initdb", "-D", template, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-instructions", "--no-sync"], user)
        except PgUnavailable:
            shutil.rmtree(base, ignore_errors=True)
            raise
        atexit.register(shutil.rmtree, base, True)
        _templates[bindir] = template
    _run(["cp", "-a", template, data], user)


def start_postgres(*, fast: bool = True) -> PgServer:
    """Start a throwaway server (``fast``: fsync off, for tests). Raises PgUnavailable."""
    if os.environ.get("LASH_PG_DSN"):
        return PgServer(os.environ["LASH_PG_DSN"])
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        raise PgUnavailable("psycopg is not installed (pip install 'psycopg[binary]')") from e
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                  key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not bins:
        raise PgUnavailable("no PostgreSQL binaries in /usr/lib/postgresql/*/bin "
                            "(apt-get install -y postgresql)")
    bindir = os.path.dirname(bins[-1])
    user = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as e:
            raise PgUnavailable("running as root and there is no 'postgres' user") from e
        user = "postgres"
    base = tempfile.mkdtemp(prefix="lash-pg-")
    if user is not None:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data = os.path.join(base, "data")
    port = _free_port()
    _init_data(bindir, data, user)
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if fast:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    log = os.path.join(base, "pg.log")
    server = PgServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", data,
                      f"{bindir}/pg_ctl", user, log, opts)
    try:
        _run([f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l", log, "-w", "start"], user)
    except PgUnavailable:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return server


_started: list[PgServer | PgUnavailable] = []
RUN_DIR_ENV = "LASH_PG_RUN_DIR"
_STATE = "server.json"
_run_dir_key = pytest.StashKey[str]()


def _start_or_join(run_dir: str) -> PgServer:
    """The run's server: read from ``run_dir``, or started and written there (under a lock, so
    exactly one process of the run starts it). A failed start is written too: the other
    workers skip with the same reason instead of trying again."""
    with open(os.path.join(run_dir, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = os.path.join(run_dir, _STATE)
        if os.path.exists(state):
            with open(state) as f:
                got = json.load(f)
            if "unavailable" in got:
                raise PgUnavailable(got["unavailable"])
            return PgServer(**got)
        try:
            server = start_postgres()
        except PgUnavailable as e:
            _write_state(state, {"unavailable": str(e)})
            raise
        _write_state(state, vars(server))
        return server


def _write_state(path: str, state: dict[str, str | None]) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)


def shared_server() -> PgServer:
    """One server per test run (see the module docstring), however many test modules and
    xdist workers use these fixtures."""
    if not _started:
        run_dir = os.environ.get(RUN_DIR_ENV)
        try:
            if run_dir and os.path.isdir(run_dir) and not os.environ.get("LASH_PG_DSN"):
                server = _start_or_join(run_dir)
            else:
                server = start_postgres()
                atexit.register(server.stop)
        except PgUnavailable as e:
            _started.append(e)
        else:
            _started.append(server)
    got = _started[0]
    if isinstance(got, PgUnavailable):
        raise got
    return got


def pytest_configure(config: pytest.Config) -> None:
    # the controlling process (not an xdist worker) names the run's folder; workers inherit it
    if not hasattr(config, "workerinput"):
        run_dir = tempfile.mkdtemp(prefix="lash-pg-run-")
        config.stash[_run_dir_key] = run_dir
        os.environ[RUN_DIR_ENV] = run_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    run_dir = config.stash.get(_run_dir_key, None)
    if run_dir is None:
        return
    if os.environ.get(RUN_DIR_ENV) == run_dir:
        del os.environ[RUN_DIR_ENV]
    state = os.path.join(run_dir, _STATE)
    if os.path.exists(state):
        with open(state) as f:
            got = json.load(f)
        if "unavailable" not in got:
            PgServer(**got).stop()
    shutil.rmtree(run_dir, ignore_errors=True)



@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    try:
        return shared_server()
    except PgUnavailable as e:
        pytest.skip(f"PostgreSQL could not start: {e}")


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """The DSN of a fresh, empty database on the test server."""
    return pg_server.create_database()


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A server of the test's own (own data dir and port), which it may restart, stop and
    start without disturbing other tests; stopped at the end of the test. Skips under
    ``LASH_PG_DSN`` (a server somebody else runs is not ours to restart)."""
    if os.environ.get("LASH_PG_DSN"):
        pytest.skip("LASH_PG_DSN names a server this test may not restart")
    try:
        server = start_postgres()
    except PgUnavailable as e:
        pytest.skip(f"PostgreSQL could not start: {e}")
    try:
        yield server
    finally:
        server.stop()
