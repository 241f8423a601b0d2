"""``wsreplay replay FILE...``: rerun scenarios against a server; exit 0 all passed, 1 a
scenario failed, 2 a file or usage error."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ..errors import UsageError
from ..outcome import Result
from ..program import Timing
from ..replay import default_ssl, replay_paths
from ..report import json_report, junit_xml, render_result, summary_line
from . import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_var_option, parse_vars, print_error,
               replace_file)


def timing_option(value: str) -> Timing:
    import argparse

    try:
        return Timing.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_option(value: str) -> float:
    import argparse

    from ..parser import parse_duration

    try:
        return parse_duration(value) / 1e6
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub) -> None:
    p = sub.add_parser("replay", help="replay scenarios against a server",
                       description="Play the client side of scenario files against a server "
                                   "and check what it answers.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--target", metavar="URL",
                   help="connect here instead of the host in the file (ws://host:port)")
    p.add_argument("--timing", type=timing_option, default=Timing(), metavar="MODE",
                   help="recorded, fast (default) or a scale factor (0.5 halves every gap)")
    add_var_option(p)
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="run up to N files at once")
    p.add_argument("--timeout", type=duration_option, default=5.0, metavar="DURATION",
                   help="default deadline of an expectation (a file's `set timeout` wins)")
    p.add_argument("--junit", metavar="PATH", help="write a JUnit XML report")
    p.add_argument("--json", metavar="PATH", help="write a JSON report")
    p.add_argument("--cafile", metavar="PATH", help="trust this CA for wss:// servers")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify wss:// certificates")
    p.set_defaults(func=run)


def write_reports(results: list[Result], junit: str | None, json_path: str | None) -> None:
    """Write the machine reports asked for (raises OSError)."""
    if junit:  # 0600: a report may quote what a server sent
        replace_file(junit, junit_xml(results), 0o600)
    if json_path:
        replace_file(json_path, json_report(results), 0o600)


def exit_code(results: list[Result]) -> int:
    if any(r.error for r in results):
        return EXIT_USAGE
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


def printer(tty: bool):
    """Print each result as it ends: on a terminal one coloured line per scenario (and the
    report of a failure); elsewhere only failures."""

    def show(result: Result) -> None:
        if result.passed and not result.warnings and not tty:
            return
        if result.error:
            print(f"ERROR {result.name}", file=sys.stderr)
            print(result.failures[0].summary, file=sys.stderr)
            return
        sys.stdout.write(render_result(result, colour=tty))
        sys.stdout.flush()

    return show


def run(args) -> int:
    try:
        variables = parse_vars(args.var)
        if args.jobs < 1:
            raise UsageError("-j takes a number of files at once, 1 or more")
        for name in args.files:
            if not Path(name).is_file():
                raise UsageError(f"no such file: {name}")
    except UsageError as exc:
        print_error(exc)
        return EXIT_USAGE
    tty = sys.stdout.isatty()
    results = asyncio.run(replay_paths(
        args.files, args.target, jobs=args.jobs, on_result=printer(tty), timing=args.timing,
        variables=variables, timeout=args.timeout,
        ssl=default_ssl(args.cafile, args.insecure)))
    try:
        write_reports(results, args.junit, args.json)
    except OSError as exc:
        print_error(UsageError(f"cannot write the report: {exc}"))
        return EXIT_USAGE
    print(summary_line(results))  # one line even when all passed: CI logs show what ran
    return exit_code(results)
