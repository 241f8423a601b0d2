"""Any input either parses or raises the documented ScenarioSyntaxError with a position."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsreplay.errors import ScenarioError
from wsreplay.parser import parse
from wsreplay.writer import write

from .language_strategies import scenarios

EXAMPLES = int(os.environ.get("WSREPLAY_HYPOTHESIS_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def parses_or_explains(text: str) -> None:
    try:
        parse(text, "fuzz.wsr")
    except ScenarioError as exc:
        rendered = exc.render()
        assert rendered.startswith("fuzz.wsr:"), rendered
        assert exc.pos.line >= 1 and exc.pos.col >= 1, rendered
        assert "Traceback" not in rendered
        if exc.source_line is not None:
            lines = rendered.split("\n")
            assert len(lines) >= 3 and lines[2].strip() == "^", rendered


@SETTINGS
@given(scenarios, st.data())
def test_mutated_valid_files(scenario, data):
    text = write(scenario)
    ops = data.draw(st.lists(st.tuples(st.sampled_from(["cut", "insert", "delete", "swap"]),
                                       st.integers(0, max(len(text) - 1, 0)),
                                       st.text(max_size=4)), min_size=1, max_size=4))
    for op, at, snippet in ops:
        if op == "cut":
            text = text[:at]
        elif op == "insert":
            text = text[:at] + snippet + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + 1:]
        elif len(text) > at + 1:
            text = text[:at] + text[at + 1] + text[at] + text[at + 2:]
    parses_or_explains(text)


@SETTINGS
@given(st.text(max_size=200))
def test_random_text_after_a_valid_header(text):
    parses_or_explains("wsreplay 1\n" + text)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(data):
    parses_or_explains(data.decode("utf-8", errors="surrogateescape"))


@SETTINGS
@given(st.lists(st.sampled_from([
    "conn a ws://x", "a > text hi", "a < json {\"a\":1}", "unordered", "repeat 2", "end",
    "  header X: y", "  expect status 401", "a > json ```", "```", "{", "}", "a < close 1000",
    "@1.5 a > ping", "var x = 1", "env Y", "# c", "", "include x.wsr", "a < within 2s text x",
    "  on < text ping", "  reply > text pong", "a > hex zz", "set timeout 1s", "a > json",
    "a > close 1000x", "a > close 70000", "a > ping hex", "a > pong \"q", "a < drop x",
    "a < regex", "a > text \"\"", "a > close 1000 ```",
]), max_size=12))
def test_shuffled_lines(lines):
    parses_or_explains("wsreplay 1\n" + "\n".join(lines) + "\n")


PIECES = {
    "head": ["a >", "a <", "@1.5 a >", "a>", "@x a <", "ignore <", "on >", "a"],
    "within": ["", "within 2s", "within 2", "within"],
    "kind": ["text", "json", "regex", "hex", "b64", "file", "ping", "pong", "close", "drop",
             "silence", "json subset", "json ignore $.a", "json ignore", "ping hex", "pong b64",
             "txt", ""],
    "payload": ["", "x", '"q"', '"q', "{}", "{", "00ff", "0g", "AA==", "1000", "1000 bye",
                "70000", "```", "```\nbody\n```", "500ms", "{{v}}", "{{#number}}", "\"\\u00\""],
}


@SETTINGS
@given(st.lists(st.tuples(*(st.sampled_from(v) for v in PIECES.values())), min_size=1,
                max_size=5))
def test_composed_message_lines(lines):
    body = "\n".join(" ".join(part for part in line if part) for line in lines)
    parses_or_explains("wsreplay 1\nconn a ws://x\n" + body + "\n")
