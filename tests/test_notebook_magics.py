"""%lash magics through an IPython shell that re-raises cell errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell

from lash_nb import SessionConfigPatch
from lash_nb._notebook.extension import transform_lash
from lash_nb._notebook.parsing import interpolate, split_prompt
from lash_nb.providers import FunctionProvider


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    shell.run_cell("%config LashMagics.store = ':memory:'")
    yield shell
    shell.close()


def test_a_lash_cell_becomes_one_awaited_call():
    out = transform_lash(["%%lash -o r\n", "Hello {name}\n"])
    assert out == [
        ("await __import__('lash_nb._notebook.extension', fromlist=['run_line'])"
        ".run_cell('-o r', 'Hello {name}\\n')\n")
    ]


def test_an_assigned_lash_line_is_awaited_and_asks_for_the_result():
    out = transform_lash(["x = 1\n", "r = %lash turn hi there\n", "  %lash stop\n"])
    assert out[0] == "x = 1\n"
    assert out[1].startswith("r = await __import__(")
    assert out[1].endswith(".run_line('turn hi there', True)\n")
    assert out[2] == "  %lash stop\n"  # indented lines are left to IPython's magic


def test_options_and_raw_prompt_are_split_keeping_quotes():
    assert split_prompt("--id k1 --slot join say 'hi'  there", with_value=("--id", "--slot"),
                        flags=()) == ("--id k1 --slot join", "say 'hi'  there")
    assert split_prompt("-- --not-an-option", with_value=(), flags=()) == ("", "--not-an-option")
    with pytest.raises(UsageError, match="unknown option --bogus"):
        split_prompt("--bogus x", with_value=(), flags=())


def test_an_option_written_after_the_prompt_is_refused_not_queued_as_prompt_text():
    # a user typed the README's old order: "%lash enqueue later --id k1" queued "later --id k1"
    with pytest.raises(UsageError, match="--id comes after the prompt; options go first"):
        split_prompt("later --id k1", with_value=("--id",), flags=())
    with pytest.raises(UsageError, match="--background comes after the prompt"):
        split_prompt("say hi --background", with_value=(), flags=("--background",))
    # after -- the prompt is sent as written, options and all
    assert split_prompt("--id k1 -- explain --id", with_value=("--id",), flags=()) == \
        ("--id k1", "explain --id")
    # words that merely look like options of another verb stay prompt text
    assert split_prompt("compare --verbose runs", with_value=("--id",), flags=()) == \
        ("", "compare --verbose runs")


def test_interpolation_fills_known_names_and_escaped_or_non_name_braces_stay():
    class Box:
        size = 3

    ns = {"city": "Oslo", "box": Box(), "code": "f{x}"}
    assert interpolate(r'{city} {{ city }} {box.size} \{missing} {code} {"a": 1} {1, 2}', ns) == \
        'Oslo Oslo 3 {missing} f{x} {"a": 1} {1, 2}'


def test_an_undefined_name_in_a_prompt_is_one_line_error_naming_it_and_the_escape():
    class Box:
        size = 3

    with pytest.raises(UsageError) as info:
        interpolate("tell me about {missing}", {})
    assert str(info.value) == ("{missing} in the prompt names nothing defined in the notebook; "
                               "define 'missing' first, or write \\{missing} to send the braces as text")
    with pytest.raises(UsageError, match="'box' has no attribute 'nope'"):
        interpolate("{box.nope}", {"box": Box()})


def test_assigned_line_turn_returns_the_finished_result(sh):
    sh.run_cell("%lash open s1")
    sh.run_cell("name = 'Ada'")
    sh.run_cell("r = %lash turn hello {name}")
    r = sh.user_ns["r"]
    assert str(r.outcome) == "finished: assistant_message"
    assert r.assistant_output.safe_text.startswith("You said: hello Ada")


def test_cell_turn_with_o_stores_the_result_and_the_cell_shows_no_extra_value(sh):
    value = sh.run_cell("%%lash -o out\nwrite about {topic}\n".replace("{topic}", "tea"))
    assert value is None
    assert sh.user_ns["out"].assistant_output.safe_text.startswith("You said: write about tea")


def test_unknown_verb_suggests_the_closest(sh):
    with pytest.raises(UsageError, match=r"unknown %lash verb 'tunr'; did you mean %lash turn\?"):
        sh.run_cell("%lash tunr hello")


def test_argument_errors_become_one_line_usage_errors_with_the_cause_kept(sh):
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash enqueue --delivery sideways later")
    assert str(info.value) == ("unknown delivery policy 'sideways'; use one of: "
                               "earliest (earliest_safe_boundary), "
                               "after-commit (after_current_turn_commit)")
    assert type(info.value.__cause__) is ValueError


def test_unknown_provider_is_a_usage_error_naming_the_choices(sh):
    with pytest.raises(UsageError, match="use --provider one of offline, openai, anthropic"):
        sh.run_cell("%lash open s2 --provider nope")


def test_config_values_are_the_defaults_for_open(sh):
    sh.run_cell("%config LashMagics.session = 'from-config'")
    sh.run_cell("r = %lash turn hi")
    m = sh.ip.magics_manager.registry["LashMagics"]
    assert m.ctx.current == "from-config"


def test_pyproject_table_sets_defaults_unless_config_already_did(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.lash_nb]\nsession = "py-session"\nstore = ":memory:"\noffline_delay_s = 0.5\n'
    )
    sub = tmp_path / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)
    shell = ReraisingShell()
    try:
        shell.ip.config.LashMagics.offline_delay_s = 0.0
        shell.run_cell("%load_ext lash_nb._notebook.extension")
        m = shell.ip.magics_manager.registry["LashMagics"]
        assert (m.session, m.store, m.offline_delay_s) == ("py-session", ":memory:", 0.0)
    finally:
        shell.close()


def test_usage_by_model_sums_both_turns(sh):
    sh.run_cell("a = %lash turn one")
    sh.run_cell("b = %lash turn two")
    frame = sh.run_cell("%lash usage --by model")
    a, b = sh.user_ns["a"], sh.user_ns["b"]
    expected = a.usage.output_tokens + b.usage.output_tokens
    assert list(frame["model"]) == ["lash-offline"]
    assert int(frame["output_tokens"].iloc[0]) == expected


def test_usage_by_turn_has_one_row_per_turn_and_plot_gives_a_chart(sh):
    sh.run_cell("a = %lash turn one")
    sh.run_cell("b = %lash turn two")
    frame = sh.run_cell("%lash usage --by turn")
    a, b = sh.user_ns["a"], sh.user_ns["b"]
    assert sorted(frame["turn_id"]) == sorted([a.turn_id, b.turn_id])
    by_turn = dict(zip(frame["turn_id"], frame["input_tokens"], strict=True))
    assert by_turn == {a.turn_id: a.usage.input_tokens, b.turn_id: b.usage.input_tokens}
    chart = sh.run_cell("%lash usage --plot --by model")
    assert "<svg" in chart.to_html() and "lash-offline" in chart.to_html()


def test_sql_runs_over_the_duckdb_store_and_bad_sql_is_one_usage_error(sh, tmp_path):
    sh.run_cell(f"%lash open sqltest --store {tmp_path / 'sql.duckdb'}")
    sh.run_cell("r = %lash turn count me")
    frame = sh.run_cell("%lash sql SELECT session_id, stop_reason FROM turns")
    assert frame.to_dict("records") == [{"session_id": "sqltest", "stop_reason": "assistant_message"}]
    cell = sh.run_cell("%%lash sql\nSELECT count(*) AS n\nFROM graph_nodes WHERE session_id = 'sqltest'\n")
    assert int(cell["n"].iloc[0]) == 2
    with pytest.raises(UsageError, match=r"^no table or view 'no_such_table'"):
        sh.run_cell("%lash sql SELECT * FROM no_such_table")
    with pytest.raises(UsageError, match=r"^SQL error: .*syntax error"):
        sh.run_cell("%lash sql SELEC 1")


def test_sql_refuses_writes_with_one_usage_error_and_keeps_the_rows(sh, tmp_path):
    sh.run_cell(f"%lash open sqlwrite --store {tmp_path / 'sql.duckdb'}")
    sh.run_cell("r = %lash turn count me")
    for attack in ("DELETE FROM turns", "SELECT 1; DELETE FROM graph_nodes", "BEGIN TRANSACTION"):
        with pytest.raises(UsageError, match=r"^store queries only read; ") as e:
            sh.run_cell(f"%lash sql {attack}")
        assert "\n" not in str(e.value)
    frame = sh.run_cell("%lash sql SELECT count(*) AS n FROM graph_nodes")
    assert int(frame["n"].iloc[0]) == 2
    sh.run_cell("r2 = %lash turn and again")  # the next turn is fine
    assert sh.user_ns["r2"].outcome.kind == "finished"
    (tmp_path / "extra.csv").write_text("x\n41\n")
    with pytest.raises(UsageError, match="--allow-files"):
        sh.run_cell(f"%lash sql SELECT x + 1 AS y FROM read_csv('{tmp_path / 'extra.csv'}')")
    got = sh.run_cell(f"%lash sql --allow-files SELECT x + 1 AS y FROM read_csv('{tmp_path / 'extra.csv'}')")
    assert got["y"].tolist() == [42]


# what a user types -> the statement the refusal must name (DuckDB's parser types INSTALL
# as LOAD, CHECKPOINT as CALL, USE as SET, TRUNCATE as DELETE, ANALYZE as VACUUM, IMPORT
# DATABASE as PRAGMA; UPDATE EXTENSIONS has no type the duckdb package knows)
SQL_REFUSALS = {
    "INSTALL httpfs": "INSTALL",
    "install httpfs": "INSTALL",
    "FORCE INSTALL httpfs": "FORCE INSTALL",
    "LOAD httpfs": "LOAD",
    "UPDATE EXTENSIONS": "UPDATE EXTENSIONS",
    "CHECKPOINT": "CHECKPOINT",
    "FORCE CHECKPOINT": "FORCE CHECKPOINT",
    "CALL checkpoint()": "CALL checkpoint",
    "CALL force_checkpoint()": "CALL force_checkpoint",
    "CALL query('DELETE FROM turns')": "CALL query",
    "call enable_logging()": "CALL enable_logging",
    "USE memory": "USE",
    "SET threads = 1": "SET",
    "RESET threads": "RESET",
    "PRAGMA threads = 1": "PRAGMA threads",
    "VACUUM": "VACUUM",
    "ANALYZE": "ANALYZE",
    "TRUNCATE turns": "TRUNCATE",
    "DELETE FROM turns": "DELETE",
    "WITH x AS (SELECT 1) DELETE FROM turns": "DELETE",
    "BEGIN TRANSACTION": "BEGIN",
    "START TRANSACTION": "START TRANSACTION",
    "COMMIT": "COMMIT",
    "IMPORT DATABASE 'elsewhere'": "IMPORT",
    "COPY FROM DATABASE memory TO other": "COPY",
    "MERGE INTO turns USING turns AS t ON false WHEN MATCHED THEN DELETE": "MERGE",
    "COMMENT ON TABLE turns IS 'mine'": "COMMENT",
    "PREPARE p AS SELECT 1": "PREPARE",
    "DEALLOCATE p": "DEALLOCATE",
    "PIVOT turns ON status": "PIVOT",
    "SELECT 1; INSTALL httpfs": "INSTALL",
    "-- a note first\nCHECKPOINT": "CHECKPOINT",
}


def test_a_refused_sql_statement_is_named_as_the_user_wrote_it(sh, tmp_path):
    """Typing ``%lash sql INSTALL httpfs`` said "LOAD is not allowed", ``CHECKPOINT`` said
    "CALL", ``USE memory`` said "SET": the parser's statement type, not the user's words."""
    sh.run_cell(f"%lash open sqlverbs --store {tmp_path / 'sql.duckdb'}")
    sh.run_cell("r = %lash turn count me")
    named, hints = {}, {}
    for typed in SQL_REFUSALS:
        magic = f"%%lash sql\n{typed}\n" if "\n" in typed else f"%lash sql {typed}"
        with pytest.raises(UsageError) as e:
            sh.run_cell(magic)
        message = str(e.value)
        assert "\n" not in message, typed
        got = re.fullmatch(r"store queries only read; (.+?) is not allowed \((.+)\)", message)
        named[typed] = got.group(1) if got else message
        hints[typed] = got.group(2) if got else ""
    assert named == SQL_REFUSALS
    assert all(len(hint) > 20 for hint in hints.values()), hints  # each says what to do
    frame = sh.run_cell("%lash sql SELECT count(*) AS n FROM graph_nodes")
    assert int(frame["n"].iloc[0]) == 2  # nothing changed


def test_sql_runs_a_read_only_call_or_pragma_and_refuses_one_that_writes(sh, tmp_path):
    """``%lash sql CALL pragma_table_info('turns')`` (what DuckDB's docs show to list a
    table's columns) only reads, yet it was refused as "CALL is not allowed". A CALL of a
    table function that reads runs; one that writes or runs other SQL is refused, named."""
    sh.run_cell(f"%lash open sqlcall --store {tmp_path / 'sql.duckdb'}")
    sh.run_cell("r = %lash turn count me")
    for typed in ("CALL pragma_table_info('turns')", "PRAGMA table_info('turns')",
                  "%%lash sql\n-- the columns\nCALL pragma_table_info('turns');\n"):
        frame = sh.run_cell(typed if typed.startswith("%%") else f"%lash sql {typed}")
        assert {"turn_id", "session_id", "outcome"} <= set(frame["name"]), typed
    frame = sh.run_cell("%lash sql CALL range(3)")
    assert frame.iloc[:, 0].tolist() == [0, 1, 2]
    with pytest.raises(UsageError, match=r"^store queries only read; CALL checkpoint is not "
                                         r"allowed \(the store checkpoints"):
        sh.run_cell("%lash sql CALL checkpoint()")
    (tmp_path / "extra.csv").write_text("x\n41\n")
    with pytest.raises(UsageError, match=r"^store queries do not read files; read_csv\(\) is off"):
        sh.run_cell(f"%lash sql CALL read_csv('{tmp_path / 'extra.csv'}')")
    frame = sh.run_cell("%lash sql SELECT count(*) AS n FROM graph_nodes")
    assert int(frame["n"].iloc[0]) == 2  # nothing changed


def test_open_with_a_real_provider_and_no_model_uses_the_providers_default_model(sh, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    sh.run_cell("s = %lash open keyless --provider openai")
    assert sh.user_ns["s"].policy_snapshot().model == "gpt-4.1-mini"


def test_replay_rerenders_the_last_committed_turn(sh):
    sh.run_cell("r = %lash turn replay me")
    w = sh.run_cell("%lash replay")
    assert w.outcome == "finished: assistant_message"
    assert w.fold.prose == sh.user_ns["r"].assistant_output.safe_text
    with pytest.raises(UsageError, match="no turn 'nope'"):
        sh.run_cell("%lash replay nope")


def test_stop_without_an_open_session_says_to_open_one(sh):
    with pytest.raises(UsageError, match=r"run %lash open \[SESSION\] first"):
        sh.run_cell("%lash stop")


def test_a_cell_body_on_a_line_only_verb_is_refused(sh):
    with pytest.raises(UsageError, match="%%lash usage takes no cell body"):
        sh.run_cell("%%lash usage\nwhatever\n")


def test_help_lists_every_verb(sh):
    md = sh.run_cell("%lash help")
    for verb in ("open", "turn", "enqueue", "queue", "drain", "stop", "tools", "usage",
                 "sessions", "graph", "sql", "replay", "last"):
        assert f"%lash {verb}" in md.data


# ---------------------------------------------------------------- %%lash --system, %lash prompt
# The user's situation: "answer in one line" for one cell only, a look at what the model is
# told, a persona set for the session, and a mistyped option or slot name on the way.


def recording_session(sh: Any) -> list[str | None]:
    """Open a session and switch it (``configure``) to a provider that records the system
    prompt of each request."""
    seen: list[str | None] = []

    def fn(request: Any) -> str:
        seen.append(request.system_prompt)
        return "ok"

    sh.run_cell("%lash open s1")
    sh.user_ns["_patch"] = SessionConfigPatch(provider=FunctionProvider(fn, kind="recorder"))
    sh.run_cell("_s = %lash turn warm up")
    m = sh.ip.magics_manager.registry["LashMagics"]
    session = m.ctx.bindings["s1"].session
    sh.user_ns["_session"] = session
    sh.run_cell("await _session.configure(_patch)")
    return seen


def test_system_option_is_for_one_turn_only(sh: Any) -> None:
    seen = recording_session(sh)
    sh.run_cell('%%lash --system "Answer in one line."\nwhat is a p-value?\n')
    sh.run_cell("%%lash\nand a t-test?\n")
    assert seen == ["Answer in one line.", None]


def test_prompt_verb_shows_sets_adds_and_clears_the_session_layer(sh: Any, capsys: Any) -> None:
    seen = recording_session(sh)
    sh.run_cell("%lash prompt")
    assert capsys.readouterr().out.strip().endswith(
        '(no system prompt: set one with %lash prompt --set "...")')
    sh.run_cell("who = 'a careful statistician'")
    sh.run_cell('%lash prompt --set "You are {who}."')
    sh.run_cell('%lash prompt --add "Cite the test you used." --slot guidance --title Rules')
    shown = sh.run_cell("p = %lash prompt") or sh.user_ns["p"]
    assert shown == "You are a careful statistician.\n\n## Guidance\n\n### Rules\n\nCite the test you used."
    sh.run_cell("%%lash\nis this significant?\n")
    sh.run_cell("%lash prompt --clear")
    sh.run_cell("%%lash\nand now?\n")
    assert seen == [shown, None]


def test_prompt_verb_mistakes_are_one_line_with_did_you_mean(sh: Any) -> None:
    sh.run_cell("%lash open s1")
    with pytest.raises(UsageError, match=r"unknown %lash verb 'promt'; did you mean %lash prompt\?"):
        sh.run_cell("%lash promt")
    with pytest.raises(UsageError, match=r"unknown option --sett for %lash prompt; did you mean --set\?"):
        sh.run_cell('%lash prompt --sett "x"')
    with pytest.raises(UsageError, match=r"--slot 'guidence' is not one of .*did you mean guidance\?"):
        sh.run_cell('%lash prompt --add "x" --slot guidence')
    with pytest.raises(UsageError, match="takes one of --set, --add, --clear"):
        sh.run_cell('%lash prompt --set "x" --clear')
    with pytest.raises(UsageError, match="--system is empty"):
        sh.run_cell('%%lash --system ""\nhello\n')


def test_reopening_keeps_a_configured_model_unless_open_names_one(sh: Any) -> None:
    """The patch is committed: ``%lash open`` again (a restart) keeps the configured model;
    ``%lash open --model M`` is the user's latest word and wins."""
    sh.run_cell("%lash open s1")
    sh.run_cell("from lash_nb import SessionConfigPatch")
    m = sh.ip.magics_manager.registry["LashMagics"]
    sh.user_ns["_session"] = m.ctx.bindings["s1"].session
    sh.run_cell('await _session.configure(SessionConfigPatch(model="lash-offline-large"))')
    sh.run_cell("%lash open s1")
    assert m.ctx.bindings["s1"].session.policy_snapshot().model == "lash-offline-large"
    sh.run_cell("%lash open s1 --model lash-offline-small")
    assert m.ctx.bindings["s1"].session.policy_snapshot().model == "lash-offline-small"


# ---------------------------------------------------------------- code mode (--mode code)

def test_share_without_code_mode_says_to_add_it(sh):
    sh.run_cell("import pandas as pd\ndf = pd.DataFrame({'a': [1]})")
    with pytest.raises(UsageError, match="add --mode code"):
        sh.run_cell("%lash open s1 --share df")


def test_share_of_a_name_that_is_neither_variable_nor_file_says_so(sh):
    with pytest.raises(UsageError, match="'nosuch', which is neither a notebook variable nor a file"):
        sh.run_cell("%lash open s1 --mode code --share nosuch")


def test_share_of_a_variable_that_is_not_a_dataframe_is_refused(sh):
    sh.run_cell("numbers = [1, 2, 3]")
    with pytest.raises(UsageError, match="share a pandas DataFrame or the path of an existing file"):
        sh.run_cell("%lash open s1 --mode code --share numbers")


def test_code_mode_open_shows_the_mode_and_the_shared_names_without_starting_a_kernel(
        sh, tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    sh.run_cell("import pandas as pd\nsales = pd.DataFrame({'a': [1]})")
    session = sh.run_cell("s = %lash open s1 --mode code --share sales,notes.csv")
    s = sh.user_ns["s"] if session is None else session
    code = s.parts.code_mode
    assert [name for name, _ in code.shared()] == ["sales", "notes.csv"]
    assert not code.sandbox.started  # the kernel starts with the first turn


def test_markdown_outputs_keep_their_text_for_readers_of_text_plain(sh):
    # a saved notebook read where only text/plain counts (a terminal, `jupyter nbconvert
    # --to script`, a notebook diff, an agent reading the .ipynb): the session card, the
    # MCP list and the help said `<IPython.core.display.Markdown object>`
    from lash_nb._notebook.verbs_turn import session_card

    sh.run_cell("r = %lash turn hi")
    m = sh.ip.magics_manager.registry["LashMagics"]
    outputs = {"card": session_card(m.ctx.bindings["default"]),
               "mcp": sh.run_cell("%lash mcp list"), "help": sh.run_cell("%lash help")}
    for name, obj in outputs.items():
        bundle, _ = sh.ip.display_formatter.format(obj)
        assert bundle["text/plain"] == bundle["text/markdown"], name
        assert "IPython.core.display" not in bundle["text/plain"], name
    card, _ = sh.ip.display_formatter.format(outputs["card"])
    assert "lash-offline" in card["text/plain"]
