"""The first thing a fresh process does with a store is often a report: it must get a frame.

With pandas 2.2 and pyarrow 15 the store's background import of pyarrow and the first report's
``to_pandas()`` used to break each other's imports (``ImportError: cannot import name ... from
partially initialized module``) on every run. A fresh interpreter per run, because the imports
happen once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys
from lash_nb.stores import DuckDBStore

store = DuckDBStore(sys.argv[1])
frame = store.query("SELECT 'Paris' AS city, 7 AS n")
print(frame.to_dict("records"))
store.close_sync()
"""


def test_a_fresh_process_opens_a_store_and_queries_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for run in range(3):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path / f"s{run}.duckdb")],
            capture_output=True, text=True, env=env, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "[{'city': 'Paris', 'n': 7}]"
