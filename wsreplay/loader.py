"""Read scenario files: decode, parse, and splice ``include`` d files in.

The only part of the language that touches the file system. Paths named by a scenario
(``include``, ``file``) are relative to the file that names them and must stay inside the
*root* -- the folder of the top-level scenario -- so a scenario from anyone cannot read
files elsewhere on the machine.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

from . import model as m
from .errors import ScenarioError
from .parser import parse
from .program import MAX_INCLUDE_DEPTH, MAX_NESTING, measure


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8); a ScenarioError says which byte is not UTF-8."""
    return decode(Path(path).read_bytes(), path)


def decode(data: bytes, path: str | Path = "<memory>") -> str:
    """A scenario file's bytes as text (UTF-8); a ScenarioError says which byte is not.

    One exception: a recording cut by a kill (:class:`wsreplay.sink.Sink`) can end in a
    comment line stopped at a page boundary in the middle of a character; that last comment
    reads with the broken character replaced, so the file still parses."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and b"\n" not in data[exc.start:] \
                and data[data.rfind(b"\n", 0, exc.start) + 1:][:1] == b"#":
            return data.decode("utf-8", "replace")
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError(f"the file is not UTF-8 (byte 0x{data[exc.start]:02x})",
                            m.Pos(str(path), line, col)) from None


def parse_file(path: str | Path) -> m.Scenario:
    """Parse one file as it is (``include`` stays a step): what ``check`` and ``fmt`` see."""
    return parse(_read(path), str(path))


def _read(path: str | Path) -> str:
    try:
        return read_text(path)
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror or exc}",
                            m.Pos(str(path), 0, 0)) from None


def _at(pos: m.Pos, text: str, message: str) -> ScenarioError:
    lines = text.split("\n")
    line = lines[pos.line - 1] if 0 < pos.line <= len(lines) else None
    return ScenarioError(message, pos, source_line=line)


def resolve(root: Path, base: Path, relative: str, pos: m.Pos) -> Path:
    """``relative`` (named at ``pos`` in a file in folder ``base``) as a path inside ``root``."""
    target = (base / relative).resolve()
    if not target.is_relative_to(root):
        raise ScenarioError(f"{relative!r} is outside the scenario's folder {str(root)!r}", pos)
    return target


def load(path: str | Path) -> m.Scenario:
    """The scenario at ``path`` with every ``include`` replaced by the included file's steps
    (their positions point into that file). Raises ScenarioError for a missing, unreadable,
    cyclic or out-of-root include, for includes nested more than ``MAX_INCLUDE_DEPTH`` deep,
    blocks nested more than ``MAX_NESTING`` deep across includes, and a program over
    ``MAX_STEPS`` steps -- all found before anything is expanded, each file parsed once --
    and ScenarioSyntaxError for a file that does not parse."""
    top = Path(path)
    files = _Files(top.resolve().parent)
    text = _read(top)
    scenario = parse(text, str(path))
    here = top.resolve()
    files.parsed[here] = (text, scenario)
    files.measure(here, scenario, (here,))
    steps = files.expand(scenario.steps, here, text)
    return m.Scenario(steps, scenario.version, str(path))


class _Files:
    """The files one load reads: each parsed once and measured once (``(size, block
    height, include height)``), so an include fan-out is refused before it is expanded."""

    def __init__(self, root: Path):
        self.root = root
        self.parsed: dict[Path, tuple[str, m.Scenario]] = {}
        self.sizes: dict[Path, tuple[int, int, int]] = {}

    def target(self, step: m.Include, here: Path, text: str, chain: tuple[Path, ...]) -> Path:
        try:
            target = resolve(self.root, here.parent, step.path, step.pos)
        except ScenarioError as exc:
            raise _at(step.pos, text, exc.message) from None
        if target in chain:
            names = " → ".join(p.name for p in (*chain, target))
            raise _at(step.pos, text, f"include cycle: {names}")
        if not target.is_file():
            raise _at(step.pos, text, f"cannot include {step.path!r}: no such file")
        if target not in self.parsed:
            inner = _read(target)
            self.parsed[target] = (inner, parse(inner, str(target)))
        return target

    def measure(self, here: Path, scenario: m.Scenario,
                chain: tuple[Path, ...]) -> tuple[int, int, int]:
        if here in self.sizes:
            return self.sizes[here]
        text = self.parsed[here][0]
        include_height = 0

        def included(step: m.Include, depth: int) -> tuple[int, int]:
            nonlocal include_height
            target = self.target(step, here, text, chain)
            size, height, below = self.measure(target, self.parsed[target][1],
                                               (*chain, target))
            if len(chain) + below > MAX_INCLUDE_DEPTH:
                raise _at(step.pos, text, f"includes nest more than {MAX_INCLUDE_DEPTH} deep "
                                          f"here ({chain[0].name} → … → {target.name}; at "
                                          f"most {MAX_INCLUDE_DEPTH})")
            if depth + height > MAX_NESTING:
                raise _at(step.pos, text, f"blocks nest more than {MAX_NESTING} deep with "
                                          f"{step.path} included here ({depth} around the "
                                          f"include, {height} inside the file)")
            include_height = max(include_height, below + 1)
            return size, height

        try:
            size, height = measure(scenario.steps, included)
        except ScenarioError as exc:
            if exc.source_line is not None:
                raise
            raise _at(exc.pos, text, exc.message) from None
        self.sizes[here] = (size, height, include_height)
        return self.sizes[here]

    def expand(self, steps: tuple, here: Path, text: str) -> tuple:
        out: list = []
        for step in steps:
            if isinstance(step, m.Include):
                target = self.target(step, here, text, ())
                inner, included = self.parsed[target]
                out.extend(self.expand(included.steps, target, inner))
            elif isinstance(step, (m.Unordered, m.Repeat)):
                out.append(replace(step, steps=self.expand(step.steps, here, text)))
            else:
                out.append(step)
        return tuple(out)


def file_reader(scenario_path: str | Path):
    """A ``read(relative, pos) -> bytes`` for ``file`` payloads, confined to the scenario's
    folder; pass it to the engine. Only a regular file is read: a FIFO, a device
    (``/dev/zero``), a directory (or a symlink to one) is refused at once, never read (it
    would block the run or never end)."""
    root = Path(scenario_path).resolve().parent

    def read(relative: str, pos: m.Pos) -> bytes:
        base = Path(pos.path).resolve().parent if pos.path not in ("", "<memory>") else root
        target = resolve(root, base, relative, pos)
        try:
            return _read_regular(target)
        except _NotRegular as exc:
            raise ScenarioError(f"cannot read {relative!r}: {exc} (a file payload is read "
                                "from a regular file)", pos) from None
        except OSError as exc:
            raise ScenarioError(f"cannot read {relative!r}: {exc.strerror or exc}", pos) from None

    return read


class _NotRegular(Exception):
    pass


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _read_regular(target: Path) -> bytes:
    # Open without blocking (a FIFO with no writer would wait forever), then ask the open
    # file what it is: no window for a swap between a check and the read.
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise _NotRegular(f"it is {kind}" if kind.startswith("a ") else kind)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            return fh.read()
    finally:
        if fd >= 0:
            os.close(fd)
