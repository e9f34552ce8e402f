"""What a hurried data scientist passes to ``TurnInput.attach``: a matplotlib figure, a PIL
image, an object with ``_repr_png_``, a path, raw bytes, a DataFrame small or large; and
what happens past the limits. Expected values are hand-written (known image sizes, the CSV
a two-row frame prints, the size rule's numbers from the docstring)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from lash_nb import LashCore, TurnInput, tool
from lash_nb._core.attachments import AttachmentLimits
from lash_nb._core.llm import LlmRequest
from lash_nb.errors import InvalidTurnInput
from lash_nb.providers import FunctionProvider, LlmPart, LlmResponse, TerminalReason

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_a_matplotlib_figure_becomes_a_png_with_a_small_preview() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), dpi=100)
    fig.subplots().plot([1, 2, 3], [3, 1, 2])
    ti = TurnInput.text("what trend?").attach(fig, name="trend")
    [a] = ti.attachments()
    assert a.data is not None and a.data.startswith(PNG_SIG)
    assert (a.ref.kind, a.ref.media_type, a.ref.label) == ("image", "image/png", "trend")
    assert a.ref.width is not None and a.ref.width > 100  # a real plot, not a thumbnail
    assert isinstance(a.preview, bytes) and a.preview.startswith(PNG_SIG)
    assert len(a.preview) < len(a.data)
    assert [i.type for i in ti.items] == ["text", "attachment"]


def test_a_pil_image_keeps_its_size() -> None:
    from PIL import Image

    img = Image.new("RGB", (40, 30), (200, 10, 10))
    [a] = TurnInput.text("colour?").attach(img).attachments()
    assert (a.ref.media_type, a.ref.width, a.ref.height) == ("image/png", 40, 30)


def test_repr_png_and_repr_jpeg_objects_give_their_own_bytes() -> None:
    class Plot:
        def _repr_png_(self) -> bytes:
            return PNG_SIG + b"\x00\x00\x00\rIHDR\x00\x00\x00\x05\x00\x00\x00\x07" + b"x" * 9

    class Photo:
        def _repr_jpeg_(self) -> bytes:
            return b"\xff\xd8\xff\xe0jpeg"

    a, b = TurnInput.text("x").attach(Plot()).attach(Photo()).attachments()
    assert (a.ref.media_type, a.ref.width, a.ref.height) == ("image/png", 5, 7)
    assert (b.ref.media_type, b.data) == ("image/jpeg", b"\xff\xd8\xff\xe0jpeg")


def test_paths_and_bytes(tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7\nbody")
    notes = tmp_path / "notes.md"
    notes.write_text("# notes")
    a, b = TurnInput.text("read").attach(pdf).attach(str(notes)).attachments()
    assert (a.ref.kind, a.ref.media_type, a.ref.label, a.ref.byte_len) == (
        "file", "application/pdf", "paper.pdf", 13)
    assert (b.ref.media_type, b.ref.label) == ("text/markdown", "notes.md")
    with pytest.raises(InvalidTurnInput) as e:
        TurnInput.text("x").attach(b"\x00\x01 no magic")
    assert "media_type=" in one_line(e)
    with pytest.raises(InvalidTurnInput) as e:
        TurnInput.text("x").attach(tmp_path / "missing.png")
    assert "is not a file" in one_line(e)
    with pytest.raises(InvalidTurnInput) as e:
        TurnInput.text("x").attach(object())
    assert "cannot attach a object" in one_line(e)


def test_a_small_dataframe_is_sent_whole_as_csv() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    [a] = TurnInput.text("x").attach(df, name="df").attachments()
    assert a.ref.media_type == "text/csv" and a.ref.label == "df"
    assert a.data == b",a,b\n0,1,x\n1,2,y\n"


def test_a_large_dataframe_is_summarised_with_schema_head_and_describe() -> None:
    df = pd.DataFrame({"n": range(1000), "name": [f"row{i}" for i in range(1000)]})
    [a] = TurnInput.text("x").attach(df, name="big").attachments()
    assert a.data is not None and a.ref.media_type == "text/plain"
    text = a.data.decode()
    assert text.startswith("# DataFrame: 1000 rows x 2 columns (summarised")
    # the dtype of a text column is "object" before pandas 3 and "str" from it
    assert "## schema\nn: int64\nname: " in text
    assert "## first 20 rows\n,n,name\n0,0,row0\n" in text and "19,19,row19\n" in text
    assert "20,20,row20" not in text
    assert "## describe()\n" in text and "mean,499.5" in text
    assert len(text) < 3 * 20_000


def test_limits_per_attachment_and_per_turn_are_one_line_errors() -> None:
    small = AttachmentLimits(max_bytes=10, max_turn_bytes=12)
    with pytest.raises(InvalidTurnInput) as e:
        TurnInput.text("x").attach(b"\xff\xd8\xff" + b"j" * 20, limits=small)
    assert "max_bytes" in one_line(e) and "23 bytes" in str(e.value)
    first = TurnInput.text("x").attach(b"\xff\xd8\xff" + b"j" * 5, limits=small)
    with pytest.raises(InvalidTurnInput) as e:
        first.attach(b"GIF89a" + b"g" * 2, limits=small)
    assert "max_turn_bytes" in one_line(e) and "16 bytes" in str(e.value)
    assert len(first.attachments()) == 1  # the input given is unchanged


def test_an_attachment_only_input_is_not_blank() -> None:
    ti = TurnInput.empty().attach(b"GIF89a....")
    assert not ti.is_blank()


def test_queued_input_keeps_lashs_stored_attachment_source() -> None:
    gif = b"GIF89a\x02\x00\x03\x00rest"
    ti = TurnInput.text("x").attach(gif, name="dot.gif")
    ref = {"id": hashlib.sha256(gif).hexdigest(), "media_type": "image/gif", "byte_len": 14,
           "type_metadata": {"type": "image", "width": 2, "height": 3}, "label": "dot.gif"}
    assert ti.to_json()["items"][1] == {"type": "attachment",
                                        "source": {"source": "stored", "attachment_ref": ref}}
    back = TurnInput.from_json(ti.to_json())
    [a] = back.attachments()
    assert a.data is None and a.ref == ti.attachments()[0].ref


@tool
def plot_sales(region: str) -> object:
    """Plot the sales of a region."""
    from PIL import Image

    return Image.new("RGB", (12, 8), (0, 0, 255))


def test_a_tool_that_returns_a_figure_shows_the_model_the_picture(tmp_path: Path) -> None:
    seen: list[LlmRequest] = []

    def model(request: LlmRequest) -> object:
        seen.append(request)
        if len(seen) == 1:
            return LlmResponse(parts=(LlmPart.tool_call("c1", "plot_sales", '{"region": "north"}'),),
                               terminal_reason=TerminalReason.TOOL_USE)
        return "a blue rectangle"

    async def scenario() -> None:
        core = LashCore.builder().provider(FunctionProvider(model)).tools(plot_sales) \
            .store(str(tmp_path / "t.duckdb")).build()
        s = await core.session("s").open()
        out = await s.turn("plot north").run()
        assert out.result.assistant_message() == "a blue rectangle"
        [record] = out.result.tool_calls
        assert record.success and "image/png" in str(record.output)
        last = seen[1].messages[-1]
        assert [p.kind.value for p in last.parts] == ["tool_result", "attachment"]
        ref = last.parts[1].attachment
        assert ref is not None and (ref.width, ref.height) == (12, 8)
        data = seen[1].attachments[ref.id]
        assert data.startswith(PNG_SIG)
        rows = core.store.query("SELECT media_type, byte_len FROM blobs")
        assert rows.to_dict("records") == [{"media_type": "image/png", "byte_len": len(data)}]
        await core.close()

    asyncio.run(scenario())
