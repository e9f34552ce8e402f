"""The CPU a command used with every process it started, also those that outlived their parent.

    python scripts/cpu_total.py [--orphan-wait S] COMMAND [ARGS...]
    e.g. python scripts/cpu_total.py bash scripts/test.sh

Prints, after the command's own output, one line: its wall seconds and the user + sys CPU
seconds of the command and of all its descendants; exits with the command's status.

``resource.getrusage(RUSAGE_CHILDREN)`` (what ``time`` and tests/cpu_probe.py read) counts a
process only when its parent waits for it. Chromium's renderers are not: they outlive the
processes that started them and are reparented to init, so a probe in pytest missed about half
of the browser tests' CPU (ADR 194). Here this process is the command's child subreaper
(Linux ``PR_SET_CHILD_SUBREAPER``): orphans are reparented to it, and it waits for them after
the command ends, ``--orphan-wait`` seconds at most (60 by default; one still running is named
and its CPU not counted).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orphan-wait", type=float, default=60.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not args.command:
        parser.error("name a command to run")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("cpu_total: this system has no child subreaper (Linux only)", file=sys.stderr)
        return 2
    start = time.monotonic()
    rc = subprocess.call(args.command)
    deadline = time.monotonic() + args.orphan_wait
    while True:  # the orphans reparented to this process
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() > deadline:
                left = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())],
                                      capture_output=True, text=True, check=False).stdout
                left = "".join(line for line in left.splitlines(keepends=True)
                               if "ps -o pid=" not in line)
                print(f"cpu_total: still running, not counted:\n{left}", file=sys.stderr)
                break
            time.sleep(0.2)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"cpu_total: {time.monotonic() - start:.1f} s wall, "
          f"{used.ru_utime + used.ru_stime:.1f} s CPU (user {used.ru_utime:.1f}, "
          f"sys {used.ru_stime:.1f})", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
