"""``wsreplay serve`` against clients that would exhaust it: one that stops reading while the
mock sends 300 MiB (memory stays bounded, the client is closed with 1008 after the stall
limit and the report says why), slow handshakes (closed after the handshake timeout while a
normal client is served), and a process out of file descriptors (a fresh client gets 503, the
log says why, in one line, with no busy loop; serving resumes when descriptors free up).

The mock runs as ``python -m wsreplay serve`` where its memory, descriptors or CPU time are
measured; figures go to docs/reliability.md through :func:`faultkit.figure`.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import sys
import time

import aiohttp
import pytest
from wsproto.events import CloseConnection

from wsreplay import model as m
from wsreplay.engine import Engine
from wsreplay.messages import Request
from wsreplay.serve import HANDSHAKE_TIMEOUT, SEND_BUFFER, STALL_TIMEOUT

from .conftest import T
from .enginekit import scenario
from .faultkit import RawClient, figure, message_data, open_fds, rss_kib
from .hostilekit import UPGRADE, exchange, wait_fds
from .wskit import load_text, serving, write_scenario

MIB = 1 << 20
FLOOD = 300  # messages of 1 MiB the mock sends to a client that reads nothing
STALL = T / 2.5  # --stall-timeout in these tests (2 s at the default scale)


def serve_args(python_exe: str, *files, extra=()) -> list:
    return [python_exe, "-m", "wsreplay", "serve", *files, "--listen", "127.0.0.1:0",
            "--timing", "fast", *extra]


def flood_files(folder, count: int = FLOOD) -> list:
    (folder / "mib.bin").write_bytes(bytes(range(256)) * 4096)
    flood = write_scenario(folder, f"""
        conn c ws://127.0.0.1:1/flood
        repeat {count}
        c < file mib.bin
        end
        c > close 1000
        c < close 1000
        """, "flood.wsr")
    warm = write_scenario(folder, """
        conn w ws://127.0.0.1:1/warm
        w < file mib.bin
        w > close 1000
        w < close 1000
        """, "warm.wsr")
    return [flood, warm]


async def warm_up(port: int) -> None:
    """One run that sends a MiB and ends: imports and buffers in place before a baseline."""
    client = await RawClient.connect(port, "/warm", timeout=T)
    await client.events(T, count=1)
    client.send(CloseConnection(1000))
    await client.events(T, until=lambda e: isinstance(e, CloseConnection))
    await client.aclose()


NOFILE = 48  # descriptors the mock may open in the tests that exhaust them


def fd_limited(args: list, limit: int) -> list:
    """``args`` run with RLIMIT_NOFILE = ``limit`` (soft and hard: raising the soft limit to
    the hard one at start cannot undo it)."""
    code = ("import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", code, *map(str, args)]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def peak_rss(pid: int, seconds: float, stop=lambda: False) -> int:
    peak, deadline = rss_kib(pid), time.monotonic() + seconds
    while time.monotonic() < deadline and not stop():
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.05)
    return max(peak, rss_kib(pid))


# --- the engine builds a bounded amount at a time -------------------------------------------

def test_a_poll_with_a_budget_stops_once_that_many_bytes_are_to_send_and_goes_on_at_once():
    source = scenario("""
        conn c ws://x/
        repeat 10
        c < b64 {}
        end
        c > close 1000
        """.format("QUFB" * 1000))  # 3,000 bytes each
    engines = []
    for _ in range(2):
        engine = Engine(source, m.Side.SERVER)
        req = Request("/", (), (), ())
        index, hit = engine.match_request(req)
        engine.accept(index, req, hit, 0.0)
        engines.append(engine)
    whole, budgeted = engines
    everything = whole.poll(0.0)
    parts, wakes = [], []
    while batch := budgeted.poll(0.0, budget=7000):
        parts.append(batch)
        wakes.append(budgeted.wake_at)
    assert [len(p) for p in parts] == [3, 3, 3, 1]  # 9,000 bytes, 9,000, 9,000, the rest
    assert wakes == [0.0, 0.0, 0.0, 5.0]  # at once; then the client's close is awaited
    assert [a.message for p in parts for a in p] == [a.message for a in everything]
    assert len(everything) == 10 and not budgeted.done


async def test_a_client_that_reads_everything_gets_it_all_with_bounded_memory(
        spawn, python_exe, tmp_path):
    count = 100
    serve = spawn(serve_args(python_exe, *flood_files(tmp_path, count), extra=("--once",)))
    pid = serve.popen.pid
    await warm_up(serve.port)
    baseline = rss_kib(pid)
    got = 0
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{serve.port}/flood",
                                      max_msg_size=0) as ws:
            reading = asyncio.ensure_future(peak_rss(pid, 4 * T, lambda: got == count))
            while got < count:
                msg = await ws.receive(timeout=T)
                assert msg.type is aiohttp.WSMsgType.BINARY and len(msg.data) == MIB
                got += 1
            await ws.close()
            peak = await reading
    assert await serve.await_exit() == 0
    assert serve.lines[-1] == "served 2 runs, 0 failed"
    assert peak - baseline < 16 * 1024, (peak - baseline)  # KiB (once: 100 MiB, all built at once)
    figure("serve: client reads 100 MiB", serve_rss_growth_mib=round((peak - baseline) / 1024, 1))


# --- a client that stops reading ------------------------------------------------------------

async def test_a_client_that_stops_reading_is_held_back_with_bounded_memory_then_closed_1008(
        spawn, python_exe, tmp_path):
    serve = spawn(serve_args(python_exe, *flood_files(tmp_path),
                             extra=("--stall-timeout", f"{STALL:g}s")))
    pid = serve.popen.pid
    await warm_up(serve.port)
    baseline = rss_kib(pid)
    client = await RawClient.connect(serve.port, "/flood", timeout=T)  # then reads nothing
    started = time.monotonic()
    peak = await peak_rss(pid, STALL + 2 * T, lambda: any(
        "FAIL" in line for line in serve.lines))
    report = await serve.await_line(lambda line: "could not send on c" in line, T)
    closed_after = time.monotonic() - started
    got = await client.events(T, until=lambda e: isinstance(e, CloseConnection))
    await client.aclose()
    assert STALL <= closed_after < STALL + T / 2
    # the client reading again within the grace period gets what waited, then 1008
    assert client.closed is not None and client.closed.code == 1008
    assert client.closed.reason == "wsreplay: client stopped reading"
    data = message_data(got)
    assert 0 < len(data) < FLOOD // 4 and all(d == bytes(range(256)) * 4096 for d in data)
    assert f"the client read nothing for {STALL:g} s while" in report
    assert "closed with 1008" in report
    assert "(limit 1.0 MiB)" in report
    assert peak - baseline < 16 * 1024, (peak - baseline)  # KiB: not the 300 MiB offered
    assert not [line for line in serve.lines + serve.stderr_lines if "Traceback" in line]
    figure("serve: client stopped reading", offered_mib=FLOOD,
           serve_rss_growth_mib=round((peak - baseline) / 1024, 1),
           serve_rss_baseline_mib=round(baseline / 1024, 1),
           messages_sent_before_close=len(data), closed_after_s=round(closed_after, 2),
           stall_timeout_s=STALL)


async def test_a_stalled_client_is_closed_even_when_deviating_clients_are_kept_open(tmp_path):
    scenario = load_text(tmp_path, """
        conn c ws://127.0.0.1:1/flood
        repeat 2000
        c < b64 {}
        end
        c > close 1000
        """.format("QUFB" * 16384))  # 48 KiB each: the send that stalls has more behind it
    async with serving(scenario, fail_close=None, stall_timeout=T / 10,
                       send_buffer=256 * 1024) as server:
        client = await RawClient.connect(server.port, "/flood", timeout=T)
        for _ in range(int(T * 100)):
            if server.results:
                break
            await asyncio.sleep(0.01)
        await client.aclose()
    [result] = server.results
    [failure] = result.failures
    assert failure.kind == "send" and failure.conn == "c"
    assert f"the client read nothing for {T / 10:g} s" in failure.summary
    assert "(limit 256 KiB): closed with 1008" in failure.summary


# --- slow handshakes ------------------------------------------------------------------------

ECHO = """
    conn c ws://127.0.0.1:1/echo
    c > text hi
    c < text hi
    c > close 1000
    c < close 1000
    """


async def echo_client(port: int, pause: float = 0.0) -> float:
    """A normal client (aiohttp): hi, its echo, a closing handshake; the seconds it took."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
            await asyncio.sleep(pause)
            await ws.send_str("hi")
            assert (await ws.receive(timeout=T)).data == "hi"
            await ws.close()
            assert ws.close_code == 1000
    return time.monotonic() - started


async def slowloris(port: int, every: float, until: float) -> tuple[float, str]:
    """Send the upgrade request a byte every ``every`` seconds; when (seconds after it began
    to connect) and how the mock ended the connection, bounded by ``until`` seconds."""
    started = time.monotonic()  # before the mock can have accepted it
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    how = "still open"

    async def drip():
        for byte in UPGRADE:
            writer.write(bytes([byte]))
            await asyncio.sleep(every)

    dripping = asyncio.ensure_future(drip())
    try:
        answer = await asyncio.wait_for(reader.read(1 << 16), until)
        how = "eof" if not answer else f"answer {answer[:12]!r}"
    except asyncio.TimeoutError:
        pass
    except ConnectionResetError:
        how = "reset"
    finally:
        dripping.cancel()
        writer.close()
    return time.monotonic() - started, how


SLOW = 1000  # slow handshakes at once, under a limit of 1,024 descriptors


@pytest.fixture
def room_for_slow():
    """This process may open :data:`SLOW` more sockets (its soft limit raised toward the hard
    one for the test)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = SLOW + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"this process may open at most {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_1000_slow_handshakes_under_1024_descriptors_end_on_time_a_client_is_served(
        spawn, python_exe, tmp_path, room_for_slow):
    limit = 0.6 * T  # --handshake-timeout (3 s at the default scale)
    serve = spawn(fd_limited(serve_args(python_exe, write_scenario(tmp_path, ECHO), extra=(
        "--handshake-timeout", f"{limit:g}s")), 1024))
    pid, baseline = serve.popen.pid, open_fds(serve.popen.pid)
    slow = []
    for _ in range(SLOW // 100):  # a hundred at a time: the listen backlog holds 128
        batch = [asyncio.ensure_future(slowloris(serve.port, 1.0, limit + T)) for _ in range(100)]
        slow += batch
        deadline = time.monotonic() + T
        while open_fds(pid) < baseline + len(slow) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    held = open_fds(pid) - baseline
    served_in = await echo_client(serve.port)  # while they all hold their connections
    ended = await asyncio.gather(*slow)
    assert held == SLOW
    assert served_in < T / 2.5, served_in  # "within 2 s"; in practice milliseconds
    assert {how for _, how in ended} == {"eof"}, ended
    after = sorted(t for t, _ in ended)
    assert limit - 0.01 < after[0] and after[-1] < limit + T / 5, (after[0], after[-1])
    assert wait_fds(pid, baseline) <= baseline  # every slow connection let go
    assert not [l for l in serve.lines + serve.stderr_lines if "Traceback" in l]
    figure("serve: slow handshakes", connections=SLOW, nofile=1024,
           handshake_timeout_s=limit, closed_after_s=f"{after[0]:.2f}-{after[-1]:.2f}",
           normal_client_served_s=round(served_in, 3))


async def test_an_open_websocket_outlives_the_handshake_timeout(spawn, python_exe, tmp_path):
    limit = T / 10
    serve = spawn(serve_args(python_exe, write_scenario(tmp_path, ECHO), extra=(
        "--handshake-timeout", f"{limit:g}s", "--timeout", f"{T:g}s")))
    await echo_client(serve.port, pause=3 * limit)  # quiet for 3 handshake timeouts


def test_the_defaults_are_documented_ones():
    assert (SEND_BUFFER, STALL_TIMEOUT, HANDSHAKE_TIMEOUT) == (MIB, 10.0, 10.0)


# --- no descriptor left ---------------------------------------------------------------------

async def test_out_of_descriptors_a_fresh_client_gets_503_the_log_says_why_then_serving_resumes(
        spawn, python_exe, tmp_path):
    serve = spawn(fd_limited(serve_args(python_exe, write_scenario(tmp_path, ECHO), extra=(
        "--handshake-timeout", f"{10 * T:g}s")), NOFILE))
    pid = serve.popen.pid
    assert await echo_client(serve.port) < T
    idle = []
    try:
        for _ in range(NOFILE + 10):  # idle connections: more than the mock has descriptors
            idle.append(socket.create_connection(("127.0.0.1", serve.port), timeout=T))
        line = await serve.await_line(lambda l: l.startswith("cannot take new clients"), 2 * T)
        full = open_fds(pid)
        fresh = time.monotonic()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await echo_client(serve.port)
        refused_in = time.monotonic() - fresh
        cpu_before = cpu_seconds(pid)
        await asyncio.sleep(T / 2)  # out of descriptors: what does the mock do meanwhile?
        cpu_idle = cpu_seconds(pid) - cpu_before
    finally:
        for sock in idle:
            sock.close()
    assert full == NOFILE and refused.value.status == 503
    freed = time.monotonic()
    while open_fds(pid) > NOFILE // 2 and time.monotonic() - freed < T:
        await asyncio.sleep(0.01)
    served_in = await echo_client(serve.port)  # accepted again within asyncio's 1 s retry
    assert line.startswith("cannot take new clients: Too many open files (the process's "
                           f"limit of {NOFILE} descriptors); refused "), line
    assert line.endswith(" with 503; served again as descriptors free up"), line
    logged = serve.lines + serve.stderr_lines
    assert not [l for l in logged if "Traceback" in l], serve.describe()
    assert len([l for l in logged if l.startswith("cannot take")]) <= 2  # not one a second
    assert refused_in < 1.5 and served_in < 1.5 + T / 5
    assert cpu_idle < 0.1 * T / 2, cpu_idle  # no busy loop: under 10% of one core
    figure("serve: out of descriptors", nofile=NOFILE, idle_connections=len(idle),
           fresh_client_refused_s=round(refused_in, 2), cpu_while_full_s=round(cpu_idle, 3),
           served_again_s=round(served_in, 2))


async def test_a_static_file_that_cannot_be_opened_for_lack_of_descriptors_gets_503_not_404(
        spawn, python_exe, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>hello</p>")
    serve = spawn(fd_limited(serve_args(python_exe, write_scenario(tmp_path, ECHO), extra=(
        "--static", site, "--handshake-timeout", f"{10 * T:g}s")), NOFILE))
    pid = serve.popen.pid
    page = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert b"<p>hello</p>" in exchange(serve.port, page)[0]
    idle, base = [], open_fds(pid)
    try:
        while open_fds(pid) < NOFILE - 1:  # the page's connection takes the last descriptor
            idle.append(socket.create_connection(("127.0.0.1", serve.port), timeout=T))
            deadline = time.monotonic() + T
            while open_fds(pid) < base + len(idle) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
        answer, _ = exchange(serve.port, page)
    finally:
        for sock in idle:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    assert answer.endswith(b"wsreplay: out of file descriptors, try again later\n")
    line = await serve.await_line(lambda l: l.startswith("cannot take new clients"), T)
    assert "refused 1 client with 503" in line, line
    wait_fds(pid, NOFILE // 2)
    async with aiohttp.ClientSession() as session:  # accepted again within asyncio's 1 s retry
        async with session.get(f"http://127.0.0.1:{serve.port}/index.html") as response:
            assert (response.status, await response.text()) == (200, "<p>hello</p>")
