"""``wsreplay demo``, the README's first command: record, replay and serve, end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
import sys

from wsreplay.loader import load

from .conftest import T


def test_demo_records_replays_and_serves(tmp_path):
    result = subprocess.run([sys.executable, "-m", "wsreplay", "demo", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=12 * T)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("1. starting", "2. a scripted client", "3. replaying", "4. serving"):
        assert step in out
    assert "PASS" in out and "the same as from the real server" in out and "demo passed" in out
    files = list(tmp_path.glob("demo-chat-*.wsr"))
    assert len(files) == 1 and str(files[0]) in out
    assert os.stat(files[0]).st_mode & 0o777 == 0o600
    # the server issued fresh UUIDs and real times: the recording replayed against a fresh
    # server because it was generalized, and says so
    assert "generalized" in out and "capture id" in out and "#number" in out
    text = files[0].read_text(encoding="utf-8")
    assert '"id":"{{id = #uuid like ' in text and '"ts":"#number like ' in text
    scenario = load(files[0])
    assert len(scenario.connections()) == 2
    assert sum(1 for e in scenario.events() if e.conn == "c1") > 5
    check = subprocess.run([sys.executable, "-m", "wsreplay", "check", str(files[0])],
                           capture_output=True, text=True, timeout=6 * T)
    assert check.returncode == 0, check.stderr


def test_the_readme_language_example_passes_against_the_sample_server(tmp_path, spawn):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The language at a glance", 1)[1]
    example = section.split("```\n", 2)[1]
    path = tmp_path / "readme.wsr"
    path.write_text(example, encoding="utf-8")
    server = spawn([sys.executable, "-m", "wsreplay", "demo-server", "--listen", "127.0.0.1:0",
                    "--heartbeat", "0.05"])
    for timing in ("fast", "recorded"):
        result = subprocess.run(
            [sys.executable, "-m", "wsreplay", "replay", str(path), "--timing", timing],
            capture_output=True, text=True, timeout=6 * T,
            env={**os.environ, "DEMO_URL": f"ws://127.0.0.1:{server.port}"})
        assert result.returncode == 0, result.stdout + result.stderr
