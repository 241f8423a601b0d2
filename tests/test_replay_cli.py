"""``wsreplay replay`` and ``wsreplay serve`` as commands: exit codes, output, reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import websockets

from .conftest import T, free_port
from .wskit import write_scenario


def scenario_for(port: int, answer: str) -> str:
    return f"""
        conn a ws://127.0.0.1:{port}/
        a > json {{"n":1}}
        a < json {answer}
    """


def test_replay_exit_codes_and_reports(tmp_path, node_server, spawn, python_exe):
    server = node_server()
    good = write_scenario(tmp_path, scenario_for(1, '{"n":1}'), "good.wsr")
    bad = write_scenario(tmp_path, scenario_for(1, '{"n":2}'), "bad.wsr")
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    target = f"ws://127.0.0.1:{server.port}"

    ok = spawn([python_exe, "-m", "wsreplay", "replay", good, "--target", target], ready=False)
    assert ok.wait() == 0 and ok.lines == ["1 passed, 0 failed (1 scenario)"]  # one summary line

    failed = spawn([python_exe, "-m", "wsreplay", "replay", good, bad, "--target", target,
                    "-j", "2", "--junit", junit, "--json", report], ready=False)
    assert failed.wait() == 1
    out = "\n".join(failed.lines)
    assert f"FAIL {bad}" in out and "bad.wsr:4: a: the message differs at $.n" in out
    assert "1 passed, 1 failed (2 scenarios)" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.findall("testcase")[1].find("failure")
    assert failure.get("type") == "mismatch" and "$.n" in failure.text
    doc = json.loads(report.read_text())
    assert doc["passed"] is False and doc["results"][1]["failures"][0]["path"] == "$.n"
    assert doc["results"][1]["failures"][0]["line"] == 4


def test_replay_to_a_host_not_listening_says_so_once_in_its_own_words(
        tmp_path, spawn, python_exe):
    port = free_port()
    path = write_scenario(tmp_path, scenario_for(port, '{"n":1}'), "down.wsr")
    proc = spawn([python_exe, "-m", "wsreplay", "replay", path], ready=False)
    assert proc.wait() == 1  # a failed connection, like a refused handshake
    out = "\n".join(proc.lines + proc.stderr_lines)
    said = f"a: no connection: nothing is listening on 127.0.0.1:{port} (connection refused)"
    assert f"down.wsr:2: {said}" in out
    assert out.count("nothing is listening") == 1  # no "difference:" line repeating it
    assert "Cannot connect" not in out and "Connect call failed" not in out  # aiohttp's text
    assert out.splitlines()[-1] == "0 passed, 1 failed (1 scenario)"


def test_replay_file_and_usage_errors_exit_2(tmp_path, spawn, python_exe):
    broken = write_scenario(tmp_path, "conn a\n", "broken.wsr")
    proc = spawn([python_exe, "-m", "wsreplay", "replay", broken], ready=False)
    assert proc.wait() == 2
    assert "broken.wsr:2" in "\n".join(proc.stderr_lines)
    missing = spawn([python_exe, "-m", "wsreplay", "replay", tmp_path / "nope.wsr"], ready=False)
    assert missing.wait() == 2 and "no such file" in "\n".join(missing.stderr_lines)
    timing = spawn([python_exe, "-m", "wsreplay", "replay", broken, "--timing", "soon"],
                   ready=False)
    assert timing.wait() == 2 and "bad timing 'soon'" in "\n".join(timing.stderr_lines)


async def test_serve_once_exits_0_after_a_good_client_and_1_after_a_bad_one(
        tmp_path, spawn, python_exe):
    path = write_scenario(tmp_path, """
        conn a ws://h/x
        a < text hi
        a > text {{#regex [a-z]+}}
        a < text bye
    """)
    for reply, code in (("ok", 0), ("NOT OK", 1)):
        server = spawn([python_exe, "-m", "wsreplay", "serve", path, "--listen",
                        "127.0.0.1:0", "--once", "--json", tmp_path / "serve.json"])
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/x") as ws:
            assert await ws.recv() == "hi"
            await ws.send(reply)
            if code == 0:
                assert await ws.recv() == "bye"
        assert await server.await_exit(T) == code
        out = "\n".join(server.lines)
        assert ("served 1 run, 0 failed" if code == 0 else "served 1 run, 1 failed") in out
        if code:
            assert "s.wsr:4: a: the message differs" in out
            assert ws.close_code == 1008
        assert json.loads((tmp_path / "serve.json").read_text())["passed"] is (code == 0)


async def test_serve_once_within_fails_when_no_client_comes(tmp_path, spawn, python_exe):
    path = write_scenario(tmp_path, """
        conn a ws://h/x
        a < text hi
    """)
    server = spawn([python_exe, "-m", "wsreplay", "serve", path, "--listen", "127.0.0.1:0",
                    "--once", "--within", "300ms"])
    assert await server.await_exit(T) == 1
    assert "not every scenario ran within 0.3s (0 runs ended)" in "\n".join(server.stderr_lines)
    assert "served 0 runs, 0 failed" in "\n".join(server.lines)
