"""WebSocket frames read off one direction of a connection, checked as RFC 6455 wants a
receiver to check them: the recording proxy's fast path, free of sockets and clocks.

A :class:`FrameReader` is fed the bytes one peer sent, in chunks as they arrive, and says
frame by frame what they hold; the proxy forwards the very bytes it was fed, so fragment
boundaries, masks and everything else on the wire reach the other peer unchanged. It knows
no extension: a connection that negotiated permessage-deflate goes the slow way (aiohttp).

Each :meth:`FrameReader.feed` gives ``(chunk, items)``: ``chunk`` holds the bytes the items'
offsets refer to (the data fed, after what was left over from the last call), and each item
is ``(opcode, payload, end)`` for a frame that ends at ``chunk[end]``:

* a whole message (text 1 or binary 2, fragmented or not): its payload, unmasked;
* a ping (9) or pong (10): its payload; a close (8): ``(code, reason)``, code None when the
  frame had none;
* ``CONT`` (0) for a fragment that does not finish its message: nothing to record yet, only
  bytes to forward.

A frame that breaks the protocol stops the reader: the items before it are returned and
:attr:`FrameReader.error` holds ``(close code, why)``. After a close frame nothing more is read.
"""

from __future__ import annotations

import codecs
import zlib
from dataclasses import dataclass

from websockets.exceptions import InvalidHeader
from websockets.headers import parse_extension

try:  # websockets' C helper; the pure-Python one is its fallback, never aiohttp's
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its extension
    from websockets.utils import apply_mask

__all__ = ["CONT", "Deflate", "FrameReader", "agreed_deflate", "valid_close_code"]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10


def valid_close_code(code: int) -> bool:
    """Whether a close code may be sent (RFC 6455 7.4.1/7.4.2, the IANA registry): 1000-1003,
    1007-1014 and 3000-4999."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass(frozen=True)
class Deflate:
    """The permessage-deflate the peers agreed: whether each one starts every message with a
    fresh compression context (its window size does not matter to an inflater)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False


_DEFLATE_PARAMS = frozenset({"server_no_context_takeover", "client_no_context_takeover",
                             "server_max_window_bits", "client_max_window_bits"})


def agreed_deflate(answer: str) -> Deflate | None:
    """The permessage-deflate a server's ``Sec-WebSocket-Extensions`` answer agrees to (None:
    no extension); ValueError for anything else (another extension, an unknown or repeated
    parameter), which a reader could not follow. The header is parsed by ``websockets``."""
    if not answer.strip():
        return None
    try:
        extensions = parse_extension(answer)
    except InvalidHeader as exc:
        raise ValueError(f"a Sec-WebSocket-Extensions answer wsreplay cannot read: {exc}") \
            from None
    (name, params), *others = extensions
    if others or name.lower() != "permessage-deflate":
        raise ValueError(f"an extension wsreplay cannot read: {answer.strip()!r}")
    keys = [key.lower() for key, _ in params]
    for key, value in params:
        if key.lower() not in _DEFLATE_PARAMS or keys.count(key.lower()) > 1 \
                or (value is not None and not value.isdigit()):
            raise ValueError(f"a permessage-deflate parameter wsreplay cannot read: {key!r}")
    return Deflate("server_no_context_takeover" in keys, "client_no_context_takeover" in keys)


class FrameReader:
    """Frames from one peer. ``masked``: this peer is a client (its frames must be masked,
    a server's must not be); ``max_size``: the largest message (all its fragments) accepted,
    a larger one fails with 1009 as soon as its header (or its inflated size) says so.
    ``deflate``: the agreed permessage-deflate, if any."""

    __slots__ = ("_mask", "max_size", "error", "closed", "_left", "_need", "_op", "_parts",
                 "_size", "_utf8", "_rsv", "_reset", "_zlib", "_compressed")

    def __init__(self, masked: bool, max_size: int, deflate: Deflate | None = None):
        self._rsv = 0x40 if deflate else 0  # RSV1 may start a message: it is compressed
        self._reset = bool(deflate) and (deflate.client_no_context_takeover if masked
                                         else deflate.server_no_context_takeover)
        self._zlib = zlib.decompressobj(-15) if deflate else None
        self._compressed = False  # the fragmented message in progress is
        self._mask = 0x80 if masked else 0
        self.max_size = max_size
        self.error: tuple[int, str] | None = None
        self.closed = False  # a close frame or an error was read: the rest is ignored
        self._left = bytearray()  # an incomplete frame carried over to the next feed
        self._need = 0  # bytes _left must reach before it is worth parsing again
        self._op = 0  # the opcode of the fragmented message in progress (0: none)
        self._parts: list[bytes] = []
        self._size = 0
        self._utf8 = None  # incremental decoder checking a fragmented text message

    @property
    def pending(self) -> int:
        """Bytes held back: an incomplete frame waiting for the rest."""
        return len(self._left)

    def feed(self, data: bytes) -> tuple[bytes, list[tuple]]:
        """Parse ``data`` (what came next from the peer); see the module docstring."""
        if self.closed:
            return data, []
        if self._left:
            self._left += data
            if len(self._left) < self._need:
                return b"", []
            data, self._left = self._left, bytearray()  # never changed again: no copy
        items: list[tuple] = []
        pos, n = 0, len(data)
        while pos < n:
            end = self._frame(data, pos, n, items)
            if end >= 0:
                pos = end
                if self.closed:  # a close frame: nothing after it counts
                    break
            elif end == _STOP:
                break
            else:  # incomplete: keep it for the next feed
                self._left += data[pos:]
                self._need = -end - pos
                break
        return data, items

    def _frame(self, data: bytes, pos: int, n: int, items: list) -> int:
        """Read the frame at ``data[pos]``: its end (after adding its item); when it is
        incomplete, minus the offset in ``data`` it would end at; ``_STOP`` on an error."""
        if n - pos < 2:
            return -(pos + 2)
        b0, b1 = data[pos], data[pos + 1]
        length, head = b1 & 0x7F, pos + 2
        if length >= 126:
            if length == 126:
                if n - pos < 4:
                    return -(pos + 4)
                length, head = int.from_bytes(data[head:head + 2], "big"), head + 2
            else:
                if n - pos < 10:
                    return -(pos + 10)
                length, head = int.from_bytes(data[head:head + 8], "big"), head + 8
                if length >> 63:
                    return self._fail(1002, "frame length with its most significant bit set")
        if b1 & 0x80 != self._mask:
            return self._fail(1002, "unmasked frame from the client" if self._mask
                              else "masked frame from the server")
        problem = self._check(b0, length)
        if problem:
            return self._fail(*problem)
        if self._mask:
            head += 4
        end = head + length
        if end > n:
            return -end
        if self._mask and length:  # unmasked straight from the chunk: one copy, not two
            payload = apply_mask(memoryview(data)[head:end], data[head - 4:head])
        else:
            payload = data[head:end]
        opcode = b0 & 0x0F
        if opcode >= CLOSE:
            if opcode == CLOSE:
                return self._close(payload, end, items)
            items.append((opcode, payload, end))
            return end
        if b0 & 0x80 and not self._op:  # the common case: a whole message in one frame
            if b0 & 0x40:
                payload = self._inflate(payload)
                if payload is None:
                    return _STOP
            items.append((opcode, payload, end))
            return end
        return self._fragment(opcode, b0 & 0x80, b0 & 0x40, payload, end, items)

    def _inflate(self, data: bytes) -> bytes | None:
        """A compressed message's payload, inflated in its sender's context (None: failed)."""
        if self._reset:
            self._zlib = zlib.decompressobj(-15)
        try:
            out = self._zlib.decompress(data + b"\x00\x00\xff\xff", self.max_size + 1)
        except zlib.error:
            self._fail(1007, "invalid compressed data")
            return None
        if len(out) > self.max_size:
            self._fail(1009, f"message larger than {self.max_size} bytes")
            return None
        return out

    def _check(self, b0: int, length: int) -> tuple[int, str] | None:
        """What is wrong with a frame, from its first byte and its length."""
        opcode = b0 & 0x0F
        if b0 & 0x70 and (b0 & 0x70 != self._rsv or opcode not in (TEXT, BINARY)):
            return 1002, ("reserved bits set with no extension negotiated" if not self._rsv
                          else "reserved bits permessage-deflate does not allow there")
        if opcode >= CLOSE:
            if opcode > PONG:
                return 1002, f"unknown opcode {opcode}"
            if not b0 & 0x80:
                return 1002, "fragmented control frame"
            if length > 125:
                return 1002, "control frame longer than 125 bytes"
            return None
        if opcode > BINARY:
            return 1002, f"unknown opcode {opcode}"
        if opcode == CONT and not self._op:
            return 1002, "continuation frame with no message to continue"
        if opcode != CONT and self._op:
            return 1002, "new message before the fragmented one ended"
        if self._size + length > self.max_size:
            return 1009, f"message larger than {self.max_size} bytes"
        return None

    def _close(self, payload: bytes, end: int, items: list) -> int:
        code, reason = None, ""
        if len(payload) == 1:
            return self._fail(1002, "close frame with a 1-byte payload")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not valid_close_code(code):
                return self._fail(1002, f"close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(1007, "invalid UTF-8 in the close reason")
        items.append((CLOSE, (code, reason), end))
        self.closed = True
        return end

    def _fragment(self, opcode: int, fin: int, compressed: int, payload: bytes, end: int,
                  items: list) -> int:
        if opcode:  # the first fragment
            self._op, self._parts, self._size = opcode, [payload], len(payload)
            self._compressed = bool(compressed)
            self._utf8 = codecs.getincrementaldecoder("utf-8")() \
                if opcode == TEXT and not compressed else None
        else:
            self._parts.append(payload)
            self._size += len(payload)
        if self._utf8 is not None:
            try:
                self._utf8.decode(payload, final=bool(fin))
            except UnicodeDecodeError:
                return self._fail(1007, "invalid UTF-8")
        if not fin:
            items.append((CONT, None, end))
            return end
        message = b"".join(self._parts)
        if self._compressed:
            message = self._inflate(message)
            if message is None:
                return _STOP
        items.append((self._op, message, end))
        self._op, self._parts, self._size, self._utf8 = 0, [], 0, None
        return end

    def _fail(self, code: int, why: str) -> int:
        self.error = (code, why)
        self.closed = True
        return _STOP


_STOP = -(1 << 62)  # never a real "bytes needed" count
