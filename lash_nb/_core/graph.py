"""The session graph: an append-only tree of nodes plus a leaf.

Theory of operation
- Nodes are immutable and only ever appended. ``append`` parents the new node on the current
  leaf and advances the leaf. ``branch_to(node_id)`` moves the leaf to any existing node; the
  next append starts a new branch there. Nodes off the active path are orphans (kept).
- The active path (leaf back to a root, returned root-first) is cached as a list that is only
  ever *extended in place*; every other change (branch, replace, tombstone) builds a new list.
  A :class:`GraphView` therefore captures ``(list, length)`` in O(1) and stays valid forever,
  which is what makes read views and model requests cheap at any history length.
- ``replace_required`` is set when the next commit must rewrite the stored graph in full
  (open_fresh, active-path residency heal, healed orphan leaf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from .records import Message


@dataclass(frozen=True, slots=True)
class SessionNode:
    node_id: str
    parent_node_id: str | None
    kind: str  # message | event
    message: Message | None = None
    payload: Mapping[str, Any] | None = None
    created_at_ms: int = 0
    turn_id: str | None = None

    @property
    def role(self) -> str | None:
        return self.message.role.value if self.message else None

    def content_json(self) -> dict[str, Any]:
        if self.message is not None:
            return self.message.to_json()
        return dict(self.payload or {})

    @classmethod
    def from_row(
        cls,
        node_id: str,
        parent_node_id: str | None,
        kind: str,
        content: Mapping[str, Any],
        created_at_ms: int,
        turn_id: str | None,
    ) -> SessionNode:
        if kind == "message":
            return cls(node_id, parent_node_id, kind, Message.from_json(content), None,
                       created_at_ms, turn_id)
        return cls(node_id, parent_node_id, kind, None, content, created_at_ms, turn_id)


class GraphView(Sequence[Message]):
    """An O(1) snapshot of the active path's messages (a sequence of :class:`Message`).

    It captures the path's message list and its current length; the list is only ever
    extended in place, so indexing and ``len`` stay O(1) and the snapshot never changes."""

    __slots__ = ("_path", "_n", "_msgs", "_m")

    def __init__(self, path: list[SessionNode], n: int, msgs: list[Message], m: int) -> None:
        self._path, self._n, self._msgs, self._m = path, n, msgs, m

    def __len__(self) -> int:
        return self._m

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return self._msgs[: self._m][i]
        if i < 0:
            i += self._m
        if not 0 <= i < self._m:
            raise IndexError("message index out of range")
        return self._msgs[i]

    def __iter__(self) -> Iterator[Message]:
        msgs, m = self._msgs, self._m
        for i in range(m):
            yield msgs[i]

    def nodes(self) -> list[SessionNode]:
        return self._path[: self._n]


class SessionGraph:
    def __init__(self, nodes: Sequence[SessionNode] = (), leaf_node_id: str | None = None) -> None:
        self._nodes: dict[str, SessionNode] = {}
        self._order: list[SessionNode] = []
        for n in nodes:
            self._nodes[n.node_id] = n
            self._order.append(n)
        self.leaf_node_id = leaf_node_id if leaf_node_id is not None else (
            self._order[-1].node_id if self._order else None
        )
        self.replace_required = False
        self._path: list[SessionNode] = []
        self._path_msgs: list[Message] = []
        if self.leaf_node_id is not None and self.leaf_node_id not in self._nodes:
            self._heal_orphaned_leaf()
        self._rebuild_path()

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def get(self, node_id: str) -> SessionNode | None:
        return self._nodes.get(node_id)

    def nodes(self) -> list[SessionNode]:
        return list(self._order)

    def active_path(self) -> list[SessionNode]:
        return list(self._path)

    def view(self) -> GraphView:
        return GraphView(self._path, len(self._path), self._path_msgs, len(self._path_msgs))

    def messages(self) -> list[Message]:
        return list(self._path_msgs)

    def orphaned_node_ids(self) -> list[str]:
        on_path = {n.node_id for n in self._path}
        return [n.node_id for n in self._order if n.node_id not in on_path]

    def children(self, node_id: str | None) -> list[SessionNode]:
        return [n for n in self._order if n.parent_node_id == node_id]

    # ------------------------------------------------------------------ writes
    def append(self, node: SessionNode) -> SessionNode:
        if node.node_id in self._nodes:
            raise ValueError(f"node id {node.node_id!r} already in the session graph")
        if node.parent_node_id != self.leaf_node_id:
            raise ValueError("appended nodes must parent on the current leaf")
        self._nodes[node.node_id] = node
        self._order.append(node)
        self.leaf_node_id = node.node_id
        self._path.append(node)
        if node.message is not None:
            self._path_msgs.append(node.message)
        return node

    def branch_to(self, node_id: str | None) -> None:
        """Move the leaf to ``node_id`` (``None`` = before the first node)."""
        if node_id is not None and node_id not in self._nodes:
            raise KeyError(f"no node {node_id!r} in this session graph")
        self.leaf_node_id = node_id
        self._rebuild_path()

    def fork_current_path(self) -> SessionGraph:
        g = SessionGraph(self._path, self.leaf_node_id)
        return g

    def tombstone(self, node_ids: Sequence[str]) -> None:
        drop = set(node_ids) - {n.node_id for n in self._path}
        self._order = [n for n in self._order if n.node_id not in drop]
        for d in drop:
            self._nodes.pop(d, None)

    # ------------------------------------------------------------------ internals
    def _heal_orphaned_leaf(self) -> None:
        for n in reversed(self._order):
            if n.message is not None:
                self.leaf_node_id = n.node_id
                break
        else:
            self.leaf_node_id = self._order[-1].node_id if self._order else None
        self.replace_required = True

    def _rebuild_path(self) -> None:
        path: list[SessionNode] = []
        cur = self.leaf_node_id
        seen: set[str] = set()
        while cur is not None and cur in self._nodes and cur not in seen:
            seen.add(cur)
            node = self._nodes[cur]
            path.append(node)
            cur = node.parent_node_id
        path.reverse()
        self._path = path  # always new lists: existing GraphViews stay valid
        self._path_msgs = [n.message for n in path if n.message is not None]


@dataclass(frozen=True)
class TreeNode:
    node: SessionNode
    active: bool
    children: list[TreeNode] = field(default_factory=list)


def message_tree(graph: SessionGraph) -> list[TreeNode]:
    """Messages as a tree (roots first), with an ``active`` flag for the active path."""
    on_path = {n.node_id for n in graph.active_path()}
    built: dict[str, TreeNode] = {}
    roots: list[TreeNode] = []
    for n in graph.nodes():
        t = TreeNode(n, n.node_id in on_path)
        built[n.node_id] = t
        parent = built.get(n.parent_node_id) if n.parent_node_id else None
        (parent.children if parent else roots).append(t)
    return roots
