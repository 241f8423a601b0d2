"""Small real WebSocket peers for the replay/serve tests (aiohttp and websockets), and a
helper to write scenario files."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

from aiohttp import WSMsgType, web

from wsreplay.loader import load
from wsreplay.serve import MockServer


def write_scenario(folder: Path, text: str, name: str = "s.wsr") -> Path:
    path = folder / name
    path.write_text("wsreplay 1\n" + textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_text(folder: Path, text: str, name: str = "s.wsr"):
    return load(write_scenario(folder, text, name))


@contextlib.asynccontextmanager
async def aiohttp_server(handler, path: str = "/{tail:.*}"):
    """Serve ``handler`` on 127.0.0.1; yields the port."""
    app = web.Application()
    app.router.add_route("GET", path, handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def echo_handler(seen: list, protocols=("v1",), headers=()):
    """An aiohttp echo server that logs (type, bytes) of what it receives; ``x <text>``
    makes it answer ``<text>`` twice, ``close`` makes it close 4000 "done"."""

    async def handler(request: web.Request):
        ws = web.WebSocketResponse(protocols=protocols, autoping=True)
        for name, value in headers:
            ws.headers[name] = value
        await ws.prepare(request)
        async for msg in ws:
            seen.append((msg.type.name, msg.data))
            if msg.type is WSMsgType.TEXT and msg.data == "close":
                await ws.close(code=4000, message=b"done")
            elif msg.type is WSMsgType.TEXT and msg.data.startswith("x "):
                await ws.send_str(msg.data[2:])
                await ws.send_str(msg.data[2:])
            elif msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        seen.append(("END", ws.close_code))
        return ws

    return handler


@contextlib.asynccontextmanager
async def serving(*scenarios, **options):
    """A started :class:`MockServer` for ``scenarios``; always stopped."""
    server = MockServer(list(scenarios), **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
