"""The compliance driver itself (tests/compliance): its frames are what a real library reads,
and it notices a peer that breaks the protocol. Without this the compliance cases could pass
by the driver's own mistakes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from .compliance.frames import (BINARY, CLOSE, CONT, PING, RSV2, TEXT, Frame, client_handshake,
                                close_payload, read_frame, server_handshake)
from .compliance.peers import ConformingServer, Msg, RawPeer, Wait, listening
from .compliance.run import render
from .conftest import T


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("mask", [False, True])
async def test_frames_round_trip_at_every_length_encoding(n, mask):
    payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
    frame = Frame(BINARY, payload, fin=False, rsv=RSV2)
    reader = asyncio.StreamReader()
    reader.feed_data(frame.encode(mask=mask))
    reader.feed_eof()
    got = await read_frame(reader)
    assert (got.opcode, got.payload, got.fin, got.rsv, got.masked) == \
        (BINARY, payload, False, RSV2, mask)
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader)


async def connect(port: int, deflate: bool = False, echo_close: bool = True) -> RawPeer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    negotiated = await client_handshake(reader, writer, f"127.0.0.1:{port}", "/", deflate)
    return RawPeer(reader, writer, client=True, deflate=negotiated, timeout=T,
                   echo_close=echo_close)


async def test_aiohttp_reads_the_drivers_fragmented_compressed_messages_and_pings():
    server = ConformingServer(compress=True, timeout=T)
    async with listening(server.handle) as port:
        peer = await connect(port, deflate=True)
        await peer.play([Msg(TEXT, "κόσμε".encode() * 50, cuts=(1, 7), deflate=True), Wait(),
                         Msg(BINARY, b"\x00" * 1000, deflate=True), Wait()])
        await peer.send(Frame(PING, b"p"))
        await peer.wait_for(3)
        await peer.finish()
    assert server.deflate and peer.deflate is not None
    assert [render(s) for s in server.seen] == [
        render(("text", "κόσμε".encode() * 50)), render(("binary", b"\x00" * 1000)),
        "ping 70", 'close 1000 "bye"']
    assert [render(s) for s in peer.seen][-3:] == ["pong 70", 'close 1000 "bye"', "EOF"]
    assert peer.compressed_in == 2  # aiohttp compressed its echoes; the driver inflated them


async def test_aiohttp_refuses_the_drivers_bad_frame_with_1002():
    server = ConformingServer(compress=False, timeout=T)
    async with listening(server.handle) as port:
        peer = await connect(port)
        await peer.send(Frame(TEXT, b"x", rsv=RSV2))
        await peer.finish(None)
    assert [render(s) for s in peer.seen] == ['close 1002 ""', "EOF"]
    assert server.seen[0][0] == "error"


@contextlib.asynccontextmanager
async def raw_server(*frames: Frame, mask: bool = False):
    """A server that upgrades, writes ``frames`` as they are, then waits for the client."""

    async def handle(reader, writer):
        await server_handshake(reader, writer, accept_deflate=False)
        writer.write(b"".join(f.encode(mask=mask) for f in frames))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(), T)
        writer.close()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield tcp.sockets[0].getsockname()[1]
    finally:
        tcp.close()


@pytest.mark.parametrize("frames,mask,why", [
    ((Frame(TEXT, b"x"),), True, "a masked frame from the server"),
    ((Frame(TEXT, b"\xff"),), False, "invalid UTF-8 in a text message"),
    ((Frame(TEXT, b"x", rsv=RSV2),), False, "reserved bits 010 set"),
    ((Frame(CONT, b"x"),), False, "a continuation with nothing to continue"),
    ((Frame(PING, b"x" * 126),), False, "a fragmented, oversized or RSV-flagged control frame"),
    ((Frame(CLOSE, close_payload(1006)),), False, "close frame 03ee: not a valid one"),
    ((Frame(CLOSE, close_payload(1000)), Frame(CLOSE, close_payload(1002))), False,
     "a frame (opcode 8) after the close frame: 03ea"),
])
async def test_the_driver_notices_a_peer_breaking_the_protocol(frames, mask, why):
    async with raw_server(*frames, mask=mask) as port:
        peer = await connect(port, echo_close=False)
        await peer.finish(None)
    assert peer.seen[-1] == ("violation", why)


async def test_waits_are_bounded_and_say_so():
    async with raw_server() as port:
        peer = await connect(port)
        peer.timeout = T / 50
        await peer.wait_for(1)
        await peer.abort()
    assert peer.seen == [("timeout", "waited for 1 more")]
