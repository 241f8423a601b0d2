"""One module per ``wsreplay`` subcommand; see :mod:`wsreplay.cli`.

Helpers shared by the subcommands live here: ``--var`` parsing and printing scenario
errors the same way everywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson

from ..errors import ScenarioError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_vars(items: list[str] | None) -> dict[str, Any]:
    """``--var k=v`` options → a dict; ``v`` is JSON when it parses as JSON, else a string."""
    out: dict[str, Any] = {}
    for item in items or ():
        name, eq, raw = item.partition("=")
        if not eq or not name:
            raise UsageError(f"--var takes NAME=VALUE, not {item!r}")
        try:
            out[name] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out[name] = raw
    return out


def print_error(exc: Exception) -> None:
    """A scenario or usage error on stderr: position, line and caret; never a traceback."""
    if isinstance(exc, ScenarioError):
        print(exc.render(), file=sys.stderr)
    else:
        print(f"wsreplay: {exc}", file=sys.stderr)


def add_var_option(parser) -> None:
    parser.add_argument("--var", action="append", metavar="NAME=VALUE",
                        help="set a variable (JSON value, or a string); repeatable")


def replace_file(path: str | Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` over ``path`` all at once: beside it under a hidden name, created with
    ``mode`` (else the old file's, else 0644; never wider for a moment), synced, then
    renamed. An interruption leaves the old file whole. Raises OSError."""
    path = Path(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
