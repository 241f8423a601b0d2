"""The built-in sample server: a small chat with a price ticker, on aiohttp.

It gives ``wsreplay demo`` (and anyone trying wsreplay) something real to record, replay and
mock. Protocol, JSON text messages on ``/chat?user=NAME[&room=ROOM]``:

* on connect: ``{"type":"welcome","id":ID,"user":NAME}`` (ID is issued by the server);
* ``{"type":"say","text":T}`` → every client in the room, the sender included, gets
  ``{"type":"said","id":MSG_ID,"from":NAME,"text":T,"ts":MILLISECONDS}``;
* ``{"type":"ping","id":N}`` → ``{"type":"pong","id":N}`` (the id echoed, JSON-RPC style);
* ``{"type":"subscribe","sym":S[,"count":K]}`` → a burst of K (default 3, at most 100)
  ``{"type":"tick","sym":S,"price":P}``;
* every ``heartbeat`` seconds (0: never): ``{"type":"heartbeat"}``;
* anything else: ``{"type":"error","error":...}``; a missing ``user`` refuses the upgrade (400).

``GET /`` serves a tiny HTML page that chats through the browser's own WebSocket.

Ids, timestamps and prices come from a :class:`DemoSource`: :class:`LiveSource` (the default)
issues UUIDs and stamps the real time, as a real server does; :class:`CountingSource` makes
every run identical (ids ``u1``, ``m1``..., one fixed timestamp), which some tests rely on.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiohttp import WSMsgType, web

FIXED_TS = 1_700_000_000_000
BASE_PRICES = {"BTC": 50_000.0, "ETH": 3_000.0}
MAX_BURST = 100


class DemoSource(Protocol):
    """Where the server's ids, timestamps and prices come from."""

    def new_id(self, kind: str) -> str:
        """A fresh id; ``kind`` is ``"u"`` for a connection, ``"m"`` for a chat message."""

    def now_ms(self) -> int:
        """The current time in milliseconds since the epoch."""

    def price(self, sym: str, n: int) -> float:
        """The price of the ``n``-th tick (from 0) of a burst for ``sym``."""


class LiveSource:
    """What a real server gives: fresh ids (UUIDs) and the real clock, so no two runs are
    alike. With ``steady`` (the default) prices follow :class:`CountingSource`'s -- ids and
    times that change, data that does not, so a recording replays against the next run --
    else they wander around a base."""

    def __init__(self, steady: bool = True):
        self.steady = steady

    def new_id(self, kind: str) -> str:
        return str(uuid.uuid4())

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def price(self, sym: str, n: int) -> float:
        base = BASE_PRICES.get(sym, 100.0)
        if self.steady:
            return base + 0.5 * n
        return round(base * (1 + random.uniform(-0.01, 0.01)), 2)


class CountingSource:
    """Counter-based ids (``u1``, ``u2``, ``m1``...), a fixed timestamp, predictable prices."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def new_id(self, kind: str) -> str:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{kind}{self._counts[kind]}"

    def now_ms(self) -> int:
        return FIXED_TS

    def price(self, sym: str, n: int) -> float:
        return BASE_PRICES.get(sym, 100.0) + 0.5 * n


@dataclass
class _Chat:
    source: DemoSource
    heartbeat: float
    rooms: dict[str, set[web.WebSocketResponse]] = field(default_factory=dict)


CHAT = web.AppKey("chat", _Chat)


def _dumps(obj: dict) -> str:
    return orjson.dumps(obj).decode()


async def _send(ws: web.WebSocketResponse, obj: dict) -> None:
    # A client may go away between being chosen and being written to; that is not our error.
    if ws.closed:
        return
    try:
        await ws.send_str(_dumps(obj))
    except (ConnectionError, RuntimeError):
        pass


async def _heartbeat(ws: web.WebSocketResponse, every: float) -> None:
    while not ws.closed:
        await asyncio.sleep(every)
        await _send(ws, {"type": "heartbeat"})


async def _answer(chat: _Chat, room: str, user: str, ws: web.WebSocketResponse, text: str) -> None:
    """Act on one text message from ``user``."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return await _send(ws, {"type": "error", "error": "invalid JSON"})
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "say" and isinstance(msg.get("text"), str):
        said = {"type": "said", "id": chat.source.new_id("m"), "from": user,
                "text": msg["text"], "ts": chat.source.now_ms()}
        for peer in list(chat.rooms.get(room, ())):
            await _send(peer, said)
    elif kind == "ping":
        await _send(ws, {"type": "pong", "id": msg.get("id")})
    elif kind == "subscribe" and isinstance(msg.get("sym"), str):
        count = msg.get("count", 3)
        if not isinstance(count, int) or not 0 <= count <= MAX_BURST:
            return await _send(ws, {"type": "error", "error": f"count must be 0..{MAX_BURST}"})
        for n in range(count):
            price = chat.source.price(msg["sym"], n)
            await _send(ws, {"type": "tick", "sym": msg["sym"], "price": price})
    else:
        await _send(ws, {"type": "error", "error": f"unknown message type {kind!r}"})


async def _chat_handler(request: web.Request) -> web.StreamResponse:
    chat = request.app[CHAT]
    user = request.query.get("user", "")
    if not user:
        return web.Response(status=400, text="the user query parameter is required\n")
    room = request.query.get("room", "lobby")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    members = chat.rooms.setdefault(room, set())
    members.add(ws)
    beat = asyncio.create_task(_heartbeat(ws, chat.heartbeat)) if chat.heartbeat > 0 else None
    try:
        await _send(ws, {"type": "welcome", "id": chat.source.new_id("u"), "user": user})
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await _answer(chat, room, user, ws, msg.data)
            elif msg.type is WSMsgType.BINARY:
                await _send(ws, {"type": "error", "error": "binary messages are not supported"})
    finally:
        members.discard(ws)
        if beat:
            beat.cancel()
    return ws


async def _page_handler(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def _close_all(app: web.Application) -> None:
    for members in app[CHAT].rooms.values():
        for ws in list(members):
            await ws.close(code=1001, message=b"server shutdown")


def make_app(*, source: DemoSource | None = None, heartbeat: float = 10.0) -> web.Application:
    """The demo chat as an aiohttp application (routes ``/`` and ``/chat``)."""
    app = web.Application()
    app[CHAT] = _Chat(source=source or LiveSource(), heartbeat=heartbeat)
    app.router.add_get("/", _page_handler)
    app.router.add_get("/chat", _chat_handler)
    app.on_shutdown.append(_close_all)
    return app


async def start_demo_server(host: str = "127.0.0.1", port: int = 0, *,
                            source: DemoSource | None = None, heartbeat: float = 10.0,
                            deterministic: bool = False) -> tuple[web.AppRunner, int]:
    """Start the demo server; returns its runner and the port it listens on (``port=0``: any).

    ``deterministic`` uses a :class:`CountingSource` and turns the heartbeat off. The caller must
    ``await runner.cleanup()`` to stop it (open chats get a 1001 close).
    """
    if deterministic:
        source, heartbeat = source or CountingSource(), 0.0
    runner = web.AppRunner(make_app(source=source, heartbeat=heartbeat), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wsreplay demo chat</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em;
         font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; }
  form { margin: .5em 0; }
</style>
</head>
<body>
<h1>wsreplay demo chat</h1>
<form id="join">Name <input id="user" value="alice" size="10">
  <button>Connect</button> <span id="state">not connected</span></form>
<div id="log"></div>
<form id="say"><input id="text" size="40" placeholder="say something">
  <button>Say</button> <button type="button" id="sub">Subscribe BTC</button></form>
<script>
  let ws = null;
  const $ = (id) => document.getElementById(id);
  const log = (dir, text) => { $("log").textContent += dir + " " + text + "\\n";
                               $("log").scrollTop = 1e9; };
  const send = (obj) => { if (ws) { const t = JSON.stringify(obj); ws.send(t); log(">", t); } };
  $("join").onsubmit = (e) => {
    e.preventDefault();
    if (ws) ws.close(1000, "bye");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(scheme + "://" + location.host + "/chat?user="
                       + encodeURIComponent($("user").value));
    ws.onopen = () => { $("state").textContent = "connected"; };
    ws.onmessage = (m) => log("<", m.data);
    ws.onclose = (c) => { $("state").textContent = "closed " + c.code; ws = null; };
  };
  $("say").onsubmit = (e) => { e.preventDefault(); send({type: "say", text: $("text").value});
                               $("text").value = ""; };
  $("sub").onclick = () => send({type: "subscribe", sym: "BTC"});
</script>
</body>
</html>
"""
