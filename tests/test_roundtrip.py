"""The writer is the exact inverse of the parser: parse(write(s)) == s for every scenario."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wsreplay import model as m
from wsreplay.errors import ScenarioSyntaxError
from wsreplay.parser import parse
from wsreplay.writer import write

from .language_strategies import payloads, scenarios

SETTINGS = settings(max_examples=int(__import__("os").environ.get("WSREPLAY_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(scenarios)
def test_parse_inverts_write(scenario):
    text = write(scenario)
    assert parse(text) == scenario
    assert write(parse(text)) == text  # fmt is idempotent


@SETTINGS
@given(payloads, st.sampled_from(list(m.Side)))
def test_every_payload_round_trips_on_an_event_line(payload, side):
    scenario = m.Scenario((m.Event("c1", side, payload, at=1_250_000),))
    assert parse(write(scenario)) == scenario


@pytest.mark.parametrize("data", [bytes(range(256)), b"", b"\x00" * 3])
@pytest.mark.parametrize("notation", list(m.BinaryNotation))
def test_every_byte_value_survives(data, notation):
    scenario = m.Scenario((m.Event("c", m.Side.SERVER, m.Binary(data, notation)),))
    assert parse(write(scenario)).steps[0].payload.data == data


def test_a_one_mebibyte_line_round_trips():
    text = "x" * (1 << 20)
    blob = bytes(random.Random(7).randrange(256) for _ in range(1 << 20))
    scenario = m.Scenario((
        m.Event("c", m.Side.CLIENT, m.Text(text)),
        m.Event("c", m.Side.SERVER, m.Binary(blob, m.BinaryNotation.B64)),
        m.Event("c", m.Side.SERVER, m.Json('{"k":"' + text + '"}')),
    ))
    out = write(scenario)
    assert out.count("\n") == 4
    assert parse(out) == scenario


@pytest.mark.parametrize("text", [
    "```", "``` inside", "line\n```\nmore", "line\n````\n```", "{{x}}", "# hash", "> gt", "< lt",
    '"starts with a quote', "ends with a space ", " leading", "", "\r", "a\r\nb", "\t", "é中😀",
    "two\nlines", "trailing newline\n", "\n", "hex", "hex 00", "b64 AA", "\x00", "\u2028",
])
def test_awkward_text_round_trips_as_text_and_ping(text):
    steps = (m.Event("c", m.Side.CLIENT, m.Text(text)),
             m.Event("c", m.Side.CLIENT, m.Ping(text.encode()[:125])),
             m.Event("c", m.Side.SERVER, m.Close(1000, text)),
             m.Event("c", m.Side.SERVER, m.Regex(text)))
    scenario = m.Scenario(steps)
    assert parse(write(scenario)) == scenario


@pytest.mark.parametrize("template", [
    '10 varint( 0004 "MQTT" 04 02 003c u16({{cid = #bytes}}) )',
    "90 varint({{sid}}01)",
    '32 varint( u16("a/b") {{pid = #bytes 2 like 0001}} {{#bytes like "hi"}} )\n40 02 {{pid}}',
    '"{{not a placeholder}}"',
])
def test_binary_templates_are_written_as_parsed(template):
    scenario = m.Scenario((m.Event("c", m.Side.CLIENT, m.Binary(b"", m.BinaryNotation.HEX,
                                                                template)),))
    text = write(scenario)
    assert parse(text) == scenario
    assert ("```" in text) == ("\n" in template)
