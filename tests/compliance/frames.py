"""RFC 6455 frames as bytes, with nothing checked on the way out: any reserved bit, any opcode,
any length, control frames fragmented or oversized — what a compliance driver must be able to
put on the wire. Also the opening handshake (both roles) and permessage-deflate (RFC 7692)
over raw asyncio streams.

Reading is strict the other way: :func:`read_frame` returns what arrived, and
:class:`~tests.compliance.peers.RawPeer` checks it against the protocol.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 4, 2, 1
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 64 << 20  # a larger frame from a peer is a bug in the test, not a case
TAIL = b"\x00\x00\xff\xff"  # what permessage-deflate strips from (and re-adds to) a message


@dataclass(frozen=True)
class Frame:
    """One frame as it goes on the wire. ``rsv`` holds the three reserved bits (RSV1 = 4)."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0

    def encode(self, mask: bool) -> bytes:
        """The frame's bytes; masked (as a client must) when ``mask``."""
        head = bytes([(0x80 if self.fin else 0) | (self.rsv & 7) << 4 | (self.opcode & 0xF)])
        n, bit = len(self.payload), 0x80 if mask else 0
        if n < 126:
            head += bytes([bit | n])
        elif n < 1 << 16:
            head += bytes([bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([bit | 127]) + struct.pack("!Q", n)
        if not mask:
            return head + self.payload
        key = os.urandom(4)
        return head + key + apply_mask(self.payload, key)


def apply_mask(data: bytes, key: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key`` (one big-integer XOR: fast for MiBs)."""
    if not data:
        return b""
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


@dataclass(frozen=True)
class Received:
    """One frame as it came off the wire (unmasked)."""

    opcode: int
    payload: bytes
    fin: bool
    rsv: int
    masked: bool


async def read_frame(reader: asyncio.StreamReader) -> Received:
    """The next frame; raises ``asyncio.IncompleteReadError`` at end of stream."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if n > MAX_FRAME:
        raise ValueError(f"a {n}-byte frame: larger than the driver accepts")
    masked = bool(b1 & 0x80)
    key = await reader.readexactly(4) if masked else b""
    payload = await reader.readexactly(n)
    if masked:
        payload = apply_mask(payload, key)
    return Received(b0 & 0xF, payload, bool(b0 & 0x80), (b0 >> 4) & 7, masked)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


# --- permessage-deflate ----------------------------------------------------------------

class Deflate:
    """One leg's negotiated permessage-deflate: compresses what this end sends and inflates
    what it receives, keeping the LZ77 window across messages unless a no-context-takeover
    parameter says otherwise."""

    def __init__(self, params: dict[str, str | None], client: bool):
        mine, theirs = ("client", "server") if client else ("server", "client")
        self.reset_out = f"{mine}_no_context_takeover" in params
        self.reset_in = f"{theirs}_no_context_takeover" in params
        bits = params.get(f"{mine}_max_window_bits")
        self.bits_out = int(bits) if bits else 15
        self._out = self._in = None

    def compress(self, data: bytes) -> bytes:
        if self._out is None or self.reset_out:
            self._out = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                         -max(self.bits_out, 9))
        out = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(TAIL) else out

    def inflate(self, data: bytes) -> bytes:
        if self._in is None or self.reset_in:
            self._in = zlib.decompressobj(-15)
        return self._in.decompress(data + TAIL)


def extension_params(header: str) -> dict[str, str | None] | None:
    """The permessage-deflate parameters in a Sec-WebSocket-Extensions value (None: absent)."""
    for ext in header.split(","):
        name, *params = (p.strip() for p in ext.split(";"))
        if name.lower() == "permessage-deflate":
            out: dict[str, str | None] = {}
            for p in params:
                key, _, value = p.partition("=")
                out[key.strip().lower()] = value.strip().strip('"') or None
            return out
    return None


# --- the opening handshake ---------------------------------------------------------------

def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in filter(None, lines):
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return first, headers


async def client_handshake(reader, writer, host: str, path: str,
                           offer_deflate: bool) -> Deflate | None:
    """Upgrade the connection as a client; the negotiated compression (None: none). Raises
    ConnectionError unless the answer is a valid 101."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if offer_deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    status, headers = await _read_head(reader)
    if status.split()[1:2] != ["101"] or headers.get("sec-websocket-accept") != accept_key(key):
        raise ConnectionError(f"handshake refused: {status}")
    params = extension_params(headers.get("sec-websocket-extensions", ""))
    return Deflate(params, client=True) if params is not None else None


async def server_handshake(reader, writer, accept_deflate: bool) -> tuple[str, Deflate | None]:
    """Answer an upgrade request as a server; its path and the negotiated compression."""
    request, headers = await _read_head(reader)
    offered = extension_params(headers.get("sec-websocket-extensions", ""))
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}"]
    deflate = None
    if accept_deflate and offered is not None:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate")
        deflate = Deflate({}, client=False)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return request.split()[1], deflate
