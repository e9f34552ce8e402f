"""A long prompt or answer as the widget and the saved record show it (ADR 151).

A tool's output is shown up to 20,000 characters (ADR 140, :func:`shown_output`). The
answer's prose (and reasoning) is shown whole up to :data:`SHOWN_PROSE_CHARS` and the prompt
up to :data:`SHOWN_PROMPT_CHARS`; past that the text is cut and one line, a paragraph of its
own, says how many characters were left out and the ``%lash sql`` query that reads the whole
text from the store. The store, the ``TurnResult`` and what the model is sent keep it whole.

Where the cut falls: at a line end (else a space) near the limit; never between the halves of
a surrogate pair, inside a character reference (``&amp;``) or inside a terminal escape
(``visible`` would leave its tail as text). The cut prose must leave the page after it whole:
a code fence open at the cut would make the note, and every row and footer of the record's
markdown after it, code. The fence is closed (with the marker that opened it), and when the
note still does not stand alone the text is cut back to the start of the block that holds it.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from ..._core.tool_output import cut_line
from ..._core.visible import as_a_terminal_shows, unfinished_escape_start

SHOWN_PROSE_CHARS = 100_000  # of one prose / reasoning row (ADR 151)
SHOWN_PROMPT_CHARS = 20_000  # of the prompt (ADR 151), as a tool's output (ADR 140)

_NEAR = 2_000  # how far back from the limit a line end is looked for
_ENTITY_TAIL = re.compile(r"&#?[A-Za-z0-9]{0,32}$")
_PROBE = "lash-cut-probe"
LIVE_NOTE = ("… the rest is not shown here while it arrives; the finished turn says how much "
             "and where to read it whole")


def cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` to at most ``limit`` characters (``len(text)`` when it fits)."""
    if len(text) <= limit:
        return len(text)
    head = text[:limit]
    line = head.rfind("\n", max(0, limit - _NEAR))
    if line > 0:
        head = head[:line]
    else:
        space = head.rfind(" ", max(0, limit - 200))
        head = head[:space] if space > 0 else head
    head = head[:unfinished_escape_start(head)]
    entity = _ENTITY_TAIL.search(head)
    if entity is not None:
        head = head[:entity.start()]
    if head and "\ud800" <= head[-1] <= "\udbff":  # the first half of a pair (surrogatepass)
        head = head[:-1]
    return len(head)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def left_out(count: int, what: str, query: str) -> str:
    return (f"… {count:,} more characters not shown here; the whole {what} is stored: "
            f"%lash sql {query}")


def _which(session_id: str, turn_id: str) -> str:
    """The ``WHERE`` terms naming the turn: a store holds many sessions, each with its own
    ``t1``."""
    return "".join(f"{column} = {_quoted(value)} AND " for column, value in
                   (("session_id", session_id), ("turn_id", turn_id)) if value)


def shown_prompt(text: str, turn_id: str = "", session_id: str = "") -> str:
    """The prompt whole up to :data:`SHOWN_PROMPT_CHARS`, else its start and the note. The
    note's query is SQL both stores run (``->`` and ``->>`` on DuckDB's JSON and
    PostgreSQL's JSONB; ``json_extract_string`` is DuckDB's only)."""
    end = cut_point(text, SHOWN_PROMPT_CHARS)
    if end == len(text):
        return text
    query = (f"SELECT content->'parts'->0->>'content' AS prompt FROM graph_nodes WHERE "
             f"{_which(session_id, turn_id)}role = 'user' ORDER BY seq "
             f"{'LIMIT 1' if turn_id else 'DESC LIMIT 1'}")
    return f"{text[:end]}\n{left_out(len(text) - end, 'prompt', query)}"


class ProseCut:
    """The cut of one growing prose or reasoning row, kept while the row only grows (a live
    turn's flushes then cost a prefix comparison, not a markdown parse)."""

    __slots__ = ("end", "head", "shown")

    def __init__(self, text: str) -> None:
        end = cut_point(text, SHOWN_PROSE_CHARS)
        self.head = text[:SHOWN_PROSE_CHARS]  # the row still starts with it: the cut holds
        self.end = end
        self.shown = closed_markdown(text[:end])

    def fits(self, text: str) -> bool:
        return text.startswith(self.head)

    def text(self, raw: str, *, final: bool, turn_id: str, cid: str, kind: str,
             session_id: str = "") -> str:
        if not final:
            return f"{self.shown}\n\n{LIVE_NOTE}"
        what = "reasoning" if kind == "reasoning" else "answer"
        query = (f"SELECT string_agg(payload->>'text', '' ORDER BY seq) AS text FROM "
                 f"turn_events WHERE {_which(session_id, turn_id)}correlation_id = {_quoted(cid)}")
        return f"{self.shown}\n\n{left_out(len(raw) - self.end, what, query)}"


def shown_prose(text: str, *, turn_id: str, cid: str, kind: str = "prose",
                session_id: str = "") -> str:
    """A finished prose (or reasoning) row whole up to :data:`SHOWN_PROSE_CHARS`, else its
    start and the note."""
    if len(text) <= SHOWN_PROSE_CHARS:
        return text
    return ProseCut(text).text(text, final=True, turn_id=turn_id, cid=cid, kind=kind,
                               session_id=session_id)


def closed_markdown(text: str) -> str:
    """``text`` (markdown cut anywhere) after which a paragraph stands on its own."""
    if _stands_alone(text):
        return text
    tokens = _parser().parse(text)
    fence = next((t for t in reversed(tokens) if t.type == "fence" and t.level == 0), None)
    if fence is not None:
        closed = text.rstrip("\n") + "\n" + str(fence.markup)
        if _stands_alone(closed):
            return closed
    blocks = [t for t in tokens if t.level == 0 and t.map]
    if not blocks:
        return ""
    start = blocks[-1].map[0] if blocks[-1].map else 0
    return "\n".join(text.split("\n")[:start]).rstrip("\n")


def _stands_alone(text: str) -> bool:
    tokens = _parser().parse(f"{text}\n\n{_PROBE}")
    return (len(tokens) >= 3 and tokens[-2].type == "inline" and tokens[-2].content == _PROBE
            and tokens[-3].type == "paragraph_open" and tokens[-3].level == 0)


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


__all__ = ["SHOWN_PROMPT_CHARS", "SHOWN_PROSE_CHARS", "ProseCut", "cut_point", "shown_prompt",
           "shown_prose"]


SHOWN_OUTPUT_CHARS = 20_000  # of a tool's output in the widget and the record (ADR 140)


def shown_output(output: Any, call_id: Any) -> Any:
    """A tool's output as the widget and the saved record show it: whole up to
    ``SHOWN_OUTPUT_CHARS`` characters, else its start (to a line end near the limit) and a
    line saying what the store holds and the query that reads it: the whole output, or, when
    the session cut it (ADR 174), how much of it lash kept, and the line saying what it left
    out (ADR 182). Text is shown as a terminal shows it (a carriage return writes over the
    line; ADR 219): the store and the model keep it as it came."""
    if output is None or isinstance(output, (bool, int, float)):
        return output
    if isinstance(output, str):  # each line as a terminal shows it, as printed text (0219)
        output = as_a_terminal_shows(output)
    text = output if isinstance(output, str) else json.dumps(output, indent=2,
                                                             ensure_ascii=False, default=str)
    if len(text) <= SHOWN_OUTPUT_CHARS:
        return output
    where = stored_query("output", call_id)
    end = cut_point(text, SHOWN_OUTPUT_CHARS)
    shown = f"{text[:end]}\n… {len(text) - end:,} more characters not shown here; "
    cut = cut_line(text)
    if cut is None:
        return f"{shown}the whole output is stored: %lash sql {where}"
    line, kept, total, unit = cut
    said = f"\n{line.group(0)}" if line.end() > end else ""  # past what is shown: quoted
    return (f"{shown}lash kept {kept:,} of the {total:,} {unit} this tool returned (its start "
            f"and end, what the model read), stored: %lash sql {where}{said}")


def shown_printed(printed: Any, call_id: Any) -> str:
    """What a call printed as the widget and the record show it: whole up to
    ``SHOWN_OUTPUT_CHARS`` characters, else its start and a line saying what the store holds:
    all it printed, or what lash kept of it and the line saying what it left out; each line
    as a terminal shows it (a progress bar's last state; the store keeps every one that fits; ADRs 210, 223)."""
    cut = cut_line(str(printed), printed=True)  # where the capture put it: before the redraws
    text = as_a_terminal_shows(str(printed))
    if len(text) <= SHOWN_OUTPUT_CHARS:
        return text
    end = cut_point(text, SHOWN_OUTPUT_CHARS)
    shown = f"{text[:end]}\n… {len(text) - end:,} more characters not shown here; "
    where = stored_query("printed", call_id)
    if cut is None:
        return f"{shown}all this tool printed is stored: %lash sql {where}"
    line, kept, total, _ = cut
    # past what is shown: quoted
    said = "" if line.group(0) in text[:end] else f"\n{line.group(0)}"
    return (f"{shown}lash kept {kept:,} of the {total:,} characters this tool printed (its "
            f"start and end), stored: %lash sql {where}{said}")


def stored_query(column: str, call_id: Any) -> str:
    """The ``%lash sql`` query that reads a call's stored ``column``."""
    where = f"SELECT {column} FROM tool_calls"
    if isinstance(call_id, str) and call_id:
        where += " WHERE call_id = '" + call_id.replace("'", "''") + "'"
    return where


def printed_markdown(text: str) -> str:
    """A call's printed text as an indented code block of the record's markdown: a fence
    longer than any backtick run in it, so the text cannot end the block."""
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return f"  printed:\n{fence}\n{text.rstrip(chr(10))}\n{fence}"
