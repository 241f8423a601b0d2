"""``wsreplay serve FILE...``: be the server of scenarios for real clients (a mock).

Runs until interrupted; with ``--once``, until every scenario has run once, then exits 0
(all passed) or 1. Exit 2 for a file or usage error.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from .. import fdlimit
from ..errors import ScenarioError, UsageError
from ..loader import load
from ..program import Timing
from ..serve import (HANDSHAKE_TIMEOUT, POLICY_VIOLATION, SEND_BUFFER, STALL_TIMEOUT,
                     MockServer)
from . import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_var_option, parse_vars, print_error,
               size_option)
from .demo import parse_listen
from .replay import duration_option, printer, timing_option, write_reports


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve scenarios as a mock server",
                       description="Play the server side of scenario files to any client "
                                   "and check what the clients send.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8765),
                   metavar="HOST:PORT", help="where to listen (default 127.0.0.1:8765; "
                                             "port 0 picks a free one)")
    p.add_argument("--once", action="store_true",
                   help="exit when every scenario has run once: 0 if all passed, else 1")
    p.add_argument("--timing", type=timing_option, default=Timing(True), metavar="MODE",
                   help="recorded (default), fast or a scale factor")
    add_var_option(p)
    p.add_argument("--timeout", type=duration_option, default=5.0, metavar="DURATION",
                   help="default deadline of an expectation (a file's `set timeout` wins)")
    p.add_argument("--within", type=duration_option, default=None, metavar="DURATION",
                   help="with --once: fail (exit 1) unless every scenario has run within "
                        "DURATION (a client that never comes must not hang CI)")
    p.add_argument("--keep-open", action="store_true",
                   help="do not close a deviating client's connection (default: 1008)")
    p.add_argument("--static", metavar="DIR",
                   help="answer plain HTTP GETs with this folder's files (a web app's page, "
                        "from the same origin as the mock)")
    p.add_argument("--send-buffer", type=size_option, default=SEND_BUFFER, metavar="SIZE",
                   help="bytes that may wait for one client before the mock's sends to it "
                        f"wait (default {SEND_BUFFER >> 20}MiB): memory stays bounded per client")
    p.add_argument("--stall-timeout", type=positive_duration, default=STALL_TIMEOUT,
                   metavar="DURATION",
                   help="close a client that reads nothing for DURATION while sends to it "
                        f"wait, with 1008 (default {STALL_TIMEOUT:g}s); its run fails saying so")
    p.add_argument("--handshake-timeout", type=positive_duration, default=HANDSHAKE_TIMEOUT,
                   metavar="DURATION",
                   help="close a connection whose upgrade request is not complete DURATION "
                        f"after it opened (default {HANDSHAKE_TIMEOUT:g}s)")
    p.add_argument("--json", metavar="PATH", help="write a JSON report when done")
    p.add_argument("--junit", metavar="PATH", help="write a JUnit XML report when done")
    p.set_defaults(func=run)


def positive_duration(text: str) -> float:
    value = duration_option(text)
    if value <= 0:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def run(args) -> int:
    try:
        variables = parse_vars(args.var)
        scenarios = [load(name) for name in args.files]
        if args.static is not None and not Path(args.static).is_dir():
            raise UsageError(f"--static {args.static}: no such folder")
    except (UsageError, ScenarioError) as exc:
        print_error(exc)
        return EXIT_USAGE
    except OSError as exc:
        print_error(UsageError(str(exc)))
        return EXIT_USAGE
    fdlimit.prepare("wsreplay serve", per_connection=1)  # every client takes a descriptor
    try:
        return asyncio.run(_serve(args, scenarios, variables))
    except ScenarioError as exc:
        print_error(exc)
        return EXIT_USAGE


async def _serve(args, scenarios, variables) -> int:
    host, port = args.listen
    show = printer(sys.stdout.isatty())
    server = MockServer(scenarios, host=host, port=port, timing=args.timing,
                        variables=variables, timeout=args.timeout, once=args.once,
                        fail_close=None if args.keep_open else POLICY_VIOLATION,
                        on_result=show, static=args.static,
                        log=lambda text: print(text, flush=True),
                        send_buffer=args.send_buffer, stall_timeout=args.stall_timeout,
                        handshake_timeout=args.handshake_timeout)
    try:
        await server.start()
    except OSError as exc:
        print_error(UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"))
        return EXIT_USAGE
    print(f"listening on {server.port}  (ws://{host}:{server.port}/, "
          f"{len(scenarios)} scenario{'s' * (len(scenarios) != 1)})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(stop.wait())]
    if args.once:
        waits.append(asyncio.ensure_future(server.wait_once()))
    expiry = asyncio.ensure_future(asyncio.sleep(args.within)) if args.within else None
    waited: list = []
    try:
        await asyncio.wait(waits + ([expiry] if expiry else []),
                           return_when=asyncio.FIRST_COMPLETED)
        waited = server.waiting_for()
    finally:
        for w in waits:
            w.cancel()
        await server.stop()
    results = server.results
    all_ran = args.once and waits[1].done() and not waits[1].cancelled()
    late = expiry is not None and expiry.done() and not expiry.cancelled() and not all_ran
    if expiry is not None:
        expiry.cancel()
    if late:
        names = ", ".join(f"conn {c.name} ({c.pos.path}:{c.pos.line})" for c in waited)
        print(f"not every scenario ran within {args.within:g}s ({len(results)} run"
              f"{'s' * (len(results) != 1)} ended)" + (f"; no client came for {names}"
                                                      if names else ""),
              file=sys.stderr, flush=True)
    try:
        write_reports(results, args.junit, args.json)
    except OSError as exc:
        print_error(UsageError(f"cannot write the report: {exc}"))
        return EXIT_USAGE
    failed = sum(not r.passed for r in results)
    print(f"served {len(results)} run{'s' * (len(results) != 1)}, {failed} failed", flush=True)
    if late:
        return EXIT_FAILED
    return EXIT_OK if not failed and (results or not args.once) else EXIT_FAILED
