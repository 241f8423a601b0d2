"""``wsreplay demo``: record, replay and serve the sample chat, end to end, in one command.

1. The built-in sample server (:mod:`wsreplay.demo_server`) starts on 127.0.0.1, issuing fresh
   UUIDs and stamping the real time as a real server does; a recording proxy is put in front.
2. A scripted client session -- two users chatting, a JSON-RPC style ping, a ticker burst --
   goes through the proxy; the scenario is written to a file and generalized as ``wsreplay
   record`` does (the server's ids become captures, its times markers).
3. The recording is replayed against a fresh sample server (new ids, a later clock): it must
   pass with no edits.
4. The recording is served as a mock, and the same scripted client talks to the mock: it must
   receive exactly what the real server sent it, and the mock must see what it expected.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import aiohttp
import orjson

from .commands.generalize import generalize_file, summarize
from .demo_server import LiveSource, start_demo_server
from .loader import load
from .proxy import ProxyConfig, RecordingProxy
from .recorder import Recorder
from .replay import replay_scenario
from .report import render_result
from .serve import MockServer

STEP_TIMEOUT = 5.0


async def _next(ws: aiohttp.ClientWebSocketResponse, want: str) -> dict:
    """The next JSON message of type ``want`` (the script waits for each answer, so the
    recording's order is the conversation's order)."""
    msg = await ws.receive(timeout=STEP_TIMEOUT)
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise RuntimeError(f"expected a {want!r} message, got {msg.type.name}")
    data = orjson.loads(msg.data)
    if data.get("type") != want:
        raise RuntimeError(f"expected a {want!r} message, got {msg.data}")
    return data


async def scripted_session(url: str) -> list[str]:
    """The demo's client: alice and bob chat on ``url`` (``ws://host:port``). Returns every
    message the two received, in order, as ``user: text`` lines."""
    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        alice = await session.ws_connect(f"{url}/chat?user=alice", autoping=False)
        seen.append("alice: " + orjson.dumps(await _next(alice, "welcome")).decode())
        bob = await session.ws_connect(f"{url}/chat?user=bob", autoping=False)
        seen.append("bob: " + orjson.dumps(await _next(bob, "welcome")).decode())
        await alice.send_str('{"type":"say","text":"hi bob!"}')
        for name, ws in (("alice", alice), ("bob", bob)):
            seen.append(f"{name}: " + orjson.dumps(await _next(ws, "said")).decode())
        await bob.send_str('{"type":"ping","id":42}')
        seen.append("bob: " + orjson.dumps(await _next(bob, "pong")).decode())
        await alice.send_str('{"type":"subscribe","sym":"BTC","count":3}')
        for _ in range(3):
            seen.append("alice: " + orjson.dumps(await _next(alice, "tick")).decode())
        for ws in (bob, alice):
            await ws.close(code=1000, message=b"bye")
    return seen


async def run(out_dir: Path, say: Callable[[str], None] = print) -> bool:
    """The whole demo; ``say`` prints each step. True when replay and serve both passed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"demo-chat-{stamp}.wsr"

    say("1. starting the sample chat server (fresh ids and times each run) and a recording "
        "proxy")
    runner, port = await start_demo_server("127.0.0.1", 0, source=LiveSource(steady=True),
                                           heartbeat=0)
    server_url = f"ws://127.0.0.1:{port}"
    recorder = Recorder(path, source=server_url)
    proxy = RecordingProxy(ProxyConfig(target=server_url, port=0), recorder)
    await proxy.start()
    say(f"   server {server_url}, proxy {proxy.url}")
    try:
        say("2. a scripted client session (alice and bob chat) goes through the proxy")
        recorded = await scripted_session(proxy.url)
        summary = await proxy.stop()
    finally:
        await proxy.stop()
        await runner.cleanup()
    say(f"   recorded {summary.connections} connections, {summary.messages} messages "
        f"into {path}")
    notes = generalize_file(path)
    say(f"   generalized {len(notes)} values, so it replays against a fresh server:")
    for line in summarize(notes):
        say("     " + line.replace(f"{path}:", "line "))

    say("3. replaying the recording against a fresh sample server (new ids, a later clock)")
    scenario = load(path)
    runner, port = await start_demo_server("127.0.0.1", 0, source=LiveSource(steady=True),
                                           heartbeat=0)
    try:
        result = await replay_scenario(scenario, f"ws://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    say(_indent(render_result(result)))

    say("4. serving the recording as a mock; the same client talks to it")
    mock = MockServer([scenario], once=True)
    await mock.start()
    try:
        served = await scripted_session(mock.url)
        mock_results = await mock.wait_once(timeout=STEP_TIMEOUT)
    finally:
        await mock.stop()
    same = served == recorded
    say(f"   the client received {len(served)} messages from the mock, "
        f"{'the same as' if same else 'NOT the same as'} from the real server")
    for mock_result in mock_results:
        say(_indent(render_result(mock_result)))

    ok = result.passed and same and all(r.passed for r in mock_results)
    say("")
    say("demo " + ("passed" if ok else "FAILED") + f"; the scenario is {path}")
    say("try next:")
    say(f"  wsreplay check {path}")
    say("  wsreplay demo-server                      # the sample server on 127.0.0.1:8765")
    say(f"  wsreplay replay {path} --target ws://127.0.0.1:8765")
    say(f"  wsreplay serve {path} --listen 127.0.0.1:9000")
    say("  wsreplay record --target ws://127.0.0.1:8765 --listen 127.0.0.1:9001")
    say("  wsreplay connect ws://127.0.0.1:8765/chat?user=me")
    return ok


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
