"""``wsreplay generalize FILE... [-o OUT] [--diff]``: recordings made to replay and serve as
they are. ``wsreplay record`` does the same to what it recorded when it stops
(:func:`generalize_file`), unless told ``--no-infer``."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from ..errors import ScenarioError
from ..infer import Inference, generalize
from ..loader import read_text
from ..parser import parse
from ..writer import write
from . import EXIT_OK, EXIT_USAGE, print_error, replace_file


def add_parser(sub) -> None:
    p = sub.add_parser("generalize", help="turn values that change between runs into "
                                          "captures and markers, heartbeats into rules",
                       description="Rewrite recordings so they replay against a fresh server "
                                   "and serve an unchanged client: values that come back "
                                   "become captures and uses, values that look random or are "
                                   "timestamps become markers keeping the recorded value as "
                                   "their example, heartbeats become rules. Conservative: "
                                   "everything else stays literal. `wsreplay record` does "
                                   "this when it stops (unless --no-infer).")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--out", metavar="OUT",
                   help="write the result here (one FILE only; the same path: in place); "
                        "default: stdout, or with --in-place each FILE itself")
    p.add_argument("-i", "--in-place", action="store_true", help="rewrite each FILE itself")
    p.add_argument("--diff", action="store_true",
                   help="list every value generalized, and why, on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.out and (len(args.files) > 1 or args.in_place):
        print("wsreplay generalize: -o takes one FILE and no --in-place", file=sys.stderr)
        return EXIT_USAGE
    worst = EXIT_OK
    for name in args.files:
        try:
            scenario = parse(read_text(name), name)
        except ScenarioError as exc:
            print_error(exc)
            worst = EXIT_USAGE
            continue
        except OSError as exc:
            print(f"wsreplay: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        result, notes = generalize(scenario)
        text = write(result)
        target = args.out or (name if args.in_place else None)
        if target is None:
            sys.stdout.write(text)
        else:
            try:
                replace_file(target, text)
            except OSError as exc:
                print(f"wsreplay: cannot write {target}: {exc.strerror or exc}",
                      file=sys.stderr)
                worst = EXIT_USAGE
                continue
        if args.diff:
            for note in notes:
                print(note, file=sys.stderr)
        print(f"generalized {len(notes)} value{'s' * (len(notes) != 1)} in {name}",
              file=sys.stderr)
    return worst


def generalize_file(path: str | Path) -> list[Inference]:
    """Generalize a finished recording in place (all at once: an interruption leaves the file
    as it was). Returns what was done. Raises ScenarioError (the file does not parse) or
    OSError."""
    scenario = parse(read_text(path), str(path))
    result, notes = generalize(scenario)
    if notes:
        replace_file(path, write(result))
    return notes


def summarize(notes: list[Inference], limit: int = 12) -> list[str]:
    """``notes`` as a few lines for a person: each kind of rewrite once, with how many and
    where (``marker #number (a timestamp of the recording's day) x120, lines 5, 9, ...``)."""
    groups: dict[tuple[str, str], list[Inference]] = defaultdict(list)
    for note in notes:
        what = "use" if note.what.startswith("use ") else note.what
        groups[(what, note.why)].append(note)
    out = []
    for (what, why), items in groups.items():
        if len(items) == 1:
            out.append(str(items[0]))
            continue
        lines = ", ".join(str(n.pos.line) for n in items[:5]) + (", ..." if len(items) > 5 else "")
        out.append(f"{what} ({why}) x{len(items)}, lines {lines}")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more kinds"]
    return out
