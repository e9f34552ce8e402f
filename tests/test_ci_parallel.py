"""What the parallel test run (scripts/test.sh: pytest-xdist, 3+ workers) relies on.

Each test runs a small throwaway suite in a pytest subprocess with ``-n 3 --dist loadgroup``
and this folder's plugins, as scripts/test.sh runs the real one, and reads what its tests
wrote down: which worker ran them, what they were given.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("xdist")
pytestmark = pytest.mark.slow  # each starts a pytest with three worker processes

HERE = Path(__file__).resolve().parent


def _run_suite(root: Path, source: str, *plugins: str, durations: Path | None = None,
               output: list[str] | None = None) -> list[list[str]]:
    """Run ``source`` as a test module under xdist; the lines its tests logged, split.
    ``durations``: the file of the last run's durations scripts/test.sh names; ``output``
    gets pytest's output."""
    (root / "test_suite.py").write_text(textwrap.dedent(source))
    log = root / "log.txt"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LASH_PG_DSN", "PYTEST_ADDOPTS", "LASH_TEST_DURATIONS")}
    env.update(PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]), SUITE_LOG=str(log))
    if durations is not None:
        env["LASH_TEST_DURATIONS"] = str(durations)
    plugin_args = [arg for p in plugins for arg in ("-p", p)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args, "-n", "3",
         "--dist", "loadgroup", "--no-loadscope-reorder", "test_suite.py"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    if output is not None:
        output.append(done.stdout)
    return [line.split() for line in (log.read_text() if log.exists() else "").splitlines()]


LOGGER = """
    import fcntl, os

    def log(*words):
        with open(os.environ["SUITE_LOG"], "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(" ".join(map(str, (*words, os.environ["PYTEST_XDIST_WORKER"]))) + "\\n")
"""


def test_a_shared_fixture_is_set_up_once_per_parameter_and_its_tests_share_its_worker(tmp_path):
    lines = _run_suite(tmp_path, LOGGER + """
    import pytest

    @pytest.fixture(scope="module", params=["lab", "nb7"])
    def server(request):
        log("setup", request.param)
        return request.param

    @pytest.mark.parametrize("i", range(4))
    def test_uses_the_server(server, i):
        log("test", server)

    @pytest.mark.parametrize("i", range(6))
    def test_needs_nothing(i):
        log("free", i)
    """, "xdist_groups")
    setups = [ln for ln in lines if ln[0] == "setup"]
    assert sorted(ln[1] for ln in setups) == ["lab", "nb7"]  # once each, not once per worker
    worker_of = {ln[1]: ln[2] for ln in setups}
    tests = [ln for ln in lines if ln[0] == "test"]
    assert len(tests) == 8
    assert all(ln[2] == worker_of[ln[1]] for ln in tests)
    assert len([ln for ln in lines if ln[0] == "free"]) == 6


def test_browser_tests_use_at_most_two_workers_and_go_first(tmp_path):
    lines = _run_suite(tmp_path, LOGGER + """
    import pytest

    @pytest.mark.parametrize("i", range(6))
    def test_quick(i):
        log("quick", i)

    @pytest.mark.browser
    @pytest.mark.parametrize("i", range(5))
    def test_in_a_browser(i):
        log("browser", i)
    """, "xdist_groups")
    browser = [ln for ln in lines if ln[0] == "browser"]
    assert len(browser) == 5
    assert len({ln[2] for ln in browser}) <= 2
    # each worker that ran a browser test ran it before any quick test
    for worker in {ln[2] for ln in browser}:
        ran = [ln[0] for ln in lines if ln[2] == worker]
        assert ran == sorted(ran), ran  # "browser" < "quick"


@pytest.mark.postgres
def test_one_postgres_server_serves_every_worker_and_is_stopped_after_the_run(tmp_path):
    lines = _run_suite(tmp_path, LOGGER + """
    import pytest

    @pytest.mark.parametrize("i", range(6))
    def test_gets_a_database(pg_server, pg_dsn, i):
        log("server", pg_server.dsn, pg_server.data_dir, pg_dsn)
    """, "pg_fixture")
    if not lines:
        pytest.skip("PostgreSQL could not start here")
    servers = {(ln[1], ln[2]) for ln in lines}
    assert len(lines) == 6 and len(servers) == 1
    assert len({ln[4] for ln in lines}) >= 2  # several workers shared it
    assert len({ln[3] for ln in lines}) == 6  # a fresh database for each test
    ((_dsn, data_dir),) = servers
    assert not Path(data_dir).exists()  # stopped and removed at the end of the run


def test_the_longest_tests_of_the_last_run_start_first_and_this_run_is_written_down(tmp_path):
    """scripts/test.sh names a file of each test's duration in the last run (in the user's
    cache, as mypy's): a test that took long goes first, not where its name sorts (a long test
    started last is the run's tail); the run then writes its own durations there."""
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps({"test_suite.py::test_zz_long": 40.0,
                                     "test_suite.py::test_gone_since": 1.5}))
    output: list[str] = []
    lines = _run_suite(tmp_path, LOGGER + """
    import pytest

    @pytest.mark.parametrize("i", range(12))
    def test_quick(i):
        log("quick", i)

    def test_zz_long():
        log("long", "-")
    """, "xdist_groups", durations=durations, output=output)
    (long_line,) = [ln for ln in lines if ln[0] == "long"]
    on_its_worker = [ln[0] for ln in lines if ln[2] == long_line[2]]
    assert on_its_worker[0] == "long", on_its_worker
    written = json.loads(durations.read_text())
    ran = {"test_suite.py::test_zz_long", *(f"test_suite.py::test_quick[{i}]" for i in range(12))}
    assert ran <= set(written) and all(isinstance(written[t], float) for t in ran)
    assert written["test_suite.py::test_gone_since"] == 1.5  # a test not run keeps its time
    # where the wall time went: when each worker's last test ended
    assert re.search(r"^workers: (gw\d busy \d+ s, done at \d+ s;? ?){3}$", output[0], re.M), output[0][-2000:]


def test_browser_lanes_are_filled_by_the_last_runs_durations(tmp_path):
    """The browser tests are dealt into two lanes (one worker each) so that the lanes take
    about as long, by the last run's durations; dealt in turn, 40+20+10 s and 30+10+10 s."""
    took = {"b40": 40.0, "b30": 30.0, "b20": 20.0, "b10a": 10.0, "b10b": 10.0, "b10c": 10.0}
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps({f"test_suite.py::test_in_a_browser[{k}]": v
                                     for k, v in took.items()}))
    lines = _run_suite(tmp_path, LOGGER + f"""
    import pytest

    @pytest.mark.browser
    @pytest.mark.parametrize("name", {list(took)!r})
    def test_in_a_browser(name):
        log("browser", name)

    @pytest.mark.parametrize("i", range(4))
    def test_quick(i):
        log("quick", i)
    """, "xdist_groups", durations=durations)
    per_worker: dict[str, float] = {}
    for _, name, worker in (ln for ln in lines if ln[0] == "browser"):
        per_worker[worker] = per_worker.get(worker, 0.0) + took[name]
    assert sorted(per_worker.values()) == [60.0, 60.0], per_worker
