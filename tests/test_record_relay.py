"""The proxy's fast path (wsreplay/relay.py) forwards the very bytes it read: raw peers on both
sides see each other's frames as sent (masks, fragment boundaries, several frames per packet),
and the recording still holds every message."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct

import pytest

from .compliance.frames import BINARY, CLOSE, CONT, PING, TEXT, Frame, accept_key
from .conftest import T
from .record_helpers import events, load, record, settled, websockets_echo  # noqa: F401

BYE = struct.pack("!H", 1000) + b"bye"


class RawServer:
    """A WebSocket server on raw streams: answers the upgrade with ``greeting`` in the same
    write as its 101, keeps every byte it receives, answers a close frame and hangs up."""

    def __init__(self, greeting: bytes = b""):
        self.greeting, self.got, self.done = greeting, bytearray(), asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                       if line.lower().startswith("sec-websocket-key:"))
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                         + accept_key(key).encode() + b"\r\n\r\n" + self.greeting)
            while not self.got.endswith(_masked_close_tail(self.got)):
                chunk = await asyncio.wait_for(reader.read(1 << 16), T)
                if not chunk:
                    break
                self.got += chunk
            writer.write(Frame(CLOSE, BYE).encode(mask=False))
            await writer.drain()
        finally:
            writer.close()
            self.done.set()


def _masked_close_tail(got: bytearray) -> bytes:
    """The close frame's bytes when ``got`` ends with a complete masked close frame (the test
    clients send it last), else something ``got`` cannot end with."""
    n = 2 + 4 + len(BYE)
    if len(got) >= n and got[-n] == 0x88 and got[-n + 1] == 0x80 | len(BYE):
        return bytes(got[-n:])
    return b"\0never"


@contextlib.asynccontextmanager
async def raw_server(greeting: bytes = b""):
    server = RawServer(greeting)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    try:
        server.port = listener.sockets[0].getsockname()[1]
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


async def raw_client(port: int, after_request: bytes = b"", then: bytes = b""):
    """Upgrade through the proxy (``after_request`` sent in the same write as the request,
    before any answer), send ``then``, read until the server's close frame; the bytes read
    after the 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\n\r\n".encode() + after_request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(then)
        got = bytearray()
        closing = Frame(CLOSE, BYE).encode(mask=False)
        while not got.endswith(closing):
            chunk = await asyncio.wait_for(reader.read(1 << 16), T)
            if not chunk:
                break
            got += chunk
        return bytes(got)
    finally:
        writer.close()


async def test_both_peers_get_the_very_bytes_the_other_sent(record):
    greeting = (Frame(TEXT, b"hello").encode(mask=False)
                + Frame(BINARY, bytes(range(200)), fin=False).encode(mask=False)
                + Frame(CONT, b"!").encode(mask=False))
    sent = (Frame(TEXT, b"frag", fin=False).encode(mask=True)
            + Frame(PING, b"p").encode(mask=True)
            + Frame(CONT, b"ment").encode(mask=True)
            + Frame(BINARY, os.urandom(70000)).encode(mask=True)
            + Frame(CLOSE, BYE).encode(mask=True))
    async with raw_server(greeting) as server:
        proxy = await record(f"ws://127.0.0.1:{server.port}")
        got = await raw_client(proxy.port, then=sent)
        await asyncio.wait_for(server.done.wait(), T)
        await settled(proxy)
    assert bytes(server.got) == sent  # masks and fragment boundaries as the client made them
    assert got == greeting + Frame(CLOSE, BYE).encode(mask=False)
    binary = sent[-(70000 + len(BYE) + 6):-(len(BYE) + 6)]
    recorded = events(load(proxy.recorder.path))
    assert recorded[:2] == [("<", ("text", b"hello")), ("<", ("binary", bytes(range(200)) + b"!"))]
    assert recorded[2:4] == [(">", ("ping", b"p")), (">", ("text", b"fragment"))]
    assert recorded[4][0] == ">" and len(recorded[4][1][1]) == 70000
    assert recorded[4][1][1] != binary[4:]  # recorded unmasked, forwarded masked
    assert recorded[5:] == [(">", ("close", 1000, "bye")), ("<", ("close", 1000, "bye"))]


async def test_frames_a_client_sends_before_the_101_are_forwarded_and_recorded(record):
    early, bye = Frame(TEXT, b"too soon").encode(mask=True), Frame(CLOSE, BYE).encode(mask=True)
    async with raw_server() as server:
        proxy = await record(f"ws://127.0.0.1:{server.port}")
        await raw_client(proxy.port, after_request=early, then=bye)
        await asyncio.wait_for(server.done.wait(), T)
        await settled(proxy)
    assert bytes(server.got) == early + bye
    assert events(load(proxy.recorder.path))[0] == (">", ("text", b"too soon"))


async def test_an_upstream_that_speaks_and_hangs_up_at_once_is_recorded_whole(record):
    """The greeting and the end of the connection reach the proxy before it takes the
    upstream leg over: both come through anyway, in order."""
    async def speak_and_go(reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key).encode()
                     + b"\r\n\r\n" + Frame(TEXT, b"bye now").encode(mask=False))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(speak_and_go, "127.0.0.1", 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        proxy = await record(f"ws://127.0.0.1:{port}")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade"
                     f"\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        data = b""
        while b"\x88\x0f\x03\xf3upstream drop" not in data:  # the proxy's close 1011
            data += await asyncio.wait_for(reader.read(1 << 16), T)
        writer.write(Frame(CLOSE, BYE).encode(mask=True))  # the answer: then it hangs up
        assert await asyncio.wait_for(reader.read(), T) == b""
        writer.close()
        await settled(proxy)
    finally:
        listener.close()
        await listener.wait_closed()
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body.startswith(Frame(TEXT, b"bye now").encode(mask=False))
    rest = body[len(Frame(TEXT, b"bye now").encode(mask=False)):]
    assert rest == b"\x88\x0f\x03\xf3upstream drop"  # close 1011, then the hang-up
    assert events(load(proxy.recorder.path)) == [("<", ("text", b"bye now")), ("<", ("drop",))]


# --- permessage-deflate: agreed end to end, frames passed through ----------------------------

OFFERS = [
    "permessage-deflate; client_max_window_bits",  # what browsers send
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "x-webkit-deflate-frame, permessage-deflate",  # an extension the proxy leaves out
]


async def upgrade_answer(port: int, offer: str) -> str:
    """The Sec-WebSocket-Extensions a server at ``port`` answers to ``offer``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Extensions: {offer}\r\n\r\n".encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)).decode()
        assert head.startswith("HTTP/1.1 101"), head
        return next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                     if line.lower().startswith("sec-websocket-extensions:")), "")
    finally:
        writer.close()


@pytest.mark.parametrize("offer", OFFERS)
async def test_the_client_gets_the_upstreams_own_deflate_answer_and_messages_pass(record, offer):
    from websockets.asyncio.client import connect
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    async with websockets_echo() as port:
        proxy = await record(f"ws://127.0.0.1:{port}")
        direct = await upgrade_answer(port, offer.split(", ")[-1])
        assert direct.startswith("permessage-deflate")
        assert await upgrade_answer(proxy.port, offer) == direct  # the same agreement
        no_takeover = "no_context_takeover" in offer
        factory = ClientPerMessageDeflateFactory(
            server_no_context_takeover=no_takeover, client_no_context_takeover=no_takeover,
            client_max_window_bits=True)
        texts = ["héllo " * 40, "héllo " * 41, "x", "héllo " * 40]
        async with connect(proxy.url, extensions=[factory], compression=None) as ws:
            for text in texts:
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), T) == text
            await ws.send(os.urandom(3000))
            await asyncio.wait_for(ws.recv(), T)
        await settled(proxy)
    recorded = events(load(proxy.recorder.path), "c2")  # c1: the upgrade_answer probe
    assert [w for d, w in recorded if d == ">"][:4] == [("text", t.encode()) for t in texts]
    assert [w for d, w in recorded if d == "<"][:4] == [("text", t.encode()) for t in texts]
    conn = proxy.recorder.path.read_text().split("conn c2", 1)[1].split("\n@", 1)[0]
    assert conn.endswith("\n  compress\n  expect compress")  # offered, and agreed


async def test_this_aiohttp_lends_what_the_fast_path_borrows(record):
    """wsreplay/takeover.py's helpers work with the installed aiohttp; without them the proxy
    would quietly fall back to the aiohttp path, so an upgrade that moves them fails here."""
    async with raw_server() as server:
        proxy = await record(f"ws://127.0.0.1:{server.port}")
        assert proxy._fast is True
        await raw_client(proxy.port, then=Frame(CLOSE, BYE).encode(mask=True))
        await settled(proxy)
    assert "c1: " not in proxy.recorder.path.read_text()  # no note: a plain close
