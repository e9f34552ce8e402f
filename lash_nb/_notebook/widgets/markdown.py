"""Model prose as sanitised HTML: markdown-it-py (GFM tables, strikethrough) + pygments.

Model output is untrusted text. Its terminal escapes and control characters are dropped
(``untrusted.visible``), and the renderer runs with ``html=False`` (raw HTML in the source
is escaped, never passed through), markdown-it's own link validation (no ``javascript:``,
``vbscript:``, ``file:`` or non-image ``data:`` URLs), and every link opens in a new tab with
``rel="noopener noreferrer"``; images are not rendered (``![a](u)`` stays text: loading a URL
the model wrote would leak that the output was viewed, or data put into the URL). Code blocks
are highlighted by pygments into ``<span class>`` markup only (no inline styles, so the colours
come from ``turn.css`` and follow the theme).

The same function serves the live widget (prose blocks are rendered on each flush) and the
saved, kernel-free HTML of a finished turn.

Rendering decodes: a character reference (``&#115;``) or a backslash before punctuation in the
text becomes the character. The text was scrubbed of the provider's key when it arrived, but a
server that echoes the key in such a form would have it rebuilt here, so the rendered HTML loses
the key of every provider of the process again, and :func:`without_revealed_keys` does the
same for the record's markdown and plain text (ADR 145).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt

from ..._providers.redaction import scrub_known_values
from .untrusted import visible

# CommonMark: a backslash before ASCII punctuation is that character
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


@lru_cache(maxsize=1)
def _formatter() -> Any:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(nowrap=True, classprefix="lash-hl-")


HIGHLIGHTED_CHARS = 20_000  # a longer code block is shown as plain code (ADR 151)


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    from pygments import highlight

    name = lang.split()[0] if lang else ""
    # a highlighted block's HTML is about ten times its text (a span per token)
    lexer = _lexer(name) if name and len(code) <= HIGHLIGHTED_CHARS else None
    if lexer is None:
        return ""  # markdown-it escapes and wraps it as plain code
    body = highlight(code, lexer, _formatter())
    return f'<pre class="lash-code"><code class="language-{html.escape(name, quote=True)}">{body}</code></pre>\n'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "breaks": False})
    md.enable(["table", "strikethrough"])
    md.disable("image")  # an image URL in model output would be fetched: a tracking / exfiltration vector

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("target", "_blank")
        tokens[idx].attrSet("rel", "noopener noreferrer")
        out: str = renderer.renderToken(tokens, idx, options, env)
        return out

    md.add_render_rule("link_open", link_open)
    return md


def render_markdown(text: str, env: dict[str, Any] | None = None) -> str:
    """Sanitised HTML for model prose (an unclosed fence mid-stream renders as code so far).
    ``env``: markdown-it's environment; its ``references`` (link reference definitions) are
    kept across calls that share it, so a piece rendered later resolves links defined earlier."""
    html: str = _parser().render(visible(text or ""), env)
    return scrub_known_values(html)


def without_revealed_keys(text: str) -> str:
    """``text`` (markdown) as it is, unless a reader's renderer would decode a provider's key
    out of it (character references, backslash escapes): then decoded, without the key."""
    text = scrub_known_values(text)
    if "&" not in text and "\\" not in text:
        return text
    seen = html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", text))
    clean = scrub_known_values(seen)
    return text if clean == seen else clean


__all__ = ["render_markdown", "without_revealed_keys"]
