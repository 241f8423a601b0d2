"""A WebSocket upstream in its own process, for the fault tests: it can be killed for real.

    python tests/fault_upstream.py [--port N]

Listens on 127.0.0.1 and prints ``listening on PORT``. Every connection echoes text and binary
messages (pings are answered by aiohttp); these text commands make it act instead of echoing:

* ``__stream N SIZE``: send ``N`` text messages ``"s<i> " + "x" * SIZE`` as fast as the
  connection takes them (``N`` = 0: until the connection ends);
* ``__flood N SIZE``: send ``N`` binary messages of ``SIZE`` bytes.

Sends always wait for the socket (aiohttp's drain), so a reader that stops holds the sender.
Only aiohttp is imported: the process starts quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import WSMsgType, web


async def _stream(ws: web.WebSocketResponse, count: int, size: int, binary: bool) -> None:
    pad = "x" * size
    i = 0
    try:
        while count == 0 or i < count:
            if binary:
                await ws.send_bytes(b"\x01" * size)
            else:
                await ws.send_str(f"s{i} {pad}")
            i += 1
    except (ConnectionError, RuntimeError):
        pass  # the connection ended: nothing more to send


async def handle(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    senders: list[asyncio.Task] = []
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT and msg.data.startswith("__"):
                cmd, count, size = (msg.data.split() + ["0", "0"])[:3]
                binary = cmd == "__flood"
                senders.append(asyncio.create_task(_stream(ws, int(count), int(size), binary)))
            elif msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        for task in senders:
            task.cancel()
    return ws


async def main(port: int) -> None:
    runner = web.AppRunner(web.Application(), handle_signals=False, access_log=None)
    runner.app.router.add_get("/{tail:.*}", handle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
