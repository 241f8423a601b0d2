"""A python-socketio peer for the third-party tests (run as a program, not collected):

    python tests/socketio_peer.py server [--port N] [--ping-interval MS]
    python tests/socketio_peer.py client URL [--timeout SECONDS] [--linger MS]

The same conversation and output as ``tests/peers/socketio_server.js`` /
``socketio_client.js``, on python-socketio's asyncio server (on aiohttp) and AsyncClient: one
JSON event per stdout line; the server's first line is ``{"event":"listening","port":N}``; the
client exits 0 when its conversation went as written, 1 when not (or on timeout).

The server broadcasts a ``chat`` event {"text":T} as ``chat`` {"from":SID,"text":T} and
acknowledges it with {"ok":true,"count":N}. WebSocket transport only. python-engineio's client
adds a cache-busting ``t=`` (the time) to the URL, and every server process gives new
session ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import socketio
from aiohttp import web


def emit(**event) -> None:
    print(json.dumps(event), flush=True)


async def serve(port: int, ping_ms: int = 0) -> None:
    ping = ping_ms / 1000 if ping_ms else 60  # no heartbeat within a test's life unless asked
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"],
                               ping_interval=ping, ping_timeout=ping)
    app = web.Application()
    sio.attach(app)
    count = 0

    @sio.event
    async def connect(sid, environ):
        emit(event="connect", sid=sid)

    @sio.on("chat")
    async def chat(sid, msg):
        nonlocal count
        text = (msg or {}).get("text")
        emit(event="chat", sid=sid, text=text)
        await sio.emit("chat", {"from": sid, "text": text})
        count += 1
        return {"ok": True, "count": count}

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    emit(event="listening", port=runner.addresses[0][1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


async def converse(url: str, linger_ms: int = 0) -> str | None:
    """The client's conversation; None when it went as written, else what went wrong."""
    sio = socketio.AsyncClient(reconnection=False)
    broadcast: asyncio.Future = asyncio.get_running_loop().create_future()

    @sio.on("chat")
    async def chat(data):
        emit(event="chat", data=data)
        if not broadcast.done():
            broadcast.set_result(data)

    await sio.connect(url, transports=["websocket"])
    sid = sio.get_sid()
    emit(event="connect", sid=sid)
    ack = await sio.call("chat", {"text": "hello"}, timeout=5)
    emit(event="ack", data=ack)
    data = await broadcast
    await asyncio.sleep(linger_ms / 1000)  # the server's heartbeats keep it alive meanwhile
    await sio.disconnect()
    if data.get("from") != sid or data.get("text") != "hello":
        return f"the broadcast {data} is not this client's own message"
    if not (isinstance(ack, dict) and ack.get("ok") is True):
        return f"unexpected ack {ack}"
    return None


async def client(url: str, timeout: float, linger_ms: int = 0) -> int:
    try:
        problem = await asyncio.wait_for(converse(url, linger_ms), timeout)
    except asyncio.TimeoutError:
        emit(event="timeout", seconds=timeout)
        return 1
    except Exception as exc:  # the peer reports any failure as an event, then exits 1
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        emit(event="error", message=problem)
        return 1
    emit(event="done")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="socketio_peer.py")
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--ping-interval", type=int, default=0, metavar="MS")
    c = sub.add_parser("client")
    c.add_argument("url")
    c.add_argument("--timeout", type=float, default=10.0)
    c.add_argument("--linger", type=int, default=0, metavar="MS")
    args = parser.parse_args(argv)
    if args.role == "server":
        asyncio.run(serve(args.port, args.ping_interval))
        return 0
    return asyncio.run(client(args.url, args.timeout, args.linger))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
