"""``wsreplay record`` as a process: Ctrl-C and SIGTERM finish the file, SIGKILL loses nothing
that was forwarded, usage errors exit 2, output names never come from requests."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import stat

import aiohttp
import pytest

from wsreplay.commands.record import output_path
from wsreplay.errors import UsageError

from .conftest import T, free_port
from .record_helpers import ScriptedServer, aiohttp_peer, events, load, until


def record_args(python_exe, target: str, *extra) -> list:
    return [python_exe, "-m", "wsreplay", "record", "--target", target,
            "--listen", "127.0.0.1:0", *extra]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_closes_both_legs_with_1001_and_completes_the_file(
        spawn, python_exe, tmp_path, sig):
    server = ScriptedServer()
    out = tmp_path / "session.wsr"
    async with aiohttp_peer(server.handle) as port:
        proc = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out", out))
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://127.0.0.1:{proc.port}/chat") as ws:
                await ws.send_str("hello")
                assert (await ws.receive(timeout=T)).data == "hello"
                await proc.await_line(lambda line: "c1 open /chat (1 open)" in line)
                proc.popen.send_signal(sig)
                msg = await ws.receive(timeout=T)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(server.ended.wait(), T)
        assert await proc.await_exit() == 0
    assert server.seen[-1][:2] == ("close", 1001)
    assert any(f"stopped. 1 connections, 2 messages, 10 bytes -> {out}" in line
               for line in proc.lines)
    assert events(load(out)) == [(">", ("text", b"hello")), ("<", ("text", b"hello"))]
    assert out.read_text().endswith("# end: 1 connections, 2 messages, 10 bytes\n")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


async def _traffic(url: str, received: list, stop: asyncio.Event) -> None:
    """Send a mix of small text and 16 KiB binary messages, pipelined, until the proxy dies."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            async def reader():
                while True:
                    msg = await ws.receive(timeout=2 * T)
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        return
                    received.append(msg.data)

            task = asyncio.create_task(reader())
            i = 0
            try:
                while not stop.is_set() and not task.done():
                    await (ws.send_bytes(bytes([i % 256]) * 16384) if i % 3 == 0
                           else ws.send_str(f"message {i} ✓"))
                    i += 1
                    if i % 8 == 0:
                        await asyncio.sleep(0)
            except ConnectionError:
                pass
            await asyncio.wait_for(task, 2 * T)


@pytest.mark.parametrize("delay", [0.2, 0.5])
async def test_sigkill_leaves_a_file_that_parses_and_holds_everything_forwarded(
        spawn, python_exe, tmp_path, delay):
    server = ScriptedServer()
    out = tmp_path / "killed.wsr"
    received: list = []
    stop = asyncio.Event()
    async with aiohttp_peer(server.handle) as port:
        proc = spawn(record_args(python_exe, f"ws://127.0.0.1:{port}", "--out", out))
        traffic = asyncio.create_task(_traffic(f"ws://127.0.0.1:{proc.port}/", received, stop))
        await until(lambda: len(received) > 20, what="traffic flowing")
        await asyncio.sleep(delay)
        os.kill(proc.popen.pid, signal.SIGKILL)
        stop.set()
        await asyncio.wait_for(traffic, 3 * T)
        await asyncio.wait_for(server.ended.wait(), T)
    recorded = events(load(out))
    to_server = [w[1] for d, w in recorded if d == ">" and w[0] in ("text", "binary")]
    to_client = [w[1] for d, w in recorded if d == "<" and w[0] in ("text", "binary")]
    sent_up = [s[1] for s in server.seen if s[0] in ("text", "binary")]
    got = [d.encode() if isinstance(d, str) else d for d in received]
    assert len(got) > 20
    assert to_client[: len(got)] == got  # everything the client got is in the file
    assert to_server[: len(sent_up)] == sent_up  # and everything the server got


async def test_quiet_prints_nothing_and_verbose_prints_every_line(spawn, python_exe, tmp_path):
    server = ScriptedServer()
    async with aiohttp_peer(server.handle) as port:
        outputs = []
        for flag in ("-q", "-v"):
            listen = free_port()
            proc = spawn([python_exe, "-m", "wsreplay", "record", "--target",
                          f"ws://127.0.0.1:{port}", "--listen", f"127.0.0.1:{listen}",
                          "--out", tmp_path / f"r{flag}.wsr", flag], ready=False)
            await _exchange_when_up(listen, "hi")
            proc.popen.send_signal(signal.SIGINT)
            assert await proc.await_exit() == 0
            outputs.append(proc.lines)
    assert outputs[0] == []
    assert any(line.endswith("c1 > text hi") for line in outputs[1])
    assert any(line.endswith("c1 < text hi") for line in outputs[1])


async def _exchange_when_up(port: int, text: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                ws = await session.ws_connect(f"ws://127.0.0.1:{port}/")
                break
            except aiohttp.ClientConnectorError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        await ws.send_str(text)
        assert (await ws.receive(timeout=T)).data == text
        await ws.close()


@pytest.mark.parametrize("args,message", [
    (["--target", "http://x:1"], "the target must be ws://"),
    (["--target", "ws://x:1", "--max-size", "lots"], "is not a size"),
    (["--target", "ws://x:1", "--listen", "nowhere"], "expected HOST:PORT"),
    (["--target", "ws://x:1", "--out", "{tmp}/taken.wsr/x.wsr"], "cannot create folder"),
    (["--target", "ws://x:1", "--out", "{tmp}/taken.wsr"], "already exists"),
    (["--target", "ws://x:1", "--ca-file", "{tmp}/none.pem"], "no such file"),
])
def test_usage_errors_exit_2(spawn, python_exe, tmp_path, args, message):
    (tmp_path / "taken.wsr").write_text("keep me")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = spawn([python_exe, "-m", "wsreplay", "record", *args], ready=False)
    assert proc.wait() == 2
    assert message in "\n".join(proc.stderr_lines)
    assert (tmp_path / "taken.wsr").read_text() == "keep me"


def test_an_address_in_use_exits_2(spawn, python_exe, tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = spawn([python_exe, "-m", "wsreplay", "record", "--target", "ws://127.0.0.1:1",
                      "--listen", f"127.0.0.1:{port}", "--out", tmp_path / "x.wsr"], ready=False)
        assert proc.wait() == 2
    assert "cannot listen on" in "\n".join(proc.stderr_lines)


def test_output_path_in_a_folder_is_named_from_the_date(tmp_path):
    now = dt.datetime(2024, 5, 6, 7, 8, 9)
    folder = tmp_path / "recs"
    first = output_path(str(folder) + "/", False, now)
    assert first == folder / "record-20240506-070809.wsr"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    first.write_text("x")
    assert output_path(str(folder), False, now) == folder / "record-20240506-070809-2.wsr"
    (folder / "record-20240506-070809-2-c1.wsr").write_text("x")  # a split run's file
    assert output_path(str(folder), True, now) == folder / "record-20240506-070809-3.wsr"


def test_output_path_refuses_existing_files_and_split_leftovers(tmp_path):
    (tmp_path / "a.wsr").write_text("x")
    with pytest.raises(UsageError, match="already exists"):
        output_path(str(tmp_path / "a.wsr"), False)
    (tmp_path / "b-c1.wsr").write_text("x")
    with pytest.raises(UsageError, match="already exists"):
        output_path(str(tmp_path / "b.wsr"), True)
    assert output_path(str(tmp_path / "c.wsr"), True) == tmp_path / "c.wsr"


def test_missing_output_folders_are_created_private(tmp_path):
    from wsreplay.commands.record import output_path

    path = output_path(str(tmp_path / "new" / "deeper" / "chat.wsr"), split=False)
    assert path == tmp_path / "new" / "deeper" / "chat.wsr" and not path.exists()
    assert (tmp_path / "new" / "deeper").stat().st_mode & 0o777 == 0o700
