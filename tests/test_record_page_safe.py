"""Bug F3: no step the recorder writes can be cut by a SIGKILL into a file that does not parse.

A fenced (multi-line) step is padded into one page; anything longer than a page goes on one
line, which the sink writes kill-safe — pretty-printed JSON holding a redacted field too: it
is compacted onto one line, still JSON, the variable kept."""

from __future__ import annotations

import json
import re

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsreplay import model as m
from wsreplay.parser import parse
from wsreplay.loader import decode
from wsreplay.payloads import compact_json, json_template
from wsreplay.recorder import OP_BINARY, OP_TEXT, Handshake, Recorder, Redaction
from wsreplay.replay import replay_scenario
from wsreplay.template import render_json_source, render_text

from .conftest import T
from .record_helpers import (PAGE, TracingSink, aiohttp_peer, load, record,  # noqa: F401
                             settled, states_after_cuts)

SECRET = "hunter2-s3cr3t-p4ss"
FENCE_OPEN = re.compile(rb"^[^#\n].* (`{3,})$")


def big_login(n: int, password: str = SECRET) -> dict:
    return {"op": "login", "user": {"name": "ann", "password": password, "tags": ["#a", "{{x"]},
            "items": [{"n": i, "price": 1.50, "big": 12345678901234567890, "note": "a  b\tc"}
                      for i in range(n)]}


def pretty(value) -> str:
    return json.dumps(value, indent=2)


def tracing_recorder(tmp_path, fields=("password",)) -> tuple[Recorder, TracingSink]:
    rec = Recorder(tmp_path / "unused.wsr", clock=lambda: 1.0,
                   redaction=Redaction.build(fields=fields))
    sink = rec._sink = TracingSink(tmp_path / "r.wsr")
    sink.t0 = 0.0
    return rec, sink


def fenced_steps(data: bytes) -> list[int]:
    """The size in bytes of every fenced step in a recording (opening line to closing fence)."""
    sizes, lines, i = [], data.split(b"\n"), 0
    while i < len(lines):
        opened = FENCE_OPEN.match(lines[i])
        if opened is None:
            i += 1
            continue
        j = lines.index(opened.group(1), i + 1)
        sizes.append(sum(len(line) + 1 for line in lines[i:j + 1]))
        i = j + 1
    return sizes


def assert_every_cut_parses_to_a_prefix(sink: TracingSink, path) -> list[m.Event]:
    final = parse(path.read_text()).events()
    for state in states_after_cuts(sink.ops):
        events = parse(decode(state)).events()  # the loader's reading (a cut comment's
        # last character may be broken)
        assert events == final[: len(events)]
    return final


# --- compacting keeps the value and the variables ------------------------------------------

def test_compact_json_leaves_out_blanks_between_tokens_only():
    source = '{\n  "a b" : [ 1.50 , -0.0e+1,\t"x\\" y" ],\r\n  "t": "{{C1_T}}" , "n" : null }'
    assert compact_json(source) == '{"a b":[1.50,-0.0e+1,"x\\" y"],"t":"{{C1_T}}","n":null}'
    assert compact_json('"  spaced  "') == '"  spaced  "'


@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                              st.floats(allow_nan=False, allow_infinity=False)),
                    lambda kids: st.one_of(st.lists(kids, max_size=4),
                                           st.dictionaries(st.text(max_size=6), kids,
                                                           max_size=4)), max_leaves=20))
@settings(max_examples=200, deadline=None)
def test_compacted_json_is_the_same_value_on_one_line(value):
    source = json.dumps(value, indent=2, ensure_ascii=False)
    one = compact_json(source)
    assert "\n" not in one and json.loads(one) == value


# --- the residue of F3: pretty JSON longer than a page with a redacted field ----------------

def test_pretty_json_longer_than_a_page_with_a_redacted_field_is_one_json_line(tmp_path):
    rec, sink = tracing_recorder(tmp_path)
    conn = rec.connection(Handshake("ws://h:1/"))
    sent = [big_login(80 + i) for i in range(4)]
    assert all(len(pretty(v)) > 2 * PAGE for v in sent)
    for value in sent:  # one a batch, then a batch of two with a small step between
        conn.messages(m.Side.CLIENT, [(OP_TEXT, pretty(value).encode(), None)])
    conn.messages(m.Side.SERVER, [(OP_TEXT, b'{"ok":true}', None),
                                  (OP_TEXT, pretty(sent[0]).encode(), None)])
    rec.close()
    data = (tmp_path / "r.wsr").read_bytes()
    assert SECRET.encode() not in data
    assert b"```" not in data and fenced_steps(data) == []
    final = assert_every_cut_parses_to_a_prefix(sink, tmp_path / "r.wsr")
    lines = data.decode().splitlines()
    assert len(lines) == 1 + 1 + 1 + 6 + 1  # header, conn, env, the events, the footer
    assert lines[2] == "env C1_PASSWORD"
    for event, value in zip(final, sent + [{"ok": True}, sent[0]]):
        assert isinstance(event.payload, m.Json)
        assert "\n" not in event.payload.source
        rendered = render_json_source(event.payload.source, {"C1_PASSWORD": SECRET})
        assert json.loads(rendered) == value
        # what a json template of the pretty text would be, but for the blanks
        assert event.payload.source == compact_json(json_template(
            pretty(value), lambda key, v: "C1_PASSWORD", Redaction.build(fields=["password"])))


async def login_echo(request: web.Request) -> web.WebSocketResponse:
    """Echoes a login with the right password; answers any other with an error."""
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        right = json.loads(msg.data)["user"]["password"] == SECRET
        await ws.send_str(msg.data if right else '{"error":"bad password"}')
    return ws


async def test_the_compacted_line_replays_against_the_server_it_was_recorded_from(record):
    login = pretty(big_login(60))
    async with aiohttp_peer(login_echo) as port:
        proxy = await record(f"ws://127.0.0.1:{port}",
                             redaction=Redaction.build(fields=["password"]))
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url + "/login") as ws:
                await ws.send_str(login)
                assert (await ws.receive(timeout=T)).data == login
        await settled(proxy)
        data = proxy.recorder.path.read_bytes()
        assert SECRET.encode() not in data and b"```" not in data
        scenario = load(proxy.recorder.path)
        sent, echoed = scenario.events()[:2]
        assert isinstance(sent.payload, m.Json) and sent.payload == echoed.payload
        assert '"password":"{{C1_PASSWORD}}"' in sent.payload.source
        assert len(sent.payload.source) < len(login) and "\n" not in sent.payload.source
        result = await replay_scenario(scenario, env={"C1_PASSWORD": SECRET}, timeout=T)
        assert result.passed, [f.summary for f in result.failures]
        wrong = await replay_scenario(scenario, env={"C1_PASSWORD": "guess"}, timeout=T)
        assert [f.kind for f in wrong.failures] == ["mismatch"]


# --- the property: no step longer than a page spans lines; every cut parses ----------------

_texts = st.one_of(
    st.text(min_size=0, max_size=30),
    st.integers(PAGE // 4, 2 * PAGE).map(lambda n: ("line of text\n" * (n // 13)).rstrip()),
    st.integers(PAGE // 4, 2 * PAGE).map(lambda n: "x" * n),
)
_jsons = st.builds(lambda n, secret, indent: json.dumps(big_login(n, secret), indent=indent),
                   st.integers(0, 3 * PAGE // 70), st.sampled_from([SECRET, "other-pw"]),
                   st.sampled_from([None, 1, 2, "\t"]))
_messages = st.one_of(_texts.map(lambda t: (OP_TEXT, t.encode())),
                      _jsons.map(lambda t: (OP_TEXT, t.encode())),
                      st.binary(max_size=200).map(lambda b: (OP_BINARY, b)))


@given(st.lists(st.tuples(st.sampled_from(list(m.Side)), st.lists(_messages, min_size=1,
                                                                   max_size=3)),
                min_size=1, max_size=5),
       st.sampled_from([(), ("password",)]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
def test_the_recorder_never_writes_a_multi_line_step_longer_than_a_page(tmp_path_factory,
                                                                       batches, fields):
    tmp_path = tmp_path_factory.mktemp("page")
    rec, sink = tracing_recorder(tmp_path, fields)
    conn = rec.connection(Handshake("ws://h:1/"))
    for side, batch in batches:
        conn.messages(side, [(op, data, None) for op, data in batch])
    rec.close()
    data = (tmp_path / "r.wsr").read_bytes()
    assert all(size <= PAGE for size in fenced_steps(data)), fenced_steps(data)
    if fields:
        assert SECRET.encode() not in data
    final = assert_every_cut_parses_to_a_prefix(sink, tmp_path / "r.wsr")
    recorded = [msg for _side, batch in batches for msg in batch]
    variables = {name: value for value, name in sink.names.names.items()}
    assert len(final) == len(recorded)
    for event, (op, sent) in zip(final, recorded):
        if op == OP_BINARY:
            assert event.payload == m.Binary(sent, event.payload.notation)
        elif isinstance(event.payload, m.Json):
            # a capture (a secret the server sent) renders the recorded value when told it
            rendered = render_json_source(event.payload.source, variables, overrides=variables)
            assert json.loads(rendered) == json.loads(sent)
        else:
            assert render_text(event.payload.text, variables, overrides=variables) \
                == sent.decode()


def test_a_cut_inside_a_character_of_a_line_crossing_a_page_still_parses(tmp_path):
    """Found by the property above: a line crossing a page boundary is written as a comment
    first, and a kill at the boundary can stop it inside a two-byte character (here at byte
    4095). The loader reads that last, cut comment with the character replaced."""
    rec, sink = tracing_recorder(tmp_path, ())
    conn = rec.connection(Handshake("ws://h:1/"))
    conn.messages(m.Side.CLIENT, [(OP_BINARY, b"", None)])
    conn.messages(m.Side.CLIENT, [(OP_TEXT, b"0", None), (OP_TEXT, b"x" * 3936, None),
                                  (OP_TEXT, b'0000"' + b"\x1f" * 7 + "\u0080".encode() * 3,
                                   None)])
    rec.close()
    cut = [state for state in states_after_cuts(sink.ops) if len(state) == PAGE]
    assert cut and cut[0][-1:] == b"\xc2"  # the case: a character cut in two
    assert_every_cut_parses_to_a_prefix(sink, tmp_path / "r.wsr")
