"""Exceptions, split by who is at fault.

::

    WsreplayError
    ├── ScenarioError            the scenario file is wrong (exit code 2)
    │   ├── ScenarioSyntaxError  it does not parse
    │   └── FormatVersionError   it needs a newer wsreplay
    ├── UsageError               the command was misused (exit code 2)
    └── RunError                 a run could not go on (the peer under test misbehaved)

A failed expectation is not an exception: the engine reports it as a result.
"""

from __future__ import annotations

import re

from .model import Pos

_INVISIBLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


class WsreplayError(Exception):
    """Root of every error wsreplay raises on purpose."""


class ScenarioError(WsreplayError):
    """The scenario file is wrong. ``render()`` gives ``path:line:col: message``, the line, a
    caret and a hint, ready to print."""

    def __init__(self, message: str, pos: Pos, *, source_line: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.source_line = source_line
        self.hint = hint

    def render(self) -> str:
        where = str(self.pos) if self.pos.line else self.pos.path
        out = [f"{where}: {self.message}"]
        if self.source_line is not None:
            # One visible character for each invisible one, so the caret still lines up.
            line = _INVISIBLE.sub("\ufffd", self.source_line.rstrip("\r\n"))
            # Keep tabs so the caret lines up under them in a terminal.
            pad = "".join("\t" if ch == "\t" else " " for ch in line[: max(self.pos.col - 1, 0)])
            out.append(f"  {line}")
            out.append(f"  {pad}^")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


class ScenarioSyntaxError(ScenarioError):
    """The scenario file does not parse."""


class FormatVersionError(ScenarioError):
    """The file is in a newer format than this wsreplay reads."""


class UsageError(WsreplayError):
    """The command was misused (bad option value, missing file)."""


class RunError(WsreplayError):
    """A run could not go on: a connection could not be opened, a file could not be read."""
