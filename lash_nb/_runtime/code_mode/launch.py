"""Run by path (standard library only) as the sandbox kernel's first program: apply the
resource limits to this process, then become the kernel (``os.execv`` keeps the pid and the
limits).

``python launch.py CPU_S MEMORY_BYTES FILE_BYTES -- KERNEL_ARGV...``; a limit of 0 is no limit.
"""

import os
import resource
import sys


def main(argv: list[str]) -> None:
    cpu_s, memory, file_bytes = (int(a) for a in argv[:3])
    kernel = argv[argv.index("--") + 1:]
    if cpu_s > 0:  # SIGXCPU at the soft limit, SIGKILL one second later
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if file_bytes > 0:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.execv(kernel[0], kernel)


if __name__ == "__main__":
    main(sys.argv[1:])
