"""Resuming a long session: what an open reads, and that what it decodes is what was written.

The user's situation: a data scientist restarts the kernel the next morning and reopens a
session that was rewound a few times (or cloned). With ``residency("active_path_only")`` the
open must not pull the abandoned branches into the process; and whatever the open decodes,
fast path or not, must be exactly the messages written: every part kind, attachments, tool
calls, reasoning with its replay, interrupted and failed results.

Evidence is counted (rows and cells that reach Python, modules importable), never timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._core.attachments import AttachmentRef
from lash_nb._core.graph import SessionNode
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._store.base import ReadScope, RuntimeCommit, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000


# --------------------------------------------------------------------------- a counting connection


class _Fetched:
    """Rows (and their cells) that statements on ``graph_nodes`` handed to Python."""

    def __init__(self) -> None:
        self.rows = 0
        self.cells: list[Any] = []

    def add(self, rows: list[Any]) -> None:
        self.rows += len(rows)
        for r in rows:
            self.cells.extend(r)


class _Result:
    def __init__(self, result: Any, fetched: _Fetched | None) -> None:
        self._result, self._fetched = result, fetched

    def _seen(self, rows: list[Any]) -> list[Any]:
        if self._fetched is not None:
            self._fetched.add(rows)
        return rows

    def fetchall(self) -> list[Any]:
        return self._seen(self._result.fetchall())

    def fetchone(self) -> Any:
        row = self._result.fetchone()
        if row is not None:
            self._seen([row])
        return row

    def to_arrow_table(self) -> Any:  # the read of earlier versions
        table = self._result.to_arrow_table()
        if self._fetched is not None:
            self._fetched.add([tuple(r.values()) for r in table.to_pylist()])
        return table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)


class _Connection:
    def __init__(self, con: Any, fetched: _Fetched) -> None:
        self._con, self._fetched = con, fetched

    def _watch(self, sql: str) -> _Fetched | None:
        return self._fetched if "graph_nodes" in str(sql) else None

    def execute(self, sql: str, *args: Any, **kw: Any) -> Any:
        return _Result(self._con.execute(sql, *args, **kw), self._watch(sql))

    def sql(self, sql: str, *args: Any, **kw: Any) -> Any:
        return _Result(self._con.sql(sql, *args, **kw), self._watch(sql))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def watch_node_reads(store: DuckDBStore) -> _Fetched:
    fetched = _Fetched()
    worker = store._worker

    def install(con: Any) -> None:
        worker._con = _Connection(con, fetched)

    worker.submit(install).result()
    return fetched


# --------------------------------------------------------------------------- sessions


def text_node(node_id: str, parent: str | None, text: str) -> SessionNode:
    msg = Message(node_id, Role.USER, (Part(f"{node_id}.p0", PartKind.TEXT, text),))
    return SessionNode(node_id, parent, "message", msg, None, T0, "t1")


def chain(prefix: str, n: int, parent: str | None, text: str) -> list[SessionNode]:
    nodes = []
    for i in range(n):
        nodes.append(text_node(f"{prefix}{i}", parent, f"{text} {i}"))
        parent = nodes[-1].node_id
    return nodes


async def write(path: Path, sid: str, batches: list[list[SessionNode]]) -> None:
    """Each batch is one commit; the leaf is the last node of the last batch (which lets the
    lease go: a later open may take turns)."""
    store = DuckDBStore(path)
    lease = await store.try_acquire_lease(sid, lease_owner_id("test"))
    for i, nodes in enumerate(batches):
        await store.commit(RuntimeCommit(sid, lease, append_nodes=tuple(nodes),
                                         leaf_node_id=nodes[-1].node_id,
                                         release_lease=i == len(batches) - 1))
    await store.close()


def rewound_twice() -> tuple[list[list[SessionNode]], list[str]]:
    """30 turns, rewound to the 10th and 15 more, rewound to the 5th of those and 5 more:
    the active path is 10 + 5 + 5 = 20 nodes; 30 nodes are off it."""
    first = chain("a", 30, None, "first try")
    second = chain("b", 15, "a9", "second try")
    third = chain("c", 5, "b4", "on the path")
    expected = [f"first try {i}" for i in range(10)] + [
        f"second try {i}" for i in range(5)] + [f"on the path {i}" for i in range(5)]
    return [first, second, third], expected


def test_a_rewound_session_opened_with_the_active_path_reads_only_the_path_rows(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    batches, expected = rewound_twice()
    asyncio.run(write(path, "s", batches))

    async def reopen() -> tuple[list[str], _Fetched]:
        store = DuckDBStore(path)  # the next morning: a new store on the file
        fetched = watch_node_reads(store)
        core = LashCore.builder().store(store).build()
        session = await core.session("s").residency("active_path_only").open()
        texts = [m.text() for m in session.read_view().messages()]
        await session.close()
        await core.close()
        return texts, fetched

    texts, fetched = asyncio.run(reopen())
    assert texts == expected
    # no cell of an abandoned branch reached Python: neither its text nor its id
    off_path = {f"a{i}" for i in range(10, 30)} | {f"b{i}" for i in range(5, 15)}
    off_texts = [f'"first try {i}"' for i in range(10, 30)] + [
        f'"second try {i}"' for i in range(5, 15)]
    leaked = [c for c in fetched.cells if isinstance(c, str) and (
        c in off_path or any(t in c for t in off_texts))]
    assert leaked == []
    # the 20 path rows, plus the starts of its three runs and the leaf (see reads.py)
    assert 20 <= fetched.rows <= 24, fetched.rows


def test_a_linear_session_reads_each_row_once(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    asyncio.run(write(path, "s", [chain("n", 40, None, "turn")]))

    async def load() -> tuple[int, _Fetched]:
        store = DuckDBStore(path)
        fetched = watch_node_reads(store)
        got = await store.load_session("s", ReadScope.ACTIVE_PATH)
        await store.close()
        assert got is not None
        return len(got.nodes), fetched

    n, fetched = asyncio.run(load())
    assert n == 40
    assert fetched.rows <= 42  # 40 rows, the root's run start and the leaf


def test_a_session_rewound_ten_times_reads_its_path_in_order(tmp_path: Path) -> None:
    """Ten rewinds, each to a node on the newest branch: the path crosses a dozen runs."""
    path = tmp_path / "s.duckdb"
    batches = [chain("r", 3, None, "root")]
    expected = ["root 0", "root 1"]
    parent = "r1"
    for k in range(10):
        branch = chain(f"k{k}-", 4, parent, f"branch {k}")
        batches.append(branch)
        expected += [f"branch {k} 0", f"branch {k} 1"]
        parent = branch[1].node_id
    batches.append([text_node("leaf", parent, "leaf")])
    expected.append("leaf")
    asyncio.run(write(path, "s", batches))

    async def load() -> list[str]:
        store = DuckDBStore(path)
        full = await store.load_session("s", ReadScope.FULL_GRAPH)
        got = await store.load_session("s", ReadScope.ACTIVE_PATH)
        await store.close()
        assert got is not None and full is not None
        assert len(full.nodes) == 3 + 40 + 1
        return [n.message.text() for n in got.nodes if n.message is not None]

    assert asyncio.run(load()) == expected


def test_a_graph_written_whole_with_children_before_parents_still_opens_its_whole_path(
        tmp_path: Path) -> None:
    """A graph handed in whole (``open_with_state`` with a hand-made state) may list a node
    before its parent; appends never do. The open must still find every message of the path."""
    path = tmp_path / "s.duckdb"
    a = chain("a", 4, None, "kept")
    off = text_node("x", "a1", "abandoned")
    shuffled = [a[3], off, a[1], a[0], a[2]]  # a3's parent a2 comes after it, and so on

    async def scenario() -> tuple[list[str], list[str]]:
        store = DuckDBStore(path)
        lease = await store.try_acquire_lease("s", lease_owner_id("test"))
        await store.commit(RuntimeCommit("s", lease, replace_graph=tuple(shuffled),
                                         leaf_node_id="a3"))
        await store.close()
        store = DuckDBStore(path)
        got = await store.load_session("s", ReadScope.ACTIVE_PATH)
        full = await store.load_session("s", ReadScope.FULL_GRAPH)
        await store.close()
        assert got is not None and full is not None
        return ([n.message.text() for n in got.nodes if n.message is not None],
                [n.node_id for n in full.nodes])

    texts, stored_order = asyncio.run(scenario())
    assert stored_order == ["a3", "x", "a1", "a0", "a2"]  # the rows really are out of order
    assert texts == ["kept 0", "kept 1", "kept 2", "kept 3"]


# --------------------------------------------------------------------------- decode equality


def every_kind() -> list[SessionNode]:
    image = AttachmentRef("ab" * 32, "image/png", 2048, "plot of sales", 640, 480)
    table = AttachmentRef("cd" * 32, "text/csv", 512, None)
    messages = [
        Message("m1", Role.USER, (
            Part("m1.p0", PartKind.TEXT, "Plot sales by month ünïcødé \u2028 \"quoted\""),
            Part("m1.p1", PartKind.ATTACHMENT, "[image]", attachment=image),
            Part("m1.p2", PartKind.ATTACHMENT, "[file]", attachment=table),
        )),
        Message("m2", Role.ASSISTANT, (
            Part("m2.p0", PartKind.PROSE, "Let me look."),
            Part("m2.p1", PartKind.REASONING, "thinking about months",
                 replay='{"type":"thinking","signature":"sig=="}'),
            Part("m2.p2", PartKind.REASONING, "", replay='{"encrypted":"x"}'),
            Part("m2.p3", PartKind.TOOL_CALL, '{"month": 3}', "call_1", "sales",
                 replay='{"id":"fc_1"}'),
            Part("m2.p4", PartKind.TOOL_CALL, "{}", "call_2", "plot"),
        )),
        Message("m3", Role.USER, (
            Part("m3.p0", PartKind.TOOL_RESULT, "42", "call_1", "sales"),
            Part("m3.p1", PartKind.TOOL_RESULT, "ValueError: no month 13", "call_2", "plot",
                 is_error=True),
            Part("m3.p2", PartKind.TOOL_RESULT, "interrupted: the turn was stopped", "call_3",
                 "slow", interrupted=True, is_error=True),
            Part("m3.p3", PartKind.ATTACHMENT, "[image]", attachment=image),
        )),
        Message("m4", Role.ASSISTANT, (
            Part("m4.p0", PartKind.PROSE, "Sales peak in March", interrupted=True),
            Part("m4.p1", PartKind.ERROR, "provider said: overloaded"),
        )),
        Message("m5", Role.USER, (Part("m5.p0", PartKind.TEXT, "and April?"),),
                origin="queued_input"),
        Message("m6", Role.SYSTEM, (Part("m6.p0", PartKind.TEXT, "You are terse."),)),
        Message("m7", Role.EVENT, ()),
    ]
    nodes = []
    parent = None
    for i, m in enumerate(messages):
        nodes.append(SessionNode(m.id, parent, "message", m, None, T0 + i, f"t{i}"))
        parent = m.id
    nodes.append(SessionNode("e1", parent, "event", None,
                             {"type": "compaction", "kept": [1, 2], "note": None}, T0 + 9, None))
    return nodes


def _store_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "duckdb":
        return lambda: DuckDBStore(tmp_path / "s.duckdb")
    from lash_nb._store.postgres import PostgresStore

    dsn = request.getfixturevalue("pg_server").create_database()
    return lambda: PostgresStore(dsn)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_every_part_kind_reads_back_equal_to_what_was_written(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    written = every_kind()
    make = _store_target(kind, request, tmp_path)

    async def scenario() -> list[tuple[str, Any]]:
        store = make()
        lease = await store.try_acquire_lease("s", lease_owner_id("test"))
        await store.commit(RuntimeCommit("s", lease, append_nodes=tuple(written),
                                         leaf_node_id=written[-1].node_id))
        await store.close()
        out = []
        for scope in (ReadScope.FULL_GRAPH, ReadScope.ACTIVE_PATH):
            store = make()  # reopened: nothing is cached from the write
            got = await store.load_session("s", scope)
            await store.close()
            assert got is not None
            out.append((scope.value, got.nodes))
        return out

    for scope, nodes in asyncio.run(scenario()):
        assert [n.node_id for n in nodes] == [n.node_id for n in written], scope
        for got, want in zip(nodes, written, strict=True):
            assert got.message == want.message, (scope, got.node_id)
            assert got.payload == want.payload, (scope, got.node_id)
            assert (got.parent_node_id, got.kind, got.created_at_ms, got.turn_id) == (
                want.parent_node_id, want.kind, want.created_at_ms, want.turn_id)
            if want.message is not None:
                assert got.message is not None
                assert hash(got.message) == hash(want.message)
                assert type(got.message.role) is Role
                assert all(type(p.kind) is PartKind and type(p) is Part
                           for p in got.message.parts)
    # the decoded objects behave like the written ones, by hand
    msg = nodes[1].message
    assert msg is not None and msg.tool_calls()[0].tool_name == "sales"
    assert msg.text() == "Let me look."
    assert nodes[0].message is not None
    image = nodes[0].message.parts[1].attachment
    assert image is not None and (image.width, image.height, image.label) == (
        640, 480, "plot of sales")


def test_decoding_keeps_the_checks_for_rows_it_did_not_write() -> None:
    """The fast path is for dicts of known kinds; anything else goes the checking way."""
    with pytest.raises(ValueError, match="'speaker'"):
        Message.from_json({"id": "m", "role": "speaker", "parts": []})
    with pytest.raises(ValueError, match="'video'"):
        Part.from_json({"id": "p", "kind": "video", "content": ""})
    with pytest.raises(KeyError):
        Part.from_json({"kind": "text"})
    with pytest.raises(ValueError):
        Part.from_json({"id": "p", "kind": ["text"], "content": ""})
    with pytest.raises(ValueError):
        Message.from_json({"id": "m", "role": {"user": 1}, "parts": []})
    frozen = types.MappingProxyType({"id": "p", "kind": "text", "content": "hi",
                                     "replay": 5, "interrupted": 1})
    assert Part.from_json(frozen) == Part("p", PartKind.TEXT, "hi", interrupted=True)
    assert Part.from_json({"id": "p", "kind": "prose", "replay": 5}) == Part(
        "p", PartKind.PROSE, "")


@pytest.mark.parametrize("stored", [
    ' {"id": "m", "role": "user", "parts": []}',
    '{"id": "m", "role": "user", "parts": []}\n',
    '{"id":"m","role":"user","parts":[]}',
])
def test_stored_text_with_spaces_decodes_like_json_loads(stored: str) -> None:
    node = SessionNode("m", None, "message", stored_content=stored)
    assert node.message == Message("m", Role.USER, ())


@pytest.mark.parametrize("stored", ['{"id": "m", "role": "user", "parts": []} x', "{", ""])
def test_bad_stored_text_raises_as_json_loads_does_and_stays_stored(stored: str) -> None:
    node = SessionNode("m", None, "message", stored_content=stored)
    with pytest.raises(json.JSONDecodeError):
        _ = node.message
    assert node.content_text() == stored  # still there, not dropped by the failed decode


# --------------------------------------------------------------------------- imports


_CHILD = textwrap.dedent("""
    import asyncio, importlib.abc, sys

    class NoArrow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pyarrow", "pandas", "numpy"):
                raise ImportError(f"{name} is not importable in this test")
            return None

    sys.meta_path.insert(0, NoArrow())
    from lash_nb import LashCore
    from lash_nb.stores import DuckDBStore

    async def main():
        store = DuckDBStore(sys.argv[1])
        core = LashCore.builder().store(store).build()
        for residency in ("active_path_only", "keep_all"):
            session = await core.session("s").residency(residency).open()
            print(len([m.text() for m in session.read_view().messages()]))
            await session.close()
        await core.close()

    asyncio.run(main())
""")


def test_a_fresh_process_opens_and_reads_a_session_without_pyarrow_pandas_or_numpy(
        tmp_path: Path) -> None:
    """Their imports hold the interpreter for a large part of a cold resume; an open and a
    first read need none of them (the first commit imports them)."""
    assert run_child(_CHILD, tmp_path).split() == ["20", "20"]


def run_child(script: str, tmp_path: Path) -> str:
    """``script`` in a fresh interpreter on a rewound session's file; its stdout."""
    path = tmp_path / "s.duckdb"
    batches, _ = rewound_twice()
    asyncio.run(write(path, "s", batches))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script, str(path)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


# --------------------------------------------------------------------------- node objects on demand


class _Made:
    """Ids of the ``SessionNode`` objects made while installed (the class is patched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ids: list[str] = []
        init = SessionNode.__init__

        def counting(node: SessionNode, node_id: str, *args: Any, **kw: Any) -> None:
            self.ids.append(node_id)
            init(node, node_id, *args, **kw)

        monkeypatch.setattr(SessionNode, "__init__", counting)


def _shape(nodes: list[SessionNode]) -> list[tuple[Any, ...]]:
    return [(n.node_id, n.parent_node_id, n.kind, n.created_at_ms, n.turn_id,
             n.message.text() if n.message else None) for n in nodes]


def _stable(nodes: list[SessionNode], stored: set[str]) -> list[tuple[Any, ...]]:
    """``_shape`` of the stored nodes; a node made by a turn (fresh ids, the clock) by its
    text, and whether its parent is the node before it."""
    out = []
    for i, n in enumerate(nodes):
        if n.node_id in stored:
            out.extend(_shape([n]))
        else:
            after = i > 0 and n.parent_node_id == nodes[i - 1].node_id
            out.append(("new", n.kind, n.message.text() if n.message else None, after))
    return out


@pytest.mark.parametrize("residency", ["active_path_only", "keep_all"])
def test_an_open_makes_no_node_objects_until_something_asks_for_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, residency: str) -> None:
    """The next morning: reopen, read the history, take a turn. Node objects for the stored
    path are made once, when nodes are asked for, and then they are the nodes written."""
    from lash_nb.testing import scripted

    path = tmp_path / "s.duckdb"
    batches, expected = rewound_twice()
    asyncio.run(write(path, "s", batches))
    by_id = {n.node_id: n for b in batches for n in b}
    path_ids = ["a" + str(i) for i in range(10)] + ["b" + str(i) for i in range(5)] + [
        "c" + str(i) for i in range(5)]
    made = _Made(monkeypatch)

    async def scenario() -> None:
        core = LashCore.builder().store(DuckDBStore(path)).provider(scripted("noted")).model(
            "m").build()
        session = await core.session("s").residency(residency).open()
        assert made.ids == []  # was one per row read: 20 (active path), 50 (keep_all)
        before = session.read_view()
        assert [m.text() for m in before.messages()] == expected
        await session.turn("one more").run()
        stored = set(path_ids) if residency == "active_path_only" else set(by_id)
        assert [i for i in made.ids if i in stored] == []  # a read and a turn made none
        after = session.read_view()
        assert [m.text() for m in after.messages()][:20] == expected
        assert [m.text() for m in after.messages()][20:] == ["one more", "noted"]
        nodes = after.nodes()  # now they are made, once
        assert sorted(i for i in made.ids if i in stored) == sorted(stored)
        assert _shape(nodes[:20]) == _shape([by_id[i] for i in path_ids])
        assert [n.parent_node_id for n in nodes[1:]] == [n.node_id for n in nodes[:-1]]
        assert _shape(before.nodes()) == _shape(nodes[:20])  # a view from before: its 20
        assert before.nodes()[5] is nodes[5]
        await session.close()
        await core.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("residency", ["active_path_only", "keep_all"])
def test_graph_operations_on_stored_rows_match_a_graph_of_nodes_made_at_open(
        tmp_path: Path, residency: str) -> None:
    """Turns, rewind, clone and a reopen give the same messages and nodes whether the node
    objects are made when first asked for (after a turn and a rewind) or right at the open."""
    from lash_nb.testing import scripted

    results = {}
    for made_at_open in (False, True):
        path = tmp_path / f"{made_at_open}.duckdb"
        batches, _ = rewound_twice()
        asyncio.run(write(path, "s", batches))
        ids = {n.node_id for b in batches for n in b}

        async def scenario(path: Path = path, made_at_open: bool = made_at_open,
                           ids: set[str] = ids) -> list[Any]:
            core = LashCore.builder().store(DuckDBStore(path)).provider(
                scripted("first", "second", "third")).model("m").build()
            session = await core.session("s").residency(residency).open()
            if made_at_open:
                session.state.graph.nodes()
            early = session.read_view()
            seen: list[Any] = [[m.text() for m in early.messages()]]
            await session.turn("go on").run()
            seen.append(len(session.state.graph))
            session.branch_to("b2")  # rewind into the stored path
            await session.turn("again").run()
            seen.append(_stable(early.nodes(), ids))
            twin = session.clone()
            seen.append([m.text() for m in twin.read_view().messages()])
            twin.release()
            seen.append(_stable(session.read_view().nodes(), ids))
            orphans = session.state.graph.orphaned_node_ids()
            seen.append((sorted(set(orphans) & ids), len(orphans)))
            await session.close()
            session = await core.session("s").residency(residency).open()  # reopened
            seen.append([m.text() for m in session.read_view().messages()])
            seen.append(_stable(session.read_view().nodes(), ids))
            await session.close()
            await core.close()
            return seen

        results[made_at_open] = asyncio.run(scenario())
    on_demand, at_open = results[False], results[True]
    assert on_demand == at_open
    assert on_demand[1] == (22 if residency == "active_path_only" else 52)
    assert on_demand[3][-3:] == ["second try 2", "again", "second"]
    assert [n[0] for n in on_demand[4]] == [f"a{i}" for i in range(10)] + [
        "b0", "b1", "b2", "new", "new"]
    assert on_demand[4][-2:] == [("new", "message", "again", True),
                                 ("new", "message", "second", True)]
    assert len(on_demand[2]) == 20 and on_demand[2][-1][0] == "c4"
    assert on_demand[5][1] == len(on_demand[5][0]) + 2  # and the first turn: "go on", "first"
    assert {"b3", "b4", "c0", "c4"} <= set(on_demand[5][0])


# --------------------------------------------------------------------------- the background import


_IMPORT_CHILD = textwrap.dedent("""
    import asyncio, json, sys, threading
    from lash_nb import LashCore
    from lash_nb.stores import DuckDBStore
    from lash_nb.testing import scripted

    def importing():
        return [t for t in threading.enumerate() if t.name == "lash-arrow-import"]

    def state():
        return {"thread": bool(importing()), "pyarrow": "pyarrow" in sys.modules,
                "pandas": "pandas" in sys.modules}

    async def main():
        seen = {}
        store = DuckDBStore(sys.argv[1])
        core = LashCore.builder().store(store).provider(scripted("noted")).model("m").build()
        seen["opened"] = state()
        session = await core.session("s").residency("active_path_only").open()
        texts = [m.text() for m in session.read_view().messages()]
        await store.list_sessions()
        await store.load_turns("s")
        await store.load_events("s")
        await session.queued_work()
        seen["read"] = state()
        await session.turn("one more").run()
        for t in importing():
            t.join(300)
        seen["turn"] = state()
        await session.close()
        await core.close()  # folds the turn's commits: they need pyarrow
        store = DuckDBStore(sys.argv[1], read_only=True)
        got = await store.load_session("s")
        seen["texts"] = [len(texts), len([n for n in got.nodes if n.message is not None])]
        await store.close()
        print(json.dumps(seen))

    asyncio.run(main())
""")


def test_pyarrow_is_imported_in_the_background_when_a_write_is_coming_and_never_for_reads(
        tmp_path: Path) -> None:
    """A resume that only reads (open, the history, sessions, turns, events, the queue) does
    not start the pandas + pyarrow import, whatever the time; the first turn does (its lease
    comes before its commits), and the fold after it writes the turn's rows with it."""
    seen = json.loads(run_child(_IMPORT_CHILD, tmp_path).strip().splitlines()[-1])
    nothing = {"thread": False, "pyarrow": False, "pandas": False}
    assert seen["opened"] == nothing  # was: an import timer started with the store
    assert seen["read"] == nothing
    assert seen["turn"] == {"thread": False, "pyarrow": True, "pandas": True}
    assert seen["texts"] == [20, 50 + 2]  # the whole graph now holds the turn's two messages


def test_a_graph_on_stored_rows_behaves_like_one_on_nodes() -> None:
    """Rows as an active-path read hands them over (an event among the messages, a root whose
    parent is gone): the same messages, nodes, errors and branches as the eager graph."""
    from lash_nb._core.graph import SessionGraph, StoredNodes

    def msg(i: int) -> str:
        return json.dumps({"id": f"m{i}", "role": "user", "parts": [
            {"id": f"m{i}.p0", "kind": "text", "content": f"text {i}"}]})

    rows = [("m0", None, T0, "t0", msg(0)), ("m1", None, T0 + 1, "t0", msg(1)),
            ("e0", "event", T0 + 2, None, '{"type": "compaction"}'),
            ("m2", None, T0 + 3, "t1", msg(2))]
    eager_nodes = [SessionNode(r[0], p, r[1] or "message", None, None, r[2], r[3], r[4])
                   for r, p in zip(rows, ["gone", "m0", "m1", "e0"], strict=True)]
    lazy = SessionGraph.from_active_path(StoredNodes(list(rows), "gone"))
    eager = SessionGraph.from_active_path(eager_nodes)
    for g in (lazy, eager):
        assert [m.text() for m in g.messages()] == ["text 0", "text 1", "text 2"]
        assert len(g) == 4 and "e0" in g and "nope" not in g
        early = g.view()
        with pytest.raises(ValueError, match="already in the session graph"):
            g.append(text_node("m1", "m2", "again"))
        g.append(text_node("x", "m2", "appended"))
        assert [n.node_id for n in early.nodes()] == ["m0", "m1", "e0", "m2"]
    assert lazy.nodes() == eager.nodes()
    assert [n.parent_node_id for n in lazy.nodes()] == ["gone", "m0", "m1", "e0", "m2"]
    assert lazy.get("e0") is not None and lazy.get("e0").payload == {"type": "compaction"}  # type: ignore[union-attr]
    for g in (lazy, eager):
        g.branch_to("m1")
        g.append(text_node("y", "m1", "branch"))
        assert [m.text() for m in g.messages()] == ["text 0", "text 1", "branch"]
        assert g.orphaned_node_ids() == ["e0", "m2", "x"]


def _rows6(links: list[tuple[str, str | None]]) -> list[tuple[Any, ...]]:
    """Whole-graph rows (stored order) of text messages: ``(node_id, parent)`` pairs."""
    return [(i, None, T0, "t1", json.dumps({"id": i, "role": "user", "parts": [
        {"id": f"{i}.p0", "kind": "text", "content": f"text {i}"}]}), parent)
        for i, parent in links]


@pytest.mark.parametrize(("links", "leaf", "path"), [
    ([("a", None), ("b", "a"), ("c", "b")], "c", "abc"),
    ([("a", None), ("b", "a"), ("c", "b"), ("d", "a"), ("e", "d"), ("f", "c")], "e", "ade"),
    ([("a", None), ("b", "a"), ("c", "b"), ("d", "a"), ("e", "d")], "c", "abc"),
    ([("c", "b"), ("x", "a"), ("a", None), ("b", "a")], "c", "abc"),  # children first
    ([("a", "gone"), ("b", "a")], "b", "ab"),  # a root whose parent was deleted
    ([("a", "c"), ("b", "a"), ("c", "b")], "c", "abc"),  # the links loop
    ([("a", None), ("b", "a")], "zzz", "ab"),  # a leaf that is not stored: healed to b
    ([("a", None), ("b", "a")], None, "ab"),  # no leaf: the last node
])
def test_a_whole_graph_of_stored_rows_walks_to_the_same_path_as_one_of_nodes(
        links: list[tuple[str, str | None]], leaf: str | None, path: str) -> None:
    from lash_nb._core.graph import SessionGraph, StoredNodes

    rows = _rows6(links)
    eager = SessionGraph(StoredNodes(rows).nodes(), leaf)
    lazy = SessionGraph.from_stored(StoredNodes(rows), leaf)
    assert [m.text() for m in lazy.messages()] == [f"text {i}" for i in path]
    for g in (eager, lazy):
        assert "".join(n.node_id for n in g.active_path()) == path
    assert (lazy.leaf_node_id, lazy.replace_required) == (eager.leaf_node_id, eager.replace_required)
    assert lazy.nodes() == eager.nodes()
    assert lazy.orphaned_node_ids() == eager.orphaned_node_ids()
