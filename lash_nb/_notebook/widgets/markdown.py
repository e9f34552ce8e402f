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
same for the record's markdown and plain text (ADR 145). Markup can also spread a key over
elements (``sk-proj-**ECHO**q7...``: no text holds it, the browser shows it whole); a rendering
whose shown text (tags dropped, entities decoded) reveals a key is replaced by that text without
the key, as plain text.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt

from ..._providers.redaction import knows_keys, scrub_known_values
from .untrusted import visible

# CommonMark: a backslash before ASCII punctuation is that character
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_TAG = re.compile(r"<[^>]*>")


def _shown_text(rendered: str) -> str:
    """What a browser shows of ``rendered`` (HTML this module made): tags dropped, entities
    decoded."""
    return html.unescape(_TAG.sub("", rendered))


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
    rendered: str = scrub_known_values(_parser().render(visible(text or ""), env))
    if not knows_keys():  # nothing to look for (the offline provider, no key set)
        return rendered
    shown = _shown_text(rendered)
    clean = scrub_known_values(shown)
    if clean != shown:  # a key spread over elements: shown as plain text, without it
        return f'<div class="lash-plain" style="white-space: pre-wrap">{html.escape(clean)}</div>\n'
    return rendered


def without_revealed_keys(text: str) -> str:
    """``text`` (markdown) as it is, unless a reader's renderer would decode a provider's key
    out of it (character references, backslash escapes): then decoded, without the key."""
    if not knows_keys():
        return text
    text = scrub_known_values(text)
    if "&" in text or "\\" in text:
        seen = html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", text))
        clean = scrub_known_values(seen)
        if clean != seen:
            return clean
    if not any(c in text for c in "*_`[~<"):  # no markup to spread a key over elements
        return text
    shown = _shown_text(_parser().render(text))
    clean = scrub_known_values(shown)
    return text if clean == shown else clean


__all__ = ["render_markdown", "without_revealed_keys"]
