"""The peers of a compliance case.

* :class:`RawPeer`: one end of a WebSocket over raw asyncio streams (client or server role).
  It plays a script of steps (:class:`Send`, :class:`Msg`, :class:`Wait`) that may break the
  protocol at will, while a reader task checks every frame it receives against RFC 6455 and
  keeps what it saw in ``seen``. Like a conforming peer it answers pings with pongs and echoes
  a close frame it did not start (unless told not to: ``echo_close``).
* :class:`ConformingServer`: a far-side server on aiohttp (pings, pongs and closes by hand) that
  echoes every message and keeps what it saw.

``seen`` entries are tuples: ``("text"|"binary"|"ping"|"pong", bytes)``, ``("close", code,
reason)`` (code None: no status code), ``("eof",)``, ``("violation", why)``, ``("error", why)``
``("timeout", what)`` (a bounded wait ran out) and, for the aiohttp server closing first,
``("answer", code)``: the code of the close frame that answered its own (1006: none came).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web

from .frames import (BINARY, CLOSE, CONT, PING, PONG, RSV1, TEXT, Deflate, Frame, Received,
                     close_payload, read_frame)

# Close codes a peer may put on the wire (RFC 6455 §7.4, the IANA registry, 3000-4999).
SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
                     | set(range(3000, 5000)))
CLOSE_ME = b"__close"


@dataclass(frozen=True)
class Send:
    """Raw frames, exactly as given (one write)."""

    frames: tuple[Frame, ...]

    def __init__(self, *frames: Frame):
        object.__setattr__(self, "frames", frames)


@dataclass(frozen=True)
class Msg:
    """A data message split into frames at ``cuts`` (byte offsets into what goes on the wire),
    compressed with the leg's permessage-deflate when ``deflate`` (RSV1 on the first frame)."""

    opcode: int
    data: bytes
    cuts: tuple[int, ...] = ()
    deflate: bool = False


@dataclass(frozen=True)
class Wait:
    """Wait (bounded) until ``n`` more things have been seen, or the connection has ended."""

    n: int = 1


class RawPeer:
    """One end of an upgraded connection on ``reader``/``writer``; ``client`` says which end
    (a client masks what it sends and expects unmasked frames)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 client: bool, deflate: Deflate | None, timeout: float,
                 echo_close: bool = True):
        self.reader, self.writer, self.client = reader, writer, client
        self.echo_close = echo_close
        self.deflate, self.timeout = deflate, timeout
        self.seen: list[tuple] = []
        self.compressed_in = 0  # messages received with RSV1 (compressed)
        self.close_sent = False
        self._grew = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    # -- sending ---------------------------------------------------------------------------

    async def send(self, *frames: Frame) -> None:
        if any(f.opcode == CLOSE for f in frames):
            self.close_sent = True
        try:
            self.writer.write(b"".join(f.encode(mask=self.client) for f in frames))
            await self.writer.drain()
        except ConnectionError:
            pass  # the other end has gone: what it saw before says why

    def frames_of(self, msg: Msg) -> list[Frame]:
        data = self.deflate.compress(msg.data) if msg.deflate else msg.data
        edges = [0, *msg.cuts, len(data)]
        pieces = [data[a:b] for a, b in zip(edges, edges[1:])]
        return [Frame(msg.opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1,
                      rsv=RSV1 if msg.deflate and i == 0 else 0)
                for i, piece in enumerate(pieces)]

    async def play(self, steps) -> None:
        """Run the script: send frames and messages, wait where told."""
        for step in steps:
            if isinstance(step, Wait):
                await self.wait_for(len(self.seen) + step.n)
            elif isinstance(step, Msg):
                await self.send(*self.frames_of(step))
            else:
                await self.send(*step.frames)

    async def wait_for(self, count: int) -> None:
        """Until ``count`` things are in ``seen`` or the connection has ended (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while len(self.seen) < count and not self.ended:
            self._grew.clear()
            try:
                await asyncio.wait_for(self._grew.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                self.seen.append(("timeout", f"waited for {count - len(self.seen)} more"))
                return

    @property
    def ended(self) -> bool:
        return bool(self.seen) and self.seen[-1][0] in ("eof", "violation", "error") or \
            self._task.done()

    async def finish(self, close: tuple[int | None, bytes] | None = (1000, b"bye")) -> None:
        """End the conversation: send ``close`` unless a close frame has gone either way, then
        wait (bounded) for the closing handshake and the end of the TCP connection."""
        if close is not None and not self.close_sent and not self._got_close():
            await self.send(Frame(CLOSE, close_payload(*close)))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), self.timeout)
        if not self._task.done():
            self.seen.append(("timeout", "the connection was not closed"))
        await self.abort()

    async def abort(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def _got_close(self) -> bool:
        return any(s[0] == "close" for s in self.seen)

    # -- receiving -------------------------------------------------------------------------

    def _note(self, item: tuple) -> None:
        self.seen.append(item)
        self._grew.set()

    async def _read(self) -> None:
        parts: list[Received] = []
        try:
            while True:
                frame = await read_frame(self.reader)
                why = self._violation(frame, parts)
                if why:
                    self._note(("violation", why))
                    return
                if frame.opcode >= CLOSE:
                    if not await self._control(frame):
                        continue
                    if self.seen[-1][0] == "close":  # the closing handshake is complete
                        if not self.client:  # the server ends the TCP connection
                            self.writer.close()
                        await self._expect_eof()
                    return
                parts.append(frame)
                if frame.fin:
                    if not self._message(parts):
                        return
                    parts = []
        except (asyncio.IncompleteReadError, ConnectionError):
            self._note(("eof",))
        except (zlib.error, ValueError) as exc:  # corrupt compressed data, a huge frame
            self._note(("violation", f"{type(exc).__name__}: {exc}"))

    async def _expect_eof(self) -> None:
        try:
            extra = await self.reader.read(16)
        except ConnectionError:
            extra = b""
        self._note(("eof",) if not extra else
                   ("violation", f"bytes after the close frame: {extra.hex(' ')}"))

    def _violation(self, f: Received, parts: list[Received]) -> str:
        if f.masked == self.client:
            return "a masked frame from the server" if self.client else "an unmasked frame"
        if self._got_close():
            return f"a frame (opcode {f.opcode}) after the close frame: {f.payload[:8].hex()}"
        if f.opcode >= CLOSE:
            if f.opcode not in (CLOSE, PING, PONG):
                return f"unknown control opcode {f.opcode}"
            if not f.fin or len(f.payload) > 125 or f.rsv:
                return "a fragmented, oversized or RSV-flagged control frame"
            return ""
        if f.opcode not in (CONT, TEXT, BINARY):
            return f"unknown data opcode {f.opcode}"
        if (f.opcode == CONT) != bool(parts):
            return "a continuation with nothing to continue" if parts == [] else \
                "a new message inside a fragmented one"
        allowed = RSV1 if self.deflate is not None and f.opcode != CONT else 0
        if f.rsv & ~allowed:
            return f"reserved bits {f.rsv:03b} set"
        return ""

    def _message(self, parts: list[Received]) -> bool:
        """Note a whole message; False when it breaks the protocol (noted as such)."""
        data = b"".join(p.payload for p in parts)
        if parts[0].rsv & RSV1:
            self.compressed_in += 1
            data = self.deflate.inflate(data)
        if parts[0].opcode == TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self._note(("violation", "invalid UTF-8 in a text message"))
                return False
        self._note(("text" if parts[0].opcode == TEXT else "binary", data))
        return True

    async def _control(self, f: Received) -> bool:
        """Note a control frame and answer it; True for a close frame."""
        if f.opcode == PING:
            self._note(("ping", f.payload))
            if not self.close_sent:
                await self.send(Frame(PONG, f.payload))
            return False
        if f.opcode == PONG:
            self._note(("pong", f.payload))
            return False
        code, reason = _parse_close(f.payload)
        if code is not None and code not in SENDABLE or reason is None:
            self._note(("violation", f"close frame {f.payload[:8].hex()}: not a valid one"))
            return True
        self._note(("close", code, reason))
        if not self.echo_close and not self.close_sent:
            return False  # keep reading: what the other end does next is the case
        if not self.close_sent:
            await self.send(Frame(CLOSE, close_payload(code, reason.encode())))
        return True


def _parse_close(payload: bytes) -> tuple[int | None, str | None]:
    if not payload:
        return None, ""
    if len(payload) < 2:
        return 0, None
    try:
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return 0, None


# --- the far side on aiohttp -------------------------------------------------------------

class ConformingServer:
    """An aiohttp WebSocket server that echoes every message, answers pings, echoes the close
    code it gets, and keeps what it saw in ``seen`` (same shapes as :class:`RawPeer`). The
    message ``__close`` makes it close first (1000 "server")."""

    def __init__(self, *, compress: bool, timeout: float):
        self.compress, self.timeout = compress, timeout
        self.seen: list[tuple] = []
        self.deflate: bool | None = None
        self.done = asyncio.Event()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, autoclose=False, compress=self.compress,
                                   max_msg_size=0, decode_text=False, timeout=self.timeout)
        await ws.prepare(request)
        self.deflate = bool(ws.compress)
        try:
            while await self._step(ws, await ws.receive(timeout=self.timeout)):
                pass
        except asyncio.TimeoutError:
            self.seen.append(("timeout", "no message"))
        finally:
            self.done.set()
        return ws

    async def _step(self, ws: web.WebSocketResponse, msg: aiohttp.WSMessage) -> bool:
        kind = msg.type
        if kind in (WSMsgType.TEXT, WSMsgType.BINARY):
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            self.seen.append((kind.name.lower(), data))
            if data == CLOSE_ME:
                await ws.close(code=1000, message=b"server")
                self.seen.append(("answer", ws.close_code))  # 1006: no close frame came back
                return False
            await ws.send_frame(data, kind)
        elif kind in (WSMsgType.PING, WSMsgType.PONG):
            self.seen.append((kind.name.lower(), bytes(msg.data)))
            if kind is WSMsgType.PING:
                await ws.pong(msg.data)
        elif kind is WSMsgType.CLOSE:
            self.seen.append(("close", msg.data or None, msg.extra or ""))
            if msg.data:
                await ws.close(code=msg.data, message=(msg.extra or "").encode())
            else:
                await ws.send_frame(b"", WSMsgType.CLOSE)
            return False
        elif kind is WSMsgType.ERROR:
            self.seen.append(("error", f"{type(msg.data).__name__}: {msg.data}"))
            return False
        else:
            self.seen.append(("eof",))
            return False
        return True


@contextlib.asynccontextmanager
async def listening(handler):
    """Serve ``handler`` (aiohttp low-level) on 127.0.0.1; yields the port; always stopped."""
    runner = web.ServerRunner(web.Server(handler, access_log=None))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
