"""The PostgreSQL fixtures (``pg_server``, ``pg_dsn``) and the MCP test servers
(``mcp_servers``) are available to every test module.

Running in parallel (``scripts/test.sh`` runs ``pytest -n N --dist loadgroup
--no-loadscope-reorder``, pytest-xdist): tests that share a module- or class-scoped fixture
(a kernel, a Jupyter server, a built wheel) are one ``xdist_group``, so that fixture is set up
once, on one worker; a parametrized shared fixture makes one group per parameter (JupyterLab and
Notebook 7 may run at the same time). A test that must not run beside another one (both build in
the checkout) names a group itself with ``@pytest.mark.xdist_group("...")``. The other browser
tests are dealt round-robin into ``BROWSER_LANES`` groups: at most that many Chromium + Jupyter
server + kernel stacks at once on a 2-core machine (more made each slower than its timeouts).
Browser tests, then slow ones, go first, so the long ones do not start last; without xdist this
only changes the order.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pg_fixture", "mcp_servers"]

SHARED_SCOPES = ("class", "module", "package")
BROWSER_LANES = 2


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
