"""``wsreplay demo`` (record → replay → serve, end to end) and ``wsreplay demo-server``.

``demo-server`` runs the built-in sample chat (:mod:`wsreplay.demo_server`) until interrupted,
printing ``listening on PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from ..demo_server import start_demo_server

EXIT_USAGE = 2
DEFAULT_LISTEN = ("127.0.0.1", 8765)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` → (host, port); host defaults to 127.0.0.1."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]") if sep else ""
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return host or DEFAULT_LISTEN[0], port


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="record, replay and serve the sample chat, end to end",
        description="Record a session with the built-in sample server, replay it, serve it.")
    demo.add_argument("--out", metavar="DIR",
                      help="where to write the recording (default: scenarios/ if it exists, "
                           "else the current folder)")
    demo.set_defaults(func=run_demo)

    server = subparsers.add_parser(
        "demo-server", help="run the built-in sample chat server",
        description="Run the built-in sample chat server (chat on /chat?user=NAME, a page on /).")
    server.add_argument("--listen", type=parse_listen, default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help="where to listen (default 127.0.0.1:8765; port 0 picks a free one)")
    server.add_argument("--heartbeat", type=float, default=10.0, metavar="SECONDS",
                        help="send {\"type\":\"heartbeat\"} this often (0: never; default 10)")
    server.add_argument("--deterministic", action="store_true",
                        help="counter-based ids, a fixed timestamp, no heartbeat (for tests)")
    server.set_defaults(func=run_demo_server)


def run_demo(args: argparse.Namespace) -> int:
    from ..demo import run

    out = Path(args.out) if args.out else (Path("scenarios") if Path("scenarios").is_dir()
                                            else Path("."))
    try:
        ok = asyncio.run(run(out, lambda line: print(line, flush=True)))
    except OSError as exc:
        print(f"wsreplay demo: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0 if ok else 1


def run_demo_server(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve(args))
    except OSError as exc:  # typically: the port is taken
        print(f"wsreplay demo-server: cannot listen on {args.listen[0]}:{args.listen[1]}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


async def _serve(args: argparse.Namespace) -> None:
    host, port = args.listen
    runner, port = await start_demo_server(host, port, heartbeat=args.heartbeat,
                                           deterministic=args.deterministic)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {port}  (page: http://{shown}:{port}/  "
          f"chat: ws://{shown}:{port}/chat?user=NAME)", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
