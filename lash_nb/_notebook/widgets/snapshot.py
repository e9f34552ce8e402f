"""Self-contained HTML of a finished view: what a saved notebook keeps and shows with no kernel.

JupyterLab and Notebook 7 do not save widget state by default, so a widget output in a saved
notebook reads "Error displaying widget: model not found" once the kernel is gone. A finished
turn therefore replaces its widget output (``update_display``) with the bundle built here:
``text/html`` (semantic HTML + one ``<style>`` block scoped to ``.lash-*`` classes, colours from
``--jp-*`` theme variables with fallbacks that read on light and dark backgrounds; no script, no
buttons) and ``text/plain`` (the turn as markdown text, ADR 182). JupyterLab, Notebook 7,
nbconvert, nbviewer, GitHub and VS Code render the HTML; a terminal prints the text.

Every piece of outside text (prompt, tool arguments and output, errors) is HTML-escaped, its
terminal escapes and control characters dropped first (``untrusted.visible``); prose is
rendered by :func:`render_markdown`, which does the same and escapes raw HTML. The plain
form keeps the model's markdown as written (plain text is never markup); the live widget's
``text/markdown`` has its raw HTML escaped (``untrusted.inert_markdown``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .assets import css_for
from .fold import UNNAMED, approval_note
from .markdown import render_markdown
from .untrusted import visible

FINAL_STATUSES = ("done", "stopped", "failed")


def esc(text: Any) -> str:
    return html.escape(visible("" if text is None else str(text)), quote=True)


def style_block(markup: str) -> str:
    """The ``<style>`` a record carries: the rules of ``turn.css`` its own markup can use
    (``assets.css_for``, ADR 189)."""
    return f"<style>{css_for('turn.css', markup)}</style>"


def outcome_class(outcome: str) -> str:
    if not outcome:
        return ""
    if outcome.startswith("finished"):
        return "lash-ok"
    if outcome == "stopped: cancelled":
        return "lash-cancelled"
    return "lash-bad"


def final_status(outcome: str) -> str:
    """The badge word of a finished turn: a stopped turn never says ``done``."""
    if outcome.startswith("finished"):
        return "done"
    if outcome == "stopped: cancelled":
        return "stopped"
    return "failed"


def usage_line(usage: Mapping[str, Any], iterations: int = 0, elapsed_ms: float = 0.0,
               cost: Mapping[str, Any] | None = None) -> str:
    parts: list[str] = []
    if usage:
        parts += [f"{usage.get('input_tokens', 0) or 0} in", f"{usage.get('output_tokens', 0) or 0} out"]
        for key, label in (("cache_read_input_tokens", "cache read"),
                           ("cache_write_input_tokens", "cache write"),
                           ("reasoning_output_tokens", "reasoning")):
            if usage.get(key):
                parts.append(f"{usage[key]} {label}")
        if usage.get("estimated"):
            parts.append("estimated")
    if iterations:
        parts.append(f"{iterations} model call{'' if iterations == 1 else 's'}")
    if elapsed_ms:
        parts.append(f"{elapsed_ms / 1000:.1f} s")
    if cost and cost.get("text"):
        parts.append(str(cost["text"]))
    return " · ".join(parts)


def _json(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    try:
        return json.dumps(v, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(v)


WORDS = "word-break: normal"  # a prompt's rows break between words (turn.css has it too)
BOX = "max-height: 20em; overflow: auto"  # an opened tool row's output (turn.css has it too)
TOOL_ICONS = {"running": "⟳", "done": "✓", "failed": "✗", "cancelled": "■", "waiting": "?",
              "denied": "⊘"}


def tool_row_html(b: Mapping[str, Any]) -> str:
    status = str(b.get("status") or "")
    args = _json(b.get("args"))
    short = args if len(args) <= 80 else args[:77] + "…"
    dur = b.get("duration_ms")
    dur_html = f'<span class="lash-tool-dur">{float(dur):.0f} ms</span>' if dur is not None else ""
    out = b.get("output")
    # the bound in the tag too: a page that sanitises the style block away (an untrusted
    # notebook) keeps allowed inline styles, and 20,000 characters stay a box (ADR 182)
    out_html = (f'<pre class="lash-tool-output" style="{BOX}">{esc(_json(out))}</pre>'
                if out is not None else "")
    note = approval_note(b)
    approval_html = f' <span class="lash-tool-approval">{esc(note)}</span>' if note else ""
    printed = b.get("printed")
    # what the call printed (ADR 197): said in the summary, shown in a box of its own
    printed_html = (f'<div class="lash-tool-printed-head">printed</div><pre class="lash-tool-printed" '
                    f'style="{BOX}">{esc(printed)}</pre>' if printed else "")
    said = ' <span class="lash-tool-said">· printed</span>' if printed else ""
    return (f'<details class="lash-tool lash-tool-{esc(status)}"><summary>'
            f'<span class="lash-tool-icon">{TOOL_ICONS.get(status, "•")}</span> '
            f'<span class="lash-tool-name">{esc(b.get("name") or UNNAMED)}</span> '
            f'<span class="lash-tool-args">{esc(short)}</span> '
            f'<span class="lash-tool-status">{esc(status)}</span>{said}{approval_html} {dur_html}'
            f'</summary><pre class="lash-tool-argsfull">{esc(args)}</pre>{printed_html}{out_html}'
            '</details>')


def block_html(b: Mapping[str, Any], rendered: Mapping[str, str] | None = None) -> str:
    kind = b.get("kind")
    if kind == "prose":
        body = (rendered or {}).get(str(b.get("cid"))) or render_markdown(str(b.get("text") or ""))
        if b.get("interrupted"):
            return (f'<div class="lash-prose lash-interrupted">{body}'
                    '<div class="lash-mark">■ interrupted: the turn was stopped here</div></div>')
        return f'<div class="lash-prose">{body}</div>'
    if kind == "reasoning":
        return (f'<details class="lash-reasoning"><summary>reasoning</summary>'
                f'<div class="lash-reasoning-text">{esc(b.get("text"))}</div></details>')
    if kind == "tool":
        from .attachments import cards_html  # the pictures it returned, under it (ADR 232)

        row = tool_row_html(b) + cards_html(b.get("images") or ())
        child = b.get("child")
        if isinstance(child, Mapping):  # a tool call that ran a child session (run_child)
            return row + child_html(child)
        return row
    if kind == "cell":  # its llm_query child turns nest under it
        kids = "".join(child_html(k) for k in b.get("children") or () if isinstance(k, Mapping))
        return cell_html(b, kids)
    return f'<div class="lash-{esc(kind)}">{esc(b.get("text"))}</div>'


def child_html(child: Mapping[str, Any]) -> str:
    """The child session's turn, nested under the tool row that ran it."""
    head = f"child session {esc(child.get('session_id'))}"
    if child.get("outcome"):
        head += f" · {esc(child.get('outcome'))}"
    inner = "".join(block_html(cb) for cb in child.get("blocks") or ())
    return f'<div class="lash-child"><div class="lash-child-head">{head}</div>{inner}</div>'


_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


def cell_html(b: Mapping[str, Any], children: str = "") -> str:
    """A code-mode cell: its code, output, error and images. Every text is escaped; of the
    rich outputs only PNG images are shown (as data URIs, nothing is fetched); an HTML table
    is shown by its text form, already in the output."""
    status = str(b.get("status") or "running")
    dur = b.get("duration_ms")
    dur_html = f'<span class="lash-tool-dur">{float(dur):.0f} ms</span>' if dur is not None else ""
    images = "".join(
        f'<img class="lash-cell-image" alt="cell output" src="data:image/png;base64,'
        f'{"".join(str(d["image/png"]).split())}">'
        for d in (b.get("displays") or ()) if _BASE64.match(str(d.get("image/png", "")) or "!"))
    parts = [f'<pre class="lash-cell-code">{esc(b.get("code"))}</pre>']
    if b.get("output"):
        parts.append(f'<pre class="lash-cell-output">{esc(b.get("output"))}</pre>')
    if b.get("error"):
        parts.append(f'<pre class="lash-cell-error">{esc(b.get("error"))}</pre>')
    if b.get("note"):
        parts.append(f'<div class="lash-cell-note">{esc(b.get("note"))}</div>')
    return (f'<details open class="lash-cell lash-cell-{esc(status)}"><summary>'
            f'<span class="lash-tool-name">cell {esc(b.get("cell"))}</span> '
            f'<span class="lash-tool-status">{esc(status)}</span> {dur_html}</summary>'
            f'{"".join(parts)}{images}{children}</details>')


def turn_html(state: Mapping[str, Any]) -> str:
    """The finished turn as HTML. ``state`` has the :class:`TurnWidget` trait names."""
    sid, tid = state.get("session_id") or "", state.get("turn_id") or ""
    title = "lash" + (f" · {sid}" if sid else "") + (f" · {tid}" if tid else "")
    status = str(state.get("status") or "")
    outcome = str(state.get("outcome") or "")
    prompt = state.get("prompt") or ""
    blocks: Sequence[Mapping[str, Any]] = state.get("blocks") or ()
    rendered = state.get("html") or {}
    body = "".join(block_html(b, rendered) for b in blocks)
    if not blocks and status not in FINAL_STATUSES:
        body = '<span class="lash-wait">waiting for the model…</span>'
    retries = state.get("retries") or ()
    retry = ""
    if retries:
        r = retries[-1]
        retry = (f'<div class="lash-retry">retry {esc(r.get("attempt"))}/{esc(r.get("max_attempts"))} '
                 f'after {esc(r.get("wait_seconds"))}s: {esc(r.get("reason"))}'
                 + (f" ({len(retries)} retries)" if len(retries) > 1 else "") + "</div>")
    usage = usage_line(state.get("usage") or {}, int(state.get("iterations") or 0),
                       float(state.get("elapsed_ms") or 0.0), state.get("cost"))
    badge = (f'<span class="lash-outcome {outcome_class(outcome)}">{esc(outcome)}</span>'
             if outcome else "")
    # <pre>: the prompt keeps its lines where the style block is sanitised away (untrusted);
    # its word-break inline too: there the front end's rule for a <pre> (break-all) applies
    prompt_html = (f'<pre class="lash-prompt" style="{WORDS}">{esc(prompt)}</pre>'
                   if prompt else "")
    from .attachments import cards_html  # (imports esc from here)

    prompt_html += cards_html(state.get("attachments") or ())
    opening = f'<div class="lash-turn lash-static" data-status="{esc(status)}">'
    inner = (f'<div class="lash-head"><span class="lash-title">{esc(title)}</span> '
             f'<span class="lash-status lash-status-{esc(status)}">{esc(status)}</span></div>'
             f'{prompt_html}<div class="lash-body">{body}</div>{retry}'
             f'<div class="lash-foot"><span class="lash-usage">{esc(usage)}</span>'
             f'<span class="lash-sep"> · </span>{badge}</div></div>')
    return opening + style_block(opening + inner) + inner


def bundle(html_text: str, plain: str) -> dict[str, str]:
    """The kernel-free display bundle (no widget mime type): the HTML every notebook front end
    renders, and the markdown text as plain text for the rest (a terminal, a reader without
    HTML). No ``text/markdown``: no front end picks it over ``text/html``, and it was one
    more copy of the answer in the saved file (ADR 182)."""
    return {"text/html": html_text, "text/plain": plain}


__all__ = ["bundle", "cut_turn_note", "final_status", "turn_html", "usage_line"]


# ---------------------------------------------------------------------------- panels
# A panel (tool catalog, queue) is a live control, so it cannot be replaced when "finished".
# It is displayed as two outputs: this snapshot (kept current with update_display) and the
# widget. While the widget lives it hides the snapshot; in a saved notebook without widget state
# the snapshot shows the panel as it was, and its style hides the whole row of the widget
# output right after it, whatever that output reads while it has no view: "Loading widget..."
# until the page's kernel is connected (a kernel slow to start, none at all), "Error displaying
# widget: model not found" after, and its "[N]:" prompt (an empty row otherwise). The widget
# renderer (a Lumino panel, ``lm-Panel``) holds only that text then; a view it made is a child
# node, so a live or restored panel's row does not match (ADR 214).
PANEL_STYLE = (  # :has() may not nest: the row has a renderer, and not one with a child node
    ".jp-OutputArea-child:has(.lash-snapshot) + "
    ".jp-OutputArea-child:has(> .jp-OutputArea-output.lm-Panel)"
    ":not(:has(> .jp-OutputArea-output > *)) { display: none; }"
)


def _panel(panel_id: str, title: str, note: str, table: str) -> str:
    opening = f'<div class="lash-panel lash-snapshot" data-panel="{esc(panel_id)}">'
    inner = (f'<div class="lash-panel-head"><span>{esc(title)}</span><span class="lash-sep"> · </span>'
             f'<span class="lash-muted">{esc(note)}</span></div>{table}</div>')
    return opening + f"<style>{css_for('turn.css', opening + inner)}\n{PANEL_STYLE}</style>" + inner


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{esc(classes[i]) if i < len(classes) else ""}">'
        + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
        for i, r in enumerate(rows)
    )
    return f'<table class="lash-table"><tr>{th}</tr>{body}</table>'


def grouped(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Tools grouped by ``group`` (groups in order of first appearance, tools in their order)."""
    order: dict[str, int] = {}
    for t in tools:
        order.setdefault(str(t.get("group") or ""), len(order))
    return sorted(tools, key=lambda t: order[str(t.get("group") or "")])


def tools_html(panel_id: str, tools: Sequence[Mapping[str, Any]]) -> str:
    members = sum(1 for t in tools if t.get("member"))
    rows, classes, group = [], [], None
    for t in grouped(tools):
        if t.get("group") and t.get("group") != group:
            group = t.get("group")
            n = [x for x in tools if x.get("group") == group]
            label = (f"<strong>{esc(group)}</strong> <span class=\"lash-muted\">"
                     f"{sum(1 for x in n if x.get('member'))} of {len(n)} active</span>")
            rows.append([label, "", "", ""])
            classes.append("lash-group")
        approval = str(t.get("approval") or "always")
        rows.append([
            "✓" if t.get("member") else "\u2013",  # an en dash: "not a member"
            f"<code>{esc(t.get('name'))}</code>" + (
                "" if approval == "always" else f' <span class="lash-tool-approval">{esc(approval)}</span>'),
            esc(schema_summary(t.get("input_schema") or {})),
            esc(t.get("description")) + ("" if t.get("implemented", True) else
                                         ' <span class="lash-missing">no implementation in this kernel</span>'),
        ])
        classes.append("")
    return _panel(panel_id, "Tool catalog", f"{members} of {len(tools)} active · snapshot; "
                  "run the cell for the live toggles",
                  _table(["active", "tool", "arguments", "description"], rows, classes))


def schema_summary(schema: Mapping[str, Any]) -> str:
    props = schema.get("properties") or {}
    req = set(schema.get("required") or ())
    out = []
    for k, v in props.items():
        t = f": {v.get('type')}" if isinstance(v, Mapping) and v.get("type") else ""
        out.append(f"{k}{'' if k in req else '?'}{t}")
    return ", ".join(out)


def queue_html(panel_id: str, session_id: str, batches: Sequence[Mapping[str, Any]],
               status: str = "", ran: Sequence[Mapping[str, Any]] = ()) -> str:
    rows = [[
        f"<code>{esc(b.get('batch_id'))}</code>", esc(b.get("text")),
        esc(b.get("delivery_policy")), esc(b.get("slot_policy")), esc(b.get("merge_key") or ""),
        esc(b.get("status") or ("claimed" if b.get("claimed") else "pending"))
        + (f": {esc(b.get('error'))}" if b.get("error") else ""),
    ] for b in batches]
    classes = [f"lash-row-{b.get('status')}" if b.get("status") else "" for b in batches]
    title = f"Queue{' · ' + session_id if session_id else ''}: {queue_counts(batches)}"
    ran_html = "".join(r.get("html", "") for r in ran)
    note = (status + " · " if status else "") + "snapshot; run the cell for the live buttons"
    table = (_table(["batch", "input", "delivery", "slot", "merge key", "status"], rows, classes)
             if batches else '<div class="lash-muted">nothing queued</div>')
    return _panel(panel_id, title, note,
                  table + (f'<div class="lash-ran">{ran_html}</div>' if ran_html else ""))


def queue_counts(batches: Sequence[Mapping[str, Any]]) -> str:
    """``"1 pending, 1 claimed, 1 failed"``: a parked (failed) or claimed batch is not pending
    (queue.js draws the same words)."""
    counts = {"pending": 0, "claimed": 0, "failed": 0}
    for b in batches:
        state = b.get("status") or ("claimed" if b.get("claimed") else "pending")
        counts[state if state in counts else "pending"] += 1
    return ", ".join([f"{counts['pending']} pending"]
                     + [f"{n} {k}" for k, n in counts.items() if k != "pending" and n])


def turn_fragment(state: Mapping[str, Any]) -> str:
    """A turn's HTML without the style block (inside a panel that has it)."""
    html_text = turn_html(state)
    start, end = html_text.find("<style>"), html_text.find("</style>")
    return html_text[:start] + html_text[end + len("</style>"):]


# ---------------------------------------------------------------------------- a cut turn
# A live turn is displayed as its widget, then this note. The widget's view hides the note while
# it lives, and the turn's end empties it (NOTE_GONE). A notebook saved while the turn ran (the
# kernel restarted, shut down or died mid-turn) keeps the widget output: its style hides the
# row of that output whatever it reads while it has no view (ADR 214's rule for the panels):
# "Loading widget..." until the page's kernel is connected (for good with none), "Error
# displaying widget: model not found" after. A view is a child node of the renderer (a Lumino
# panel, ``lm-Panel``), so a live turn's row still shows (ADR 217).
CUT_STYLE = (  # :has() may not nest: the row is before the note, and its renderer is empty
    ".jp-OutputArea-child:has(+ .jp-OutputArea-child .lash-cut)"
    ":has(> .jp-OutputArea-output.lm-Panel)"
    ":not(:has(> .jp-OutputArea-output > *)) { display: none; }"
)
# the live widget's text in a kernel, for a renderer that draws no widget (GitHub, nbconvert):
# its cut-turn note follows with the prompt and what became of the turn (not twice the prompt)
LIVE_FALLBACK = "lash turn: a live view, drawn only while its kernel runs the turn (see below)"


def how_it_ended(session_id: str = "", turn_id: str = "") -> str:
    """What a note written before the turn's end can say of that end: not which one came (a
    restart, a shutdown, a kill, or none: the notebook saved mid-run), but where it is known
    (the store) and what each end leaves there (ADR 195, 198, 212, 217)."""
    replay = "%lash replay" + (f" {turn_id}" if turn_id else "") + (
        f" --session {session_id}" if session_id and turn_id else "")
    return ("The store knows: " + replay + " shows the turn as stored: stopped by the kernel's "
            "restart, shutdown or interrupt (what it had streamed is kept), finished (the turn "
            "ended after this notebook was saved), or, if the kernel was killed or crashed, "
            "closed by the next %lash open with what it had committed (its prompt at least)")


def cut_text(session_id: str = "", turn_id: str = "") -> str:
    return ("this turn did not end before this notebook was saved, or before its kernel went; "
            "this note was written while it ran and cannot tell which, nor how the turn "
            "ended. " + how_it_ended(session_id, turn_id))


CUT_TEXT = cut_text()
CUT_LOOK = (  # a few rules of turn.css, not all of it: the note is in every live turn's output
    ".lash-cut { border: 1px solid rgba(127,127,127,.4); border-radius: 6px; padding: 8px 10px; "
    "max-width: 900px; overflow-wrap: anywhere; } .lash-cut .lash-prompt { font-style: italic; "
    "white-space: pre-wrap; max-height: 7.5em; overflow-y: auto; margin: 2px 0 6px; } "
    ".lash-cut .lash-title { font-weight: 600; }"
)
# its own rule of turn.css hides its output row: a record next to it carries only its own rules
_GONE = '<div class="lash-gone" hidden></div>'
NOTE_GONE = f"<style>{css_for('turn.css', _GONE)}</style>{_GONE}"


def still_running_text(count: int | None, session_id: str = "", turn_id: str = "") -> str:
    """The note of a turn still running when cell ``[count]`` ended (ADR 191): a run of the
    whole notebook ends there, and the note is what its saved file keeps of the turn."""
    cell = f"cell [{count}]" if count is not None else "a cell"
    return (f"this turn was still running when {cell} ended, the last cell that ended before "
            "this notebook was saved; a run of the whole notebook shuts the kernel down after "
            "its last cell: end the notebook with a %lash wait cell to keep the turn's record "
            "in it. " + how_it_ended(session_id, turn_id))


def cut_turn_note(note_id: str, session_id: str, prompt: str, text: str = CUT_TEXT,
                  turn_id: str = "") -> tuple[str, str]:
    """The note's ``text/html`` and ``text/plain``."""
    head = (f"lash · {session_id}" if session_id else "lash turn") + (
        f" · {turn_id}" if turn_id else "")
    html_ = (f'<div class="lash-turn lash-snapshot lash-cut" data-panel="{esc(note_id)}">'
             f"<style>{CUT_STYLE}\n{CUT_LOOK}</style>"
             f'<div class="lash-head"><span class="lash-title">{esc(head)}</span></div>'
             + (f'<div class="lash-prompt">{esc(prompt)}</div>' if prompt else "")
             + f'<div class="lash-error">{esc(text)}</div></div>')
    return html_, f"{head}: {text}"
