"""``wsreplay replay`` against real servers: aiohttp, websockets and Node's ``ws``."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from wsreplay.errors import ScenarioError
from wsreplay.program import RECORDED
from wsreplay.replay import replay_paths, replay_scenario, retarget
from wsreplay.report import render_result

from .conftest import T
from .wskit import aiohttp_server, echo_handler, load_text, write_scenario


async def test_replay_against_aiohttp_sends_exact_bytes_and_checks_answers(tmp_path):
    seen: list = []
    async with aiohttp_server(echo_handler(seen, headers=[("X-Region", "eu-1")])) as port:
        scenario = load_text(tmp_path, f"""
            var greeting = "hé"
            conn a ws://127.0.0.1:{port}/echo?x=1
              protocol v1 v0
              expect protocol v1
              expect header X-Region: {{{{region = #regex [a-z]+-\\d}}}}
            a > json {{"say":"{{{{greeting}}}}", "n":  1}}
            a < json {{"n":1,"say":"hé"}}
            a > text from {{{{region}}}}
            a < text from eu-1
            a > hex 00ff10
            a < hex 00 ff 10
            a > ping 01
            a < pong 01
            a > text close
            a < close 4000 done
            a > close 4000 done
        """)
        result = await replay_scenario(scenario)
    assert result.passed, render_result(result)
    assert seen[:3] == [("TEXT", '{"say":"hé", "n":  1}'), ("TEXT", "from eu-1"),
                        ("BINARY", b"\x00\xff\x10")]
    assert ("END", 4000) in seen


async def test_replay_reports_a_changed_field_with_path_line_and_inbox(tmp_path):
    seen: list = []
    async with aiohttp_server(echo_handler(seen)) as port:
        scenario = load_text(tmp_path, f"""
            conn a ws://127.0.0.1:{port}/
            conn b ws://127.0.0.1:{port}/
            a > text x {{"price":2}}
            b > text sync
            b < text sync
            a < json {{"price":1}}
        """)  # b's echo comes after both of a's: they wait in a's inbox
        result = await replay_scenario(scenario)
    assert not result.passed
    report = render_result(result)
    assert "s.wsr:7: a: the message differs at $.price: expected 1, got 2" in report, report
    assert 'a < json {"price":1}' in report and 'received instead:\n      a < json {"price":2}'\
        in report
    assert "also in a's inbox (1):" in report


async def test_replay_reports_a_missing_reply_after_its_deadline(tmp_path):
    async with aiohttp_server(echo_handler([])) as port:
        scenario = load_text(tmp_path, f"""
            conn a ws://127.0.0.1:{port}/
            a > text one
            a < text one
            a < within 100ms text two
        """)
        result = await replay_scenario(scenario)
    f = result.failures[0]
    assert f.kind == "missing" and f.allowed == pytest.approx(0.1)
    assert 0.1 <= f.waited < T


async def test_replay_against_the_websockets_library(tmp_path):
    async def handler(ws):
        async for message in ws:
            await ws.send(message.upper() if isinstance(message, str) else message[::-1])

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        scenario = load_text(tmp_path, f"""
            conn w ws://127.0.0.1:{port}/
            w > text shout
            w < text SHOUT
            w > b64 AQID
            w < hex 030201
            w > close 1000 bye
            w < close 1000 bye
        """)
        result = await replay_scenario(scenario)
    assert result.passed, render_result(result)


async def test_replay_against_node_ws_deflate_ping_close_and_drop(tmp_path, node_server):
    server = node_server("--deflate", "--protocols", "chat", "--header", "X-Node: yes")
    scenario = load_text(tmp_path, f"""
        conn n ws://127.0.0.1:{server.port}/room?id=7
          protocol chat
          compress
          expect protocol chat
          expect compress
          expect header X-Node: yes
        n > text hello node
        n < text hello node
        n > ping hex 00ff
        n < pong hex 00ff
        n > text __close 4001 see you
        n < close 4001 see you
        n > close 4001 see you
        conn m ws://127.0.0.1:{server.port}/drop
        m > text __terminate
        m < drop
    """)
    result = await replay_scenario(scenario)
    assert result.passed, render_result(result)
    connect = await server.await_event(event="connect", conn=1)
    assert connect["path"] == "/room?id=7" and "permessage-deflate" in connect["extensions"]
    await server.await_event(event="close", conn=1, code=4001, reason="see you")
    await server.await_event(event="ping", conn=1, hex="00ff")


async def test_replay_a_refused_upgrade_as_expected_and_unexpected(tmp_path, node_server):
    server = node_server("--reject", "401")
    expected = load_text(tmp_path, f"""
        conn n ws://127.0.0.1:{server.port}/
          expect status 401
    """)
    assert (await replay_scenario(expected)).passed
    unexpected = load_text(tmp_path, f"""
        conn n ws://127.0.0.1:{server.port}/
        n > text hi
    """, "u.wsr")
    result = await replay_scenario(unexpected)
    assert result.failures[0].kind == "handshake"
    assert "expected status 101, got 401" in render_result(result)


async def test_replay_to_nothing_listening_fails_the_handshake(tmp_path):
    from .conftest import free_port

    port = free_port()
    scenario = load_text(tmp_path, f"""
        conn a ws://127.0.0.1:{port}/
    """)
    result = await replay_scenario(scenario)
    failure = result.failures[0]
    assert failure.kind == "handshake" and failure.summary == (
        f"a: no connection: nothing is listening on 127.0.0.1:{port} (connection refused)")


async def test_recorded_timing_keeps_the_gaps(tmp_path):
    seen: list = []
    loop = asyncio.get_running_loop()
    stamps: list = []

    async def handler(request):
        from aiohttp import web

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            stamps.append(loop.time())
            seen.append(msg.data)
        return ws

    async with aiohttp_server(handler) as port:
        scenario = load_text(tmp_path, f"""
            @0.000 conn a ws://127.0.0.1:{port}/
            @0.100 a > text one
            @0.300 a > text two
            @0.350 a > close 1000
            @0.351 a < close 1000
        """)
        result = await replay_scenario(scenario, timing=RECORDED)
    assert result.passed, render_result(result)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert seen == ["one", "two"] and 0.19 <= gaps[0] <= 0.2 + T / 10


async def test_a_file_payload_is_read_beside_the_scenario_and_confined(tmp_path):
    seen: list = []
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.bin").write_bytes(b"\x01\x02")
    async with aiohttp_server(echo_handler(seen)) as port:
        good = load_text(tmp_path, f"""
            conn a ws://127.0.0.1:{port}/
            a > file frames/a.bin
            a < file frames/a.bin
        """)
        assert (await replay_scenario(good)).passed
        bad = load_text(tmp_path, f"""
            conn a ws://127.0.0.1:{port}/
            a > file ../../etc/passwd
        """, "bad.wsr")
        result = await replay_scenario(bad)
    assert result.error and "bad.wsr:3" in render_result(result)


async def test_replay_paths_runs_files_concurrently_and_reports_file_errors(tmp_path):
    async with aiohttp_server(echo_handler([])) as port:
        ok = write_scenario(tmp_path, f"""
            conn a ws://127.0.0.1:{port}/
            @0.000 a > text 1
            a < text 1
        """, "ok.wsr")
        broken = write_scenario(tmp_path, "conn a\n", "broken.wsr")
        seen = []
        results = await replay_paths([ok, broken, ok], jobs=2, on_result=seen.append)
    assert [r.passed for r in results] == [True, False, True]
    assert results[1].error and "broken.wsr:2" in results[1].failures[0].summary
    assert len(seen) == 3


def test_retarget_replaces_scheme_and_host_only():
    assert retarget("ws://a:1/x?y=1", "ws://b:2") == "ws://b:2/x?y=1"
    assert retarget("wss://a/x", "b:3") == "wss://b:3/x"
    assert retarget("ws://a/x", "ws://b/prefix/") == "ws://b/prefix/x"
    assert retarget("ws://a/x", None) == "ws://a/x"


async def test_an_unplayable_scenario_raises_before_connecting(tmp_path):
    scenario = load_text(tmp_path, """
        conn a ws://127.0.0.1:1/
        a > json {"id":"#regex [0-9a-f]+"}
    """)
    with pytest.raises(ScenarioError):
        await replay_scenario(scenario)


async def test_a_server_sending_ahead_is_buffered_in_the_inbox(tmp_path):
    async with aiohttp_server(echo_handler([])) as port:
        expects = "\n".join(f"a < text {i}" for i in range(200))
        sends = "\n".join(f"a > text {i}" for i in range(200))
        path = write_scenario(tmp_path, f"conn a ws://127.0.0.1:{port}/\n{sends}\n{expects}\n")
        from wsreplay.loader import load

        result = await replay_scenario(load(path))
    assert result.passed, render_result(result)
    assert result.sent == 200 and result.matched == 201
    assert json.loads(json.dumps(result.to_dict()))["passed"] is True
