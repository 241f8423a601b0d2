"""Replay and serve speed, in one run (issue 4, section 5).

    python bench/replay.py [--messages N] [--events N] [--size BYTES]

Prints three figures:

1. replay throughput (``--timing fast``) against an echo server, as a ratio to a plain
   aiohttp client loop sending the same messages the same way (lockstep: send, await the
   echo) — aim >= 0.7;
2. serve throughput under one client's lockstep load, as a ratio to a plain aiohttp echo
   server under the same load — aim >= 0.7;
3. the deviation of each send from its schedule in ``--timing recorded`` for a scenario of
   ``--events`` events (half sends, half expected echoes, 1 ms apart): p50 / p99 / max —
   aim p99 < 2 ms on an idle machine.

The echo server (1) and the client load (2) run in their own processes, so the side being
measured has its core to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiohttp import WSMsgType, web  # noqa: E402

from wsreplay import model as m  # noqa: E402
from wsreplay.driver import Driver  # noqa: E402
from wsreplay.program import FAST, RECORDED  # noqa: E402
from wsreplay.replay import replay_scenario  # noqa: E402
from wsreplay.serve import MockServer  # noqa: E402

C, S = m.Side.CLIENT, m.Side.SERVER
ROUNDS = 3


# --- helper processes -----------------------------------------------------------------


async def start_echo(port: int = 0) -> web.AppRunner:
    """A plain aiohttp echo server (text messages) on 127.0.0.1: the baseline."""

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def echo_server(port: int = 0) -> None:
    runner = await start_echo(port)
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


async def plain_client(url: str, count: int, size: int) -> float:
    """Seconds for ``count`` lockstep round trips with aiohttp."""
    payload = "x" * size
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            start = time.perf_counter()
            for _ in range(count):
                await ws.send_str(payload)
                await ws.receive()
            elapsed = time.perf_counter() - start
    return elapsed


def spawn(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"helper did not start: {line!r}")
    return proc, int(line.split()[2])


def run_client_process(url: str, count: int, size: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--role", "client", "--url", url,
                          "--messages", str(count), "--size", str(size)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


# --- scenarios ------------------------------------------------------------------------


def echo_scenario(url: str, count: int, size: int, spacing_us: int | None = None):
    payload = m.Text("x" * size)
    steps: list = [m.Connect("a", url, at=0)]
    for i in range(count):
        at = None if spacing_us is None else (i + 1) * spacing_us
        steps.append(m.Event("a", C, payload, at=at))
        steps.append(m.Event("a", S, payload))
    return m.Scenario(tuple(steps), path="<bench>")


# --- the three measurements -------------------------------------------------------------


async def bench_replay(count: int, size: int) -> tuple[float, float]:
    proc, port = spawn("--role", "echo")
    try:
        url = f"ws://127.0.0.1:{port}/echo"
        scenario = echo_scenario(url, count, size)
        plain = replayed = 0.0
        for _ in range(ROUNDS):  # best of: the machine's noise only ever slows a round
            plain = max(plain, count / await plain_client(url, count, size))
            start = time.perf_counter()
            result = await replay_scenario(scenario, timing=FAST)
            replayed = max(replayed, count / (time.perf_counter() - start))
            assert result.passed, result.failures[:1]
    finally:
        proc.kill()
        proc.wait()
    return plain, replayed


async def bench_serve(count: int, size: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    server_task = asyncio.ensure_future(_plain_echo_on(0))
    port = await server_task_port(server_task)
    url = f"ws://127.0.0.1:{port}/echo"
    plain = 0.0
    for _ in range(ROUNDS):
        elapsed = await loop.run_in_executor(None, run_client_process, url, count, size)
        plain = max(plain, count / elapsed)
    server_task.cancel()
    mock = MockServer([echo_scenario("ws://h/echo", count, size)], timing=FAST)
    await mock.start()
    served = 0.0
    try:
        for i in range(ROUNDS):
            elapsed = await loop.run_in_executor(None, run_client_process, f"{mock.url}/echo",
                                                 count, size)
            served = max(served, count / elapsed)
            for _ in range(500):
                if len(mock.results) > i:
                    break
                await asyncio.sleep(0.01)
        assert len(mock.results) == ROUNDS and mock.passed, mock.results[:1]
    finally:
        await mock.stop()
    return plain, served


_ports: dict = {}


async def _plain_echo_on(port: int) -> None:
    runner = await start_echo(port)
    _ports[asyncio.current_task()] = runner.addresses[0][1]
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def server_task_port(task: asyncio.Task) -> int:
    while task not in _ports:
        await asyncio.sleep(0.01)
    return _ports[task]


async def bench_schedule(events: int, size: int) -> list[float]:
    """Deviation (seconds) of each send from its recorded schedule."""
    deviations: list[float] = []
    original = Driver._send

    async def timed(self, action):
        if action.step is not None and action.step.at is not None:
            due = self.engine.t0 + action.step.at * 1e-6
            deviations.append(self._loop.time() - due)
        await original(self, action)

    proc, port = spawn("--role", "echo")
    Driver._send = timed
    try:
        scenario = echo_scenario(f"ws://127.0.0.1:{port}/echo", events // 2, size,
                                 spacing_us=1000)
        result = await replay_scenario(scenario, timing=RECORDED)
        assert result.passed, result.failures[:1]
    finally:
        Driver._send = original
        proc.kill()
        proc.wait()
    return deviations


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(args) -> None:
    print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
          f"{args.messages} messages of {args.size} bytes, lockstep")
    plain, replayed = await bench_replay(args.messages, args.size)
    print(f"replay (fast): {replayed:,.0f} msg/s vs plain aiohttp client {plain:,.0f} msg/s"
          f"  -> ratio {replayed / plain:.2f}")
    plain, served = await bench_serve(args.messages, args.size)
    print(f"serve:         {served:,.0f} msg/s vs plain aiohttp echo server {plain:,.0f} msg/s"
          f"  -> ratio {served / plain:.2f}")
    dev = await bench_schedule(args.events, args.size)
    ms = [d * 1000 for d in dev]
    print(f"recorded timing, {args.events} events ({len(ms)} sends, 1 ms apart): deviation "
          f"p50 {pct(ms, 50):.3f} ms, p99 {pct(ms, 99):.3f} ms, max {max(ms):.3f} ms, "
          f"mean {statistics.fmean(ms):.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--role", choices=["main", "echo", "client"], default="main")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.role == "echo":
        asyncio.run(echo_server())
    elif args.role == "client":
        print(asyncio.run(plain_client(args.url, args.messages, args.size)))
    else:
        asyncio.run(main(args))
