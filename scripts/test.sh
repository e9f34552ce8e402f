#!/usr/bin/env bash
# Set up a fresh machine and run the tests: this is what CI runs (.ci/run). The static checks,
# then two test runs, one at each end of what pyproject.toml claims:
#
#   static  ruff check and mypy --strict over the whole package (settings in pyproject.toml),
#           once, in the development environment .venv (python3, the newest lock); mypy keeps
#           its cache in the user's cache (CI clones afresh: unchanged files are not re-checked)
#   newest  the whole suite on the newest Python we claim (3.13) and the newest versions:
#           requirements/ci-newest.txt, .venv-py3.13
#   lowest  the floor set on the oldest Python we claim (3.11) and the lowest direct versions
#           pyproject.toml allows (pandas 2.2, pyarrow 15, ipykernel 6.29, ...):
#           requirements/ci-lowest.txt, .venv-lowest
#
# Until ADR 93 the whole suite ran on python3 (3.11 here) with the newest versions and the
# floor set a third time on Python 3.13 with the same versions: the newest run now is that
# Python 3.13 run, so every claimed end (oldest and newest Python, lowest and newest versions)
# is still tested, in two runs instead of three. `py3.13` in RUNS names the newest run.
#
# The floor set (ADR 75) is the quick tests (not slow, not browser) and the slow tests marked
# `floor`: together they reach every declared dependency (the quick ones start real kernels,
# widgets, DuckDB files in other processes, PostgreSQL, providers over httpx; `floor` adds the
# mcp SDK's client, which only slow tests reach). The rest of the slow tests and the browser
# tests run once, in newest: they drive the same dependency code longer, through whole
# notebooks, browsers and many processes. A new test that is the only one to reach a
# dependency is marked `floor`.
#
# Every run is parallel (pytest-xdist, JOBS workers; see PAR below and tests/xdist_groups.py).
# When both test runs are asked for, lowest runs beside newest (ADR 115), at a lower CPU
# priority (nice LOWEST_NICE, 5 by default): newest is the long one and keeps most of the CPU when both
# want it, lowest takes what newest leaves idle (kernels, browsers and worker processes
# starting and waiting), so the command takes about as long as newest alone instead of
# newest + lowest. Its output is printed when newest has ended. BESIDE=0 runs them one after
# the other.
#
# As root with apt it first installs Debian chromium (browser test) and postgresql (PostgreSQL
# store tests). Virtualenvs: .venv (static; also the development one), .venv-py3.13 (newest),
# .venv-lowest; packages come from the lock files only (update them on purpose with
# scripts/lock.sh). Arguments go to pytest in the newest run, e.g.
#   bash scripts/test.sh -m "not slow and not browser"
# RUNS="newest" (or any subset of "static newest lowest") picks the runs. Each run prints
# pytest's closing line; the script ends with all of them and exits non-zero if any run failed
# or a claimed Python is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-"static newest lowest"}
FLOOR=(-m "(not slow and not browser) or floor")
# in parallel (pytest-xdist): JOBS workers, 4 by default on 2 cores since many tests wait on
# kernels, Jupyter servers and worker processes; JOBS=0 runs in one process. loadgroup keeps the
# tests of one shared fixture on one worker, in the order tests/xdist_groups.py gives (the
# browser lanes, then the longest first by the last run's durations: DURATIONS, one file per
# run in the user's cache, which CI's fresh clones find; each run writes its own there)
PAR=(-n "${JOBS:-4}" --dist loadgroup --no-loadscope-reorder)
DURATIONS=${XDG_CACHE_HOME:-$HOME/.cache}/lash-nb/test-durations

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=""
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need="$need postgresql"
  command -v npm >/dev/null 2>&1 || need="$need nodejs npm"  # the MCP test servers
  if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || exit 1
  fi
fi

# a working interpreter for one minor version (pyenv shims of other versions do not count)
find_python() {
  local v=$1 c
  for c in "python$v" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v" \
           /usr/local/bin/"python$v" /usr/bin/"python$v"; do
    if "$c" -c 'import sys' >/dev/null 2>&1; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

# .venv with uv from the newest lock (unless that uv is there); uv then builds every
# environment from its lock file
[ -x .venv/bin/python ] || python3 -m venv .venv || exit 1
want_uv=$(grep -E '^uv==' requirements/ci-newest.txt | cut -d' ' -f1)
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "${want_uv#uv==}" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "$want_uv" || exit 1
fi
UV=.venv/bin/uv

# the real MCP servers tests/test_tool_mcp.py starts (server-everything from npm,
# mcp-server-time from PyPI), installed once into the user's cache (not the checkout: CI clones
# afresh for each run and finds them there); a failed install only skips those tests (each says why)
export LASH_NB_MCP_SERVERS=${LASH_NB_MCP_SERVERS:-${XDG_CACHE_HOME:-$HOME/.cache}/lash-nb/mcp-servers}
.venv/bin/python tests/mcp_servers.py "$LASH_NB_MCP_SERVERS" || echo "MCP servers: install failed (their tests will skip)"

setup() {  # setup VENV PYTHON LOCK
  local venv=$1 python=$2 lock=$3 stamp
  [ -x "$venv/bin/python" ] || "$UV" venv -q -p "$python" "$venv" || return 1
  # uv checks the pins in a fraction of a second when they are all met
  "$UV" pip install -q -p "$venv/bin/python" -r "$lock" || return 1
  # the editable install builds the project (seconds): again only when this checkout, its
  # metadata (pyproject.toml) or its version changed since the last one into this venv
  stamp="$PWD $(cat pyproject.toml lash_nb/_version.py | sha256sum | cut -d' ' -f1)"
  [ "$(cat "$venv/.lash-nb-editable" 2>/dev/null)" = "$stamp" ] && return 0
  "$UV" pip install -q -p "$venv/bin/python" --no-deps -e . && echo "$stamp" > "$venv/.lash-nb-editable"
}

declare -a SUMMARY=()
status=0
run() {  # run NAME VENV PYTHON LOCK PYTEST_ARGS...
  local name=$1 venv=$2 python=$3 lock=$4 log
  shift 4
  log=$(mktemp)
  local start=$SECONDS
  echo "== $name: $("$python" --version 2>&1), $lock, pytest $*"
  if ! setup "$venv" "$python" "$lock"; then
    SUMMARY+=("$name: FAILED to install from $lock")
    status=1
    return
  fi
  # a hung test must fail the run, not hold CI forever: the run is stopped after RUN_TIMEOUT_S
  # (40 min; a whole run takes ~8 min on a quiet 2-core machine, ~21 at load 20-30).
  # Bytecode is cached (PYTHONDONTWRITEBYTECODE unset): uv installs no .pyc files, and with
  # that variable set (this machine's environment sets it) every process the suite starts
  # (workers, kernels, Jupyter servers, subprocesses) compiled each module it imported from
  # source again: 2.4 s of CPU to import pandas, pyarrow, duckdb, ipykernel and lash_nb
  # instead of 0.7 s, in hundreds of processes on 2 busy cores. The .pyc files go where
  # Python puts them (__pycache__ beside the sources: the venvs, the checkout; git, the sdist
  # and the binder copy ignore them) and are checked against their source on each import.
  # VIRTUAL_ENV unset: a caller's activated venv (.venv) is not this run's, and IPython's
  # in-process shells put its site-packages first on sys.path (ADR 227; tests/conftest.py
  # drops it too, for a pytest started by hand)
  timeout --kill-after=60 "${RUN_TIMEOUT_S:-2400}" \
    env -u PYTHONPATH -u PYTHONDONTWRITEBYTECODE -u VIRTUAL_ENV \
    LASH_TEST_DURATIONS="$DURATIONS/$name.json" "$venv/bin/python" -m pytest \
    -q -p no:cacheprovider --durations=30 "${PAR[@]}" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local closing
  closing=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|deselected|errors?)|no tests ran' "$log" | tail -n1)
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    closing="stopped after RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-2400} s: a test hung (the dots above stop where)"
  fi
  SUMMARY+=("$name ($("$venv/bin/python" --version 2>&1), $((SECONDS - start)) s): ${closing:-no closing line} [exit $rc]")
  [ "$rc" = 0 ] || status=1
  rm -f "$log"
}

static() {  # ruff, then mypy; each prints its findings and its closing line
  local start=$SECONDS ruff_rc mypy_rc
  echo "== static: ruff check, mypy --strict (pyproject.toml)"
  if ! setup .venv .venv/bin/python requirements/ci-newest.txt; then
    SUMMARY+=("static: FAILED to install from requirements/ci-newest.txt"); status=1; return
  fi
  .venv/bin/ruff check --no-cache; ruff_rc=$?
  MYPY_CACHE_DIR=${MYPY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lash-nb/mypy} \
    env -u PYTHONPATH .venv/bin/python -m mypy; mypy_rc=$?
  SUMMARY+=("static ($((SECONDS - start)) s): ruff [exit $ruff_rc], mypy [exit $mypy_rc]")
  [ "$ruff_rc" = 0 ] && [ "$mypy_rc" = 0 ] || status=1
}

lowest() {
  if py=$(find_python 3.11); then
    run lowest .venv-lowest "$py" requirements/ci-lowest.txt "${FLOOR[@]}"
  else
    SUMMARY+=("lowest: FAILED, no Python 3.11 on this machine (the oldest we claim)"); status=1
  fi
}

# lowest beside newest: started in the background, in a subshell at a lower priority that
# hands its summary line and status back through files (a subshell cannot append to SUMMARY)
beside_dir="" beside_pid=""
start_lowest_beside() {
  beside_dir=$(mktemp -d)
  echo "== lowest: started beside newest (nice ${LOWEST_NICE:-5}); its output follows newest's"
  (
    renice -n "${LOWEST_NICE:-5}" -p "$BASHPID" >/dev/null 2>&1
    SUMMARY=() status=0
    lowest
    printf '%s\n' "${SUMMARY[@]}" > "$beside_dir/summary"
    echo "$status" > "$beside_dir/status"
  ) > "$beside_dir/log" 2>&1 &
  beside_pid=$!
}
end_lowest_beside() {
  [ -n "$beside_pid" ] || return 0
  wait "$beside_pid"
  cat "$beside_dir/log"
  if [ -s "$beside_dir/summary" ]; then
    mapfile -t lines < "$beside_dir/summary"
    SUMMARY+=("${lines[@]}")
  else
    SUMMARY+=("lowest: FAILED, it ended without a summary (see its output above)")
  fi
  [ "$(cat "$beside_dir/status" 2>/dev/null)" = 0 ] || status=1
  rm -rf "$beside_dir"
  beside_pid=""
}
# the script stopped before newest ended (a signal, CI's timeout): stop lowest too (its
# `timeout` wrapper passes the signal on to pytest)
trap '[ -n "$beside_pid" ] && { pkill -TERM -P "$beside_pid"; kill "$beside_pid"; } 2>/dev/null' EXIT

for r in $RUNS; do  # every name checked before anything starts in the background
  case $r in static|newest|py3.13|lowest) ;; *) echo "unknown run $r (static, newest, lowest)"; exit 2 ;; esac
done
beside=""
case " $RUNS " in
  *" lowest "*) case " $RUNS " in *" newest "*|*" py3.13 "*) [ "${BESIDE:-1}" = 0 ] || beside=1 ;; esac ;;
esac

ran_newest=""
for r in $RUNS; do
  case $r in
    static) static ;;
    newest|py3.13)
      [ -n "$ran_newest" ] && continue
      ran_newest=1
      [ -n "$beside" ] && start_lowest_beside
      if py=$(find_python 3.13); then
        run newest .venv-py3.13 "$py" requirements/ci-newest.txt "$@"
      else
        SUMMARY+=("newest: FAILED, no Python 3.13 on this machine (the newest we claim)"); status=1
      fi
      end_lowest_beside ;;
    lowest) [ -n "$beside" ] || lowest ;;
  esac
done

echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
exit $status
