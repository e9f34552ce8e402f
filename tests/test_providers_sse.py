"""The SSE decoder yields the same events however the bytes are cut into network chunks."""

from __future__ import annotations

from lash_nb._providers.sse import SseDecoder, SseEvent

WIRE = (
    ": a comment line\r\n"
    "data: {\"t\":\"caf\u00e9 \U0001f600\"}\r\n"
    "\r\n"
    "event: message_delta\n"
    "data: first line\n"
    "data: second line\n"
    "id: 7\n"
    "\n"
    "data:no-space\r"
    "\r"
    "retry: 1000\n"
    "event: lonely\n"
    "\n"
    "data: [DONE]\n\n"
).encode("utf-8")

EXPECTED = [
    SseEvent('{"t":"caf\u00e9 \U0001f600"}'),
    SseEvent("first line\nsecond line", event="message_delta", id="7"),
    SseEvent("no-space", id="7"),
    SseEvent("[DONE]", id="7"),
]


def decode(pieces: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    out: list[SseEvent] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    out.extend(decoder.flush())
    return out


def test_whole_buffer_decodes_to_the_expected_events() -> None:
    assert decode([WIRE]) == EXPECTED


def test_every_two_way_split_decodes_the_same() -> None:
    for cut in range(len(WIRE) + 1):
        assert decode([WIRE[:cut], WIRE[cut:]]) == EXPECTED, f"split at byte {cut}"


def test_byte_at_a_time_decodes_the_same() -> None:
    assert decode([WIRE[i:i + 1] for i in range(len(WIRE))]) == EXPECTED


def test_three_way_splits_around_multibyte_characters_decode_the_same() -> None:
    emoji_at = WIRE.index("\U0001f600".encode())
    for a in range(emoji_at - 2, emoji_at + 5):
        for b in range(a, emoji_at + 6):
            assert decode([WIRE[:a], WIRE[a:b], WIRE[b:]]) == EXPECTED


def test_an_event_is_dispatched_only_at_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: one\n") == []
    assert decoder.feed(b"\n") == [SseEvent("one")]


def test_a_carriage_return_at_a_chunk_end_waits_for_a_possible_line_feed() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r\n") == [SseEvent("a")]


def test_flush_dispatches_an_unterminated_last_event_of_a_clean_close() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.flush() == [SseEvent("[DONE]")]


def test_fields_without_data_dispatch_nothing() -> None:
    assert decode([b"event: ping\nid: 3\n\n: only a comment\n\n"]) == []


def test_an_empty_data_field_dispatches_an_empty_event() -> None:
    assert decode([b"data:\n\n"]) == [SseEvent("")]
