"""Matching received messages and handshakes against scenario lines."""

from __future__ import annotations

import pytest

from wsreplay import model as m
from wsreplay.matchers import (json_equal, match_handshake, match_message, match_request,
                               split_url)
from wsreplay.messages import Handshake, Message, Request


def mj(source: str, got: str, variables=None, **kw):
    return match_message(m.Json(source, **kw), Message.of_text(got), variables or {})


def test_json_is_compared_by_meaning():
    assert mj('{"a":1,"b":[1,2]}', '{ "b": [1, 2.0], "a": 1.0 }').ok
    assert not mj('{"a":true}', '{"a":1}').ok
    assert not mj('{"a":1}', '{"a":true}').ok


@pytest.mark.parametrize("source,got,path,reason", [
    ('{"a":{"b":[1,2]}}', '{"a":{"b":[1,3]}}', "$.a.b[1]", "expected 2, got 3"),
    ('{"a":1}', '{"a":1,"z":2}', "$.z", "unexpected key 'z'"),
    ('{"a":1,"b":2}', '{"a":1}', "$.b", "missing key 'b'"),
    ('{"a":[1]}', '{"a":[1,2]}', "$.a", "expected 1 items, got 2"),
    ('{"a b":"x"}', '{"a b":"y"}', '$["a b"]', 'expected "x", got "y"'),
    ('{"id":"#uuid"}', '{"id":"x"}', "$.id", 'expected #uuid, got "x"'),
    ('{"x":"#absent"}', '{"x":null}', "$.x", "expected no key 'x'"),
    ('[{"a":1}]', '{"a":1}', "$", "expected an array"),
])
def test_the_first_difference_has_a_json_path_and_reason(source, got, path, reason):
    hit = mj(source, got)
    assert not hit.ok and hit.path == path and reason in hit.reason


def test_subset_allows_extra_keys_at_every_depth():
    assert mj('{"type":"tick","d":{"p":1}}', '{"type":"tick","n":2,"d":{"p":1,"q":0}}',
              subset=True).ok
    assert not mj('{"type":"tick"}', '{"type":"tock","n":2}', subset=True).ok


def test_ignore_paths_leave_fields_out():
    hit = mj('{"type":"batch","items":[{"v":1}]}',
             '{"type":"batch","ts":99,"items":[{"v":1,"id":"a"}]}',
             ignore=("$.ts", "$.items[*].id"))
    assert hit.ok
    assert not mj('{"a":1}', '{"a":1,"b":2}', ignore=("$.c",)).ok


def test_placeholders_in_json_capture_typed_and_compare_typed():
    hit = mj('{"id":"{{id = #number}}","n":"{{n}}","s":"user-{{u = #string}}"}',
             '{"id":7,"n":3.0,"s":"user-bob"}', {"n": 3})
    assert hit.ok and hit.captures == {"id": 7, "u": "bob"}
    miss = mj('{"n":"{{n}}"}', '{"n":"3"}', {"n": 3})
    assert miss.path == "$.n" and '{{n}} = 3' in miss.reason


def test_escaped_hash_is_a_literal_string():
    assert mj('{"room":"##general"}', '{"room":"#general"}').ok


def test_not_json_is_a_mismatch_not_a_crash():
    hit = mj('{"a":1}', "hello")
    assert not hit.ok and hit.reason.startswith("not JSON")


def test_text_regex_binary_control_and_close():
    assert match_message(m.Text("hi {{#number}}"), Message.of_text("hi 3"), {}).ok
    hit = match_message(m.Text("hello world"), Message.of_text("hello there"), {})
    assert hit.path == "char 6" and "texts differ at character 6" in hit.reason
    r = match_message(m.Regex(r"^pong (?P<n>\d+)$"), Message.of_text("pong 12"), {})
    assert r.ok and r.captures == {"n": "12"}
    assert match_message(m.Regex("a.b"), Message.of_text("a\nb"), {}).ok
    b = match_message(m.Binary(b"\x00\x01\x02"), Message.of_binary(b"\x00\x09\x02"), {})
    assert b.path == "byte 1" and "expected 0x01, got 0x09" in b.reason
    assert not match_message(m.Ping(b"a"), Message.pong(b"a"), {}).ok
    assert match_message(m.Close(1000), Message.close(1000, "whatever"), {}).ok
    assert match_message(m.Close(), Message.close(None), {}).ok
    assert not match_message(m.Close(1000, "x"), Message.close(1000, "y"), {}).ok


def test_binary_text_confusion_is_impossible():
    assert not match_message(m.Text("hi"), Message.of_binary(b"hi"), {}).ok
    with pytest.raises(TypeError):
        Message.of_binary(b"hi").text


def test_invalid_utf8_text_is_a_mismatch():
    hit = match_message(m.Text("x"), Message(Message.of_text("").kind, b"\xff"), {})
    assert "not valid UTF-8" in hit.reason


def test_json_equal_is_strict_about_types():
    assert json_equal({"a": [1, None]}, {"a": [1.0, None]})
    assert not json_equal(True, 1) and not json_equal(0, False) and not json_equal("1", 1)


def test_handshake_status_protocol_compress_headers():
    c = m.Connect("a", "ws://h/", expect_protocol="v2", expect_compress=True,
                  expect_headers=(("Set-Cookie", "sid={{sid = #regex [0-9a-f]+}}"),))
    ok = match_handshake(c, Handshake(101, "v2", (("set-cookie", "sid=ab12"),), True), {})
    assert ok.ok and ok.captures == {"sid": "ab12"}
    assert "expected compress on" in match_handshake(c, Handshake(101, "v2"), {}).reason
    assert "missing response header" in match_handshake(
        c, Handshake(101, "v2", (), True), {}).reason
    none = m.Connect("a", "ws://h/", expect_protocol="")
    assert "expected protocol no protocol, got v1" in match_handshake(
        none, Handshake(101, "v1"), {}).reason
    down = match_handshake(m.Connect("a", "ws://h/"), Handshake(0, error="refused"), {})
    assert (down.reason, down.path) == ("no connection: refused", "")


def test_requests_match_path_query_and_headers_with_captures():
    c = m.Connect("a", "ws://h/chat/{{room = #string}}?user=alice",
                  query=(("token", "{{tok = #string}}"),), headers=(("X-Team", "red"),))
    req = Request("/chat/lobby", (("user", "alice"), ("token", "t1")), (("x-team", "red"),))
    hit = match_request(c, req, {})
    assert hit.ok and hit.captures == {"room": "lobby", "tok": "t1"}
    other = match_request(c, Request("/chat/x", (("user", "alice"), ("token", "t")), ()), {})
    assert other.ok and other.score < hit.score  # headers prefer, never require
    assert "missing query parameter token" in match_request(
        c, Request("/chat/x", (("user", "alice"),), (("x-team", "red"),)), {}).reason


def test_split_url():
    assert split_url("ws://h:1/a%20b?x=1&y=%2F") == ("/a b", [("x", "1"), ("y", "/")])
    assert split_url("ws://h") == ("/", [])
    assert split_url("wss://h?x=1") == ("/", [("x", "1")])
