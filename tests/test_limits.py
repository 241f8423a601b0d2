"""No scenario file can exhaust memory or the stack: expansion capped before anything is
expanded, blocks and includes nested boundedly, each a clear file:line:col error, exit 2."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from wsreplay.errors import ScenarioError
from wsreplay.loader import load
from wsreplay.parser import parse
from wsreplay.program import MAX_INCLUDE_DEPTH, MAX_NESTING, MAX_STEPS

from .conftest import T

HEAD = "wsreplay 1\nconn c ws://127.0.0.1:9/x\n"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "wsreplay", *map(str, args)],
                          capture_output=True, text=True, timeout=4 * T)


def nested(depth: int) -> str:
    return HEAD + "repeat 2\n" * depth + "c > text a\n" + "end\n" * depth


def test_5000_nested_blocks_are_an_error_at_the_first_too_deep_everywhere(tmp_path):
    path = tmp_path / "deep.wsr"
    path.write_text(nested(5000))
    with pytest.raises(ScenarioError) as err:
        parse(path.read_text(), str(path))
    line = 3 + MAX_NESTING  # the first block deeper than the limit
    assert err.value.pos.line == line and f"nest at most {MAX_NESTING} deep" in err.value.message
    for args in (("check", path), ("replay", path), ("fmt", path), ("serve", "--once", path)):
        done = cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert f"{path}:{line}:1: blocks nest more than {MAX_NESTING}" in done.stderr
        assert "Traceback" not in done.stderr
    ok = tmp_path / "ok.wsr"
    ok.write_text(nested(MAX_NESTING // 4))  # 2**8 steps: fine
    assert cli("check", ok).returncode == 0


def test_a_repeat_bomb_is_refused_before_it_is_expanded(tmp_path):
    path = tmp_path / "bomb.wsr"
    path.write_text(HEAD + "repeat 1000000\n  repeat 1000000\n    c > text a\n  end\nend\n")
    t0 = time.perf_counter()
    done = cli("check", path)
    assert time.perf_counter() - t0 < 3 * T
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{path}:3:8: the run would hold more than {MAX_STEPS:,} "
                                  "steps once repeats and includes are expanded")
    assert cli("replay", path).returncode == 2


def test_an_include_bomb_is_refused_before_it_is_expanded(tmp_path):
    (tmp_path / "l0.wsr").write_text("wsreplay 1\n" + "c > text a\n" * 10)
    for level in range(1, 7):  # each file includes the one below 10 times: 10**7 lines
        (tmp_path / f"l{level}.wsr").write_text(
            "wsreplay 1\n" + f"include l{level - 1}.wsr\n" * 10)
    top = tmp_path / "top.wsr"
    top.write_text(HEAD + "include l6.wsr\n")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as err:
        load(top)
    assert time.perf_counter() - t0 < T
    assert f"more than {MAX_STEPS:,} steps" in err.value.message
    assert cli("check", top).returncode == 2


def test_includes_nest_boundedly(tmp_path):
    depth = MAX_INCLUDE_DEPTH + 1
    (tmp_path / f"i{depth}.wsr").write_text("wsreplay 1\nc > text a\n")
    for level in range(depth):
        (tmp_path / f"i{level}.wsr").write_text(f"wsreplay 1\ninclude i{level + 1}.wsr\n")
    top = tmp_path / "top.wsr"
    top.write_text(HEAD + "include i0.wsr\n")
    done = cli("check", top)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"includes nest more than {MAX_INCLUDE_DEPTH} deep" in done.stderr
