"""A test run tests the packages of its own environment (ADR 227).

The lowest run (scripts/test.sh, .venv-lowest) started from a shell with another virtualenv
activated (``source .venv/bin/activate``, the development one) did not: IPython's
``InteractiveShell`` puts ``$VIRTUAL_ENV``'s site-packages first on ``sys.path`` when it is not
the running interpreter's environment, so after a test's first in-process shell every module
imported later, and ``importlib.metadata``, came from the newest lock. The tests that choose a
widget's Stop or the kernel's interrupt by ipykernel's version read 7.4 and sent a Stop that
ipykernel 6.29 hands to a cell only after it: the cell waited 60 s (two full runs failed so).

The kernel harness's next cell after a failed one runs: ipykernel 6.x aborts the execute
requests it reads in the loop turn after a failure, and the harness's next cell came that fast
on a loaded machine (a check cell read "aborted"; ``KernelHarness._past_the_abort``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_harness import KernelHarness

ROOT = Path(__file__).resolve().parents[1]
INNER = "LASH_NB_TEST_INNER_RUN"


@pytest.mark.skipif(os.environ.get(INNER) != "1",
                    reason="run by the test below, in a pytest process of its own")
def test_an_in_process_shell_leaves_this_environments_packages_first() -> None:
    from importlib.metadata import version

    import ipykernel
    from notebook_harness import ReraisingShell, kernel_serves_widgets_mid_cell

    before = kernel_serves_widgets_mid_cell()
    ReraisingShell()
    assert not [p for p in sys.path if "other-venv" in p], sys.path
    assert version("ipykernel") == ipykernel.__version__
    assert kernel_serves_widgets_mid_cell() == before


def test_a_run_started_with_another_virtualenv_activated_tests_its_own_packages(
        tmp_path: Path) -> None:
    # another environment, as `source other-venv/bin/activate` names it, whose ipykernel is
    # not this one's
    site = tmp_path / "other-venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    dist = site / "site-packages" / "ipykernel-99.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ipykernel\nVersion: 99.0\n")
    env = {**os.environ, "VIRTUAL_ENV": str(tmp_path / "other-venv"), INNER: "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{__file__}::test_an_in_process_shell_leaves_this_environments_packages_first"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]


def test_the_harness_next_cell_after_a_failed_one_and_the_cells_it_aborted_runs(
        tmp_path: Path) -> None:
    with KernelHarness() as k:
        for i in range(40):  # 7 of 150 such cells were aborted on ipykernel 6.29 at load 3
            # the failing cell ends once the cell queued behind it was sent (a sleep of its own
            # let a loaded kernel fail before the second request arrived, which then ran)
            flag = tmp_path / f"sent-{i}"
            failed = k.submit(f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n"
                              "    time.sleep(0.01)\n1 / 0")
            queued = k.submit("print('queued behind it')")  # Run All: aborted, as it should
            flag.touch()
            k.wait(failed)
            k.wait(queued)
            # aborted, unless the request reached the kernel after its abort window closed
            assert failed.status == "error" and queued.status in ("aborted", "ok"), queued.status
            assert k.execute("print('next')").stdout == "next\n"
