"""``wsreplay record`` safe by default (issue 12): the Host it answers, the target's prefix as a
boundary, errors under ``-q``, a deadline for handshakes, and descriptors.

Real sockets, ephemeral ports, every wait bounded by ``T``. ``record`` runs in its own process
(under a lowered open-file limit where the test says so: :func:`nofile_limited`); its upstream is
tests/fault_upstream.py (echo), an aiohttp peer, or a raw TCP server that keeps the request
lines exactly as they arrived (:class:`RawUpstream`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import resource
import socket
import ssl
import sys
import time

import aiohttp
import pytest
from aiohttp import web

from wsreplay import fdlimit
from wsreplay.guard import HostPolicy, OutsidePrefix, upstream_path

from .conftest import TESTS, T, free_port, missing
from .faultkit import RawClient, figure, open_fds, record_args
from .hostilekit import self_signed
from .record_helpers import aiohttp_peer

KEY = base64.b64encode(b"wsreplay safety!").decode()


def upgrade(path: str, host: str | None, version: str = "1.1") -> bytes:
    """An upgrade request for ``path`` with this ``Host`` (None: no Host header)."""
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return (f"GET {path} HTTP/{version}\r\n{host_line}Upgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\n\r\n").encode()


def plain_get(path: str, host: str | None, version: str = "1.1") -> bytes:
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {path} HTTP/{version}\r\n{host_line}Connection: close\r\n\r\n".encode()


async def ask(port: int, request: bytes, timeout: float = T) -> tuple[int, bytes]:
    """Send ``request`` on a new connection; the status and the bytes read until the head
    ends and the body (by Content-Length) is in, or the connection ends."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
        return int(head.split(b" ", 2)[1]), head + body
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def nofile_limited(args: list, soft: int, hard: int | None = None) -> list:
    """``args`` run with RLIMIT_NOFILE = (``soft``, ``hard``); ``hard`` None keeps the hard
    limit this process has."""
    hard_text = "resource.getrlimit(resource.RLIMIT_NOFILE)[1]" if hard is None else str(hard)
    code = ("import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard_text})); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", code, *map(str, args)]


def limits_of(pid: int) -> tuple[int, int]:
    """The soft and hard open-file limits of process ``pid`` (/proc/PID/limits)."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-file limit listed")


async def stderr_line(proc, pred, timeout: float = T) -> str:
    """The first stderr line of ``proc`` for which ``pred`` is true (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = next((line for line in list(proc.stderr_lines) if pred(line)), None)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no such stderr line within {timeout:.1f}s\n{proc.describe()}")
        await asyncio.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat", encoding="ascii").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def many_descriptors():
    """This test process may open a few thousand descriptors (its own soft limit raised to
    the hard limit for the test); skipped where even the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open-file limit is {hard}: the test needs 4,096")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def echo_upstream(spawn, python_exe):
    return spawn([python_exe, TESTS / "fault_upstream.py"])


async def echo_once(port: int, text: str = "hi", timeout: float = T) -> float:
    """Seconds a fresh client takes to connect through ``port`` and get its echo back."""
    start = time.monotonic()
    client = await RawClient.connect(port, "/echo", timeout=timeout)
    try:
        client.send_text(text)
        got = await client.events(timeout, count=1)
        assert [e.data for e in got if hasattr(e, "data")] == [text]
    finally:
        await client.aclose()
    return time.monotonic() - start


# --- the pure checks ---------------------------------------------------------------------

@pytest.mark.parametrize("raw,forwarded", [
    ("/", "/"), ("/x", "/x"), ("/x?a=/../..", "/x?a=/../.."), ("/a/../b", "/b"),
    ("/./x", "/x"), ("/a/b/..", "/a/"), ("/a/%2e%2E/b", "/b"), ("/a//../b", "/a/b"),
    ("/.../x", "/.../x"), ("/..a/x", "/..a/x"), ("/a/..;x/b", "/a/..;x/b"),
    ("/a/b%2f..", "/a/b%2f.."), ("/caf%C3%A9/./x", "/caf%C3%A9/x")])
def test_dot_segments_are_resolved_and_every_other_byte_kept(raw, forwarded):
    assert upstream_path(raw) == forwarded


CLIMBING = ["/..", "/../admin", "/%2e%2e/admin", "/%2E./admin", "/.%2e/admin", "/a/../../admin",
            "/..%2fadmin", "/..%2Fadmin", "/..\\admin", "/..%5cadmin", "/a\\..\\..\\admin",
            "/..;/admin", "/..;jsessionid=1/admin", "//../admin", "/a/b%2f..%2f..%2f../admin",
            "/./../admin"]


@pytest.mark.parametrize("raw", CLIMBING)
def test_a_path_that_climbs_out_in_any_spelling_is_refused(raw):
    with pytest.raises(OutsidePrefix, match="leaves the target's prefix"):
        upstream_path(raw)


@pytest.mark.parametrize("listen,host,allowed", [
    ("127.0.0.1", "127.0.0.1:8765", True), ("127.0.0.1", "localhost:8765", True),
    ("127.0.0.1", "LocalHost.:8765", True), ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "[::1]:8765", False), ("127.0.0.1", "localhost:9999", False),
    ("127.0.0.1", "evil.test:8765", False), ("127.0.0.1", "evil.test", False),
    ("127.0.0.1", "127.0.0.1.evil.test:8765", False), ("127.0.0.1", "", False),
    ("127.0.0.1", "a:b:c", False), ("::1", "[::1]:8765", True),
    ("::1", "[0:0:0:0:0:0:0:1]:8765", True), ("::1", "127.0.0.1:8765", False),
    ("localhost", "[::1]:8765", True), ("0.0.0.0", "127.0.0.1:8765", True),
    ("0.0.0.0", "192.168.1.5:8765", False), ("192.168.1.5", "192.168.1.5:8765", True),
    ("192.168.1.5", "localhost:8765", False)])
def test_the_hosts_answered_are_the_listen_address_names(listen, host, allowed):
    assert HostPolicy.build(listen, 8765).allows(host) is allowed


def test_allow_host_adds_names_with_or_without_a_port():
    policy = HostPolicy.build("127.0.0.1", 8765, ("app.test", "other.test:9000"))
    assert policy.allows("app.test:1234") and policy.allows("APP.test")
    assert policy.allows("other.test:9000") and not policy.allows("other.test:9001")
    assert not policy.allows("evil.test:8765")
    assert HostPolicy.build("127.0.0.1", 8765, ("*",)).allows("evil.test:8765")
    with pytest.raises(ValueError, match="--allow-host a:b:c"):
        HostPolicy.build("127.0.0.1", 8765, ("a:b:c",))


@pytest.mark.parametrize("host", ["\udc80", "caf\u00e9.test", "a b", "x\x00y", "[::1", "h:99999"])
def test_a_malformed_host_is_refused_and_shown_escaped(host):
    policy = HostPolicy.build("127.0.0.1", 8765)
    assert not policy.allows(host)
    body = policy.refusal(host)
    assert body.isascii() and "--allow-host HOST:PORT" in body
    body.encode("utf-8")  # a lone surrogate (a byte that was not UTF-8) would raise here


def test_a_missing_host_is_allowed_in_http_1_0_only():
    policy = HostPolicy.build("127.0.0.1", 8765)
    assert policy.allows(None, http10=True) and not policy.allows(None)


def test_the_limit_warning_says_how_many_connections_fit():
    low = fdlimit.Limit(before=1024, after=1024, hard=1024)
    line = fdlimit.warning("wsreplay record", low, per_connection=2)
    assert "at most 1,024 open files" in line and "about 480 connections" in line
    assert "at least 2,064" in line
    assert fdlimit.warning("wsreplay serve", fdlimit.Limit(1024, 4096, 4096), 1) is None
    raised = fdlimit.warning("wsreplay record", fdlimit.Limit(256, 1024, 1024), 2)
    assert "(raised from 256)" in raised


# --- Host -------------------------------------------------------------------------------

async def test_a_request_for_another_host_is_refused_unless_allowed(spawn, python_exe, tmp_path):
    seen: list[str] = []

    async def upstream(request: web.Request):
        seen.append(request.path_qs)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text="page")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    async with aiohttp_peer(upstream) as port:
        rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out",
                                tmp_path / "h.wsr", "--allow-host", "app.test",
                                "--allow-host", "other.test:9000"))
        own = rec.port
        answers = {}
        for name, request in {
            "ip": upgrade("/ip", f"127.0.0.1:{own}"),
            "localhost": upgrade("/localhost", f"localhost:{own}"),
            "no port": upgrade("/noport", "127.0.0.1"),
            "rebinding": upgrade("/rebinding", f"evil.test:{own}"),
            "rebinding again": upgrade("/rebinding", f"evil.test:{own}"),
            "rebinding page": plain_get("/page", f"evil.test:{own}"),
            "wrong port": upgrade("/wrongport", "localhost:1"),
            "allowed": upgrade("/allowed", "app.test:80"),
            "allowed port": upgrade("/allowedport", "other.test:9000"),
            "other port": upgrade("/otherport", "other.test:9001"),
            "http/1.0, no Host": plain_get("/old", None, "1.0"),
            "http/1.1, no Host": plain_get("/nohost", None),
        }.items():
            answers[name] = await ask(own, request)
        rec.popen.send_signal(2)
        assert await rec.await_exit() == 0
    statuses = {name: status for name, (status, _) in answers.items()}
    assert statuses == {
        "ip": 101, "localhost": 101, "no port": 101, "rebinding": 403, "rebinding again": 403,
        "rebinding page": 403, "wrong port": 403, "allowed": 101, "allowed port": 101,
        "other port": 403, "http/1.0, no Host": 200, "http/1.1, no Host": 400}
    body = answers["rebinding"][1].decode()
    assert f"--allow-host evil.test:{own}" in body and "DNS name" in body
    assert f"127.0.0.1:{own}" in body  # what it does answer
    assert seen == ["/ip", "/localhost", "/noport", "/allowed", "/allowedport", "/old"]
    refusals = [line for line in rec.stderr_lines if "refused a request for Host" in line]
    assert len(refusals) == 3, rec.describe()  # once per Host value, on stderr
    assert f"'evil.test:{own}'" in refusals[0] and f"--allow-host evil.test:{own}" in refusals[0]


# --- the prefix as a boundary ----------------------------------------------------------------

class RawUpstream:
    """A TCP server that keeps each request line exactly as it arrived and answers an upgrade
    with a 101 (then closes), anything else with a 200."""

    def __init__(self):
        self.lines: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def _serve(self, reader, writer):
        with contextlib.suppress(Exception):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
            self.lines.append(head.split(b"\r\n", 1)[0])
            key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                        if line.lower().startswith(b"sec-websocket-key:")), None)
            if key is not None:
                accept = base64.b64encode(hashlib.sha1(
                    key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                             + b"\r\n\r\n" + b"\x88\x02\x03\xe8")  # then close 1000
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_a_path_leaving_the_prefix_gets_400_and_never_reaches_the_upstream(
        spawn, python_exe, tmp_path):
    upstream = RawUpstream()
    async with upstream as port:
        rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}/tenantA", "--out",
                                tmp_path / "p.wsr"))
        host = f"127.0.0.1:{rec.port}"
        refused = {}
        for path in CLIMBING:
            for kind, request in (("upgrade", upgrade(path, host)), ("get", plain_get(path, host))):
                refused[(path, kind)] = await ask(rec.port, request)
        inside = {"/a/../b": "/tenantA/b", "/x/./y": "/tenantA/x/y", "/ok": "/tenantA/ok",
                  "/x?next=/../../admin": "/tenantA/x?next=/../../admin",
                  "/a/%2e%2e/c": "/tenantA/c", "/a/b/..": "/tenantA/a/"}
        forwarded = {}
        for path in inside:
            forwarded[path] = [(await ask(rec.port, upgrade(path, host)))[0],
                               (await ask(rec.port, plain_get(path, host)))[0]]
        rec.popen.send_signal(2)
        assert await rec.await_exit() == 0
    assert {key: status for key, (status, _) in refused.items()} == {key: 400 for key in refused}
    assert all(b"leaves the target's prefix" in answer for _, answer in refused.values())
    assert forwarded == {path: [101, 200] for path in inside}
    expected = [f"GET {inside[path]} HTTP/1.1".encode() for path in inside for _ in (1, 2)]
    assert upstream.lines == expected  # the climbing ones never arrived, in any spelling
    assert not any(b"admin" in line.split(b"?")[0] for line in upstream.lines)
    log = "\n".join(rec.lines)
    assert log.count("leaves the target's prefix") == 2 * len(CLIMBING)


# --- errors under -q ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    import shutil
    if shutil.which("openssl") is None:
        missing("openssl is not installed (it makes the test certificate)")
    return self_signed(tmp_path_factory.mktemp("certs"), "localhost")


async def until_listening(port: int, proc) -> None:
    """Wait (bounded) until ``port`` accepts a connection (``-q`` prints no ready line)."""
    deadline = time.monotonic() + T
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=T / 10):
                return
        except OSError:
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise AssertionError(f"not listening on {port}\n{proc.describe()}")
            await asyncio.sleep(0.02)


async def test_record_q_still_prints_an_upstream_tls_failure(spawn, python_exe, tmp_path,
                                                            certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def upstream(request: web.Request):
        return web.Response(text="never reached")

    async with aiohttp_peer(upstream, ssl_context=context) as port:
        listen = free_port()
        rec = spawn([python_exe, "-m", "wsreplay", "record", "--target",
                     f"wss://localhost:{port}", "--listen", f"127.0.0.1:{listen}", "--out",
                     tmp_path / "tls.wsr", "-q"], ready=False)
        await until_listening(listen, rec)
        ws_status, _ = await ask(listen, upgrade("/feed", f"127.0.0.1:{listen}"))
        get_status, _ = await ask(listen, plain_get("/page", f"127.0.0.1:{listen}"))
        rec.popen.send_signal(2)
        assert await rec.await_exit() == 0
    assert (ws_status, get_status) == (502, 502)
    assert rec.lines == []  # -q: no chatter
    errors = [line for line in rec.stderr_lines if "upstream failed" in line]
    assert len(errors) == 2, rec.describe()
    assert all("certificate verify failed" in line for line in errors), errors
    assert errors[0].startswith("wsreplay record: c1 not opened: upstream failed: ")
    assert errors[1].startswith("wsreplay record: GET /page: upstream failed: ")


# --- the handshake deadline ------------------------------------------------------------------

async def test_a_handshake_too_slow_gets_408_and_a_prompt_one_is_served(spawn, python_exe,
                                                                         tmp_path):
    upstream = echo_upstream(spawn, python_exe)
    rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{upstream.port}", "--out",
                            tmp_path / "t.wsr", "--handshake-timeout", "600ms"))
    request = upgrade("/echo", f"127.0.0.1:{rec.port}")
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", rec.port)
    writer.write(request[:20])  # and nothing more
    answer = await asyncio.wait_for(reader.read(), T)
    took = time.monotonic() - start
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"--handshake-timeout" in answer
    assert 0.55 <= took < 0.6 + T / 5, took
    # slow but in time: half the request, a pause shorter than the deadline, the rest
    reader, writer = await asyncio.open_connection("127.0.0.1", rec.port)
    writer.write(request[:30])
    await asyncio.sleep(0.3)
    writer.write(request[30:])
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    assert head.startswith(b"HTTP/1.1 101 ")
    await asyncio.sleep(0.6)  # past the deadline: an open WebSocket is never timed out
    writer.write(b"\x81\x82\x00\x00\x00\x00ok")  # a masked text frame "ok"
    assert await asyncio.wait_for(reader.readexactly(4), T) == b"\x81\x02ok"
    writer.close()
    await rec.await_line(lambda line: "closed 1 client with 408" in line)


# --- descriptors ------------------------------------------------------------------------------

SLOW = 1_100


async def slow_handshakes(port: int, count: int) -> tuple[list, asyncio.Task, dict]:
    """``count`` connections that send their upgrade request one byte a second; the
    connections, the task trickling the bytes, and a dict counting how each ended (the
    status line of the answer, or "closed" with none)."""
    request = upgrade("/echo", f"127.0.0.1:{port}")
    ended: dict[str, int] = {}
    conns = []

    async def watch(reader):
        try:
            answer = await reader.read(64)
        except OSError:
            answer = b""
        what = answer.split(b"\r\n", 1)[0].decode() or "closed"
        ended[what] = ended.get(what, 0) + 1

    for _ in range(count):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), T)
        writer.write(request[:1])
        conns.append((writer, asyncio.ensure_future(watch(reader))))

    async def trickle():
        for i in range(1, len(request)):
            await asyncio.sleep(1)
            for writer, watcher in conns:
                if not watcher.done():
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.write(request[i:i + 1])

    return conns, asyncio.ensure_future(trickle()), ended


def close_all(conns, trickler) -> None:
    trickler.cancel()
    for writer, watcher in conns:
        watcher.cancel()
        writer.close()


async def test_slowloris_under_1024_descriptors_never_locks_a_client_out(
        spawn, python_exe, tmp_path, many_descriptors):
    upstream = echo_upstream(spawn, python_exe)
    rec = spawn(nofile_limited(record_args(python_exe, f"ws://127.0.0.1:{upstream.port}",
                                           "--out", tmp_path / "s.wsr"), 1024, 1024))
    assert limits_of(rec.popen.pid) == (1024, 1024)
    assert await echo_once(rec.port) < 2
    cpu_before, started = cpu_seconds(rec.popen.pid), time.monotonic()
    conns, trickler, ended = await slow_handshakes(rec.port, SLOW)
    try:
        opened = time.monotonic() - started
        waits = []
        for at in (0.5, 2.5, 4.5):  # into the attack, before the 5 s deadline frees anything
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            waits.append(await echo_once(rec.port))
        peak = open_fds(rec.popen.pid)
        # every slow handshake ends: closed to make room (503) or at the deadline (408)
        deadline = time.monotonic() + 5 + T
        while sum(ended.values()) < SLOW and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        took = time.monotonic() - started
        cpu = cpu_seconds(rec.popen.pid) - cpu_before
    finally:
        close_all(conns, trickler)
    assert max(waits) < 2, waits
    assert sum(ended.values()) == SLOW, ended
    assert set(ended) <= {"HTTP/1.1 503 Service Unavailable", "HTTP/1.1 408 Request Timeout"}
    assert ended.get("HTTP/1.1 408 Request Timeout", 0) > 0, ended
    assert cpu < took / 2, (cpu, took)  # no busy loop while the descriptors ran out
    assert await echo_once(rec.port) < 2
    await rec.await_line(lambda line: "with 408: no complete request head within 5s" in line)
    err = "\n".join(rec.stderr_lines)
    assert "out of file descriptors (the limit is 1,024 open files)" in err, rec.describe()
    assert "Traceback" not in err
    figure("record: slowloris", slow_handshakes=SLOW, soft_limit=1024, hard_limit=1024,
           opened_in=round(opened, 2), normal_client_seconds=[round(w, 3) for w in waits],
           closed_503=ended.get("HTTP/1.1 503 Service Unavailable", 0),
           closed_408=ended.get("HTTP/1.1 408 Request Timeout", 0), peak_fds=peak,
           cpu_seconds=round(cpu, 2), wall_seconds=round(took, 2))


async def open_websockets(port: int, count: int) -> tuple[list[RawClient], list[int]]:
    """Up to ``count`` WebSocket connections through ``port``, opened 50 at a time; the
    clients that got their 101, and the statuses of those refused."""
    clients, refused = [], []
    for start in range(0, count, 50):
        results = await asyncio.gather(
            *(RawClient.connect(port, f"/echo?n={i}", timeout=2 * T)
              for i in range(start, min(count, start + 50))), return_exceptions=True)
        for result in results:
            if isinstance(result, RawClient):
                clients.append(result)
            elif isinstance(result, ConnectionError) and str(result).startswith("refused: "):
                refused.append(int(str(result).split(": ")[1]))
            else:
                raise result
    return clients, refused


async def echo_all(clients: list[RawClient]) -> int:
    """How many of ``clients`` get their own message back."""
    async def one(i, client):
        client.send_text(f"m{i}")
        got = await client.events(2 * T, count=1)
        return [e.data for e in got if hasattr(e, "data")] == [f"m{i}"]
    return sum(await asyncio.gather(*(one(i, c) for i, c in enumerate(clients))))


async def test_1000_connections_at_a_1024_soft_limit(spawn, python_exe, tmp_path,
                                                    many_descriptors):
    """The common case: soft limit 1,024, a higher hard limit. record raises its soft limit,
    and 1,000 real connections through it (2,000 descriptors) all work."""
    upstream = echo_upstream(spawn, python_exe)
    rec = spawn(nofile_limited(record_args(python_exe, f"ws://127.0.0.1:{upstream.port}",
                                           "--out", tmp_path / "k.wsr"), 1024))
    soft, hard = limits_of(rec.popen.pid)
    if hard < 2 * 1000 + fdlimit.RESERVE:
        pytest.skip(f"the hard open-file limit is {hard}")
    assert soft == hard  # raised from 1,024
    started = time.monotonic()
    clients, refused = await open_websockets(rec.port, 1000)
    try:
        opened = time.monotonic() - started
        fds = open_fds(rec.popen.pid)
        echoed = await echo_all(clients)
        took = time.monotonic() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert (len(clients), refused, echoed) == (1000, [], 1000)
    assert not any("warning" in line for line in rec.stderr_lines), rec.describe()
    figure("record: 1,000 connections at 1,024 descriptors", soft_limit_given=1024,
           raised_to=soft, connections=len(clients), echoed=echoed, record_fds=fds,
           opened_in=round(opened, 2), seconds=round(took, 2))


async def test_at_a_hard_limit_of_1024_the_client_beyond_capacity_gets_503(
        spawn, python_exe, tmp_path, many_descriptors):
    """Soft and hard limit 1,024: record says at start how many connections fit, serves that
    many, refuses the next with 503 saying why, and serves again once some have gone."""
    upstream = echo_upstream(spawn, python_exe)
    rec = spawn(nofile_limited(record_args(python_exe, f"ws://127.0.0.1:{upstream.port}",
                                           "--out", tmp_path / "c.wsr"), 1024, 1024))
    warning = await stderr_line(rec, lambda line: "open files" in line)
    assert "at most 1,024 open files, room for about 480 connections" in warning
    clients, refused = await open_websockets(rec.port, 600)
    try:
        served, fds = len(clients), open_fds(rec.popen.pid)
        echoed = await echo_all(clients)
        status, answer = await ask(rec.port, upgrade("/echo", f"127.0.0.1:{rec.port}"))
        for client in clients[:10]:
            await client.aclose()
        await asyncio.sleep(0.2)
        again = await echo_once(rec.port)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert 450 <= served < 600 and echoed == served, (served, echoed)
    assert refused and set(refused) == {503}, refused
    assert status == 503 and b"out of file descriptors" in answer
    assert again < 2
    err = "\n".join(rec.stderr_lines)
    assert "out of file descriptors (the limit is 1,024 open files): refused" in err, err
    assert "Traceback" not in err
    figure("record: connections at a hard limit of 1,024 descriptors", soft_limit=1024,
           hard_limit=1024, served=served, refused_503=len(refused) + 1, record_fds=fds)


async def test_serve_raises_its_limit_and_warns_when_it_stays_low(spawn, python_exe, tmp_path):
    scenario = tmp_path / "s.wsr"
    scenario.write_text("wsreplay 1\nconn c1 ws://127.0.0.1/x\nc1 > text hi\n")
    args = [python_exe, "-m", "wsreplay", "serve", scenario, "--listen", "127.0.0.1:0"]
    low = spawn(nofile_limited(args, 1024, 1024))
    assert limits_of(low.popen.pid) == (1024, 1024)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    high = spawn(nofile_limited(args, 256))
    assert limits_of(high.popen.pid)[0] == min(hard, limits_of(high.popen.pid)[1])
    warned = await stderr_line(low, lambda line: "open files" in line)
    assert warned.startswith("wsreplay serve: warning: at most 1,024 open files")
    if hard >= 1000 + fdlimit.RESERVE:
        assert not any("open files" in line for line in high.stderr_lines)


class _NoWatchingLoop(asyncio.SelectorEventLoop):
    """An event loop that cannot watch a socket, as Windows' proactor loop cannot."""

    def add_reader(self, *args, **kwargs):
        raise NotImplementedError


def test_on_a_loop_that_cannot_watch_sockets_the_deadline_still_holds(tmp_path):
    from wsreplay.proxy import ProxyConfig, RecordingProxy
    from wsreplay.recorder import Recorder

    async def main():
        async with RecordingProxy(ProxyConfig("ws://127.0.0.1:9", port=0,
                                              handshake_timeout=0.3),
                                  Recorder(tmp_path / "w.wsr")) as proxy:
            assert proxy._door._servers  # the loop accepts for the door
            start = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET / HT")
            answer = await asyncio.wait_for(reader.read(), T)
            writer.close()
            status, _ = await ask(proxy.port, upgrade("/x", "evil.test"))
            return answer, time.monotonic() - start, status

    with asyncio.Runner(loop_factory=_NoWatchingLoop) as runner:
        answer, took, status = runner.run(main())
    assert answer.startswith(b"HTTP/1.1 408 ") and 0.25 < took < T
    assert status == 403
