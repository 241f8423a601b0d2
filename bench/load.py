"""Load, churn and soak through the recording proxy (issue 5, section 3): a benchmark, not a test.

    python bench/load.py [--conns 1000] [--messages 100] [--churn 10000] [--soak-seconds 600]
                         [--only concurrent,churn,soak] [--json PATH]

Every party is its own process on 127.0.0.1: an echo server, the server under test, and this
process generating the load (uvloop when installed). The server under test is either

* ``wsreplay``: the recording proxy — :class:`wsreplay.proxy.RecordingProxy` with a
  :class:`wsreplay.recorder.Recorder` writing one scenario file, exactly what
  ``wsreplay record -q`` runs (uvloop when installed) — or
* ``relay``: a plain aiohttp relay with no recording, the baseline run side by side.

Both carry a probe that wakes every 10 ms and reports how late it woke (event-loop lag) and the
process's resident memory, once a second on stdout.

1. **concurrent**: ``--conns`` connections open at once, then each pipelines ``--messages``
   text messages and reads the echoes: every message must come back once, in order (lost,
   duplicated, reordered are counted); the recording must hold every message event
   (2 x conns x messages) in each connection's order. Peak memory and memory per connection.
2. **churn**: ``--churn`` connections opened, used for one echo and closed (50 at a time):
   descriptors and memory before (after a warm-up) and after.
3. **soak**: ``--soak-seconds`` of steady load (50 connections, 10 messages/s each): memory and
   event-loop lag per tenth of the run, first against last (wsreplay only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

MODES = ("relay", "wsreplay")
_END = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSING)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit (inherited by the servers started later)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- the server processes -------------------------------------------------------------------

async def _lag_probe(period: float = 0.01) -> None:
    """Print, once a second, how late a 10 ms sleep woke (p50/p99/max ms) and the RSS."""
    clock = time.perf_counter  # not loop.time(): uvloop's has millisecond steps
    lags, last = [], clock()
    while True:
        start = clock()
        await asyncio.sleep(period)
        lags.append(max(0.0, clock() - start - period) * 1000)
        if clock() - last >= 1.0:
            lags.sort()
            print(json.dumps({"t": time.time(), "rss_kib": rss_kib(os.getpid()),
                              "lag_p50": lags[len(lags) // 2],
                              "lag_p99": lags[int(len(lags) * 0.99)], "lag_max": lags[-1]}),
                  flush=True)
            lags, last = [], clock()


async def _echo(request: web.BaseRequest) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        await (ws.send_str(msg.data) if msg.type is WSMsgType.TEXT else ws.send_bytes(msg.data))
    return ws


def _relay_handler(target: str, session: aiohttp.ClientSession):
    async def relay(request: web.BaseRequest) -> web.StreamResponse:
        upstream = await session.ws_connect(target + request.path_qs, autoping=False,
                                            autoclose=False, max_msg_size=0)
        client = web.WebSocketResponse(autoping=False, autoclose=False, max_msg_size=0)
        await client.prepare(request)

        async def pump(src, dst):
            while (msg := await src.receive()).type not in _END:
                await dst.send_frame(msg.data if isinstance(msg.data, bytes)
                                     else msg.data.encode(), msg.type)
            await dst.close()

        await asyncio.gather(pump(client, upstream), pump(upstream, client),
                             return_exceptions=True)
        return client

    return relay


async def _serve(kind: str, port: int, target: str, out: str) -> None:
    """Run one server (echo, relay or wsreplay) until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    probe = asyncio.create_task(_lag_probe())
    if kind == "wsreplay":
        from wsreplay.commands.record import keep_freed_memory
        from wsreplay.proxy import ProxyConfig, RecordingProxy
        from wsreplay.recorder import Recorder
        keep_freed_memory()  # as ``wsreplay record`` does at its start
        proxy = RecordingProxy(ProxyConfig(target, port=port), Recorder(Path(out), source=target))
        await proxy.start()
        print(f"listening on {port}", flush=True)
        await stop.wait()
        await proxy.stop()
    else:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        handler = _echo if kind == "echo" else _relay_handler(target, session)
        runner = web.ServerRunner(web.Server(handler, access_log=None), shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        print(f"listening on {port}", flush=True)
        await stop.wait()
        await runner.cleanup()
        await session.close()
    probe.cancel()


class Server:
    """A server process (``kind``: echo, relay, wsreplay); ``stats`` collects its probe lines."""

    def __init__(self, kind: str, target: str = "", out: Path | None = None):
        self.kind, self.port, self.out = kind, free_port(), out
        self.stats: list[dict] = []
        self.popen = subprocess.Popen(
            [sys.executable, str(HERE), "--serve", kind, str(self.port), target, str(out or "")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30):
            self.stop()
            raise RuntimeError(f"{kind} did not start: {self.popen.stderr.read().decode()[-2000:]}")
        self.url = f"ws://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.popen.stdout:
            if line.startswith(b"{"):
                self.stats.append(json.loads(line))
            elif line.startswith(b"listening on"):
                self._ready.set()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> int:
        """SIGINT, wait (bounded), return the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                return self.popen.wait(120)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


class Sampler:
    """Samples a process's RSS every ``period`` seconds while running: ``peak``."""

    def __init__(self, pid: int, period: float = 0.02):
        self.pid, self.period, self.peak = pid, period, rss_kib(pid)
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            await asyncio.sleep(self.period)

    def __enter__(self) -> "Sampler":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc) -> None:
        self.peak = max(self.peak, rss_kib(self.pid))
        self._task.cancel()


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))


# --- 1. concurrent connections ----------------------------------------------------------------

async def _conversation(ws, i: int, messages: int, size: int, go: asyncio.Event):
    sent = [f"c{i}:{j}:".ljust(size, "x") for j in range(messages)]
    await go.wait()
    for text in sent:
        await ws.send_str(text)
    got = []
    while len(got) < messages:
        msg = await ws.receive(timeout=120)
        if msg.type is not WSMsgType.TEXT:
            break
        got.append(msg.data)
    await ws.close()
    return sent, got


def _tally(pairs) -> dict:
    lost = dup = reordered = 0
    for sent, got in pairs:
        seen = set(got)
        lost += sum(1 for s in sent if s not in seen)
        dup += len(got) - len(seen)
        reordered += got != [s for s in sent if s in seen]
    return {"lost": lost, "duplicated": dup, "reordered_connections": reordered}


async def concurrent(server: Server, conns: int, messages: int, size: int) -> dict:
    """Open ``conns`` connections, then all pipeline ``messages`` messages at once."""
    await asyncio.sleep(0.5)
    base = rss_kib(server.pid)
    go = asyncio.Event()
    async with session() as http:
        with Sampler(server.pid) as sampler:
            started = time.perf_counter()
            sockets = await asyncio.gather(*(http.ws_connect(f"{server.url}/c{i}",
                                                             max_msg_size=0)
                                             for i in range(conns)))
            connected = time.perf_counter() - started
            await asyncio.sleep(0.5)
            idle = rss_kib(server.pid)
            tasks = [asyncio.create_task(_conversation(ws, i, messages, size, go))
                     for i, ws in enumerate(sockets)]
            started = time.perf_counter()
            go.set()
            pairs = await asyncio.gather(*tasks)
            took = time.perf_counter() - started
    return {"conns": conns, "messages": messages, "size": size, "connect_s": connected,
            "traffic_s": took, "msgs_per_s": 2 * conns * messages / took,
            "rss_base_kib": base, "rss_idle_kib": idle, "rss_peak_kib": sampler.peak,
            "idle_kib_per_conn": (idle - base) / conns,
            "peak_kib_per_conn": (sampler.peak - base) / conns, **_tally(pairs),
            "pairs": pairs}


def verify_recording(path: Path, pairs: list) -> dict:
    """Parse the recording; every message event in each connection's order?"""
    from wsreplay import model as m
    from wsreplay.parser import parse

    started = time.perf_counter()
    scenario = parse(path.read_text(encoding="utf-8"), str(path))
    parse_s = time.perf_counter() - started
    by_conn: dict[str, tuple[list, list]] = {}
    names = {c.name: int(c.url.rsplit("/c", 1)[1]) for c in scenario.connections()}
    events = 0
    for step in scenario.events():
        if isinstance(step.payload, m.Text):
            events += 1
            out, back = by_conn.setdefault(step.conn, ([], []))
            (out if step.side is m.Side.CLIENT else back).append(step.payload.text)
    wrong = sum(by_conn.get(name, ([], [])) != (pairs[i][0], pairs[i][1])
                for name, i in names.items())
    return {"file_mib": path.stat().st_size / 2 ** 20, "message_events": events,
            "connections": len(names), "connections_not_matching": wrong, "parse_s": parse_s}


# --- 2. churn --------------------------------------------------------------------------------

async def _churn(url: str, n: int, parallel: int = 50) -> int:
    done = 0

    async def worker(start: int) -> None:
        nonlocal done
        async with session() as http:
            for i in range(start, n, parallel):
                async with http.ws_connect(f"{url}/churn{i}") as ws:
                    await ws.send_str(f"churn {i}")
                    msg = await ws.receive(timeout=60)
                    assert msg.data == f"churn {i}", msg
                done += 1

    await asyncio.gather(*(worker(k) for k in range(parallel)))
    return done


async def _settled_fds(pid: int, target: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (n := open_fds(pid)) > target and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return n


async def churn(server: Server, n: int) -> dict:
    """After a warm-up of 500, ``n`` connections opened and closed (50 at a time), twice:
    descriptors and memory before, after the first round and after the second (memory a
    process has once used is often kept; what matters is that it stops growing)."""
    cold_fds, cold_rss = open_fds(server.pid), rss_kib(server.pid)
    await _churn(server.url, 500)
    await asyncio.sleep(1.0)
    fds, rss = await _settled_fds(server.pid, cold_fds), rss_kib(server.pid)
    row = {"connections": 0, "seconds": 0.0, "fds_cold": cold_fds, "fds_before": fds,
           "rss_cold_kib": cold_rss, "rss_before_kib": rss}
    with Sampler(server.pid, 0.05) as sampler:
        for round_ in (1, 2):
            started = time.perf_counter()
            row["connections"] += await _churn(server.url, n)
            row["seconds"] += time.perf_counter() - started
            await asyncio.sleep(1.0)
            row[f"fds_after_{round_}"] = await _settled_fds(server.pid, fds)
            row[f"rss_after_{round_}_kib"] = rss_kib(server.pid)
    row["rss_peak_kib"] = sampler.peak
    row["conns_per_s"] = row["connections"] / row["seconds"]
    return row


# --- 3. soak ---------------------------------------------------------------------------------

async def soak(server: Server, seconds: float, conns: int = 50, rate: float = 10.0) -> dict:
    """Steady load for ``seconds``; the server's own per-second probe lines are the data."""
    end = time.monotonic() + seconds
    sent = 0

    async def steady(i: int, http) -> None:
        nonlocal sent
        async with http.ws_connect(f"{server.url}/soak{i}") as ws:
            n = 0
            while time.monotonic() < end:
                await ws.send_str(f"soak {i} {n} " + "s" * 100)
                assert (await ws.receive(timeout=60)).type is WSMsgType.TEXT
                n += 1
                sent += 1
                await asyncio.sleep(1 / rate)

    first, load_before = len(server.stats), os.getloadavg()[0]
    async with session() as http:
        await asyncio.gather(*(steady(i, http) for i in range(conns)))
    return {"seconds": seconds, "conns": conns, "messages": sent,
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
            **_trend(server.stats[first:])}


def _trend(stats: list[dict]) -> dict:
    """First tenth against last tenth of the run (medians of the per-second samples, so one
    busy second on a shared machine does not decide), and least-squares slopes."""
    if len(stats) < 10:
        return {"samples": len(stats)}
    k = max(1, len(stats) // 10)
    head, tail = stats[:k], stats[-k:]
    median = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    xs = [r["t"] - stats[0]["t"] for r in stats]
    slope = lambda key: statistics.linear_regression(  # noqa: E731
        xs, [r[key] for r in stats]).slope * 60
    return {"samples": len(stats), "rss_first_kib": median(head, "rss_kib"),
            "rss_last_kib": median(tail, "rss_kib"), "rss_slope_kib_per_min": slope("rss_kib"),
            "lag_p99_first_ms": median(head, "lag_p99"),
            "lag_p99_last_ms": median(tail, "lag_p99"),
            "lag_p99_slope_ms_per_min": slope("lag_p99"),
            "lag_max_ms": max(r["lag_max"] for r in stats)}


# --- running and reporting -----------------------------------------------------------------

async def run_concurrent(args, echo: Server, folder: Path) -> dict:
    rows = {}
    for mode in MODES:
        out = folder / f"concurrent-{mode}.wsr"
        server = Server(mode, echo.url, out)
        try:
            row = await concurrent(server, args.conns, args.messages, args.size)
        finally:
            row_exit = server.stop()
        pairs = row.pop("pairs")
        row["lag_max_ms"] = max((s["lag_max"] for s in server.stats), default=None)
        if mode == "wsreplay":
            row["exit_code"] = row_exit
            row["recording"] = verify_recording(out, pairs)
        rows[mode] = row
        print(f"  concurrent {mode}: {_short(row)}", flush=True)
        if "recording" in row:
            print(f"  recording: {_short(row['recording'])}", flush=True)
    return rows


async def run_churn(args, echo: Server, folder: Path) -> dict:
    rows = {}
    for mode in MODES:
        server = Server(mode, echo.url, folder / f"churn-{mode}.wsr")
        try:
            rows[mode] = await churn(server, args.churn)
        finally:
            server.stop()
        print(f"  churn {mode}: {_short(rows[mode])}", flush=True)
    return rows


async def run_soak(args, echo: Server, folder: Path) -> dict:
    out = folder / "soak-wsreplay.wsr"
    server = Server("wsreplay", echo.url, out)
    try:
        row = await soak(server, args.soak_seconds)
    finally:
        server.stop()
    row["file_mib"] = out.stat().st_size / 2 ** 20
    print(f"  soak wsreplay: {_short(row)}", flush=True)
    return {"wsreplay": row}


def _short(row: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items() if not isinstance(v, dict))


def machine() -> dict:
    import aiohttp as _aiohttp
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(), "cpu": model,
            "python": platform.python_version(), "aiohttp": _aiohttp.__version__,
            "uvloop": uvloop is not None, "load_average": os.getloadavg()[0],
            "system": f"{platform.system()} {platform.release()}"}


async def bench(args) -> dict:
    parts = set((args.only or "concurrent,churn,soak").split(","))
    result = {"machine": machine(), "fd_limit": raise_fd_limit()}
    with tempfile.TemporaryDirectory(prefix="wsreplay-load-", dir=args.dir) as tmp:
        folder = Path(tmp)
        echo = Server("echo")
        try:
            for name, part in (("concurrent", run_concurrent), ("churn", run_churn),
                               ("soak", run_soak)):
                if name in parts:
                    print(f"{name}...", flush=True)
                    result[name] = await part(args, echo, folder)
        finally:
            echo.stop()
    result["machine"]["load_average_after"] = os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--churn", type=int, default=10_000)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--only", help="comma-separated parts: concurrent, churn, soak")
    parser.add_argument("--dir", help="folder for the recordings (default: the system temp)")
    parser.add_argument("--json", help="write the figures here (bench/reliability_report.py)")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = uvloop.run if uvloop else asyncio.run
    if args.serve:
        kind, port, target, out = args.serve
        run(_serve(kind, int(port), target, out))
        return
    raise_fd_limit()
    result = run(bench(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
