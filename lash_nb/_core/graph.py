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
- A graph opened from a store's active-path read (:class:`StoredNodes`: the path's rows kept
  as they were fetched) makes no node objects until something asks for nodes: its messages
  are decoded straight from the rows, and appends go to a tail. The first call that needs
  nodes (``nodes``, ``get``, ``branch_to``, ...) makes them all at once, reusing any message
  already decoded, and from then on the graph is the plain one above. Views taken before
  that resolve to the same list.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, islice
from operator import ne
from typing import Any

from .gc_pause import gc_paused
from .json_text import encoder
from .records import Message, loads_stored, messages_from_stored


class SessionNode:
    """One immutable node of the graph: a message, or an event (``payload``).

    A node read from a store may keep its content as the stored JSON text and decode it on
    first use (``stored_content``): opening a long session then costs no per-message decoding
    until something reads the messages."""

    __slots__ = (
        "_message",
        "_payload",
        "_raw",
        "created_at_ms",
        "kind",
        "node_id",
        "parent_node_id",
        "turn_id",
    )

    def __init__(
        self,
        node_id: str,
        parent_node_id: str | None,
        kind: str,  # message | event
        message: Message | None = None,
        payload: Mapping[str, Any] | None = None,
        created_at_ms: int = 0,
        turn_id: str | None = None,
        stored_content: str | None = None,
    ) -> None:
        """``stored_content``: the content as stored JSON text, decoded when first read
        (then ``message`` and ``payload`` are left None here)."""
        self.node_id = node_id
        self.parent_node_id = parent_node_id
        self.kind = kind
        self._message = message
        self._payload = payload
        self.created_at_ms = created_at_ms
        self.turn_id = turn_id
        self._raw = stored_content

    def _decode(self) -> None:
        raw = self._raw
        assert raw is not None
        content = loads_stored(raw)
        self._raw = None
        if self.kind == "message":
            self._message = Message.from_json(content)
        else:
            self._payload = content

    @property
    def message(self) -> Message | None:
        if self._raw is not None:
            self._decode()
        return self._message

    @property
    def payload(self) -> Mapping[str, Any] | None:
        if self._raw is not None:
            self._decode()
        return self._payload

    @property
    def role(self) -> str | None:
        message = self.message
        return message.role.value if message else None

    def content_json(self) -> dict[str, Any]:
        message = self.message
        if message is not None:
            return message.to_json()
        return dict(self.payload or {})

    def content_text(self) -> str:
        """The content as JSON text (the stored text itself when not yet decoded)."""
        if self._raw is not None:
            return self._raw
        return _dumps(self.content_json())

    def _key(self) -> tuple[Any, ...]:
        return (self.node_id, self.parent_node_id, self.kind, self.message, self.payload,
                self.created_at_ms, self.turn_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionNode):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.node_id, self.parent_node_id, self.kind, self.created_at_ms, self.turn_id))

    def __repr__(self) -> str:
        return (f"SessionNode(node_id={self.node_id!r}, parent_node_id={self.parent_node_id!r}, "
                f"kind={self.kind!r}, message={self.message!r}, payload={self.payload!r}, "
                f"created_at_ms={self.created_at_ms!r}, turn_id={self.turn_id!r})")

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


_dumps = encoder(separators=(",", ":"), default=str)  # built once (json_text.py)
class StoredNodes(Sequence[SessionNode]):
    """Node rows as a store read them, in stored order: ``(node_id, kind or None for
    "message", created_at_ms, turn_id, content as stored JSON text, parent_node_id)``. An
    active-path read leaves the parent out: its rows are the path, root first, each node
    parented on the row before it (the root on ``root_parent``). Node objects are made on
    first access, all at once; until then the rows are all there is."""

    __slots__ = ("_made", "root_parent", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], root_parent: str | None = None) -> None:
        self.rows = rows
        self.root_parent = root_parent
        self._made: list[SessionNode] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        return self._made[i] if self._made is not None else self.nodes()[i]

    def __iter__(self) -> Iterator[SessionNode]:
        return iter(self._made if self._made is not None else self.nodes())

    def __repr__(self) -> str:
        return f"StoredNodes({len(self.rows)} nodes)"

    @property
    def leaf_id(self) -> str | None:
        return self.rows[-1][0] if self.rows else None

    def walk(self, leaf: str) -> list[range] | None:
        """The rows of the path from the root to ``leaf`` as runs of rows, root first; None
        when ``leaf`` is not a row or the parent links loop (the eager graph handles those).
        Appends leave each node's parent in the row before it, so the rows fall into runs;
        the walk goes run by run (one step per rewind or clone, not one per node)."""
        rows = self.rows
        n = len(rows)
        if not n:
            return None
        if len(rows[0]) < 6:  # an active path: every row
            return [range(n)] if rows[-1][0] == leaf else None
        ids = [r[0] for r in rows]
        # row i starts a run when its parent is not the row before it
        starts = [0, *compress(range(1, n), map(ne, (r[5] for r in rows[1:]), ids))]
        index: dict[str, int] | None = None  # made on the first jump (a linear graph: none)
        at: int | None = n - 1
        if ids[-1] != leaf:
            index = dict(zip(ids, range(n), strict=True))
            at = index.get(leaf)
        runs: list[range] = []
        taken = 0
        while at is not None:
            start = starts[bisect_right(starts, at) - 1]
            runs.append(range(start, at + 1))
            taken += at + 1 - start
            if taken > n:
                return None  # the links loop
            if (parent := rows[start][5]) is None:
                break
            if index is None:
                index = dict(zip(ids, range(n), strict=True))
            at = index.get(parent)  # None: a parent that is gone, so this is the root
        runs.reverse()
        return runs or None

    def messages(self, path: Sequence[int] | None = None) -> list[Message]:
        """The messages of the rows at ``path`` (None: every row), decoded (not kept here)."""
        rows = self.rows
        if self._made is not None:
            made = self._made if path is None else [self._made[i] for i in path]
            return [m for n in made if n.kind == "message" and (m := n.message) is not None]
        if path is None:
            texts = [r[4] for r in rows if r[1] is None]
        else:
            texts = [r[4] for i in path if (r := rows[i])[1] is None]
        with gc_paused():  # nothing decoded here can form a cycle (gc_pause.py)
            return messages_from_stored(texts)

    def nodes(self, path: Sequence[int] | None = None,
              decoded: Sequence[Message] | None = None) -> list[SessionNode]:
        """The node objects (a new list each call; made once). ``decoded``: the messages
        :meth:`messages` returned for ``path``, taken instead of the stored text."""
        made = self._made
        if made is None:
            rows = self.rows
            at: dict[int, Message] = {}
            if decoded is not None:
                on = range(len(rows)) if path is None else path
                at = dict(zip((i for i in on if rows[i][1] is None), decoded, strict=False))
            whole = bool(rows) and len(rows[0]) > 5
            parent = self.root_parent
            made = []
            for i, r in enumerate(rows):
                if whole:
                    parent = r[5]
                m = at.get(i) if at else None
                if m is not None:
                    made.append(SessionNode(r[0], parent, "message", m, None, r[2], r[3]))
                else:
                    made.append(SessionNode(r[0], parent, r[1] or "message", None, None, r[2],
                                            r[3], r[4]))
                parent = r[0]
            self._made = made
        return list(made)


class _PendingPath:
    """The path list of a graph whose nodes are not made yet (a view taken then asks it)."""

    __slots__ = ("graph", "path")

    def __init__(self, graph: SessionGraph) -> None:
        self.graph: SessionGraph | None = graph
        self.path: list[SessionNode] | None = None

    def resolve(self) -> list[SessionNode]:
        if self.path is None:
            assert self.graph is not None
            self.graph._ready()
        assert self.path is not None
        return self.path


class GraphView(Sequence[Message]):
    """An O(1) snapshot of the active path's messages (a sequence of :class:`Message`).

    It captures the path's message list and its current length; the list is only ever
    extended in place, so indexing and ``len`` stay O(1) and the snapshot never changes."""

    __slots__ = ("_m", "_msgs", "_n", "_path")

    def __init__(self, path: list[SessionNode] | _PendingPath, n: int, msgs: list[Message],
                 m: int) -> None:
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
        return islice(self._msgs, self._m)  # the list only grows: its first m stay put

    def nodes(self) -> list[SessionNode]:
        path = self._path
        if isinstance(path, _PendingPath):
            path = path.resolve()
        return path[: self._n]

    def backing(self) -> tuple[list[Message], int]:
        """The list this view reads and its length. While the list is the graph's path, it
        is only ever extended in place (a branch makes a new one), so a consumer may keep
        work done for ``list[:n]`` and redo only what a later view adds (the providers'
        request encoding does)."""
        return self._msgs, self._m


class SessionGraph:
    @classmethod
    def from_active_path(cls, path: Sequence[SessionNode]) -> SessionGraph:
        """A graph of just an active path (root first, as an active-path load returns it):
        the leaf is its last node, so no walk over parent links is needed. A
        :class:`StoredNodes` whose nodes are not made yet is kept as it is (see the module)."""
        if isinstance(path, StoredNodes) and path.leaf_id is not None:
            return cls.from_stored(path, path.leaf_id)
        g = cls()
        for n in path:
            g._nodes[n.node_id] = n
        g._order = list(path)
        g._path = list(path)
        g.leaf_node_id = path[-1].node_id if path else None
        return g

    @classmethod
    def from_stored(cls, stored: StoredNodes, leaf_node_id: str | None) -> SessionGraph:
        """A graph of rows as a store read them (see the module): no node objects yet, when
        the leaf is among them and the path to it is a plain walk; else made now."""
        runs = stored.walk(leaf_node_id) if leaf_node_id is not None and stored._made is None else None
        if runs is None:
            return cls(stored.nodes(), leaf_node_id)
        g = cls()
        g._stored, g._pending, g.leaf_node_id = stored, _PendingPath(g), leaf_node_id
        if runs != [range(len(stored))]:
            g._stored_path = [i for run in runs for i in run]
        g._stored_path_len = sum(map(len, runs))
        return g

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
        self._path_msgs: list[Message] | None = None  # built on first read (_messages)
        self._stored: StoredNodes | None = None  # nodes not made yet: the stored rows,
        self._stored_path: list[int] | None = None  # the path's rows among them (None: all),
        self._stored_path_len = 0
        self._tail: list[SessionNode] = []  # then nodes appended since
        self._pending: _PendingPath | None = None
        self._ids: set[str] | None = None
        self._turns: list[str] | None = None  # the distinct turn ids, sorted (made on demand)
        if self.leaf_node_id is not None and self.leaf_node_id not in self._nodes:
            self._heal_orphaned_leaf()
        self._rebuild_path()

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        if self._stored is not None:
            return len(self._stored) + len(self._tail)
        return len(self._order)

    def __contains__(self, node_id: object) -> bool:
        if self._stored is not None:
            if self._ids is None:
                self._ids = {r[0] for r in self._stored.rows}
                self._ids.update(n.node_id for n in self._tail)
            return node_id in self._ids
        return node_id in self._nodes

    def get(self, node_id: str) -> SessionNode | None:
        self._ready()
        return self._nodes.get(node_id)

    def leaf_turn_id(self) -> str | None:
        """The turn id of the leaf node, read without making a stored graph's nodes."""
        stored, leaf = self._stored, self.leaf_node_id
        if leaf is None:
            return None
        if stored is not None:
            if self._tail:
                return self._tail[-1].turn_id
            on = self._stored_path
            i = (on[-1] if on else None) if on is not None else len(stored.rows) - 1
            if i is not None and 0 <= i < len(stored.rows) and stored.rows[i][0] == leaf:
                turn_id: str | None = stored.rows[i][3]
                return turn_id
        node = self.get(leaf)
        return node.turn_id if node is not None else None

    def nodes(self) -> list[SessionNode]:
        self._ready()
        return list(self._order)

    def turn_ids(self) -> Iterator[str | None]:
        """Each node's turn id, read without making a stored graph's nodes."""
        stored = self._stored
        if stored is None:
            return (n.turn_id for n in self._order)
        return chain((r[3] for r in stored.rows), (n.turn_id for n in self._tail))

    def has_turn(self, turn_id: str, *, or_prefix: bool = False) -> bool:
        """A node of turn ``turn_id`` is in the graph (``or_prefix``: or of a turn whose id
        starts with it). The distinct turn ids are sorted once, on the first call, and kept
        as nodes are appended, so a later call costs O(log turns), not a read of the whole
        history (a worker asks before each queued turn, ``queued_turn_id``)."""
        turns = self._turns
        if turns is None:
            turns = self._turns = sorted({t for t in self.turn_ids() if t is not None})
        i = bisect_left(turns, turn_id)
        return i < len(turns) and (turns[i].startswith(turn_id) if or_prefix
                                   else turns[i] == turn_id)

    def active_path(self) -> list[SessionNode]:
        self._ready()
        return list(self._path)

    def view(self) -> GraphView:
        msgs = self._messages()
        if self._pending is not None and self._stored is not None:
            return GraphView(self._pending, self._stored_path_len + len(self._tail), msgs,
                             len(msgs))
        return GraphView(self._path, len(self._path), msgs, len(msgs))

    def messages(self) -> list[Message]:
        return list(self._messages())

    def _messages(self) -> list[Message]:
        """The active path's messages, decoded the first time they are read."""
        if self._path_msgs is None:
            if self._stored is not None:
                msgs = self._stored.messages(self._stored_path)
                msgs += [m for n in self._tail if n.kind == "message" and (m := n.message) is not None]
            else:
                msgs = [m for n in self._path if n.kind == "message" and (m := n.message) is not None]
            self._path_msgs = msgs
        return self._path_msgs

    def orphaned_node_ids(self) -> list[str]:
        self._ready()
        on_path = {n.node_id for n in self._path}
        return [n.node_id for n in self._order if n.node_id not in on_path]

    def children(self, node_id: str | None) -> list[SessionNode]:
        self._ready()
        return [n for n in self._order if n.parent_node_id == node_id]

    # ------------------------------------------------------------------ writes
    def append(self, node: SessionNode) -> SessionNode:
        if node.node_id in self:
            raise ValueError(f"node id {node.node_id!r} already in the session graph")
        if node.parent_node_id != self.leaf_node_id:
            raise ValueError("appended nodes must parent on the current leaf")
        self.leaf_node_id = node.node_id
        if self._stored is not None:
            self._tail.append(node)
            if self._ids is not None:
                self._ids.add(node.node_id)
        else:
            self._nodes[node.node_id] = node
            self._order.append(node)
            self._path.append(node)
        if self._path_msgs is not None and node.kind == "message" and node.message is not None:
            self._path_msgs.append(node.message)
        turns, turn_id = self._turns, node.turn_id
        if turns is not None and turn_id is not None and not (turns and turns[-1] == turn_id):
            i = bisect_left(turns, turn_id)
            if i == len(turns) or turns[i] != turn_id:
                turns.insert(i, turn_id)
        return node

    def branch_to(self, node_id: str | None) -> None:
        """Move the leaf to ``node_id`` (``None`` = before the first node)."""
        self._ready()
        if node_id is not None and node_id not in self._nodes:
            raise KeyError(f"no node {node_id!r} in this session graph")
        self.leaf_node_id = node_id
        self._rebuild_path()

    def fork_current_path(self) -> SessionGraph:
        self._ready()
        g = SessionGraph(self._path, self.leaf_node_id)
        return g

    def tombstone(self, node_ids: Sequence[str]) -> None:
        self._ready()
        drop = set(node_ids) - {n.node_id for n in self._path}
        self._order = [n for n in self._order if n.node_id not in drop]
        for d in drop:
            self._nodes.pop(d, None)
        self._turns = None  # a turn's last node may be gone: sorted again when next asked

    # ------------------------------------------------------------------ internals
    def _ready(self) -> None:
        """Make the node objects of a graph opened from a :class:`StoredNodes` (once)."""
        stored = self._stored
        if stored is None:
            return
        made = stored.nodes(self._stored_path, self._path_msgs)
        on = self._stored_path
        path = list(made) if on is None else [made[i] for i in on]
        path += self._tail
        made += self._tail
        self._stored, self._stored_path, self._tail, self._ids = None, None, [], None
        self._nodes = {n.node_id: n for n in made}
        self._order = made
        self._path = path  # extended in place from here on, like any path list
        if self._pending is not None:
            self._pending.path, self._pending.graph = path, None
            self._pending = None

    def _heal_orphaned_leaf(self) -> None:
        for n in reversed(self._order):
            if n.kind == "message":
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
        self._path_msgs = None


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
