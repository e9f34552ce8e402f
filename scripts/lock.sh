#!/usr/bin/env bash
# Regenerate the CI lock files on purpose (review the diff, then commit it):
#   requirements/ci-newest.txt  the newest versions pyproject.toml allows (every Python >= 3.11),
#                               the litellm extra's too (ADR 209: what `pip install
#                               lash-nb-core[litellm]` gives today is a tested one)
#   requirements/ci-lowest.txt  the lowest versions of each direct dependency (Python 3.11), and
#                               the litellm extra at its floor (too large for the test extra,
#                               but a declared floor is a tested one: ADR 202)
# scripts/test.sh installs exactly these. Needs uv (`pip install uv`, or the test extra).
#   bash scripts/lock.sh              every pin moves to the newest (resp. lowest) allowed
#   bash scripts/lock.sh ruff mypy    only these packages move (or are added); the rest stay
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
command -v "$uv" >/dev/null 2>&1 || uv=".venv/bin/uv"
upgrade=(--upgrade)
if [ $# -gt 0 ]; then
  upgrade=()
  for p in "$@"; do upgrade+=(--upgrade-package "$p"); done
fi
"$uv" pip compile -q pyproject.toml --extra test --extra litellm --universal --python-version 3.11 \
  "${upgrade[@]}" --no-header -o requirements/ci-newest.txt
"$uv" pip compile -q pyproject.toml --extra test --extra litellm --resolution lowest-direct --python-version 3.11 \
  --python-platform x86_64-unknown-linux-gnu "${upgrade[@]}" --no-header -o requirements/ci-lowest.txt
echo "locked: requirements/ci-newest.txt ($(grep -c '==' requirements/ci-newest.txt) pins)," \
     "requirements/ci-lowest.txt ($(grep -c '==' requirements/ci-lowest.txt) pins)"
