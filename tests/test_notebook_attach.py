"""``%%lash --attach fig,df`` and ``%lash turn --attach plot.png ...``: the names a data
scientist has in the notebook (a figure, a DataFrame) or a file next to it reach the model,
and the turn's saved record shows a small thumbnail / table preview, not the full image."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from notebook_harness import offline_shell

from lash_nb import TurnInput
from lash_nb._notebook.widgets.attachments import THUMB_MAX_BYTES, attachment_cards
from lash_nb._notebook.widgets.snapshot import turn_html


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = offline_shell()
    yield shell
    shell.close()


SETUP = """
import matplotlib
matplotlib.use("Agg")
from matplotlib.figure import Figure
import pandas as pd
fig = Figure(figsize=(3, 2), dpi=50)
fig.subplots().bar(["a", "b"], [3, 5])
df = pd.DataFrame({"city": ["Oslo", "Lima"], "rain_mm": [763, 6]})
"""


def test_a_cell_attaches_a_figure_and_a_dataframe_by_name(sh):
    sh.run_cell(SETUP)
    sh.run_cell("%%lash --attach fig,df -o out\nwhich city is wetter?\n")
    text = sh.user_ns["out"].assistant_output.safe_text
    assert text.startswith("You said: which city is wetter?")
    assert "It received: [image fig: image/png, " in text
    # the frame is small: sent whole as CSV (",city,rain_mm\n0,Oslo,763\n1,Lima,6\n" = 14 + 11 + 9 = 34 bytes)
    assert "[file df: text/csv, 34 bytes]" in text


def test_a_line_turn_attaches_a_file_path(sh, tmp_path):
    (tmp_path / "dot.gif").write_bytes(b"GIF89a\x01\x00\x01\x00" + b"\x00" * 10)
    sh.run_cell("r = %lash turn --attach dot.gif what is in it?")
    text = sh.user_ns["r"].assistant_output.safe_text
    assert "It received: [image dot.gif: image/gif, 20 bytes, 1x1]" in text


def test_a_file_whose_name_has_a_comma_is_attached_whole(sh, tmp_path):
    # --attach splits on commas; "report, final.txt" was read as "report" and " final.txt"
    (tmp_path / "report, final.txt").write_text("Q3 revenue up 4%\n")
    sh.run_cell("r = %lash turn --attach 'report, final.txt' what does it say?")
    text = sh.user_ns["r"].assistant_output.safe_text
    assert "It received: [file report, final.txt: text/plain, 17 bytes]" in text


def test_an_attachment_alone_is_a_turn(sh):
    sh.run_cell(SETUP)
    sh.run_cell("r = %lash turn --attach df")
    assert "[file df: text/csv, 34 bytes]" in sh.user_ns["r"].assistant_output.safe_text


def test_an_unknown_name_is_a_one_line_error_and_nothing_runs(sh):
    sh.run_cell("%lash open s1")
    with pytest.raises(UsageError) as e:
        sh.run_cell("%%lash --attach nope\nlook\n")
    assert str(e.value) == ("--attach names 'nope', which is neither a notebook variable nor "
                            "a file; define it first or give the file's path")
    m = sh.ip.magics_manager.registry["LashMagics"]
    assert m.ctx.last_result is None


def test_an_attachment_past_the_limit_is_a_one_line_error(sh):
    sh.run_cell("blob = b'\\xff\\xd8\\xff' + bytes(6_000_000)")
    with pytest.raises(UsageError) as e:
        sh.run_cell("%%lash --attach blob\nlook\n")
    assert "more than the 5000000 allowed" in str(e.value) and "\n" not in str(e.value)


def test_an_attachment_past_the_limit_says_how_to_raise_it_in_the_notebook(sh, tmp_path):
    # the advice was "pass limits=AttachmentLimits(max_bytes=...)", which no magic takes
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7\n" + bytes(5_999_991))  # 6,000,000 bytes
    with pytest.raises(UsageError) as e:
        sh.run_cell("%%lash --attach report.pdf\nsummarise it\n")
    assert str(e.value) == (
        "attachment report.pdf has 6000000 bytes, more than the 5000000 allowed; attach a "
        "smaller one or raise the limit: %config LashMagics.attach_max_bytes = 6000000")
    m = sh.ip.magics_manager.registry["LashMagics"]
    assert m.ctx.last_result is None  # nothing ran
    sh.run_cell("%config LashMagics.attach_max_bytes = 6000000")
    sh.run_cell("%%lash --attach report.pdf -o r\nsummarise it\n")
    text = sh.user_ns["r"].assistant_output.safe_text
    assert "[file report.pdf: application/pdf, 6000000 bytes]" in text


def test_attachments_past_the_turn_limit_say_how_to_raise_it_in_the_notebook(sh):
    sh.run_cell("a = b'%PDF-' + bytes(3_999_995)\nb = a + b'x'\nc = b + b'x'")  # 4 MB each
    sh.run_cell("%config LashMagics.attach_turn_max_bytes = 10000000")
    with pytest.raises(UsageError) as e:
        sh.run_cell("%%lash --attach a,b,c\ncompare them\n")
    assert str(e.value) == (
        "the attachments of this turn have 12000003 bytes, more than the 10000000 allowed per "
        "turn; attach fewer or raise the limit: %config LashMagics.attach_turn_max_bytes = "
        "12000003")
    sh.run_cell("%config LashMagics.attach_turn_max_bytes = 12000003")
    sh.run_cell("%%lash --attach a,b,c -o r\ncompare them\n")
    text = sh.user_ns["r"].assistant_output.safe_text
    assert all(f"[file {n}: application/pdf, " in text for n in "abc")


def test_the_saved_record_shows_a_thumbnail_not_the_whole_image() -> None:
    from PIL import Image

    noise = Image.effect_noise((1200, 900), 80).convert("RGB")  # ~1 MB of PNG
    ti = TurnInput.text("what is this?").attach(noise, name="noise")
    [a] = ti.attachments()
    assert a.data is not None and len(a.data) > 500_000
    cards = attachment_cards(ti.attachments())
    state = {"session_id": "s", "turn_id": "t", "prompt": "what is this?", "attachments": cards,
             "blocks": [], "status": "done", "outcome": "finished: assistant_message"}
    html = turn_html(state)
    assert '<img class="lash-thumb" src="data:image/png;base64,' in html
    assert "noise · image/png" in html and "1200x900" in html
    assert len(html) < 4 * THUMB_MAX_BYTES  # bounded, whatever the image's size


def test_the_record_previews_a_table_and_escapes_it() -> None:
    import pandas as pd

    df = pd.DataFrame({"<b>name</b>": ["<script>x</script>"]})
    cards = attachment_cards(TurnInput.text("t").attach(df, name="df").attachments())
    html = turn_html({"prompt": "t", "attachments": cards, "blocks": [], "status": "done"})
    assert '<pre class="lash-table-preview">,&lt;b&gt;name&lt;/b&gt;\n0,&lt;script&gt;' in html
    assert "<script>" not in html


def test_replay_from_the_store_shows_the_attachments_thumbnail(sh, tmp_path):
    from PIL import Image

    sh.run_cell("%config LashMagics.store = 'replay.duckdb'")
    Image.new("RGB", (30, 20), (0, 128, 0)).save(tmp_path / "green.png")
    sh.run_cell("%lash open r1")
    sh.run_cell("r = %lash turn --attach green.png what colour?")
    w = sh.run_cell("w = %lash replay\nw")
    html = w._repr_mimebundle_()["text/html"]
    assert '<img class="lash-thumb" src="data:image/png;base64,' in html
    assert "green.png · image/png" in html and "30x20" in html


def test_enqueue_attaches_too_and_the_drained_turn_gets_the_bytes(sh):
    sh.run_cell(SETUP)
    sh.run_cell("%lash open q1")
    sh.run_cell("b = %lash enqueue --attach df later: which city?")
    sh.run_cell("outs = %lash drain")
    [r] = sh.user_ns["outs"]
    assert "It received: [file df: text/csv, 34 bytes]." in r.assistant_output.safe_text
