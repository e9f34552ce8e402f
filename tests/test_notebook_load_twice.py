"""``%load_ext lash_nb`` run again, ``%reload_ext lash_nb`` (after editing pyproject.toml,
ADR 199), or both, leave lash_nb registered once: one ``LashMagics`` among the shell's
configurables, each cell callback once, each input transformer once (docs/adr/0219).

Before: ``LashMagics`` was twice among ``ip.configurables`` from the first load (IPython's
``Magics.__init__`` appends it, and the extension appended it again). And ``%reload_ext`` of
the module that defines the unload hook (``lash_nb._notebook.extension``, as the test harness
loads it) removed the cell callbacks and the ``%lash`` transformers, then found the magics
registered and returned: later ``%lash`` lines were no longer awaited (in a kernel, a turn
then ran as a background task: the cell ended at once with none of the answer) and the
cell callbacks that send a turn's output under its cell were gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import ReraisingShell


def _registered(sh: ReraisingShell) -> dict[str, int]:
    from lash_nb._notebook import cells
    from lash_nb._notebook.extension import await_lash_in_blocks, transform_lash

    ip = sh.ip
    magics = ip.magics_manager.registry["LashMagics"]
    callbacks = ip.events.callbacks
    return {
        "configurables": sum(c is magics for c in ip.configurables),
        "magics.cell_started": sum(c == magics.cell_started for c in callbacks["pre_run_cell"]),
        "cells.cell_started": callbacks["pre_run_cell"].count(cells.cell_started),
        "cells.cell_ended": callbacks["post_run_cell"].count(cells.cell_ended),
        "transform_lash": ip.input_transformers_cleanup.count(transform_lash),
        "await_lash_in_blocks": ip.input_transformers_post.count(await_lash_in_blocks),
    }


ONCE = {"configurables": 1, "magics.cell_started": 1, "cells.cell_started": 1,
        "cells.cell_ended": 1, "transform_lash": 1, "await_lash_in_blocks": 1}


@pytest.mark.parametrize("module", ["lash_nb", "lash_nb._notebook.extension"])
def test_loading_and_reloading_the_extension_registers_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell(f"%load_ext {module}")
        assert _registered(sh) == ONCE
        sh.run_cell(f"%load_ext {module}")  # IPython: already loaded
        assert _registered(sh) == ONCE
        sh.run_cell(f"%reload_ext {module}")
        assert _registered(sh) == ONCE
        sh.run_cell(f"%reload_ext {module}")
        assert _registered(sh) == ONCE
        # the %lash line is still rewritten into an await (ADR 160)
        cell = sh.ip.transform_cell("%lash turn hi\n")
        assert "await " in cell and "run_line" in cell, cell
    finally:
        sh.close()
