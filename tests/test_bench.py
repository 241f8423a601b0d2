"""bench/parse.py keeps working: a small run prints its table (the full run is by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import T

ROOT = Path(__file__).resolve().parent.parent


def test_parse_bench_runs_small(tmp_path):
    saved = tmp_path / "bench.wsr"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "parse.py"), "--events", "2000",
                           "--runs", "1", "--save", str(saved)],
                          capture_output=True, text=True, timeout=6 * T, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2,000 events: ")
    for row in ("parse (wsreplay)", "write (wsreplay)", "orjson.loads (JSONL)",
                "orjson.dumps (JSONL)"):
        assert row in done.stdout
    check = subprocess.run([sys.executable, "-m", "wsreplay", "check", str(saved)],
                           capture_output=True, text=True, timeout=4 * T)
    assert check.returncode == 0, check.stderr
    assert "ok (2000 events" in check.stdout


def test_match_bench_runs_small():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "match.py"), "--sizes", "1,8",
                           "--runs", "1"], capture_output=True, text=True, timeout=6 * T, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for row in ("regex (x+x+)+y", "text 3 #any", "binary #bytes", "json markers",
                "msgpack markers"):
        assert done.stdout.count(row) == 2, row


def test_generalize_bench_runs_small():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "generalize.py"), "--events",
                           "2000", "--runs", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "values generalized" in done.stdout and "generalize" in done.stdout.splitlines()[-1]


def test_startup_bench_runs_small():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "startup.py"), "--runs", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wsreplay check FILE" in done.stdout and "python -c pass" in done.stdout
