"""Small trust fixes from a trial (ADR 0215): a misspelt ``--session`` on a verb that reads
opens nothing; ``--read-only`` advice in the magic's spelling; ``%lash usage --df`` says the
verb already returns a DataFrame; a session name with a bidi override or a control character
is refused when it would be created (a stored one still opens)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell

from lash_nb import LashCore
from lash_nb._errors import ConfigurationError, LashError
from lash_nb.providers import OfflineProvider

READS = ["usage", "graph", "graph --df", "queue", "drain", "replay", "tools", "prompt", "mcp list"]


@pytest.mark.parametrize("verb", READS)
def test_a_misspelt_session_on_a_read_opens_nothing_and_names_the_close_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verb: str) -> None:
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = 'x.duckdb'",
                    "%lash open analysis", "%lash turn hi") as sh:
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell(f"%lash {verb} --session analisys")
        line = str(refused.value)
        assert "\n" not in line
        assert "no session 'analisys'" in line and "'analysis'" in line, line
        assert "%lash sessions" in line, line
        # nothing was opened in the kernel, nor stored; the notebook stays on 'analysis'
        sh.run_cell("x = %lash sql SELECT session_id FROM sessions")
        assert sh.user_ns["x"]["session_id"].tolist() == ["analysis"]
        sh.run_cell("y = %lash sessions")
        assert sh.user_ns["y"]["session_id"].tolist() == ["analysis"]
        assert sorted(sh.ip.magics_manager.registry["LashMagics"].ctx.bindings) == ["analysis"]
        # the stored session, named right, still reads
        sh.run_cell(f"%lash {verb} --session analysis")


def test_a_session_open_in_the_kernel_or_stored_reads_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = 'x.duckdb'",
                    "%lash open stored", "%lash turn hi", "%lash open new") as sh:
        sh.run_cell("df = %lash usage --session stored")
        assert len(sh.user_ns["df"]) == 1
        sh.run_cell("%lash graph --session new")  # open here, no turn yet: no refusal


def test_usage_df_says_usage_is_a_dataframe_already(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = ':memory:'",
                    "%lash open a", "%lash turn hi") as sh:
        with pytest.raises(UsageError) as refused:
            sh.run_cell("%lash usage --df")
        line = str(refused.value)
        assert "DataFrame" in line and "df = %lash usage" in line and "\n" not in line, line
        sh.run_cell("df = %lash usage")  # what the line says to do works
        import pandas as pd

        assert isinstance(sh.user_ns["df"], pd.DataFrame) and len(sh.user_ns["df"]) == 1


BIDI = "report\u202eexe.csv"


def test_a_session_name_with_a_bidi_override_is_refused_by_the_magic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = 'x.duckdb'") as sh:
        sh.user_ns["name"] = BIDI
        sh.run_cell("%lash open fine")
        for cell in ("%lash turn --session {name} hi", "%lash open {name}"):
            with pytest.raises((UsageError, LashError)) as refused:
                sh.run_cell(cell)
            line = str(refused.value)
            assert "\n" not in line and "\u202e" not in line, line
            assert "U+202E" in line and "letters" in line, line
        sh.run_cell("%lash turn hi")  # the session in use is untouched
        sh.run_cell("df = %lash sessions")
        assert sh.user_ns["df"]["session_id"].tolist() == ["fine"]


def test_a_session_name_with_a_control_character_is_refused_by_the_api(tmp_path: Path) -> None:
    async def run() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(
            str(tmp_path / "a.duckdb")).build()
        try:
            for bad in (BIDI, "a\x1b[31mb", "a\u200bb"):
                for how in ("open", "open_fresh"):
                    with pytest.raises(ConfigurationError) as refused:
                        await getattr(core.session(bad), how)()
                    assert "\n" not in str(refused.value)
                    assert "U+" in str(refused.value)
            assert await core.list_sessions() == []
        finally:
            await core.close()

    asyncio.run(run())


STORED_BEFORE = textwrap.dedent("""
    import asyncio, sys
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider

    async def main():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(sys.argv[1]).build()
        s = await core.session(sys.argv[2]).open()
        await s.turn("hi").run()
        await core.close()

    asyncio.run(main())
""")


def stored_before(path: Path, name: str = BIDI) -> None:
    """A DuckDB file at ``path`` holding session ``name`` with one turn, written as an older
    lash_nb could (it took any name): the rule is switched off in that process."""
    code = STORED_BEFORE.replace("import asyncio, sys", "import asyncio, sys\n"
                                 "from lash_nb._runtime.core import SessionBuilder\n"
                                 "SessionBuilder._refuse_new_name = lambda self: None")
    subprocess.run([sys.executable, "-c", code, str(path), name], check=True)


def test_a_session_stored_with_such_a_name_before_still_opens(tmp_path: Path) -> None:
    path = str(tmp_path / "old.duckdb")
    stored_before(tmp_path / "old.duckdb")

    async def run() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(path).build()
        try:
            s = await core.session(BIDI).open()
            assert s.state.turn_index == 1
            await s.turn("again").run()
        finally:
            await core.close()

    asyncio.run(run())


KILLED = textwrap.dedent("""
    import asyncio, os, sys
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb._store.duckdb import DuckDBStore

    async def main():
        store = DuckDBStore(sys.argv[1], idle_release_s=None, fold_idle_s=None)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("team").open()
        await s.turn("hi").run()
        print(store.unfolded_commits, flush=True)
        os._exit(0)  # killed: the turn's commits are left in the log

    asyncio.run(main())
""")


def test_read_only_open_of_a_killed_processes_file_says_it_in_the_magics_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "team.duckdb")],
                         check=True, capture_output=True, text=True).stdout
    assert int(out.split()[-1]) > 0
    with lash_shell(tmp_path, monkeypatch) as sh:
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell("%lash open team --store team.duckdb --read-only")
        line = str(refused.value)
        assert "read_only=True" not in line and "without --read-only" in line, line
        assert "\n" not in line
        # what it says works: opened once writable, the turn is there
        sh.run_cell("%lash open team --store team.duckdb")
        sh.run_cell("df = %lash usage --by turn")
        assert len(sh.user_ns["df"]) == 1


def test_a_session_named_on_a_read_in_a_fresh_kernel_creates_no_store_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lash_shell(tmp_path, monkeypatch) as sh:  # the default store: lash.duckdb, not there
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell("%lash usage --session analysis")
        assert "'lash.duckdb' does not exist yet" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_stored_bidi_name_opens_in_the_notebook_and_its_card_shows_it_escaped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    stored_before(tmp_path / "old.duckdb")
    with lash_shell(tmp_path, monkeypatch) as sh:
        sh.user_ns["name"] = BIDI
        capsys.readouterr()
        sh.run_cell("%lash open {name} --store old.duckdb")
        card = capsys.readouterr().out
        assert "1 turn(s) so far" in card and "\u202e" not in card, card
        assert "report\\u202eexe.csv" in card, card


PYTHON_OPEN = (
    "from lash_nb import LashCore\n"
    "from lash_nb.providers import OfflineProvider\n"
    "core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store('x.duckdb').build()\n"
    "py = await core.session('from-python').open()\n"
)


def test_a_session_opened_with_the_python_api_and_not_turned_reads_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADR 215 left it refused ("no session 'from-python' in 'x.duckdb'") until %lash open
    bound it, though the kernel held it open in that very file (ADR 219)."""
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = 'x.duckdb'",
                    PYTHON_OPEN) as sh:
        sh.run_cell("df = %lash usage --session from-python")
        assert len(sh.user_ns["df"]) == 0
        sh.run_cell("%lash graph --session from-python")
        sh.run_cell("%lash tools --session from-python")
        # a name open nowhere is still refused
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell("%lash usage --session from-pythn")
        assert "did you mean 'from-python'" in str(refused.value)
        sh.run_cell("await core.close()")


@pytest.mark.parametrize("space", ["\u00a0", "\u202f", "\u3000"])
def test_a_new_name_with_a_no_break_space_is_refused_with_the_name_to_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, space: str) -> None:
    """A name pasted from a document (a no-break space between its words) reads as the name
    with a space on the card and in every listing, yet is another session: typed again it
    misses. Refused in one line naming the character and the name to use (ADR 219); before,
    the line called a no-break space "a control, format or separator character"."""
    pasted = f"sales{space}report"
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = 'x.duckdb'") as sh:
        sh.user_ns["name"] = pasted
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell("%lash open {name}")
        line = str(refused.value)
        assert "\n" not in line and space not in line, line
        assert f"U+{ord(space):04X}" in line and "'sales report'" in line, line
        assert "looks like a space" in line, line
        sh.user_ns["name"] = "sales report"  # what the line offers opens
        sh.run_cell("%lash open {name}")
        sh.run_cell("%lash turn hi")
        sh.run_cell("df = %lash sessions")
        assert sh.user_ns["df"]["session_id"].tolist() == ["sales report"]
