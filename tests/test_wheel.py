"""The wheel a user installs works on its own: built from this tree, installed into a fresh venv
(dependencies from the package index), its ``wsreplay`` command runs and the grammar ships.

Slow (tens of seconds, network for the build backend and dependencies): marked ``slow`` so it can
be deselected locally with ``-m "not slow"``; it is never skipped, and CI runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import T
from wsreplay import __version__

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "grammar" / "wsreplay.lark"
INSTALL_TIMEOUT = 60 * T  # building and installing from the index: minutes on a slow network

pytestmark = pytest.mark.slow


def run(args, cwd: Path, timeout: float = INSTALL_TIMEOUT) -> str:
    """Run a command outside the source tree (so nothing is imported from it); its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy: setuptools leaves build/ behind, and a stale build/lib would put
    # deleted modules into the wheel.
    source = tmp_path_factory.mktemp("src") / "wsreplay"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "node_modules", "__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source], dist)
    (built,) = dist.glob("wsreplay-*.whl")
    return built


def test_wheel_holds_the_package_and_the_grammar(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "wsreplay/cli.py" in names
    assert "wsreplay/grammar/wsreplay.lark" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    # The test venv's pip installs into the fresh one: no pip bootstrap needed there.
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel], tmp_path)

    assert run([venv / "bin" / "wsreplay", "--version"], tmp_path).strip() == f"wsreplay {__version__}"
    shipped = run([python, "-c", "import wsreplay.grammar, importlib.resources as r; "
                   "print(r.files('wsreplay.grammar').joinpath('wsreplay.lark').read_text()[:20])"],
                  tmp_path)
    assert shipped == GRAMMAR.read_text()[:20] + "\n"
    location = run([python, "-c", "import wsreplay; print(wsreplay.__file__)"], tmp_path)
    assert Path(location.strip()).is_relative_to(venv)
