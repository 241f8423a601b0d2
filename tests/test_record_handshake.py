"""``wsreplay record``'s handshake, plain HTTP, redaction and file naming, against real peers;
and a recording replayed against the server it was recorded from."""

from __future__ import annotations

import base64
import stat

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wsreplay import model as m
from wsreplay.recorder import Redaction
from wsreplay.replay import replay_scenario

from .conftest import T, free_port
from .record_helpers import (ScriptedServer, aiohttp_peer, events, load, record, settled,  # noqa: F401
                             until)


def connect_step(proxy, name: str = "c1") -> m.Connect:
    return next(c for c in load(proxy.recorder.path).connections() if c.name == name)


# --- subprotocols ------------------------------------------------------------------------

async def test_the_offered_list_goes_upstream_and_the_chosen_protocol_comes_back(record, node_server):
    server = node_server("--protocols", "b,c")
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url, protocols=("a", "b", "c")) as ws:
            assert ws.protocol == "b"
    seen = await server.await_event(event="connect")
    assert seen["protocol"] == "b" and seen["headers"]["sec-websocket-protocol"] == "a,b,c"
    await settled(proxy)
    step = connect_step(proxy)
    assert (step.protocols, step.expect_protocol) == (("a", "b", "c"), "b")


async def test_when_the_server_chooses_none_the_client_gets_none(record, node_server):
    server = node_server("--protocols", "x")
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with connect(proxy.url, subprotocols=["a", "b"], open_timeout=T) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
    await settled(proxy)
    step = connect_step(proxy)
    assert (step.protocols, step.expect_protocol) == (("a", "b"), "")


async def test_node_client_sees_the_same_outcome_direct_and_through_the_proxy(
        record, node_server, node_client):
    server = node_server("--protocols", "x")  # chooses none of what the client offers
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    outcomes = []
    for url in (f"ws://127.0.0.1:{server.port}/", proxy.url + "/"):
        client = node_client(url, "--protocols", "a,b", steps=[{"close": [1000]}])
        assert await client.await_exit() == 0
        outcomes.append([(e["event"], e.get("message"), e.get("code")) for e in client.events()])
    assert outcomes[0] == outcomes[1]


async def test_no_protocol_offered_records_no_protocol_lines(record, node_server):
    server = node_server()
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with connect(proxy.url, open_timeout=T) as ws:
        assert ws.subprotocol is None
    await settled(proxy)
    step = connect_step(proxy)
    assert (step.protocols, step.expect_protocol) == ((), None)


# --- headers -----------------------------------------------------------------------------

async def test_request_headers_are_forwarded_except_hop_by_hop_ones(record, node_server):
    server = node_server("--header", "X-Region: eu-1")
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    sent = {"Authorization": "Bearer t0k", "X-Custom": "v 1", "Cookie": "a=1; b=2",
            "Keep-Alive": "300", "Proxy-Authorization": "Basic eHg=", "TE": "trailers"}
    async with connect(proxy.url, additional_headers=sent, origin="http://app.example",
                       open_timeout=T) as ws:
        assert ws.response.headers["X-Region"] == "eu-1"
    seen = (await server.await_event(event="connect"))["headers"]
    assert seen["authorization"] == "Bearer t0k" and seen["x-custom"] == "v 1"
    assert seen["cookie"] == "a=1; b=2" and seen["origin"] == "http://app.example"
    assert seen["host"] == f"127.0.0.1:{server.port}"
    assert not {"keep-alive", "proxy-authorization", "te"} & set(seen)
    await settled(proxy)
    recorded = dict(connect_step(proxy).headers)
    assert recorded["X-Custom"] == "v 1" and recorded["Origin"] == "http://app.example"
    assert recorded["Authorization"] == "{{C1_AUTHORIZATION}}"
    assert not {"Keep-Alive", "Proxy-Authorization", "TE", "Host", "Connection",
                "Sec-WebSocket-Key", "Sec-WebSocket-Version"} & set(recorded)


async def test_headers_named_in_connection_are_not_forwarded(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        headers = {"Connection": "Upgrade, X-Hop", "X-Hop": "1", "X-Kept": "2"}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url, headers=headers):
                pass
        await settled(proxy)
    assert server.headers["X-Kept"] == "2" and "X-Hop" not in server.headers


async def test_upstream_101_headers_reach_the_client_and_set_cookie_is_redacted(record, node_server):
    server = node_server("--header", "Set-Cookie: sid=s3cret", "--header", "X-Upstream: 1")
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with connect(proxy.url, open_timeout=T) as ws:
        assert ws.response.headers["Set-Cookie"] == "sid=s3cret"
        assert ws.response.headers["X-Upstream"] == "1"
    await settled(proxy)
    text = proxy.recorder.path.read_text()
    # the server issues a cookie each run: a capture, so a replay takes the new one
    assert "s3cret" not in text and "env C1_SET_COOKIE\n" not in text
    assert connect_step(proxy).expect_headers == (("Set-Cookie", "{{C1_SET_COOKIE = #any}}"),)


# --- refusals, redirects, failures ---------------------------------------------------------

@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refused_upgrade_reaches_the_client_as_that_status(record, node_server,
                                                                  node_client, status):
    server = node_server("--reject", str(status), "--reject-body", "go away")
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    client = node_client(proxy.url + "/x", steps=[])
    assert await client.await_exit() == 0
    rejected = client.events()[0]
    assert (rejected["event"], rejected["status"], rejected["body"]) == ("rejected", status, "go away")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(proxy.url + "/y")
    assert info.value.status == status
    await settled(proxy)
    steps = load(proxy.recorder.path).connections()
    assert [(c.name, c.expect_status) for c in steps] == [("c1", status), ("c2", status)]
    assert load(proxy.recorder.path).events() == []


UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}


async def test_an_upstream_redirect_is_passed_to_the_client_not_followed(record):
    server = ScriptedServer()
    server.refuse = (302, "moved", {"Location": "/elsewhere"})
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            async with session.get(proxy.url.replace("ws:", "http:") + "/here", headers=UPGRADE,
                                   allow_redirects=False) as answer:
                assert (answer.status, answer.headers["Location"]) == (302, "/elsewhere")
                assert await answer.read() == b"moved"
        await settled(proxy)
    assert server.requests == 1
    assert connect_step(proxy).expect_status == 302


async def test_an_unreachable_upstream_gives_502_and_a_note(record):
    proxy = await record(f"ws://127.0.0.1:{free_port()}")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(proxy.url)
        assert info.value.status == 502
        async with session.get(proxy.url.replace("ws:", "http:") + "/page") as answer:
            assert answer.status == 502
    scenario = load(proxy.recorder.path)
    assert scenario.connections() == []
    assert any("c1: not opened: upstream failed" in s.text for s in scenario.steps
               if isinstance(s, m.Comment))


async def test_an_origin_outside_the_allow_list_is_refused(record, node_server):
    server = node_server()
    proxy = await record(f"ws://127.0.0.1:{server.port}", allow_origins=("http://good",))
    with pytest.raises(InvalidStatus) as info:
        await connect(proxy.url, origin="http://evil", open_timeout=T)
    assert info.value.response.status_code == 403
    async with connect(proxy.url, origin="http://good", open_timeout=T):
        pass
    assert len([e for e in server.events() if e["event"] == "connect"]) == 1


# --- compression -------------------------------------------------------------------------

@pytest.mark.parametrize("server_deflate", [False, True])
async def test_permessage_deflate_is_negotiated_per_leg(record, node_server, node_client,
                                                        server_deflate):
    server = node_server(*(["--deflate"] if server_deflate else []))
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    text = "compressible " * 500
    client = node_client(proxy.url, "--deflate",
                         steps=[{"text": text}, {"wait": 1}, {"close": [1000]}])
    assert await client.await_exit() == 0
    opened = client.events()[0]
    assert ("permessage-deflate" in opened["extensions"]) is server_deflate
    seen = await server.await_event(event="connect")
    assert ("permessage-deflate" in seen["extensions"]) is server_deflate
    echoed = [e for e in client.events() if e["event"] == "message"]
    assert base64.b64decode(echoed[0]["b64"]).decode() == text
    await settled(proxy)
    step = connect_step(proxy)
    assert (step.compress, step.expect_compress) == (True, server_deflate)


# --- plain HTTP ----------------------------------------------------------------------------

async def test_plain_http_requests_are_forwarded(record, node_server):
    node = node_server()
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}/app")
        node_proxy = await record(f"ws://127.0.0.1:{node.port}")
        async with aiohttp.ClientSession() as session:
            base = proxy.url.replace("ws:", "http:")
            async with session.post(base + "/form?y=1", data=b"hello") as answer:
                assert (answer.status, await answer.text()) == (200, "http POST /app/form?y=1 hello")
            async with session.get(node_proxy.url.replace("ws:", "http:") + "/page?x=1") as answer:
                assert (answer.status, await answer.text()) == (200, "ws_server: plain http\n")
    assert await node.await_event(event="http", method="GET", path="/page?x=1")


# --- redaction and files -----------------------------------------------------------------

async def test_secrets_become_env_variables_and_the_file_is_private(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}",
                             redaction=Redaction.build(fields=["password"],
                                                       headers=["X-Api-Key"]))
        headers = {"Authorization": "Bearer b34rer", "Cookie": "sid=c00kie", "X-Api-Key": "k3y"}
        async with aiohttp.ClientSession() as session:
            for _ in range(2):  # the same secrets on a second connection reuse the variables
                async with session.ws_connect(proxy.url + "/feed?token=t0ps3cret&room=1",
                                              headers=headers) as ws:
                    await ws.send_str('{"user":"bob","password":"hunter2"}')
                    assert (await ws.receive(timeout=T)).data == '{"user":"bob","password":"hunter2"}'
        await settled(proxy)
    path = proxy.recorder.path
    text = path.read_text()
    for secret in ("b34rer", "c00kie", "k3y", "t0ps3cret", "hunter2"):
        assert secret not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    scenario = load(path)
    assert [s.name for s in scenario.steps if isinstance(s, m.Env)] == [
        "C1_TOKEN", "C1_AUTHORIZATION", "C1_COOKIE", "C1_X_API_KEY", "C1_PASSWORD"]
    c1, c2 = scenario.connections()
    assert c1.url.endswith("/feed?room=1") and c1.query == (("token", "{{C1_TOKEN}}"),)
    assert (c2.query, c2.headers) == (c1.query, c1.headers)
    assert events(scenario)[0] == (">", ("text", b'{"user":"bob","password":"{{C1_PASSWORD}}"}'))


async def test_no_redact_writes_what_was_seen(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}", redaction=Redaction(enabled=False))
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url + "/?token=t0p",
                                          headers={"Authorization": "Bearer b34rer"}):
                pass
        await settled(proxy)
    step = connect_step(proxy)
    assert step.url.endswith("/?token=t0p") and ("Authorization", "Bearer b34rer") in step.headers


async def test_split_writes_a_file_per_connection_named_never_from_the_request(record, tmp_path):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}", split=True)
        async with aiohttp.ClientSession() as session:
            for path in ("/%2e%2e/%2e%2e/evil?name=../../x", "/second"):
                async with session.ws_connect(proxy.url + path) as ws:
                    await ws.send_str(path)
                    await ws.receive(timeout=T)
        await settled(proxy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec0-c1.wsr", "rec0-c2.wsr"]
    for name, path in (("c1", "/%2e%2e/%2e%2e/evil?name=../../x"), ("c2", "/second")):
        scenario = load(tmp_path / f"rec0-{name}.wsr")
        assert [c.name for c in scenario.connections()] == [name]
        assert events(scenario, name)[0] == (">", ("text", path.encode()))


async def test_interleaved_connections_are_named_in_order_and_times_only_grow(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            first = await session.ws_connect(proxy.url + "/first")
            second = await session.ws_connect(proxy.url + "/second")
            for i in range(5):
                for ws in (first, second, first):
                    await ws.send_str(f"m{i}")
                    await ws.receive(timeout=T)
            await first.close()
            await second.close()
        await settled(proxy)
    scenario = load(proxy.recorder.path)
    assert [(c.name, c.url.rsplit("/", 1)[1]) for c in scenario.connections()] == [
        ("c1", "first"), ("c2", "second")]
    times = [s.at for s in scenario.steps if isinstance(s, (m.Event, m.Connect))]
    assert times == sorted(times) and len(events(scenario, "c1")) == 2 * 10 + 2


# --- the recording replays ------------------------------------------------------------------

async def test_a_recording_replays_against_the_server_it_was_recorded_from(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}", redaction=Redaction(enabled=False))
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url + "/chat", protocols=("v1",),
                                          autoping=False) as ws:
                for message in ('{"op":"hi","tag":"#a"}', "plain {{x}}", b"\x00\x01"):
                    await (ws.send_bytes(message) if isinstance(message, bytes)
                           else ws.send_str(message))
                    await ws.receive(timeout=T)
                await ws.ping(b"p")
                await ws.receive(timeout=T)
                await ws.close(code=4000, message=b"bye")
        await settled(proxy)
        server.seen.clear()
        result = await replay_scenario(load(proxy.recorder.path), timeout=T)
        assert result.passed, [f.message for f in result.failures]
        await until(lambda: server.seen and server.seen[-1][0] == "close")
    assert server.seen == [("text", b'{"op":"hi","tag":"#a"}'), ("text", b"plain {{x}}"),
                           ("binary", b"\x00\x01"), ("ping", b"p"), ("close", 4000, "bye")]


# --- TLS upstream ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for ``localhost`` (openssl CLI) and its key."""
    import shutil
    import subprocess

    from .conftest import missing

    if shutil.which("openssl") is None:
        missing("openssl is not installed (it makes the test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_a_wss_upstream_is_verified_with_sni_unless_told_otherwise(record, tls_files):
    import ssl

    cert, key = tls_files
    names: list = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = ScriptedServer()
    async with aiohttp_peer(server.handle, ssl_context=context) as port:
        target = f"wss://localhost:{port}/tls"
        untrusted = await record(target)
        trusted = await record(target, ca_file=str(cert))
        insecure = await record(target, insecure=True)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(untrusted.url)
            assert info.value.status == 502
            for proxy in (trusted, insecure):
                async with session.ws_connect(proxy.url + "/x") as ws:
                    await ws.send_str("over tls")
                    assert (await ws.receive(timeout=T)).data == "over tls"
        await settled(trusted)
        await settled(insecure)
    assert "localhost" in names and server.path == "/tls/x"
    assert connect_step(trusted).url == target + "/x"
    scenario = load(untrusted.recorder.path)
    assert any("not opened: upstream failed" in s.text and "certificate" in s.text.lower()
               for s in scenario.steps if isinstance(s, m.Comment))
