"""The recording proxy: a transparent WebSocket (and plain HTTP) reverse proxy on aiohttp.

For each WebSocket upgrade on the listen address the proxy connects upstream first (path and
query appended to the target), then answers the client as the upstream answered: a refusal goes
back with its status, headers and body, never as a 101; an upgrade with the subprotocol the
upstream chose and compression negotiated per leg. Two pump tasks then forward messages byte for
byte — text, binary, ping and pong with their payloads, close frames with their codes and
reasons — and hand every batch of messages that arrived together to the recorder *before*
forwarding it, so what was forwarded is in the file even if the process is killed. Plain HTTP
requests are forwarded too, unrecorded.

Use it in-process::

    async with RecordingProxy(ProxyConfig("ws://127.0.0.1:9000"), recorder) as proxy:
        ...  # clients connect to proxy.url

Two aiohttp internals are used, each in one helper with a public fallback: the parsed-message
queue's length (to batch what has already arrived) and the upstream response object (to end
the upstream TCP connection once a closing handshake forwarded frame by frame is complete).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import ssl
import struct
from dataclasses import dataclass
from typing import Callable

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_websocket import WebSocketError
from multidict import CIMultiDict
from yarl import URL

from .frames import Deflate, agreed_deflate
from .model import Side
from .recorder import BadText, ConnectionRecord, Handshake, Recorder, Summary
from .relay import FastLink
from .wire import (ClientWebSocket, ServerLog, ServerWebSocket, failure_close, sendable,
                   upgrade_problem)

__all__ = ["ProxyConfig", "RecordingProxy", "parse_target"]

log = logging.getLogger("wsreplay.proxy")

# Request headers that belong to one hop (RFC 9110 §7.6.1) or to one WebSocket leg.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})
WS_LEG = frozenset({
    "sec-websocket-key", "sec-websocket-accept", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol",
})
MAX_BATCH = 256
REFUSAL_BODY_MAX = 1 << 20
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG)


@dataclass(frozen=True)
class ProxyConfig:
    """How to run the proxy. ``target`` is ``ws[s]://HOST:PORT[/PREFIX]``; ``port`` 0 picks a
    free one. ``max_size`` is the largest message accepted on either leg (a larger one gets
    close 1009). TLS to a ``wss`` target is verified unless ``insecure``; ``ca_file`` adds
    trust. Environment proxies are used upstream only with ``trust_env``. A non-empty
    ``allow_origins`` refuses (403) upgrades whose Origin is not listed."""

    target: str
    host: str = "127.0.0.1"
    port: int = 8765
    max_size: int = 4 * 1024 * 1024
    ca_file: str | None = None
    insecure: bool = False
    trust_env: bool = False
    allow_origins: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    close_timeout: float = 5.0
    fast: bool = True  # forward frame by frame when no extension is negotiated (relay.py)


def parse_target(target: str) -> URL:
    """The target as a URL; raises ValueError unless it is ``ws[s]://HOST[:PORT][/PREFIX]``."""
    url = URL(target)
    if url.scheme not in ("ws", "wss") or not url.host:
        raise ValueError(f"the target must be ws://HOST:PORT[/PREFIX] or wss://..., not {target!r}")
    if url.query_string or url.fragment:
        raise ValueError("the target cannot have a query or fragment: requests bring their own")
    return url


# --- the handshake answer, captured on its way through aiohttp's client -------------------

class _Answer:
    """The upstream's answer to one upgrade request (filled by :func:`_capture`)."""

    status = 0
    reason = ""
    headers: tuple[tuple[str, str], ...] = ()
    body = b""


class _Refused(Exception):
    """The upstream answered the upgrade with something other than 101."""


_ANSWER: contextvars.ContextVar[_Answer | None] = contextvars.ContextVar("wsreplay_answer",
                                                                        default=None)


async def _capture(request: aiohttp.ClientRequest, handler) -> aiohttp.ClientResponse:
    """Client middleware: keep the upgrade answer's headers (aiohttp 3.14 does not expose a
    101's headers) and, for a refusal, its body, raising before aiohttp can follow a redirect
    or drop the body."""
    response = await handler(request)
    answer = _ANSWER.get()
    if answer is None:
        return response
    answer.status, answer.reason = response.status, response.reason or ""
    answer.headers = tuple(response.headers.items())
    if response.status == 101:
        return response
    try:
        chunks, size = [], 0
        while size < REFUSAL_BODY_MAX and (chunk := await response.content.read(1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
        answer.body = b"".join(chunks)[:REFUSAL_BODY_MAX]
    finally:
        response.release()
    raise _Refused()


def _forwarded(headers, drop: frozenset[str]) -> list[tuple[str, str]]:
    """Headers minus ``drop`` and minus any named by the Connection header."""
    named = {h.strip().lower() for v in headers.getall("Connection", ()) for h in v.split(",")}
    return [(k, v) for k, v in headers.items() if k.lower() not in drop and k.lower() not in named]


def _offered_protocols(headers) -> tuple[str, ...]:
    return tuple(p.strip() for v in headers.getall("Sec-WebSocket-Protocol", ())
                 for p in v.split(",") if p.strip())


def _deflate_offer(headers) -> str:
    """The client's permessage-deflate offers, as it wrote them (any other extension it
    offered is left out: the proxy could not read frames that used it)."""
    return ", ".join(ext.strip() for v in headers.getall("Sec-WebSocket-Extensions", ())
                     for ext in v.split(",")
                     if ext.split(";")[0].strip().lower() == "permessage-deflate")


def _offers_deflate(headers) -> bool:
    return any(ext.split(";")[0].strip().lower() == "permessage-deflate"
               for v in headers.getall("Sec-WebSocket-Extensions", ()) for ext in v.split(","))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):  # its str() holds the URL: keep it out
        return f"{exc.status} {exc.message}"
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


# --- aiohttp internals, one helper each ------------------------------------------------------

def _queued(ws) -> Callable[[], int]:
    """A callable giving how many parsed messages wait in ``ws``'s queue (0 when unknown)."""
    buffer = getattr(getattr(ws, "_reader", None), "_buffer", None)
    return buffer.__len__ if buffer is not None else (lambda: 0)


class _Capture:
    """Stands in for aiohttp's WebSocket reader on an upstream connection the fast path will
    take over: keeps the bytes that follow the 101 (a greeting can come in the same packet)."""

    installed = False
    eof = False

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.chunks.append(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


_CAPTURE: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar("wsreplay_capture",
                                                                          default=None)


class _UpstreamProtocol(ResponseHandler):
    """aiohttp's client protocol, with the WebSocket reader replaced by a :class:`_Capture`
    for a connection made while one is set in ``_CAPTURE``."""

    def set_parser(self, parser, payload, data_received_cb=None) -> None:
        capture = _CAPTURE.get()
        if capture is not None:
            capture.installed, parser = True, capture
        super().set_parser(parser, payload, data_received_cb)


def _capturing(connector: aiohttp.TCPConnector) -> bool:
    """Make ``connector``'s connections able to capture (aiohttp builds its protocols with
    the ``_factory`` it keeps); False when this aiohttp has no such thing: no fast path."""
    if not isinstance(getattr(connector, "_factory", None), functools.partial):
        return False
    connector._factory = functools.partial(_UpstreamProtocol, *connector._factory.args,
                                           **connector._factory.keywords)
    return True


def _upstream_transport(ws: aiohttp.ClientWebSocketResponse):
    connection = getattr(getattr(ws, "_response", None), "connection", None)
    return None if connection is None else connection.transport


def _client_tail(request: web.BaseRequest) -> bytes:
    """Bytes a client sent after its upgrade request without waiting for the 101 (aiohttp
    keeps them for its own WebSocket reader), taken for the fast path."""
    protocol = request.protocol
    tail = getattr(protocol, "_message_tail", b"")
    if tail:
        protocol._message_tail = b""
    return bytes(tail)


def _release_now(ws: aiohttp.ClientWebSocketResponse) -> None:
    response = getattr(ws, "_response", None)
    if response is not None:
        response.close()


async def _release_upstream(ws: aiohttp.ClientWebSocketResponse) -> None:
    """End the upstream TCP connection without sending another close frame."""
    response = getattr(ws, "_response", None)
    if response is not None:
        response.close()
    elif not ws.closed:
        await ws.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _who(side: Side) -> str:
    return "client" if side is Side.CLIENT else "upstream"


def _close_payload(code: int, reason: str) -> bytes:
    return b"" if not code else struct.pack("!H", code) + reason.encode("utf-8")


# --- one proxied connection -----------------------------------------------------------------

class _Link:
    """One proxied WebSocket connection: the client leg, the upstream leg and their record.

    Life: two pumps run until one leg ends. A close frame is forwarded and the other pump goes
    on until the answering close (or ``close_timeout``); a drop, a protocol error or a failure
    ends the other leg at once with 1011; ``shutdown`` closes both legs with 1001.
    """

    def __init__(self, proxy: "RecordingProxy", request: web.Request,
                 client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse,
                 record: ConnectionRecord):
        self.proxy, self.request, self.record = proxy, request, record
        self.legs = {Side.CLIENT: client, Side.SERVER: upstream}
        self.over = False  # the conversation has ended: record nothing more
        self.closing = False  # a close frame has been forwarded
        self.pumps: dict[Side, asyncio.Task] = {}  # the task reading each side's leg
        self.stopping = False  # the proxy closes both legs itself (1001)
        self.how = ""
        self.finished = asyncio.Event()

    async def run(self) -> None:
        timeout = self.proxy.config.close_timeout
        pumps = self.pumps = {side: asyncio.create_task(self._pump(side)) for side in Side}
        try:
            done, _ = await asyncio.wait(pumps.values(), return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            side = next(s for s, task in pumps.items() if task is first)
            how = "stopped" if first.cancelled() else first.result()[1]
            other = pumps[side.other]
            if how in ("close", "stopped"):
                self.how = self.how or f"{_who(side)} closed first"
                done, _ = await asyncio.wait([other], timeout=timeout)
                if not done:  # no answering close: that side dropped out
                    self._end_drop(side.other, "no close answer from")
            else:
                # the leg that failed is ``side``'s, or the other one when sending to it failed
                dead = side.other if how == "gone" else side
                self.over = True
                self.how = self.how or f"{how} ({_who(dead)})"
                await self._close_leg(dead.other, 1011, f"{_who(dead)} {how}")
                if how == "failed":
                    await self._close_leg(dead, 1011, "wsreplay record failed")
                await asyncio.wait([other], timeout=timeout)
        finally:
            for task in pumps.values():
                task.cancel()
            await asyncio.gather(*pumps.values(), return_exceptions=True)
            await self._teardown()
            self.record.end()
            self.finished.set()

    async def _pump(self, side: Side) -> tuple[Side, str]:
        """Forward ``side``'s messages to the other leg until ``side``'s leg ends; returns how
        it ended: close, drop, error (protocol), gone (the other leg), stopped or failed."""
        src, dst = self.legs[side], self.legs[side.other]
        receive, send, queued = src.receive, dst.send_frame, _queued(src)
        record = self.record
        try:
            msg = await receive()
            while msg.type in _DATA:
                batch, msg = [msg], None
                while queued() and len(batch) < MAX_BATCH and not self.stopping:
                    msg = await receive()  # already parsed: returns without waiting
                    if msg.type not in _DATA:
                        break
                    batch.append(msg)
                    msg = None
                try:
                    pending = record.messages(side, batch)
                except BadText as bad:
                    if bad.pending is not None:
                        await bad.pending
                    await self._forward(send, batch[: bad.index])
                    return side, await self._bad_text(side)
                if pending is not None:  # a big batch, being written in the background
                    await pending
                if not await self._forward(send, batch):
                    self._end_drop(side.other, "dropped:")
                    return side, "gone"
                if msg is None:
                    if self.stopping:  # a receive() while aiohttp's client closes sends 1000
                        return side, "stopped"
                    msg = await receive()
            return side, await self._ended(side, msg)
        except asyncio.CancelledError:
            raise
        except Exception:  # the recording failed (disk full...) or a bug: end both legs
            log.exception("%s: proxying failed", record.name)
            self.over = True
            return side, "failed"

    @staticmethod
    async def _forward(send, batch) -> bool:
        try:
            for msg in batch:
                await send(msg.data, msg.type)
        except ConnectionError:
            return False
        return True

    async def _ended(self, side: Side, msg) -> str:
        if msg.type is WSMsgType.CLOSE:
            code, reason = msg.data or 0, msg.extra or ""
            if code and not sendable(code):  # 1004-1006, 1015, <1000, >=5000: a protocol error
                return await self._broke(side, 1002, f"close code {code}", close=True)
            if not self.over:
                self.record.close(side, code, reason)
            self.closing = True
            try:
                await self.legs[side.other].send_frame(_close_payload(code, reason), WSMsgType.CLOSE)
            except ConnectionError:
                self._end_drop(side.other, "dropped:")
            return "close"
        if msg.type is WSMsgType.CLOSING:
            return "stopped"
        error = msg.data if msg.type is WSMsgType.ERROR else None
        if isinstance(error, WebSocketError):  # aiohttp has closed this leg with error.code
            return await self._broke(side, error.code, str(error) or "protocol error")
        failure = failure_close(error)
        if failure:  # unreadable data (corrupt compression...): the leg is failed with its code
            return await self._broke(side, failure[0], f"{type(error).__name__}: {error}")
        self._end_drop(side, "dropped:")
        return "drop"

    async def _bad_text(self, side: Side) -> str:
        return await self._broke(side, 1007, "invalid UTF-8", close=True)

    async def _broke(self, side: Side, code: int, why: str, close: bool = False) -> str:
        """``side`` broke the protocol: its leg is closed with ``code`` (by aiohttp already,
        unless ``close``), the other one gets 1011 from :meth:`run`; the recording says so."""
        if not self.over:
            other = "upstream" if side is Side.CLIENT else "client"
            self.record.note(f"the {_who(side)} broke the protocol ({_one_line(why)[:200]}): "
                             f"its leg closed with {code}, the {other}'s with 1011")
            self.record.close(side.other, code, "invalid UTF-8" if code == 1007 else "")
        self.over = True
        if close:
            await self._close_leg(side, code, "invalid UTF-8" if code == 1007 else why[:100])
        return "error"

    def _end_drop(self, side: Side, how: str) -> None:
        if not self.over:
            self.record.drop(side)
            self.how = self.how or f"{how} {_who(side)}"
        self.over = True

    async def _close_leg(self, side: Side, code: int, reason: str) -> None:
        # The pump reading this leg stops first: aiohttp's close() and a receive() racing on
        # one connection can send a second close frame (1000) of their own.
        pump = self.pumps.get(side)
        if pump is not None and pump is not asyncio.current_task() and not pump.done():
            pump.cancel()
            await asyncio.wait([pump])
        ws = self.legs[side]
        try:
            await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:123]),
                                   self.proxy.config.close_timeout)
        except (Exception, asyncio.TimeoutError):  # a dead leg: nothing more to tell it
            pass

    async def shutdown(self) -> None:
        """Close both legs with 1001 (the proxy is stopping) and note it in the recording; a
        connection already closing gets ``close_timeout`` to finish first."""
        if self.closing and not self.over:
            try:
                await asyncio.wait_for(self.finished.wait(), self.proxy.config.close_timeout)
                return
            except asyncio.TimeoutError:
                pass
        if not self.over:
            self.record.note("recording stopped: both legs closed with 1001")
            self.over = True
            self.how = "stopped (1001)"
        self.stopping = True
        await asyncio.gather(*(self._close_leg(side, 1001, "wsreplay record stopped")
                               for side in Side))

    async def _teardown(self) -> None:
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        await _release_upstream(self.legs[Side.SERVER])


# --- the proxy --------------------------------------------------------------------------

class RecordingProxy:
    """The recording reverse proxy. ``await start()`` binds (``port`` and ``url`` are then
    known), ``await stop()`` closes every connection with 1001, finishes the recording and
    returns its :class:`~wsreplay.recorder.Summary`. ``log`` receives one line per connection
    opened, refused or closed."""

    def __init__(self, config: ProxyConfig, recorder: Recorder,
                 log: Callable[[str], None] | None = None):
        self.config, self.recorder = config, recorder
        self.target = parse_target(config.target)
        self._log = log or (lambda line: None)
        self._links: set[_Link] = set()
        self._runner: web.ServerRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._summary: Summary | None = None
        self._fast = False
        self.port = config.port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` for clients to connect to."""
        return f"ws://{self.config.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        """Listen; raises OSError when the address is taken."""
        self._session = self._make_session()
        server = web.Server(self._handle, access_log=None, logger=ServerLog(),
                            max_line_size=1 << 16, max_field_size=1 << 16)
        self._runner = web.ServerRunner(server, shutdown_timeout=self.config.close_timeout)
        await self._runner.setup()
        site = self._site = web.TCPSite(self._runner, self.config.host, self.config.port,
                                        backlog=1024)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            await self._session.close()
            raise
        self.port = self._runner.addresses[0][1]

    def _make_session(self) -> aiohttp.ClientSession:
        cfg = self.config
        tls: ssl.SSLContext | bool = True
        if cfg.insecure:
            tls = False
        elif cfg.ca_file:
            tls = ssl.create_default_context(cafile=cfg.ca_file)
        connector = aiohttp.TCPConnector(limit=0, ssl=tls)
        self._fast = cfg.fast and _capturing(connector)
        return aiohttp.ClientSession(
            ws_response_class=ClientWebSocket,
            connector=connector,
            trust_env=cfg.trust_env, cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False, middlewares=(_capture,),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=1 << 16, max_field_size=1 << 16,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout))

    async def stop(self) -> Summary:
        """Stop listening, close every connection (1001), finish the file(s). Idempotent."""
        if self._summary is not None:
            return self._summary
        self._stopping = True
        if self._site is not None:
            await self._site.stop()  # no new connections
        links = list(self._links)
        await asyncio.gather(*(link.shutdown() for link in links))
        if links:
            await asyncio.wait([asyncio.ensure_future(l.finished.wait()) for l in links],
                               timeout=self.config.close_timeout)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self._summary = self.recorder.close()
        return self._summary

    async def __aenter__(self) -> "RecordingProxy":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --- requests ----------------------------------------------------------------------

    def _upstream_url(self, request: web.BaseRequest, websocket: bool) -> URL:
        scheme = self.target.scheme if websocket else {"ws": "http", "wss": "https"}[self.target.scheme]
        prefix = self.target.raw_path.rstrip("/")
        return URL(f"{scheme}://{self.target.raw_authority}{prefix}{request.raw_path}", encoded=True)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._stopping:
            return web.Response(status=503, text="wsreplay record is stopping\n")
        if not request.raw_path.startswith("/"):
            return web.Response(status=400, text="wsreplay record is a reverse proxy\n")
        if request.headers.get("Upgrade", "").lower().strip() == "websocket":
            return await self._websocket(request)
        return await self._http(request)

    async def _http(self, request: web.BaseRequest) -> web.StreamResponse:
        """Forward a plain HTTP request and stream the answer back (not recorded)."""
        out = web.StreamResponse()
        headers = _forwarded(request.headers, HOP_BY_HOP - {"content-length"})
        body = request.content if request.body_exists else None
        try:
            async with self._session.request(request.method, self._upstream_url(request, False),
                                             headers=headers, data=body,
                                             allow_redirects=False) as answer:
                out.set_status(answer.status, answer.reason)
                for key, value in _forwarded(answer.headers, HOP_BY_HOP - {"content-length"}):
                    out.headers.add(key, value)
                await out.prepare(request)
                async for chunk in answer.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            if out.prepared:
                raise
            return web.Response(status=502, text=f"wsreplay record: upstream: {_describe(exc)}\n")

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        cfg = self.config
        offered = _offered_protocols(request.headers)
        problem = upgrade_problem(request, offered)
        if problem:
            return web.Response(status=400, text=f"wsreplay record: {problem}\n")
        if cfg.allow_origins and request.headers.get("Origin") not in cfg.allow_origins:
            return web.Response(status=403, text="wsreplay record: Origin not allowed\n")
        url = self._upstream_url(request, True)
        hs = Handshake(url=str(url), headers=tuple(_forwarded(request.headers, HOP_BY_HOP | WS_LEG)),
                       protocols=offered,
                       compress=_offers_deflate(request.headers))
        answer = _Answer()
        token = _ANSWER.set(answer)
        # The fast path passes the client's permessage-deflate offer through and the
        # upstream's answer back: both legs then agree the same, so frames go on as they came.
        capture = _Capture() if self._fast else None
        capture_token = _CAPTURE.set(capture)
        offer = _deflate_offer(request.headers) if capture else ""
        try:
            upstream = await asyncio.wait_for(self._session.ws_connect(
                url, protocols=hs.protocols,
                headers=[*hs.headers, *([("Sec-WebSocket-Extensions", offer)] if offer else [])],
                compress=15 if hs.compress and not capture else 0, autoping=False,
                autoclose=False, max_msg_size=cfg.max_size + 1, decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=cfg.close_timeout)), cfg.connect_timeout)
        except _Refused:
            return self._refused(hs, answer)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return self._unreachable(exc)
        finally:
            _ANSWER.reset(token)
            _CAPTURE.reset(capture_token)
        if capture is None or not capture.installed:
            hs = Handshake(hs.url, hs.headers, hs.protocols, hs.compress, 101, upstream.protocol,
                           bool(upstream.compress), answer.headers)
            return await self._relay(request, upstream, hs)
        agreed = CIMultiDict(answer.headers).get("Sec-WebSocket-Extensions", "")
        try:
            deflate = agreed_deflate(agreed) if offer or agreed else None
        except ValueError as exc:
            await _release_upstream(upstream)
            return self._unreachable(exc)
        hs = Handshake(hs.url, hs.headers, hs.protocols, hs.compress, 101, upstream.protocol,
                       deflate is not None, answer.headers)
        return await self._relay_fast(request, upstream, hs, capture, deflate, agreed)

    def _refused(self, hs: Handshake, answer: _Answer) -> web.Response:
        hs = Handshake(hs.url, hs.headers, hs.protocols, hs.compress, answer.status,
                       response_headers=answer.headers)
        record = self.recorder.connection(hs)
        record.end()
        self._log(f"{record.name} refused by upstream: {answer.status} {answer.reason}")
        out = web.Response(status=answer.status, reason=answer.reason or None, body=answer.body)
        for key, value in _forwarded(CIMultiDict(answer.headers), HOP_BY_HOP):
            out.headers.add(key, value)
        return out

    def _unreachable(self, exc: BaseException) -> web.Response:
        name = self.recorder.next_name()
        why = _describe(exc)
        self.recorder.note(f"{name}: not opened: upstream failed: {why}")
        self._log(f"{name} not opened: upstream failed: {why}")
        # 504 when the upstream took the connection but never answered; 502 for the rest
        status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
        return web.Response(status=status, text=f"wsreplay record: upstream failed: {why}\n")

    def _client_leg(self, upstream, hs: Handshake, extensions: str = "") -> ServerWebSocket:
        """The client's leg, answered as the upstream answered (``extensions``: its
        Sec-WebSocket-Extensions, passed through on the fast path)."""
        cfg = self.config
        client = ServerWebSocket(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            compress=bool(upstream.compress), autoping=False, autoclose=False,
            max_msg_size=cfg.max_size + 1, decode_text=False, timeout=cfg.close_timeout)
        for key, value in _forwarded(CIMultiDict(hs.response_headers), HOP_BY_HOP | WS_LEG):
            client.headers.add(key, value)
        if extensions:
            client.headers["Sec-WebSocket-Extensions"] = extensions
        return client

    async def _record(self, upstream, hs: Handshake) -> ConnectionRecord:
        try:
            return self.recorder.connection(hs)
        except BaseException:  # a recorder bug must not leave the upstream leg open
            await _release_upstream(upstream)
            raise

    async def _relay(self, request: web.BaseRequest, upstream, hs: Handshake):
        client = self._client_leg(upstream, hs)
        record = await self._record(upstream, hs)
        link = _Link(self, request, client, upstream, record)
        try:
            await client.prepare(request)
        except (ConnectionError, RuntimeError):
            record.drop(Side.CLIENT)
            record.end()
            await link._close_leg(Side.SERVER, 1011, "client gone")
            await _release_upstream(upstream)
            return client
        return await self._run(link, request, client)

    async def _relay_fast(self, request: web.BaseRequest, upstream, hs: Handshake,
                          capture: _Capture, deflate: Deflate | None, extensions: str):
        """Both legs taken over before the client gets its 101 (nothing it sends then can
        reach aiohttp's reader); the link forwards once the 101 is out."""
        cfg = self.config
        client = self._client_leg(upstream, hs, extensions)
        record = await self._record(upstream, hs)
        link = FastLink(record, cfg.max_size, cfg.close_timeout, lambda: _release_now(upstream),
                        deflate)
        link.attach(Side.SERVER, _upstream_transport(upstream), early=capture.take(),
                    ended=capture.eof)
        link.attach(Side.CLIENT, request.transport, request.protocol, _client_tail(request))
        try:
            await client.prepare(request)
        except (ConnectionError, RuntimeError):
            link.lost(link.legs[Side.CLIENT])
        link.start()
        return await self._run(link, request, client)

    async def _run(self, link, request: web.BaseRequest, client):
        record = link.record
        self._links.add(link)
        self._log(f"{record.name} open {request.rel_url.path} ({len(self._links)} open)")
        try:
            await link.run()
        finally:
            self._links.discard(link)
            self._log(f"{record.name} closed: {link.how or 'ended'}, "
                      f"{record.messages_seen} messages ({len(self._links)} open)")
        return client
