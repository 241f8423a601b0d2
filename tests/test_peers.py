"""The Node test peers work: ws_server.js against the `websockets` and aiohttp clients,
ws_client.js against an aiohttp server. Other tests trust these peers, so they are pinned here."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
import websockets
from aiohttp import web
from websockets.asyncio.client import connect

from .conftest import T, free_port


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def messages(events: list[dict], **fields) -> list[dict]:
    return [e for e in events if all(e.get(k) == v for k, v in fields.items())]


# --- ws_server.js, talked to by the websockets library -------------------------------------------

async def test_server_echoes_text_and_binary_byte_exact(node_server):
    server = node_server()
    sent = ["hello", "", "héllo ✓ \x00 end", b"\x00\xff\x10", b"", bytes(range(256)) * 40]
    async with connect(f"ws://127.0.0.1:{server.port}/echo?x=1", open_timeout=T) as ws:
        for payload in sent:
            await ws.send(payload)
            echoed = await ws.recv()
            assert echoed == payload and type(echoed) is type(payload)
    await server.await_event(event="close", conn=1)
    seen = messages(server.events(), event="message")
    assert [(e["type"], base64.b64decode(e["b64"])) for e in seen] == [
        ("binary" if isinstance(p, bytes) else "text", p if isinstance(p, bytes) else p.encode())
        for p in sent
    ]
    connect_event = messages(server.events(), event="connect")[0]
    assert connect_event["path"] == "/echo?x=1"


async def test_server_answers_and_logs_pings(node_server):
    server = node_server()
    async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=T) as ws:
        pong_waiter = await ws.ping(b"\x00\xffab")
        await asyncio.wait_for(pong_waiter, T)
    event = await server.await_event(event="ping")
    assert event["hex"] == "00ff6162"


async def test_server_sends_ping_with_payload_on_request(node_server):
    server = node_server()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{server.port}/", autoping=False) as ws:
            await ws.send_str("__ping 0102ff")
            msg = await ws.receive(timeout=T)
            assert msg.type is aiohttp.WSMsgType.PING and msg.data == b"\x01\x02\xff"
            await ws.pong(msg.data)
            await server.await_event(event="pong", hex="0102ff")


async def test_server_closes_with_code_and_reason_on_request(node_server):
    server = node_server()
    async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=T) as ws:
        await ws.send("__close 4001 going away now")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd.code == 4001 and info.value.rcvd.reason == "going away now"
    assert (await server.await_event(event="close"))["code"] == 4001


async def test_server_bare_close_sends_no_code_and_bad_control_is_reported(node_server):
    server = node_server()
    async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=T) as ws:
        await ws.send("__close 999 not a valid code")
        assert "code" in (await server.await_event(event="error"))["message"]
        await ws.send("__close")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()  # nothing was echoed before the close
    assert info.value.rcvd.code == 1005  # "no status code": the frame was empty


@pytest.mark.parametrize("command", ["__terminate", "__reset"])
async def test_server_drops_the_connection_without_close_frame(node_server, command):
    server = node_server()
    async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=T) as ws:
        await ws.send(command)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is None  # no close frame came
    assert (await server.await_event(event="close"))["code"] == 1006


async def test_server_sends_messages_given_as_spec(node_server):
    server = node_server("--no-echo")
    async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=T) as ws:
        await ws.send('__send {"b64":"AAE="}')
        assert await ws.recv() == b"\x00\x01"
        await ws.send('__send {"text":"pushed"}')
        assert await ws.recv() == "pushed"
        await ws.send("not echoed")
        await ws.send('__send {"text":"after"}')
        assert await ws.recv() == "after"  # --no-echo: "not echoed" never came back


async def test_server_picks_first_offered_protocol_it_supports(node_server):
    server = node_server("--protocols", "a,b")
    url = f"ws://127.0.0.1:{server.port}/"
    async with connect(url, subprotocols=["x", "b", "a"], open_timeout=T) as ws:
        assert ws.subprotocol == "b"
    async with connect(url, subprotocols=["x", "y"], open_timeout=T) as ws:
        assert ws.subprotocol is None
    protocols = [e["protocol"] for e in messages(server.events(), event="connect")]
    assert protocols == ["b", ""]


async def test_server_deflate_negotiated_and_echo_intact(node_server):
    server = node_server("--deflate")
    payload = "compress me " * 100
    async with connect(f"ws://127.0.0.1:{server.port}/", compression="deflate",
                       open_timeout=T) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.send(payload)
        assert await ws.recv() == payload
    event = await server.await_event(event="connect")
    assert "permessage-deflate" in event["extensions"]


async def test_server_without_deflate_refuses_it(node_server):
    server = node_server()
    async with connect(f"ws://127.0.0.1:{server.port}/", compression="deflate",
                       open_timeout=T) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_server_rejects_upgrade_with_status_and_body(node_server):
    server = node_server("--reject", "403", "--reject-body", "go away")
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{server.port}/secret", open_timeout=T):
            pass
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"go away"
    assert await server.await_event(event="reject", status=403, path="/secret")


async def test_server_echoes_request_headers_and_adds_response_headers(node_server):
    server = node_server("--header", "X-Region: eu-1", "--header", "Set-Cookie: s=1")
    async with connect(f"ws://127.0.0.1:{server.port}/",
                       additional_headers={"Authorization": "Bearer t0k", "X-Custom": "v"},
                       open_timeout=T) as ws:
        assert ws.response.headers["X-Region"] == "eu-1"
        assert ws.response.headers["Set-Cookie"] == "s=1"
        await ws.send("__headers")
        headers = json.loads(await ws.recv())
    assert headers["authorization"] == "Bearer t0k" and headers["x-custom"] == "v"


async def test_server_answers_plain_http(node_server):
    server = node_server()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/page") as resp:
            assert resp.status == 200
            assert await resp.text() == "ws_server: plain http\n"
    assert await server.await_event(event="http", method="GET", path="/page")


# --- ws_client.js against an aiohttp server ------------------------------------------------------

class Recorder:
    """An aiohttp WebSocket endpoint that echoes and records what the client did."""

    def __init__(self, **ws_options):
        self.ws_options = ws_options
        self.seen: list[tuple] = []
        self.request_headers = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/refuse":
            return web.Response(status=401, text="token please")
        self.request_headers = dict(request.headers)
        ws = web.WebSocketResponse(autoping=False, autoclose=False, **self.ws_options)
        await ws.prepare(request)
        while True:
            msg = await ws.receive(timeout=T)
            if not await self.on_message(ws, msg):
                return ws

    async def on_message(self, ws, msg) -> bool:
        kind = msg.type
        if kind is aiohttp.WSMsgType.TEXT:
            self.seen.append(("text", msg.data))
            if msg.data == "close-me":
                await ws.close(code=4005, message=b"by server")
                return False
            if msg.data == "ping-me":
                await ws.ping(b"\x01\x02")
            await ws.send_str(msg.data)
        elif kind is aiohttp.WSMsgType.BINARY:
            self.seen.append(("binary", msg.data))
            await ws.send_bytes(msg.data)
        elif kind is aiohttp.WSMsgType.PING:
            self.seen.append(("ping", msg.data))
            await ws.pong(msg.data)
        elif kind is aiohttp.WSMsgType.PONG:
            self.seen.append(("pong", msg.data))
        elif kind is aiohttp.WSMsgType.CLOSE:
            self.seen.append(("close", msg.data, msg.extra))
            # aiohttp reports an empty close frame as code 0, which must never go on the wire.
            code = msg.data or 1000
            await ws.close(code=code, message=(msg.extra or "").encode())
            return False
        else:
            self.seen.append((kind.name,))
            return False
        return True


@pytest.fixture
async def aiohttp_server():
    """A factory: ``await aiohttp_server(recorder) -> port``; servers stop when the test ends."""
    runners = []

    async def start(recorder: Recorder) -> int:
        app = web.Application()
        app.router.add_get("/{tail:.*}", recorder.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner.addresses[0][1]

    yield start
    for runner in runners:
        await runner.cleanup()


def client_messages(events: list[dict]) -> list[tuple[str, bytes]]:
    return [(e["type"], base64.b64decode(e["b64"])) for e in events if e["event"] == "message"]


async def test_client_sends_steps_and_prints_what_it_gets(aiohttp_server, node_client):
    recorder = Recorder()
    port = await aiohttp_server(recorder)
    steps = [{"text": "héllo"}, {"b64": b64(b"\x00\xff")}, {"text": ""}, {"b64": ""},
             {"ping": "aabb"}, {"wait": 4}, {"text": "ping-me"}, {"wait": 5},
             {"close": [4001, "bye"]}]
    client = node_client(f"ws://127.0.0.1:{port}/chat?u=1", steps=steps)
    assert await client.await_exit() == 0
    events = client.events()
    assert events[0]["event"] == "open"
    assert client_messages(events) == [("text", "héllo".encode()), ("binary", b"\x00\xff"),
                                       ("text", b""), ("binary", b""), ("text", b"ping-me")]
    assert {"event": "pong", "hex": "aabb"} in events
    assert {"event": "ping", "hex": "0102"} in events
    assert events[-1] == {"event": "close", "code": 4001, "reason": "bye"}
    assert recorder.seen == [("text", "héllo"), ("binary", b"\x00\xff"), ("text", ""),
                             ("binary", b""), ("ping", b"\xaa\xbb"), ("text", "ping-me"),
                             ("pong", b"\x01\x02"), ("close", 4001, "bye")]


async def test_client_reports_server_close_and_reads_steps_file(aiohttp_server, node_client,
                                                                tmp_path):
    port = await aiohttp_server(Recorder())
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps([{"text": "one"}, {"wait": 1}, {"text": "close-me"}]))
    client = node_client(f"ws://127.0.0.1:{port}/", str(steps), steps=[])
    assert await client.await_exit() == 0
    events = client.events()
    assert client_messages(events) == [("text", b"one")]
    assert events[-1] == {"event": "close", "code": 4005, "reason": "by server"}


async def test_client_is_driven_step_by_step_over_stdin(aiohttp_server, node_client):
    recorder = Recorder()
    port = await aiohttp_server(recorder)
    client = node_client(f"ws://127.0.0.1:{port}/")
    await client.await_event(event="open")
    client.write({"text": "first"})
    await client.await_event(event="message", b64=b64(b"first"))
    client.write({"close": []})
    assert await client.await_exit() == 0
    assert recorder.seen[-1] == ("close", 0, "")  # aiohttp's way of saying "no code"
    assert client.events()[-1] == {"event": "close", "code": 1000, "reason": ""}


async def test_client_handshake_options(aiohttp_server, node_client):
    recorder = Recorder(protocols=("v2", "v1"), compress=True)
    port = await aiohttp_server(recorder)
    client = node_client(f"ws://127.0.0.1:{port}/", "--protocols", "v1,v2", "--deflate",
                         "--header", "Authorization: Bearer abc",
                         steps=[{"text": "x" * 2000}, {"wait": 1}, {"close": [1000, ""]}])
    assert await client.await_exit() == 0
    opened = client.events()[0]
    assert opened["event"] == "open" and opened["protocol"] == "v1"  # aiohttp: client's order
    assert "permessage-deflate" in opened["extensions"]
    assert client_messages(client.events()) == [("text", b"x" * 2000)]
    assert recorder.request_headers["Authorization"] == "Bearer abc"
    assert recorder.request_headers["Sec-WebSocket-Protocol"] == "v1,v2"


async def test_client_reports_refused_upgrade(aiohttp_server, node_client):
    port = await aiohttp_server(Recorder())
    client = node_client(f"ws://127.0.0.1:{port}/refuse", steps=[])
    assert await client.await_exit() == 0
    (event,) = client.events()
    assert event["event"] == "rejected" and event["status"] == 401
    assert event["body"] == "token please"


async def test_client_reports_unreachable_server(node_client):
    client = node_client(f"ws://127.0.0.1:{free_port()}/", steps=[])
    assert await client.await_exit() == 0
    events = client.events()
    assert events[0]["event"] == "error" and "ECONNREFUSED" in events[0]["message"]
    assert events[-1] == {"event": "close", "code": 1006, "reason": ""}


async def test_node_client_and_server_talk_to_each_other(node_server, node_client):
    server = node_server()
    client = node_client(f"ws://127.0.0.1:{server.port}/",
                         steps=[{"text": "hi"}, {"wait": 1}, {"text": "__close 4100 done"}])
    assert await client.await_exit() == 0
    assert client_messages(client.events()) == [("text", b"hi")]
    assert client.events()[-1] == {"event": "close", "code": 4100, "reason": "done"}
