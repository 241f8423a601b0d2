"""Every scenario shown in the docs parses and passes ``check``: the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsreplay.lint import ERROR, lint
from wsreplay.parser import parse
from wsreplay.writer import write

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(`{3,})[^\n`]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def scenarios_in(doc: str):
    text = (ROOT / doc).read_text(encoding="utf-8")
    for number, hit in enumerate(FENCE.finditer(text), 1):
        body = hit.group(2)
        if body.startswith("wsreplay 1\n"):
            yield pytest.param(body, id=f"{doc}#{number}")


@pytest.mark.parametrize("body", [*scenarios_in("docs/language.md"), *scenarios_in("README.md")])
def test_documented_scenarios_parse_and_check(body):
    scenario = parse(body, "doc.wsr")
    errors = [d for d in lint(scenario, defined={"DEMO_URL"}) if d.severity == ERROR]
    assert errors == []
    assert parse(write(scenario)) == scenario


def test_the_language_doc_shows_every_kind_of_line():
    bodies = "\n".join(p.values[0] for p in scenarios_in("docs/language.md"))
    for word in ("conn", "var", "env", "unordered", "repeat", "silence", "#regex", "hex", "b64",
                 "ping", "pong", "close", "drop", "ignore", "on", "reply", "leftover",
                 "expect status", "expect protocol", "within", "subset", "{{'{{'}}", "```"):
        assert word in bodies, word
