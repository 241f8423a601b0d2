"""Read scenario files: decode, parse, and splice ``include`` d files in.

The only part of the language that touches the file system. Paths named by a scenario
(``include``, ``file``) are relative to the file that names them and must stay inside the
*root* -- the folder of the top-level scenario -- so a scenario from anyone cannot read
files elsewhere on the machine.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import model as m
from .errors import ScenarioError
from .parser import parse


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8); a ScenarioError says which byte is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
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
    cyclic or out-of-root include, and ScenarioSyntaxError for a file that does not parse."""
    top = Path(path)
    root = top.resolve().parent
    text = _read(top)
    scenario = parse(text, str(path))
    steps = _expand(scenario.steps, top.resolve(), root, (top.resolve(),), text)
    return m.Scenario(steps, scenario.version, str(path))


def _expand(steps: tuple, here: Path, root: Path, chain: tuple[Path, ...], text: str) -> tuple:
    out: list = []
    for step in steps:
        if isinstance(step, m.Include):
            try:
                target = resolve(root, here.parent, step.path, step.pos)
            except ScenarioError as exc:
                raise _at(step.pos, text, exc.message) from None
            if target in chain:
                names = " → ".join(p.name for p in (*chain, target))
                raise _at(step.pos, text, f"include cycle: {names}")
            if not target.is_file():
                raise _at(step.pos, text, f"cannot include {step.path!r}: no such file")
            inner = _read(target)
            included = parse(inner, str(target))
            out.extend(_expand(included.steps, target, root, (*chain, target), inner))
        elif isinstance(step, (m.Unordered, m.Repeat)):
            out.append(replace(step, steps=_expand(step.steps, here, root, chain, text)))
        else:
            out.append(step)
    return tuple(out)


def file_reader(scenario_path: str | Path):
    """A ``read(relative, pos) -> bytes`` for ``file`` payloads, confined to the scenario's
    folder; pass it to the engine."""
    root = Path(scenario_path).resolve().parent

    def read(relative: str, pos: m.Pos) -> bytes:
        base = Path(pos.path).resolve().parent if pos.path not in ("", "<memory>") else root
        target = resolve(root, base, relative, pos)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise ScenarioError(f"cannot read {relative!r}: {exc.strerror or exc}", pos) from None

    return read
