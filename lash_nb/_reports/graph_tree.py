"""The session graph drawn as a tree: branches visible, the active path marked.

``GraphTree.from_frame(graph_frame(source))`` draws one session. A chain of messages stays at
one indentation level; only a node with several children (a branch point) indents its
children, drawn with ``├─`` / ``└─``. ``●`` marks the active path (the conversation the model
sees), ``○`` the other branches. Text is cut to one line of ``width`` characters, without
terminal escapes, control or bidi characters (``_core/visible.py``). The same
drawing is the plain-text and (escaped, ``<pre>``) HTML form, so a saved notebook shows it
without a kernel.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._core.visible import visible


@dataclass(frozen=True)
class GraphTree:
    session_id: str
    lines: tuple[str, ...]
    nodes: int
    branch_points: int
    frame: Any = None  # the flat graph_frame it was drawn from

    @classmethod
    def from_frame(cls, frame: Any, *, width: int = 80) -> GraphTree:
        rows = frame.to_dict("records") if hasattr(frame, "to_dict") else list(frame)
        tree = cls.from_rows(rows, width=width)
        return cls(tree.session_id, tree.lines, tree.nodes, tree.branch_points, frame)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], *, width: int = 80) -> GraphTree:
        rows = list(rows)
        ids = {r["node_id"] for r in rows}
        children: dict[str | None, list[Mapping[str, Any]]] = {}
        for r in rows:  # rows come in insertion order: children keep it
            parent = r.get("parent_node_id")
            children.setdefault(parent if parent in ids else None, []).append(r)
        lines: list[str] = []
        branch_points = sum(1 for k, v in children.items() if k is not None and len(v) > 1)

        def label(r: Mapping[str, Any]) -> str:
            mark = "●" if r.get("on_active_path") else "○"
            who = r.get("role") or r.get("kind") or "?"
            turn = f" [{r['turn_id']}]" if r.get("turn_id") else ""
            text = " ".join(visible(str(r.get("text") or "")).split())
            if len(text) > width:
                text = text[: width - 1] + "…"
            return f"{mark} {who}{turn} {text}".rstrip()

        def draw(chain_start: Mapping[str, Any], prefix: str, first: str) -> None:
            node: Mapping[str, Any] | None = chain_start
            lead = first
            while node is not None:
                lines.append(lead + label(node))
                kids = children.get(node["node_id"], [])
                if len(kids) == 1:
                    node, lead = kids[0], prefix
                    continue
                for i, kid in enumerate(kids):
                    last = i == len(kids) - 1
                    draw(kid, prefix + ("  " if last else "│ "), prefix + ("└─" if last else "├─"))
                node = None

        roots = children.get(None, [])
        for i, root in enumerate(roots):
            if len(roots) == 1:
                draw(root, "", "")
            else:
                last = i == len(roots) - 1
                draw(root, "  " if last else "│ ", "└─" if last else "├─")
        sid = str(rows[0]["session_id"]) if rows else ""
        return cls(sid, tuple(lines), len(rows), branch_points)

    def header(self) -> str:
        points = f"{self.branch_points} branch point(s)" if self.branch_points else "no branches"
        return (f"session graph {self.session_id!r}: {self.nodes} node(s), {points} "
                "(● active path, ○ other branch)")

    def __str__(self) -> str:
        return "\n".join([self.header(), *self.lines])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        body = "\n".join(html.escape(line) for line in self.lines)
        return (f"<div><b>{html.escape(self.header())}</b>"
                f"<pre style=\"white-space: pre; line-height: 1.35\">{body}</pre></div>")

    def to_dataframe(self) -> Any:
        return self.frame


__all__ = ["GraphTree"]
