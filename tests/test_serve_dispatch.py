"""``wsreplay serve`` choosing a client's connection by its handshake, then by what it sends:
real clients (aiohttp, websockets, Node's ``ws``) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import websockets

from wsreplay.report import render_result
from wsreplay.serve import MockServer

from .conftest import T
from .wskit import load_text, serving, write_scenario

# Two clients recorded at once on one path, told apart only by what each sends first.
SUBS = """
conn news ws://h/feed
conn sport ws://h/feed
news > json {"op":"sub","topic":"news"}
news < json {"op":"subbed","topic":"news","n":1}
sport > json {"op":"sub","topic":"sport"}
sport < json {"op":"subbed","topic":"sport","n":2}
news > text bye
news < close 1000
sport > text bye
sport < close 1000
"""
NEWS = """
conn news ws://h/feed
news > json {"op":"sub","topic":"news"}
news < json {"op":"subbed","topic":"news","n":1}
news > text bye
news < close 1000
"""
SPORT = NEWS.replace("news", "sport").replace('"n":1', '"n":2')


async def subscriber(session: aiohttp.ClientSession, url: str, topic: str, start=None):
    ws = await session.ws_connect(url + "/feed")
    if start is not None:
        await start.wait()
    await ws.send_str(json.dumps({"op": "sub", "topic": topic}))
    got = await ws.receive(timeout=T)
    if got.type is not aiohttp.WSMsgType.TEXT:
        await ws.close()
        return (got.type, got.data, got.extra), None
    reply = json.loads(got.data)
    await ws.send_str("bye")
    closing = await ws.receive(timeout=T)
    await ws.close()
    return reply, closing.data


async def wait_results(server: MockServer, n: int) -> list:
    for _ in range(int(T * 100)):
        if len(server.results) >= n:
            break
        await asyncio.sleep(0.01)
    return server.results


async def in_order(session, url, *topics):
    """Clients connecting one after the other (each connected before the next), talking at
    once."""
    tasks = []
    for topic in topics:
        tasks.append(asyncio.ensure_future(subscriber(session, url, topic)))
        await asyncio.sleep(0.05)
    return await asyncio.gather(*tasks)


async def test_two_clients_told_apart_by_content_pass_in_reversed_order(tmp_path):
    async with serving(load_text(tmp_path, SUBS), once=True) as server:
        async with aiohttp.ClientSession() as session:
            sport, news = await in_order(session, server.url, "sport", "news")
        results = await server.wait_once(T)
    assert sport == ({"op": "subbed", "topic": "sport", "n": 2}, 1000)
    assert news == ({"op": "subbed", "topic": "news", "n": 1}, 1000)
    assert len(results) == 1 and results[0].passed, render_result(results[0])
    notes = "\n".join(results[0].notes)
    assert "conn sport (" in notes and "s.wsr:3) chosen among 2 candidates" in notes
    assert "dropped conn news (" in notes and "s.wsr:2): line 4: " in notes


async def test_split_files_served_with_once_each_run_once_in_either_order(tmp_path):
    """One file per connection (as ``record --split`` writes them), both on one path: with
    --once each file runs once, whichever client comes first, one after the other or at
    once, as the unsplit file does."""
    files = [load_text(tmp_path, NEWS, "rec-1-news.wsr"),
             load_text(tmp_path, SPORT, "rec-2-sport.wsr")]
    for together in (False, True):
        async with serving(*files, once=True) as server:
            async with aiohttp.ClientSession() as session:
                if together:
                    got = await in_order(session, server.url, "sport", "news")
                else:
                    got = [await subscriber(session, server.url, "sport"),
                           await subscriber(session, server.url, "news")]
            results = await server.wait_once(T)
        assert [g[0]["n"] for g in got] == [2, 1]
        assert sorted(r.name.rsplit("/", 1)[-1] for r in results) == ["rec-1-news.wsr",
                                                                      "rec-2-sport.wsr"]
        assert all(r.passed for r in results), [render_result(r) for r in results]


async def test_identical_split_connections_run_in_recorded_order(tmp_path):
    files = [load_text(tmp_path, NEWS, "rec-1.wsr"),
             load_text(tmp_path, NEWS.replace('"n":1', '"n":7'), "rec-2.wsr")]
    async with serving(*files, once=True) as server:
        async with aiohttp.ClientSession() as session:
            got = [await subscriber(session, server.url, "news") for _ in range(2)]
        results = await server.wait_once(T)
    assert [g[0]["n"] for g in got] == [1, 7] and all(r.passed for r in results)


async def test_a_deviating_client_fails_alone_and_the_others_pass(tmp_path):
    async with serving(load_text(tmp_path, SUBS), once=True) as server:
        async with aiohttp.ClientSession() as session:
            bad, good, late = await in_order(session, server.url, "weather", "sport", "news")
        results = await server.wait_once(T)
    kind, code, reason = bad[0]
    assert (kind, code) == (aiohttp.WSMsgType.CLOSE, 1008)
    assert reason == "wsreplay: no scenario connection fits (closest: line 4)"
    assert good[0]["topic"] == "sport" and late[0]["topic"] == "news"
    alone, run = results
    assert not alone.passed and run.passed, render_result(run)
    report = render_result(alone)
    assert "matched no scenario connection; the closest, conn news (" in report
    assert "s.wsr:4: " in report and "first difference at $.topic" in report
    assert 'expected "news", got "weather"' in report


async def test_node_ws_clients_told_apart_by_what_they_send(tmp_path, node_client):
    scenario = load_text(tmp_path, """
        conn a ws://h/bin
        conn b ws://h/bin
        a > b64 AQ==
        a < text one
        b > b64 Ag==
        b < text two
        a > close 1000
        a < close 1000
        b > close 1000
        b < close 1000
    """)
    async with serving(scenario, once=True) as server:
        b = node_client(server.url + "/bin", steps=[{"b64": "Ag=="}, {"wait": 1},
                                                   {"close": [1000, ""]}])
        await b.await_event(event="open")
        a = node_client(server.url + "/bin", steps=[{"b64": "AQ=="}, {"wait": 1},
                                                   {"close": [1000, ""]}])
        await a.await_event(event="close")
        await b.await_event(event="close")
        results = await server.wait_once(T)
    said = [[base64.b64decode(e["b64"]) for e in p.events() if e["event"] == "message"]
            for p in (a, b)]
    assert said == [[b"one"], [b"two"]]
    assert results[0].passed, render_result(results[0])


ENGINE_IO = """
conn eio ws://h/socket.io/?EIO=4&transport=websocket&t=1796476037.017929
eio < text 0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}
eio > text 40
eio < text 40{"sid":"def"}
eio > close 1000
eio < close 1000
"""


async def test_an_engine_io_cache_buster_that_differs_each_run_is_served(tmp_path):
    async with serving(load_text(tmp_path, ENGINE_IO)) as server:
        for stamp in ("1800000000.5", "PZ3kq1x"):
            url = f"{server.url}/socket.io/?EIO=4&transport=websocket&t={stamp}"
            async with websockets.connect(url) as ws:
                assert (await ws.recv()).startswith("0{")
                await ws.send("40")
                assert await ws.recv() == '40{"sid":"def"}'
        results = await wait_results(server, 2)
    assert [r.passed for r in results] == [True, True], [render_result(r) for r in results]


async def test_serve_log_names_dispatch_refusal_and_no_aiohttp_protocol_warning(
        tmp_path, spawn, python_exe):
    news_file = write_scenario(tmp_path, NEWS, "news.wsr")
    sport_file = write_scenario(tmp_path, SPORT, "sport.wsr")
    path = write_scenario(tmp_path, """
conn proto ws://h/p
  protocol x
  expect no protocol
proto > text hi
conn chosen ws://h/q
  protocol y
  expect protocol y
chosen > text hi
""")
    server = spawn([python_exe, "-m", "wsreplay", "serve", news_file, sport_file, path,
                    "--listen", "127.0.0.1:0"])
    url = f"ws://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as session:
        news = await subscriber(session, url, "news")
        # a client offering subprotocols the mock answers with none, then correctly
        for where, offered in (("/p", ["x", "z"]), ("/q", ["z", "y"])):
            async with session.ws_connect(url + where, protocols=offered) as ws:
                await ws.send_str("hi")
        async with session.get(url.replace("ws:", "http:") + "/nowhere",
                               headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                        "Sec-WebSocket-Version": "13"}) as refused:
            body = await refused.text()
    assert news[0]["n"] == 1
    assert refused.status == 404
    assert body.startswith("wsreplay: no conn line takes this client: closest is conn ")
    assert "path: expected '/feed', got '/nowhere'" in body
    await server.await_line(lambda line: "unlike any conn line" in line)
    server.stop()
    out, err = "\n".join(server.lines), "\n".join(server.stderr_lines)
    assert "client /feed: conn news (" in out and "dropped conn sport (" in out
    assert "a client connected to /nowhere unlike any conn line: closest is conn " in out
    assert "overlap" not in err and "Client protocols" not in err, err


async def test_serve_once_within_names_the_connections_it_waited_for(
        tmp_path, spawn, python_exe):
    one = write_scenario(tmp_path, "conn a ws://h/x\na < text hi\n", "one.wsr")
    two = write_scenario(tmp_path, "conn b ws://h/y\nb < text hi\nconn c ws://h/z\n",
                         "two.wsr")
    server = spawn([python_exe, "-m", "wsreplay", "serve", one, two, "--listen",
                    "127.0.0.1:0", "--once", "--within", "200ms"])
    assert await server.await_exit(T) == 1
    err = "\n".join(server.stderr_lines)
    assert (f"not every scenario ran within 0.2s (0 runs ended); no client came for conn a "
            f"({one}:2), conn b ({two}:2), conn c ({two}:4)") in err


async def test_a_real_split_recording_served_together_behaves_like_the_unsplit_one(tmp_path):
    """``record --split`` through the real proxy: two clients on one path, told apart only by
    what they send. Served with --once, the split files and the unsplit recording each answer
    both clients connecting in the reverse of the recorded order. (Both clients are connected
    at once: the unsplit file's order says news is answered before sport is, so a sport client
    alone would wait for it; split files have no such order between them.)"""
    from wsreplay.loader import load

    from .record_helpers import ScriptedServer, aiohttp_peer, recording_proxies, settled

    async def talk(session, url: str, word: str) -> list[str]:
        async with session.ws_connect(url + "/topic") as ws:
            await ws.send_str(json.dumps({"op": "sub", "topic": word}))
            got = [(await ws.receive(timeout=T)).data]
            await ws.close()
        return got

    upstream = ScriptedServer()
    async with aiohttp_peer(upstream.handle) as port:
        for split in (True, False):
            async with recording_proxies(tmp_path / f"split-{split}") as record:
                (tmp_path / f"split-{split}").mkdir(exist_ok=True)
                proxy = await record(f"ws://127.0.0.1:{port}", split=split)
                async with aiohttp.ClientSession() as session:
                    for word in ("news", "sport"):
                        await talk(session, proxy.url, word)
                await settled(proxy)
    split_files = sorted((tmp_path / "split-True").glob("*.wsr"))
    unsplit = sorted((tmp_path / "split-False").glob("*.wsr"))
    assert len(split_files) == 2 and len(unsplit) == 1
    for files in (split_files, unsplit):
        async with serving(*[load(f) for f in files], once=True) as server:
            async with aiohttp.ClientSession() as session:
                sport = asyncio.ensure_future(talk(session, server.url, "sport"))
                await asyncio.sleep(0.2)  # sport connects first
                got = await asyncio.gather(sport, talk(session, server.url, "news"))
            results = await server.wait_once(T)
        assert [json.loads(g[0])["topic"] for g in got] == ["sport", "news"]
        assert results and all(r.passed for r in results), \
            [render_result(r, verbose=True) for r in results]
    async with serving(*[load(f) for f in split_files], once=True) as server:
        async with aiohttp.ClientSession() as session:  # split: one after the other works too
            got = [await talk(session, server.url, w) for w in ("sport", "news")]
        results = await server.wait_once(T)
    assert [json.loads(g[0])["topic"] for g in got] == ["sport", "news"]
    assert len(results) == 2 and all(r.passed for r in results)
