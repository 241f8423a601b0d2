"""One aiohttp WebSocket (client or server end) speaking :class:`Message` s: the glue
both shells share.

aiohttp runs with ``autoping=False`` and ``autoclose=False`` so the scenario, not the
library, decides every pong and close frame; text arrives undecoded (``decode_text=False``)
so the engine sees the exact bytes. A close frame we send first goes out with
``send_frame``: the reader keeps reading until the peer's close frame arrives, so its code
*and* reason reach the engine (aiohttp's ``close()`` would swallow them).

A server's wires are bounded (:class:`SendLimits`): a send waits while the peer has more than
so many bytes waiting for it, and a peer that reads nothing for the stall limit meanwhile is
closed (1008) and the send raises :class:`Stalled`, so a client that stops reading costs the
mock a bounded amount of memory, for a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import ClientWebSocketResponse, WSMsgType, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from .frames import valid_close_code
from .messages import Kind, Message

Deliver = Callable[[str, Message], Awaitable[None]]
GRACE = 2.0  # seconds to wait for the peer's close frame once ours is out
STALLED = 1008  # the close code for a peer that reads nothing while sends wait for it
_TICK = 0.5  # seconds between looks at a send waiting for room (the stall clock's precision)


class Stalled(ConnectionError):
    """A send waited for room while the peer read nothing for the stall limit: the
    connection has been closed (see :class:`SendLimits`)."""


@dataclass(frozen=True)
class SendLimits:
    """Backpressure on one connection: a send waits while more than ``buffer`` bytes wait
    to be written to the peer (the transport's high-water mark); when the peer reads nothing
    for ``stall`` seconds while a send waits, the connection is closed with 1008 and the
    send raises :class:`Stalled`. Memory per connection stays about ``buffer`` plus the
    message being sent."""

    buffer: int
    stall: float


def _mib(size: int) -> str:
    return f"{size / 2 ** 20:.1f} MiB" if size >= 2 ** 20 else f"{size / 1024:.0f} KiB"


def failure_close(error: BaseException | None) -> tuple[int, bytes] | None:
    """The close frame for a connection failed by ``error`` while reading, where aiohttp would
    send 1000: data that does not inflate is 1007 (RFC 7692 8.2.3.x: fail the connection), any
    other failure 1011. None for a dead socket (no frame can go out) or no error."""
    if isinstance(error, zlib.error):
        return 1007, b"invalid compressed data"
    if error is None or isinstance(error, (OSError, asyncio.TimeoutError)):
        return None
    return 1011, b"internal error"


class ServerWebSocket(web.WebSocketResponse):
    """aiohttp's server WebSocket, failing a connection with :func:`failure_close`'s code, and
    sending no second close frame after one that went out with ``send_frame``."""

    close_frame_sent = False  # set by Wire: aiohttp does not know about such a frame

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        # aiohttp's receive() answers a protocol error with close(): once our close frame is
        # out, RFC 6455 5.5.1 wants no other, so the connection just ends (bug B2)
        if self.close_frame_sent and _hang_up(self):
            return True
        failure = failure_close(self.exception()) if code == 1000 else None
        if failure:
            code, message = failure
        return await super().close(code=code, message=message, drain=drain)


def _hang_up(ws: web.WebSocketResponse) -> bool:
    """End ``ws``'s TCP connection with no close frame; False when this aiohttp lacks the two
    (private) helpers that takes: then its own close() goes on."""
    set_closed = getattr(ws, "_set_closed", None)
    close_transport = getattr(ws, "_close_transport", None)
    if set_closed is None or close_transport is None:
        return False
    if not ws.closed:
        set_closed()
        close_transport()
    return True


class ClientWebSocket(ClientWebSocketResponse):
    """aiohttp's client WebSocket, failing a connection with :func:`failure_close`'s code
    (pass it as ``ws_response_class`` to the ClientSession)."""

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        failure = failure_close(self.exception()) if code == 1000 else None
        if failure:
            code, message = failure
        return await super().close(code=code, message=message)


def upgrade_problem(request: web.BaseRequest, protocols: tuple[str, ...] = ()) -> str | None:
    """Why ``request`` is not an upgrade a shell can answer with 101, or None.

    The request must be HTTP/1.1 exactly: RFC 6455 4.1 says "1.1 or higher", but an
    "HTTP/2.0" request line on an HTTP/1 connection is no HTTP/2 request; aiohttp would answer
    it "HTTP/2.0 101" (and an HTTP/1.0 one "HTTP/1.0 101"). aiohttp's own check fails with a
    500 on a header byte that is not UTF-8 (one it quotes back) or a Sec-WebSocket-Key that is
    not ASCII (base64 refuses it), so those are answered here as the malformed requests they
    are."""
    if request.version != (1, 1):
        return "WebSocket needs HTTP/1.1"
    if not request.headers.get(hdrs.SEC_WEBSOCKET_KEY, "").isascii():
        return "Sec-WebSocket-Key is not base64"
    try:
        if web.WebSocketResponse(protocols=protocols).can_prepare(request):
            return None
    except UnicodeError:  # a header aiohttp quotes back is not UTF-8
        return "a handshake header is not UTF-8"
    except ValueError:  # any other header aiohttp cannot read: the client's fault, not a 500
        return "a malformed handshake header"
    return "not a valid WebSocket upgrade request"


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger (pass it as ``logger`` to the ``AppRunner``), telling a request
    aiohttp's HTTP parser refused (answered 400 by aiohttp itself) in one warning line, not
    a traceback, so a broken or hostile client cannot fill the log with them. Any other
    failure keeps its traceback."""

    def __init__(self) -> None:
        super().__init__(server_logger, {})

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            why = " ".join(str(exc_info.message).split())[:200]
            self.warning(f"{msg}: %s", *args, why, **kwargs)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Wire:
    """Connection ``conn`` over aiohttp's ``ws``. ``end(abort)`` ends the TCP connection
    with no (further) close frame: gracefully, or by a reset when ``abort``. With
    ``limits`` and the connection's ``transport``, sends are bounded (:class:`SendLimits`)."""

    def __init__(self, conn: str, ws: Any, end: Callable[[bool], None],
                 limits: SendLimits | None = None,
                 transport: asyncio.WriteTransport | None = None):
        self.conn, self.ws = conn, ws
        self._end = end
        self.close_sent = False
        self.close_received = False
        self.stalled: str | None = None  # why the peer was closed for reading nothing
        self.ended = asyncio.Event()  # set when nothing more will be read
        self._reader: asyncio.Task | None = None
        self._limits, self._transport = limits, transport
        if limits is not None and transport is not None:
            transport.set_write_buffer_limits(high=limits.buffer)
            self._low = transport.get_write_buffer_limits()[0]

    def start_reading(self, deliver: Deliver) -> None:
        """Read until the connection ends, awaiting ``deliver(conn, message)`` for each."""
        self._reader = asyncio.get_running_loop().create_task(self._read(deliver))

    async def _read(self, deliver: Deliver) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                kind = msg.type
                if kind is WSMsgType.TEXT:
                    data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                    if not _is_utf8(data):  # RFC 6455 8.1: fail the connection with 1007
                        await self._fail(1007, "invalid UTF-8 in a text message")
                        await deliver(self.conn, Message.drop(
                            "the peer sent a text message that is not UTF-8 (closed with 1007)"))
                        return
                    await deliver(self.conn, Message(Kind.TEXT, data))
                elif kind is WSMsgType.BINARY:
                    await deliver(self.conn, Message.of_binary(msg.data))
                elif kind is WSMsgType.PING:
                    await deliver(self.conn, Message.ping(msg.data))
                elif kind is WSMsgType.PONG:
                    await deliver(self.conn, Message.pong(msg.data))
                elif kind is WSMsgType.CLOSE:
                    if msg.data and not valid_close_code(msg.data):  # aiohttp lets 1006, 5000+ through
                        await self._fail(1002, f"close code {msg.data}")
                        await deliver(self.conn, Message.drop(
                            f"the peer sent close code {msg.data}, which no peer may send "
                            "(closed with 1002)"))
                        return
                    self.close_received = True
                    await deliver(self.conn, Message.close(msg.data or None, msg.extra or ""))
                    if self.close_sent:  # the closing handshake is complete
                        self._end_transport()
                    return  # aiohttp's next receive() would send a close frame itself
                elif kind is WSMsgType.CLOSING:
                    return  # our own close() interrupting the read
                else:  # CLOSED or ERROR: the connection ended with no close frame
                    error = msg.data if kind is WSMsgType.ERROR else None
                    await deliver(self.conn, Message.drop(str(error) if error else "connection "
                                                    "closed without a close frame"))
                    return
        except (ConnectionError, asyncio.TimeoutError) as exc:
            await deliver(self.conn, Message.drop(str(exc) or type(exc).__name__))
        finally:
            self.ended.set()

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: our close frame with ``code`` (unless one went already), then
        the TCP connection ends without waiting for an answer."""
        if not self.close_sent:
            self.close_sent = self.ws.close_frame_sent = True
            try:
                await self.ws.send_frame(Message.close(code, reason).close_payload(),
                                         WSMsgType.CLOSE)
            except (ConnectionError, RuntimeError):
                pass
        self._end_transport()

    async def send(self, msg: Message) -> None:
        """Put ``msg`` on the wire (a close frame, or a drop: the TCP connection ends).
        Raises :class:`Stalled` when the peer stopped reading (see :class:`SendLimits`)."""
        if self.stalled:
            raise Stalled(self.stalled)
        transport = self._transport
        if self._limits is None or transport is None or transport.is_closing() or \
                transport.get_write_buffer_size() + len(msg.data) <= self._low:
            await self._put(msg)  # cannot wait for room: no stall watch (the common case)
        else:
            await self._put_watched(msg)

    async def _put_watched(self, msg: Message) -> None:
        """Send ``msg``, which may wait for room; a peer that reads nothing (the bytes waiting
        for it never go down) for the stall limit meanwhile gets the connection closed."""
        limits, transport = self._limits, self._transport
        loop = asyncio.get_running_loop()
        put = asyncio.ensure_future(self._put(msg))
        waiting = transport.get_write_buffer_size()
        since = loop.time()
        while True:
            done, _ = await asyncio.wait([put], timeout=min(_TICK, limits.stall))
            if done:
                return put.result()
            now, size = loop.time(), transport.get_write_buffer_size()
            if size < waiting:
                since = now  # the peer read something
            waiting = size
            if now - since >= limits.stall:
                break
        put.cancel()
        self._stall(f"the client read nothing for {limits.stall:g} s while {_mib(waiting)} "
                    f"waited to be sent to it (limit {_mib(limits.buffer)}): closed with "
                    f"{STALLED}")
        raise Stalled(self.stalled)

    def _stall(self, why: str) -> None:
        """Close a peer that stopped reading: our close frame goes behind what waits for it
        (it gets both if it reads again within the grace period ``end`` allows), no more."""
        self.stalled = why
        if not self.close_sent:
            self.close_sent = self.ws.close_frame_sent = True
            payload = Message.close(STALLED, "wsreplay: client stopped reading").close_payload()
            try:  # written as is: a send would wait for room, and no more room comes
                self._transport.write(bytes((0x88, len(payload))) + payload)
            except (OSError, RuntimeError):
                pass
        self._end_transport()

    async def _put(self, msg: Message) -> None:
        kind = msg.kind.value
        if kind == "text":
            await self.ws.send_frame(msg.data, WSMsgType.TEXT)
        elif kind == "binary":
            await self.ws.send_frame(msg.data, WSMsgType.BINARY)
        elif kind == "ping":
            await self.ws.ping(msg.data)
        elif kind == "pong":
            await self.ws.pong(msg.data)
        elif kind == "close":
            await self._send_close(msg)
        else:
            self._end_transport(abort=True)

    async def _send_close(self, msg: Message) -> None:
        if self.close_received and msg.code is not None:
            # answering the peer's close: aiohttp sends one frame and ends the connection
            self.close_sent = True
            await self.ws.close(code=msg.code, message=(msg.reason or "").encode())
            return
        self.close_sent = self.ws.close_frame_sent = True
        await self.ws.send_frame(msg.close_payload(), WSMsgType.CLOSE)
        if self.close_received:
            self._end_transport()

    def _end_transport(self, abort: bool = False) -> None:
        try:
            self._end(abort)
        except (OSError, RuntimeError):
            pass  # already gone

    async def finish(self, code: int | None, reason: str = "", grace: float = GRACE) -> None:
        """End the connection when the run is over: ``code`` None waits (up to ``grace``)
        for the peer's answer to our close frame; otherwise close with ``code``."""
        try:
            if self.stalled:
                pass  # our close frame waits behind data the peer does not read: no answer
            elif code is None or self.close_sent:
                await asyncio.wait_for(self.ended.wait(), grace)
            elif not self.ws.closed:
                reason_bytes = reason.encode("utf-8")[:123]
                await asyncio.wait_for(self.ws.close(code=code, message=reason_bytes), grace)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self._end_transport()
            if self._reader is not None and not self._reader.done():
                self._reader.cancel()
                try:
                    await self._reader
                except (asyncio.CancelledError, Exception):
                    pass
