"""``wsreplay fmt FILE... [--check]``: rewrite scenario files in canonical form."""

from __future__ import annotations

import sys

from ..errors import ScenarioError
from ..loader import read_text
from ..parser import parse
from ..writer import write
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error, replace_file


def add_parser(sub) -> None:
    p = sub.add_parser("fmt", help="rewrite scenario files in canonical form",
                       description="Rewrite scenario files in canonical form (idempotent). "
                                   "With --check, change nothing: list the files that would "
                                   "change and exit 1 if any would.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="list files that would change; exit 1")
    p.set_defaults(func=run)


def run(args) -> int:
    worst = EXIT_OK
    for name in args.files:
        try:
            original = read_text(name)
            formatted = write(parse(original, name))
        except ScenarioError as exc:
            print_error(exc)
            worst = EXIT_USAGE
            continue
        except OSError as exc:
            print(f"wsreplay: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        if formatted == original:
            continue
        if args.check:
            print(f"would reformat {name}")
            worst = max(worst, EXIT_FAILED)
        else:
            replace_file(name, formatted)
            print(f"reformatted {name}")
    return worst
