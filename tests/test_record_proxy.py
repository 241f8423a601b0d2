"""``wsreplay record`` is transparent for messages and closes, proved against real peers: aiohttp
and ``websockets`` servers and clients and Node's ``ws`` (tests/peers). Each test checks what
the peers saw *and* what the recording says."""

from __future__ import annotations

import asyncio
import base64
import os

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from .conftest import T
from .record_helpers import (ScriptedServer, aiohttp_peer, events, load, record, settled,  # noqa: F401
                             until, websockets_echo)

MiB = 1 << 20


def on_wire(payload) -> tuple:
    return ("binary", payload) if isinstance(payload, bytes) else ("text", payload.encode())


PAYLOADS = [
    "", b"", bytes(range(256)), "héllo ✓ 日本語 \U0001F600 \x00 tab\tend ",
    '{"a":[1,2.5,null,true],"b":"ü","c":{}}', '{"tag":"#general","t":"{{x}}"}',
    "{{not a placeholder}} #hash", '  {"padded": 1}',
]
SMALL_PAYLOADS = list(PAYLOADS)
PAYLOADS += ["x" * MiB, os.urandom(MiB)]


# --- every payload kind, byte-exact, both directions, several pairs of peers --------------

async def aiohttp_client(url: str, payloads) -> list[tuple]:
    got = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            for p in payloads:
                await (ws.send_bytes(p) if isinstance(p, bytes) else ws.send_str(p))
                msg = await ws.receive(timeout=T)
                got.append(on_wire(msg.data))
            await ws.close(code=1000, message=b"done")
    return got


async def websockets_client(url: str, payloads) -> list[tuple]:
    got = []
    async with connect(url, max_size=None, open_timeout=T) as ws:
        for p in payloads:
            await ws.send(p)
            got.append(on_wire(await asyncio.wait_for(ws.recv(), T)))
        await ws.close(1000, "done")
    return got


async def node_client_run(node_client, url: str, payloads) -> list[tuple]:
    steps = []
    for i, p in enumerate(payloads):
        steps.append({"b64": base64.b64encode(p).decode()} if isinstance(p, bytes) else {"text": p})
        steps.append({"wait": i + 1})
    client = node_client(url, steps=steps + [{"close": [1000, "done"]}])
    assert await client.await_exit(2 * T) == 0
    return [(e["type"], base64.b64decode(e["b64"])) for e in client.events()
            if e["event"] == "message"]


@pytest.mark.parametrize("client_kind,server_kind", [
    ("aiohttp", "aiohttp"), ("websockets", "websockets"), ("websockets", "node"),
    ("node", "aiohttp"),
])
async def test_every_payload_kind_is_byte_exact_both_ways_and_in_the_file(
        record, node_server, node_client, client_kind, server_kind):
    server = ScriptedServer()
    async with contextlib_server(server_kind, server, node_server) as port:
        proxy = await record(f"ws://127.0.0.1:{port}/base", max_size=2 * MiB)
        url = proxy.url + "/echo?q=1"
        payloads = PAYLOADS
        if client_kind == "aiohttp":
            got = await aiohttp_client(url, PAYLOADS)
        elif client_kind == "websockets":
            got = await websockets_client(url, PAYLOADS)
        else:
            payloads = SMALL_PAYLOADS  # ws_client.js exits before a 1 MiB event line is out
            got = await node_client_run(node_client, url, payloads)
        await settled(proxy)
    expected = [on_wire(p) for p in payloads]
    assert got == expected
    if server_kind == "aiohttp":
        assert server.seen[: len(payloads)] == expected and server.path == "/base/echo?q=1"
    recorded = events(load(proxy.recorder.path))
    assert recorded[: 2 * len(payloads)] == [(d, w) for w in expected for d in "><"]
    assert recorded[2 * len(payloads):] == [(">", ("close", 1000, "done")),
                                            ("<", ("close", 1000, "done"))]


def contextlib_server(kind: str, server: ScriptedServer, node_server):
    """An async context manager yielding the port of a ``kind`` echo server."""
    import contextlib

    if kind == "aiohttp":
        return aiohttp_peer(server.handle)
    if kind == "websockets":
        return websockets_echo()

    @contextlib.asynccontextmanager
    async def node():
        yield node_server().port

    return node()


async def test_json_and_placeholder_lookalikes_are_recorded_so_they_read_back_exactly(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        await aiohttp_client(proxy.url, ['{"room":"#general","n":1}', "a {{b}} c", '{"k":"{{v}}"}'])
        await settled(proxy)
    text = proxy.recorder.path.read_text()
    assert 'c1 > json {"room":"##general","n":1}' in text
    assert "c1 > text a {{'{{'}}b}} c" in text
    assert """c1 < json {"k":"{{'{{'}}v}}"}""" in text


async def test_16_mib_messages_pass_with_the_limit_raised(record, node_server):
    big_binary, big_text = os.urandom(16 * MiB), "é" * (8 * MiB)  # 16 MiB of UTF-8 text
    port = node_server().port
    proxy = await record(f"ws://127.0.0.1:{port}", max_size=16 * MiB)
    got = await aiohttp_client(proxy.url, [big_binary, big_text])
    await settled(proxy)
    assert got == [("binary", big_binary), ("text", big_text.encode())]
    recorded = events(load(proxy.recorder.path))
    assert recorded[:4] == [(">", got[0]), ("<", got[0]), (">", got[1]), ("<", got[1])]


async def test_a_message_over_the_limit_gets_1009_and_is_recorded(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}", max_size=1000)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url) as ws:
                await ws.send_bytes(b"a" * 1000)  # exactly the limit passes
                assert (await ws.receive(timeout=T)).data == b"a" * 1000
                await ws.send_bytes(b"b" * 1001)
                msg = await ws.receive(timeout=T)
                assert (msg.type, msg.data, msg.extra) == (
                    aiohttp.WSMsgType.CLOSE, 1009, "message larger than 1000 bytes")
        await asyncio.wait_for(server.ended.wait(), T)
        await settled(proxy)
    assert server.seen[-1][:2] == ("close", 1011)  # the upstream leg is told too
    recorded = events(load(proxy.recorder.path))  # the close the client got, as it got it
    assert recorded[-1] == ("<", ("close", 1009, "message larger than 1000 bytes"))
    assert (">", ("binary", b"b" * 1001)) not in recorded


async def test_a_server_message_over_the_limit_closes_upstream_1009_and_client_1011(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}", max_size=1000)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url) as ws:
                await ws.send_str("__flood 1 1001")
                msg = await ws.receive(timeout=T)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1011)
        await settled(proxy)
    assert events(load(proxy.recorder.path))[-1] == (
        ">", ("close", 1009, "message larger than 1000 bytes"))


# --- ping and pong ------------------------------------------------------------------------

async def test_ping_and_pong_payloads_are_forwarded_both_ways(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url, autoping=False) as ws:
                await ws.ping(b"\x00\xffab")
                pong = await ws.receive(timeout=T)
                assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"\x00\xffab")
                await ws.send_str("__ping 0102ff")
                ping = await ws.receive(timeout=T)
                assert (ping.type, ping.data) == (aiohttp.WSMsgType.PING, b"\x01\x02\xff")
                await ws.pong(b"\x01\x02\xff")
                await ws.pong(b"")  # an unsolicited, empty pong
                await until(lambda: ("pong", b"") in server.seen)
        await settled(proxy)
    assert server.seen[:1] == [("ping", b"\x00\xffab")]
    assert ("pong", b"\x01\x02\xff") in server.seen
    recorded = events(load(proxy.recorder.path))
    assert recorded[:5] == [
        (">", ("ping", b"\x00\xffab")), ("<", ("pong", b"\x00\xffab")),
        (">", ("text", b"__ping 0102ff")), ("<", ("ping", b"\x01\x02\xff")),
        (">", ("pong", b"\x01\x02\xff")),
    ]


async def test_node_server_sees_the_clients_ping_payload(record, node_server):
    server = node_server()
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with connect(proxy.url, open_timeout=T) as ws:
        await asyncio.wait_for(await ws.ping(b"\x07hello"), T)
    assert (await server.await_event(event="ping"))["hex"] == b"\x07hello".hex()


# --- close codes and reasons ------------------------------------------------------------------

CODES = [1000, 1001, 1008, 1011, 3000, 4000, 4999]


@pytest.mark.parametrize("code", CODES)
async def test_client_close_code_and_reason_reach_the_server_and_back(record, code):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(proxy.url)
            await ws.close(code=code, message=f"reason {code} ✓".encode())
            assert ws.close_code == code  # the server's answering close, forwarded back
        await settled(proxy)
    assert server.seen == [("close", code, f"reason {code} ✓")]
    assert events(load(proxy.recorder.path)) == [
        (">", ("close", code, f"reason {code} ✓")), ("<", ("close", code, f"reason {code} ✓"))]


@pytest.mark.parametrize("code", CODES)
async def test_server_close_code_and_reason_reach_the_client_and_back(record, node_server, code):
    server = node_server()
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with connect(proxy.url, open_timeout=T) as ws:
        await ws.send(f"__close {code} server says {code}")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), T)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, f"server says {code}")
    assert (closed.value.sent.code, closed.value.rcvd_then_sent) == (code, True)
    event = await server.await_event(event="close")
    assert (event["code"], event["reason"]) == (code, f"server says {code}")
    await settled(proxy)
    assert events(load(proxy.recorder.path))[1:] == [
        ("<", ("close", code, f"server says {code}")), (">", ("close", code, f"server says {code}"))]


async def test_empty_close_frames_are_forwarded_without_a_code(record, node_client):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        client = node_client(proxy.url, steps=[{"close": []}])
        assert await client.await_exit() == 0
        await settled(proxy)
    assert server.seen == [("close", 0, "")]
    assert client.events()[-1] == {"event": "close", "code": 1005, "reason": ""}
    assert events(load(proxy.recorder.path)) == [(">", ("close", None, "")),
                                                 ("<", ("close", None, ""))]


async def test_server_empty_close_reaches_the_node_client_as_no_status(record, node_client):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        client = node_client(proxy.url, steps=[{"text": "__close"}])
        assert await client.await_exit() == 0
        await settled(proxy)
    assert client.events()[-1]["code"] == 1005
    assert events(load(proxy.recorder.path))[1:] == [("<", ("close", None, "")),
                                                     (">", ("close", None, ""))]


# --- drops -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["__terminate", "__reset"])
async def test_a_dropped_upstream_gives_the_client_1011_promptly(record, node_server, command):
    server = node_server()
    proxy = await record(f"ws://127.0.0.1:{server.port}")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url) as ws:
            await ws.send_str(command)
            msg = await ws.receive(timeout=T / 5)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1011)
    await settled(proxy)
    assert events(load(proxy.recorder.path)) == [(">", ("text", command.encode())),
                                                 ("<", ("drop",))]


async def test_a_dropped_client_gets_the_upstream_leg_closed_promptly(record, node_client):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        client = node_client(proxy.url, steps=[{"text": "hi"}, {"wait": 1}, {"terminate": True}])
        await asyncio.wait_for(server.ended.wait(), T / 5 + 1)
        await settled(proxy)
    assert server.seen[-1][:2] == ("close", 1011)
    assert events(load(proxy.recorder.path)) == [
        (">", ("text", b"hi")), ("<", ("text", b"hi")), (">", ("drop",))]
    client.stop()


async def test_invalid_utf8_from_the_client_closes_it_1007_and_upstream_1011(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url) as ws:
                await ws.send_str("fine")
                await ws.receive(timeout=T)
                await ws.send_frame(b"\xff\xfe", aiohttp.WSMsgType.TEXT)
                msg = await ws.receive(timeout=T)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1007)
        await asyncio.wait_for(server.ended.wait(), T)
        await settled(proxy)
    assert server.seen == [("text", b"fine"), ("close", 1011, "client error")]
    assert events(load(proxy.recorder.path))[-1] == ("<", ("close", 1007, "invalid UTF-8"))
    assert ("# c1: the client broke the protocol (invalid UTF-8): its leg closed with 1007, "
            "the upstream's with 1011\n") in proxy.recorder.path.read_text()


# --- order, backpressure, shutdown ----------------------------------------------------------

async def test_a_burst_keeps_its_order_on_the_wire_and_in_the_file(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        sent = [f"m{i}" for i in range(2000)]
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url) as ws:
                for text in sent:
                    await ws.send_str(text)
                got = [(await ws.receive(timeout=T)).data for _ in sent]
        await settled(proxy)
    assert got == sent
    recorded = events(load(proxy.recorder.path))
    assert [w[1].decode() for d, w in recorded if d == ">" and w[0] == "text"] == sent
    assert [w[1].decode() for d, w in recorded if d == "<" and w[0] == "text"] == sent


async def test_a_client_that_stops_reading_holds_the_server_back(record):
    server = ScriptedServer()
    count, size = 400, 128 * 1024  # 50 MiB: far more than the socket buffers on the way
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url, max_msg_size=0) as ws:
                await ws.send_str(f"__flood {count} {size}")
                await asyncio.sleep(T / 5)
                assert server.flood_sent < count // 2  # the proxy did not soak it all up
                for _ in range(count):
                    msg = await ws.receive(timeout=T)
                    assert msg.data == b"\x01" * size
        await settled(proxy)
    assert server.flood_sent == count


async def test_stopping_the_proxy_closes_both_legs_with_1001(record):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(proxy.url) as ws:
                await ws.send_str("before stop")
                await ws.receive(timeout=T)
                summary = await asyncio.wait_for(proxy.stop(), 2 * T)
                msg = await ws.receive(timeout=T)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(server.ended.wait(), T)
    assert server.seen[-1][:2] == ("close", 1001)
    assert (summary.connections, summary.messages) == (1, 2)
    scenario = load(proxy.recorder.path)
    assert events(scenario) == [(">", ("text", b"before stop")), ("<", ("text", b"before stop"))]
    text = proxy.recorder.path.read_text()
    assert "# c1: recording stopped: both legs closed with 1001\n" in text
    assert text.endswith("# end: 1 connections, 2 messages, 22 bytes\n")
