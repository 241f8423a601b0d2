"""The example scenarios under scenarios/: each one checks clean, is already in canonical form,
and survives parse → write → parse; the demo-server ones replay against the real demo server."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsreplay.parser import parse
from wsreplay.writer import write

from .conftest import T

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
EXAMPLES = sorted(SCENARIOS.rglob("*.wsr"))
IDS = [str(p.relative_to(SCENARIOS)) for p in EXAMPLES]
# The examples written for the built-in demo server (their headers say how to run them).
DEMO_EXAMPLES = ["chat-two-users.wsr", "price-ticker.wsr", "chat-repeat.wsr", "lib/login.wsr"]


def wsreplay(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsreplay", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=4 * T)


def test_there_are_enough_examples():
    names = {p.name for p in EXAMPLES}
    assert len(EXAMPLES) >= 5
    assert {"chat-two-users.wsr", "jsonrpc-echo-ids.wsr", "price-ticker.wsr",
            "binary-protocol.wsr", "refused-upgrade.wsr"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_checks_clean(path):
    done = wsreplay("check", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not even a warning
    assert done.stdout.startswith(f"{path}: ok (")


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_is_in_canonical_form(path):
    done = wsreplay("fmt", "--check", str(path))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_round_trips(path):
    text = path.read_text(encoding="utf-8")
    scenario = parse(text, str(path))
    assert write(scenario) == text
    assert parse(write(scenario)) == scenario


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_says_what_it_shows_and_how_to_run_it(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    header = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, "a header comment block right under `wsreplay 1`"
    assert "wsreplay replay" in "\n".join(header) or "wsreplay serve" in "\n".join(header)


@pytest.mark.skipif(importlib.util.find_spec("wsreplay.commands.replay") is None,
                    reason="the replay command is not written yet")
@pytest.mark.parametrize("name", DEMO_EXAMPLES)
@pytest.mark.parametrize("mode", ["--deterministic", "--heartbeat=0.05"])
def test_demo_example_replays_against_the_demo_server(spawn, name, mode):
    server = spawn([sys.executable, "-m", "wsreplay", "demo-server", "--listen", "127.0.0.1:0",
                    mode], cwd=ROOT)
    env = {**os.environ, "DEMO_URL": f"ws://127.0.0.1:{server.port}"}
    done = wsreplay("replay", str(SCENARIOS / name), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
