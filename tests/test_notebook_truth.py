"""What the magics say is true: replayed turns, fresh sessions, notebook tools, option typos,
undefined names, missing keys, an implicitly opened session."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from notebook_harness import ReraisingShell, widgets_made


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    yield shell
    shell.close()


def _card(sh, line: str) -> str:
    with capture_output() as cap:
        sh.run_cell(line)
    return "\n".join(o.data.get("text/markdown", "") for o in cap.outputs)


WEATHER = '''
from lash_nb import tool

@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny in " + city
'''


def test_replay_shows_the_prompt_and_the_recorded_duration(sh):
    sh.run_cell("%config LashMagics.offline_delay_s = 0.01")
    sh.run_cell("s = %lash open s1 --store t.duckdb")
    sh.run_cell("r = %lash turn please echo one two three four five")
    w = sh.run_cell("%lash replay")
    assert w.prompt == "please echo one two three four five"
    rec = sh.run_cell("await s.store.load_turns('s1')")
    assert w.elapsed_ms == rec[0].duration_ms
    assert w.elapsed_ms >= 50  # five deltas 10 ms apart were streamed


def test_lash_last_is_the_last_turns_result_and_says_so_before_any_turn(sh):
    # the README and the NOT saved record point at %lash last (there was no such verb)
    with pytest.raises(UsageError, match="no turn has run in this kernel yet"):
        sh.run_cell("%lash last")
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("r1 = %lash turn please echo one")
    sh.run_cell("r2 = %lash turn please echo two")
    sh.run_cell("got = %lash last")
    assert sh.user_ns["got"] is sh.user_ns["r2"]
    assert "two" in sh.user_ns["got"].text


def test_open_fresh_counts_the_turns_of_the_fresh_graph(sh):
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("a = %lash turn one")
    sh.run_cell("b = %lash turn two")
    assert "2 turn(s) so far" in _card(sh, "%lash open s1 --store t.duckdb")
    card = _card(sh, "%lash open s1 --store t.duckdb --fresh")
    assert ("0 turn(s) so far (started fresh: 2 earlier turn(s) stay in the store's turns table)"
            in card)


def test_open_attaches_the_notebooks_tool_functions_and_the_card_lists_them(sh):
    sh.run_cell(WEATHER)
    card = _card(sh, "%lash open s1 --store t.duckdb")
    assert "tools offered to the model: `weather`" in card
    sh.run_cell("r = %lash turn What does weather say for 'Paris'?")
    assert [c.output for c in sh.user_ns["r"].tool_calls] == ["sunny in Paris"]


def test_a_session_without_tools_says_how_to_add_them(sh):
    card = _card(sh, "%lash open s1 --store t.duckdb")
    assert "no tools (define functions with `@tool` before `%lash open`, or pass `--tools f,g`)" in card


def test_tools_option_wraps_a_plain_function_and_keeps_it_on_reopen(sh):
    sh.run_cell("def add(a: int, b: int) -> int:\n    'Add two integers.'\n    return a + b\n")
    card = _card(sh, "%lash open s1 --store t.duckdb --tools add")
    assert "tools offered to the model: `add`" in card
    again = _card(sh, "%lash open s1 --store t.duckdb")
    assert "tools offered to the model: `add`" in again
    rows = sh.run_cell("%lash tools").tools
    assert [(t["name"], t["description"], t["member"], t["implemented"]) for t in rows] == \
        [("add", "Add two integers.", True, True)]


def test_tools_option_with_a_misspelled_name_suggests_the_function(sh):
    sh.run_cell("def weather_now(city: str) -> str:\n    return city\n")
    with pytest.raises(UsageError, match=r"^--tools names 'weather_nwo', which is not defined; "
                                         r"did you mean weather_now\? define the function first$"):
        sh.run_cell("%lash open s1 --tools weather_nwo")
    sh.run_cell("not_a_function = 3")
    with pytest.raises(UsageError, match="--tools names 'not_a_function', of type int, which cannot be a tool"):
        sh.run_cell("%lash open s1 --tools not_a_function")


def test_after_a_restart_stored_tools_without_a_function_are_shown_as_not_implemented(tmp_path, sh):
    sh.run_cell(WEATHER)
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("r = %lash turn What does weather say for 'Oslo'?")  # commits the tool state
    sh.close()
    fresh = ReraisingShell()  # a restarted kernel: same store, no weather function
    try:
        fresh.run_cell("%load_ext lash_nb._notebook.extension")
        card = _card(fresh, "%lash open s1 --store t.duckdb")
        assert ("**not implemented in this kernel** (stored, not offered): `weather`; "
                "define them with `@tool` and run `%lash open` again") in card
        rows = fresh.run_cell("%lash tools").tools
        assert [(t["name"], t["implemented"]) for t in rows] == [("weather", False)]
        fresh.run_cell(WEATHER)
        rows = fresh.run_cell("%lash tools").tools  # defined after open: attached now
        assert [(t["name"], t["implemented"]) for t in rows] == [("weather", True)]
    finally:
        fresh.close()


def test_a_misspelled_option_gets_did_you_mean(sh):
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash open s1 --fesh")
    assert str(info.value) == (
        "unknown option --fesh for %lash open; did you mean --fresh? its options: --fresh, "
        "--store, --provider, --model, --residency, --tools, --no-tools, --read-only, --mode, "
        "--share; see %lash help")
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash turn --sesion s2 hello")
    assert str(info.value) == ("unknown option --sesion for %lash turn; did you mean --session? "
                               "its options: --session, -o, --turn-id, --system, --attach, "
                               "--background, --raw; see %lash help")
    with pytest.raises(UsageError, match=r"^unknown option --dff for %lash queue; did you mean --df\?"):
        sh.run_cell("%lash queue --dff")


def test_an_undefined_name_in_a_cell_prompt_sends_nothing(sh):
    sh.run_cell("%lash open s1 --store t.duckdb")
    with pytest.raises(UsageError, match=r"^\{dataset\} in the prompt names nothing defined"):
        sh.run_cell("%%lash\nsummarise {dataset}\n")
    assert sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")["n"].tolist() == [0]
    sh.run_cell("r = %lash turn show \\{dataset} literally")
    assert sh.user_ns["r"].assistant_output.safe_text.startswith("You said: show {dataset} literally")


def test_a_keyed_provider_without_its_key_is_refused_at_open_naming_the_variable(sh, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash open s1 --provider openai")
    assert str(info.value) == (
        "--provider openai needs OPENAI_API_KEY, which is not set; set it in the environment "
        "(os.environ['OPENAI_API_KEY'] = ...) and run %lash open again, or use --provider offline")
    with pytest.raises(UsageError, match=r"^--provider anthropic needs ANTHROPIC_API_KEY"):
        sh.run_cell("%lash open s1 --provider anthropic")


def test_a_lash_cell_with_no_open_session_says_which_session_and_file_it_opened(sh, tmp_path):
    with capture_output() as cap:
        sh.run_cell("%%lash\nhello\n")
    assert ("no session was open: opened session 'default' in 'lash.duckdb' (provider offline); "
            "%lash open NAME --store PATH picks another") in cap.stdout
    assert (tmp_path / "lash.duckdb").exists()


def test_graph_draws_the_branches_and_marks_the_active_path(sh):
    sh.run_cell("s = %lash open s1 --store t.duckdb")
    sh.run_cell("a = %lash turn --turn-id t1 one")
    sh.run_cell("b = %lash turn --turn-id t2 two")
    sh.run_cell("s.branch_to(s.read_view().nodes()[1].node_id)")  # back to the first answer
    sh.run_cell("c = %lash turn --turn-id t3 three")
    tree = sh.run_cell("%lash graph")
    tail = " (This is the offline model; it echoes prompts and calls tools "
    assert str(tree).splitlines() == [
        "session graph 's1': 6 node(s), 1 branch point(s) (● active path, ○ other branch)",
        "● user [t1] one",
        "● assistant [t1] You said: one" + tail + "you…",
        "├─○ user [t2] two",
        "│ ○ assistant [t2] You said: two" + tail + "you…",
        "└─● user [t3] three",
        "  ● assistant [t3] You said: three" + tail + "y…",
    ]
    assert "<pre" in tree._repr_html_() and "└─● user [t3] three" in tree._repr_html_()
    frame = sh.run_cell("%lash graph --df")
    assert frame["on_active_path"].tolist() == [True, True, False, False, True, True]


def test_sessions_and_queue_frames_have_utc_timestamps_not_epoch_ms(sh):
    import pandas as pd

    before = pd.Timestamp.now(tz="UTC")
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("r = %lash turn hello")
    sh.run_cell("b = %lash enqueue later")
    sessions = sh.run_cell("%lash sessions")
    queue = sh.run_cell("%lash queue --df")
    after = pd.Timestamp.now(tz="UTC")
    assert "updated_at_ms" not in sessions.columns and "enqueued_at_ms" not in queue.columns
    assert str(sessions["updated_at"].dtype) == "datetime64[us, UTC]"
    assert str(queue["enqueued_at"].dtype) == "datetime64[us, UTC]"
    for value in (sessions["updated_at"].iloc[0], queue["enqueued_at"].iloc[0]):
        assert before.floor("ms") <= value <= after


def test_a_misspelled_choice_or_provider_gets_did_you_mean(sh):
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash usage --by modle")
    assert str(info.value) == ("%lash usage --by 'modle' is not one of turn, model, source, "
                               "session, day; did you mean model? see %lash help")
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash open s1 --provider opnai")
    assert str(info.value) == ("unknown provider 'opnai'; did you mean openai? use --provider one "
                               "of offline, openai, anthropic, openrouter, ollama, "
                               "openai-responses, google, litellm")


@pytest.mark.parametrize("name", ["1bad", "my var", "r.x", "class"])
def test_an_output_variable_that_is_not_a_python_name_is_refused_before_the_turn(sh, name):
    sh.run_cell("%lash open s1 --store t.duckdb")
    with pytest.raises(UsageError) as info:
        sh.run_cell(f"%%lash -o '{name}'\nhello\n")
    assert str(info.value) == (f"-o {name!r} is not a Python variable name; "
                               "give one such as -o r (the turn was not run)")
    assert sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")["n"].tolist() == [0]


def test_a_background_cell_leaves_no_pending_task_in_the_saved_output(sh):
    """The cell's Out was ``<Task pending ... coro=<_keep() running at .../verbs_turn.py>>``,
    saved with the notebook beside a record that says the turn is done."""
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("%lash enqueue --id k1 queued one")
    assert sh.run_cell("%%lash --background -o rb\nhello\n") is None
    assert sh.run_cell("%lash drain --background") is None
    sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                "import asyncio\nawait asyncio.gather(*_magics().ctx.background.values())")
    assert str(sh.user_ns["rb"].outcome) == "finished: assistant_message"
    assert sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")["n"].tolist() == [2]
    # assigned, the line form still hands back the task to await
    task = sh.run_cell("t = %lash turn --background again\nt")
    assert sh.run_cell("await t").turn_id == task.result().turn_id


def test_a_drained_turn_that_waited_for_a_running_turn_records_its_own_duration(sh):
    """The drain's view was shown while the session's background turn still ran; its footer
    counted the wait (5.7 s in the saved record, 0.5 s in the store and in %lash replay)."""
    sh.run_cell("%config LashMagics.offline_delay_s = 0.01")
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("%lash enqueue --id k1 queued one")
    words = " ".join(f"w{i}" for i in range(60))
    sh.run_cell(f"%%lash --background\nplease echo {words}\n")
    with widgets_made() as made:
        results = sh.run_cell("rs = %lash drain\nrs")  # waits for the background turn first
    drained = results[0].turn_id
    sh.run_cell("from lash_nb._notebook.extension import _magics")
    records = sh.run_cell("await _magics().ctx.bindings['s1'].session.store.load_turns('s1')")
    stored = {r.turn_id: r.duration_ms for r in records}
    shown = [w.elapsed_ms for w in made if type(w).__name__ == "TurnWidget" and w.turn_id == drained]
    assert shown == [stored[drained]]
