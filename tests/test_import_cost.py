"""``import lash_nb`` and ``%load_ext lash_nb`` import only what they use (issue 21, ADR 80).

The user's situation: a data scientist opens a notebook and runs ``%load_ext lash_nb``; the
kernel should be ready at once, not after building the runtime, the stores, the providers and
pandas. Those load with the first ``%lash`` that needs them. Each check runs in a fresh
interpreter, so nothing an earlier test imported hides a cost; the evidence is the set of
modules imported, never a time.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# third-party packages a %load_ext must not import (each is a cost paid by the first %lash)
HEAVY = ("duckdb", "psycopg", "pandas", "numpy", "pyarrow", "anywidget", "ipywidgets",
         "pydantic", "httpx", "mcp", "markdown_it", "pygments", "opentelemetry", "jupyter_client")
# lash_nb parts a %load_ext must not import: the runtime, the stores, reports, tools, the core
# records, the verbs and the widgets
LATE = ("lash_nb._runtime", "lash_nb._store", "lash_nb._reports", "lash_nb._tools",
        "lash_nb._core", "lash_nb._notebook.verbs_", "lash_nb._notebook.widgets",
        "lash_nb._notebook.runner", "lash_nb._notebook.costs", "lash_nb.providers",
        "lash_nb.stores", "lash_nb.reports", "lash_nb.events", "lash_nb.testing")


def _fresh(code: str, cwd: Path) -> Any:
    """Run ``code`` in a new interpreter of this environment; it prints one JSON value."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


LOADED = f"""
import sys
BASE = set(sys.modules)
def base_now():  # what the shell itself imported is not ours
    BASE.update(sys.modules)
def loaded():
    heavy = {HEAVY!r}
    late = {LATE!r}
    return sorted(m for m in set(sys.modules) - BASE
                  if m.split('.')[0] in heavy or any(m.startswith(p) for p in late))
"""


def test_import_lash_nb_imports_no_submodule_but_the_version(tmp_path: Path) -> None:
    code = LOADED + (
        "import json, sys, lash_nb\n"
        "ours = sorted(m for m in sys.modules if m.startswith('lash_nb'))\n"
        "print(json.dumps({'ours': ours, 'loaded': loaded()}))\n")
    got = _fresh(code, tmp_path)
    assert got["ours"] == ["lash_nb", "lash_nb._version"]
    assert got["loaded"] == []


def test_load_ext_in_a_shell_imports_nothing_heavy_and_the_first_turn_still_works(
        tmp_path: Path) -> None:
    """%load_ext, then %config as a notebook does: neither builds the runtime; the first
    ``%lash`` turn imports it and answers."""
    code = LOADED + (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.history_manager.enabled = False\n"
        "base_now()\n"
        "def run(cell):\n"
        "    r = ip.run_cell(cell, store_history=False)\n"
        "    err = r.error_before_exec or r.error_in_exec\n"
        "    if err is not None:\n"
        "        raise err\n"
        "run('%load_ext lash_nb')\n"
        "run('%config LashMagics.offline_delay_s = 0')\n"
        "run(\"%config LashMagics.store = ':memory:'\")\n"
        "after_load = loaded()\n"
        "registered = 'LashMagics' in ip.magics_manager.registry\n"
        "run('r = %lash turn hello there')\n"
        "r = ip.user_ns['r']\n"
        "print(json.dumps({'after_load': after_load, 'registered': registered,\n"
        "                  'outcome': str(r.outcome), 'text': r.assistant_output.safe_text,\n"
        "                  'runtime_after_turn': 'lash_nb._runtime.core' in sys.modules}))\n")
    got = _fresh(code, tmp_path)
    assert got["after_load"] == []
    assert got["registered"] is True
    assert got["outcome"] == "finished: assistant_message"
    assert got["text"].startswith("You said: hello there")
    assert got["runtime_after_turn"] is True


def test_a_misspelled_verb_is_answered_without_importing_the_runtime(tmp_path: Path) -> None:
    code = LOADED + (
        "import json\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.history_manager.enabled = False\n"
        "base_now()\n"
        "ip.run_cell('%load_ext lash_nb', store_history=False)\n"
        "r = ip.run_cell('%lash tunr hi', store_history=False)\n"
        "err = r.error_before_exec or r.error_in_exec\n"
        "print(json.dumps({'error': str(err), 'loaded': loaded()}))\n")
    got = _fresh(code, tmp_path)
    assert got["error"] == "unknown %lash verb 'tunr'; did you mean %lash turn? %lash help lists the verbs"
    assert got["loaded"] == []


def test_star_import_and_every_public_name_resolve_in_a_fresh_process(tmp_path: Path) -> None:
    code = (
        "import json, lash_nb\n"
        "ns = {}\n"
        "exec('from lash_nb import *', ns)\n"
        "missing = [n for n in lash_nb.__all__ if n not in ns]\n"
        "homes = sorted({getattr(lash_nb, n).__module__ for n in lash_nb.__all__\n"
        "                if hasattr(getattr(lash_nb, n), '__module__')})\n"
        "print(json.dumps({'missing': missing, 'homes': homes}))\n")
    got = _fresh(code, tmp_path)
    assert got["missing"] == []
    assert "lash_nb._runtime.core" in got["homes"] and "lash_nb._core.records" in got["homes"]


def test_an_object_pickled_elsewhere_loads_and_is_an_instance_of_the_lazy_name(
        tmp_path: Path) -> None:
    """A result pickled by one process (a worker, yesterday's kernel) is read by a process
    that has done nothing but ``import lash_nb``; isinstance against the lazy name holds."""
    from lash_nb import TokenUsage

    blob = pickle.dumps(TokenUsage(input_tokens=7, output_tokens=3))
    path = tmp_path / "usage.pickle"
    path.write_bytes(blob)
    code = (
        "import json, pickle, lash_nb\n"
        f"u = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "print(json.dumps({'same': isinstance(u, lash_nb.TokenUsage),\n"
        "                  'tokens': [u.input_tokens, u.output_tokens]}))\n")
    got = _fresh(code, tmp_path)
    assert got == {"same": True, "tokens": [7, 3]}


def test_the_names_type_checkers_see_are_the_names_imported_at_run_time() -> None:
    """The ``if TYPE_CHECKING:`` imports of ``lash_nb/__init__.py`` and its lazy map name the
    same object for every name (one cannot drift from the other)."""
    import lash_nb

    tree = ast.parse((ROOT / "lash_nb" / "__init__.py").read_text())
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1
                for alias in stmt.names:
                    seen[alias.asname or alias.name] = f".{stmt.module}"
    assert seen == lash_nb._LAZY
    assert set(seen) | {"__version__", "load_ipython_extension"} == set(lash_nb.__all__)


def test_the_kernel_version_is_read_from_the_running_kernel_not_from_installed_metadata(
        monkeypatch: Any) -> None:
    """In a kernel, loading names ipykernel's version only where Stop waits (ADR 23); reading
    it through ``importlib.metadata`` scanned every installed distribution on each load."""
    import importlib.metadata
    import types

    from lash_nb._notebook.extension import kernel_stop_notice

    def scan(name: str) -> str:
        raise AssertionError(f"scanned the installed distributions for {name}")

    monkeypatch.setattr(importlib.metadata, "version", scan)
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "ipykernel", types.SimpleNamespace(__version__="6.29.5"))
    notice = kernel_stop_notice(shell)
    assert notice is not None and "ipykernel 6.29.5 handles a widget's Stop only after" in notice
    monkeypatch.setitem(sys.modules, "ipykernel", types.SimpleNamespace(__version__="7.4.0"))
    assert kernel_stop_notice(shell) is None


def _first_turn_answers(k: Any) -> None:
    turn = k.run("%config LashMagics.store = ':memory:'\n"
                 "%config LashMagics.offline_delay_s = 0\n"
                 "r = %lash turn hello kernel\n"
                 "print(str(r.outcome))")
    assert turn.error == ""
    assert turn.stdout.strip().splitlines()[-1] == "finished: assistant_message"


# registered before `%load_ext`: what the load cell had imported when it ended (its
# post_run_cell), before the kernel went idle and the warm-up thread began (ADR 116)
AT_CELL_END = """
_at_end = {}
def _snapshot(result):
    if result.info.raw_cell.startswith("%load_ext") and not _at_end:
        _at_end["load"] = loaded()
get_ipython().events.register("post_run_cell", _snapshot)
"""


def test_load_ext_in_a_real_kernel_imports_nothing_heavy_until_the_first_turn(
        tmp_path: Path) -> None:
    """The same in the user's kernel (ipykernel imports more of its own first: only what the
    load adds counts), up to the end of the load cell; the first ``%lash`` turn then works."""
    from notebook_harness import KernelHarness

    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(LOADED + "base_now()\n" + AT_CELL_END)
        loaded = k.run("%load_ext lash_nb")
        assert loaded.error == ""
        after = k.run("import json\nprint(json.dumps(_at_end['load']))")
        assert json.loads(after.stdout.strip()) == []
        _first_turn_answers(k)


RUNTIME = ("lash_nb._runtime.core", "lash_nb._notebook.verbs_turn", "lash_nb._store.duckdb",
           "lash_nb._notebook.widgets.turn", "anywidget", "duckdb")


def test_after_load_ext_and_an_idle_pause_the_first_turn_finds_the_runtime_imported(
        tmp_path: Path) -> None:
    """What a user does: load, read the next cell, run it. After the load cell has ended (and
    imported nothing heavy by then), the kernel imports what the first turn needs while it
    waits for the user; the event the extension sets says when that is done."""
    from notebook_harness import KernelHarness

    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(LOADED + "base_now()\n" + AT_CELL_END)
        assert k.run("%load_ext lash_nb").error == ""
        waited = k.run(
            "import json, sys\n"
            "from lash_nb._notebook.extension import wait_until_warm\n"
            "done = wait_until_warm(120)\n"
            f"print(json.dumps({{'done': done, 'at_end': _at_end['load'],\n"
            f"                  'missing': [m for m in {RUNTIME!r} if m not in sys.modules]}}))",
            timeout=150)
        got = json.loads(waited.stdout.strip().splitlines()[-1])
        assert got == {"done": True, "at_end": [], "missing": []}
        _first_turn_answers(k)


def test_cells_sent_right_behind_load_ext_run_while_the_runtime_is_imported(
        tmp_path: Path) -> None:
    """A hurried user runs all cells: the turn and a cell importing lash_nb's names arrive
    while the warm-up thread imports the runtime. Neither deadlocks nor sees a half-imported
    module; the turn waits for the thread instead of importing beside it."""
    from notebook_harness import KernelHarness

    with KernelHarness(cwd=str(tmp_path)) as k:
        load = k.submit("%load_ext lash_nb\n"
                        "%config LashMagics.store = ':memory:'\n"
                        "%config LashMagics.offline_delay_s = 0")
        names = k.submit("import lash_nb\n"
                         "from lash_nb import LashCore, TurnInput\n"
                         "from lash_nb._notebook.widgets.turn import TurnWidget\n"
                         "print(LashCore.__module__, TurnInput.__name__, TurnWidget.__name__)")
        turn = k.submit("r = %lash turn hello right away\nprint(str(r.outcome))")
        for ex in (load, names, turn):
            k.wait(ex, timeout=120)
            assert ex.status == "ok", ex.error
        assert turn.stdout.strip().splitlines()[-1] == "finished: assistant_message"
        assert names.stdout.split() == ["lash_nb._runtime.core", "TurnInput", "TurnWidget"]
