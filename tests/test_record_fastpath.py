"""The recorder's direct line-building for messages gives exactly format_step's text."""

from __future__ import annotations

import copy

import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from wsreplay import model as m
from wsreplay.codecs import CODECS
from wsreplay.payloads import HEX_MAX, binary_payload, codec_payload, text_payload
from wsreplay.recorder import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, Handshake, Recorder, Redaction
from wsreplay.sink import Sink
from wsreplay.writer import format_step

EXAMPLES = int(os.environ.get("WSREPLAY_HYPOTHESIS_EXAMPLES", "300"))

def _strings(size: int):
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=size)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
    | _strings(8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["token", "id", "#k", "{{x", "a"]), inner, max_size=3),
    max_leaves=6)
_text_data = st.one_of(
    _strings(40).map(str.encode),
    st.sampled_from(["#", "{{", "\n", "```", " x", "x\r", "a\nb", "\u2028", "\"q"]).map(str.encode),
    _json_values.map(orjson.dumps),
    _json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2)))
_binary_data = st.one_of(st.binary(max_size=HEX_MAX + 2),
                         st.integers(HEX_MAX - 1, 5000).map(os.urandom))
_message = st.one_of(
    st.tuples(st.just(OP_TEXT), _text_data),
    st.tuples(st.just(OP_BINARY), _binary_data),
    st.tuples(st.sampled_from([OP_PING, OP_PONG]), st.one_of(st.binary(max_size=20), _text_data)))


def _expected(conn: str, side: m.Side, at: int, batch, secret, redaction) -> list[str]:
    """The lines the old path wrote: a model Event per message, through format_step."""
    out = []  # one step each
    for opcode, data in batch:
        if opcode == OP_TEXT:
            payload = text_payload(data, secret, redaction)
        elif opcode == OP_BINARY:  # a frame that reads as MessagePack or CBOR is written so
            payload = codec_payload(data, CODECS, secret, redaction) or binary_payload(data)
        else:
            payload = (m.Ping if opcode == OP_PING else m.Pong)(bytes(data)[:125])
        out.append(format_step(m.Event(conn, side, payload, at)))
    return out


@settings(max_examples=EXAMPLES, deadline=None)
@given(batch=st.lists(_message, min_size=1, max_size=6), side=st.sampled_from(list(m.Side)),
       micros=st.integers(0, 10**10), fields=st.sampled_from([(), ("token",)]))
def test_message_lines_equal_format_step_of_the_model_event(batch, side, micros, fields):
    batch = [(op, data[:125] if op in (OP_PING, OP_PONG) else data) for op, data in batch]
    with tempfile.TemporaryDirectory() as folder:
        now = [0.0]
        rec = Recorder(Path(folder) / "r.wsr", clock=lambda: now[0], wall=lambda: 0.0,
                       redaction=Redaction.build(fields=fields))
        conn = rec.connection(Handshake("ws://h:1/"))
        before = rec.path.read_bytes()
        start = conn.sink._end
        now[0] = micros / 1_000_000
        at = conn._now()
        names_before = copy.deepcopy(conn.sink.names)
        conn.messages(side, [(op, data, None) for op, data in batch])
        written = rec.path.read_bytes()[len(before):].decode("utf-8")
        # the env lines of new variables come first: the reference makes the same names
        conn.sink.names = names_before
        secret = conn._server if side is m.Side.SERVER else conn._client
        lines = _expected(conn.name, side, at, batch, secret, conn._redact)
        steps = [f"env {name}\n" for name in conn.sink.names.take_env()] + lines
        # padding before a fenced step that would cross a page: as Sink.aligned puts it
        assert written.encode() == Sink.aligned(SimpleNamespace(_end=start),
                                                [step.encode() for step in steps])
        rec.close()
