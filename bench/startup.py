"""How long a short ``wsreplay`` command takes to start, against the interpreter's own start.

Side by side, in turns, best of ``--runs`` each (wall time of the whole process):

* ``python -c pass``: the baseline;
* ``import the core``: the language and the engine (model, parser, writer, engine, lint);
* ``wsreplay check FILE`` on a small scenario (the grammar from its cache: run once first);
* ``wsreplay --version``.

The ``ratio`` column is time / baseline (issue 13 aims at ``check`` within 6x). Usage::

    python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORE = "import wsreplay.model, wsreplay.parser, wsreplay.writer, wsreplay.engine, wsreplay.lint"


def _time(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "small.wsr"
        scenario.write_text("wsreplay 1\nconn c ws://127.0.0.1:9/chat\nc > text hello\n"
                            'c < json {"ok":true,"id":"#uuid"}\nc > close 1000\n')
        py = sys.executable
        rows = {"python -c pass": [py, "-c", "pass"],
                "import the core": [py, "-c", CORE],
                "wsreplay check FILE": [py, "-m", "wsreplay", "check", str(scenario)],
                "wsreplay --version": [py, "-m", "wsreplay", "--version"]}
        _time(rows["wsreplay check FILE"])  # the grammar's cache, built once
        best = {name: float("inf") for name in rows}
        for _ in range(args.runs):
            for name, cmd in rows.items():
                best[name] = min(best[name], _time(cmd))
    base = best["python -c pass"]
    print(f"{'':24}{'seconds':>9}{'ratio':>8}")
    for name in rows:
        print(f"{name:24}{best[name]:>9.3f}{best[name] / base:>8.1f}")


if __name__ == "__main__":
    main()
