"""Faults with real processes: ``wsreplay record`` runs as ``python -m wsreplay record`` and the
peers are real sockets on 127.0.0.1 (the upstream in its own process where it gets killed).

What each fault must leave behind: the client told promptly (1011/1014, an HTTP error, never a
101), the other leg closed, the proxy's memory bounded, and a recording that parses and holds
everything that was forwarded, with how the connection ended. The recording never cuts the
user's traffic: a full disk or an unwritable folder is reported, forwarding goes on.

In-process versions of some of these live in test_record_proxy.py (a peer that drops, a
client that stops reading) and test_record_cli.py (one SIGINT/SIGTERM, two SIGKILLs); here the
dying party is a process, and the measures are taken on the proxy process itself. Figures go
to docs/reliability.md through :func:`faultkit.figure`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import stat
import time


import aiohttp
import pytest

from wsreplay import model as m
from wsreplay.proxy import ProxyConfig, RecordingProxy
from wsreplay.recorder import Handshake, Recorder, Sink

from .conftest import TESTS, T, free_port
from .faultkit import (RawClient, figure, fsize_limited, message_data, record_args,
                       remount, rss_kib, tmpfs)
from .record_helpers import (PAGE, ScriptedServer, TracingSink, aiohttp_peer, events, load,
                             states_after_cuts, until)

PROMPT = T / 5  # "within a second" at the default scale
UPSTREAM = TESTS / "fault_upstream.py"


def data_events(recorded, side: str) -> list[bytes]:
    return [w[1] for d, w in recorded if d == side and w[0] in ("text", "binary")]


async def interrupt(proc) -> int:
    """Ctrl-C the recorder and return its exit code."""
    proc.popen.send_signal(signal.SIGINT)
    return await proc.await_exit()


# --- the upstream dies, is missing, or never answers ----------------------------------------

async def test_an_upstream_killed_mid_stream_gives_the_client_1011_at_once_and_a_full_record(
        spawn, python_exe, tmp_path):
    upstream = spawn([python_exe, UPSTREAM])
    out = tmp_path / "killed-upstream.wsr"
    rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{upstream.port}", "--out", out))
    received = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{rec.port}/stream") as ws:
            await ws.send_str("__stream 0 200")
            while len(received) < 300:
                received.append((await ws.receive(timeout=T)).data)
            os.kill(upstream.popen.pid, signal.SIGKILL)
            killed = time.monotonic()
            while (msg := await ws.receive(timeout=T)).type is aiohttp.WSMsgType.TEXT:
                received.append(msg.data)
            took = time.monotonic() - killed
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data in (1011, 1014), msg
    assert took < PROMPT
    assert await interrupt(rec) == 0
    recorded = events(load(out))
    assert data_events(recorded, "<") == [r.encode() for r in received]
    assert recorded[0] == (">", ("text", b"__stream 0 200"))
    assert recorded[-1] == ("<", ("drop",))  # how it ended: no close frame from the upstream
    figure("upstream killed", close_code=msg.data, seconds=round(took, 3),
           messages_before=len(received))


@pytest.mark.parametrize("kind,status", [
    ("nothing listening", 502), ("closes without answering", 502),
    ("answers garbage", 502), ("refuses with 503", 503),
])
async def test_an_upstream_that_fails_the_handshake_gets_the_client_an_http_error_never_101(
        spawn, python_exe, tmp_path, kind, status):
    out = tmp_path / "failed.wsr"

    async def misbehave(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        if kind == "answers garbage":
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        elif kind == "refuses with 503":
            writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 5\r\nRetry-After: 3\r\n\r\nlater")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(misbehave, "127.0.0.1", 0)
    port = free_port() if kind == "nothing listening" else server.sockets[0].getsockname()[1]
    try:
        rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out", out))
        with pytest.raises(ConnectionError, match=f"refused: {status}"):
            await RawClient.connect(rec.port, "/x", timeout=T)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(f"ws://127.0.0.1:{rec.port}/y")
            assert info.value.status == status
    finally:
        server.close()
        await server.wait_closed()
    assert await interrupt(rec) == 0
    scenario = load(out)
    if status == 503:  # the upstream's own refusal is recorded as the expected status
        assert [c.expect_status for c in scenario.connections()] == [503, 503]
    else:
        assert scenario.connections() == []
        assert sum("not opened: upstream failed" in s.text for s in scenario.steps
                   if isinstance(s, m.Comment)) == 2


async def test_an_upstream_that_takes_the_connection_but_never_answers_gets_504(tmp_path):
    silent = socket.socket()  # listens, never accepts: the kernel completes the TCP handshake
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    target = f"ws://127.0.0.1:{silent.getsockname()[1]}"
    proxy = RecordingProxy(ProxyConfig(target, port=0, connect_timeout=PROMPT / 2),
                           Recorder(tmp_path / "silent.wsr"))
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(proxy.url)
            assert info.value.status == 504
            assert time.monotonic() - started < PROMPT
    finally:
        await proxy.stop()
        silent.close()
    assert "no answer in time" in (tmp_path / "silent.wsr").read_text()


# --- the client goes away --------------------------------------------------------------------

CLIENT_SCRIPT = """
import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(sys.argv[1])
        await ws.send_str("hi")
        await ws.receive()
        print("echoed", flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["reset", "process killed"])
async def test_a_client_that_vanishes_gets_the_upstream_leg_closed_within_a_second(
        spawn, python_exe, tmp_path, how):
    server = ScriptedServer()
    out = tmp_path / "vanished.wsr"
    async with aiohttp_peer(server.handle) as port:
        rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out", out))
        if how == "reset":
            client = await RawClient.connect(rec.port, "/", timeout=T)
            client.send_text("hi")
            assert message_data(await client.events(T, count=1)) == ["hi"]
            client.reset()
        else:
            client = spawn([python_exe, "-c", CLIENT_SCRIPT, f"ws://127.0.0.1:{rec.port}/"],
                           ready=False)
            await client.await_line(lambda line: line == "echoed")
            os.kill(client.popen.pid, signal.SIGKILL)
        gone = time.monotonic()
        await asyncio.wait_for(server.ended.wait(), T)
        took = time.monotonic() - gone
        assert await interrupt(rec) == 0
    assert took < PROMPT
    assert server.seen[0] == ("text", b"hi") and server.seen[-1][:2] == ("close", 1011)
    assert events(load(out)) == [(">", ("text", b"hi")), ("<", ("text", b"hi")), (">", ("drop",))]
    figure(f"client vanished ({how})", upstream_closed_after=round(took, 3))


async def test_a_client_that_stops_reading_holds_the_upstream_back_with_bounded_memory(
        spawn, python_exe, tmp_path):
    server = ScriptedServer()
    count, size = 400, 128 * 1024  # 50 MiB offered: far beyond every buffer on the way
    async with aiohttp_peer(server.handle) as port:
        rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out",
                                tmp_path / "stalled.wsr"))
        warm = await RawClient.connect(rec.port, "/warm", timeout=T)  # imports and buffers
        warm.send_text("x" * size)
        await warm.events(T, count=1)
        await warm.aclose()
        baseline = rss_kib(rec.popen.pid)
        client = await RawClient.connect(rec.port, "/stall", timeout=T)
        client.send_text(f"__flood {count} {size}")
        peak, deadline = baseline, time.monotonic() + T / 2
        while time.monotonic() < deadline:  # the client reads nothing meanwhile
            peak = max(peak, rss_kib(rec.popen.pid))
            await asyncio.sleep(0.05)
        held_at = server.flood_sent
        got = message_data(await client.events(4 * T, count=count))
        await client.aclose()
        assert await interrupt(rec) == 0
    assert held_at * size < 16 * 1024 * 1024  # the upstream was held back...
    assert peak - baseline < 24 * 1024  # ...and the proxy did not buffer it (KiB)
    assert len(got) == count and all(g == b"\x01" * size for g in got)  # then all came
    figure("client stopped reading", offered_mib=count * size >> 20,
           upstream_sent_mib=round(held_at * size / 2 ** 20, 1),
           proxy_rss_growth_mib=round((peak - baseline) / 1024, 1),
           proxy_rss_baseline_mib=round(baseline / 1024, 1))


# --- the recorder dies or is stopped --------------------------------------------------------

PRETTY = json.dumps({"id": 7, "items": [{"n": i, "tag": "#x"} for i in range(40)]}, indent=2)
# Pretty-printed JSON is recorded as a multi-line fenced step, which a kill could cut in two
# (bug F3, fixed for steps up to a page long: this one is ~1.3 KiB; see the tests at the end).
KILL_MULTILINE = True


def _payload(rng: random.Random, i: int):
    roll = rng.random()
    if roll < 0.45:
        return f"m{i} ✓"
    if roll < 0.65:
        return bytes([i % 256]) * rng.choice((100, 5000, 16384))
    if roll < 0.8 and KILL_MULTILINE:
        return PRETTY.replace("7", str(i), 1)
    return "t" * rng.randrange(3000, 9000) + str(i)


async def _busy_client(url: str, seed: int, received: list, stop: asyncio.Event) -> None:
    """Pipeline a mix of payloads until ``stop`` or the proxy dies; keep what came back."""
    rng = random.Random(seed)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, max_msg_size=0) as ws:
                async def reader():
                    while (msg := await ws.receive(timeout=2 * T)).type in (
                            aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        received.append(msg.data)

                task = asyncio.create_task(reader())
                i = 0
                while not stop.is_set() and not task.done():
                    p = _payload(rng, i)
                    await (ws.send_bytes(p) if isinstance(p, bytes) else ws.send_str(p))
                    i += 1
                    if i % 4 == 0:
                        await asyncio.sleep(0)
                await asyncio.wait_for(task, 2 * T)
    except (ConnectionError, aiohttp.ClientError):
        pass


@pytest.mark.slow  # ~20 s: 20 recorder processes
async def test_sigkill_at_20_random_moments_every_file_parses_and_holds_what_clients_got(
        spawn, python_exe, tmp_path):
    server = ScriptedServer(max_msg_size=0)
    seed = int(os.environ.get("WSREPLAY_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    totals = {"runs": 0, "messages": 0, "kept": 0}
    started = time.monotonic()
    async with aiohttp_peer(server.handle) as port:
        for run in range(20):
            out = tmp_path / f"kill{run}.wsr"
            rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out", out))
            stop = asyncio.Event()
            got = [[] for _ in range(3)]
            clients = [asyncio.create_task(_busy_client(
                f"ws://127.0.0.1:{rec.port}/run{run}/client{j}", seed + 10 * run + j, got[j],
                stop)) for j in range(3)]
            await until(lambda: all(len(g) >= 5 for g in got), what=f"run {run}: traffic")
            await asyncio.sleep(rng.uniform(0, 0.3))
            os.kill(rec.popen.pid, signal.SIGKILL)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), 3 * T)
            rec.stop()
            scenario = load(out)  # fails the test with the parser's message if a cut broke it
            by_path = {c.url.rsplit("/", 1)[1]: c.name for c in scenario.connections()}
            for j in range(3):
                recorded = data_events(events(scenario, by_path[f"client{j}"]), "<")
                want = [g.encode() if isinstance(g, str) else g for g in got[j]]
                assert recorded[: len(want)] == want, (f"seed {seed} run {run} client {j}: "
                                                       f"{len(recorded)} recorded, {len(want)} got")
                totals["messages"] += len(want)
                totals["kept"] += len(recorded)
            totals["runs"] += 1
    took = time.monotonic() - started
    figure("recorder SIGKILLed", runs=totals["runs"], client_messages=totals["messages"],
           recorded_server_messages=totals["kept"], seconds=round(took, 1), seed=seed)


async def _chatty_client(url: str, got: list, closes: list) -> None:
    """Send and read in turn until the connection is closed; keep what came back."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            i = 0
            while True:
                try:
                    await ws.send_str(f"n{i}")
                except ConnectionError:
                    pass
                msg = await ws.receive(timeout=T)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    closes.append((msg.type, msg.data))
                    return
                got.append(msg.data)
                i += 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_under_traffic_closes_every_leg_1001_and_completes_the_file(
        spawn, python_exe, tmp_path, sig):
    # test_record_cli.py covers one idle connection; here three are busy when the signal comes
    server = ScriptedServer(max_msg_size=0)
    closes: list = []
    out = tmp_path / "stopped.wsr"
    async with aiohttp_peer(server.handle) as port:
        rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out", out))
        got = [[] for _ in range(3)]
        tasks = [asyncio.create_task(_chatty_client(f"ws://127.0.0.1:{rec.port}/c{j}", got[j],
                                                    closes)) for j in range(3)]
        await until(lambda: all(len(g) > 50 for g in got), what="traffic")
        rec.popen.send_signal(sig)
        await asyncio.wait_for(asyncio.gather(*tasks), 2 * T)
        assert await rec.await_exit() == 0
        await until(lambda: server.seen.count(("close", 1001, "wsreplay record stopped")) == 3,
                    what=f"upstream legs closed 1001: {[s for s in server.seen if s[0] != 'text']}")
    assert closes == [(aiohttp.WSMsgType.CLOSE, 1001)] * 3
    scenario = load(out)
    total = 0
    for conn in scenario.connections():
        recorded = data_events(events(scenario, conn.name), "<")
        j = int(conn.url.rsplit("/c", 1)[1])
        assert recorded == [g.encode() for g in got[j]]
        total += len(data_events(events(scenario, conn.name), ">")) + len(recorded)
    size = sum(len(w[1]) for c in scenario.connections() for _, w in events(scenario, c.name)
               if w[0] == "text")
    assert f"wsreplay record: stopped. 3 connections, {total} messages, {size} bytes" \
        in rec.lines[-1]
    assert out.read_text().endswith(f"# end: 3 connections, {total} messages, {size} bytes\n")


# --- the recording cannot be written -------------------------------------------------------

async def _echo_many(port: int, count: int, size: int, path: str = "/") -> list:
    got = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{port}{path}") as ws:
            for i in range(count):
                await ws.send_str(f"{i:05d}" + "d" * size)
                msg = await ws.receive(timeout=T)
                assert msg.type is aiohttp.WSMsgType.TEXT, f"cut after {i} messages: {msg}"
                got.append(msg.data)
            await ws.close()
    return got


@pytest.mark.parametrize("full", ["tmpfs", "file size limit"])
async def test_a_full_disk_is_reported_and_forwarding_goes_on(spawn, python_exe, tmp_path, full):
    server = ScriptedServer()
    folder = tmp_path / "small"
    async with aiohttp_peer(server.handle) as port:
        with tmpfs(folder, "64k") as mounted:
            if full == "tmpfs" and not mounted:
                pytest.skip("cannot mount a tmpfs here (the file size limit case covers it)")
            mounted = full == "tmpfs"
            args = record_args(python_exe, f"ws://127.0.0.1:{port}", "--out",
                               folder / "full.wsr")
            # the limit falls inside a page, over 1 KiB past its start: the message line
            # that crosses it is a small write within one page (the common, fast path)
            rec = spawn(args if mounted else fsize_limited(args, 15 * 4096 + 1100))
            got = await _echo_many(rec.port, 200, 1000)  # ~400 KB to record into 64 KiB
            assert await interrupt(rec) == 2
            text = (folder / "full.wsr").read_text()
    assert len(got) == 200 and server.seen[-1][:2] == ("close", 1000)
    errors = "\n".join(rec.stderr_lines)
    why = "No space left on device" if mounted else "File too large"
    assert f"wsreplay record: error: cannot write {folder / 'full.wsr'}: {why}; the recording " \
           "is incomplete from here on (forwarding goes on)" in errors
    assert f"the recording is INCOMPLETE: cannot write {folder / 'full.wsr'}: {why}" in errors
    assert errors.count("error: cannot write") == 1
    assert text.endswith("\n")  # no half-written line...
    recorded = events(load_text(text))  # ...and it parses
    to_client, to_server = data_events(recorded, "<"), data_events(recorded, ">")
    assert 10 < len(to_client) < 200 and to_client == [g.encode() for g in got[: len(to_client)]]
    assert to_server == [s[1] for s in server.seen[: len(to_server)]]
    figure(f"disk full ({full})", forwarded=len(got), recorded=len(to_client))


def load_text(text: str) -> m.Scenario:
    from wsreplay.parser import parse
    return parse(text, "<recording>")


async def test_a_folder_turned_read_only_is_reported_per_connection_and_forwarding_goes_on(
        spawn, python_exe, tmp_path):
    server = ScriptedServer()
    folder = tmp_path / "out"
    async with aiohttp_peer(server.handle) as port:
        with tmpfs(folder, "1m") as mounted:
            if not mounted and os.geteuid() == 0:
                pytest.skip("running as root without mount: no way to make a folder unwritable")
            rec = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out",
                                    folder / "r.wsr", "--split"))
            assert await _echo_many(rec.port, 3, 10, "/first") and await _settle(rec, 1)
            remount(folder, "ro") if mounted else folder.chmod(0o500)
            try:
                assert len(await _echo_many(rec.port, 3, 10, "/second")) == 3
                assert await _settle(rec, 2)
                code = await interrupt(rec)
            finally:
                remount(folder, "rw") if mounted else folder.chmod(0o700)
            files = sorted(p.name for p in folder.iterdir())
            first = load(folder / "r-c1.wsr")
    assert code == 2 and files == ["r-c1.wsr"]
    assert len(events(first)) == 6 + 2
    errors = "\n".join(rec.stderr_lines)
    assert f"error: cannot write {folder / 'r-c2.wsr'}: " in errors
    assert "the recording is INCOMPLETE" in errors


async def _settle(rec, closed: int) -> bool:
    """Wait for the recorder's line saying connection ``c<closed>`` is over."""
    await rec.await_line(lambda line: line.startswith(f"c{closed} closed"))
    return True


@pytest.mark.parametrize("split", [False, True], ids=["one file", "split"])
def test_an_unwritable_folder_at_start_is_a_usage_error(spawn, python_exe, tmp_path, split):
    folder = tmp_path / "ro"
    with tmpfs(folder, "64k", readonly=True) as mounted:
        if not mounted:
            if os.geteuid() == 0:
                pytest.skip("running as root without mount: no way to make a folder unwritable")
            folder.chmod(0o500)
        proc = spawn(record_args(python_exe, "ws://127.0.0.1:1", "--out", folder / "x.wsr",
                                 *(["--split"] if split else [])), ready=False)
        assert proc.wait() == 2
        folder.chmod(0o700) if not mounted else None
    assert f"wsreplay record: cannot write {folder / 'x.wsr'}: " in "\n".join(proc.stderr_lines)


def test_a_write_that_fails_half_way_leaves_the_file_as_it_was(tmp_path):
    class FailingSink(Sink):
        fail_after = None

        def _write(self, data, offset):
            if self.fail_after is not None:
                super()._write(data[: self.fail_after], offset)
                raise OSError(28, "No space left on device")
            super()._write(data, offset)

    errors: list[str] = []
    rec = Recorder(tmp_path / "half.wsr", on_error=errors.append)
    sink = rec._sink = FailingSink(tmp_path / "half.wsr")
    conn = rec.connection(Handshake("ws://h:1/"))
    conn.messages(m.Side.CLIENT, [(1, b"kept", None)])
    before = sink.path.read_bytes()
    sink.fail_after = 7
    conn.messages(m.Side.CLIENT, [(1, b"lost " * 100, None)])
    sink.fail_after = None
    conn.messages(m.Side.CLIENT, [(1, b"after", None)])  # nothing more goes to a broken file
    assert sink.path.read_bytes() == before
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert rec.close().incomplete.startswith(f"cannot write {sink.path}")
    assert sink.path.read_bytes() == before  # no footer either
    assert stat.S_IMODE(sink.path.stat().st_mode) == 0o600


def test_a_kill_inside_a_multi_line_step_leaves_a_file_that_parses(tmp_path):
    # bug F3, fixed: a multi-line step up to a page long is padded into one page
    rec = Recorder(tmp_path / "fenced.wsr", clock=lambda: 1.0)
    sink = rec._sink = TracingSink(tmp_path / "fenced.wsr")
    conn = rec.connection(Handshake("ws://h:1/"))
    for i in range(60):  # pretty JSON steps of ~1.3 KiB: several cross page boundaries
        conn.messages(m.Side.SERVER, [(1, PRETTY.replace("7", str(i), 1).encode(), None)])
    rec.close()
    final = load_text((tmp_path / "fenced.wsr").read_text()).events()
    for state in states_after_cuts(sink.ops):
        cut = load_text(state.decode("utf-8", "replace")).events()
        assert cut == final[: len(cut)]


def test_a_kill_inside_a_multi_line_step_longer_than_a_page_leaves_a_file_that_parses(tmp_path):
    # bug F3, fixed: text longer than a page is recorded quoted on one line, never fenced
    big = json.dumps({"items": [{"n": i, "tag": "#x"} for i in range(3 * PAGE // 30)]},
                     indent=2)
    assert len(big) > 2 * PAGE
    rec = Recorder(tmp_path / "long.wsr", clock=lambda: 1.0)
    sink = rec._sink = TracingSink(tmp_path / "long.wsr")
    conn = rec.connection(Handshake("ws://h:1/"))
    for i in range(4):
        conn.messages(m.Side.SERVER, [(1, big.replace("0", str(i), 1).encode(), None)])
    rec.close()
    final = load_text((tmp_path / "long.wsr").read_text()).events()
    assert [e.payload for e in final] == [m.Text(big.replace("0", str(i), 1)) for i in range(4)]
    for state in states_after_cuts(sink.ops):
        cut = load_text(state.decode("utf-8", "replace")).events()
        assert cut == final[: len(cut)]
