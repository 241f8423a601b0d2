"""Peers and helpers for the ``wsreplay record`` tests.

* :class:`ScriptedServer`: an aiohttp WebSocket server (pings, pongs and closes by hand) that
  echoes and keeps what it saw; text commands make it act (``__close 4000 bye``, ``__ping 00ff``,
  ``__terminate``, ``__reset``, ``__headers``, ``__flood N SIZE``) like ``tests/peers/ws_server.js``.
* :func:`websockets_echo`: an echo server on the ``websockets`` library.
* :func:`wire` turns a recorded payload back into what went on the wire, so a test can compare
  a recording with the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import aiohttp
from aiohttp import web
from websockets.asyncio.server import serve as websockets_serve

import pytest

from wsreplay import model as m
from wsreplay.parser import parse
from wsreplay.proxy import ProxyConfig, RecordingProxy
from wsreplay.recorder import Recorder, Redaction, Sink

from .conftest import T


class ScriptedServer:
    """An aiohttp WebSocket endpoint; ``seen`` lists ``(kind, data)`` per frame it received
    (``("close", code, reason)``, ``("closed",)`` when the TCP connection just ended)."""

    def __init__(self, **ws_options):
        self.ws_options = ws_options
        self.seen: list[tuple] = []
        self.headers: dict | None = None
        self.path = ""
        self.protocol: str | None = None
        self.compress = None
        self.refuse: tuple[int, str, dict] | None = None  # answer upgrades with this
        self.answer_headers: dict[str, str] = {"X-Upstream": "yes"}  # added to the 101
        self.ended = asyncio.Event()
        self.flood_sent = 0
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if request.headers.get("Upgrade", "").lower() != "websocket":
            body = await request.read()
            return web.Response(text=f"http {request.method} {request.path_qs} {body.decode()}")
        if self.refuse:
            status, text, headers = self.refuse
            return web.Response(status=status, text=text, headers=headers)
        self.headers, self.path = dict(request.headers), request.path_qs
        options = {"max_msg_size": 0, **self.ws_options}
        ws = web.WebSocketResponse(autoping=False, autoclose=False, **options)
        ws.headers.update(self.answer_headers)
        await ws.prepare(request)
        self.protocol, self.compress = ws.ws_protocol, ws.compress
        try:
            while await self._step(ws, request, await ws.receive(timeout=4 * T)):
                pass
        finally:
            self.ended.set()
        return ws

    async def _step(self, ws, request, msg) -> bool:
        kind = msg.type
        if kind is aiohttp.WSMsgType.TEXT:
            self.seen.append(("text", msg.data.encode()))
            if msg.data.startswith("__"):
                return await self._command(ws, request, msg.data)
            await ws.send_str(msg.data)
        elif kind is aiohttp.WSMsgType.BINARY:
            self.seen.append(("binary", msg.data))
            await ws.send_bytes(msg.data)
        elif kind is aiohttp.WSMsgType.PING:
            self.seen.append(("ping", bytes(msg.data)))
            await ws.pong(msg.data)
        elif kind is aiohttp.WSMsgType.PONG:
            self.seen.append(("pong", bytes(msg.data)))
        elif kind is aiohttp.WSMsgType.CLOSE:
            self.seen.append(("close", msg.data, msg.extra))
            if msg.data:
                await ws.close(code=msg.data, message=msg.extra.encode())
            else:  # an empty close frame is answered by an empty one
                await ws.send_frame(b"", aiohttp.WSMsgType.CLOSE)
            return False
        else:
            self.seen.append(("closed",))
            return False
        return True

    async def _command(self, ws, request, text: str) -> bool:
        cmd, _, arg = text.partition(" ")
        if cmd == "__close":
            code, _, reason = arg.partition(" ")
            if code:
                await ws.close(code=int(code), message=reason.encode())
            else:
                await ws.send_frame(b"", aiohttp.WSMsgType.CLOSE)
                msg = await ws.receive(timeout=T)
                self.seen.append(("close", msg.data, msg.extra))
            return False
        if cmd == "__ping":
            await ws.ping(bytes.fromhex(arg))
        elif cmd in ("__terminate", "__reset"):
            transport = request.transport
            transport.close() if cmd == "__terminate" else transport.abort()
            return False
        elif cmd == "__headers":
            await ws.send_str(json.dumps(dict(request.headers)))
        elif cmd == "__flood":
            count, size = (int(x) for x in arg.split())
            for _ in range(count):
                await ws.send_bytes(b"\x01" * size)
                self.flood_sent += 1
        return True


@contextlib.asynccontextmanager
async def aiohttp_peer(handler, ssl_context=None):
    """Serve ``handler`` (every path) on 127.0.0.1 (TLS with ``ssl_context``); yields the port;
    always stopped."""
    server = web.Server(handler)
    runner = web.ServerRunner(server)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def websockets_echo(**options):
    """An echo server on the ``websockets`` library (it answers pings itself); yields the port.
    ``server.seen`` is not kept: the client side checks the echo."""

    async def echo(ws):
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async with websockets_serve(echo, "127.0.0.1", 0, max_size=None, **options) as server:
        yield server.sockets[0].getsockname()[1]


def load(path: Path) -> m.Scenario:
    """The recording at ``path``, parsed (the test fails with the parser's message if not)."""
    return parse(path.read_text(encoding="utf-8"), str(path))


def wire(payload) -> tuple:
    """A recorded payload as what went on the wire: ``("text", bytes)``, ``("binary", bytes)``,
    ``("ping"/"pong", bytes)``, ``("close", code, reason)`` or ``("drop",)``."""
    if isinstance(payload, m.Text):
        return ("text", payload.text.replace("{{'{{'}}", "{{").encode())
    if isinstance(payload, m.Json):
        return ("text", payload.source.replace('"##', '"#').replace("{{'{{'}}", "{{").encode())
    if isinstance(payload, m.Binary):
        return ("binary", payload.data)
    if isinstance(payload, (m.Ping, m.Pong)):
        return (type(payload).__name__.lower(), payload.data)
    if isinstance(payload, m.Close):
        return ("close", payload.code, payload.reason or "")
    if isinstance(payload, m.Drop):
        return ("drop",)
    raise AssertionError(f"unexpected payload {payload!r}")


def events(scenario: m.Scenario, conn: str = "c1") -> list[tuple]:
    """``(side, wire(payload))`` for each event of ``conn``, in file order."""
    return [(e.side.value, wire(e.payload)) for e in scenario.events() if e.conn == conn]


async def until(predicate, timeout: float = T, what: str = "condition") -> None:
    """Wait (bounded) until ``predicate()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.1f}s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def recording_proxies(tmp_path, **defaults):
    """A factory: ``await start(target, **config) -> RecordingProxy`` writing
    ``tmp_path/recN.wsr`` (``proxy.recorder.path``), ``defaults`` under ``config``; every
    proxy is stopped at the end."""
    proxies: list[RecordingProxy] = []

    async def start(target: str, *, split: bool = False, redaction: Redaction | None = None,
                    **config) -> RecordingProxy:
        recorder = Recorder(tmp_path / f"rec{len(proxies)}.wsr", split=split,
                            redaction=redaction or Redaction(), source=target)
        proxy = RecordingProxy(ProxyConfig(target, port=0, **{**defaults, **config}), recorder)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            await proxy.stop()


@pytest.fixture
async def record(tmp_path):
    """``await record(target, **config) -> RecordingProxy`` (see :func:`recording_proxies`)."""
    async with recording_proxies(tmp_path) as start:
        yield start


async def settled(proxy: RecordingProxy) -> None:
    """Wait until the proxy has finished every connection (closing handshakes included)."""
    await until(lambda: proxy.open_connections == 0, what="connections finished")


# --- what a SIGKILL can leave of a recording -----------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


class TracingSink(Sink):
    """A sink that also logs every write it makes, so a test can replay them with cuts."""

    def __init__(self, path):
        self.ops: list[tuple[int, bytes]] = []
        super().__init__(path)

    def _write(self, data, offset):
        self.ops.append((offset, bytes(data)))
        super()._write(data, offset)

    def _write_commented(self, line, offset):
        self._write(b"#" + bytes(line[1:]), offset)


def states_after_cuts(ops):
    """Every file content a kill can leave: writes apply in order, and the one running when the
    kill comes stops at a page boundary (the kernel checks for fatal signals between pages).
    The first write, the header, is in before the file gets its name."""
    content = bytearray(ops[0][1])
    for offset, data in ops[1:]:
        cuts = {0, len(data)} | {p * PAGE - offset for p in range(offset // PAGE + 1,
                                                                  (offset + len(data)) // PAGE + 1)}
        for cut in sorted(c for c in cuts if 0 <= c <= len(data)):
            state = bytearray(content)
            state[offset:offset + cut] = data[:cut]
            yield bytes(state)
        content[offset:offset + len(data)] = data
