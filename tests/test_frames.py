"""The frame reader of the proxy's fast path (wsreplay/frames.py): pure, fed bytes."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.compliance.frames import BINARY, CLOSE, CONT, PING, PONG, TEXT, Frame
from wsreplay.frames import Deflate, FrameReader, agreed_deflate

MiB = 1 << 20


def client(*frames: Frame) -> bytes:
    return b"".join(f.encode(mask=True) for f in frames)


def server(*frames: Frame) -> bytes:
    return b"".join(f.encode(mask=False) for f in frames)


def read(data: bytes, masked: bool = True, max_size: int = MiB, cuts=()):
    """Feed ``data`` cut at ``cuts``; the items (payloads as given) and the bytes they cover."""
    reader = FrameReader(masked, max_size)
    items, covered = [], b""
    for a, b in zip((0, *cuts), (*cuts, len(data))):
        chunk, got = reader.feed(data[a:b])
        items += [(op, payload) for op, payload, _ in got]
        if got:
            covered += chunk[: got[-1][2]]
    return reader, items, covered


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("masked", [True, False])
def test_every_length_encoding_reads_back_exact(n, masked):
    payload = bytes(i % 251 for i in range(n))
    data = (client if masked else server)(Frame(BINARY, payload), Frame(TEXT, b"after"))
    reader, items, covered = read(data, masked)
    assert items == [(BINARY, payload), (TEXT, b"after")]
    assert covered == data and reader.error is None and reader.pending == 0


def test_fragments_are_forwarded_one_by_one_and_the_message_comes_whole():
    data = client(Frame(TEXT, b"frag", fin=False), Frame(PING, b"p"),
                  Frame(CONT, b"men", fin=False), Frame(CONT, b"ted"))
    reader, items, covered = read(data)
    assert items == [(CONT, None), (PING, b"p"), (CONT, None), (TEXT, b"fragmented")]
    assert covered == data


@settings(max_examples=200)
@given(st.data())
def test_any_cutting_of_the_stream_gives_the_same_frames_and_bytes(data):
    frames = [Frame(TEXT, "h\u00e9\u20ac\U0001F600".encode() * 3, fin=False), Frame(PONG, b"x"),
              Frame(CONT, b"!"), Frame(BINARY, bytes(300)), Frame(PING),
              Frame(CLOSE, struct.pack("!H", 1000) + b"bye")]
    stream = client(*frames)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=12))))
    reader, items, covered = read(stream, cuts=cuts)
    whole = "h\u00e9\u20ac\U0001F600".encode() * 3 + b"!"
    assert items == [(CONT, None), (PONG, b"x"), (TEXT, whole), (BINARY, bytes(300)),
                     (PING, b""), (CLOSE, (1000, "bye"))]
    assert covered == stream and reader.closed and reader.error is None


@pytest.mark.parametrize("frame,masked,code,why", [
    (Frame(TEXT, b"x", rsv=1), True, 1002, "reserved bits"),
    (Frame(3, b"x"), True, 1002, "unknown opcode 3"),
    (Frame(11, b"x"), False, 1002, "unknown opcode 11"),
    (Frame(PING, b"x", fin=False), True, 1002, "fragmented control frame"),
    (Frame(PING, bytes(126)), True, 1002, "control frame longer than 125"),
    (Frame(CONT, b"x"), True, 1002, "continuation frame with no message"),
    (Frame(CLOSE, b"\x03"), True, 1002, "1-byte payload"),
    (Frame(CLOSE, struct.pack("!H", 1005)), True, 1002, "close code 1005"),
    (Frame(CLOSE, struct.pack("!H", 5000)), False, 1002, "close code 5000"),
    (Frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), True, 1007, "invalid UTF-8"),
    (Frame(BINARY, bytes(1001)), True, 1009, "larger than 1000 bytes"),
])
def test_a_frame_that_breaks_the_protocol_stops_the_reader_with_its_code(frame, masked, code,
                                                                          why):
    before = Frame(TEXT, b"fine")
    data = frame.encode(mask=masked)
    reader, items, covered = read(before.encode(mask=masked) + data + before.encode(masked),
                                  masked, max_size=1000)
    assert items == [(TEXT, b"fine")]  # what came before is kept; nothing after is read
    assert reader.error[0] == code and why in reader.error[1]
    assert reader.closed


def test_the_mask_must_match_the_side():
    reader, items, _ = read(server(Frame(TEXT, b"x")), masked=True)
    assert reader.error == (1002, "unmasked frame from the client")
    reader, items, _ = read(client(Frame(TEXT, b"x")), masked=False)
    assert reader.error == (1002, "masked frame from the server")


def test_a_new_message_inside_a_fragmented_one_is_refused():
    reader, items, _ = read(client(Frame(TEXT, b"a", fin=False), Frame(BINARY, b"b")))
    assert items == [(CONT, None)] and reader.error[0] == 1002


def test_invalid_utf8_fails_at_the_fragment_that_holds_it_not_at_the_end():
    # \xce\xba is kappa; \xce cut at a fragment end is fine, \xff is never valid
    data = client(Frame(TEXT, b"\xce", fin=False), Frame(CONT, b"\xba\xff", fin=False))
    reader, items, _ = read(data)
    assert items == [(CONT, None)] and reader.error == (1007, "invalid UTF-8")
    reader, items, _ = read(client(Frame(TEXT, b"ok\xce", fin=False), Frame(CONT, b"")))
    assert reader.error == (1007, "invalid UTF-8")  # cut short at the end of the message


def test_the_size_limit_counts_every_fragment_and_fails_on_the_header():
    data = client(Frame(BINARY, bytes(600), fin=False), Frame(CONT, bytes(600)))
    reader = FrameReader(True, 1000)
    chunk, items = reader.feed(data[:610])  # 608: the first frame; the second header: cut
    assert reader.error is None
    chunk, items = reader.feed(data[610:620])  # its header: 600 more would make 1200
    assert reader.error == (1009, "message larger than 1000 bytes")


def test_a_64_bit_length_with_its_top_bit_set_is_a_protocol_error():
    data = bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big") + bytes(4)
    reader, items, _ = read(data, max_size=1 << 62)
    assert reader.error[0] == 1002


def test_a_close_frame_ends_the_reading_and_what_follows_is_ignored():
    data = server(Frame(CLOSE), Frame(TEXT, b"late"), Frame(TEXT, b"x", rsv=2))
    reader, items, covered = read(data, masked=False)
    assert items == [(CLOSE, (None, ""))] and reader.error is None
    assert covered == server(Frame(CLOSE))
    assert reader.feed(server(Frame(TEXT, b"more"))) == (server(Frame(TEXT, b"more")), [])


# --- permessage-deflate, agreed by the peers and passed through -----------------------------

def deflated(data: bytes, compressor) -> bytes:
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


@pytest.mark.parametrize("answer,expected", [
    ("", None),
    ("permessage-deflate", Deflate()),
    ("permessage-deflate; client_max_window_bits=12; server_no_context_takeover",
     Deflate(server_no_context_takeover=True)),
    ('PerMessage-Deflate; client_no_context_takeover; server_max_window_bits="10"',
     Deflate(client_no_context_takeover=True)),
])
def test_the_agreed_deflate_is_read_from_the_servers_answer(answer, expected):
    assert agreed_deflate(answer) == expected


@pytest.mark.parametrize("answer", [
    "x-webkit-deflate-frame", "permessage-deflate, permessage-deflate",
    "permessage-deflate; unknown_param", "permessage-deflate; server_max_window_bits=ten",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
])
def test_an_answer_the_reader_could_not_follow_is_refused(answer):
    with pytest.raises(ValueError):
        agreed_deflate(answer)


@pytest.mark.parametrize("reset", [False, True])
def test_compressed_messages_are_inflated_in_the_senders_context(reset):
    compressor = zlib.compressobj(wbits=-15)
    texts = [b"hello hello hello", b"hello hello hello again", b"plain", b"hello" * 50]
    frames = []
    for i, text in enumerate(texts):
        if text == b"plain":
            frames.append(Frame(TEXT, text))  # an uncompressed message between compressed ones
            continue
        if reset:
            compressor = zlib.compressobj(wbits=-15)
        payload = deflated(text, compressor)
        if i == 3:  # fragmented: RSV1 on the first frame only
            frames += [Frame(TEXT, payload[:5], fin=False, rsv=4), Frame(CONT, payload[5:])]
        else:
            frames.append(Frame(TEXT, payload, rsv=4))
    agreed = Deflate(server_no_context_takeover=reset)
    reader = FrameReader(False, MiB, agreed)
    chunk, items = reader.feed(server(*frames))
    assert [p for op, p, _ in items if op] == texts and reader.error is None


@pytest.mark.parametrize("frame,code", [
    (Frame(PING, b"x", rsv=4), 1002),  # RSV1 on a control frame
    (Frame(TEXT, b"\x01\x02\x03", rsv=4), 1007),  # not deflate data
    (Frame(TEXT, b"x", rsv=2), 1002),  # RSV2 means nothing here either
])
def test_deflate_rules(frame, code):
    reader, items, _ = read(frame.encode(mask=True))
    assert reader.error is None or reader.error[0] == 1002  # no deflate: RSV1 is an error
    reader = FrameReader(True, MiB, Deflate())
    reader.feed(frame.encode(mask=True))
    assert reader.error[0] == code


def test_a_message_that_inflates_past_the_limit_fails_1009():
    bomb = deflated(bytes(2000), zlib.compressobj(wbits=-15))
    assert len(bomb) < 100
    reader = FrameReader(True, 1000, Deflate())
    reader.feed(Frame(BINARY, bomb, rsv=4).encode(mask=True))
    assert reader.error == (1009, "message larger than 1000 bytes")
