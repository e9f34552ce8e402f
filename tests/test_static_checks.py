"""The static checks are configured once and cover the whole package.

``scripts/test.sh`` runs ``ruff check`` and ``mypy`` (its ``static`` run, on the newest lock);
these tests hold what that run relies on: mypy is strict over all of ``lash_nb`` with
overrides only for untyped third parties, ruff selects the agreed rule families, CI runs the
step, and no suppression in the package is blanket. The checks themselves run in that step,
not here: their findings depend on their versions, and the lowest lock has older ones.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
UNTYPED_THIRD_PARTIES = {"pandas", "pandas.*", "pyarrow", "pyarrow.*", "pygments", "pygments.*"}


def test_mypy_is_strict_over_the_whole_package_with_overrides_only_for_untyped_third_parties() -> None:
    mypy = CONFIG["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["files"] == ["lash_nb"]
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert set(modules) <= UNTYPED_THIRD_PARTIES
        assert set(override) == {"module", "ignore_missing_imports"}


def test_ruff_selects_the_agreed_rule_families() -> None:
    lint = CONFIG["tool"]["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B", "UP", "SIM", "RUF"} <= set(lint["select"])
    # nothing is ignored wholesale: each ignore is one rule code, not a family
    assert all(re.fullmatch(r"[A-Z]+[0-9]+", code) for code in lint.get("ignore", []))


def test_ci_runs_the_static_checks_by_default() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert 'RUNS=${RUNS:-"static ' in script
    assert ".venv/bin/ruff check" in script and "-m mypy" in script
    for lock in ("ci-newest.txt", "ci-lowest.txt"):
        pins = (ROOT / "requirements" / lock).read_text()
        assert re.search(r"^ruff==", pins, re.M) and re.search(r"^mypy==", pins, re.M), lock


def test_no_suppression_in_the_package_is_blanket() -> None:
    blanket = []
    for path in (ROOT / "lash_nb").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"#\s*type:\s*ignore(?!\[)", line) or re.search(r"#\s*noqa(?!:)", line):
                blanket.append(f"{path.relative_to(ROOT)}:{n}")
    assert blanket == []
