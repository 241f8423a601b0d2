"""Binary templates (wsreplay.binary) on real MQTT 3.1.1 packets: parse, match, render."""

from __future__ import annotations

import random
import time

import pytest

from wsreplay.binary import match, names, parse_template, render, varint
from wsreplay.template import TemplateError

# MQTT 3.1.1 packets as mqtt.js sends them (clean session, keepalive 60) and a broker answers.
CONNECT = bytes.fromhex("101b00044d5154540402003c000f") + b"mqttjs_3f2a9c1b"
CONNACK = bytes.fromhex("20020000")
SUBSCRIBE = bytes.fromhex("8208" "002a" "0003") + b"a/b" + b"\x01"
SUBACK = bytes.fromhex("9003" "002a" "01")
PUBLISH = bytes.fromhex("320c" "0003") + b"a/b" + bytes.fromhex("0007") + b"hello"
PUBACK = bytes.fromhex("4002" "0007")

CONNECT_T = '10 varint( 0004 "MQTT" 04 02 003c u16({{cid = #bytes}}) )'
SUBSCRIBE_T = '82 varint( {{sid = #bytes 2}} u16("a/b") 01 )'
SUBACK_T = "90 varint( {{sid}} 01 )"
PUBLISH_T = '32 varint( u16("a/b") {{pid = #bytes 2 like 0001}} {{body = #bytes}} )'
PUBACK_T = "40 02 {{pid}}"


def rng() -> random.Random:
    return random.Random(1234)


# --- matching real packets ----------------------------------------------------------------


def test_connect_with_any_client_id_matches_and_captures_it():
    hit = match(CONNECT_T, CONNECT, {})
    assert hit.ok and hit.captures == {"cid": b"mqttjs_3f2a9c1b"}
    other = bytes.fromhex("101000044d5154540402003c0004") + b"abcd"
    assert match(CONNECT_T, other, {}).captures == {"cid": b"abcd"}


def test_subscribe_captures_the_packet_id_that_suback_must_echo():
    hit = match(SUBSCRIBE_T, SUBSCRIBE, {})
    assert hit.ok and hit.captures == {"sid": b"\x00\x2a"}
    assert match(SUBACK_T, SUBACK, hit.captures).ok
    wrong = match(SUBACK_T, bytes.fromhex("9003002b01"), hit.captures)
    assert not wrong.ok
    assert wrong.reason == "byte 3: expected 0x2a ({{sid}} = 00 2a), got 0x2b"
    assert wrong.path == "byte 3" and 0 < wrong.score < 1


def test_publish_qos1_captures_the_packet_id_and_puback_echoes_it():
    hit = match(PUBLISH_T, PUBLISH, {})
    assert hit.ok and hit.captures == {"pid": b"\x00\x07", "body": b"hello"}
    assert match(PUBACK_T, PUBACK, hit.captures).ok
    assert render(PUBACK_T, hit.captures, None, rng()) == PUBACK


def test_a_capture_is_usable_later_in_the_same_template():
    assert match("{{x = #bytes 2}} ff {{x}}", bytes.fromhex("0102ff0102"), {}).ok
    assert not match("{{x = #bytes 2}} ff {{x}}", bytes.fromhex("0102ff0103"), {}).ok


@pytest.mark.parametrize("data, reason", [
    (bytes.fromhex("20020005"), "byte 3: expected 0x00, got 0x05"),
    (bytes.fromhex("200200"), "byte 3: expected 0x00, got the end of the message"),
    (bytes.fromhex("2002000000"), "byte 4: expected the end of the message, got 1 more bytes "
                                  "(00)"),
    (b"", "byte 0: expected 0x20, got the end of the message"),
])
def test_a_mismatch_names_the_byte_offset(data, reason):
    hit = match('20 02 "\\u0000" 00', data, {})
    assert (hit.ok, hit.reason) == (False, reason)


def test_length_mismatches_point_at_the_length_or_inside_the_group():
    # remaining length says 0x1c but only 0x1b bytes follow
    bad = bytearray(CONNECT)
    bad[1] = 0x1C
    hit = match(CONNECT_T, bytes(bad), {})
    assert hit.reason == ("byte 1: expected a varint length of at most 27 (the bytes left in "
                          "the message), got 28")
    # protocol name differs inside the group
    bad = CONNECT.replace(b"MQTT", b"MQIsdp"[:4])
    assert match(CONNECT_T, bad, {}).reason == "byte 6: expected 0x54, got 0x49"
    # the client id's u16 length leaves bytes over in the varint group
    bad = bytearray(CONNECT)
    bad[13] = 0x0E
    hit = match(CONNECT_T, bytes(bad), {})
    assert hit.reason.startswith("byte 28: expected the end of the varint( group at byte 1, "
                                 "got 1 more bytes")


def test_sized_bytes_and_little_endian_and_u32_groups():
    t = "u16le( {{a = #bytes 3}} ) u32( {{#bytes}} ) u32le( ) u8( ff )"
    data = bytes.fromhex("0300" "616263" "00000002" "7a7a" "00000000" "01ff")
    assert match(t, data, {}).captures == {"a": b"abc"}
    short = match("{{#bytes 4}}", b"abc", {})
    assert short.reason == "byte 3: expected 4 bytes (#bytes 4), got 3 before the end of the message"


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 2097151, 2097152])
def test_varint_lengths_round_trip(size):
    body = b"x" * size
    assert varint(size) and len(varint(size)) == 1 + (size >= 128) + (size >= 16384) + \
        (size >= 2097152)
    data = render("varint( {{b = #bytes}} )", {}, None, rng(), overrides={"b": body.decode()})
    assert data == varint(size) + body
    assert match("varint( {{b = #bytes}} )", data, {}).captures == {"b": body}


def test_a_varint_of_five_bytes_is_a_mismatch_not_a_crash():
    hit = match("varint( {{#bytes}} )", bytes.fromhex("ffffffff01"), {})
    assert hit.reason.startswith("byte 0: expected a varint length (1 to 4 bytes)")


def test_unsized_bytes_take_up_to_the_next_fixed_bytes_or_all_but_a_known_tail():
    t = '{{a = #bytes}} "/" {{b = #bytes}} "/" {{c = #bytes}}'
    assert match(t, b"x/y/z/w", {}).captures == {"a": b"x", "b": b"y", "c": b"z/w"}
    # what follows has a known size: the unsized part ends that many bytes before the end
    assert match('{{a = #bytes}} "/" {{#bytes 2}}', b"a/b/cd", {}).captures == {"a": b"a/b"}
    # a group after it: it takes the rest, and the group then misses
    assert not match("{{#bytes}} u8( {{#bytes}} )", b"\x00\x01x", {}).ok


def test_variables_are_bytes_or_strings():
    assert match("00 {{v}}", b"\x00abc", {"v": "abc"}).ok
    assert match("00 {{v}}", b"\x00\x01", {"v": b"\x01"}).ok
    with pytest.raises(TemplateError, match="variable 'v' holds 3, which a hex line cannot"):
        match("00 {{v}}", b"\x00", {"v": 3})
    with pytest.raises(TemplateError, match="undefined variable 'w'"):
        render("{{w}}", {}, None, rng())


# --- sending --------------------------------------------------------------------------


def test_render_then_match_round_trips_every_mqtt_packet():
    bound: dict = {}
    connect = render(CONNECT_T, {}, bound, rng())
    assert len(bound["cid"]) == 8 and bound["cid"].isalnum()
    assert connect[:14] == bytes.fromhex("101400044d5154540402003c0008")
    assert match(CONNECT_T, connect, {}).captures == bound

    sub = render(SUBSCRIBE_T, {}, bound, rng())
    assert match(SUBSCRIBE_T, sub, {}).captures["sid"] == bound["sid"]
    assert render(SUBACK_T, bound, None, rng()) == b"\x90\x03" + bound["sid"] + b"\x01"

    bound = {}
    publish = render(PUBLISH_T, {}, bound, rng())
    assert bound["pid"] == b"\x00\x01"  # the example
    assert match(PUBLISH_T, publish, {}).captures == bound


def test_render_is_repeatable_with_a_seeded_rng_and_random_without_examples():
    assert render("{{#bytes 16}}", {}, None, rng()) == render("{{#bytes 16}}", {}, None, rng())
    assert render("{{#bytes 16}}", {}, None, rng()) != render("{{#bytes 16}}", {}, None,
                                                              random.Random(9))
    assert render('{{#bytes like "abc"}} {{#bytes 2 like ff00}}', {}, None, rng()) == \
        b"abc\xff\x00"


def test_an_override_wins_over_the_example_and_must_fit():
    assert render("{{p = #bytes 2 like 0001}}", {}, None, rng(), overrides={"p": "ab"}) == b"ab"
    with pytest.raises(TemplateError, match="--var p holds 3 bytes; #bytes 2 takes 2"):
        render("{{p = #bytes 2}}", {}, None, rng(), overrides={"p": "abc"})


def test_a_length_that_overflows_its_field_is_an_error_at_the_group():
    with pytest.raises(TemplateError) as exc:
        render("00 u8( {{#bytes 300}} )", {}, None, rng())
    assert exc.value.message == ("the u8( group holds 300 bytes, more than its length field "
                                 "can say (255)")
    assert exc.value.offset == 3


# --- the template language ---------------------------------------------------------------


@pytest.mark.parametrize("source, offset, message", [
    ("00 zz", 3, "'z' is not a hex digit"),
    ("00 0 {{x}}", 3, "an odd number of hex digits (3): each byte is two"),
    ("u16 (00)", 0, "u16 takes its bytes in parentheses: u16( ... )"),
    ("00 u16( 01 u8( 02 )", 3, "this u16( group is never closed: add ')'"),
    ("00 )", 3, "')' closes no group"),
    ('00 "abc', 3, 'this string is never closed: add "'),
    ("00 {{#bytes 2", 3, "unclosed placeholder: '{{' without '}}'"),
    ("00 {{#string}}", 3, "a binary template takes #bytes markers, not #string: {{#bytes N}}, "
                          "{{#bytes}}, {{name = #bytes N}}"),
    ("{{#bytes x}}", 0, "#bytes takes a count from 1 to 16777216, not 'x'"),
    ("{{p = #bytes 2 like 010203}}", 20, "the example holds 3 bytes; #bytes 2 takes 2"),
    ("{{p like 00}}", 0, "an example goes with a marker: {{name = #bytes N like HEX}}"),
    ("{{#bytes 2 like 00 zz}}", 19, "'z' is not a hex digit: an example is hex pairs and "
                                    '"strings"'),
    ("{{9x}}", 0, "bad placeholder {{9x}}: expected {{name}}, {{#bytes N}} or "
                  "{{name = #bytes N}}"),
])
def test_template_errors_carry_the_offset_of_the_bad_item(source, offset, message):
    with pytest.raises(TemplateError) as exc:
        parse_template(source)
    assert (exc.value.offset, exc.value.message) == (offset, message)


def test_deep_nesting_is_an_error_not_a_recursion_error():
    assert parse_template("u8(" * 32 + ")" * 32)
    with pytest.raises(TemplateError, match="groups nest at most 32 deep"):
        parse_template("u8(" * 5000 + ")" * 5000)


def test_names_lists_variables_and_captures_in_order():
    assert names(PUBLISH_T + " {{x}}") == [("capture", "pid", 22), ("capture", "body", 51),
                                          ("var", "x", 71)]


# --- bounded ------------------------------------------------------------------------------


def test_a_one_megabyte_message_matches_in_linear_time():
    t = '{{a = #bytes}} "--" {{b = #bytes}} "--" {{c = #bytes}} "!!" u32( {{d = #bytes}} ) 00'
    size = 1 << 20
    tail = b"q" * 1000
    data = (b"x" * (size // 2) + b"--" + b"y" * (size // 2) + b"--" + b"z" * 100 + b"!!"
            + len(tail).to_bytes(4, "big") + tail + b"\x00")
    hit = match(t, data, {})
    assert hit.ok and hit.captures["b"] == b"y" * (size // 2) and hit.captures["d"] == tail
    best = min(_timed(lambda: match(t, data, {})) for _ in range(3))
    assert best < 0.05, f"{best * 1000:.1f} ms for 1 MB"
    # a near-miss everywhere: a separator that never occurs makes each #bytes a single scan
    bad = b"-" * size
    best = min(_timed(lambda: match('{{#bytes}} "-x" {{#bytes}} "-x" {{#bytes}}', bad, {}))
               for _ in range(3))
    assert best < 0.05, f"{best * 1000:.1f} ms for 1 MB of near misses"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
