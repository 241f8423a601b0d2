"""The recorder without sockets: escaping, payload choice, redaction, the file's atomicity."""

from __future__ import annotations

import json
import os

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsreplay import model as m
from wsreplay.parser import parse
from wsreplay.payloads import BadText, escape_template, json_template
from wsreplay.recorder import (OP_BINARY, OP_PING, OP_PONG, OP_TEXT, Handshake, Recorder, Redaction,
                               Sink)
from wsreplay.template import render_json_source, render_text, text_pattern

from .record_helpers import PAGE, TracingSink, states_after_cuts


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recorder(tmp_path, **options) -> tuple[Recorder, FakeClock]:
    clock = FakeClock()
    rec = Recorder(tmp_path / "r.wsr", clock=clock, wall=lambda: 0.0, **options)
    return rec, clock


def scenario_of(rec: Recorder) -> m.Scenario:
    return parse(rec.path.read_text(encoding="utf-8"), str(rec.path))


# --- escaping: recorded text reads back as exactly that text ------------------------------

@pytest.mark.parametrize("text,escaped", [
    ("plain", "plain"), ("{{x}}", "{{'{{'}}x}}"), ("{{{", "{{'{{'}}{"), ("a}}b", "a}}b"),
    ("#not a marker", "#not a marker"),
])
def test_escape_template(text, escaped):
    assert escape_template(text) == escaped
    assert render_text(escaped, {}) == text


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_any_text_renders_and_matches_as_itself(text):
    source = escape_template(text)
    assert render_text(source, {}) == text
    assert text_pattern(source, {}).match(text) is not None


@pytest.mark.parametrize("source,expected", [
    ('{"a":1}', '{"a":1}'),
    ('{"room":"#general"}', '{"room":"##general"}'),
    ('{"#key":"v"}', '{"#key":"v"}'),  # keys are literal: left alone
    ('{"t":"{{x}}","{{k}}":1}', '{"t":"{{\'{{\'}}x}}","{{k}}":1}'),
    ('"#top"', '"##top"'),
    ('[ "\\u0023x" , "a{\\u007bb" ]', '[ "#\\u0023x" , "a{{\'{{\'}}b" ]'),
    ('{\n  "a" : "#x"\n}', '{\n  "a" : "##x"\n}'),
])
def test_json_template(source, expected):
    assert json_template(source) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53)
    | st.text(alphabet=st.sampled_from("#{}ab\\\"é \n")),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet="#{}ab", max_size=4), inner, max_size=4),
    max_leaves=12)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_any_json_sent_from_its_recording_is_the_same_value(value):
    source = orjson.dumps(value).decode()
    template = json_template(source)
    assert json.loads(render_json_source(template, {})) == value
    if "#" not in source and "{{" not in source:
        assert template == source


def test_json_fields_are_redacted_at_any_depth_string_values_only():
    names = []

    def secret(key, value):
        names.append((key, value))
        return f"C1_{key.upper()}"

    source = '{"password":"p1","n":{"password":"p2","token":5},"list":[{"password":"p3"}]}'
    out = json_template(source, secret, Redaction.build(fields=["password", "token"]))
    assert out == ('{"password":"{{C1_PASSWORD}}","n":{"password":"{{C1_PASSWORD}}","token":5},'
                   '"list":[{"password":"{{C1_PASSWORD}}"}]}')
    assert names == [("password", "p1"), ("password", "p2"), ("password", "p3")]


# --- payloads ------------------------------------------------------------------------------

def record_one(tmp_path, opcode, data, **options) -> m.Payload:
    rec, _ = recorder(tmp_path, **options)
    conn = rec.connection(Handshake("ws://h:1/"))
    conn.messages(m.Side.CLIENT, [(opcode, data, None)])
    return scenario_of(rec).events()[0].payload


@pytest.mark.parametrize("data,payload", [
    (b'{"a": [1, 2]}', m.Json('{"a": [1, 2]}')), (b"[1]", m.Json("[1]")),
    # a bare JSON scalar is a protocol's text (Engine.IO's ping `2`), as reports show it
    (b"42", m.Text("42")), (b"2", m.Text("2")), (b"true", m.Text("true")),
    (b'"s"', m.Text('"s"')), (b"null", m.Text("null")),
    (b'{"a":\n 1}', m.Json('{"a":\n 1}')),
    (b' {"a":1}', m.Text(' {"a":1}')), (b'{"a":1}\n', m.Text('{"a":1}\n')),
    (b'{"a":\r\n1}', m.Text('{"a":\r\n1}')), (b"{nope}", m.Text("{nope}")),
    (b"", m.Text("")), ("caf\u00e9 \u2028".encode(), m.Text("caf\u00e9 \u2028")),
])
def test_text_messages_are_json_when_they_are_exactly_a_json_object_or_array(tmp_path, data, payload):
    assert record_one(tmp_path, OP_TEXT, data) == payload


def test_binary_is_hex_when_small_and_base64_when_large(tmp_path):
    assert record_one(tmp_path, OP_BINARY, b"\x00" * 64) == m.Binary(b"\x00" * 64)
    (tmp_path / "r.wsr").unlink()
    big = os.urandom(65)
    assert record_one(tmp_path, OP_BINARY, big) == m.Binary(big, m.BinaryNotation.B64)


def test_ping_and_pong_keep_their_payloads(tmp_path):
    rec, _ = recorder(tmp_path)
    conn = rec.connection(Handshake("ws://h:1/"))
    conn.messages(m.Side.SERVER, [(OP_PING, bytearray(b"\x00\xff"), None), (OP_PONG, b"hex", None)])
    assert [e.payload for e in scenario_of(rec).events()] == [m.Ping(b"\x00\xff"), m.Pong(b"hex")]


def test_invalid_utf8_records_what_came_before_and_says_where(tmp_path):
    rec, _ = recorder(tmp_path)
    conn = rec.connection(Handshake("ws://h:1/"))
    with pytest.raises(BadText) as info:
        conn.messages(m.Side.CLIENT, [(OP_TEXT, b"ok", None), (OP_TEXT, b"\xff", None)])
    assert info.value.index == 1
    assert [e.payload for e in scenario_of(rec).events()] == [m.Text("ok")]
    assert rec.summary.messages == 1


# --- steps, times, redaction ----------------------------------------------------------------

def test_connect_events_and_closes_with_times_from_the_clock(tmp_path):
    rec, clock = recorder(tmp_path)
    rec.start()  # @0.000: the file's creation
    clock.now = 100.25
    hs = Handshake("ws://h:1/chat?room=1&access_token=abc", (("Cookie", "s=1"), ("X-A", "{{b")),
                   ("v1", "v2"), True, 101, "v2", False, (("Set-Cookie", "n=2"),))
    conn = rec.connection(hs)
    clock.now = 101.5
    conn.messages(m.Side.CLIENT, [(OP_TEXT, b"hi", None), (OP_BINARY, b"\x01", None)])
    conn.close(m.Side.SERVER, 4000, "bye")
    conn.close(m.Side.CLIENT, 0, "")
    conn.drop(m.Side.SERVER)
    rec.close()
    scenario = scenario_of(rec)
    assert scenario.connections() == [m.Connect(
        "c1", "ws://h:1/chat?room=1", at=250_000, query=(("access_token", "{{C1_ACCESS_TOKEN}}"),),
        headers=(("Cookie", "{{C1_COOKIE}}"), ("X-A", "{{'{{'}}b")), protocols=("v1", "v2"),
        compress=True, expect_protocol="v2", expect_headers=(("Set-Cookie", "{{C1_SET_COOKIE = #any}}"),),
        expect_compress=False)]
    assert [(e.side, e.payload, e.at) for e in scenario.events()] == [
        (m.Side.CLIENT, m.Text("hi"), 1_500_000), (m.Side.CLIENT, m.Binary(b"\x01"), 1_500_000),
        (m.Side.SERVER, m.Close(4000, "bye"), 1_500_000), (m.Side.CLIENT, m.Close(), 1_500_000),
        (m.Side.SERVER, m.Drop(), 1_500_000)]
    envs = [s.name for s in scenario.steps if isinstance(s, m.Env)]
    assert envs == ["C1_ACCESS_TOKEN", "C1_COOKIE"]  # the server's cookie: a capture
    assert rec.path.read_text().splitlines()[1].endswith("@0.000 is 1970-01-01T00:00:00.000000+00:00")


def test_a_refused_handshake_records_its_status(tmp_path):
    rec, _ = recorder(tmp_path)
    rec.connection(Handshake("ws://h:1/", protocols=("a",), compress=True, status=403))
    step = scenario_of(rec).connections()[0]
    assert (step.expect_status, step.expect_protocol, step.expect_compress) == (403, None, None)


def test_one_secret_one_variable_a_different_value_a_new_one(tmp_path):
    rec, _ = recorder(tmp_path)
    for value in ("Bearer a", "Bearer a", "Bearer b"):
        rec.connection(Handshake("ws://h:1/", (("Authorization", value),)))
    assert [dict(c.headers)["Authorization"] for c in scenario_of(rec).connections()] == [
        "{{C1_AUTHORIZATION}}", "{{C1_AUTHORIZATION}}", "{{C3_AUTHORIZATION}}"]


def test_configured_names_and_no_redact(tmp_path):
    redaction = Redaction.build(headers=["X-Key"], query=["sig"], fields=["pin"])
    rec, _ = recorder(tmp_path, redaction=redaction)
    conn = rec.connection(Handshake("ws://h:1/?sig=s%20g&a=1", (("x-key", "k"),)))
    conn.messages(m.Side.SERVER, [(OP_TEXT, b'{"pin":"1234"}', None)])
    text = rec.path.read_text()
    assert "s g" not in text and "s%20g" not in text and "1234" not in text
    assert "header x-key: {{C1_X_KEY}}" in text and "query sig = {{C1_SIG}}" in text
    rec2 = Recorder(tmp_path / "raw.wsr", redaction=Redaction(enabled=False))
    rec2.connection(Handshake("ws://h:1/?token=t", (("Authorization", "x"),)))
    assert "?token=t" in rec2.path.read_text() and "Authorization: x" in rec2.path.read_text()


def test_split_files_have_their_own_clock_and_variables(tmp_path):
    rec, clock = recorder(tmp_path, split=True)
    first = rec.connection(Handshake("ws://h:1/", (("Cookie", "same"),)))
    clock.now = 105.0
    second = rec.connection(Handshake("ws://h:1/", (("Cookie", "same"),)))
    first.end()
    second.end()
    one = parse((tmp_path / "r-c1.wsr").read_text())
    two = parse((tmp_path / "r-c2.wsr").read_text())
    assert (one.connections()[0].at, two.connections()[0].at) == (0, 0)
    assert dict(two.connections()[0].headers)["Cookie"] == "{{C2_COOKIE}}"
    assert not (tmp_path / "r.wsr").exists()


def test_summary_and_footer(tmp_path):
    rec, _ = recorder(tmp_path)
    conn = rec.connection(Handshake("ws://h:1/"))
    conn.messages(m.Side.CLIENT, [(OP_TEXT, b"abc", None), (OP_BINARY, b"12", None)])
    summary = rec.close()
    assert (summary.connections, summary.messages, summary.bytes) == (1, 2, 5)
    assert rec.path.read_text().endswith("# end: 1 connections, 2 messages, 5 bytes\n")
    assert summary.files == [rec.path]


def test_an_existing_file_is_never_overwritten(tmp_path):
    (tmp_path / "r.wsr").write_text("precious")
    with pytest.raises(FileExistsError):
        Sink(tmp_path / "r.wsr")
    assert (tmp_path / "r.wsr").read_text() == "precious"


# --- the file parses after any cut a SIGKILL can make ---------------------------------------



def test_every_state_a_kill_can_leave_parses_to_a_prefix_of_the_recording(tmp_path):
    sink = TracingSink(tmp_path / "cut.wsr")
    sink.t0 = 0.0
    rec = Recorder(tmp_path / "unused.wsr", clock=lambda: 1.0)
    rec._sink = sink
    conn = rec.connection(Handshake("ws://h:1/", (("X-Long", "v" * (2 * PAGE)), ("X-B", "b"))))
    conn.messages(m.Side.CLIENT, [(OP_TEXT, f"message {i}".encode(), None) for i in range(300)])
    conn.messages(m.Side.SERVER, [(OP_BINARY, os.urandom(3 * PAGE), None),
                                  (OP_TEXT, b"x" * PAGE, None), (OP_TEXT, b"after", None)])
    conn.messages(m.Side.CLIENT, [(OP_TEXT, b'{"n":%d}' % i, None) for i in range(50)])
    conn.close(m.Side.CLIENT, 1000, "done")
    final = parse((tmp_path / "cut.wsr").read_text()).events()
    seen = 0
    for state in states_after_cuts(sink.ops):
        events = parse(state.decode("utf-8")).events()
        assert events == final[: len(events)]
        seen += 1
    assert seen > 30 and len(final) == 300 + 3 + 50 + 1


def test_multi_line_steps_land_inside_one_page_so_a_kill_cannot_split_them(tmp_path):
    pretty = json.dumps({"id": 7, "items": [{"n": i, "tag": "#x"} for i in range(40)]}, indent=2)
    sink = TracingSink(tmp_path / "fenced.wsr")
    sink.t0 = 0.0
    rec = Recorder(tmp_path / "unused.wsr", clock=lambda: 1.0)
    rec._sink = sink
    conn = rec.connection(Handshake("ws://h:1/"))
    for i in range(60):  # ~1.3 KiB fenced steps: many would cross a page boundary
        conn.messages(m.Side.SERVER, [(OP_TEXT, pretty.replace("7", str(i), 1).encode(), None),
                                      (OP_TEXT, b"one line", None)])
    text = (tmp_path / "fenced.wsr").read_text()
    final = parse(text).events()
    first = pretty.replace("7", "0", 1).replace("#x", "##x")
    assert [e.payload for e in final[:2]] == [m.Json(first), m.Text("one line")]
    assert len(final) == 120 and "\n#    " in text  # padding comments were needed
    for state in states_after_cuts(sink.ops):
        events = parse(state.decode("utf-8")).events()
        assert events == final[: len(events)]
