"""Issue 12, secrets: with the default options no secret of any shape reaches any output -- the
recording, ``record -v``, ``dump``, the reports -- and the recording still replays against a
fresh server (which issues new tokens) and serves the unchanged client, the client's secrets
given through the environment.

The client is the ``websockets`` library; the server (aiohttp) checks every credential it is
given and issues fresh ones every run: a JWT and an opaque token the client must send back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import stat
from contextlib import asynccontextmanager

import orjson
import pytest
from aiohttp import WSMsgType, web
from websockets.asyncio.client import connect

from wsreplay.redact import scrub

from .conftest import T
from .faultkit import figure
from .record_helpers import aiohttp_peer


def jwt(subject: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(orjson.dumps({"sub": subject, "n": secrets.token_hex(4)}))
    sig = b64(hmac.new(b"k", f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


# The client's credentials, one of each kind the issue names.
CLIENT = {
    "path_key": "sk_live_" + secrets.token_hex(12),  # an API key in the URL path
    "x_api_key": "k-" + secrets.token_hex(8),  # X-Api-Key header
    "x_auth_token": secrets.token_urlsafe(12),  # X-Auth-Token header
    "auth": secrets.token_hex(6), "jwt": jwt("alice"), "sig": secrets.token_hex(10),
    "key": secrets.token_hex(5),  # ?auth= ?jwt= ?sig= ?key=
    "protocol": jwt("alice-ws"),  # Sec-WebSocket-Protocol: access_token, <JWT>
    "password": "pw-" + secrets.token_hex(6),  # in JSON and in a text frame
}
ENV = {  # the variables the recorder names them with
    "C1_PATH": CLIENT["path_key"], "C1_X_API_KEY": CLIENT["x_api_key"],
    "C1_X_AUTH_TOKEN": CLIENT["x_auth_token"], "C1_AUTH": CLIENT["auth"],
    "C1_JWT": CLIENT["jwt"], "C1_SIG": CLIENT["sig"], "C1_KEY": CLIENT["key"],
    "C1_PROTOCOL": CLIENT["protocol"], "C1_PASSWORD": CLIENT["password"],
}


class Server:
    """Checks every credential; issues a fresh JWT and opaque token per login."""

    def __init__(self, extra: dict | None = None):
        self.issued: list[str] = []
        self.extra = extra or {}  # added to the login answer: a server that changed

    async def handle(self, request: web.Request):
        q = request.query
        wanted = [request.path == f"/v1/{CLIENT['path_key']}/feed",
                  request.headers.get("X-Api-Key") == CLIENT["x_api_key"],
                  request.headers.get("X-Auth-Token") == CLIENT["x_auth_token"],
                  *(q.get(k) == CLIENT[k] for k in ("auth", "jwt", "sig", "key"))]
        if not all(wanted):
            return web.Response(status=401, text=f"credentials: {wanted}")
        ws = web.WebSocketResponse(protocols=("access_token",))
        await ws.prepare(request)
        access, token = jwt("alice"), secrets.token_urlsafe(16)
        self.issued += [access, token]
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            text = msg.data
            if text.startswith("{"):
                data = json.loads(text)
                if data.get("op") == "login" and data.get("password") == CLIENT["password"]:
                    await ws.send_str(orjson.dumps({"ok": True, "accessToken": access,
                                                    "token": token, **self.extra}).decode())
                elif data.get("op") == "whoami" and data.get("token") == token:
                    await ws.send_str('{"user":"alice"}')
                else:
                    await ws.send_str('{"error":"bad request"}')
            elif text == f"AUTH Bearer {access}":
                await ws.send_str("OK alice")
            elif text == f"LOGIN user=alice password={CLIENT['password']}":
                await ws.send_str("OK")
            else:
                await ws.send_str("ERROR")
        return ws


async def client(port: int) -> list[str]:
    """The app: its whole conversation; what it received."""
    url = (f"ws://127.0.0.1:{port}/v1/{CLIENT['path_key']}/feed?room=1&auth={CLIENT['auth']}"
           f"&jwt={CLIENT['jwt']}&sig={CLIENT['sig']}&key={CLIENT['key']}")
    got = []
    async with connect(url, subprotocols=["access_token", CLIENT["protocol"]],
                       additional_headers={"X-Api-Key": CLIENT["x_api_key"],
                                           "X-Auth-Token": CLIENT["x_auth_token"]},
                       open_timeout=T) as ws:
        assert ws.subprotocol == "access_token"
        await ws.send(orjson.dumps({"op": "login", "user": "alice",
                                    "password": CLIENT["password"]}).decode())
        login = json.loads(await ws.recv())
        got.append(login)
        await ws.send(f"AUTH Bearer {login['accessToken']}")
        got.append(await ws.recv())
        await ws.send(orjson.dumps({"op": "whoami", "token": login["token"]}).decode())
        got.append(await ws.recv())
        await ws.send(f"LOGIN user=alice password={CLIENT['password']}")
        got.append(await ws.recv())
    return got


@asynccontextmanager
async def serving(server: Server):
    async with aiohttp_peer(server.handle) as port:
        yield port


def leaks(text: str, values) -> list[str]:
    return [v for v in values if v in text]


async def test_no_secret_of_any_kind_reaches_any_output_and_the_recording_still_plays(
        spawn, python_exe, tmp_path):
    out = tmp_path / "secrets.wsr"
    first = Server()
    async with serving(first) as port:
        direct = await client(port)
        assert direct[1:] == ["OK alice", '{"user":"alice"}', "OK"]
        rec = spawn([python_exe, "-m", "wsreplay", "record", "--target",
                     f"ws://127.0.0.1:{port}", "--listen", "127.0.0.1:0", "--out", out, "-v"])
        got = await client(rec.port)
        assert got[1:] == direct[1:]
        await rec.await_line(lambda line: "(0 open)" in line)
        rec.popen.send_signal(2)
        assert await rec.await_exit() == 0
    every = [*CLIENT.values(), *first.issued]
    text = out.read_text()
    assert leaks(text, every) == [], text
    assert leaks("\n".join(rec.lines + rec.stderr_lines), every) == []
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    envs = sorted(line.split()[1] for line in text.splitlines() if line.startswith("env "))
    assert envs == sorted(ENV), text
    # the issued tokens are captures: the server's new ones are taken when replaying
    assert '"accessToken":"{{C1_ACCESSTOKEN = #string}}"' in text
    assert '"token":"{{C1_TOKEN = #string}}"' in text
    assert "c1 > text AUTH Bearer {{C1_ACCESSTOKEN}}" in text
    assert "protocol access_token {{C1_PROTOCOL}}" in text and "expect protocol access_token" \
        in text
    dump = spawn([python_exe, "-m", "wsreplay", "dump", out], ready=False)
    assert await dump.await_exit() == 0
    assert leaks("\n".join(dump.lines), every) == [] and dump.lines

    async with serving(Server()) as fresh:  # new tokens: the replay takes them
        replay = spawn([python_exe, "-m", "wsreplay", "replay", out, "--target",
                        f"ws://127.0.0.1:{fresh}", "--json", tmp_path / "replay.json"],
                       ready=False, env=ENV)
        assert await replay.await_exit(3 * T) == 0, replay.describe()
    mock = spawn([python_exe, "-m", "wsreplay", "serve", out, "--listen", "127.0.0.1:0",
                  "--once", "--json", tmp_path / "serve.json"], env=ENV)
    served = await client(mock.port)  # the unchanged app against the mock
    assert served[1:] == ["OK alice", '{"user":"alice"}', "OK"]
    assert await mock.await_exit(3 * T) == 0, mock.describe()
    outputs = 3
    for proc, report in ((replay, "replay.json"), (mock, "serve.json")):
        # what they print and report (the client's URL included) holds none
        shown = "\n".join(proc.lines + proc.stderr_lines) + (tmp_path / report).read_text()
        assert '"passed": true' in shown, shown
        assert leaks(shown, [*CLIENT.values(), *first.issued]) == [], shown
        outputs += 2
    figure("secrets in every shape", kinds=len(CLIENT) + 2, outputs=outputs, leaked=0,
           replay_passed=True, serve_passed=True)


async def test_a_failing_report_prints_no_secret_and_is_written_0600(spawn, python_exe, tmp_path):
    out = tmp_path / "secrets.wsr"
    async with serving(Server()) as port:
        rec = spawn([python_exe, "-m", "wsreplay", "record", "--target",
                     f"ws://127.0.0.1:{port}", "--listen", "127.0.0.1:0", "--out", out])
        await client(rec.port)
        await rec.await_line(lambda line: "(0 open)" in line)
        rec.popen.send_signal(2)
        assert await rec.await_exit() == 0
    changed = Server(extra={"v": 2})  # the login answer gains a field: the replay fails there
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    async with serving(changed) as port:
        replay = spawn([python_exe, "-m", "wsreplay", "replay", out, "--target",
                        f"ws://127.0.0.1:{port}", "--junit", junit, "--json", report],
                       ready=False, env=ENV)
        assert await replay.await_exit(3 * T) == 1
    shown = "\n".join(replay.lines + replay.stderr_lines)
    assert "received instead" in shown and '"v":2' in shown, shown
    every = [*CLIENT.values(), *changed.issued]
    for where, text in (("stdout", shown), ("junit", junit.read_text()),
                        ("json", report.read_text())):
        assert leaks(text, every) == [], (where, text)
        assert "redacted" in text, where  # (XML spells it &lt;redacted&gt;)
    for path in (junit, report):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keep_field_and_extra_names_adjust_the_lists():
    from wsreplay.payloads import json_template
    from wsreplay.redact import Redaction

    def name_for(key, value):
        return f"C1_{key.upper()}"
    source = '{"token":"t-1","pin":"1234","password":"p"}'
    assert json_template(source, name_for, Redaction()) == \
        '{"token":"{{C1_TOKEN}}","pin":"1234","password":"{{C1_PASSWORD}}"}'
    assert json_template(source, name_for, Redaction.build(fields=["pin"], keep=["token"])) == \
        '{"token":"t-1","pin":"{{C1_PIN}}","password":"{{C1_PASSWORD}}"}'
    assert json_template(source, name_for, Redaction(enabled=False)) == source


@pytest.mark.parametrize("text,kept", [
    ("Bearer authentication is described in RFC 6750", True),
    ("the token: is a word here", True),
    ('{"type":"say","text":"my password is long"}', True),
    ("AUTH Bearer abcdefgh12345678", False),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", False),
    ("CONNECT\nlogin:alice\npasscode:hunter2\n", False),
])
def test_scrub_masks_credentials_and_leaves_prose(text, kept):
    assert (scrub(text) == text) is kept


async def test_a_failed_set_cookie_comparison_does_not_print_the_live_cookie(
        spawn, python_exe, tmp_path):
    async def handle(request):
        ws = web.WebSocketResponse()
        ws.headers["Set-Cookie"] = "sid=LIVE-c00kie-value; Path=/"
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    scenario = tmp_path / "cookie.wsr"
    report = tmp_path / "r.json"
    async with aiohttp_peer(handle) as port:
        scenario.write_text(f"wsreplay 1\nconn c1 ws://127.0.0.1:{port}/\n"
                            "  expect header Set-Cookie: sid=recorded\n")
        replay = spawn([python_exe, "-m", "wsreplay", "replay", scenario, "--json", report],
                       ready=False)
        assert await replay.await_exit(3 * T) == 1
    shown = "\n".join(replay.lines + replay.stderr_lines) + report.read_text()
    assert "response header Set-Cookie: expected 'sid=recorded', got a value not shown" in shown
    assert "LIVE-c00kie" not in shown


def test_a_codec_frame_with_a_secret_is_written_redacted_even_when_not_byte_exact():
    """A MessagePack frame that would not encode back to the same bytes (an int spelled in
    more bytes than needed) is written as bytes -- unless it holds a secret: as hex the
    password would stand in the file, readable; it is written in its codec, redacted."""
    from wsreplay.payloads import codec_payload
    from wsreplay.redact import Redaction
    data = b"\x82\xa2op\xcd\x00\x05\xa8password\xa6hunter"  # {"op": 5 as uint16, ...}
    assert codec_payload(data) is None
    payload = codec_payload(data, name_for=lambda k, v: "C1_PASSWORD", redaction=Redaction())
    assert (payload.codec, payload.source) == ("msgpack", '{"op":5,"password":"{{C1_PASSWORD}}"}')
    plain = b"\x81\xa2op\xcd\x00\x05"  # nothing secret: stays bytes, exactly as sent
    assert codec_payload(plain, name_for=lambda k, v: "X", redaction=Redaction()) is None
