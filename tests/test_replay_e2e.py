"""The whole loop with real peers: record a session through the proxy against the sample
chat server, replay it, serve it, edit it, and break it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from wsreplay.demo_server import CountingSource, start_demo_server
from wsreplay.loader import load
from wsreplay.proxy import ProxyConfig, RecordingProxy
from wsreplay.recorder import Recorder
from wsreplay.replay import replay_scenario
from wsreplay.report import render_result
from wsreplay.serve import MockServer

from .conftest import T


async def chat_session(url: str) -> list[str]:
    """The client under test: two users chat, ping, subscribe; what they receive."""
    out = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/chat?user=alice") as alice:
            out.append(await alice.receive_str(timeout=T))
            async with session.ws_connect(url + "/chat?user=bob") as bob:
                out.append(await bob.receive_str(timeout=T))
                await alice.send_str(json.dumps({"type": "say", "text": "hi bob"}))
                out.append(await alice.receive_str(timeout=T))
                out.append(await bob.receive_str(timeout=T))
                await bob.send_str(json.dumps({"type": "ping", "id": 7}))
                out.append(await bob.receive_str(timeout=T))
            await alice.send_str(json.dumps({"type": "subscribe", "sym": "BTC", "count": 2}))
            out.append(await alice.receive_str(timeout=T))
            out.append(await alice.receive_str(timeout=T))
    return out


async def record(tmp_path: Path) -> tuple[Path, list[str]]:
    runner, port = await start_demo_server(deterministic=True)
    path = tmp_path / "chat.wsr"
    try:
        async with RecordingProxy(ProxyConfig(f"ws://127.0.0.1:{port}", port=0),
                                  Recorder(path)) as proxy:
            received = await chat_session(proxy.url)
    finally:
        await runner.cleanup()
    return path, received


async def replay_against(path: Path, **server) -> str:
    runner, port = await start_demo_server(**server)
    try:
        result = await replay_scenario(load(path), target=f"ws://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    return render_result(result) if not result.passed else "PASS"


async def test_a_recording_replays_unedited_and_serves_the_same_messages(tmp_path):
    path, received = await record(tmp_path)
    assert await replay_against(path, deterministic=True) == "PASS"
    server = MockServer([load(path)], once=True)
    await server.start()
    try:
        again = await chat_session(server.url)
        results = await server.wait_once(T)
    finally:
        await server.stop()
    assert again == received
    assert len(results) == 1 and results[0].passed, render_result(results[0])


class OffByOne(CountingSource):
    def price(self, sym: str, n: int) -> float:
        return super().price(sym, n) + (1 if n == 1 else 0)


async def test_a_server_changed_in_one_field_fails_naming_the_field_and_line(tmp_path):
    path, _ = await record(tmp_path)
    lines = path.read_text().splitlines()
    second_tick = [i + 1 for i, line in enumerate(lines) if '"type":"tick"' in line][1]
    report = await replay_against(path, source=OffByOne(), heartbeat=0)
    assert f"chat.wsr:{second_tick}: c1: the message differs at $.price: expected 50000.5, " \
           f"got 50001.5" in report
    assert "received instead:" in report


async def test_a_hand_edited_recording_passes_against_random_ids_and_timestamps(tmp_path):
    path, _ = await record(tmp_path)
    text = path.read_text()
    # the edits a person makes: capture server-issued ids, wildcard timestamps and prices
    text = text.replace('"id":"u1"', '"id":"{{alice = #string}}"', 1)
    text = text.replace('"id":"u2"', '"id":"#string"', 1)
    text = re.sub(r'"said","id":"m1"', '"said","id":"{{msg = #string}}"', text, count=1)
    text = text.replace('"said","id":"m1"', '"said","id":"{{msg}}"')
    text = re.sub(r'"ts":\d+', '"ts":"#number"', text)
    text = re.sub(r'"price":[\d.]+', '"price":"#number"', text)
    path.write_text(text)
    for _ in range(2):  # ids and timestamps differ on every run
        assert await replay_against(path, heartbeat=0) == "PASS"
    unedited, _ = await record(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)
    assert "expected \"u1\"" in await replay_against(unedited, heartbeat=0)
