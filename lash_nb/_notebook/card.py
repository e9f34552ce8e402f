"""``Card``: markdown output whose ``text/plain`` is the same text.

IPython's ``Markdown`` object saves ``<IPython.core.display.Markdown object>`` as its plain
text, so a saved notebook read where only ``text/plain`` counts (a terminal, ``nbconvert --to
script``, a notebook diff, an agent reading the ``.ipynb``) lost the session card, the MCP
list and the help. Markdown is readable as plain text; ``Card`` saves it in both."""

from __future__ import annotations


class Card:
    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data

    def _repr_markdown_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return self.data
