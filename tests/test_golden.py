"""Golden files: canonical scenarios written back byte for byte, and snapshotted error text.

* ``tests/golden/*.wsr`` together use every construct of the language, each already in the
  writer's canonical form: ``write(parse(text)) == text``. A coverage test walks their models
  so a construct added to the model without a golden line fails here.
* ``tests/golden/errors/NAME.wsr`` are the common mistakes; ``NAME.expected`` holds the exact
  stderr of ``wsreplay check NAME.wsr`` (run inside that folder). After a deliberate change
  to a message, regenerate with ``WSREPLAY_UPDATE_SNAPSHOTS=1 pytest tests/test_golden.py``
  and review the diff: a snapshot is only as good as the message in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from wsreplay import model as m
from wsreplay.parser import parse
from wsreplay.writer import format_payload, write

from .conftest import T

GOLDEN = Path(__file__).resolve().parent / "golden"
ERRORS = GOLDEN / "errors"
CANONICAL = sorted(GOLDEN.glob("*.wsr"))
MISTAKES = sorted(ERRORS.glob("*.wsr"))
UPDATE = os.environ.get("WSREPLAY_UPDATE_SNAPSHOTS") == "1"


@pytest.mark.parametrize("path", CANONICAL, ids=lambda p: p.name)
def test_golden_file_is_written_back_to_the_same_text(path):
    text = path.read_text(encoding="utf-8")
    scenario = parse(text, path.name)
    assert write(scenario) == text
    assert parse(write(scenario)) == scenario


# --- every construct has a golden line -------------------------------------------------------


def _features(scenario: m.Scenario) -> set[str]:
    """Names for what a scenario uses: model classes, the non-default fields of each, and the
    spellings the writer chooses between."""
    found: set[str] = set()
    for step in m.walk(scenario.steps):
        found.add(type(step).__name__)
        if isinstance(step, (m.Unordered, m.Repeat)):
            if any(isinstance(s, (m.Unordered, m.Repeat)) for s in step.steps):
                found.add("nested block")
        found |= _non_default_fields(step)
        if isinstance(step, m.Event):
            found |= _payload_features(step.payload, f"{step.side.name} ")
        if isinstance(step, m.Connect):
            for rule in step.rules:
                found.add("rule reply" if rule.reply else "rule ignore")
                found |= _payload_features(rule.match, "rule ")
            if step.expect_protocol == "":
                found.add("expect no protocol")
            if step.expect_compress is False:
                found.add("expect no compress")
        if isinstance(step, m.Setting):
            found.add(f"set {step.name} {step.value}")
    return found


def _non_default_fields(obj) -> set[str]:
    out = set()
    for f in fields(obj):
        if f.name == "pos" or not f.compare:
            continue
        if getattr(obj, f.name) != f.default:
            out.add(f"{type(obj).__name__}.{f.name}")
    return out


def _payload_features(p: m.Payload, prefix: str) -> set[str]:
    out = {prefix + type(p).__name__} | _non_default_fields(p)
    if isinstance(p, m.Binary):
        out.add(f"Binary {p.notation.value}")
    spelled = format_payload(p)
    if isinstance(p, (m.Text, m.Regex)):
        value = spelled.partition(" ")[2]
        if value.startswith('"'):
            out.add(f"{type(p).__name__} quoted")
        if value.startswith("```"):
            out.add(f"{type(p).__name__} fenced")
    if isinstance(p, m.Close) and spelled.count(" ") > 1 and spelled.split(" ", 2)[2][:1] == '"':
        out.add("Close quoted")
    if isinstance(p, m.Json) and "\n" in p.source:
        out.add("Json fenced")
    if isinstance(p, m.Close):
        out.add("Close " + ("no code" if p.code is None else "no reason" if p.reason is None
                            else "empty reason" if p.reason == "" else "reason"))
    return out


def _all_classes(union) -> set[str]:
    return {cls.__name__ for cls in typing.get_args(union)}


def test_golden_files_cover_every_construct():
    used: set[str] = set()
    for path in CANONICAL:
        used |= _features(parse(path.read_text(encoding="utf-8"), path.name))
    wanted = _all_classes(m.Step) | {f"SERVER {c}" for c in _all_classes(m.Payload)}
    wanted |= {f"CLIENT {c}" for c in _all_classes(m.Payload) - {"Regex", "Silence"}}
    wanted |= {f"Connect.{f.name}" for f in fields(m.Connect) if f.name not in ("name", "url", "pos")}
    wanted |= {"Event.at", "Event.within", "Unordered.within", "nested block", "Json.subset",
               "Json.ignore", "Var.source", "Env.default_source", "Binary hex", "Binary b64",
               "Ping.data", "Pong.data", "rule reply", "rule ignore", "expect no protocol",
               "expect no compress", "Text quoted", "Text fenced", "Json fenced", "Regex quoted",
               "Close no code", "Close no reason", "Close reason", "Close empty reason",
               "Close quoted", "set timeout 5s", "set leftover warn", "set leftover fail"}
    assert wanted - used == set()


# --- snapshotted errors ------------------------------------------------------------------------


def _check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsreplay", "check", path.name], cwd=path.parent,
                          capture_output=True, text=True, timeout=4 * T)


def test_every_mistake_has_a_snapshot():
    assert len(MISTAKES) >= 15
    for path in MISTAKES:
        assert path.with_suffix(".expected").is_file() or UPDATE, f"no snapshot for {path.name}"


@pytest.mark.parametrize("path", MISTAKES, ids=lambda p: p.stem)
def test_mistake_gives_the_snapshotted_error(path):
    done = _check(path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f"{path.name}:")
    snapshot = path.with_suffix(".expected")
    if UPDATE:
        snapshot.write_text(done.stderr, encoding="utf-8")
    assert done.stderr == snapshot.read_text(encoding="utf-8")


# --- fmt's canonical spellings -----------------------------------------------------------------

H = "wsreplay 1\nconn c ws://x/\n"


@pytest.mark.parametrize("written, canonical", [
    ("@1.5 c > text hi\n", "@1.500 c > text hi\n"),
    ("@2.000001 c > text hi\n", "@2.000001 c > text hi\n"),
    ("@2.10 c > text hi\n", "@2.100 c > text hi\n"),
    ("c > hex 00 ff 10\n", "c > hex 00ff10\n"),
    ("c > hex 00FF\n", "c > hex 00ff\n"),
    ("c > b64 AP8Q\n", "c > b64 AP8Q\n"),
    ("c > ping b64 AP8=\n", "c > ping hex 00ff\n"),
    ("c > ping \"plain\"\n", "c > ping plain\n"),
    ("    c   >   text  hi\n", "c > text hi\n"),
    ("c > text   \n", "c > text\n"),
    ("c > text \"hi\"\n", "c > text hi\n"),
    ("c > text ````\none\n```\n````\n", "c > text \"one\\n```\"\n"),
    ("c > text ```\none\ntwo\n  ```\n", "c > text ```\none\ntwo\n```\n"),
    ("c < within 1m text hi\n", "c < within 60s text hi\n"),
    ("c < within 1.5s text hi\n", "c < within 1500ms text hi\n"),
    ("c < silence 0.5s\n", "c < silence 500ms\n"),
    ("c < close 1000 \"bye\"\n", "c < close 1000 bye\n"),
    ("c > text a\n\n\n\nc > text b\n\n\n", "c > text a\n\nc > text b\n"),
    ("unordered\nc < text a\n\nend\n", "unordered\n  c < text a\nend\n"),
], ids=lambda v: v if len(v) < 30 else v[:30])
def test_fmt_writes_the_canonical_spelling(written, canonical):
    assert write(parse(H + written)) == H + canonical


def test_fmt_orders_handshake_lines_and_drops_crlf_and_bom():
    written = ("\ufeffwsreplay 1\r\nconn c ws://x/\r\nleftover warn\r\n  expect status 101\r\n"
               "header A: 1\r\nquery k = v\r\n")
    assert write(parse(written)) == ("wsreplay 1\nconn c ws://x/\n  query k = v\n  header A: 1\n"
                                     "  expect status 101\n  leftover warn\n")
