"""``wsreplay connect``: the console core (pure) and the command against real servers.

The command runs as a subprocess with piped stdin (``python -m wsreplay connect``) against an
aiohttp echo server and a ``websockets`` server, both in the test's event loop on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import websockets
from aiohttp import WSMsgType, web
from websockets.asyncio.server import serve

from .conftest import T
from wsreplay import console
from wsreplay import model as m
from wsreplay.messages import Kind, Message
from wsreplay.parser import parse
from wsreplay.recorder import Redaction
from wsreplay.writer import write

ROOT = Path(__file__).resolve().parent.parent
EVENT = r"^@\d+\.\d{3} c1 "


def event_line(rest: str):
    """A predicate: a history line ``@T c1 <rest>`` (rest matched exactly)."""
    pattern = re.compile(EVENT + re.escape(rest) + r"$")
    return lambda line: bool(pattern.match(line))


# --- the pure core -----------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("hello world", console.Send(Message.of_text("hello world"))),
    ("//etc/passwd", console.Send(Message.of_text("/etc/passwd"))),
    ("/text  two spaces", console.Send(Message.of_text(" two spaces"))),
    ("/text", console.Send(Message.of_text(""))),
    ('/json {"a": [1, 2]}', console.Send(Message.of_text('{"a": [1, 2]}'))),
    ("/hex 00 ff10", console.Send(Message.of_binary(b"\x00\xff\x10"))),
    ("/b64 AP8Q", console.Send(Message.of_binary(b"\x00\xff\x10"))),
    ("/ping", console.Send(Message.ping(b""))),
    ("/ping are you there", console.Send(Message.ping(b"are you there"))),
    ("/close", console.CloseConn(1000, None)),
    ("/close 4001", console.CloseConn(4001, None)),
    ("/close 4001 all done", console.CloseConn(4001, "all done")),
    ("/quit", console.CloseConn(1000, None)),
    ("/save out.wsr", console.Save("out.wsr")),
    ("/history", console.Show("history")),
    ("/HELP", console.Show("help")),
    ("   ", console.Nothing()),
])
def test_parse_input(line, expected):
    assert console.parse_input(line) == expected


@pytest.mark.parametrize("line, message", [
    ('/json {"a":', "bad JSON: unexpected end of data: line 1 column 6 (char 5); nothing sent"),
    ("/json", "/json needs a JSON value"),
    ("/hex 0g", "bad hex"),
    ("/b64 ***", "bad base64"),
    ("/ping " + "x" * 126, "a ping payload is at most 125 bytes"),
    ("/close 1005", "bad close code '1005'"),
    ("/close 5000", "bad close code '5000'"),
    ("/close abc", "bad close code 'abc'"),
    ("/close 1000 " + "r" * 124, "a close reason is at most 123 bytes"),
    ("/save", "/save needs a file name"),
    ("/quit now", "/quit takes no argument"),
    ("/sned hi", "unknown command /sned: /help lists them (/text /sned hi sends it as text)"),
])
def test_parse_input_refuses(line, message):
    action = console.parse_input(line)
    assert isinstance(action, console.Invalid)
    assert action.message.startswith(message)


def test_history_lines_use_the_scenario_notation_with_times():
    s = console.Session("ws://h/x")
    s.add(m.Side.CLIENT, Message.of_text("hi {{you}}"), 0.0004)
    s.add(m.Side.SERVER, Message.of_text('{"type":"tick","tag":"#x"}'), 1.2504)
    s.add(m.Side.SERVER, Message.of_text("{not json"), 1.3)
    s.add(m.Side.SERVER, Message.of_binary(b"\x00\xff"), 2)
    s.add(m.Side.SERVER, Message(Kind.TEXT, b"\xff"), 2)  # invalid UTF-8 stays bytes
    s.add(m.Side.CLIENT, Message.close(4001, "done"), 2.5)
    s.add(m.Side.SERVER, Message.close(None, None), 2.5)
    assert s.history() == [
        "@0.000 c1 > text hi {{'{{'}}you}}",
        '@1.250 c1 < json {"type":"tick","tag":"##x"}',
        "@1.300 c1 < text {not json",
        "@2.000 c1 < hex 00ff",
        "@2.000 c1 < hex ff",
        "@2.500 c1 > close 4001 done",
        "@2.500 c1 < close",
    ]


def test_scenario_redacts_secrets_and_parses_back():
    s = console.Session("ws://h/feed?room=1&token=abc123",
                        query=(("api_key", "k-999"), ("q", "{{x}}")),
                        headers=(("Authorization", "Bearer s3cret"), ("Cookie", "sid=77"),
                                 ("X-Trace", "t1")),
                        protocols=("v2", "v1"))
    s.opened("v2")
    s.add(m.Side.CLIENT, Message.of_text("hello"), 0.01)
    s.add(m.Side.SERVER, Message.of_text("hello"), 0.02)
    scenario = s.scenario()
    text = write(scenario)
    for secret in ("abc123", "k-999", "s3cret", "sid=77"):
        assert secret not in text
    assert text == (
        "wsreplay 1\n# saved by wsreplay connect\n"
        "env C1_TOKEN\nenv C1_API_KEY\nenv C1_AUTHORIZATION\nenv C1_COOKIE\n"
        "@0.000 conn c1 ws://h/feed?room=1\n"
        "  query token = {{C1_TOKEN}}\n  query api_key = {{C1_API_KEY}}\n"
        "  query q = {{'{{'}}x}}\n"
        "  header Authorization: {{C1_AUTHORIZATION}}\n  header Cookie: {{C1_COOKIE}}\n"
        "  header X-Trace: t1\n  protocol v2 v1\n  expect protocol v2\n"
        "@0.010 c1 > text hello\n@0.020 c1 < text hello\n")
    assert parse(text) == scenario


def test_scenario_redacts_a_bearer_token_subprotocol_as_the_recorder_does():
    token = "ZXlKaGJHY2lPaUpTVXpJMU5pSjkuc2VjcmV0"
    s = console.Session("ws://h/exec", protocols=(
        "v4.channel.k8s.io", f"base64url.bearer.authorization.k8s.io.{token}"))
    s.opened(f"base64url.bearer.authorization.k8s.io.{token}")
    text = write(s.scenario())
    assert token not in text
    assert ("env C1_PROTOCOL\n@0.000 conn c1 ws://h/exec\n  protocol v4.channel.k8s.io "
            "base64url.bearer.authorization.k8s.io.{{C1_PROTOCOL}}\n"
            "  expect protocol base64url.bearer.authorization.k8s.io.{{C1_PROTOCOL}}\n") in text
    assert parse(text) == s.scenario()
    kept = write(s.scenario(Redaction(enabled=False)))
    assert f"protocol v4.channel.k8s.io base64url.bearer.authorization.k8s.io.{token}" in kept


def test_scenario_without_redaction_keeps_values():
    s = console.Session("ws://h/?token=abc", headers=(("Authorization", "Bearer s3cret"),))
    s.refused(401, "Unauthorized")
    text = write(s.scenario(Redaction(enabled=False)))
    assert "ws://h/?token=abc" in text and "header Authorization: Bearer s3cret" in text
    assert "expect status 401" in text and "env " not in text


# --- real servers --------------------------------------------------------------------------------

class Seen:
    """What a test server saw: request headers, query, messages, the client's close."""

    def __init__(self):
        self.headers: dict[str, str] = {}
        self.query: list[tuple[str, str]] = []
        self.messages: list = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()


@pytest.fixture
async def echo_server():
    """An aiohttp echo server: ``(port, seen)``. ``/ws`` echoes (offers subprotocol
    ``chat``) and closes with 4000 on the text ``bye``; ``/deny`` answers 401."""
    seen = Seen()

    async def ws(request):
        resp = web.WebSocketResponse(protocols=("chat",))
        await resp.prepare(request)
        seen.headers = dict(request.headers)
        async for msg in resp:
            seen.messages.append(msg.data)
            if msg.type is WSMsgType.TEXT and msg.data == "bye":
                await resp.close(code=4000, message=b"server says bye")
            elif msg.type is WSMsgType.TEXT:
                await resp.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await resp.send_bytes(msg.data)
        seen.close_code = resp.close_code
        seen.closed.set()
        return resp

    async def deny(request):
        return web.Response(status=401, text="token expired, log in again\n")

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/deny", deny)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        await asyncio.wait_for(runner.cleanup(), T)


@pytest.fixture
async def ws_server():
    """A ``websockets`` server that records the request and the client's close: ``(port, seen)``;
    it never sends anything."""
    seen = Seen()

    async def handler(conn):
        seen.headers = dict(conn.request.headers.raw_items())
        seen.query = _query(conn.request.path)
        try:
            async for message in conn:
                seen.messages.append(message)
        except websockets.ConnectionClosed:  # a close code other than 1000/1001
            pass
        await conn.wait_closed()
        rcvd = conn.protocol.close_rcvd
        seen.close_code, seen.close_reason = (rcvd.code, rcvd.reason) if rcvd else (None, None)
        seen.closed.set()

    server = await serve(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), T)


def _query(path: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit
    return parse_qsl(urlsplit(path).query, keep_blank_values=True)


@pytest.fixture
def connect(spawn, python_exe):
    """A factory: ``connect(url, *options) -> Proc`` running ``wsreplay connect`` with piped
    stdin (stopped after the test)."""

    def start(url: str, *options: str):
        return spawn([python_exe, "-m", "wsreplay", "connect", url, *options],
                     ready=False, stdin=True, cwd=ROOT)

    return start


async def test_text_json_binary_and_ping_are_echoed_with_times(echo_server, connect):
    port, seen = echo_server
    proc = connect(f"ws://127.0.0.1:{port}/ws", "--protocol", "chat")
    await proc.await_line(lambda l: l == "# connected: status 101, protocol chat")
    proc.write("hello there")
    await proc.await_line(event_line("< text hello there"))
    proc.write('/json {"type":"tick","n":1}')
    await proc.await_line(event_line('< json {"type":"tick","n":1}'))
    proc.write("/hex 00ff10")
    await proc.await_line(event_line("< hex 00ff10"))
    proc.write("/ping are you there")
    await proc.await_line(event_line("< pong are you there"))
    proc.close_stdin()
    assert await proc.await_exit() == 0
    await asyncio.wait_for(seen.closed.wait(), T)
    assert seen.messages == ["hello there", '{"type":"tick","n":1}', b"\x00\xff\x10"]
    assert seen.close_code == 1000  # end of input closes with 1000
    events = [l for l in proc.lines if re.match(EVENT, l)]
    assert [re.sub(r"^@\S+ ", "", l) for l in events] == [
        "c1 > text hello there", "c1 < text hello there",
        'c1 > json {"type":"tick","n":1}', 'c1 < json {"type":"tick","n":1}',
        "c1 > hex 00ff10", "c1 < hex 00ff10", "c1 > ping are you there",
        "c1 < pong are you there", "c1 > close 1000", "c1 < close 1000"]
    times = [float(l[1:].split()[0]) for l in events]
    assert times == sorted(times) and times[-1] < T
    assert proc.lines[-1] == "# closed: 1000"


async def test_bad_json_is_refused_and_nothing_is_sent(echo_server, connect):
    port, seen = echo_server
    proc = connect(f"ws://127.0.0.1:{port}/ws")
    proc.write('/json {"type": "tick",')
    proc.write("after")
    await proc.await_line(event_line("< text after"))
    proc.close_stdin()
    assert await proc.await_exit() == 0
    assert seen.messages == ["after"]
    assert any("bad JSON" in l and "nothing sent" in l for l in proc.stderr_lines), \
        proc.describe()
    assert not any("tick" in l for l in proc.lines)


async def test_close_code_and_reason_reach_the_server(ws_server, connect):
    port, seen = ws_server
    proc = connect(f"ws://127.0.0.1:{port}/")
    proc.write("/close 4001 all done")
    assert await proc.await_exit() == 0  # exits once the closing handshake is over
    await asyncio.wait_for(seen.closed.wait(), T)
    assert (seen.close_code, seen.close_reason) == (4001, "all done")
    assert any(event_line("> close 4001 all done")(l) for l in proc.lines)
    assert any(event_line("< close 4001 all done")(l) for l in proc.lines), proc.describe()


async def test_headers_query_and_protocols_reach_the_server(ws_server, connect):
    port, seen = ws_server
    proc = connect(f"ws://127.0.0.1:{port}/feed?room=1", "--query", "user=al ice",
                   "--query", "n=2", "-H", "X-Token: abc 123", "-H", "Origin: http://example.test",
                   "--protocol", "v2.stream", "--protocol", "v1.stream")
    await proc.await_line(lambda l: l == "# connected: status 101, no protocol")
    proc.close_stdin()
    assert await proc.await_exit() == 0
    await asyncio.wait_for(seen.closed.wait(), T)
    assert seen.query == [("room", "1"), ("user", "al ice"), ("n", "2")]
    assert seen.headers["X-Token"] == "abc 123"
    assert seen.headers["Origin"] == "http://example.test"
    assert seen.headers["Sec-WebSocket-Protocol"] == "v2.stream,v1.stream"


async def test_refused_handshake_exits_1_showing_status_and_body(echo_server, connect):
    port, _ = echo_server
    proc = connect(f"ws://127.0.0.1:{port}/deny")
    assert await proc.await_exit() == 1
    assert "wsreplay connect: handshake refused: HTTP 401 Unauthorized" in proc.stderr_lines
    assert "token expired, log in again" in proc.stderr_lines


async def test_server_close_is_answered_and_shown(echo_server, connect):
    port, seen = echo_server
    proc = connect(f"ws://127.0.0.1:{port}/ws")
    proc.write("bye")  # stdin stays open: the server's close alone ends the console
    assert await proc.await_exit() == 0
    assert "# closed by the server: 4000 server says bye" in proc.lines
    assert any(event_line("< close 4000 server says bye")(l) for l in proc.lines)
    assert any(event_line("> close 4000")(l) for l in proc.lines), proc.describe()
    await asyncio.wait_for(seen.closed.wait(), T)
    assert seen.close_code == 4000


async def test_save_writes_a_checked_scenario_without_the_secret(echo_server, connect,
                                                                tmp_path):
    port, _ = echo_server
    secret = "Bearer tok-8f1e2d"
    path = tmp_path / "session.wsr"
    proc = connect(f"ws://127.0.0.1:{port}/ws", "-H", f"Authorization: {secret}",
                   "--query", "room=lobby")
    proc.write('/json {"op":"sub"}')
    await proc.await_line(event_line('< json {"op":"sub"}'))
    proc.write(f"/save {path}")
    await proc.await_line(lambda l: l == f"# saved 2 events to {path}")
    proc.write(f"/save {path}")  # its own file: may overwrite
    await proc.await_line(lambda l: l == f"# saved 2 events to {path}", start=0)
    proc.close_stdin()
    assert await proc.await_exit() == 0
    text = path.read_text()
    assert "tok-8f1e2d" not in text
    assert "env C1_AUTHORIZATION\n" in text
    assert "  header Authorization: {{C1_AUTHORIZATION}}\n" in text
    assert "  query room = lobby\n" in text
    assert re.search(r'\n@\d+\.\d{3} c1 > json \{"op":"sub"\}\n@\d+\.\d{3} c1 < json', text)
    assert path.stat().st_mode & 0o077 == 0
    check = subprocess.run([sys.executable, "-m", "wsreplay", "check", str(path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=6 * T)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok (2 events)" in check.stdout


async def test_save_refuses_to_overwrite_a_file_it_did_not_write(echo_server, connect, tmp_path):
    port, _ = echo_server
    path = tmp_path / "keep.wsr"
    path.write_text("precious\n")
    proc = connect(f"ws://127.0.0.1:{port}/ws")
    proc.write(f"/save {path}")
    proc.close_stdin()
    assert await proc.await_exit() == 0
    assert path.read_text() == "precious\n"
    assert any("not saved" in l and "exists" in l for l in proc.stderr_lines), proc.describe()


async def test_save_option_writes_at_exit_and_no_redact_keeps_the_value(echo_server, connect,
                                                                         tmp_path):
    port, _ = echo_server
    path = tmp_path / "all.wsr"
    proc = connect(f"ws://127.0.0.1:{port}/ws", "-H", "Authorization: Bearer visible",
                   "--save", str(path), "--no-redact")
    proc.write("one")
    proc.close_stdin()
    assert await proc.await_exit() == 0
    text = path.read_text()
    assert "  header Authorization: Bearer visible\n" in text and "env " not in text
    assert re.search(r"c1 > text one\n", text) and re.search(r"c1 < close 1000\n", text)


@pytest.mark.parametrize("args, message", [
    (["http://127.0.0.1:1/"], "URL must start with ws:// or wss://"),
    (["ws://127.0.0.1:1/", "--query", "novalue"], "--query takes KEY=VALUE"),
    (["ws://127.0.0.1:1/", "-H", "NoColon"], "-H takes 'Name: value'"),
])
def test_usage_errors_exit_2(args, message):
    done = subprocess.run([sys.executable, "-m", "wsreplay", "connect", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=6 * T, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert message in done.stderr


def test_save_redacts_messages_as_the_recorder_does():
    """Issue 12: one implementation: secrets in messages by name and by shape; a token the
    server issued is a capture, the client's use of it the same variable."""
    token = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9."
             "c2lnbmF0dXJlLW9mLXRoZS10b2tlbg")
    s = console.Session("ws://h/feed")
    s.opened(None)
    s.add(m.Side.CLIENT, Message.of_text('{"op":"login","password":"pw-77"}'), 0.01)
    s.add(m.Side.SERVER, Message.of_text('{"ok":true,"accessToken":"%s"}' % token), 0.02)
    s.add(m.Side.CLIENT, Message.of_text(f"AUTH Bearer {token}"), 0.03)
    text = write(s.scenario())
    assert "pw-77" not in text and token not in text
    assert "env C1_PASSWORD\n" in text and "env C1_ACCESSTOKEN" not in text
    assert '"accessToken":"{{C1_ACCESSTOKEN = #string}}"' in text
    assert "c1 > text AUTH Bearer {{C1_ACCESSTOKEN}}" in text
    assert parse(text) == s.scenario()
    assert "pw-77" in write(s.scenario(Redaction(enabled=False)))
    # the history shown while working is the user's own: not redacted
    assert any("pw-77" in line for line in s.history())
