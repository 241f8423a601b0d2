"""``wsreplay check``, ``fmt`` and ``dump`` as a user runs them: exit codes, output, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import T


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wsreplay", *args], capture_output=True,
                          text=True, timeout=6 * T, cwd=cwd)


GOOD = """wsreplay 1
# a comment survives fmt
var n = 3
@0.000 conn a ws://127.0.0.1:1/x
@0.010 a > json {"n":"{{n}}"}
@0.020 a < hex 00ff
"""


def test_check_passes_a_good_file_and_counts_its_events(tmp_path):
    path = tmp_path / "good.wsr"
    path.write_text(GOOD)
    result = run("check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: ok (2 events)"


def test_check_exit_codes_syntax_2_lint_1(tmp_path):
    bad_syntax = tmp_path / "syntax.wsr"
    bad_syntax.write_text("wsreplay 1\na > txt hi\n")
    bad_lint = tmp_path / "lint.wsr"
    bad_lint.write_text("wsreplay 1\na > text hi\n")
    result = run("check", str(bad_syntax))
    assert result.returncode == 2
    assert result.stderr == (f"{bad_syntax}:2:5: unknown message kind `txt`\n"
                             "  a > txt hi\n      ^\nhint: did you mean `text`?\n")
    result = run("check", str(bad_lint))
    assert result.returncode == 1
    assert f"{bad_lint}:2:1: error: connection 'a' is not opened" in result.stderr
    assert run("check", str(bad_lint), str(bad_syntax)).returncode == 2
    missing = run("check", str(tmp_path / "nope.wsr"))
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr
    assert "Traceback" not in missing.stderr + result.stderr


def test_fmt_rewrites_then_check_is_clean_and_idempotent(tmp_path):
    path = tmp_path / "messy.wsr"
    path.write_text("wsreplay 1\r\n\n\n\n# keep me\n@0.5 conn   a ws://x\n     header  X:   y\n"
                    "a   >   text   hi\n")
    assert run("fmt", "--check", str(path)).returncode == 1
    assert path.read_bytes().startswith(b"wsreplay 1\r\n")  # --check changes nothing
    result = run("fmt", str(path))
    assert result.returncode == 0 and "reformatted" in result.stdout
    assert path.read_text() == ("wsreplay 1\n\n# keep me\n@0.500 conn a ws://x\n  header X: y\n"
                                "a > text hi\n")
    assert run("fmt", "--check", str(path)).returncode == 0
    assert run("fmt", str(path)).stdout == ""


def test_fmt_keeps_the_file_mode(tmp_path):
    path = tmp_path / "secret.wsr"
    path.write_text("wsreplay 1\nconn a  ws://x\n")
    os.chmod(path, 0o600)
    assert run("fmt", str(path)).returncode == 0
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_dump_prints_json_lines(tmp_path):
    path = tmp_path / "good.wsr"
    path.write_text(GOOD)
    result = run("dump", str(path))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == ["conn", "event", "event"]
    assert records[1] == {"type": "event", "conn": "a", "direction": ">", "from": "client",
                          "kind": "json", "at": 0.01, "within": None, "text": '{"n":"{{n}}"}',
                          "json": {"n": "{{n}}"}, "subset": False, "ignore": [],
                          "file": str(path), "line": 5}
    assert records[2]["base64"] == "AP8=" and records[2]["from"] == "server"


def test_usage_errors_exit_2():
    assert run("check").returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("check", "--var", "novalue", "x.wsr").returncode == 2


def test_check_tells_per_side_what_cannot_be_played(tmp_path):
    path = tmp_path / "sides.wsr"
    path.write_text("wsreplay 1\nconn c ws://h/x\nc > text id={{#regex [0-9]+}}\n"
                    "c < regex ^ok$\nc < json {\"id\":\"{{id = #uuid}}\"}\n")
    both = run("check", str(path))
    assert both.returncode == 2 and "Traceback" not in both.stderr
    assert f"{path}:3:1: cannot replay: #regex [0-9]+ cannot be sent without an example" \
        in both.stderr
    assert f"{path}:4:1: cannot serve: a regex line only matches" in both.stderr
    assert ":5:" not in both.stderr  # a typed marker can be sent: a fresh UUID
    served = run("check", "--side", "serve", str(path))
    assert served.returncode == 2 and "cannot replay" not in served.stderr
    path.write_text("wsreplay 1\nconn c ws://h/x\nc > text id={{#regex [0-9]+ like 42}}\n")
    assert run("check", str(path)).returncode == 0


def test_an_undefined_variable_is_a_file_error_at_its_placeholder(tmp_path):
    path = tmp_path / "undef.wsr"
    path.write_text("wsreplay 1\nconn c ws://h/x\nc > text hello {{nobody}}\n")
    result = run("check", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:3:16: error: text: undefined variable 'nobody'")
    assert "\n  c > text hello {{nobody}}\n                 ^\n" in result.stderr


def test_a_bare_placeholder_in_json_gets_the_quoted_form_as_hint(tmp_path):
    path = tmp_path / "bare.wsr"
    path.write_text('wsreplay 1\nconn c ws://h/x\nc > json {"id":{{n}}}\n')
    result = run("check", str(path))
    assert result.returncode == 2
    assert 'hint: a placeholder in JSON is written inside a string: "{{n}}" (the value ' \
           'keeps its type)' in result.stderr


def test_a_file_payload_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    path = tmp_path / "fifo.wsr"
    path.write_text("wsreplay 1\nconn c ws://h/x\nc > file pipe\n")
    result = run("check", str(path))  # reading a FIFO would block: it must not be opened
    assert result.returncode == 2 and "it is a FIFO" in result.stderr
