"""How fast is ``wsreplay record``? Echo load direct, through it (recording on) and through mitmproxy.

Every row runs the same load generator (this process, aiohttp on uvloop) against the same echo
server (a subprocess, aiohttp on uvloop); only what sits between them changes:

* ``direct``: nothing;
* ``wsreplay``: ``python -m wsreplay record`` writing its scenario file (a fresh one per run);
* ``relay``: a plain aiohttp relay with no recording, for reference;
* ``tcp``: a bare TCP relay (asyncio protocols, bytes in, bytes out, nothing parsed): the
  ceiling of any Python proxy on this machine;
* ``tcp+file``: the same relay writing each chunk it reads to a file, base64 on a line (what a
  recording of binary messages costs at the least: the size wsreplay writes, no parsing), before
  forwarding it: the ceiling of any recorder writing such a file on this machine's disk;
* ``socat``: ``socat`` relaying TCP (a relay written in C, forking per connection), when it is
  installed (Debian's ``socat``): what a compiled relay does in the same place;
* ``mitmproxy``: ``mitmdump --mode reverse:http://...``, the tool users would otherwise pick.

And one row that relays nothing, ``disk``: a process that only appends the lines a recording of
the 64 KiB load holds (two base64 lines per round trip, a megabyte per write) to a file in the
recordings' folder, as fast as one core lets it. Its rate, in round trips per second, is the
most any recorder writing such a file could reach on this machine's disk, whatever it did
about the network.

Rounds alternate the modes (rotating their order) and the medians are reported:

* throughput, 64-byte messages over 50 connections, one message in flight on each;
* throughput, 64 KiB messages over 8 connections;
* added latency, one connection, one 64-byte message in flight: p50 and p99 of the round trip
  through the proxy minus direct;
* memory: the proxy's resident memory per open idle connection, and with 1,000 connections.

mitmproxy is kept out of the project's environment (its pinned dependencies would clash)::

    python3.12 -m venv /work/venv-mitm && /work/venv-mitm/bin/pip install mitmproxy

or set ``MITMDUMP`` to a ``mitmdump`` executable. Without it the mitmproxy rows are skipped with a
message. Run::

    /work/venv/bin/python bench/proxy.py [--rounds 3] [--seconds 3] [--only wsreplay,direct]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from pybase64 import b64encode

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
MITMDUMP = os.environ.get("MITMDUMP") or shutil.which("mitmdump") or "/work/venv-mitm/bin/mitmdump"
MODES = ("direct", "wsreplay", "relay", "tcp", "tcp+file", "socat", "mitmproxy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- the processes --------------------------------------------------------------------------

async def _echo(request: web.BaseRequest) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=0, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def _relay(target: str, request: web.BaseRequest) -> web.StreamResponse:
    """A plain aiohttp relay: the reference point without recording."""
    session = request.app_session  # type: ignore[attr-defined]
    upstream = await session.ws_connect(target + request.path_qs, autoping=False,
                                        autoclose=False, max_msg_size=0)
    client = web.WebSocketResponse(autoping=False, autoclose=False, max_msg_size=0)
    await client.prepare(request)

    async def pump(src, dst):
        while True:
            msg = await src.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSING):
                await dst.close()
                return
            await dst.send_frame(msg.data if isinstance(msg.data, bytes) else msg.data.encode(),
                                 msg.type)

    await asyncio.gather(pump(client, upstream), pump(upstream, client), return_exceptions=True)
    return client


class _Pipe(asyncio.Protocol):
    """One side of the bare TCP relay: what it reads goes to ``peer``'s transport (after
    going to the file ``fd`` as a base64 line, when there is one)."""

    fd: int | None = None

    def __init__(self, peer: "_Pipe | None" = None):
        self.peer, self.transport, self.early = peer, None, []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self.early.append(data)
            return
        if self.fd is not None:
            os.write(self.fd, b"".join((b"@0.000000 c1 > b64 ", b64encode(data), b"\n")))
        self.peer.transport.write(data)

    def connection_lost(self, exc) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def _tcp_relay(port: int, target: str, out: str | None = None) -> None:
    host, _, upstream_port = target.split("//", 1)[1].partition(":")
    loop = asyncio.get_running_loop()
    if out:
        _Pipe.fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    class Downstream(_Pipe):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            loop.create_task(self.connect())

        async def connect(self) -> None:
            _, up = await loop.create_connection(lambda: _Pipe(self), host, int(upstream_port))
            self.peer = up
            for data in self.early:
                up.transport.write(data)
            self.early.clear()

    server = await loop.create_server(Downstream, "127.0.0.1", port, backlog=2048)
    print(f"listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


def _disk(folder: str, seconds: str) -> None:
    """Append the lines of 64 KiB round trips to a file in ``folder`` for ``seconds``, a
    megabyte per write; print the round trips per second that amounts to."""
    line = b"".join((b"@0.000000 c1 > b64 ", b64encode(os.urandom(64 * 1024)), b"\n"))
    batch, per = line * 12, 6  # 12 lines, 6 round trips, about 1 MiB
    path = Path(folder) / "disk.wsr"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        done, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < float(seconds):
            os.write(fd, batch)
            done += per
    finally:
        os.close(fd)
        path.unlink()
    print(done / elapsed)


async def _serve(kind: str, port: int, target: str | None, *extra: str) -> None:
    if kind in ("tcp", "tcp+file"):
        return await _tcp_relay(port, target, *extra)
    if kind == "relay":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def handler(request):
            request.app_session = session
            return await _relay(target, request)
    else:
        handler = _echo
    runner = web.ServerRunner(web.Server(handler, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    print(f"listening on {port}", flush=True)
    await asyncio.Event().wait()


class Process:
    """A subprocess that listens on ``port``; its output goes to a log file."""

    def __init__(self, args: list[str], port: int, workdir: Path, name: str):
        self.port, self.name = port, name
        self.log = workdir / f"{name}.log"
        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(mode: str, echo_port: int, workdir: Path, run: int) -> Process:
    port = free_port()
    python = sys.executable
    if mode == "wsreplay":
        out = workdir / f"bench-{run}.wsr"
        args = [python, "-m", "wsreplay", "record", "--target", f"ws://127.0.0.1:{echo_port}",
                "--listen", f"127.0.0.1:{port}", "--out", str(out), "-q", "--max-size", "1MiB"]
    elif mode in ("relay", "tcp"):
        args = [python, str(HERE), "--serve", mode, str(port), f"ws://127.0.0.1:{echo_port}"]
    elif mode == "tcp+file":
        args = [python, str(HERE), "--serve", mode, str(port), f"ws://127.0.0.1:{echo_port}",
                str(workdir / f"bench-{run}.wsr")]
    elif mode == "socat":
        args = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=2048",
                f"TCP:127.0.0.1:{echo_port},nodelay"]
    elif mode == "mitmproxy":
        args = [MITMDUMP, "--mode", f"reverse:http://127.0.0.1:{echo_port}", "--listen-host",
                "127.0.0.1", "--listen-port", str(port), "-q"]
    else:
        raise ValueError(mode)
    return Process(args, port, workdir, f"{mode}-{run}")


# --- the load ---------------------------------------------------------------------------------

async def throughput(port: int, conns: int, size: int, seconds: float,
                     pid: int | None = None) -> tuple[float, float]:
    """Round trips per second, ``conns`` connections each with one ``size``-byte message in
    flight, counted over ``seconds`` after a short warm-up; and the CPU time process ``pid``
    (the proxy) spent per round trip meanwhile, in microseconds (0 without ``pid``)."""
    payload = os.urandom(size)
    count = 0
    stop = False
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = [await session.ws_connect(f"ws://127.0.0.1:{port}/load", max_msg_size=0)
                   for _ in range(conns)]

        async def loop(ws):
            nonlocal count
            while not stop:
                await ws.send_bytes(payload)
                msg = await ws.receive()
                assert len(msg.data) == size, msg
                count += 1

        tasks = [asyncio.create_task(loop(ws)) for ws in sockets]
        await asyncio.sleep(min(0.5, seconds / 4))
        first, started = count, time.perf_counter()
        cpu0 = cpu_seconds(pid) if pid else 0.0
        await asyncio.sleep(seconds)
        done, elapsed = count - first, time.perf_counter() - started
        cpu = (cpu_seconds(pid) - cpu0) / done * 1e6 if pid and done else 0.0
        stop = True
        await asyncio.gather(*tasks)
        for ws in sockets:
            await ws.close()
    return done / elapsed, cpu


async def latencies(port: int, n: int) -> list[float]:
    """Round-trip times (seconds) of ``n`` 64-byte messages, one in flight."""
    payload = b"x" * 64
    out = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{port}/latency") as ws:
            for i in range(n + n // 10):
                t0 = time.perf_counter()
                await ws.send_bytes(payload)
                await ws.receive()
                if i >= n // 10:
                    out.append(time.perf_counter() - t0)
    return out


async def memory(port: int, pid: int, n: int) -> tuple[int, int]:
    """The process's resident KiB before and with ``n`` open idle connections."""
    await asyncio.sleep(0.3)
    before = rss_kib(pid)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for _ in range(n):
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/idle")
            await ws.send_bytes(b"hi")
            await ws.receive()
            sockets.append(ws)
        await asyncio.sleep(0.5)
        after = rss_kib(pid)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return before, after


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- the bench --------------------------------------------------------------------------------

async def bench(args) -> None:
    modes = [m for m in args.only.split(",") if m in MODES] if args.only else list(MODES)
    if "mitmproxy" in modes and not Path(MITMDUMP).exists() and not shutil.which(MITMDUMP):
        print(f"mitmproxy: skipped, no mitmdump at {MITMDUMP} (see this file's docstring)")
        modes.remove("mitmproxy")
    if "socat" in modes and not shutil.which("socat"):
        print("socat: skipped, not installed (Debian's socat)")
        modes.remove("socat")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting: other work shares the CPUs, "
              "so the rates are noisy (the CPU-per-round-trip columns much less so)")
    workdir = Path(tempfile.mkdtemp(prefix="wsreplay-bench-", dir=args.dir))
    echo_port = free_port()
    echo = Process([sys.executable, str(HERE), "--serve", "echo", str(echo_port)], echo_port,
                   workdir, "echo")
    small, big, lat, mem, cpu = ({m: [] for m in modes} for _ in range(5))
    disk: list[float] = []
    try:
        for rnd in range(args.rounds):
            if "tcp+file" in modes or "wsreplay" in modes:
                os.sync()
                disk.append(float(subprocess.run(
                    [sys.executable, str(HERE), "--serve", "disk", str(workdir), str(args.seconds)],
                    check=True, capture_output=True, text=True).stdout))
                print(f"round {rnd + 1} disk      64KiB×8: {disk[-1]:7.0f}/s", flush=True)
            order = modes[rnd % len(modes):] + modes[: rnd % len(modes)]
            for mode in order:
                os.sync()  # no mode pays for the writeback of the one before
                proc = None if mode == "direct" else start(mode, echo_port, workdir, rnd)
                port = proc.port if proc else echo_port
                # socat forks a process per connection: its own CPU and memory are not counted
                pid = proc.popen.pid if proc and mode != "socat" else None
                try:
                    rate, small_cpu = await throughput(port, 50, 64, args.seconds, pid)
                    small[mode].append(rate)
                    rate, big_cpu = await throughput(port, 8, 64 * 1024, args.seconds, pid)
                    big[mode].append(rate)
                    cpu[mode].append((small_cpu, big_cpu))
                    lat[mode].extend(await latencies(port, args.latency_n))
                    if rnd == 0 and pid is not None:
                        mem[mode].append(await memory(port, proc.popen.pid, args.conns))
                finally:
                    if proc:
                        proc.stop()
                for f in workdir.glob("bench-*.wsr"):
                    f.unlink()
                print(f"round {rnd + 1} {mode:9s} 64B×50: {small[mode][-1]:9.0f}/s  "
                      f"64KiB×8: {big[mode][-1]:7.0f}/s", flush=True)
    finally:
        echo.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(modes, small, big, lat, mem, cpu, disk, args)


def report(modes, small, big, lat, mem, cpu, disk, args) -> None:
    med = {m: (statistics.median(small[m]), statistics.median(big[m])) for m in modes}
    d_small, d_big = med["direct"] if "direct" in med else (None, None)
    d50, d99 = (pct(lat["direct"], 0.5), pct(lat["direct"], 0.99)) if "direct" in lat else (0, 0)
    print(f"\n{args.rounds} rounds of {args.seconds:g}s, medians; ratios against direct; "
          f"{os.cpu_count()} CPUs; load average at the end {os.getloadavg()[0]:.2f}")
    print("| mode | 64 B × 50 conns (round trips/s) | ratio | proxy CPU per round trip "
          "| 64 KiB × 8 conns (round trips/s) | ratio | proxy CPU per round trip "
          "| added p50 | added p99 | RSS per idle conn | RSS with 1,000 conns |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in modes:
        s, b = med[m]
        ratio_s = f"{s / d_small:.2f}" if d_small else "-"
        ratio_b = f"{b / d_big:.2f}" if d_big else "-"
        p50 = (pct(lat[m], 0.5) - d50) * 1e3
        p99 = (pct(lat[m], 0.99) - d99) * 1e3
        added = "-" if m == "direct" else f"{p50:.3f} ms"
        added99 = "-" if m == "direct" else f"{p99:.3f} ms"
        if mem.get(m):
            before, after = mem[m][0]
            per, total = f"{(after - before) / args.conns:.1f} KiB", f"{after / 1024:.1f} MiB"
        else:
            per = total = "-"
        counted = m not in ("direct", "socat")
        cpu_s = f"{statistics.median(c[0] for c in cpu[m]):.0f} µs" if counted else "-"
        cpu_b = f"{statistics.median(c[1] for c in cpu[m]):.0f} µs" if counted else "-"
        print(f"| {m} | {s:.0f} | {ratio_s} | {cpu_s} | {b:.0f} | {ratio_b} | {cpu_b} | {added} "
              f"| {added99} | {per} | {total} |")
    if disk:
        rate = statistics.median(disk)
        ratio = f"{rate / d_big:.2f}" if d_big else "-"
        print(f"| disk (writes the 64 KiB recording, relays nothing) | - | - | - | {rate:.0f} "
              f"| {ratio} | - | - | - | - | - |")
    if "wsreplay" in med and "mitmproxy" in med:
        print(f"\nwsreplay / mitmproxy, 64 B × 50: {med['wsreplay'][0] / med['mitmproxy'][0]:.1f}×; "
              f"64 KiB: {med['wsreplay'][1] / med['mitmproxy'][1]:.1f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--latency-n", type=int, default=3000)
    parser.add_argument("--conns", type=int, default=1000, help="connections for the memory row")
    parser.add_argument("--only", help=f"comma-separated modes out of {','.join(MODES)}")
    parser.add_argument("--dir", help="folder for the recordings (default: the system temp)")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 connections need fds
    run = uvloop.run if uvloop else asyncio.run
    if args.serve and args.serve[0] == "disk":
        _disk(*args.serve[1:])
    elif args.serve:
        kind, port, *rest = args.serve
        run(_serve(kind, int(port), *(rest or [None])))
    else:
        run(bench(args))


if __name__ == "__main__":
    main()
