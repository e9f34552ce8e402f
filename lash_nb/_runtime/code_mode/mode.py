"""``CodeMode``: what a session in code mode holds: its sandbox and the data shared into it.

Shared data is copied, never the live object: a DataFrame is written to Parquet in the
sandbox's working directory and read back there (Arrow); a file path is copied in. The
copies are loaded again after every sandbox (re)start. The session's history keeps only what
was committed (cells, outputs, the names of the shared data); a session opened again (e.g.
after the user's kernel restarted) starts a fresh sandbox and says so in its first cell's
output; it never replays earlier cells (ADR 0071).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._errors import ConfigurationError
from .bridge import bridge_code
from .sandbox import Sandbox, SandboxLimits

FRESH_NOTE = ("the sandbox was started fresh for this session: variables of earlier turns are "
              "gone; shared data was loaded again")


@dataclass(frozen=True)
class SharedData:
    name: str  # the variable (DataFrame) or file name in the sandbox
    kind: str  # dataframe | file
    source: Any  # the DataFrame, or the host path

    def describe(self) -> str:
        if self.kind == "dataframe":
            shape = getattr(self.source, "shape", None)
            cols = list(getattr(self.source, "columns", ()))[:30]
            return (f"a pandas DataFrame, shape {shape}, columns {cols}" if shape is not None
                    else "a pandas DataFrame")
        return f"a copy of the file {Path(self.source).name!r} in the working directory"


def shared_data(name: str, value: Any) -> SharedData:
    """Check one ``share`` argument: a DataFrame (has ``to_parquet``) or a file path."""
    if not name.isidentifier():
        raise ConfigurationError(f"cannot share {name!r}: the name must be a Python identifier")
    if hasattr(value, "to_parquet"):
        return SharedData(name, "dataframe", value)
    if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
        return SharedData(name, "file", Path(value))
    raise ConfigurationError(
        f"cannot share {name!r}: it is a {type(value).__name__}; share a pandas DataFrame or the "
        "path of an existing file")


class CodeMode:
    """A session's code mode. ``sandbox`` may be shared by several sessions (tests,
    benchmarks); then ``owns_sandbox`` is False and closing the session leaves it running."""

    def __init__(self, sandbox: Sandbox | None = None, *, limits: SandboxLimits | None = None,
                 shares: Mapping[str, Any] | None = None) -> None:
        self.owns_sandbox = sandbox is None
        self.sandbox = sandbox or Sandbox(limits)
        self.shares = [shared_data(k, v) for k, v in (shares or {}).items()]
        self.ready = False  # prelude installed in this sandbox by this session

    async def ensure_started(self) -> bool:
        """Start the sandbox and load the shared data; True when it was started fresh for
        this session (the first cell then says so)."""
        if self.ready:
            return False
        sb = self.sandbox
        await sb.start()
        if not self.owns_sandbox:
            await sb.reset()  # a shared sandbox: no variable of another session carries over
        assert sb.workdir is not None
        loads = [bridge_code()]
        for share in self.shares:
            if share.kind == "dataframe":
                path = os.path.join(sb.workdir, f"{share.name}.parquet")
                share.source.to_parquet(path)
                loads.append(f"import pandas as __pd\n{share.name} = __pd.read_parquet("
                             f"{os.path.basename(path)!r})\ndel __pd")
            else:
                shutil.copyfile(share.source, os.path.join(sb.workdir, Path(share.source).name))
        await sb.set_prelude("\n".join(loads))
        self.ready = True
        return True

    def shared(self) -> list[tuple[str, str]]:
        return [(s.name if s.kind == "dataframe" else Path(s.source).name, s.describe())
                for s in self.shares]

    def note(self) -> str:
        sb = self.sandbox
        lim = sb.limits
        return (f"Each cell may run {lim.cell_wall_s:g} s of wall time; the kernel has "
                f"{lim.memory_bytes // 2**20} MB of address space and {lim.cpu_s} CPU seconds; "
                f"output beyond {lim.output_chars} characters is cut. Isolation: "
                f"{sb.isolation}. There are no API keys in its environment.")

    async def close(self) -> None:
        if self.owns_sandbox:
            await self.sandbox.close()


__all__ = ["FRESH_NOTE", "CodeMode", "SharedData", "shared_data"]
