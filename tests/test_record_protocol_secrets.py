"""Secrets carried in ``Sec-WebSocket-Protocol`` (Kubernetes' bearer token, AppSync's headers):
recorded as ``env`` variables, written and read back as subprotocol templates, offered by the
replay client and matched by the mock server; end to end through the recording proxy."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from wsreplay import model as m
from wsreplay.lint import lint
from wsreplay.matchers import answer_protocol, match_handshake, match_request
from wsreplay.messages import Handshake as Answered, Request
from wsreplay.parser import parse
from wsreplay.recorder import Handshake, Recorder, Redaction
from wsreplay.replay import replay_scenario
from wsreplay.serve import MockServer
from wsreplay.writer import write

from .conftest import T
from .record_helpers import aiohttp_peer, load, record, settled  # noqa: F401

CHANNEL = "v4.channel.k8s.io"
K8S = "base64url.bearer.authorization.k8s.io."
JWT = "eyJhbGciOiJSUzI1NiJ9.s3cr3t-cl41ms.s1gn4tur3"
TOKEN = base64.urlsafe_b64encode(JWT.encode()).decode().rstrip("=")
BEARER = K8S + TOKEN


def recorded(tmp_path, hs: Handshake, **options) -> tuple[str, m.Scenario]:
    rec = Recorder(tmp_path / "r.wsr", clock=lambda: 1.0, wall=lambda: 0.0, **options)
    rec.connection(hs)
    rec.close()
    text = rec.path.read_text()
    return text, parse(text)


def env_names(scenario: m.Scenario) -> list[str]:
    return [s.name for s in scenario.steps if isinstance(s, m.Env)]


# --- what the recorder writes ---------------------------------------------------------------

def test_a_kubernetes_bearer_subprotocol_keeps_its_prefix_and_the_token_becomes_a_variable(
        tmp_path):
    text, scenario = recorded(tmp_path, Handshake("ws://h:1/exec", protocols=(CHANNEL, BEARER),
                                                  protocol=CHANNEL))
    assert TOKEN not in text and JWT not in text
    (c1,) = scenario.connections()
    assert c1.protocols == (CHANNEL, K8S + "{{C1_PROTOCOL}}")
    assert c1.expect_protocol == CHANNEL
    assert env_names(scenario) == ["C1_PROTOCOL"]
    assert f"  protocol {CHANNEL} {K8S}{{{{C1_PROTOCOL}}}}\n" in text
    assert stat.S_IMODE((tmp_path / "r.wsr").stat().st_mode) == 0o600


@pytest.mark.parametrize("entry", ["bearer.abc123", "X-Auth-Token.abc123", "Authorization-abc",
                                   "my.ApiKey.abc123", "access_token=abc123"])
def test_an_entry_naming_a_secret_becomes_a_variable_as_a_whole(tmp_path, entry):
    text, scenario = recorded(tmp_path, Handshake("ws://h:1/", protocols=("chat", entry)))
    assert "abc" not in text
    assert scenario.connections()[0].protocols == ("chat", "{{C1_PROTOCOL}}")


def test_the_chosen_secret_entry_is_the_same_variable_as_the_offered_one(tmp_path):
    other = K8S + "c2Vjb25k"
    text, scenario = recorded(tmp_path, Handshake("ws://h:1/", protocols=(other, BEARER),
                                                  protocol=BEARER))
    (c1,) = scenario.connections()
    assert c1.protocols == (K8S + "{{C1_PROTOCOL}}", K8S + "{{C1_PROTOCOL_2}}")
    assert c1.expect_protocol == K8S + "{{C1_PROTOCOL_2}}"
    assert env_names(scenario) == ["C1_PROTOCOL", "C1_PROTOCOL_2"]
    assert TOKEN not in text and "c2Vjb25k" not in text


def test_the_same_token_on_another_connection_keeps_its_variable(tmp_path):
    rec = Recorder(tmp_path / "r.wsr", clock=lambda: 1.0, wall=lambda: 0.0)
    for _ in range(2):
        rec.connection(Handshake("ws://h:1/", protocols=(BEARER,), protocol=BEARER))
    rec.close()
    scenario = load(rec.path)
    assert [(c.protocols, c.expect_protocol) for c in scenario.connections()] == [
        ((K8S + "{{C1_PROTOCOL}}",), K8S + "{{C1_PROTOCOL}}")] * 2
    assert env_names(scenario) == ["C1_PROTOCOL"]


def test_configured_prefixes_no_redact_and_ordinary_protocols(tmp_path):
    hs = Handshake("ws://h:1/", protocols=("graphql-transport-ws", "sig.Zm9v", "header-eyJhIjoxfQ",
                                           "{{odd"))
    text, scenario = recorded(tmp_path, hs, redaction=Redaction.build(protocols=["SIG."]))
    assert scenario.connections()[0].protocols == (
        "graphql-transport-ws", "sig.{{C1_PROTOCOL}}", "header-{{C1_PROTOCOL_2}}", "{{'{{'}}odd")
    assert "Zm9v" not in text and "eyJhIjoxfQ" not in text
    raw = tmp_path / "raw"
    raw.mkdir()
    text, scenario = recorded(raw, Handshake("ws://h:1/", protocols=(BEARER,), protocol=BEARER),
                              redaction=Redaction(enabled=False))
    assert (scenario.connections()[0].protocols, scenario.connections()[0].expect_protocol) == (
        (BEARER,), BEARER)
    assert env_names(scenario) == []


# --- the language: subprotocol templates ----------------------------------------------------

HAND_WRITTEN = f"""wsreplay 1
env C1_PROTOCOL
conn c1 ws://h:1/x
  protocol {CHANNEL} {K8S}{{{{C1_PROTOCOL}}}} {{{{p=#regex\\x20v[0-9]{{2}}}}}}
  expect protocol {{{{chosen=#string}}}}
conn c2 ws://h:1/x
  protocol a{{b {{{{'{{{{'}}}}x
  expect protocol {K8S}{{{{C1_PROTOCOL}}}}
"""


def test_protocol_lines_hold_templates_and_write_back_the_same():
    scenario = parse(HAND_WRITTEN)
    c1, c2 = scenario.connections()
    assert c1.protocols == (CHANNEL, K8S + "{{C1_PROTOCOL}}", "{{p=#regex\\x20v[0-9]{2}}}")
    assert c1.expect_protocol == "{{chosen=#string}}"
    assert c2.protocols == ("a{b", "{{'{{'}}x")
    assert write(scenario) == HAND_WRITTEN


_plain = st.text("abcxyz019.-_", min_size=1, max_size=6)
_templates = st.lists(st.one_of(_plain, st.sampled_from(["{{T}}", "{{T", "{{p=#string}}",
                                                          "{{'{{'}}", "{"])),
                      min_size=1, max_size=4).map("".join)


@given(st.lists(_templates, max_size=3), st.one_of(st.none(), st.just(""), _templates))
@settings(max_examples=200, deadline=None)
def test_any_protocol_template_round_trips(protocols, chosen):
    scenario = m.Scenario((m.Connect("c", "ws://h/", protocols=tuple(protocols),
                                     expect_protocol=chosen),))
    again = parse(write(scenario))
    assert (again.steps[0].protocols, again.steps[0].expect_protocol) == (tuple(protocols), chosen)


def test_check_reports_an_undefined_variable_in_a_protocol_line():
    scenario = parse("wsreplay 1\nconn c ws://h/\n  protocol x.{{NOPE}}\n"
                     "  expect protocol {{#string}}\n")
    assert [d.message for d in lint(scenario)] == [
        "protocol: undefined variable 'NOPE' (declare it with `var` or `env`, pass --var, or "
        "capture it on an earlier line)"]


def test_matching_a_protocol_template_both_ways():
    connect = parse(HAND_WRITTEN).connections()[0]
    variables = {"C1_PROTOCOL": TOKEN}
    hit = match_handshake(connect, Answered(101, "v4.channel.k8s.io"), variables)
    assert hit.ok and hit.captures == {"chosen": "v4.channel.k8s.io"}
    bare = m.Connect("c", "ws://h/x", protocols=(K8S + "{{C1_PROTOCOL}}",),
                     expect_protocol=K8S + "{{C1_PROTOCOL}}")
    assert match_handshake(bare, Answered(101, BEARER), variables).ok
    miss = match_handshake(bare, Answered(101, K8S + "wrong"), variables)
    assert miss.reason == f"expected protocol {K8S}{{{{C1_PROTOCOL}}}}, got {K8S}wrong"
    none = m.Connect("c", "ws://h/x", protocols=("{{#string}}",), expect_protocol="{{#any}}")
    assert match_handshake(none, Answered(101, None), {}).reason == (
        "expected protocol {{#any}}, got no protocol")
    # the mock server: the client must offer it, and it is answered as offered
    req = Request("/x", (), (), (CHANNEL, BEARER))
    assert match_request(bare, req, variables).ok
    assert answer_protocol(bare, req, variables) == BEARER
    assert not match_request(bare, Request("/x", (), (), (CHANNEL,)), variables).ok
    offered_only = m.Connect("c", "ws://h/x", protocols=("v9", K8S + "{{C1_PROTOCOL}}"))
    assert answer_protocol(offered_only, req, variables) == BEARER
    assert answer_protocol(offered_only, req, {}) is None  # undefined: nothing to answer


# --- end to end: a Kubernetes-like server, the proxy, replay and the mock -------------------

class BearerServer:
    """Upgrades only a client offering the Kubernetes bearer subprotocol with the right token;
    chooses ``choose`` (an offered entry); echoes. ``tokens`` lists the tokens it was offered."""

    def __init__(self, choose: str):
        self.choose, self.tokens = choose, []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        token = next((p[len(K8S):] for p in offered if p.startswith(K8S)), None)
        self.tokens.append(token)
        if token != TOKEN:
            return web.Response(status=401, text="Unauthorized")
        ws = web.WebSocketResponse(protocols=(self.choose,))
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str("echo " + msg.data)
        return ws


@pytest.mark.parametrize("choose", [CHANNEL, BEARER], ids=["channel chosen", "token chosen"])
async def test_a_bearer_subprotocol_recorded_through_the_proxy_replays_from_the_environment(
        record, tmp_path, choose):
    server = BearerServer(choose)
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url + "/api/v1/namespaces/default/pods/p/exec",
                                          protocols=(CHANNEL, BEARER)) as ws:
                assert ws.protocol == choose
                await ws.send_str("ls")
                assert (await ws.receive(timeout=T)).data == "echo ls"
        await settled(proxy)
        path = proxy.recorder.path
        data = path.read_bytes()
        assert TOKEN.encode() not in data and JWT.encode() not in data
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        scenario = load(path)
        (c1,) = scenario.connections()
        assert c1.protocols == (CHANNEL, K8S + "{{C1_PROTOCOL}}")
        assert c1.expect_protocol == (CHANNEL if choose == CHANNEL else K8S + "{{C1_PROTOCOL}}")
        assert env_names(scenario) == ["C1_PROTOCOL"]

        result = await replay_scenario(scenario, env={"C1_PROTOCOL": TOKEN}, timeout=T)
        assert result.passed, [f.summary for f in result.failures]
        wrong = await replay_scenario(scenario, env={"C1_PROTOCOL": "bm9wZQ"}, timeout=T)
        assert not wrong.passed and "expected status 101, got 401" in wrong.failures[0].summary
        unset = await replay_scenario(scenario, env={}, timeout=T)
        assert [(f.kind, f.summary) for f in unset.failures] == [(
            "scenario", "environment variable C1_PROTOCOL is not set (set it, or pass "
                        "--var C1_PROTOCOL=VALUE)")]
        assert server.tokens == [TOKEN, TOKEN, "bm9wZQ"]

        env = {k: v for k, v in os.environ.items() if k != "C1_PROTOCOL"}
        cli = subprocess.run([sys.executable, "-m", "wsreplay", "replay", str(path)],
                             capture_output=True, text=True, timeout=4 * T, env=env)
        assert cli.returncode == 2
        assert "environment variable C1_PROTOCOL is not set" in cli.stderr
        assert TOKEN not in cli.stdout + cli.stderr

    # the same recording served by the mock: the chosen subprotocol must be offered (when it
    # is the token, only a client offering that token is taken); it answers it as offered
    mock = MockServer([scenario], env={"C1_PROTOCOL": TOKEN}, timeout=T, once=True)
    await mock.start()
    try:
        async with aiohttp.ClientSession() as session:
            if choose == BEARER:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(mock.url + "/api/v1/namespaces/default/pods/p/exec",
                                             protocols=(CHANNEL, K8S + "bm9wZQ"))
                assert refused.value.status == 404
            async with session.ws_connect(mock.url + "/api/v1/namespaces/default/pods/p/exec",
                                          protocols=(CHANNEL, BEARER)) as ws:
                assert ws.protocol == choose
                await ws.send_str("ls")
                assert (await ws.receive(timeout=T)).data == "echo ls"
                await ws.close()
    finally:
        await mock.stop()


def test_the_redact_protocol_option_adds_a_prefix(tmp_path):
    from wsreplay.cli import build_parser
    from wsreplay.commands.record import _recorder

    args = build_parser().parse_args(["record", "--target", "ws://127.0.0.1:1", "--out",
                                      str(tmp_path / "r.wsr"), "--redact-protocol", "Sig."])
    rec = _recorder(args)
    try:
        rec.connection(Handshake("ws://h:1/", protocols=("sig.Zm9v", BEARER, "plain")))
    finally:
        rec.close()
    assert load(rec.path).connections()[0].protocols == (
        "sig.{{C1_PROTOCOL}}", K8S + "{{C1_PROTOCOL_2}}", "plain")


SERVED_TOKEN = """wsreplay 1
env C1_TOKEN
conn c1 ws://127.0.0.1:9/feed
  query token = {{C1_TOKEN}}
c1 > text hi
c1 < text hello
"""


@pytest.mark.parametrize("env,ok", [({"C1_TOKEN": "t0k"}, True), ({}, False)],
                         ids=["set", "unset"])
async def test_the_mock_matches_a_client_against_env_variables_declared_before_the_conn_line(
        env, ok):
    # a recorded query token used to make every client a 404: "undefined variable"
    mock = MockServer([parse(SERVED_TOKEN)], env=env, timeout=T, once=True)
    await mock.start()
    try:
        async with aiohttp.ClientSession() as session:
            if ok:
                async with session.ws_connect(mock.url + "/feed?token=t0k") as ws:
                    await ws.send_str("hi")
                    assert (await ws.receive(timeout=T)).data == "hello"
                    await ws.close()
                (result,) = await mock.wait_once(T)
                assert result.passed, [f.summary for f in result.failures]
            else:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(mock.url + "/feed?token=t0k")
                assert refused.value.status == 404
                assert [f.summary for f in mock.results[0].failures] == [
                    "a client connected to /feed?token=t0k unlike any conn line: <memory>:2:5: "
                    "environment variable C1_TOKEN is not set (set it, or pass --var "
                    "C1_TOKEN=VALUE)"]
    finally:
        await mock.stop()
