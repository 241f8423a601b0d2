"""Self-play, a property of the whole product: a scenario replayed against the mock served from
the same file passes, on both sides. Every example under ``scenarios/`` and in the docs, and
generated scenarios, over real sockets on 127.0.0.1 (the mock server and the replay client)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsreplay import model as m
from wsreplay.loader import load
from wsreplay.replay import replay_scenario
from wsreplay.report import render_result
from wsreplay.serve import MockServer

from .test_docs import scenarios_in

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted([*(ROOT / "scenarios").glob("*.wsr"),
                   *(ROOT / "tests" / "thirdparty").glob("*.wsr")])  # edited third-party recordings
ENV = {"TOKEN": "t0k3n", "API_TOKEN": "demo-token", "DEMO_URL": "ws://127.0.0.1:1"}


async def self_play(scenario: m.Scenario, *, seed: int = 0, timeout: float = 3.0):
    """Serve ``scenario`` and replay it against the mock: both results."""
    server = MockServer([scenario], env=ENV, timeout=timeout, once=True)
    await server.start()
    try:
        replayed = await asyncio.wait_for(
            replay_scenario(scenario, server.url, env=ENV, timeout=timeout), timeout * 4)
        served = await server.wait_once(timeout * 2)
    finally:
        await server.stop()
    return replayed, served


def _explain(replayed, served) -> str:
    return "\n".join(render_result(r, verbose=True) for r in [replayed, *served])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_every_example_scenario_plays_against_itself(path):
    replayed, served = await self_play(load(path))
    assert replayed.passed and served and all(r.passed for r in served), \
        _explain(replayed, served)


@pytest.mark.parametrize("body", [*scenarios_in("docs/language.md"), *scenarios_in("README.md")])
async def test_every_documented_scenario_plays_against_itself(body, tmp_path):
    path = tmp_path / "doc.wsr"
    path.write_text(body, encoding="utf-8")
    (tmp_path / "frames").mkdir()
    for name in re.findall(r"file (\S+)", body):  # a file payload the doc names
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\x01\x02payload")
    replayed, served = await self_play(load(path))
    assert replayed.passed and served and all(r.passed for r in served), \
        _explain(replayed, served)


# --- generated scenarios ------------------------------------------------------------------

_MARKERS = ["#string", "#number", "#boolean", "#null", "#uuid", "#any"]
_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@st.composite
def playable(draw) -> str:
    """A scenario both sides can play: connections, text and JSON lines in both directions
    with markers and captures on either side, captured values echoed back, blocks."""
    lines = ["wsreplay 1", "set timeout 2s"]
    conns = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2,
                          unique=True))
    known: list[str] = []
    for conn in conns:
        lines.append(f"conn {conn} ws://127.0.0.1:1/{conn}")
    for _ in range(draw(st.integers(1, 6))):
        conn = draw(st.sampled_from(conns))
        side = draw(st.sampled_from([">", "<"]))
        kind = draw(st.sampled_from(["text", "json", "capture", "echo", "hex"]))
        word = draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
        if kind == "text":
            lines.append(f"{conn} {side} text {word} {{{{{draw(st.sampled_from(_MARKERS))}}}}}")
        elif kind == "json":
            marker = draw(st.sampled_from(_MARKERS + ["#array", "#object", "#absent"]))
            codec = draw(st.sampled_from(["json", "msgpack", "cbor"]))
            lines.append(f'{conn} {side} {codec} {{"w":"{word}","v":"{marker}"}}')
        elif kind == "capture":
            name = draw(_NAMES)
            marker = draw(st.sampled_from(["#string", "#number", "#uuid"]))
            lines.append(f'{conn} {side} json {{"{word}":"{{{{{name} = {marker}}}}}"}}')
            known.append(name)
        elif kind == "echo" and known:
            lines.append(f"{conn} {side} text {word}={{{{{draw(st.sampled_from(known))}}}}}")
        else:
            n = draw(st.integers(1, 3))
            lines.append(f"{conn} {side} hex 01 u16({{{{#bytes {n}}}}}) \"{word}\"")
    for conn in conns:
        lines.append(f"{conn} > close 1000")
        lines.append(f"{conn} < close 1000")
    return "\n".join(lines) + "\n"


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(source=playable(), seed=st.integers(0, 2**16))
def test_generated_scenarios_play_against_themselves(source, seed, tmp_path):
    path = tmp_path / "gen.wsr"
    path.write_text(source, encoding="utf-8")
    replayed, served = asyncio.run(self_play(load(path), seed=seed, timeout=2.0))
    assert replayed.passed and served and all(r.passed for r in served), \
        source + "\n" + _explain(replayed, served)
