"""The built-in sample chat server, driven by real `websockets` clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from .conftest import T
from wsreplay.cli import main
from wsreplay.demo_server import FIXED_TS, start_demo_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def demo():
    """A factory: ``await demo(**options) -> port``; every server is stopped after the test."""
    runners = []

    async def start(**options) -> int:
        runner, port = await start_demo_server("127.0.0.1", 0, **options)
        runners.append(runner)
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


async def recv_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), T))


def chat_url(port: int, user: str, room: str | None = None) -> str:
    return f"ws://127.0.0.1:{port}/chat?user={user}" + (f"&room={room}" if room else "")


async def test_welcome_carries_a_server_issued_id(demo):
    port = await demo(deterministic=True)
    async with connect(chat_url(port, "alice"), open_timeout=T) as alice:
        assert await recv_json(alice) == {"type": "welcome", "id": "u1", "user": "alice"}
        async with connect(chat_url(port, "bob"), open_timeout=T) as bob:
            assert await recv_json(bob) == {"type": "welcome", "id": "u2", "user": "bob"}


async def test_said_reaches_everyone_in_the_room_and_nobody_else(demo):
    port = await demo(deterministic=True)
    async with (connect(chat_url(port, "alice"), open_timeout=T) as alice,
                connect(chat_url(port, "bob"), open_timeout=T) as bob,
                connect(chat_url(port, "carol", room="other"), open_timeout=T) as carol):
        for ws in (alice, bob, carol):
            await recv_json(ws)
        await alice.send(json.dumps({"type": "say", "text": "hi bob ✓"}))
        expected = {"type": "said", "id": "m1", "from": "alice", "text": "hi bob ✓",
                    "ts": FIXED_TS}
        assert await recv_json(alice) == expected
        assert await recv_json(bob) == expected
        await bob.send(json.dumps({"type": "say", "text": "hi"}))
        assert (await recv_json(alice))["id"] == "m2"
        # carol's next message is the answer to her own ping: nothing from the lobby came first.
        await carol.send(json.dumps({"type": "ping", "id": 1}))
        assert await recv_json(carol) == {"type": "pong", "id": 1}


@pytest.mark.parametrize("msg_id", [7, "req-9", None, {"n": [1, 2]}])
async def test_ping_echoes_the_request_id(demo, msg_id):
    port = await demo(deterministic=True)
    async with connect(chat_url(port, "alice"), open_timeout=T) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "ping", "id": msg_id}))
        assert await recv_json(ws) == {"type": "pong", "id": msg_id}


async def test_subscribe_sends_a_burst_of_ticks(demo):
    port = await demo(deterministic=True)
    async with connect(chat_url(port, "alice"), open_timeout=T) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "subscribe", "sym": "BTC"}))
        ticks = [await recv_json(ws) for _ in range(3)]
        assert ticks == [{"type": "tick", "sym": "BTC", "price": p}
                         for p in (50000.0, 50000.5, 50001.0)]
        await ws.send(json.dumps({"type": "subscribe", "sym": "XYZ", "count": 1}))
        assert await recv_json(ws) == {"type": "tick", "sym": "XYZ", "price": 100.0}
        await ws.send(json.dumps({"type": "subscribe", "sym": "BTC", "count": 1000}))
        assert await recv_json(ws) == {"type": "error", "error": "count must be 0..100"}


@pytest.mark.parametrize(("sent", "error"), [
    ("not json", "invalid JSON"),
    ('{"type":"shout"}', "unknown message type 'shout'"),
    ('[1,2]', "unknown message type None"),
    (b"\x00\x01", "binary messages are not supported"),
])
async def test_bad_messages_get_an_error_and_the_chat_goes_on(demo, sent, error):
    port = await demo(deterministic=True)
    async with connect(chat_url(port, "alice"), open_timeout=T) as ws:
        await recv_json(ws)
        await ws.send(sent)
        assert await recv_json(ws) == {"type": "error", "error": error}
        await ws.send(json.dumps({"type": "ping", "id": 2}))
        assert await recv_json(ws) == {"type": "pong", "id": 2}


async def test_missing_user_refuses_the_upgrade(demo):
    port = await demo(deterministic=True)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=T):
            pass
    assert info.value.response.status_code == 400
    assert b"user" in info.value.response.body


async def test_live_mode_random_ids_real_time_and_heartbeat(demo):
    port = await demo(heartbeat=T / 50)
    async with connect(chat_url(port, "alice"), open_timeout=T) as ws:
        welcome = await recv_json(ws)
        assert uuid.UUID(welcome["id"]).version == 4
        await ws.send(json.dumps({"type": "say", "text": "x"}))
        said = None
        while said is None:  # heartbeats may come first; recv_json bounds every wait
            msg = await recv_json(ws)
            said = msg if msg["type"] == "said" else None
        assert abs(said["ts"] - time.time() * 1000) < 60_000
        assert uuid.UUID(said["id"]).version == 4
        assert await recv_json(ws) == {"type": "heartbeat"}


async def test_deterministic_mode_sends_no_heartbeat(demo):
    port = await demo(deterministic=True, heartbeat=T / 50)
    async with connect(chat_url(port, "alice"), open_timeout=T) as ws:
        await recv_json(ws)
        await asyncio.sleep(T / 10)  # five heartbeat periods, had the heartbeat been on
        await ws.send(json.dumps({"type": "ping", "id": 3}))
        assert await recv_json(ws) == {"type": "pong", "id": 3}


async def test_page_connects_with_the_browser_websocket(demo):
    port = await demo(deterministic=True)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
    assert "new WebSocket(" in page and "/chat?user=" in page


async def test_stopping_the_server_closes_chats_with_1001():
    runner, port = await start_demo_server(deterministic=True)
    try:
        async with connect(chat_url(port, "alice"), open_timeout=T) as ws:
            await recv_json(ws)
            await asyncio.wait_for(runner.cleanup(), T)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), T)
        assert info.value.rcvd.code == 1001
    finally:
        await runner.cleanup()


# --- the commands ------------------------------------------------------------------------------

async def test_demo_server_command_serves_until_sigterm(spawn, python_exe):
    proc = spawn([python_exe, "-m", "wsreplay", "demo-server", "--listen", "127.0.0.1:0",
                  "--deterministic"], cwd=ROOT)
    async with connect(chat_url(proc.port, "alice"), open_timeout=T) as ws:
        assert await recv_json(ws) == {"type": "welcome", "id": "u1", "user": "alice"}
        proc.popen.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), T)
    assert info.value.rcvd.code == 1001
    assert await proc.await_exit() == 0


def test_demo_server_command_reports_a_taken_port(spawn, python_exe):
    first = spawn([python_exe, "-m", "wsreplay", "demo-server", "--listen", "127.0.0.1:0"],
                  cwd=ROOT)
    second = spawn([python_exe, "-m", "wsreplay", "demo-server", "--listen",
                    f"127.0.0.1:{first.port}"], ready=False, cwd=ROOT)
    assert second.wait() == 2
    assert f"cannot listen on 127.0.0.1:{first.port}" in "\n".join(second.stderr_lines)


@pytest.mark.parametrize("listen", ["nope", "127.0.0.1:99999", "host:"])
def test_demo_server_command_rejects_a_bad_listen_address(listen, capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo-server", "--listen", listen])
    assert info.value.code == 2
    assert "--listen" in capsys.readouterr().err


def test_listen_address_forms():
    from wsreplay.commands.demo import parse_listen

    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
