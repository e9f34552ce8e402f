"""A worker prints a failing tool's traceback (scrubbed) on its stderr, where a headless user
looks; the stored turn keeps the one line.

Before, the worker's log had no trace of the error at all (the one line was only in the
stored result), so a tool that failed under a worker could not be debugged from its log.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

import lash_nb
from lash_nb import LashCore
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore

HOME = os.path.dirname(os.path.dirname(os.path.abspath(lash_nb.__file__)))  # this checkout
TOOLS = textwrap.dedent('''
    import json
    from lash_nb import tool

    def _read(text):
        return json.loads(text + " api_key=hunter2hunter2")

    @tool
    def parse_config(text: str) -> str:
        """Parse a JSON config."""
        return str(_read(text))
''')


@pytest.mark.slow  # a worker process
def test_a_worker_logs_a_failing_tools_scrubbed_traceback(tmp_path) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS)
    path = str(tmp_path / "w.duckdb")

    async def enqueue() -> None:
        store = DuckDBStore(path)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("s").open()
        await s.enqueue("use parse_config on 'not json'").send()
        await store.close()

    asyncio.run(enqueue())
    done = subprocess.run(
        [sys.executable, "-m", "lash_nb", "worker", "--store", path, "--tools",
         "mytools:parse_config", "--exit-when-idle", "0.5", "--poll", "0.05"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), HOME])})
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "tool 'parse_config' (call " in err and "raised:\nTraceback" in err, err
    assert 'mytools.py", line' in err and "in _read" in err, err
    assert "JSONDecodeError: Expecting value" in err, err
    assert "hunter2" not in err, err

    results = stored_results(path)
    assert len(results) == 1 and "JSONDecodeError" in results[0], results
    assert "Traceback" not in results[0]


def stored_results(path: str) -> list:
    async def stored() -> list:
        store = DuckDBStore(path)
        try:
            frame = await store.query_async("SELECT CAST(result AS VARCHAR) AS r FROM turns")
            return frame["r"].tolist()
        finally:
            await store.close()

    return asyncio.run(stored())
