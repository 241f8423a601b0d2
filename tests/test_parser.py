"""What the parser builds from each construct, and where its errors point."""

from __future__ import annotations

import pytest

from wsreplay import model as m
from wsreplay.errors import FormatVersionError, ScenarioSyntaxError
from wsreplay.parser import parse, parse_duration, parse_time


def one(line: str):
    return parse(f"wsreplay 1\n{line}\n").steps[0]


def test_an_event_line_carries_time_connection_direction_and_position():
    e = parse("wsreplay 1\n\n@1.250 alice > text hello world\n", "x.wsr").steps[1]
    assert e == m.Event("alice", m.Side.CLIENT, m.Text("hello world"), at=1_250_000)
    assert (e.pos.path, e.pos.line, e.pos.col) == ("x.wsr", 3, 1)


@pytest.mark.parametrize("line, payload", [
    ("c < text", m.Text("")),
    ("c < text   spaced  out ", m.Text("spaced  out ")),
    ('c < text "a\\tb\\n"', m.Text("a\tb\n")),
    ("c < text # not a comment", m.Text("# not a comment")),
    ("c < json {\"b\": 1,  \"a\": [true]}", m.Json('{"b": 1,  "a": [true]}')),
    ("c < json subset ignore $.ts,$.x[*].id {}", m.Json("{}", subset=True, ignore=("$.ts", "$.x[*].id"))),
    ("c < regex ^a+$", m.Regex("^a+$")),
    ("c < hex 00 ff 10", m.Binary(b"\x00\xff\x10")),
    ("c < b64 AP8Q", m.Binary(b"\x00\xff\x10", m.BinaryNotation.B64)),
    ("c < file frames/a.bin", m.File("frames/a.bin")),
    ("c > ping", m.Ping(b"")),
    ("c > ping hi there", m.Ping(b"hi there")),
    ("c > ping hex 00ff", m.Ping(b"\x00\xff")),
    ("c > pong b64 AP8=", m.Pong(b"\x00\xff")),
    ("c > close", m.Close()),
    ("c > close 4000", m.Close(4000)),
    ("c > close 1001 going away now", m.Close(1001, "going away now")),
    ('c > close 1000 ""', m.Close(1000, "")),
    ("c < drop", m.Drop()),
    ("c < silence 1.5s", m.Silence(1_500_000)),
])
def test_payload_kinds(line, payload):
    assert one(line).payload == payload


def test_json_value_is_parsed_by_orjson_and_the_source_kept_exactly():
    p = one('c < json {"b": 1,  "a": [true, 1.5e3]}').payload
    assert p.value == {"b": 1, "a": [True, 1500.0]}
    assert p.source == '{"b": 1,  "a": [true, 1.5e3]}'


def test_fenced_blocks_and_longer_fences():
    text = "wsreplay 1\nc > text ````\nfirst\n```\nlast\n````\nc > json ```\n{\n  \"a\": 1\n}\n```\n"
    first, second = parse(text).steps
    assert first.payload == m.Text("first\n```\nlast")
    assert second.payload.value == {"a": 1}


def test_within_and_durations():
    e = one("c < within 250ms json {}")
    assert e.within == 250_000
    assert [parse_duration(d) for d in ("100us", "2s", "1m", "1.5s")] == [100, 2_000_000, 60_000_000, 1_500_000]
    assert parse_time("0.000001") == 1


def test_handshake_lines_gather_under_their_conn():
    c = parse("""wsreplay 1
@0.5 conn feed wss://example.com/v2?x=1
  query token = {{TOKEN}}
  header Origin: https://example.com
  header X-Empty:
  protocol v2 v1
  compress
  expect status 101
  expect protocol v2
  expect header X-Region: #string
  expect no compress
  ignore < json subset {"type":"hb"}
  on < text ping
  reply > text pong
  leftover warn
""").steps[0]
    assert c.name == "feed" and c.at == 500_000 and c.url == "wss://example.com/v2?x=1"
    assert c.query == (("token", "{{TOKEN}}"),)
    assert c.headers == (("Origin", "https://example.com"), ("X-Empty", ""))
    assert c.protocols == ("v2", "v1") and c.compress
    assert (c.expect_status, c.expect_protocol, c.expect_compress) == (101, "v2", False)
    assert c.expect_headers == (("X-Region", "#string"),)
    assert c.rules == (m.Rule(m.Side.SERVER, m.Json('{"type":"hb"}', subset=True)),
                       m.Rule(m.Side.SERVER, m.Text("ping"), m.Text("pong")))
    assert c.leftover == "warn"


def test_blocks_nest_and_blank_lines_are_kept_once():
    s = parse("wsreplay 1\n\n\n# hi\nrepeat 2\n  unordered within 1s\n    c < text a\n\n    c < text b\n  end\nend\n")
    blank, comment, rep = s.steps
    assert isinstance(blank, m.Blank) and comment == m.Comment(" hi")
    inner = rep.steps[0]
    assert rep.count == 2 and inner.within == 1_000_000
    assert [type(x) for x in inner.steps] == [m.Event, m.Blank, m.Event]


def test_crlf_files_and_a_bom_parse_like_lf_files():
    assert parse("\ufeffwsreplay 1\r\nc > text hi\r\n") == parse("wsreplay 1\nc > text hi\n")


def test_a_newer_format_is_refused_with_an_upgrade_hint():
    with pytest.raises(FormatVersionError) as exc:
        parse("wsreplay 2\n", "new.wsr")
    assert "upgrade wsreplay" in exc.value.render()
    assert exc.value.render().startswith("new.wsr:1:10: this file is in scenario format 2")


def test_a_json_error_in_a_block_points_inside_the_block():
    text = 'wsreplay 1\nc > json ```\n{\n  "a": 1,\n  "b" 2\n}\n```\n'
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse(text, "f.wsr")
    assert exc.value.render() == (
        "f.wsr:5:7: invalid JSON: unexpected character, expected ':' after key\n"
        '    "b" 2\n'
        "        ^")


def test_an_inline_json_error_points_at_the_offending_character():
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse('wsreplay 1\nc > json {"a": 1,}\n', "f.wsr")
    assert exc.value.pos.col == len('c > json {"a": 1,')


@pytest.mark.parametrize("line, message, hint", [
    ("c > txt hi", "unknown message kind `txt`", "did you mean `text`?"),
    ("c text hi", "a message line needs a direction", "write `name > kind ...`"),
    ("cnn c ws://x", "unknown line `cnn`", "did you mean `conn`?"),
    ("header X: y", "`header` belongs right under a `conn` line", "move it under"),
    ("var x = lobby", "invalid JSON", 'variable values are JSON: a string is quoted, as in "lobby"'),
    ("set timeuot 5s", "unknown setting `timeuot`", "did you mean `timeout`?"),
    ("c < within 2x text a", "`within` takes a duration", None),
    ("c > text ```", "this fenced block is never closed", "close the block"),
    ("unordered\nc < text a", "this `unordered` block is never closed", "with `end`"),
    ("end", "`end` with no `unordered` or `repeat` block open", None),
])
def test_common_mistakes_get_a_message_and_a_hint(line, message, hint):
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse(f"wsreplay 1\n{line}\n", "m.wsr")
    assert message in exc.value.message
    if hint:
        assert hint in (exc.value.hint or "")
    rendered = exc.value.render().split("\n")
    assert rendered[0].startswith("m.wsr:") and rendered[2].strip() == "^"


@pytest.mark.parametrize("text", ["wsreplay ¹\n", "wsreplay 1\nset timeout ¹1s\n",
                                  "wsreplay 1\nc < silence ١s\n", "wsreplay 1\n@١ c > text x\n"])
def test_non_ascii_digits_are_syntax_errors_not_crashes(text):
    with pytest.raises(ScenarioSyntaxError):
        parse(text)


def test_an_unclosed_block_points_at_its_opening_line():
    text = "wsreplay 1\nrepeat 2\n  unordered\n    c < text ```\nend\n```\n  end\n"
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse(text, "b.wsr")
    assert exc.value.render().split("\n")[0] == "b.wsr:2:1: this `repeat` block is never closed"


@pytest.mark.parametrize("line, col, message", [
    ("c > hex 00ffzz", 13, "'z' is not a hex digit"),
    ("c > hex 00f", 9, "an odd number of hex digits (3): each byte is two"),
    ("c > b64 AA*A", 11, "'*' is not a base64 character"),
    ('c > text "hello', 10, "this quoted text is never closed"),
])
def test_payload_errors_point_at_the_culprit(line, col, message):
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse(f"wsreplay 1\n{line}\n")
    assert (exc.value.pos.col, exc.value.message) == (col, message)


def test_handshake_values_keep_unicode_spaces():
    from wsreplay.writer import write

    s = parse("wsreplay 1\nconn c ws://x\n  header X: a\u00a0\n  header Y: \"\u00a0\"\n")
    assert s.steps[0].headers == (("X", "a\u00a0"), ("Y", "\u00a0"))
    assert parse(write(s)) == s


# --- binary templates in hex payloads -------------------------------------------------------


def test_a_hex_payload_with_more_than_hex_digits_is_a_binary_template_kept_as_written():
    s = parse('wsreplay 1\nc > hex 10 varint( 0004 "MQTT" 04 02 003c u16({{cid = #bytes}}) )\n'
              "c < hex ```\n  20 02\n  {{#bytes 2 like 0000}}\n```\nc < hex 20 02 00 00\n"
              "on > hex c0 {{#bytes}}\n  reply < hex d0 00\n".replace("on >", "conn r ws://x\n  on >"))
    first, block, plain = s.steps[0].payload, s.steps[1].payload, s.steps[2].payload
    assert first == m.Binary(b"", m.BinaryNotation.HEX,
                             '10 varint( 0004 "MQTT" 04 02 003c u16({{cid = #bytes}}) )')
    assert block.template == "20 02\n  {{#bytes 2 like 0000}}" and block.data == b""
    assert plain == m.Binary(b"\x20\x02\x00\x00") and plain.template is None
    assert s.steps[3].rules[0].match.template == "c0 {{#bytes}}"


@pytest.mark.parametrize("line, col, message", [
    ("c > hex 00 u16( 01", 12, "this u16( group is never closed: add ')'"),
    ("c > hex 00 {{#string}}", 12, "a binary template takes #bytes markers, not #string: "
                                   "{{#bytes N}}, {{#bytes}}, {{name = #bytes N}}"),
    ('c > hex 00 "MQ', 12, 'this string is never closed: add "'),
    ("c > hex 0a {{p = #bytes 2 like 010203}}", 32, "the example holds 3 bytes; #bytes 2 "
                                                    "takes 2"),
    ("c > hex 00 ff {{x}} zz", 21, "'z' is not a hex digit"),
    ("c > ping hex 00 {{x}}", 17, "'{' is not a hex digit"),  # control frames: plain bytes
])
def test_binary_template_errors_point_at_the_bad_item(line, col, message):
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse(f"wsreplay 1\n{line}\n", "t.wsr")
    assert (exc.value.pos.col, exc.value.message) == (col, message)
    rendered = exc.value.render().split("\n")
    assert rendered[0] == f"t.wsr:2:{col}: {message}"
    assert rendered[2] == "  " + " " * (col - 1) + "^"


def test_a_binary_template_error_in_a_fenced_block_points_at_its_line_and_column():
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse("wsreplay 1\nc > hex ```\n20 02\n  00 {{#bytes x}}\n```\n", "t.wsr")
    assert str(exc.value.pos) == "t.wsr:4:6"
    assert exc.value.message == "#bytes takes a count from 1 to 16777216, not 'x'"


def test_a_stray_letter_in_a_hex_payload_hints_at_the_template_forms():
    with pytest.raises(ScenarioSyntaxError) as exc:
        parse("wsreplay 1\nc > hex 00 q1\n")
    assert exc.value.hint.startswith('a hex line holds hex pairs, or a binary template')
