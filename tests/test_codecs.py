"""MessagePack and CBOR lines: decoding bounded and safe, matching by meaning with markers and
captures, sending, the language's exact inverse, and the recorder writing them only when the
frame comes back byte for byte -- through the real recording proxy and an npm encoder."""

from __future__ import annotations

import json
import random
import struct
import subprocess
from pathlib import Path

import aiohttp
import cbor2
import msgpack
import pytest

from wsreplay import model as m
from wsreplay.codecs import CodecError, decode, encode, recordable
from wsreplay.engine import Engine
from wsreplay.loader import load
from wsreplay.matchers import match_message
from wsreplay.messages import Message
from wsreplay.parser import parse
from wsreplay.payloads import codec_order, codec_payload
from wsreplay.redact import Redaction
from wsreplay.replay import replay_scenario
from wsreplay.writer import format_payload, write

from .conftest import T
from .enginekit import Run
from .record_helpers import aiohttp_peer, record, settled  # noqa: F401

PEERS = Path(__file__).resolve().parent / "peers"


def line(source: str) -> m.Json:
    return parse(f"wsreplay 1\nconn c ws://h/\nc < {source}\n").events()[0].payload


# --- codecs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("codec,pack", [("msgpack", msgpack.packb), ("cbor", cbor2.dumps)])
def test_a_frame_decodes_to_its_json_value(codec, pack):
    value = {"op": "tick", "px": [1.5, -2, None, True], "nested": {"s": "é"}}
    assert decode(codec, pack(value)) == value
    assert decode(codec, encode(codec, value)) == value


@pytest.mark.parametrize("codec,data,reason", [
    ("msgpack", msgpack.packb({"b": b"\x00"}, use_bin_type=True), "$.b: a byte string"),
    ("msgpack", msgpack.packb(msgpack.ExtType(5, b"x")), "an extension type 5"),
    ("msgpack", msgpack.packb({1: "a"}), "a map key 1 is not a string"),
    ("msgpack", b"\x92\x01", "not MessagePack"),
    ("msgpack", b"\x01\x02", "not MessagePack"),
    ("cbor", cbor2.dumps(cbor2.CBORTag(99, "x")), "a CBOR tag 99"),
    ("cbor", cbor2.dumps([cbor2.undefined]), "undefined has no JSON form"),
    ("cbor", b"\xff\xff", "not CBOR"),
    ("cbor", b"\x81" * 100_000 + b"\x01", "nest"),
    ("cbor", b"\x81" * 300 + b"\x01", "CBOR nested deeper than 256"),
    ("msgpack", b"\x91" * 100_000 + b"\x01", "not MessagePack"),
])
def test_what_json_cannot_hold_is_a_reason_never_an_exception(codec, data, reason):
    with pytest.raises(CodecError) as err:
        decode(codec, data)
    assert reason in err.value.reason


def test_cbor_references_that_blow_up_are_refused_at_once():
    """cbor2 resolves shared references (tags 28/29): 400 bytes can stand for 2**40 items,
    which a walk (or orjson) would never finish. Refused in well under a second."""
    import time

    levels = [b"\xd8\x1c\x82\x01\x02"]
    for k in range(1, 41):
        ref = b"\xd8\x1d" + cbor2.dumps(k - 1)
        levels.append(b"\xd8\x1c\x82" + ref + ref)
    frame = b"\x98" + bytes([len(levels)]) + b"".join(levels)
    t0 = time.perf_counter()
    with pytest.raises(CodecError, match="shared or string references"):
        decode("cbor", frame)
    assert time.perf_counter() - t0 < 0.5
    assert decode("cbor", b"\x82\xd8\x1c\x82\x01\x02\xd8\x1d\x00") == [[1, 2], [1, 2]]


def test_recordable_only_when_the_bytes_come_back_the_same():
    assert recordable("msgpack", msgpack.packb({"a": [1, 2]})) == {"a": [1, 2]}
    float32 = b"\x81\xa1a\xca" + struct.pack(">f", 1.5)  # {"a": 1.5} with a 4-byte float
    assert decode("msgpack", float32) == {"a": 1.5} and recordable("msgpack", float32) is None
    wide_int = b"\x91\xcd\x00\x05"  # [5] as a uint16: re-encoded as a fixint
    assert recordable("msgpack", wide_int) is None
    assert recordable("msgpack", msgpack.packb(7)) is None  # a bare scalar: likely not msgpack
    assert codec_payload(b"\x20\x02\x00\x00") is None  # an MQTT CONNACK stays binary


def test_the_subprotocol_names_the_codec_tried_first():
    both = cbor2.dumps([1])  # 0x81 0x01: a CBOR array, and a MessagePack fixmap too short
    assert codec_order("cbor.v1") == ("cbor", "msgpack")
    assert codec_order("v1.msgpack") == codec_order(None) == ("msgpack", "cbor")
    assert codec_payload(both, codec_order("cbor.v1")).codec == "cbor"


def test_secrets_in_a_frame_are_redacted_like_json():
    data = msgpack.packb({"op": "auth", "token": "s3cr3t"})
    payload = codec_payload(data, name_for=lambda key, value: "C1_TOKEN",
                            redaction=Redaction.build(fields=["token"]))
    assert payload.source == '{"op":"auth","token":"{{C1_TOKEN}}"}'
    assert "s3cr3t" not in format_payload(payload)


# --- the language -----------------------------------------------------------------------------


def test_msgpack_and_cbor_lines_parse_and_write_back_exactly():
    source = ("wsreplay 1\nconn c ws://h/\n"
              'c > msgpack {"op":"sub","id":"{{id = #uuid}}"}\n'
              'c < cbor subset {"id":"{{id}}"}\n'
              'c < msgpack ignore $.ts {"id":"{{id}}","ts":0}\n'
              'c < cbor ```\n[1,\n 2]\n```\n')
    scenario = parse(source)
    kinds = [(e.payload.codec, e.payload.subset, e.payload.ignore) for e in scenario.events()]
    assert kinds == [("msgpack", False, ()), ("cbor", True, ()), ("msgpack", False, ("$.ts",)),
                     ("cbor", False, ())]
    assert parse(write(scenario)) == scenario and write(scenario) == source


def test_matching_is_by_meaning_with_markers_captures_subset_and_ignore():
    payload = line('msgpack subset {"type":"next","id":"{{sub = #uuid}}","n":"#number"}')
    frame = msgpack.packb({"n": 3.0, "extra": 1, "type": "next",
                           "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"})
    hit = match_message(payload, Message.of_binary(frame), {})
    assert hit.ok and hit.captures == {"sub": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}
    miss = match_message(line('cbor {"n":"#string"}'), Message.of_binary(cbor2.dumps({"n": 1})), {})
    assert not miss.ok and miss.path == "$.n" and "expected #string, got 1" in miss.reason
    as_text = match_message(payload, Message.of_text('{"type":"next"}'), {})
    assert not as_text.ok and "expected a binary (msgpack) message, got a text" in as_text.reason
    garbage = match_message(payload, Message.of_binary(b"\xc1"), {})
    assert not garbage.ok and "not MessagePack" in garbage.reason


def test_a_sent_line_encodes_the_rendered_value_and_binds_its_captures():
    run = Run("""
        conn c ws://h/
        c > cbor {"op":"sub","id":"{{id = #uuid}}","n":"{{n = #number like 5}}","gone":"#absent"}
        c < msgpack {"echo":"{{id}}","n":"{{n}}"}
    """, rng=random.Random(3))
    (sent,) = run.sends()
    value = cbor2.loads(sent.data)
    assert set(value) == {"op", "id", "n"} and value["n"] == 5
    run.recv("c", Message.of_binary(msgpack.packb({"echo": value["id"], "n": 5})))
    assert run.result.passed, run.result.failures


# --- recording through the real proxy -------------------------------------------------------


async def _codec_upstream(frames: list[bytes]):
    """An aiohttp upstream answering the client's first message with ``frames``."""
    from aiohttp import web

    async def handle(request):
        ws = web.WebSocketResponse(protocols=("cbor.v1", "msgpack.v1"))
        await ws.prepare(request)
        async for _msg in ws:
            for frame in frames:
                await ws.send_bytes(frame)
            break
        await ws.close()
        return ws

    return aiohttp_peer(handle)


def _node_msgpack(value) -> bytes:
    """``value`` encoded by npm's @msgpack/msgpack, an encoder not written here."""
    script = ("const {encode} = require('@msgpack/msgpack');"
              "console.log(Buffer.from(encode(JSON.parse(process.argv[1]))).toString('hex'));")
    out = subprocess.run(["node", "-e", script, json.dumps(value)], cwd=PEERS,
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return bytes.fromhex(out.strip())


async def _client(url: str, expect: int) -> list[bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, protocols=("msgpack.v1",)) as ws:
            await ws.send_str("go")
            got = [(await ws.receive(timeout=T)).data for _ in range(expect)]
            await ws.close()
    return got


async def test_the_recorder_writes_frames_that_come_back_the_same_and_they_replay(record):
    value = {"type": "snapshot", "items": [{"id": 1, "px": 101.25}, {"id": 2, "px": None}],
             "tag": "#hot"}
    node_msgpack = _node_msgpack(value)
    float32 = b"\x81\xa1a\xca" + struct.pack(">f", 1.5)
    frames = [msgpack.packb(value), cbor2.dumps(value), node_msgpack, float32]
    async with await _codec_upstream(frames) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        assert await _client(proxy.url, len(frames)) == frames
        await settled(proxy)
        text = proxy.recorder.path.read_text()
        lines = [ln.split(" ", 3)[3] for ln in text.splitlines() if " c1 < " in ln]
        compact = json.dumps(value, separators=(",", ":")).replace('"#hot"', '"##hot"')
        assert lines[:4] == [f"msgpack {compact}", f"cbor {compact}", f"msgpack {compact}",
                             f"hex {float32.hex()}"]
        scenario = load(proxy.recorder.path)
        result = await replay_scenario(scenario)
    assert result.passed, result.failures
