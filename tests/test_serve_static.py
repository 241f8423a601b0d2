"""``wsreplay serve --static DIR``: the mock also answers plain HTTP GETs with a folder's files,
so a web app whose page and WebSocket share one origin can be opened against the mock; nothing
outside the folder is ever served."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

import aiohttp

from wsreplay.serve import MockServer

from .conftest import T
from .wskit import load_text

HELLO = """
conn c ws://127.0.0.1:1/chat
c < text hi
c > close 1000
c < close 1000
"""


@contextlib.asynccontextmanager
async def serving(scenario, **options):
    server = MockServer([scenario], **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def raw_get(port: int, target: str) -> bytes:
    """The status line for ``GET target`` sent as is (no client normalises the path)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return await asyncio.wait_for(reader.readline(), T)
    finally:
        writer.close()


async def test_static_files_answer_http_and_the_websocket_still_reaches_the_scenario(tmp_path):
    site = tmp_path / "site"
    (site / "js").mkdir(parents=True)
    (site / "index.html").write_text("<h1>app</h1>")
    (site / "js" / "app.js").write_text("console.log('✓')")
    async with serving(load_text(tmp_path, HELLO), static=site, once=True) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/") as page:
                assert (page.status, await page.text()) == (200, "<h1>app</h1>")
                assert page.content_type == "text/html"
            async with session.get(base + "/js/app.js") as script:
                assert (script.status, await script.text()) == (200, "console.log('✓')")
            async with session.get(base + "/nope.css") as missing:
                assert missing.status == 404
            async with session.ws_connect(f"ws://127.0.0.1:{server.port}/chat") as ws:
                assert (await ws.receive(timeout=T)).data == "hi"
                await ws.close(code=1000)
        results = await server.wait_once(T)
    assert [r.passed for r in results] == [True]


async def test_static_never_serves_what_is_outside_its_folder(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("in")
    (tmp_path / "secret.txt").write_text("out")
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    async with serving(load_text(tmp_path, HELLO), static=site) as server:
        assert (await raw_get(server.port, "/index.html")).startswith(b"HTTP/1.1 200")
        for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
                       "/link.txt", "//etc/passwd", "/%00"):
            status = await raw_get(server.port, target)
            assert not status.startswith(b"HTTP/1.1 200"), (target, status)


async def test_without_static_plain_http_still_gets_426(tmp_path):
    async with serving(load_text(tmp_path, HELLO)) as server:
        assert (await raw_get(server.port, "/")).startswith(b"HTTP/1.1 426")


def test_serve_static_needs_an_existing_folder(tmp_path):
    scenario = tmp_path / "s.wsr"
    scenario.write_text("wsreplay 1\n" + HELLO.lstrip())
    done = subprocess.run([sys.executable, "-m", "wsreplay", "serve", str(scenario), "--static",
                           str(tmp_path / "nope"), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=2 * T)
    assert done.returncode == 2
    assert "--static" in done.stderr and "no such folder" in done.stderr
