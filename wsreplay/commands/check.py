"""``wsreplay check FILE...``: parse and lint; exit 0 clean, 1 lint errors, 2 syntax or file
errors (and what replay and serve refuse before running: a pattern RE2 cannot compile, a file
over the expansion or nesting limits, an undefined variable, a line that cannot be played from
one side -- ``cannot replay:`` / ``cannot serve:``, per side, ``--side`` for one)."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import model as m
from ..errors import ScenarioError, UsageError
from ..lint import ERROR, lint
from ..loader import file_reader, load
from ..program import flatten, unplayable
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_var_option, parse_vars, print_error


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="parse and lint scenario files",
                       description="Parse scenario files and check what a run would trip on: "
                                   "undefined variables and connections, unknown markers, "
                                   "include cycles.")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_var_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.add_argument("--side", choices=("replay", "serve"),
                   help="check that the file can be played from this side only (default: "
                        "both: replay sends the > lines, serve the < lines)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        defined = parse_vars(args.var)
    except UsageError as exc:
        print_error(exc)
        return EXIT_USAGE
    worst = EXIT_OK
    for name in args.files:
        worst = max(worst, check_file(name, defined, args.quiet, args.side))
    return worst


def check_file(name: str, defined: dict, quiet: bool = False, side: str | None = None) -> int:
    """Check one file, print what is wrong; return its exit code."""
    try:
        scenario = load(name)
    except ScenarioError as exc:
        print_error(exc)
        return EXIT_USAGE
    diagnostics = lint(scenario, defined, file_reader(name))
    lines: dict[str, list[str]] = {}
    for d in diagnostics:
        source = lines.setdefault(d.pos.path, _lines(d.pos.path))
        text = source[d.pos.line - 1] if 0 < d.pos.line <= len(source) else None
        pos = d.pos
        if d.needle and text and d.needle in text:  # the caret on the text at fault
            pos = m.Pos(pos.path, pos.line, text.index(d.needle) + 1)
        err = ScenarioError(f"{d.severity}: {d.message}", pos, source_line=text)
        print(err.render(), file=sys.stderr)
    errors = sum(d.severity == ERROR for d in diagnostics)
    if any(d.refused for d in diagnostics):
        return EXIT_USAGE  # replay and serve would refuse the file: a file error
    stuck = _unplayable(scenario, side)
    for err in stuck:
        source = lines.setdefault(err.pos.path, _lines(err.pos.path))
        text = source[err.pos.line - 1] if 0 < err.pos.line <= len(source) else None
        print(ScenarioError(err.message, err.pos, source_line=text).render(), file=sys.stderr)
    if stuck:
        return EXIT_USAGE  # replay or serve would refuse the file before running
    if not errors and not quiet:
        warnings = len(diagnostics)
        events = len(scenario.events())
        print(f"{name}: ok ({events} event{'s' * (events != 1)}"
              + (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else "") + ")")
    return EXIT_FAILED if errors else EXIT_OK


def _unplayable(scenario, side: str | None) -> list[ScenarioError]:
    """The lines that cannot be played from each side (one side with ``side``)."""
    try:
        program = flatten(scenario.steps)
    except ScenarioError:
        return []  # the linter has said why the file cannot run at all
    sides = [m.Side.CLIENT, m.Side.SERVER]
    if side is not None:
        sides = [m.Side.CLIENT if side == "replay" else m.Side.SERVER]
    return [err for s in sides for err in unplayable(program, s)]


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").split("\n")
    except OSError:
        return []
