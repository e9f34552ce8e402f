"""A hurried user names a session the notebook has not opened yet, or deletes one: the turn
lands in the store the notebook already uses, the notebook stays bound to the session it was
bound to, and a delete that found nothing says so instead of "deleted"."""

from __future__ import annotations

import duckdb
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from notebook_harness import lash_shell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def _sessions_in(path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT session_id FROM sessions").fetchall()}
    finally:
        con.close()


def test_a_cell_naming_a_new_session_runs_it_in_the_store_the_notebook_opened(sh, tmp_path):
    sh.run_cell("%lash open s1 --store notes.duckdb")
    sh.run_cell("a = %lash turn first")
    with capture_output() as cap:
        sh.run_cell("%%lash --session s2\nhello s2\n")
    # the notice is true: s1 was open, and it names the file s2 went to
    assert "no session was open" not in cap.stdout
    assert ("session 's2' was not open: opened it in 'notes.duckdb' (provider offline), the "
            "store of session 's1'; %lash open NAME --store PATH picks another") in cap.stdout
    # the plain cell after it still runs on s1: --session is for that cell only
    r = sh.run_cell("b = %lash turn second\nb")
    assert r.session_id == "s1"
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert not (tmp_path / "lash.duckdb").exists()  # nothing went to the default file
    assert _sessions_in(tmp_path / "notes.duckdb") == {"s1", "s2"}


def test_after_deleting_the_bound_session_the_next_cell_stays_in_its_store(sh, tmp_path):
    sh.run_cell("%lash open s1 --store notes.duckdb")
    sh.run_cell("a = %lash turn first")
    sh.run_cell("%lash sessions --delete s1 --yes")
    with capture_output() as cap:
        sh.run_cell("%%lash\nafter the delete\n")
    assert "in 'notes.duckdb'" in cap.stdout
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert not (tmp_path / "lash.duckdb").exists()
    assert _sessions_in(tmp_path / "notes.duckdb") == {"default"}


def test_deleting_a_session_the_store_does_not_hold_says_so_and_deletes_nothing(sh, tmp_path):
    sh.run_cell("%lash open s1 --store notes.duckdb")
    sh.run_cell("a = %lash turn first")
    with pytest.raises(UsageError) as info, capture_output() as cap:
        sh.run_cell("%lash sessions --delete sl --yes")  # a typo of s1
    assert str(info.value) == ("no session 'sl' in 'notes.duckdb'; nothing was deleted "
                               "(%lash sessions lists the stored sessions)")
    assert "deleted session" not in cap.stdout
    sh.run_cell("b = %lash turn second")  # s1 is still open and whole
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    con = duckdb.connect(str(tmp_path / "notes.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM turns WHERE session_id = 's1'").fetchone() == (2,)
    con.close()


def test_a_session_with_only_queued_work_can_still_be_deleted(sh, tmp_path):
    sh.run_cell("%lash open s1 --store notes.duckdb")
    sh.run_cell("%lash enqueue --session s3 for later")
    with capture_output() as cap:
        sh.run_cell("%lash sessions --delete s3 --yes")
    assert "deleted session 's3'" in cap.stdout
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    con = duckdb.connect(str(tmp_path / "notes.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM queued_work_batches WHERE session_id = 's3'"
                       ).fetchone() == (0,)
    con.close()


def test_opening_again_a_session_open_in_another_store_reopens_it_there(sh, tmp_path):
    """Two sessions in one notebook, switched with ``%lash open NAME`` (the way back after a
    code-mode side session): the plain open rebinds the session where it is open, with its
    turns, not a new empty one in the configured default file."""
    sh.run_cell("%lash open analysis --store work.duckdb")
    sh.run_cell("a = %lash turn first")
    sh.run_cell("%lash open side --store work.duckdb")
    s = sh.run_cell("s = %lash open analysis\ns")
    assert [m.text() for m in s.read_view().messages() if m.role == "user"] == ["first"]
    r = sh.run_cell("r = %lash turn second\nr")
    assert r.session_id == "analysis"
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert not (tmp_path / "lash.duckdb").exists()
    con = duckdb.connect(str(tmp_path / "work.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM turns WHERE session_id = 'analysis'"
                       ).fetchone() == (2,)
    con.close()


def test_opening_again_keeps_the_provider_it_is_open_with(sh):
    sh.run_cell("%lash open analysis --store work.duckdb --provider ollama")
    sh.run_cell("%lash open side --store work.duckdb")
    sh.run_cell("%lash open analysis")
    b = sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "_magics().ctx.bindings['analysis']")
    assert (b.store, b.provider) == ("work.duckdb", "ollama")
    sh.run_cell("await _magics().ctx.close()")


def test_an_explicit_store_or_provider_on_the_open_again_still_wins(sh, tmp_path):
    sh.run_cell("%lash open analysis --store work.duckdb --provider ollama")
    sh.run_cell("%lash open analysis --store other.duckdb --provider offline")
    b = sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "_magics().ctx.bindings['analysis']")
    assert (b.store, b.provider) == ("other.duckdb", "offline")
    sh.run_cell("await _magics().ctx.close()")


def test_opening_a_new_name_without_store_goes_to_the_store_of_the_session_in_use(sh, tmp_path):
    """A user working in a team file opens a second session by name only: it goes to the team
    file, beside the first, and the card says where and why, not to ./lash.duckdb."""
    team = tmp_path / "team.duckdb"
    sh.run_cell(f"%lash open a --store {team}")
    sh.run_cell("x = %lash turn first")
    with capture_output() as cap:
        sh.run_cell("%lash open b")
    card = cap.outputs[0].data["text/markdown"]
    assert f"store `{team}` (the store of session `a`; `--store PATH` picks another)" in card
    r = sh.run_cell("r = %lash turn second\nr")
    assert r.session_id == "b"
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert not (tmp_path / "lash.duckdb").exists()
    assert _sessions_in(team) == {"a", "b"}


def test_the_first_open_of_a_notebook_still_uses_the_configured_store(sh, tmp_path):
    with capture_output() as cap:
        sh.run_cell("%lash open a")
    card = cap.outputs[0].data["text/markdown"]
    assert "store `lash.duckdb` ·" in card and "the store of session" not in card
    sh.run_cell("x = %lash turn first")
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert _sessions_in(tmp_path / "lash.duckdb") == {"a"}


def test_a_new_name_after_the_bound_session_was_deleted_goes_to_the_store_used_last(sh, tmp_path):
    sh.run_cell("%lash open a --store team.duckdb")
    sh.run_cell("x = %lash turn first")
    sh.run_cell("%lash sessions --delete a --yes")
    with capture_output() as cap:
        sh.run_cell("%lash open b")
    card = cap.outputs[0].data["text/markdown"]
    assert "store `team.duckdb` (the store this notebook used last;" in card
    sh.run_cell("y = %lash turn second")
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert not (tmp_path / "lash.duckdb").exists()
    assert _sessions_in(tmp_path / "team.duckdb") == {"b"}


def test_the_open_and_sessions_help_say_which_store_they_use(sh):
    open_help = sh.run_cell("%lash open --help")._repr_markdown_()
    assert "without `--store`, in the store of the session in use" in open_help
    sessions_help = sh.run_cell("%lash help sessions")._repr_markdown_()
    assert "the sessions stored in the store of the session in use" in sessions_help


def test_a_store_configured_after_the_first_open_is_where_the_next_new_name_goes(sh, tmp_path):
    """Setting the store with %config is a choice made now: it wins over the store in use."""
    sh.run_cell("%lash open a --store team.duckdb")
    sh.run_cell("%config LashMagics.store = 'other.duckdb'")
    with capture_output() as cap:
        sh.run_cell("%lash open c")
    card = cap.outputs[0].data["text/markdown"]
    assert "store `other.duckdb` ·" in card and "the store of session" not in card
    sh.run_cell("x = %lash turn first")
    with capture_output() as cap:
        sh.run_cell("%lash open d")  # and then the store in use again: other.duckdb
    assert ("store `other.duckdb` (the store of session `c`; `--store PATH` picks another)"
            in cap.outputs[0].data["text/markdown"])
    sh.run_cell("y = %lash turn second")
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert _sessions_in(tmp_path / "other.duckdb") == {"c", "d"}


def test_a_cell_naming_a_new_session_after_a_configured_store_goes_there(sh, tmp_path):
    """``%%lash --session NEW`` follows the same rule as ``%lash open NEW``: a store set with
    %config after the session in use was opened wins over that session's store."""
    sh.run_cell("%lash open a --store team.duckdb")
    sh.run_cell("%config LashMagics.store = 'other.duckdb'")
    with capture_output() as cap:
        sh.run_cell("%%lash --session b\nhello b\n")
    assert ("session 'b' was not open: opened it in 'other.duckdb' (provider offline), the "
            "store set with %config LashMagics.store") in cap.stdout
    r = sh.run_cell("r = %lash turn still a\nr")
    assert r.session_id == "a"  # --session is for that cell only
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    assert _sessions_in(tmp_path / "other.duckdb") == {"b"}
    assert _sessions_in(tmp_path / "team.duckdb") == {"a"}
