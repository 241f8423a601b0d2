"""The example scenarios under scenarios/: each one checks clean, is already in canonical form,
and survives parse → write → parse; the demo-server ones replay against the real demo server."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wsreplay.parser import parse
from wsreplay.writer import write

from .conftest import T

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def _recorded(path: Path) -> bool:
    """Whether ``path`` is a recording (``wsreplay record``'s or the demo's, written into
    scenarios/ by default), not one of the examples: its header says by whom."""
    with path.open(encoding="utf-8", errors="replace") as file:
        return "by wsreplay record;" in file.readline() + file.readline()


EXAMPLES = sorted(p for p in SCENARIOS.rglob("*.wsr") if not _recorded(p))
IDS = [str(p.relative_to(SCENARIOS)) for p in EXAMPLES]
# The examples written for the built-in demo server (their headers say how to run them).
DEMO_EXAMPLES = ["chat-two-users.wsr", "price-ticker.wsr", "chat-repeat.wsr", "lib/login.wsr"]


def wsreplay(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsreplay", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=4 * T)


def test_there_are_enough_examples():
    names = {p.name for p in EXAMPLES}
    assert len(EXAMPLES) >= 5
    assert {"chat-two-users.wsr", "jsonrpc-echo-ids.wsr", "price-ticker.wsr",
            "binary-protocol.wsr", "refused-upgrade.wsr"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_checks_clean(path):
    done = wsreplay("check", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not even a warning
    assert done.stdout.startswith(f"{path}: ok (")


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_is_in_canonical_form(path):
    done = wsreplay("fmt", "--check", str(path))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_round_trips(path):
    text = path.read_text(encoding="utf-8")
    scenario = parse(text, str(path))
    assert write(scenario) == text
    assert parse(write(scenario)) == scenario


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_says_what_it_shows_and_how_to_run_it(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    header = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, "a header comment block right under `wsreplay 1`"
    assert "wsreplay replay" in "\n".join(header) or "wsreplay serve" in "\n".join(header)


@pytest.mark.skipif(importlib.util.find_spec("wsreplay.commands.replay") is None,
                    reason="the replay command is not written yet")
@pytest.mark.parametrize("name", DEMO_EXAMPLES)
@pytest.mark.parametrize("mode", ["--deterministic", "--heartbeat=0.05"])
def test_demo_example_replays_against_the_demo_server(spawn, name, mode):
    server = spawn([sys.executable, "-m", "wsreplay", "demo-server", "--listen", "127.0.0.1:0",
                    mode], cwd=ROOT)
    env = {**os.environ, "DEMO_URL": f"ws://127.0.0.1:{server.port}"}
    done = wsreplay("replay", str(SCENARIOS / name), env=env)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the mock examples, served to a real `websockets` client -------------------------------------


@pytest.fixture
def serve(spawn):
    """``serve(name, env=None) -> Proc``: ``wsreplay serve --once`` on a free port."""

    def start(name: str, env: dict | None = None):
        return spawn([sys.executable, "-m", "wsreplay", "serve", "--once", "--timing", "fast",
                      "--listen", "127.0.0.1:0", str(SCENARIOS / name)],
                     cwd=ROOT, env={**os.environ, **(env or {})})

    return start


async def test_jsonrpc_mock_echoes_whatever_ids_the_client_sends(serve):
    server = serve("jsonrpc-echo-ids.wsr")
    url = f"ws://127.0.0.1:{server.port}/rpc"
    async with asyncio.timeout(T), connect(url, subprotocols=["jsonrpc-2.0"]) as ws:
        assert ws.subprotocol == "jsonrpc-2.0"
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 41, "method": "auth.login",
                                  "params": {"user": "u", "password": "p"}}))
        assert json.loads(await ws.recv())["id"] == 41
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "math.sum",
                                  "params": {"values": [1, 2, 3.5]}}))
        assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "id": 42, "result": 6.5}
        assert "id" not in json.loads(await ws.recv())  # the notification
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "req-43", "method": "math.divide",
                                  "params": [1, 0]}))
        assert json.loads(await ws.recv())["id"] == "req-43"
    assert await server.await_exit() == 0, server.describe()


async def test_refused_upgrade_mock_answers_401_then_accepts_the_token(serve):
    server = serve("refused-upgrade.wsr", env={"API_TOKEN": "test-token"})
    url = f"ws://127.0.0.1:{server.port}/v1/stream"
    origin = {"Origin": "https://app.example.com"}
    challenges = []
    for headers in (origin, {**origin, "Authorization": "Bearer expired-demo-token"}):
        with pytest.raises(InvalidStatus) as refused:
            async with asyncio.timeout(T), connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
        challenges.append(refused.value.response.headers["WWW-Authenticate"])
    assert challenges[0] == 'Bearer realm="stream"'
    assert 'error="invalid_token"' in challenges[1]
    headers = {**origin, "Authorization": "Bearer test-token"}
    async with asyncio.timeout(T), connect(url + "?channel=orders", additional_headers=headers) as ws:
        assert ws.response.headers["X-Stream-Region"] == "eu-west"
        assert json.loads(await ws.recv()) == {"event": "ready", "channel": "orders"}
    assert await server.await_exit() == 0, server.describe()


async def test_binary_protocol_mock_plays_the_mqtt_broker(serve):
    server = serve("binary-protocol.wsr")
    frame = (SCENARIOS / "frames" / "publish-kitchen-temp.bin").read_bytes()
    url = f"ws://127.0.0.1:{server.port}/mqtt"
    # aiohttp with autoping off hands pings and pongs to us, so their order is ours to check.
    async with asyncio.timeout(T), aiohttp.ClientSession() as session, \
            session.ws_connect(url, protocols=["mqtt"], autoping=False) as ws:
        assert ws.protocol == "mqtt"

        async def recv(kind=aiohttp.WSMsgType.BINARY):
            msg = await ws.receive()
            assert msg.type is kind, msg
            return msg.data

        await ws.send_bytes(bytes.fromhex("101900044d5154540402003c000d7773722d73656e736f722d3031"))
        assert await recv() == bytes.fromhex("20020000")
        await ws.send_bytes(bytes.fromhex("82130001000e73656e736f72732f2b2f74656d7000"))
        assert await recv() == bytes.fromhex("9003000100")
        assert (await recv()).endswith(b'sensors/hall/temp{"c":19.0}')
        assert await recv() == frame
        await ws.send_bytes(base64.b64decode("MCQAHHNlbnNvcnMvd3NyLXNlbnNvci0wMS9zdGF0dXNvbmxpbmU="))
        await ws.send_bytes(bytes.fromhex("c000"))
        assert await recv() == bytes.fromhex("d000")
        await ws.ping(b"keepalive-1")
        assert await recv(aiohttp.WSMsgType.PONG) == b"keepalive-1"
        assert await recv(aiohttp.WSMsgType.PING) == bytes.fromhex("00ff")
        await ws.pong(bytes.fromhex("00ff"))
        await ws.send_bytes(bytes.fromhex("e000"))
        closing = await ws.receive()  # the broker closes first; aiohttp answers the close
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1000)
    assert await server.await_exit() == 0, server.describe()
