"""What a user gets from PyPI: metadata, the version, the sdist a maintainer tests from, and a
worker-only install without IPython.

The build and install tests use ``uv`` (in the ``test`` extra): ``uv build`` makes the sdist
and the wheel exactly as a release would, ``uv pip install`` installs the wheel in a fresh
virtualenv with pip's resolver rules.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import lash_nb

ROOT = Path(__file__).resolve().parent.parent
META = ROOT / "packaging" / "lash-nb"
UV = [sys.executable, "-m", "uv"]
VERSION_RE = re.compile(r'^__version__ = "([^"]+)"$', re.M)


def _file_version() -> str:
    m = VERSION_RE.search((ROOT / "lash_nb" / "_version.py").read_text())
    assert m, "lash_nb/_version.py must hold one __version__ = \"X.Y.Z\" line"
    return m.group(1)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.endswith("_API_KEY")}
    env["UV_NO_PROGRESS"] = "1"
    return env


def _run(cmd: list[str], *, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or _clean_env())
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_the_version_is_written_once_and_everything_reports_it():
    version = _file_version()
    assert lash_nb.__version__ == version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    meta = tomllib.loads((META / "pyproject.toml").read_text())["project"]
    assert meta["version"] == version
    assert meta["dependencies"] == [f"lash-nb-core[notebook]=={version}"]
    for cmd in ([sys.executable, "-m", "lash_nb", "--version"],):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.stdout.strip() == f"lash_nb {version}"


def test_license_is_mit_by_spdx_and_ships_in_both_distributions():
    for pyproject in (ROOT / "pyproject.toml", META / "pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        assert project["license"] == "MIT"
        assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert (META / "LICENSE").read_text() == text


def test_the_readme_has_no_links_that_break_on_pypi():
    # PyPI renders README.md without the repository: a relative link or image is a 404 there
    targets = re.findall(r"\]\(([^)\s]+)", (ROOT / "README.md").read_text())
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert relative == []


def test_the_core_install_declares_no_notebook_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!\[; ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert names == {"duckdb", "pandas", "pyarrow", "httpx", "pydantic"}  # pydantic: @tool (ADR 35)
    notebook = {re.split(r"[<>=!\[; ]", d, maxsplit=1)[0].lower()
                for d in project["optional-dependencies"]["notebook"]}
    assert notebook == {"ipykernel", "ipywidgets", "anywidget", "markdown-it-py", "pygments"}


# builds write build/ and *.egg-info in the checkout: under xdist they run one after the other
# (test_binder.py installs `.` with pip, which does the same)
BUILDS_IN_THE_CHECKOUT = "builds_in_the_checkout"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([*UV, "build", "--sdist", "--wheel", "--out-dir", str(out), str(ROOT)], cwd=ROOT)
    return out


@pytest.mark.slow
@pytest.mark.xdist_group(BUILDS_IN_THE_CHECKOUT)
def test_the_sdist_holds_the_tests_and_they_run_from_it(dist, tmp_path):
    (sdist,) = dist.glob("lash_nb_core-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (src,) = tmp_path.glob("lash_nb_core-*")
    for needed in ("LICENSE", "tests/notebook_harness.py", "tests/pg_fixture.py",
                   "tests/data/lash_trace_v2.jsonl", "tests/data/duckdb_schema_v1.sql",
                   "tests/wire_scripts/anthropic.max-tokens.json", "notebooks/01-quickstart.ipynb",
                   "scripts/test.sh", "lash_nb/_notebook/static/turn.js"):
        assert (src / needed).is_file(), f"the sdist lacks {needed}"
    # a quick subset, run from the unpacked sdist (its own lash_nb, not this checkout's)
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "tests/test_architecture.py", "tests/test_reports_trace.py",
                "tests/test_providers_replay.py", "tests/test_notebook_magics.py"],
               cwd=src, env={**_clean_env(), "PYTHONPATH": str(src)})
    assert re.search(r"\d+ passed", out) and " failed" not in out, out[-2000:]


@pytest.mark.slow
@pytest.mark.xdist_group(BUILDS_IN_THE_CHECKOUT)
def test_the_wheel_ships_license_assets_and_metadata(dist):
    (wheel,) = dist.glob("lash_nb_core-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "lash_nb/_notebook/static/turn.js" in names and "lash_nb/py.typed" in names
    assert "lash_nb/_reports/prices_snapshot.json" in names  # prices="default" needs it
    assert "License-Expression: MIT" in metadata
    assert f"Version: {_file_version()}" in metadata
    assert not any(n.startswith("tests/") for n in names)


WORKER_SETUP = """
import asyncio, sys
from lash_nb import LashCore
from lash_nb.providers import OfflineProvider

async def main():
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(sys.argv[1]).build()
    session = await core.session("w1").open()
    await session.enqueue("please echo queued work").id("k1").send()
    await core.close()

asyncio.run(main())
"""

WORKER_CHECK = """
import asyncio, sys
from lash_nb.stores import DuckDBStore

async def main():
    store = DuckDBStore(sys.argv[1])
    print([(t.outcome, t.stop_reason) for t in await store.load_turns("w1")])
    await store.close()

asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.xdist_group(BUILDS_IN_THE_CHECKOUT)
def test_a_worker_only_install_drains_a_queue_without_ipython(dist, tmp_path):
    (wheel,) = dist.glob("lash_nb_core-*.whl")
    env_dir = tmp_path / "venv"
    _run([*UV, "venv", "-q", "-p", sys.executable, str(env_dir)], cwd=tmp_path)
    python = str(env_dir / "bin" / "python")
    _run([*UV, "pip", "install", "-q", "-p", python, str(wheel)], cwd=tmp_path)
    listed = _run([*UV, "pip", "list", "-p", python], cwd=tmp_path).lower()
    for absent in ("ipython", "ipykernel", "debugpy", "jedi", "ipywidgets", "anywidget"):
        assert not re.search(rf"^{absent}\s", listed, re.M), f"{absent} was installed:\n{listed}"
    store = str(tmp_path / "work.duckdb")
    _run([python, "-c", WORKER_SETUP, store], cwd=tmp_path)
    _run([python, "-m", "lash_nb", "worker", "--store", store, "--all", "--exit-when-idle", "3"],
         cwd=tmp_path)
    turns = _run([python, "-c", WORKER_CHECK, store], cwd=tmp_path)
    assert "[('finished', 'assistant_message')]" in turns
    version = _run([str(env_dir / "bin" / "lash-nb"), "--version"], cwd=tmp_path)
    assert version.strip() == f"lash_nb {_file_version()}"


# declared but not imported by lash_nb, each for a reason a maintainer can check
NOT_IMPORTED = {
    # (ipywidgets is imported since ADR 204: the Approve / Deny under a Python-API cell)
    # the kernel the magics and widgets run in; lash_nb reads its version (ADR 23)
    "ipykernel",
}


def test_every_runtime_dependency_is_imported_by_lash_nb():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["notebook"],
                *project["optional-dependencies"]["postgres"],
                *project["optional-dependencies"]["mcp"]]
    names = {re.split(r"[<>=!\[; ]", d, maxsplit=1)[0].lower() for d in declared}
    source = "\n".join(p.read_text() for p in (ROOT / "lash_nb").rglob("*.py"))
    module = {"markdown-it-py": "markdown_it"}  # distributions whose import name differs
    imported = {n for n in names
                if re.search(rf"^\s*(import|from) {module.get(n, n)}\b", source, re.M)}
    assert names - imported == NOT_IMPORTED


NOTEBOOK_CHECK = """
from IPython.core.interactiveshell import InteractiveShell
import anywidget, ipykernel, lash_nb

shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "lash_nb")
print("loaded", "LashMagics" in shell.magics_manager.registry, lash_nb.__version__)
"""


@pytest.mark.slow
@pytest.mark.xdist_group(BUILDS_IN_THE_CHECKOUT)
def test_pip_install_lash_nb_brings_the_notebook_side(dist, tmp_path):
    meta_dist = tmp_path / "meta"
    _run([*UV, "build", "--wheel", "--out-dir", str(meta_dist), str(META)], cwd=ROOT)
    (meta,) = meta_dist.glob("lash_nb-*.whl")
    with zipfile.ZipFile(meta) as z:
        assert not any(n.endswith(".py") for n in z.namelist())  # no code of its own
    (core,) = dist.glob("lash_nb_core-*.whl")
    env_dir = tmp_path / "venv"
    _run([*UV, "venv", "-q", "-p", sys.executable, str(env_dir)], cwd=tmp_path)
    python = str(env_dir / "bin" / "python")
    # both wheels given: the metapackage's exact pin is met by this build, not by an index
    _run([*UV, "pip", "install", "-q", "-p", python, str(meta), str(core)], cwd=tmp_path)
    out = _run([python, "-c", NOTEBOOK_CHECK], cwd=tmp_path)
    assert f"loaded True {_file_version()}" in out
