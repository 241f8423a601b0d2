"""The ``wsreplay`` command: parse arguments, call the API, map results to exit codes.

Exit codes: 0 everything passed, 1 a scenario failed (or ``fmt --check`` found work),
2 a usage or file error. Each subcommand lives in its own module under
``wsreplay.commands`` exposing ``add_parser(subparsers)``; the parser it adds sets
``func`` to a callable taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# One module per subcommand, in the order ``--help`` lists them.
COMMANDS = [
    "wsreplay.commands.demo",
    "wsreplay.commands.record",
    "wsreplay.commands.replay",
    "wsreplay.commands.serve",
    "wsreplay.commands.connect",
    "wsreplay.commands.check",
    "wsreplay.commands.fmt",
    "wsreplay.commands.generalize",
    "wsreplay.commands.dump",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default exit code is 2 too; keep its text
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# Commands a module adds besides the one it is named after.
_ALSO = {"demo-server": "wsreplay.commands.demo"}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a command, only that command's module is loaded (so
    ``wsreplay check`` never imports the proxy), else every one (``--help`` lists them)."""
    parser = _Parser(prog="wsreplay", description="Record, replay and mock WebSocket traffic.")
    parser.add_argument("--version", action="version", version=f"wsreplay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    first = argv[0] if argv else None
    wanted = _ALSO.get(first) or f"wsreplay.commands.{first}"
    if first == "--version":
        return parser  # answered before any command is looked at
    for name in [wanted] if wanted in COMMANDS else COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
