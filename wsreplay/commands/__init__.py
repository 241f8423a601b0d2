"""One module per ``wsreplay`` subcommand; see :mod:`wsreplay.cli`.

Helpers shared by the subcommands live here: ``--var`` and size parsing, and printing
scenario errors the same way everywhere.
"""

from __future__ import annotations

import os
import re
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


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000 ** 2, "mb": 1000 ** 2,
          "mib": 1024 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3}


def size_option(text: str) -> int:
    """An argparse type: ``4MiB``, ``512KiB``, ``1000000`` → bytes (at least 1)."""
    import argparse

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match and match[2].lower()
    if not match or unit not in _UNITS or int(float(match[1]) * _UNITS[unit]) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (like 4MiB, 512KiB, 1000000)")
    return int(float(match[1]) * _UNITS[unit])


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
