"""``wsreplay generalize FILE [-o OUT] [--diff]``: a recording made to replay and serve as it is."""

from __future__ import annotations

import sys

from ..errors import ScenarioError
from ..infer import generalize
from ..loader import read_text
from ..parser import parse
from ..writer import write
from . import EXIT_OK, EXIT_USAGE, print_error
from .fmt import _replace


def add_parser(sub) -> None:
    p = sub.add_parser("generalize", help="turn values that change between runs into "
                                          "captures and markers",
                       description="Rewrite a recording so it replays against a fresh server "
                                   "and serves an unchanged client: values that come back "
                                   "become captures and uses, values that look random or are "
                                   "timestamps become markers keeping the recorded value as "
                                   "their example. Conservative: everything else stays "
                                   "literal.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", metavar="OUT",
                   help="write the result here (the same path: in place); default: stdout")
    p.add_argument("--diff", action="store_true",
                   help="list every value generalized, and why, on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        scenario = parse(read_text(args.file), args.file)
    except ScenarioError as exc:
        print_error(exc)
        return EXIT_USAGE
    except OSError as exc:
        print(f"wsreplay: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    result, notes = generalize(scenario)
    text = write(result)
    if args.out:
        try:
            _replace(args.out, text)  # beside, then renamed: never half a file
        except FileNotFoundError:
            with open(args.out, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        except OSError as exc:
            print(f"wsreplay: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
    if args.diff:
        for note in notes:
            print(note, file=sys.stderr)
    print(f"generalized {len(notes)} value{'s' * (len(notes) != 1)} in {args.file}",
          file=sys.stderr)
    return EXIT_OK
