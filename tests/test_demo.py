"""The README's first command, ``python -m lash_nb demo``, tells the truth.

Run as the README runs it (a subprocess in a fresh folder), twice on the same file (a user runs
it again): every number it prints matches the store it wrote.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _demo(cwd: Path) -> str:
    run = subprocess.run([sys.executable, "-m", "lash_nb", "demo", "--delay", "0.005"], cwd=cwd,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr
    return run.stdout


def _stored(path: Path) -> tuple[int, int, bool]:
    """(turns, total tokens, any estimated usage) as the store holds them."""
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider

    async def body():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(str(path)).build()
        s = await core.session("demo").open()
        turns = s.read_view().turn_index
        total = s.usage_report().usage.total()
        est = core.store.query("SELECT bool_or(estimated) AS e FROM usage_deltas")["e"][0]
        await core.close()
        return turns, total, bool(est)

    return asyncio.run(body())


def test_the_demo_prints_what_it_stored_and_marks_the_estimate(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert "session 'demo' has 0 earlier turns" in first
    stopped = [ln for ln in first.splitlines() if "stopped: cancelled" in ln]
    assert len(stopped) == 1
    turns, total, estimated = _stored(tmp_path / "lash-demo.duckdb")
    assert f"{turns} turns" in first and turns == 5
    assert f"total {total} tokens" in first
    # the cut model call of the stopped turn is billed at an estimate; the line says so
    assert estimated and "estimate" in stopped[0]
    # every turn's line gives its tokens, the drained ones too, and they add up to the total
    per_turn = [int(n) for n in re.findall(r"\((\d+) tokens", first)]
    assert len(per_turn) == turns and sum(per_turn) == total, (per_turn, total)
    # an answer cut for the line says so
    drained = [ln for ln in first.splitlines() if ln.startswith("  drained ")]
    assert len(drained) == 2 and all(ln.endswith(("…", ".")) for ln in drained), drained

    second = _demo(tmp_path)
    assert "session 'demo' has 5 earlier turns" in second
    turns, total, _ = _stored(tmp_path / "lash-demo.duckdb")
    assert turns == 10 and f"{turns} turns" in second and f"total {total} tokens" in second


def test_the_command_lines_help_reads_as_text_not_as_docstring_markup(tmp_path: Path) -> None:
    """``python -m lash_nb --help`` opened with "Command line: ``python -m lash_nb demo``,
    ``worker``, ...": the module docstring, reST backticks and all."""
    run = subprocess.run([sys.executable, "-m", "lash_nb", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr
    assert "``" not in run.stdout
    assert "demo" in run.stdout and "worker" in run.stdout
