"""How the suite runs in parallel; a pytest plugin (``tests/conftest.py`` registers it).

``scripts/test.sh`` runs ``pytest -n N --dist loadgroup --no-loadscope-reorder``
(pytest-xdist). Tests that share a class-, module- or package-scoped fixture (a kernel, a built
wheel) are one group, so that fixture is set up once, on one worker; a parametrized shared
fixture makes one group per parameter (JupyterLab and Notebook 7 may run at the same time). A
test that must not run beside another one (both build in the checkout) names a group itself
with ``@pytest.mark.xdist_group("...")``. The other browser tests are dealt round-robin into
``BROWSER_LANES`` groups: at most that many Chromium + Jupyter server + kernel stacks at once
on a 2-core machine (more made each slower than its timeouts). The browser lanes go first, then
the other work units longest first, so a long one does not start last and end the run alone;
without xdist this only changes the order.

How long is the last run's: scripts/test.sh names a file per run (``LASH_TEST_DURATIONS``, in the
user's cache like mypy's, so CI's fresh clones find it) that holds each test's duration
(setup + call + teardown, seconds); the controlling process writes this run's into it at the
end, keeping the tests it did not run. A browser test goes to the lane with the least time in
it, longest first. A test the file does not know is guessed by its kind (``GUESS``); without a
file (the first run) that is the order by marks: browser, slow, the rest. The variable is taken
out of the environment, so a pytest a test starts (the sdist's tests) writes nothing there.
At the end the controlling process prints, per worker, the time its tests took and when its
last one ended: a worker done long after the others is a unit dealt late.

The groups reach the scheduler through a file, not through xdist's own ``loadgroup`` channel:
xdist 3.8 appends ``@group`` to a test's node id, which pytest 9.2's structured node ids
silently ignore (pytest-xdist issue 1386), so every test would be scheduled alone. Each worker
writes ``{node id: group}`` after collecting into a folder the controlling process names
(``LASH_XDIST_GROUPS_DIR``); ``GroupScheduling`` (xdist's loadgroup scheduler with that
lookup) reads it when it cuts the collection into work units.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

SHARED_SCOPES = ("class", "module", "package")
BROWSER_LANES = 2
GROUPS_DIR_ENV = "LASH_XDIST_GROUPS_DIR"
DURATIONS_ENV = "LASH_TEST_DURATIONS"
GUESS = (30.0, 10.0, 0.5)  # seconds of a test the file does not know: browser, slow, other
_groups_dir_key = pytest.StashKey[str]()
_units_key = pytest.StashKey[dict[str, str]]()
_durations_key = pytest.StashKey[str]()
_spent: dict[str, float] = {}  # this run's durations, by node id (the controlling process)
_workers: dict[str, list[float]] = {}  # worker -> [busy seconds, when its last test ended]
_started = time.monotonic()


def _shared_fixture_group(item: pytest.Item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    callspec = getattr(item, "callspec", None)
    parts = []
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if not defs or defs[-1].scope not in SHARED_SCOPES:
            continue
        if callspec is not None and name in callspec.params:
            parts.append(f"{name}={callspec.params[name]}")
        elif not parts:
            parts.append("")
    if not parts:
        return None
    return item.nodeid.split("::")[0] + "".join(f"[{p}]" for p in parts if p)


def _rank(item: pytest.Item) -> int:
    if item.get_closest_marker("browser"):
        return 0
    return 1 if item.get_closest_marker("slow") else 2


def _bare(nodeid: str) -> str:
    """The node id without the ``@group`` xdist 3.8 appends under pytest 8 (the lowest run)."""
    return nodeid.rsplit("@", 1)[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


def _recorded(path: str | None) -> dict[str, float]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    recorded = _recorded(config.stash.get(_durations_key, None))

    def took(item: pytest.Item) -> float:
        return recorded.get(item.nodeid, GUESS[_rank(item)])

    group_of: dict[int, str | None] = {}
    to_lanes: list[pytest.Item] = []
    for item in items:
        named = item.get_closest_marker("xdist_group")
        if named is not None:
            group = str(named.args[0] if named.args else named.kwargs.get("name", "default"))
        else:
            group = _shared_fixture_group(item)
            if group is None and item.get_closest_marker("browser"):
                to_lanes.append(item)
                continue
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
        group_of[id(item)] = group
    lanes = [0.0] * BROWSER_LANES
    for item in sorted(to_lanes, key=lambda item: -took(item)):  # stable: ties in order
        lane = lanes.index(min(lanes))
        lanes[lane] += took(item)
        group_of[id(item)] = f"browser-lane-{lane}"
        item.add_marker(pytest.mark.xdist_group(f"browser-lane-{lane}"))
    unit_of: dict[int, str] = {}
    units: dict[str, list[float]] = {}  # unit -> [browser? 0 : 1, -seconds, first position]
    for position, item in enumerate(items):
        group = group_of[id(item)]
        unit = unit_of[id(item)] = item.nodeid if group is None else f"@{group}"
        key = units.setdefault(unit, [1, 0.0, position])
        key[0] = min(key[0], 0 if item.get_closest_marker("browser") else 1)
        key[1] -= took(item)
    items.sort(key=lambda item: units[unit_of[id(item)]])
    config.stash[_units_key] = {str(id(item)): unit_of[id(item)] for item in items}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    node = _bare(report.nodeid)
    _spent[node] = _spent.get(node, 0.0) + report.duration
    worker = getattr(getattr(report, "node", None), "gateway", None)
    if worker is not None:  # the controlling process, a report from a worker
        busy = _workers.setdefault(str(worker.id), [0.0, 0.0])
        busy[0] += report.duration
        busy[1] = time.monotonic() - _started


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _workers:
        terminalreporter.write_line("workers: " + "; ".join(
            f"{w} busy {busy:.0f} s, done at {end:.0f} s" for w, (busy, end) in sorted(_workers.items())))


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.stash.get(_durations_key, None)
    if not path or not _spent or hasattr(session.config, "workerinput"):
        return
    written = _recorded(path)
    written.update({node: round(took, 2) for node, took in _spent.items()})
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".tmp").write_text(json.dumps(written, indent=0, sort_keys=True))
    target.with_suffix(".tmp").replace(target)


@pytest.hookimpl(tryfirst=True)  # before xdist sends the collection to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    workerinput = getattr(session.config, "workerinput", None)
    folder = os.environ.get(GROUPS_DIR_ENV)
    if workerinput is None or not folder or not os.path.isdir(folder):
        return
    units = session.config.stash.get(_units_key, {})
    groups = {item.nodeid: units[str(id(item))] for item in session.items
              if units.get(str(id(item)), "").startswith("@")}
    path = Path(folder) / f"{workerinput['workerid']}.json"
    path.with_suffix(".tmp").write_text(json.dumps(groups))
    path.with_suffix(".tmp").replace(path)


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    durations = workerinput.get(DURATIONS_ENV) if workerinput else os.environ.pop(DURATIONS_ENV, None)
    if durations:
        config.stash[_durations_key] = durations
    # the controlling process names the folder before it starts the workers (they inherit it)
    if not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") == "loadgroup":
        folder = tempfile.mkdtemp(prefix="lash-xdist-groups-")
        config.stash[_groups_dir_key] = folder
        os.environ[GROUPS_DIR_ENV] = folder


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """The durations file goes to each worker with its input (not its environment)."""
    durations = node.config.stash.get(_durations_key, None)
    if durations:
        node.workerinput[DURATIONS_ENV] = durations


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_groups_dir_key, None)
    if folder is not None:
        if os.environ.get(GROUPS_DIR_ENV) == folder:
            del os.environ[GROUPS_DIR_ENV]
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup" or _groups_dir_key not in config.stash:
        return None
    from xdist.scheduler import LoadGroupScheduling

    folder = config.stash[_groups_dir_key]

    class GroupScheduling(LoadGroupScheduling):
        """xdist's loadgroup, with the groups read from what the workers wrote."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # all workers have collected when the first unit is cut
                written = sorted(Path(folder).glob("*.json"))
                self.groups = json.loads(written[0].read_text()) if written else {}
            group = self.groups.get(nodeid)
            return group if group is not None else str(super()._split_scope(nodeid))

    return GroupScheduling(config, log)
