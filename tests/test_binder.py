"""The binder files alone make a working environment: with the Python that
``binder/runtime.txt`` names, a fresh virtualenv gets
``pip install -r binder/requirements.txt`` (run from the root of a copy of the repository, as
repo2docker clones it, where ``.`` is this repository), then ``binder/postBuild``, then runs
``notebooks/01-quickstart.ipynb`` with its own nbclient and kernel. Nothing from the development virtualenv is used.

Slow: about a minute on a quiet 2-core machine, nearly all of it CPU (pip resolving the
requirements against the index and unpacking JupyterLab, pandas, pyarrow and duckdb: ~30 s;
downloading them took under a second at ~80 MB/s), several minutes on a loaded one (ADR 187).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import lash_nb

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"

RUNNER = """
import sys
import nbclient, nbformat
import lash_nb

nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                        resources={"metadata": {"path": sys.argv[2]}}).execute()
errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
streams = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                  if o["output_type"] == "stream")
print("LASH_NB_FILE", lash_nb.__file__)
print("ERRORS", len(errors))
print(streams)
"""


def _clean_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
           and not k.endswith("_API_KEY") and k not in ("OLLAMA_HOST", "LASH_OLLAMA_BASE_URL")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _binder_venv(runtime: str, env_dir: Path) -> None:
    """A virtualenv with pip from the Python ``runtime`` (``python-3.11``) names: this one if
    it is that version, else ``python3.11`` on PATH."""
    version = runtime.removeprefix("python-")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        venv.EnvBuilder(with_pip=True, symlinks=True).create(env_dir)
        return
    python = shutil.which(f"python{version}")
    ok = python is not None and subprocess.run(
        [python, "-c", "import venv"], capture_output=True, timeout=60).returncode == 0
    assert ok, (f"binder/runtime.txt names {runtime}: put python{version} on PATH to run this "
                f"test from Python {sys.version_info.major}.{sys.version_info.minor}")
    _run([str(python), "-m", "venv", "--symlinks", str(env_dir)], cwd=env_dir.parent,
         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
         timeout=300)


# what a clone holds, not what a checkout accumulates (virtualenvs, builds, caches)
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".mcp-servers",
    "artifacts", ".ipynb_checkpoints", "*.duckdb", "*.duckdb.wal", "*.duckdb.lash-share")


# pip builds `.` in a copy of the repository, so this test need not wait for the builds of
# test_packaging in the checkout (it did, in their xdist group: the longest chain of the run)
@pytest.mark.slow
def test_a_fresh_virtualenv_from_the_binder_files_runs_the_quickstart(tmp_path):
    assert os.access(BINDER / "postBuild", os.X_OK), "binder/postBuild must be executable"
    # binder builds with the Python runtime.txt names; this test uses the same minor version
    # (scripts/test.sh runs the whole suite on the newest Python: it finds that one beside it)
    runtime = (BINDER / "runtime.txt").read_text().strip()
    env_dir = tmp_path / "venv"
    _binder_venv(runtime, env_dir)
    bin_dir = env_dir / "bin"
    env = _clean_env(bin_dir)
    python = str(bin_dir / "python")

    # what repo2docker does: requirements from the repository root, then postBuild
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=_NOT_IN_A_CLONE, symlinks=True)
    # --no-compile: byte-compiling every installed module (JupyterLab's whole tree) took ~30 s
    # of the ~70 s the steps take on a quiet 2-core machine; the modules postBuild and the
    # notebook import are compiled when imported, the rest are never used here
    _run([python, "-m", "pip", "install", "-q", "--no-compile", "-r", "binder/requirements.txt"],
         cwd=repo, env=env, timeout=900)
    built = _run([str(repo / "binder" / "postBuild")], cwd=repo, env=env, timeout=300)
    assert f"postBuild: lash_nb {lash_nb.__version__} is installed with its widgets" in built

    work = tmp_path / "work"
    work.mkdir()
    notebook = work / "01-quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "01-quickstart.ipynb", notebook)
    out = _run([python, "-c", RUNNER, str(notebook), str(work)], cwd=work, env=env, timeout=600)

    installed = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("LASH_NB_FILE"))
    assert Path(installed).resolve().is_relative_to(env_dir.resolve()), installed
    assert "ERRORS 0" in out
    assert "add returned 42.0." in out
    assert "stopped: cancelled | 'You said: Tell me a'" in out
    assert "turns now: 5" in out
    assert (work / "quickstart.duckdb").is_file()


def _installed_by(requirement_lines: list[str]) -> set[str]:
    """The distributions (normalised names) that ``pip install`` of these requirement lines
    brings in, read from the metadata of the development virtualenv (which has them all):
    ``.[extra,...]`` is this repository with those extras, then every requirement's own
    requirements, their markers evaluated for this Python and no extra."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo: list[str] = []
    seen: set[str] = set()
    for line in requirement_lines:
        if line.startswith("."):
            seen.add("lash-nb-core")
            extras = line.partition("[")[2].rstrip("]").split(",") if "[" in line else []
            todo += project["dependencies"]
            for extra in filter(None, extras):
                todo += project["optional-dependencies"][extra.strip()]
        else:
            todo.append(line)
    while todo:
        req = Requirement(todo.pop())
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if name == "lash-nb-core":  # a self-reference with extras (the test extra's)
            for extra in req.extras:
                todo += project["optional-dependencies"][extra]
            continue
        if name in seen:
            continue
        seen.add(name)
        todo += metadata.requires(req.name) or []
    return seen


def test_the_binder_requirements_install_what_every_notebook_imports():
    """`pip install -r binder/requirements.txt` is how README says to open the notebooks: a
    notebook that imports a package it does not install stops Run All at that cell (05 needs
    mcp for its MCP server, 08 matplotlib for its figures)."""
    import re
    import sys
    from importlib import metadata

    from packaging.utils import canonicalize_name

    lines = [ln.split("#")[0].strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    installed = _installed_by([ln for ln in lines if ln])
    providers = dict(metadata.packages_distributions(), lash_nb=["lash-nb-core"])
    missing = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        import nbformat

        nb = nbformat.read(path, as_version=4)
        sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        written = set(re.findall(r"(\w+)\.py\b", sources))  # modules the notebook writes itself
        for module in sorted(set(re.findall(r"^\s*(?:from|import)\s+(\w+)", sources, re.M))):
            if module in sys.stdlib_module_names or module in written:
                continue
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if not dists & installed:
                missing.append(f"{path.name}: {module}")
    assert not missing, f"binder/requirements.txt does not install: {missing}"
