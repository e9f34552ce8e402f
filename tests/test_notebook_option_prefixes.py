"""An option's prefix is not the option (``%lash open s --stor x.duckdb`` is not ``--store``).

Before, every ``%lash`` verb parsed with argparse's default ``allow_abbrev``: a prefix of a
long option was taken as that option. A typo that happened to be a prefix opened another
file than the one meant, silently, and a prefix that works today (``--mod`` for ``--model``)
turns into an "ambiguous option" error the day an option with the same start is added
(``--mod`` did: ``--model`` and ``--mode``). Now
it is an unknown option, refused in one line that names the verb's options.
"""

from __future__ import annotations

import importlib
import re

import pytest
from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from notebook_harness import KernelHarness

VERB_MODULES = ("verbs_turn", "verbs_info", "verbs_prompt", "verbs_mcp", "verbs_retention")


def _parsers() -> list[MagicArgumentParser]:
    found = []
    for name in VERB_MODULES:
        module = importlib.import_module(f"lash_nb._notebook.{name}")
        found += [v for v in vars(module).values() if isinstance(v, MagicArgumentParser)]
    return found


def test_every_verbs_parser_refuses_a_prefix_of_each_of_its_long_options() -> None:
    from lash_nb._notebook.parsing import parse

    parsers = _parsers()
    assert len(parsers) >= 10  # open, turn, enqueue, queue, drain, stop, prompt, tools, ...
    for p in parsers:
        for action in p._actions:
            for option in (o for o in action.option_strings if o.startswith("--")):
                prefix = option[:-1]
                if any(o == prefix for a in p._actions for o in a.option_strings):
                    continue  # the prefix is itself an option of this verb
                argv = f"add x {prefix} 1" if p.prog == "%lash mcp" else f"{prefix} 1"
                with pytest.raises(UsageError) as e:
                    parse(p, argv)
                line = str(e.value)
                assert "\n" not in line
                assert line.startswith(f"unknown option {prefix} for {p.prog}; "), line


@pytest.mark.slow  # a real kernel
def test_a_prefix_of_store_opens_nothing_and_the_error_names_the_options(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        ex = k.execute("%lash open s --stor mine.duckdb", stop_on_error=False)
        assert ex.status == "error"
        line = ex.stderr.strip()
        assert "\n" not in line, line
        assert line.startswith("UsageError: unknown option --stor for %lash open; "
                               "did you mean --store? "), line
        named = set(re.findall(r"--[a-z][a-z-]*", line.split("did you mean --store?", 1)[1]))
        assert {"--fresh", "--store", "--provider", "--model", "--read-only"} <= named, line
        # nothing was opened, no file made under either name
        assert not (tmp_path / "mine.duckdb").exists()
        assert not (tmp_path / "lash.duckdb").exists()
        # a prefix of --provider is refused the same way (it was taken as --provider)
        ex = k.execute("%lash open s --provid offline", stop_on_error=False)
        assert ex.status == "error"
        assert ex.stderr.strip().startswith(
            "UsageError: unknown option --provid for %lash open; did you mean --provider? "
        ), ex.stderr
        # the full name works
        k.run("%lash open s --store mine.duckdb --model lash-offline-large")
        assert (tmp_path / "mine.duckdb").exists()


def test_the_command_line_refuses_a_prefix_too(tmp_path, capsys) -> None:
    """``python -m lash_nb backup A B --over`` was taken as ``--overwrite``."""
    from lash_nb.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["backup", str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb"), "--over"])
    assert e.value.code == 2
    assert "unrecognized arguments: --over" in capsys.readouterr().err
    assert not (tmp_path / "a.duckdb").exists() and not (tmp_path / "b.duckdb").exists()
