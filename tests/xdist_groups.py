"""How the suite runs in parallel; a pytest plugin (``tests/conftest.py`` registers it).

``scripts/test.sh`` runs ``pytest -n N --dist loadgroup --no-loadscope-reorder``
(pytest-xdist). Tests that share a class-, module- or package-scoped fixture (a kernel, a built
wheel) are one group, so that fixture is set up once, on one worker; a parametrized shared
fixture makes one group per parameter (JupyterLab and Notebook 7 may run at the same time). A
test that must not run beside another one (both build in the checkout) names a group itself
with ``@pytest.mark.xdist_group("...")``. The other browser tests are dealt round-robin into
``BROWSER_LANES`` groups: at most that many Chromium + Jupyter server + kernel stacks at once
on a 2-core machine (more made each slower than its timeouts). Browser tests, then slow ones, go
first, so the long ones do not start last; without xdist this only changes the order.

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
from pathlib import Path
from typing import Any

import pytest

SHARED_SCOPES = ("class", "module", "package")
BROWSER_LANES = 2
GROUPS_DIR_ENV = "LASH_XDIST_GROUPS_DIR"
_groups_dir_key = pytest.StashKey[str]()
_units_key = pytest.StashKey[dict[str, str]]()


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


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    units: dict[str, int] = {}
    unit_of: dict[int, str] = {}
    browsers = 0
    for item in items:
        named = item.get_closest_marker("xdist_group")
        if named is not None:
            group = str(named.args[0] if named.args else named.kwargs.get("name", "default"))
        else:
            group = _shared_fixture_group(item)
            if group is None and item.get_closest_marker("browser"):
                group = f"browser-lane-{browsers % BROWSER_LANES}"
                browsers += 1
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
        unit = item.nodeid if group is None else f"@{group}"
        unit_of[id(item)] = unit
        units[unit] = min(units.get(unit, 3), _rank(item))
    items.sort(key=lambda item: units[unit_of[id(item)]])  # stable: a unit keeps its order
    config.stash[_units_key] = {str(id(item)): unit_of[id(item)] for item in items}


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
    # the controlling process names the folder before it starts the workers (they inherit it)
    if not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") == "loadgroup":
        folder = tempfile.mkdtemp(prefix="lash-xdist-groups-")
        config.stash[_groups_dir_key] = folder
        os.environ[GROUPS_DIR_ENV] = folder


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
