"""``LASH_CPU_PROBE`` (tests/cpu_probe.py): a run writes one line per test with the CPU of the
pytest process and of the processes it reaped during that test; without it, nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITE = """
    import subprocess, sys

    def test_starts_a_busy_child():
        subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True)

    def test_starts_nothing():
        assert True
"""


def _run(root: Path, probe: Path | None) -> None:
    (root / "test_suite.py").write_text(textwrap.dedent(SUITE))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "LASH_CPU_PROBE")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    if probe is not None:
        env["LASH_CPU_PROBE"] = str(probe)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "cpu_probe", "test_suite.py"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_each_test_gets_a_line_and_a_reaped_child_counts_with_its_test(tmp_path):
    probe = tmp_path / "cpu"
    _run(tmp_path, probe)
    (written,) = probe.iterdir()
    assert written.name.startswith(f"py3{sys.version_info.minor}-") and written.suffix == ".tsv"
    rows = {}
    for line in written.read_text().splitlines():
        node, *numbers = line.split("\t")
        rows[node] = [float(n) for n in numbers]
    assert sorted(rows) == ["test_suite.py::test_starts_a_busy_child",
                            "test_suite.py::test_starts_nothing"]
    assert all(len(v) == 3 and min(v) >= 0 for v in rows.values())
    assert rows["test_suite.py::test_starts_a_busy_child"][2] > 0  # the child's CPU is there
    assert rows["test_suite.py::test_starts_nothing"][2] == 0  # and only with its own test


def test_without_the_variable_nothing_is_written(tmp_path):
    _run(tmp_path, None)
    assert not list(tmp_path.rglob("*.tsv"))
