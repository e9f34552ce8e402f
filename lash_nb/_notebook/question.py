"""A tool call waiting for approval in a cell that shows no turn widget (ADR 204).

``await s.turn(x).run()`` in a cell shows nothing of the turn: before this module, an ``ask``
call with no approver looked like a frozen cell. The runtime calls :func:`present` (on the
kernel's loop, in the awaiting cell's context, once the question has stayed open
``NOTICE_AFTER_S``) when nothing else can answer it: no approver, not a worker, no live turn
widget, no script awaiting ``approvals().next()``.

- ipykernel >= 7.4 hands a widget's message to a cell that awaits: the question is shown under
  the cell as its one line and Approve / Deny buttons (ipywidgets, whose front end every
  anywidget install has). A click decides as the turn widget's buttons do (``by="user"``).
  When the question is decided by anyone (a click, ``decide``, a stop) the buttons are closed
  and the output becomes the one line plus what became of it, text that a saved notebook keeps
  without a kernel.
- An older kernel handles the click only after the cell, which never ends: no buttons (they
  would not work), the line says what to do instead, on the cell's stderr.
"""

from __future__ import annotations

import asyncio
import html
import sys

from .._runtime.approval import ApprovalRequest, waiting_line
from .extension import _ipykernel_version, serves_widgets_mid_cell

_settling: set[asyncio.Future[None]] = set()  # the buttons' closers, held until they run


def present(request: ApprovalRequest) -> bool:
    """Show ``request`` under the running cell; False when there is no kernel to show it in."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        return False
    if not serves_widgets_mid_cell():
        print(f"{waiting_line(request)}; this ipykernel {_ipykernel_version()} cannot take an "
              "answer while the cell awaits: interrupt the kernel (the turn ends stopped: "
              "cancelled), then set s.approvals().set_approver(fn), or run the turn as a task "
              "(task = asyncio.ensure_future(s.turn(...).run())) and answer in the next cell "
              "with (await s.approvals().next()).approve(); ipykernel >= 7.4 shows Approve / "
              "Deny here", file=sys.stderr)
        return True
    _show_buttons(request)
    return True


def _show_buttons(request: ApprovalRequest) -> None:
    import ipywidgets  # type: ignore[import-untyped]  # no py.typed; only this module uses it
    from IPython.display import display

    head = waiting_line(request)
    line = (f"{head}; answer here, or interrupt the kernel to stop the turn "
            "(set s.approvals().set_approver(fn) before a turn to answer in code)")
    approve = ipywidgets.Button(description="Approve", button_style="primary")
    deny = ipywidgets.Button(description="Deny", button_style="danger")
    approve.on_click(lambda _b: request.approve(by="user"))
    deny.on_click(lambda _b: request.deny(by="user"))
    text = ipywidgets.HTML(f'<div style="white-space: normal">{html.escape(line)}</div>')
    row = ipywidgets.HBox([approve, deny])
    box = ipywidgets.VBox([text, row])
    handle = display(box, display_id=True)

    async def settle() -> None:
        decision = await request
        for w in (approve, deny, text, row, box):
            w.close()  # no live model left behind: the saved output is the text below
        if handle is not None:
            handle.update({"text/plain": f"{head}: {decision.decision} by {decision.by}"},
                          raw=True)

    closer = asyncio.ensure_future(settle())  # ends with the question: a stop decides it too
    _settling.add(closer)
    closer.add_done_callback(_settling.discard)


__all__ = ["present"]
