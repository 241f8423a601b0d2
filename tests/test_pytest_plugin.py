"""The pytest plugin, run by pytest itself (pytester) against the demo server."""

from __future__ import annotations

import sys

import pytest

from .conftest import T

pytest_plugins = ["pytester"]

PASSING = """wsreplay 1
# alice joins and pings; the deterministic demo server answers with known ids
conn alice ws://127.0.0.1:1/chat?user=alice
alice < json {"type":"welcome","id":"{{me = #string}}","user":"alice"}
alice > json {"type":"ping","id":7}
alice < json {"type":"pong","id":7}
alice > close 1000
alice < close 1000
"""


@pytest.fixture
def demo(spawn):
    return spawn([sys.executable, "-m", "wsreplay", "demo-server", "--listen", "127.0.0.1:0",
                  "--deterministic"])


def run(pytester, demo, *args):
    return pytester.runpytest_subprocess(f"--wsreplay-target=ws://127.0.0.1:{demo.port}",
                                         "-p", "no:cacheprovider", *args, timeout=10 * T)


def test_a_passing_scenario_file_is_a_passing_test(pytester, demo):
    pytester.makefile(".wsr", test_chat=PASSING)
    pytester.makefile(".wsr", notcollected=PASSING.replace("7", "8"))
    result = run(pytester, demo, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_chat.wsr::test_chat PASSED*"])


def test_a_failing_scenario_shows_the_replay_report_with_the_line(pytester, demo):
    pytester.makefile(".wsr", test_pong=PASSING.replace('{"type":"pong","id":7}',
                                                       '{"type":"pong","id":8}'))
    result = run(pytester, demo)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "test_pong.wsr:6" in out
    assert '{"type":"pong","id":8}' in out and '{"type":"pong","id":7}' in out
    assert "$.id" in out
    assert "Traceback" not in out


def test_a_broken_scenario_file_shows_the_caret(pytester, demo):
    pytester.makefile(".wsr", test_broken="wsreplay 1\nconn a ws://x\na > txt hi\n")
    result = run(pytester, demo)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_broken.wsr:3:5: unknown message kind `txt`",
                                 "*a > txt hi", "*^", "hint: did you mean `text`?"])


MOCK_TESTS = '''
import aiohttp

SCENARIO = """wsreplay 1
conn c ws://127.0.0.1:1/rpc
c > json {"id":"{{rid = #number}}","method":"add","params":[1,2]}
c < json {"id":"{{rid}}","result":3}
"""

async def test_client_against_mock(wsreplay):
    async with wsreplay.serve(SCENARIO) as mock:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(mock.url + "/rpc") as ws:
                await ws.send_str('{"id":41,"method":"add","params":[1,2]}')
                reply = await ws.receive_json(timeout=TIMEOUT)
        assert reply == {"id": 41, "result": 3}
        results = await mock.wait_once(timeout=TIMEOUT)
    assert results and results[0].passed

async def test_replay_against_a_mock(wsreplay):
    client_side = SCENARIO.replace('"{{rid = #number}}"', "5").replace('"{{rid}}"', "5")
    async with wsreplay.serve(SCENARIO) as mock:
        result = await wsreplay.replay(client_side, target=mock.url)
    wsreplay.check(result)

async def test_check_fails_with_the_report(wsreplay):
    wrong = SCENARIO.replace('"{{rid = #number}}"', "5").replace('"{{rid}}","result":3', '5,"result":4')
    async with wsreplay.serve(SCENARIO) as mock:
        result = await wsreplay.replay(wrong, target=mock.url)
    wsreplay.check(result)
'''


def test_the_fixture_serves_a_mock_and_replays_against_it(pytester):
    pytester.makepyfile(test_mock=MOCK_TESTS.replace("TIMEOUT", repr(T)))
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=10 * T)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "test_check_fails_with_the_report" in out and "$.result" in out
