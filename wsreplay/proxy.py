"""The recording proxy: a transparent WebSocket (and plain HTTP) reverse proxy on aiohttp.

For each WebSocket upgrade on the listen address the proxy connects upstream first (path and
query appended to the target), then answers the client as the upstream answered: a refusal goes
back with its status, headers and body, never as a 101; an upgrade with the subprotocol the
upstream chose and the permessage-deflate it agreed to the client's own offer. Then
:mod:`wsreplay.relay` takes both sockets over and forwards the very bytes each side sent,
frame by frame, handing every message to the recorder *before* the frame that completes it
goes on, so what was forwarded is in the file even if the process is killed. (Should this
aiohttp lack what that takeover borrows, :mod:`wsreplay.pumps` forwards message by message
through aiohttp instead.) Plain HTTP requests are forwarded too, unrecorded.

Before anything goes upstream, a request must name the proxy's own address in ``Host`` (or one
allowed with ``allow_hosts``: DNS rebinding) and its path must stay inside the target's prefix
(:mod:`wsreplay.guard`). Clients come in through :class:`wsreplay.door.Door`: a deadline for
each request head, and a 503 rather than silence when descriptors run out.

Use it in-process::

    async with RecordingProxy(ProxyConfig("ws://127.0.0.1:9000"), recorder) as proxy:
        ...  # clients connect to proxy.url

The aiohttp internals used are all in :mod:`wsreplay.takeover`.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from dataclasses import dataclass, replace
from typing import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .door import Door, listening_sockets, out_of_descriptors
from .frames import Deflate, agreed_deflate
from .guard import HostPolicy, OutsidePrefix, shown, upstream_path
from .model import Side
from .pumps import PumpLink
from .recorder import ConnectionRecord, Handshake, Recorder, Summary
from .redact import scrub
from .relay import FastLink
from .takeover import (CAPTURE, Capture, capturing, client_tail, release_now, release_upstream,
                       upstream_transport)
from .wire import ClientWebSocket, ServerLog, ServerWebSocket, upgrade_problem

__all__ = ["ProxyConfig", "RecordingProxy", "parse_target"]

# Request headers that belong to one hop (RFC 9110 §7.6.1) or to one WebSocket leg.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})
WS_LEG = frozenset({
    "sec-websocket-key", "sec-websocket-accept", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol",
})
REFUSAL_BODY_MAX = 1 << 20
_HOSTS_REPORTED = 64  # refused Host values reported once each (bounded: they are the client's)


@dataclass(frozen=True)
class ProxyConfig:
    """How to run the proxy. ``target`` is ``ws[s]://HOST:PORT[/PREFIX]``; ``port`` 0 picks a
    free one. ``max_size`` is the largest message accepted on either leg (a larger one gets
    close 1009). TLS to a ``wss`` target is verified unless ``insecure``; ``ca_file`` adds
    trust. Environment proxies are used upstream only with ``trust_env``. A non-empty
    ``allow_origins`` refuses (403) upgrades whose Origin is not listed. ``allow_hosts``
    (``HOST`` or ``HOST:PORT``, ``*`` for any) adds to the Host values answered (the listen
    address's own). A client has ``handshake_timeout`` seconds to send its request head."""

    target: str
    host: str = "127.0.0.1"
    port: int = 8765
    max_size: int = 4 * 1024 * 1024
    ca_file: str | None = None
    insecure: bool = False
    trust_env: bool = False
    allow_origins: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    handshake_timeout: float = 5.0
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


# --- the proxy --------------------------------------------------------------------------

class RecordingProxy:
    """The recording reverse proxy. ``await start()`` binds (``port`` and ``url`` are then
    known), ``await stop()`` closes every connection with 1001, finishes the recording and
    returns its :class:`~wsreplay.recorder.Summary`. ``log`` receives one line per connection
    opened, refused or closed; ``warn`` (default: ``log``) the errors: an upstream that
    failed, a refused Host, clients refused for lack of descriptors."""

    def __init__(self, config: ProxyConfig, recorder: Recorder,
                 log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None):
        self.config, self.recorder = config, recorder
        self.target = parse_target(config.target)
        quiet = recorder.redaction.enabled  # the log and the warnings name no secret either
        self._log = _scrubbing(log, quiet) if log else (lambda line: None)
        self._warn = _scrubbing(warn, quiet) if warn else self._log
        self._links: set[PumpLink | FastLink] = set()
        self._runner: web.ServerRunner | None = None
        self._door: Door | None = None
        self.hosts: HostPolicy | None = None  # known once listening (the port is in it)
        self._hosts_reported: set[str] = set()
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
        """Listen; raises OSError when the address is taken, ValueError for a malformed
        ``allow_hosts`` entry."""
        cfg = self.config
        self._session = self._make_session()
        server = web.Server(self._handle, access_log=None, logger=ServerLog(),
                            max_line_size=1 << 16, max_field_size=1 << 16)
        self._runner = web.ServerRunner(server, shutdown_timeout=cfg.close_timeout)
        await self._runner.setup()
        socks: list = []
        try:
            socks = listening_sockets(cfg.host, cfg.port, backlog=1024)
            self.port = socks[0].getsockname()[1]
            self.hosts = HostPolicy.build(cfg.host, self.port, cfg.allow_hosts)
        except BaseException:
            for sock in socks:
                sock.close()
            await self._runner.cleanup()
            await self._session.close()
            raise
        self._door = Door(server, socks, handshake_timeout=cfg.handshake_timeout,
                          log=self._log, warn=self._warn)
        await self._door.start()

    def _make_session(self) -> aiohttp.ClientSession:
        cfg = self.config
        tls: ssl.SSLContext | bool = True
        if cfg.insecure:
            tls = False
        elif cfg.ca_file:
            tls = ssl.create_default_context(cafile=cfg.ca_file)
        connector = aiohttp.TCPConnector(limit=0, ssl=tls)
        self._fast = cfg.fast and capturing(connector)
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
        if self._door is not None:
            self._door.close()  # no new connections
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

    def _upstream_url(self, path: str, websocket: bool) -> URL:
        """The upstream URL for ``path`` (made safe by :func:`~wsreplay.guard.upstream_path`)."""
        scheme = self.target.scheme if websocket else {"ws": "http", "wss": "https"}[self.target.scheme]
        prefix = self.target.raw_path.rstrip("/")
        return URL(f"{scheme}://{self.target.raw_authority}{prefix}{path}", encoded=True)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self._door.arrived(request.protocol)
        try:
            return await self._answer(request)
        finally:
            self._door.waiting(request.protocol)  # kept alive: the next request's deadline

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._stopping:
            return web.Response(status=503, text="wsreplay record is stopping\n")
        if not request.raw_path.startswith("/"):
            return web.Response(status=400, text="wsreplay record is a reverse proxy\n")
        host = request.headers.get("Host")
        if not self.hosts.allows(host, http10=request.version < (1, 1)):
            return self._wrong_host(host)
        try:
            path = upstream_path(request.raw_path)
        except OutsidePrefix as exc:
            self._log(f"refused {request.method} '{shown(request.raw_path)}' (400): {exc}")
            return web.Response(status=400, text=f"wsreplay record: {exc}\n")
        if request.headers.get("Upgrade", "").lower().strip() == "websocket":
            return await self._websocket(request, path)
        return await self._http(request, path)

    def _wrong_host(self, host: str | None) -> web.Response:
        seen = shown(host)
        if seen not in self._hosts_reported and len(self._hosts_reported) < _HOSTS_REPORTED:
            self._hosts_reported.add(seen)
            self._warn(f"refused a request for Host '{seen}' (403): not this proxy's address "
                       f"({self.hosts.describe()}); --allow-host {self.hosts.hint(host)} "
                       f"allows it")
        return web.Response(status=403, text=self.hosts.refusal(host))

    async def _upstream(self, connect):
        """``await connect()``, once more after :meth:`Door.make_room` when it failed for
        lack of descriptors; raises what the last attempt raised."""
        try:
            return await connect()
        except (aiohttp.ClientError, OSError) as exc:
            if not out_of_descriptors(exc) or not await self._door.make_room():
                raise
        return await connect()

    def _no_descriptors(self) -> web.Response:
        self._door.refused.add()
        return web.Response(status=503, text="wsreplay record: out of file descriptors; "
                                             "try again later\n")

    async def _http(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        """Forward a plain HTTP request and stream the answer back (not recorded)."""
        out = web.StreamResponse()
        headers = _forwarded(request.headers, HOP_BY_HOP - {"content-length"})
        body = request.content if request.body_exists else None
        url = self._upstream_url(path, False)

        async def connect():
            return await self._session.request(request.method, url, headers=headers, data=body,
                                               allow_redirects=False)
        try:
            async with await self._upstream(connect) as answer:
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
            if out_of_descriptors(exc):
                return self._no_descriptors()
            self._warn(f"{request.method} {shown(path)}: upstream failed: {_describe(exc)}")
            return web.Response(status=502, text=f"wsreplay record: upstream: {_describe(exc)}\n")

    async def _websocket(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        cfg = self.config
        offered = _offered_protocols(request.headers)
        problem = upgrade_problem(request, offered)
        if problem:
            return web.Response(status=400, text=f"wsreplay record: {problem}\n")
        if cfg.allow_origins and request.headers.get("Origin") not in cfg.allow_origins:
            return web.Response(status=403, text="wsreplay record: Origin not allowed\n")
        url = self._upstream_url(path, True)
        hs = Handshake(url=str(url), headers=tuple(_forwarded(request.headers, HOP_BY_HOP | WS_LEG)),
                       protocols=offered,
                       compress=_offers_deflate(request.headers))
        answer = _Answer()
        token = _ANSWER.set(answer)
        # The fast path passes the client's permessage-deflate offer through and the
        # upstream's answer back: both legs then agree the same, so frames go on as they came.
        capture = Capture() if self._fast else None
        capture_token = CAPTURE.set(capture)
        offer = _deflate_offer(request.headers) if capture else ""

        def connect():
            return asyncio.wait_for(self._session.ws_connect(
                url, protocols=hs.protocols,
                headers=[*hs.headers, *([("Sec-WebSocket-Extensions", offer)] if offer else [])],
                compress=15 if hs.compress and not capture else 0, autoping=False,
                autoclose=False, max_msg_size=cfg.max_size + 1, decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=cfg.close_timeout)), cfg.connect_timeout)
        try:
            upstream = await self._upstream(connect)
        except _Refused:
            return self._refused(hs, answer)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return self._unreachable(exc)
        finally:
            _ANSWER.reset(token)
            CAPTURE.reset(capture_token)
        agreed = CIMultiDict(answer.headers).get("Sec-WebSocket-Extensions", "") if capture else ""
        if capture is not None and not capture.installed and agreed:  # aiohttp read it all
            await release_upstream(upstream)
            return self._unreachable(ValueError("the fast path could not take the upstream over"))
        if capture is None or not capture.installed:
            hs = replace(hs, protocol=upstream.protocol, compressed=bool(upstream.compress),
                         response_headers=answer.headers)
            return await self._relay(request, upstream, hs)
        try:
            deflate = agreed_deflate(agreed) if offer or agreed else None
        except ValueError as exc:
            await release_upstream(upstream)
            return self._unreachable(exc)
        hs = replace(hs, protocol=upstream.protocol, compressed=deflate is not None,
                     response_headers=answer.headers)
        return await self._relay_fast(request, upstream, hs, capture, deflate, agreed)

    def _refused(self, hs: Handshake, answer: _Answer) -> web.Response:
        hs = replace(hs, status=answer.status, response_headers=answer.headers)
        record = self.recorder.connection(hs)
        record.end()
        self._log(f"{record.name} refused by upstream: {answer.status} {answer.reason}")
        out = web.Response(status=answer.status, reason=answer.reason or None, body=answer.body)
        for key, value in _forwarded(CIMultiDict(answer.headers), HOP_BY_HOP):
            out.headers.add(key, value)
        return out

    def _unreachable(self, exc: BaseException) -> web.Response:
        if out_of_descriptors(exc):
            return self._no_descriptors()
        name = self.recorder.next_name()
        why = _describe(exc)
        self.recorder.note(f"{name}: not opened: upstream failed: {why}")
        self._warn(f"{name} not opened: upstream failed: {why}")
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
            await release_upstream(upstream)
            raise

    async def _relay(self, request: web.BaseRequest, upstream, hs: Handshake):
        client = self._client_leg(upstream, hs)
        record = await self._record(upstream, hs)
        link = PumpLink(self, request, client, upstream, record)
        try:
            await client.prepare(request)
        except (ConnectionError, RuntimeError):
            record.drop(Side.CLIENT)
            record.end()
            await link._close_leg(Side.SERVER, 1011, "client gone")
            await release_upstream(upstream)
            return client
        return await self._run(link, request, client)

    async def _relay_fast(self, request: web.BaseRequest, upstream, hs: Handshake,
                          capture: Capture, deflate: Deflate | None, extensions: str):
        """Both legs taken over before the client gets its 101 (nothing it sends then can
        reach aiohttp's reader); the link forwards once the 101 is out."""
        cfg = self.config
        client = self._client_leg(upstream, hs, extensions)
        record = await self._record(upstream, hs)
        link = FastLink(record, cfg.max_size, cfg.close_timeout, lambda: release_now(upstream),
                        deflate)
        link.attach(Side.SERVER, upstream_transport(capture), early=capture.take(),
                    ended=capture.eof)
        link.attach(Side.CLIENT, request.transport, request.protocol, client_tail(request))
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


def _scrubbing(say: Callable[[str], None], scrubbed: bool) -> Callable[[str], None]:
    """``say``, its lines scrubbed of secrets (:func:`wsreplay.redact.scrub`) when asked."""
    return (lambda line: say(scrub(line))) if scrubbed else say
