"""A resumed session's messages decode exactly as they were written (ADR 0132).

The user's situation: a long session is reopened in a new kernel and read whole. Its stored
messages are decoded in one loop that skips the per-message calls for the shapes lash writes
most, with the garbage collector paused; everything else (several parts, attachments, flags,
odd text, rows a person edited) must come back exactly as before, and bad rows must raise
as ``json.loads`` and ``Message.from_json`` do. Expected messages are built here by hand,
never by the decoder under test.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pytest

from lash_nb import LashCore
from lash_nb._core import graph
from lash_nb._core.attachments import AttachmentRef
from lash_nb._core.gc_pause import gc_paused
from lash_nb._core.graph import SessionNode
from lash_nb._core.records import Message, Part, PartKind, Role, messages_from_stored
from lash_nb._store.base import RuntimeCommit, TurnStart, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb.testing.conformance import node, turn_record

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000
ODD = 'tab\t nl\n cr\r quote" back\\ slash/ nul\x00 bell\x07 \u2028 é 中文 🙂 \U0001f600 {"x":1}'
IMAGE = AttachmentRef("ab" * 32, "image/png", 2048, "plot", 640, 480)


def _msg(mid: str, role: Role, *parts: Part, origin: str | None = None) -> Message:
    return Message(mid, role, tuple(parts), origin)


def _turn(i: int, tag: str, odd: str = ODD) -> list[Message]:
    """One turn of the common shapes: user text, a tool call, its result, the answer."""
    t = f"{tag}{i}"
    return [
        _msg(f"{t}u", Role.USER, Part(f"{t}u.p0", PartKind.TEXT, f"question {i} {odd}")),
        _msg(f"{t}a", Role.ASSISTANT, Part(f"{t}a.p0", PartKind.TOOL_CALL,
                                           json.dumps({"q": odd, "n": i}), f"call_{t}", "look")),
        _msg(f"{t}r", Role.USER, Part(f"{t}r.p0", PartKind.TOOL_RESULT, f"found {i}",
                                      f"call_{t}", "look")),
        _msg(f"{t}f", Role.ASSISTANT, Part(f"{t}f.p0", PartKind.PROSE, f"answer {i}")),
    ]


def _unusual(odd: str = ODD) -> list[Message]:
    """The shapes the loop hands to ``Message.from_json``: each one once."""
    return [
        _msg("x1", Role.USER, Part("x1.p0", PartKind.TEXT, "look at this"),
             Part("x1.p1", PartKind.ATTACHMENT, "[image]", attachment=IMAGE)),
        _msg("x2", Role.ASSISTANT, Part("x2.p0", PartKind.REASONING, "hmm",
                                        replay='{"signature":"s=="}')),
        _msg("x3", Role.USER, Part("x3.p0", PartKind.TOOL_RESULT, "boom", "c9", "look",
                                   is_error=True)),
        _msg("x4", Role.USER, Part("x4.p0", PartKind.TOOL_RESULT, "stopped", "c8", "slow",
                                   interrupted=True, is_error=True)),
        _msg("x5", Role.ASSISTANT, Part("x5.p0", PartKind.PROSE, "cut", interrupted=True)),
        _msg("x6", Role.USER, Part("x6.p0", PartKind.TEXT, "and then?"), origin="queued_input"),
        _msg("x7", Role.SYSTEM, Part("x7.p0", PartKind.TEXT, "")),
        _msg("x8", Role.EVENT),
        _msg("x9", Role.ASSISTANT, Part("x9.p0", PartKind.ERROR, "overloaded")),
        _msg("id with \"odd\" ü/\\", Role.USER, Part("odd.p0", PartKind.TEXT, odd)),
    ]


def _nodes(messages: list[Message], parent: str | None, turn: str) -> list[SessionNode]:
    out = []
    for k, m in enumerate(messages):
        out.append(SessionNode(m.id, parent, "message", m, None, T0 + k, turn))
        parent = m.id
    return out


def _session(odd: str = ODD) -> tuple[list[list[SessionNode]], list[SessionNode], list[Message]]:
    """Batches written in this process, the batch a dead process leaves unfolded, and the
    messages on the active path. 30 turns, then unusual messages and an event node; rewound
    to turn 20 (the rest stays off the path), 10 more turns there, then the unusual messages
    again (from the dead process)."""
    first = [_turn(i, "a", odd) for i in range(30)]
    batches = [_nodes([m for t in first[:20] for m in t], None, "t1")]
    batches.append(_nodes([m for t in first[20:] for m in t] + _unusual(odd), batches[0][-1].node_id,
                          "t2"))
    event = SessionNode("e1", batches[1][-1].node_id, "event", None,
                        {"type": "compaction", "note": odd}, T0, "t2")
    batches[1].append(event)
    again = [_turn(i, "b", odd) for i in range(10)]
    batches.append(_nodes([m for t in again for m in t], batches[0][-1].node_id, "t3"))
    late = [_msg(f"late-{m.id}", m.role, *(Part(f"late-{p.id}", p.kind, p.content, p.tool_call_id,
                                                 p.tool_name, p.interrupted, p.is_error, p.replay,
                                                 p.attachment) for p in m.parts),
                 origin=m.origin) for m in _unusual(odd) + _turn(99, "c", odd)]
    unfolded = _nodes(late, batches[2][-1].node_id, "t4")
    path = ([m for t in first[:20] for m in t] + [m for t in again for m in t] + late)
    return batches, unfolded, path


_DEAD = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, sys.argv[2])
    from test_resume_decode import _session
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb._store.duckdb import DuckDBStore

    async def main():
        store = DuckDBStore(sys.argv[1], fold_idle_s=None)
        lease = await store.try_acquire_lease("s", lease_owner_id("dead"))
        nodes = tuple(_session()[1])
        await store.commit(RuntimeCommit("s", lease, append_nodes=nodes,
                                         leaf_node_id=nodes[-1].node_id, release_lease=True))
        print(store.unfolded_commits, flush=True)
        os._exit(0)  # no close: the commit stays in commit_log

    asyncio.run(main())
""")


async def _write(path: Path, batches: list[list[SessionNode]]) -> None:
    store = DuckDBStore(path)
    lease = await store.try_acquire_lease("s", lease_owner_id("test"))
    for i, nodes in enumerate(batches):
        await store.commit(RuntimeCommit("s", lease, append_nodes=tuple(nodes),
                                         leaf_node_id=nodes[-1].node_id,
                                         release_lease=i == len(batches) - 1))
    # a commit that cannot fold (a lone surrogate) is quarantined; nothing else changes
    bad = await store.try_acquire_lease("bad", lease_owner_id("test"))
    await store.commit(RuntimeCommit(
        "bad", bad, append_nodes=(node("bad-u", None, "broken \ud800 text", "t-bad"),),
        leaf_node_id="bad-u", turn_started=TurnStart("t-bad", 1000), turn=turn_record("t-bad"),
        turn_index=1))
    await store.close()


@pytest.mark.parametrize("residency", ["active_path_only", "keep_all"])
def test_a_varied_rewound_session_with_unfolded_commits_reads_back_exactly(
        residency: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.duckdb"
    batches, _, expected = _session()
    asyncio.run(_write(path, batches))
    dead = subprocess.run([sys.executable, "-c", _DEAD, str(path), str(Path(__file__).parent)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                          text=True, timeout=300)
    assert dead.returncode == 0, dead.stderr[-2000:]
    assert dead.stdout.split() == ["1"]  # logged, not folded, when the process died
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM commit_log").fetchone() == (1,)
        assert con.execute("SELECT session_id FROM commit_quarantine").fetchall() == [("bad",)]
    finally:
        con.close()

    decoded: list[int] = []  # texts the bulk decoder was handed

    def counting(texts: list[str]) -> list[Message]:
        decoded.append(len(texts))
        return messages_from_stored(texts)

    monkeypatch.setattr(graph, "messages_from_stored", counting)

    async def read() -> list[Message]:
        core = LashCore.builder().store(DuckDBStore(path)).build()
        session = await core.session("s").residency(residency).open()
        got = list(session.read_view().messages())
        await session.close()
        await core.close()
        return got

    got = asyncio.run(read())
    assert decoded == [len(expected)]  # the whole path went through the bulk decoder
    assert len(got) == len(expected) == 20 * 4 + 10 * 4 + 10 + 4
    for g, want in zip(got, expected, strict=True):
        assert g == want, want.id
        assert type(g) is Message and type(g.role) is Role
        assert all(type(p) is Part and type(p.kind) is PartKind for p in g.parts)
        assert [type(p.content) for p in g.parts] == [str] * len(want.parts)
    assert got[0].text() == f"question 0 {ODD}"
    assert json.loads(got[1].parts[0].content) == {"q": ODD, "n": 0}
    assert got[-14].parts[1].attachment == IMAGE


@pytest.mark.postgres
@pytest.mark.parametrize("residency", ["active_path_only", "keep_all"])
def test_the_same_session_in_postgresql_reads_back_exactly(
        residency: str, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lash_nb._store.postgres import PostgresStore

    batches, unfolded, expected = _session(ODD.replace("\x00", ""))  # jsonb refuses NUL
    decoded: list[int] = []

    def counting(texts: list[str]) -> list[Message]:
        decoded.append(len(texts))
        return messages_from_stored(texts)

    monkeypatch.setattr(graph, "messages_from_stored", counting)

    async def scenario() -> list[Message]:
        store = PostgresStore(pg_dsn)
        lease = await store.try_acquire_lease("s", lease_owner_id("test"))
        written = [*batches, unfolded]
        for i, nodes in enumerate(written):
            await store.commit(RuntimeCommit("s", lease, append_nodes=tuple(nodes),
                                             leaf_node_id=nodes[-1].node_id,
                                             release_lease=i == len(written) - 1))
        await store.close()
        core = LashCore.builder().store(PostgresStore(pg_dsn)).build()  # nothing cached
        session = await core.session("s").residency(residency).open()
        got = list(session.read_view().messages())
        await session.close()
        await core.close()
        return got

    got = asyncio.run(scenario())
    assert decoded == [len(expected)]
    assert got == expected
    assert [type(m.role) for m in got] == [Role] * len(expected)


# --------------------------------------------------------------------------- the loop's edges


def _text(mid: str = "m", role: str = "user", parts: str = '[{"id":"p","kind":"text","content":"hi"}]',
          extra: str = "") -> str:
    return f'{{"id":"{mid}","role":"{role}","parts":{parts}{extra}}}'


HI = Part("p", PartKind.TEXT, "hi")


@pytest.mark.parametrize(("stored", "want"), [
    (_text(), Message("m", Role.USER, (HI,))),
    (' ' + _text() + '\n', Message("m", Role.USER, (HI,))),  # spaces: json.loads takes them
    (_text(role="system"), Message("m", Role.SYSTEM, (HI,))),
    ('{"parts":[{"content":"hi","kind":"text","id":"p"}],"role":"user","id":"m"}',
     Message("m", Role.USER, (HI,))),  # any key order
    ('{"id":"m","role":"user","role":"assistant","parts":[]}',
     Message("m", Role.ASSISTANT, ())),  # a repeated key: the last one, as json.loads
    (_text(parts='[{"id":"p","kind":"tool_call","content":"{}","tool_call_id":"c","tool_name":"t"}]'),
     Message("m", Role.USER, (Part("p", PartKind.TOOL_CALL, "{}", "c", "t"),))),
    (_text(parts='[{"id":"p","kind":"tool_call","content":"{}","tool_call_id":null,"tool_name":"t"}]'),
     Message("m", Role.USER, (Part("p", PartKind.TOOL_CALL, "{}", None, "t"),))),
    (_text(parts='[{"id":"p","kind":"tool_result","content":"x","tool_call_id":"c","is_error":true}]'),
     Message("m", Role.USER, (Part("p", PartKind.TOOL_RESULT, "x", "c", None, is_error=True),))),
    (_text(parts='[{"id":"p","kind":"text","content":"hi","interrupted":true}]'),
     Message("m", Role.USER, (Part("p", PartKind.TEXT, "hi", interrupted=True),))),
    (_text(parts='[{"id":"p","kind":"text","content":"a\\ud800b\\n\\u00e9"}]'),
     Message("m", Role.USER, (Part("p", PartKind.TEXT, "a\ud800b\né"),))),  # lone surrogate kept
    (_text(parts='[{"id":"p","kind":"text","content":7}]'),
     Message("m", Role.USER, (Part("p", PartKind.TEXT, 7),))),
    (_text(parts='[{"id":"p","kind":"text"}]'), Message("m", Role.USER, (Part("p", PartKind.TEXT, ""),))),
    (_text(parts='[{"id":"p","kind":"text","content":"hi"},{"id":"q","kind":"prose","content":"yo"}]'),
     Message("m", Role.USER, (HI, Part("q", PartKind.PROSE, "yo")))),
    (_text(parts="[]"), Message("m", Role.USER, ())),
    ('{"id":"m","role":"user"}', Message("m", Role.USER, ())),
    (_text(extra=',"origin":"queued_input"'), Message("m", Role.USER, (HI,), "queued_input")),
    ('{"id":5,"role":"user","parts":[{"id":6,"kind":"text","content":"hi"}]}',
     Message(5, Role.USER, (Part(6, PartKind.TEXT, "hi"),))),
])
def test_each_stored_shape_decodes_to_the_message_built_by_hand(stored: str, want: Message) -> None:
    got = messages_from_stored([stored, stored])
    assert got == [want, want]
    assert [type(m.role) for m in got] == [Role, Role]


@pytest.mark.parametrize(("stored", "error"), [
    ("", json.JSONDecodeError),
    ("{", json.JSONDecodeError),
    (_text() + " x", json.JSONDecodeError),
    ('{"id":"m","role":"user","parts":[{"id":"p","kind":"text","content":"a\nb"}]}',
     json.JSONDecodeError),  # a raw newline in a string: json.loads refuses it
    ("[]", TypeError),
    (_text(role="speaker"), ValueError),
    ('{"id":"m","role":["user"],"parts":[]}', ValueError),
    (_text(parts='[{"id":"p","kind":"video","content":""}]'), ValueError),
    (_text(parts='[{"id":"p","kind":["text"],"content":""}]'), ValueError),
    (_text(parts='[{"kind":"text","content":"hi","x":1}]'), KeyError),
    ('{"role":"user","parts":[],"x":1}', KeyError),
])
def test_a_bad_stored_text_raises_as_before(stored: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        messages_from_stored([_text(), stored])


# --------------------------------------------------------------------------- the collector


def _automatic_collections(make: int) -> int:
    """How many collections the collector starts on its own while ``make`` lists are made."""
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(note)
    try:
        kept = [[i] for i in range(make)]
    finally:
        gc.callbacks.remove(note)
    del kept
    return len(started)


def _pause_on_another_thread(entered: threading.Event, leave: threading.Event,
                             inside: list[int]) -> None:
    with gc_paused():
        entered.set()
        leave.wait(60)
        inside.append(_automatic_collections(50_000))


def test_the_collector_is_left_as_it_was_found_by_reads_on_two_threads() -> None:
    was, thresholds = gc.isenabled(), gc.get_threshold()
    try:
        for start in (True, False):
            (gc.enable if start else gc.disable)()
            inside: list[int] = []  # collections started on their own meanwhile
            entered, leave = threading.Event(), threading.Event()
            t = threading.Thread(target=_pause_on_another_thread, args=(entered, leave, inside))
            t.start()
            assert entered.wait(60)
            with gc_paused():
                inside.append(_automatic_collections(50_000))
                assert messages_from_stored([_text()]) == [Message("m", Role.USER, (HI,))]
            inside.append(_automatic_collections(50_000))  # the other thread still reads
            leave.set()
            t.join(60)
            assert inside == [0, 0, 0]
            assert gc.isenabled() is start
            assert gc.get_threshold() == thresholds
    finally:
        (gc.enable if was else gc.disable)()


def test_a_gc_disable_made_while_a_read_pauses_the_collector_is_kept() -> None:
    """A notebook switches the collector off (``gc.disable()``, say before timing something)
    while a background read holds the pause (the store's worker fetching a session, a queue
    worker resuming one). The read ended and switched it back on behind the user's back."""
    was = gc.isenabled()
    try:
        gc.enable()
        entered, leave = threading.Event(), threading.Event()
        inside: list[int] = []
        reader = threading.Thread(target=_pause_on_another_thread, args=(entered, leave, inside))
        reader.start()
        assert entered.wait(60)
        gc.disable()  # the user's own call, on the notebook's thread, mid-read
        leave.set()
        reader.join(60)
        assert gc.isenabled() is False
        gc.enable()
        with gc_paused():  # and on the same thread, inside the pause
            gc.disable()
        assert gc.isenabled() is False
        with gc_paused():  # a gc.enable() made meanwhile is kept too
            gc.enable()
        assert gc.isenabled() is True
    finally:
        (gc.enable if was else gc.disable)()


def test_a_gc_set_threshold_made_while_a_read_pauses_the_collector_is_kept() -> None:
    before = gc.get_threshold()
    try:
        with gc_paused():
            gc.set_threshold(5000, 20, 20)
        assert gc.get_threshold() == (5000, 20, 20)
    finally:
        gc.set_threshold(*before)


def test_no_collection_runs_inside_a_pause_and_they_resume_after_it() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        assert _automatic_collections(200_000) > 0  # the probe sees collections at all
        with gc_paused():
            assert _automatic_collections(200_000) == 0
        assert gc.isenabled()
        assert _automatic_collections(200_000) > 0
    finally:
        (gc.enable if was else gc.disable)()


def test_a_read_that_raises_still_brings_the_collector_back() -> None:
    stored = graph.StoredNodes([("m", None, T0, "t", "{"), ("n", None, T0, "t", _text())])
    assert gc.isenabled()
    with pytest.raises(json.JSONDecodeError):
        stored.messages()
    assert gc.isenabled()
