"""The live view of a growing prose row renders the same markdown as the finished record.

While an answer streams, a prose row's finished blocks are rendered once each and appended
(``LiveProse``, issue 21). Rendering the row in pieces must not change what markdown means:
a loose list (items separated by blank lines) was shown as several lists, and a link whose
reference is defined further down stayed literal text until the answer ended. These tests
stream real answers a few characters at a time and compare the finished part of the live
HTML with markdown-it rendering the same text whole.
"""

from __future__ import annotations

import pytest

from lash_nb._notebook.widgets.live_prose import LiveProse, block_end
from lash_nb._notebook.widgets.markdown import render_markdown

ANSWERS = {
    "loose bullet list": "Steps:\n\n- load the data\n\n- clean it\n\n- fit the model\n\nThat is all.\n",
    "loose ordered list": "1. one\n\n2. two\n\n   more about two\n\n3. three\n\nDone.\n",
    "list then code": "- a\n\n- b\n\n```py\nx = 1\n\ny = 2\n```\n\nAfter the code.\n",
    "indented code": "Look:\n\n    code line\n\n    more code\n\nEnd.\n",
    "reference defined later": ("See [the docs][d] and [x].\n\nMore text here.\n\n"
                                "[d]: https://example.com/docs\n[x]: https://x.org\n\nTail.\n"),
    "reference defined earlier": "[d]: https://example.com\n\nIntro.\n\nSee [d] now.\n\nBye.\n",
    "quotes and headings": "# Title\n\n> quoted\n\n> again\n\n## Sub\n\ntext *em*\n\n---\n\nend\n",
}


def _stream(text: str, step: int) -> None:
    live = LiveProse()
    for end in range(step, len(text) + step, step):
        live.advance(text[:end], False, float(end), 0.0)
        # the finished part of the live view is what markdown-it makes of that text whole
        assert live.stable_html == render_markdown(live.source), (end, live.source)
        assert text.startswith(live.source)


@pytest.mark.parametrize("name", list(ANSWERS))
@pytest.mark.parametrize("step", [1, 3, 7])
def test_the_finished_part_of_a_streaming_row_reads_as_the_whole_text_would(name: str, step: int) -> None:
    _stream(ANSWERS[name], step)


def test_a_loose_list_streams_as_one_list() -> None:
    """A data scientist's model answers with a numbered plan, a blank line between steps: the
    live view showed each step as a list of its own (three <ol>, numbered 1, 2, 3 by luck of
    the start attribute), the saved record one list."""
    text = ANSWERS["loose bullet list"]
    live = LiveProse()
    live.advance(text, False, 0.0, 0.0)
    assert live.source == text[:text.index("That")]  # "That is all." closes the list
    assert live.stable_html.count("<ul>") == 1
    assert live.stable_html.count("<li>") == 3


def test_a_link_whose_reference_comes_later_becomes_a_link_when_the_reference_arrives() -> None:
    text = ANSWERS["reference defined later"]
    live = LiveProse()
    cut = text.index("[d]: ")
    live.advance(text[:cut], False, 0.0, 0.0)
    assert "[the docs][d]" in live.html  # not yet defined: literal, as markdown says
    live.advance(text, False, 1.0, 0.0)
    assert 'href="https://example.com/docs"' in live.html
    assert 'href="https://x.org"' in live.html
    assert "[the docs]" not in live.html


def test_a_blank_line_before_a_list_item_or_indented_line_does_not_close_the_block() -> None:
    """Whether a blank line ends a block depends on the line after it: another item or an
    indented line continues the list, so nothing is finished until a line that cannot."""
    assert block_end("- a\n\n- b", 0) == 0
    assert block_end("- a\n\n  more", 0) == 0
    assert block_end("- a\n\n", 0) == 0  # what follows is not known yet
    assert block_end("- a\n\n1", 0) == 0  # may become "1. b"
    assert block_end("- a\n\nText", 0) == len("- a\n\n")
    assert block_end("Para.\n\n- a\n\n- b\n\nEnd", 0) == len("Para.\n\n- a\n\n- b\n\n")


def test_the_many_references_of_an_adversarial_answer_do_not_make_rendering_quadratic(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new reference used earlier re-renders the finished text, but only while that
    costs at most twice the text: an answer alternating uses and definitions, 4x as long,
    costs about 4x the rendering (it was quadratic before the budget: 16x)."""
    import lash_nb._notebook.widgets.live_prose as mod

    real = mod.render_markdown
    rendered = [0]

    def counting(src: str, env: dict[str, object] | None = None) -> str:
        rendered[0] += len(src)
        return real(src, env)

    monkeypatch.setattr(mod, "render_markdown", counting)

    def cost(n: int) -> int:
        text = "".join(f"Use [r{i}] here.\n\n[r{i}]: https://e.org/{i}\n\n" for i in range(n))
        rendered[0] = 0
        live = LiveProse()
        for end in range(40, len(text) + 40, 40):
            live.advance(text[:end], False, float(end), 0.0)
        return rendered[0]

    small, large = cost(200), cost(800)
    assert large <= 4.4 * small, (small, large)
