"""Includes (confined, cycle-free) and the semantic checks behind ``wsreplay check``."""

from __future__ import annotations

import pytest

from wsreplay import model as m
from wsreplay.errors import ScenarioError
from wsreplay.lint import ERROR, WARNING, lint
from wsreplay.loader import file_reader, load
from wsreplay.parser import parse


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("wsreplay 1\n" + text, encoding="utf-8")
    return path


def test_include_splices_steps_with_positions_in_the_included_file(tmp_path):
    write(tmp_path / "lib" / "login.wsr", "conn a ws://x\na > text login\n")
    top = write(tmp_path / "main.wsr", "include lib/login.wsr\nrepeat 2\n  include lib/login.wsr\nend\n")
    steps = load(top).steps
    assert isinstance(steps[0], m.Connect) and steps[1].payload == m.Text("login")
    assert steps[1].pos.path.endswith("login.wsr") and steps[1].pos.line == 3
    assert isinstance(steps[2], m.Repeat) and len(steps[2].steps) == 2


def test_an_include_cycle_is_an_error_at_the_include_line(tmp_path):
    write(tmp_path / "a.wsr", "include b.wsr\n")
    write(tmp_path / "b.wsr", "# b\ninclude a.wsr\n")
    with pytest.raises(ScenarioError) as exc:
        load(tmp_path / "a.wsr")
    assert "include cycle: a.wsr → b.wsr → a.wsr" in exc.value.message
    assert exc.value.pos.line == 3 and exc.value.source_line == "include a.wsr"


@pytest.mark.parametrize("target", ["../outside.wsr", "/etc/passwd", "lib/../../x.wsr"])
def test_includes_and_files_stay_inside_the_scenario_folder(tmp_path, target):
    write(tmp_path / "outside.wsr", "")
    top = write(tmp_path / "inner" / "main.wsr", f"include {target}\n")
    with pytest.raises(ScenarioError) as exc:
        load(top)
    assert "outside the scenario's folder" in exc.value.message
    read = file_reader(top)
    with pytest.raises(ScenarioError):
        read(target, m.Pos(str(top), 2, 1))


def test_a_missing_include_names_the_file(tmp_path):
    top = write(tmp_path / "main.wsr", "include nope.wsr\n")
    with pytest.raises(ScenarioError, match="cannot include 'nope.wsr': no such file"):
        load(top)


def test_a_file_that_is_not_utf8_says_where(tmp_path):
    path = tmp_path / "bad.wsr"
    path.write_bytes(b"wsreplay 1\nc > text caf\xe9\n")
    with pytest.raises(ScenarioError) as exc:
        load(path)
    assert (exc.value.pos.line, exc.value.pos.col) == (2, 13)


def messages(text, **kw):
    return [(d.severity, d.message) for d in lint(parse("wsreplay 1\n" + text), **kw)]


def test_a_clean_scenario_has_no_diagnostics():
    assert messages("""var room = "lobby"
env TOKEN
conn a ws://x/{{room}}
  header Authorization: Bearer {{TOKEN}}
a < json {"id":"{{aid = #uuid}}","n":"#number"}
a < regex id=(?P<rid>\\d+)
a > json {"ack":"{{aid}}","r":"{{rid}}"}
a > close 1000
""") == []


@pytest.mark.parametrize("text, expected", [
    ("a > text hi\n", "connection 'a' is not opened"),
    ("conn a ws://x\na > text {{nope}}\n", "undefined variable 'nope'"),
    ("conn a ws://x\na < json {\"x\":\"#strnig\"}\n", "unknown marker #strnig (did you mean #string?)"),
    ("conn a ws://x\na < regex (unclosed\n", "bad regex"),
    ("conn a ws://x\n  expect status 401\na > text z\n", "expects its upgrade refused"),
    ("conn a ws://x\nconn a ws://y\n", "already opened at line 2"),
    ("conn a http://x\n", "must start with ws:// or wss://"),
    ("conn a ws://x\nunordered\n  a < text x\n  a > text y\nend\n", "one direction only"),
    ("conn a ws://x\na < json ignore $..x {}\n", "bad ignore path"),
    ("conn a ws://{{#string}}\n", "a marker cannot stand here"),
])
def test_errors(text, expected):
    found = messages(text)
    assert any(sev == ERROR and expected in msg for sev, msg in found), found


def test_close_codes_that_never_go_on_the_wire_are_warnings():
    found = messages("conn a ws://x\na < close 1006\na < close 1005\n")
    assert [sev for sev, _ in found] == [WARNING, WARNING]
    assert "write `drop`" in found[0][1] and "write `close` with no code" in found[1][1]


def test_variables_from_the_command_line_count_as_defined():
    assert messages("conn a ws://x\na > text {{user}}\n", defined={"user"}) == []


def test_binary_templates_are_linted_like_text_templates():
    ok = """conn a ws://x
a > hex 82 varint( {{sid = #bytes 2}} u16("a/b") 01 )
a < hex 90 varint( {{sid}} 01 )
a > json {"sid":"{{sid}}"}
"""
    assert messages(ok) == []
    found = messages("conn a ws://x\na < hex 40 02 {{pid}}\n")
    assert found == [(ERROR, "hex: undefined variable 'pid' (declare it with `var` or `env`, "
                             "pass --var, or capture it on an earlier line)")]
    bad = m.Scenario((m.Event("a", m.Side.SERVER, m.Binary(b"", template="{{#uuid}}")),))
    assert [d.message for d in lint(bad)] == [
        "connection 'a' is not opened: add `conn a URL` on a line before",
        "hex: a binary template takes #bytes markers, not #uuid: {{#bytes N}}, {{#bytes}}, "
        "{{name = #bytes N}}"]
