"""The lock files CI installs hold what pyproject.toml promises, and the suite runs with it.

``opentelemetry-sdk`` entered the ``test`` extra (through ``otel``) without the locks being
made again: neither CI environment had it, and ``tests/test_tracing.py`` skipped in every run
(``importorskip``) while the README offered ``lash_nb.enable_tracing``. And the lowest lock held
``jupyter_client`` 8.0.0, with which ``jupyter nbconvert --execute`` hangs at the kernel's start
(fixed in 8.0.2): a floor nobody could use. These tests read the files, so a stale lock or an
environment built from one fails here by name instead of skipping elsewhere.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)
# the environment the lowest lock is compiled for (scripts/lock.sh: 3.11, x86_64 Linux)
LOWEST_ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64",
              "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "os_name": "posix"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _test_requirements(*more: str) -> list[Requirement]:
    """The core dependencies and the ``test`` extra (and the extras named in ``more``), their
    own extras (``lash-nb-core[...]``) opened up: everything a CI environment is built to
    hold."""
    project = _project()
    me = canonicalize_name(project["name"])
    extras = project["optional-dependencies"]

    def expand(lines: list[str]) -> list[Requirement]:
        out: list[Requirement] = []
        for line in lines:
            req = Requirement(line)
            if canonicalize_name(req.name) == me:
                for extra in sorted(req.extras):
                    out += expand(extras[extra])
            else:
                out.append(req)
        return out

    every = [Requirement(d) for d in project["dependencies"]] + expand(extras["test"])
    for extra in more:
        every += expand(extras[extra])
    return list({str(r): r for r in every}.values())  # jupyter_client is in two extras


def _pins(lock: str) -> dict[str, Version]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(m.group(1)): Version(m.group(2)) for m in PIN.finditer(text)}


def test_the_lowest_lock_pins_every_direct_requirement_at_the_floor_pyproject_declares():
    """'Its lowest declared version is tested': each ``>=`` floor is what the lowest run
    installs, litellm's too (not in the ``test`` extra for its size, but a declared floor
    is a tested one). A floor that cannot be installed (psycopg[binary] 3.2.0 needs a binary
    package that exists only as a dev release) is raised to the first version that can."""
    pins = _pins("ci-lowest.txt")
    wrong = []
    for req in _test_requirements("litellm"):
        if req.marker is not None and not req.marker.evaluate(LOWEST_ENV):
            continue
        floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None or (floors and pinned != max(floors)):
            wrong.append(f"{req}: ci-lowest.txt has {pinned}")
    assert wrong == [], "run scripts/lock.sh <package> (or raise the floor): " + "; ".join(wrong)


def test_the_newest_lock_holds_every_requirement_at_an_allowed_version():
    """The litellm extra's too: before ADR 209 the newest lock had no LiteLLM, and what
    ``pip install lash-nb-core[litellm]`` gives today (1.110, which refuses a password in
    ``api_base`` beside a key) was never run."""
    pins = _pins("ci-newest.txt")
    wrong = [f"{req}: ci-newest.txt has {pins.get(canonicalize_name(req.name))}"
             for req in _test_requirements("litellm")
             if (req.marker is None or req.marker.evaluate())
             and not req.specifier.contains(pins.get(canonicalize_name(req.name), Version("0")),
                                            prereleases=True)]
    assert wrong == [], "run scripts/lock.sh <package>: " + "; ".join(wrong)


def test_this_environment_holds_every_requirement_so_no_test_skips_for_a_missing_package():
    """The environment the suite runs in was built from a lock: every package the ``test``
    extra asks for is installed, at an allowed version. (A developer's own environment that
    lacks one fails here too, which is the point: the suite would skip its tests quietly.)
    Both locks hold the litellm extra (ADR 202, 209), so its tests run in both runs."""
    wrong = []
    for req in _test_requirements("litellm"):
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = Version(metadata.version(req.name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{req}: not installed")
            continue
        if not req.specifier.contains(have, prereleases=True):
            wrong.append(f"{req}: {have} installed")
    assert wrong == [], f"{sys.prefix} lacks: " + "; ".join(wrong)


def test_the_lowest_environment_here_is_the_one_scripts_lock_sh_compiles_for():
    """LOWEST_ENV above must follow scripts/lock.sh if its Python moves."""
    script = (ROOT / "scripts" / "lock.sh").read_text()
    lowest_line = next(line for line in script.splitlines() if "lowest-direct" in line)
    assert f"--python-version {LOWEST_ENV['python_version']}" in lowest_line
