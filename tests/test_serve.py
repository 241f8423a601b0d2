"""``wsreplay serve``: the mock server, driven by real clients (aiohttp, websockets, Node's
``ws``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import aiohttp
import pytest
import websockets

from wsreplay.errors import ScenarioError
from wsreplay.report import render_result
from wsreplay.serve import MockServer

from .conftest import T
from .wskit import load_text, serving

RPC = """
conn rpc ws://127.0.0.1:1/rpc?v=1
  protocol jsonrpc
  expect protocol jsonrpc
  expect header X-Mock: wsreplay
rpc < text ready
rpc > json {"jsonrpc":"2.0","id":"{{id = #number}}","method":"add","params":[1,2]}
rpc < json {"jsonrpc":"2.0","id":"{{id}}","result":3}
rpc > close 1000 done
rpc < close 1000 done
"""


async def rpc_client(url: str, request_id: int, method: str = "add"):
    async with websockets.connect(url + "/rpc?v=1", subprotocols=["jsonrpc"]) as ws:
        got = [ws.subprotocol, ws.response.headers.get("X-Mock"), await ws.recv()]
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                  "params": [1, 2]}))
        try:
            got.append(json.loads(await ws.recv()))
            await ws.close(1000, "done")
        except websockets.ConnectionClosed as closed:
            got.append((closed.rcvd.code, closed.rcvd.reason))
        got.append((ws.close_code, ws.close_reason))
        return got


async def test_serve_answers_as_recorded_and_echoes_captured_ids(tmp_path):
    async with serving(load_text(tmp_path, RPC), once=True) as server:
        got = await rpc_client(server.url, 41)
        results = await server.wait_once(T)
    assert got == ["jsonrpc", "wsreplay", "ready",
                   {"jsonrpc": "2.0", "id": 41, "result": 3}, (1000, "done")]
    assert [r.passed for r in results] == [True], render_result(results[0])


async def test_several_clients_at_once_each_get_their_own_run(tmp_path):
    async with serving(load_text(tmp_path, RPC)) as server:
        got = await asyncio.gather(*(rpc_client(server.url, i) for i in range(5)))
        for _ in range(int(T * 100)):
            if len(server.results) == 5:
                break
            await asyncio.sleep(0.01)
    assert [g[3]["id"] for g in got] == [0, 1, 2, 3, 4]
    assert len(server.results) == 5 and server.passed


async def test_a_deviating_client_gets_1008_and_the_report(tmp_path):
    reports = []
    async with serving(load_text(tmp_path, RPC), on_result=reports.append) as server:
        got = await rpc_client(server.url, 1, method="sub")
        for _ in range(int(T * 100)):
            if reports:
                break
            await asyncio.sleep(0.01)
    assert got[3] == (1008, "wsreplay: line 7: mismatch")
    report = render_result(reports[0])
    assert "s.wsr:7: rpc: the message differs at $.method" in report
    assert 'rpc > json {"jsonrpc": "2.0", "id": 1, "method": "sub", "params": [1, 2]}' in report


async def test_a_client_unlike_any_conn_line_is_refused_with_the_closest_reason(tmp_path):
    reports = []
    pinned = RPC.replace("?v=1", "\n  query v = 1")  # a query line is required
    async with serving(load_text(tmp_path, pinned), on_result=reports.append) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.url + "/rpc?v=2", subprotocols=["jsonrpc"]):
                pass
    response = refused.value.response
    assert response.status_code == 404
    assert response.body.decode() == ("wsreplay: no conn line takes this client: closest is "
                                      f"conn rpc ({tmp_path}/s.wsr:2): query v: expected "
                                      "'1', got '2'\n")
    assert "query v: expected '1', got '2'" in reports[0].failures[0].summary
    assert reports[0].failures[0].pos.line == 2


async def test_a_two_connection_scenario_is_one_run(tmp_path):
    scenario = load_text(tmp_path, """
        conn alice ws://h/chat?user=alice
        alice < json {"type":"welcome","id":"u1"}
        conn bob ws://h/chat?user=bob
        bob < json {"type":"welcome","id":"u2"}
        alice > json {"type":"say","text":"{{text = #string}}"}
        bob < json {"type":"said","from":"u1","text":"{{text}}"}
        alice < json {"type":"said","from":"u1","text":"{{text}}"}
    """)
    async with serving(scenario, once=True) as server:
        async with aiohttp.ClientSession() as session:
            alice = await session.ws_connect(server.url + "/chat?user=alice")
            assert json.loads((await alice.receive()).data)["id"] == "u1"
            bob = await session.ws_connect(server.url + "/chat?user=bob")
            assert json.loads((await bob.receive()).data)["id"] == "u2"
            await alice.send_str('{"type":"say","text":"hey"}')
            said = json.loads((await bob.receive(timeout=T)).data)
            assert said == {"type": "said", "from": "u1", "text": "hey"}
            assert json.loads((await alice.receive(timeout=T)).data)["text"] == "hey"
            results = await server.wait_once(T)
            await alice.close()
            await bob.close()
    assert len(results) == 1 and results[0].passed, render_result(results[0])


async def test_a_refused_upgrade_is_served_as_recorded(tmp_path, node_client):
    scenario = load_text(tmp_path, """
        conn a ws://h/private
          expect status 401
    """)
    async with serving(scenario, once=True) as server:
        client = node_client(server.url + "/private", steps=[])
        event = await client.await_event(event="rejected")
        results = await server.wait_once(T)
    assert event["status"] == 401 and results[0].passed


async def test_node_ws_client_runs_unchanged_against_the_mock(tmp_path, node_client):
    scenario = load_text(tmp_path, """
        conn n ws://h/feed
          protocol p2 p1
          expect protocol p2
          compress
          expect compress
          expect header X-Feed: v2
        n < text hello
        n > b64 AP8=
        n < hex 00ff00
        n > ping hex 0102
        n < pong hex 0102
        n > close 4002 bye
        n < close 4002 bye
    """)
    async with serving(scenario, once=True) as server:
        client = node_client(server.url + "/feed", "--protocols", "p2,p1", "--deflate",
                             steps=[{"wait": 1}, {"b64": "AP8="}, {"wait": 2},
                                    {"ping": "0102"}, {"sleep": 50}, {"close": [4002, "bye"]}])
        opened = await client.await_event(event="open")
        closed = await client.await_event(event="close")
        results = await server.wait_once(T)
    assert opened["protocol"] == "p2" and "permessage-deflate" in opened["extensions"]
    assert opened["headers"]["x-feed"] == "v2"
    messages = [e for e in client.events() if e["event"] == "message"]
    assert [base64.b64decode(e["b64"]) for e in messages] == [b"hello", b"\x00\xff\x00"]
    assert [e["hex"] for e in client.events() if e["event"] == "pong"] == ["0102"]
    assert (closed["code"], closed["reason"]) == (4002, "bye")
    assert results[0].passed, render_result(results[0])


async def test_serving_recorded_timing_paces_the_server_lines(tmp_path):
    scenario = load_text(tmp_path, """
        @0.000 conn t ws://h/ticks
        @0.100 t < text one
        @0.300 t < text two
    """)
    from wsreplay.program import RECORDED

    async with serving(scenario, timing=RECORDED) as server:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(server.url + "/ticks")
            loop = asyncio.get_running_loop()
            start = loop.time()
            first = await ws.receive(timeout=T)
            t1 = loop.time()
            second = await ws.receive(timeout=T)
            t2 = loop.time()
            await ws.close()
    assert (first.data, second.data) == ("one", "two")
    assert 0.08 <= t1 - start and 0.19 <= t2 - t1 <= 0.2 + T / 10


async def test_a_scenario_that_cannot_be_served_is_refused_at_construction(tmp_path):
    scenario = load_text(tmp_path, """
        conn a ws://h/
        a < regex [0-9]+
    """)
    with pytest.raises(ScenarioError) as err:
        MockServer([scenario])
    assert err.value.pos.line == 3 and err.value.message.startswith("cannot serve: ")


async def test_plain_http_gets_426(tmp_path):
    async with serving(load_text(tmp_path, RPC)) as server:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/") as response:
                assert response.status == 426


MQTT = """
conn mqtt ws://127.0.0.1:1/mqtt
  protocol mqtt
  expect protocol mqtt
mqtt > hex 10 varint( 0004 "MQTT" 04 02 003c u16({{cid = #bytes like "mqttjs_1"}}) )
mqtt < hex 20 02 00 00
mqtt > hex 82 varint( {{sid = #bytes 2 like 0001}} u16("a/b") 01 )
mqtt < hex 90 varint( {{sid}} 01 )
mqtt < hex 32 varint( u16("a/b") {{pid = #bytes 2}} "hi" )
mqtt > hex 40 02 {{pid}}
mqtt > hex e0 00
mqtt < drop
"""


async def test_serve_plays_binary_templates_to_a_client_with_its_own_ids(tmp_path):
    async with serving(load_text(tmp_path, MQTT), once=True) as server:
        async with websockets.connect(server.url + "/mqtt", subprotocols=["mqtt"]) as ws:
            await ws.send(bytes.fromhex("101000044d5154540402003c0004") + b"me42")
            connack = await ws.recv()
            await ws.send(bytes.fromhex("82080bad0003") + b"a/b\x01")
            suback, publish = await ws.recv(), await ws.recv()
            await ws.send(b"\x40\x02" + publish[7:9])
            await ws.send(b"\xe0\x00")
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)
        results = await server.wait_once(T)
    assert (connack, suback) == (bytes.fromhex("20020000"), bytes.fromhex("90030bad01"))
    assert publish[:7] == b"\x32\x09\x00\x03a/b" and publish[9:] == b"hi"
    assert [r.passed for r in results] == [True], render_result(results[0])


async def test_a_binary_template_scenario_replays_against_itself_served(tmp_path):
    from wsreplay.replay import replay_scenario

    scenario = load_text(tmp_path, MQTT)
    async with serving(scenario, once=True) as server:
        client = await replay_scenario(scenario, server.url, timeout=T)
        results = await server.wait_once(T)
    assert client.passed, render_result(client)
    assert [r.passed for r in results] == [True], render_result(results[0])


async def test_other_connections_are_served_while_one_matches_a_huge_message(tmp_path):
    """Matching runs on the event loop; on RE2 a 16 MiB text against a template with three
    #any costs milliseconds, so another client's round trips stay quick meanwhile (measured:
    at most 49 ms, while the 16 MiB crossed loopback and was matched)."""
    big = load_text(tmp_path, """
        conn big ws://h/big
        big > text a{{#any}}b{{#any}}c{{#any}}d
        big < text never
    """, name="big.wsr")
    pings = load_text(tmp_path, """
        conn p ws://h/ping
        repeat 40
          p > text ping
          p < text pong
        end
    """, name="ping.wsr")
    async with serving(big, pings, timeout=10) as server:
        async with websockets.connect(server.url + "/ping") as fast, \
                websockets.connect(server.url + "/big", max_size=None) as slow:
            rtts = []
            for i in range(40):
                if i == 5:
                    await slow.send("a" + "x" * (16 * 1024 * 1024 - 2))  # never matches
                t0 = asyncio.get_running_loop().time()
                await fast.send("ping")
                assert await asyncio.wait_for(fast.recv(), T) == "pong"
                rtts.append(asyncio.get_running_loop().time() - t0)
            closed = await asyncio.wait_for(slow.wait_closed(), T)
    assert closed is None and slow.close_code == 1008  # the big one failed, alone
    assert max(rtts) < 0.5, [f"{r * 1000:.1f}ms" for r in rtts]
