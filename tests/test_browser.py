"""wsreplay with a real browser as the client, as users will use it: a web app whose page and
WebSocket come from one origin.

Debian's chromium, driven by playwright-core (``tests/peers/browser_session.js``), opens the
demo server's chat page and chats through it:

1. through ``wsreplay record`` (the page itself comes through the proxy): the recording holds
   what the page sent and showed, byte for byte, and the browser's Origin as the proxy's rules
   say (forwarded, recorded, checked against ``--allow-origin``);
2. the recording replays against a fresh deterministic demo server (``wsreplay replay``);
3. ``wsreplay serve --static`` plays it to the browser, which loads the same page from the
   mock and shows the same messages.

Every process is bounded by ``T`` and stopped by the test (or its fixture) that started it.
Locally a missing chromium or playwright-core skips these tests; under CI they fail.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from wsreplay import model as m
from wsreplay.demo_server import PAGE
from wsreplay.loader import load
from wsreplay.template import render_json_source, render_text

from .conftest import PEERS, READY, T, Proc, free_port, missing

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = PEERS / "browser_session.js"
# What the person types: a plain line, JSON-hostile characters, and braces that must not turn
# into a placeholder in the recording.
SAID = ["hello from chromium", 'quotes " \\ and ünïcödé ✓', "{{not a placeholder}}"]
CHAT = ["--user", "alice", "--say", SAID[0], "--subscribe", "--say", SAID[1], "--say", SAID[2]]


@pytest.fixture(scope="module")
def browser(node_peers) -> Path:
    """The browser peer script, once chromium and playwright-core are there."""
    if not CHROMIUM.is_file():
        missing(f"{CHROMIUM} is missing: apt-get install chromium (Debian's package)")
    if not (node_peers / "node_modules" / "playwright-core" / "package.json").is_file():
        missing("playwright-core is missing: run `npm ci --prefix tests/peers`")
    return SCRIPT


def start(args: list, procs: list[Proc], ready: bool = True, env=None) -> Proc:
    """Start ``args`` (into ``procs``, which the caller stops); with ``ready``, wait for its
    ``listening on PORT`` line and set ``proc.port``."""
    proc = Proc([str(a) for a in args], stdin=False, env=env)
    procs.append(proc)
    if ready:
        proc.port = int(READY.search(proc.wait_line(READY.search)).group(1))
    return proc


def wsreplay(*args) -> list:
    return [sys.executable, "-m", "wsreplay", *args]


@dataclass
class Session:
    """One finished browser session: its exit code and JSON events."""

    code: int
    events: list[dict]
    proc: Proc

    def log(self, direction: str | None = None) -> list[tuple[str, str]]:
        return [(e["dir"], e["data"]) for e in self.events if e["event"] == "log"
                and direction in (None, e["dir"])]

    def value(self, event: str, key: str):
        return next((e[key] for e in self.events if e["event"] == event), None)


def run_browser(script: Path, url: str, procs: list[Proc], tmp: Path, *args) -> Session:
    """Run one browser session on ``url`` to its end (bounded); chromium's fresh profile goes
    under ``tmp``, so even a killed session leaves nothing elsewhere."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = start(["node", script, url, "--timeout", f"{3 * T:.1f}", *args], procs, ready=False,
                 env=env)
    code = proc.wait(4 * T)
    return Session(code, proc.events(), proc)


def stop_recording(proc: Proc) -> None:
    proc.popen.send_signal(signal.SIGINT)
    assert proc.wait() == 0, proc.describe()


def sent_text(event: m.Event) -> str:
    """The exact text a recorded text message puts on the wire (its template rendered)."""
    payload = event.payload
    if isinstance(payload, m.Json):
        return render_json_source(payload.source, {})
    assert isinstance(payload, m.Text), event
    return render_text(payload.text, {})


@dataclass
class Recording:
    path: Path
    session: Session
    proxy_port: int
    proxy: Proc
    folder: Path


@pytest.fixture(scope="module")
def recording(browser, tmp_path_factory) -> Recording:
    """The browser chats with the demo server through ``wsreplay record`` (allowing only the
    page's own origin), then leaves; the proxy is stopped with Ctrl-C."""
    folder = tmp_path_factory.mktemp("browser")
    procs: list[Proc] = []
    try:
        demo = start(wsreplay("demo-server", "--listen", "127.0.0.1:0", "--deterministic"),
                     procs)
        port = free_port()
        proxy = start(wsreplay("record", "--target", f"ws://127.0.0.1:{demo.port}",
                               "--listen", f"127.0.0.1:{port}", "--out", folder / "chat.wsr",
                               "--allow-origin", f"http://127.0.0.1:{port}"), procs)
        session = run_browser(browser, f"http://127.0.0.1:{port}/", procs, folder, *CHAT,
                              "--leave", "--screenshot", folder / "recorded.png")
        stop_recording(proxy)
        yield Recording(folder / "chat.wsr", session, port, proxy, folder)
    finally:
        for proc in procs:
            proc.stop()


def test_the_browser_chats_through_record_and_the_file_holds_what_the_page_showed(recording):
    session = recording.session
    assert session.code == 0, session.proc.describe()
    assert session.value("page", "status") == 200  # the page itself came through the proxy
    assert session.value("state", "state") == "closed 1000"
    shown = session.log()
    said = [json.loads(data)["text"] for d, data in shown if d == "<" and '"said"' in data]
    assert said == SAID

    scenario = load(recording.path)  # parses
    (conn,) = scenario.connections()
    assert conn.url.endswith("/chat?user=alice")
    # the browser's Origin went upstream and into the file; --allow-origin let it through
    assert ("Origin", f"http://127.0.0.1:{recording.proxy_port}") in conn.headers
    data = [e for e in scenario.events()
            if isinstance(e.payload, (m.Json, m.Text))]
    assert [(e.side.value, sent_text(e)) for e in data] == shown  # byte-exact, in order
    closes = [(e.side, e.payload) for e in scenario.events() if isinstance(e.payload, m.Close)]
    assert closes[0] == (m.Side.CLIENT, m.Close(1000, "bye"))
    assert closes[1][0] is m.Side.SERVER and closes[1][1].code == 1000
    assert not any(isinstance(e.payload, m.Drop) for e in scenario.events())
    assert any(f"1 connections, {len(shown)} messages" in line
               for line in recording.proxy.lines), recording.proxy.describe()


def test_the_browser_recording_replays_against_a_fresh_demo_server(recording):
    assert recording.session.code == 0, "the recorded session failed: see the first test"
    procs: list[Proc] = []
    try:
        demo = start(wsreplay("demo-server", "--listen", "127.0.0.1:0", "--deterministic"),
                     procs)
        replay = start(wsreplay("replay", recording.path, "--target",
                                f"ws://127.0.0.1:{demo.port}"), procs, ready=False)
        assert replay.wait(2 * T) == 0, replay.describe()
    finally:
        for proc in procs:
            proc.stop()


def test_serve_plays_the_recording_to_the_browser_which_shows_the_same_messages(
        recording, browser, tmp_path):
    assert recording.session.code == 0, "the recorded session failed: see the first test"
    # The page a user's web app would ship, in a folder of its own: `serve --static` gives it
    # the mock's origin, so its WebSocket (location.host) reaches the mock.
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    procs: list[Proc] = []
    try:
        mock = start(wsreplay("serve", recording.path, "--listen", "127.0.0.1:0", "--once",
                              "--static", site), procs)
        session = run_browser(browser, f"http://127.0.0.1:{mock.port}/", procs, tmp_path, *CHAT,
                              "--leave", "--screenshot", tmp_path / "served.png")
        assert session.code == 0, session.proc.describe() + "\n" + mock.describe()
        assert session.value("page", "status") == 200
        assert session.log() == recording.session.log()
        assert mock.wait(2 * T) == 0, mock.describe()
        assert "served 1 run, 0 failed" in mock.lines, mock.describe()
    finally:
        for proc in procs:
            proc.stop()


def test_an_origin_not_allowed_is_refused_and_nothing_is_recorded(browser, tmp_path):
    procs: list[Proc] = []
    try:
        demo = start(wsreplay("demo-server", "--listen", "127.0.0.1:0", "--deterministic"),
                     procs)
        proxy = start(wsreplay("record", "--target", f"ws://127.0.0.1:{demo.port}",
                               "--listen", "127.0.0.1:0", "--out", tmp_path / "none.wsr",
                               "--allow-origin", "https://app.example"), procs)
        session = run_browser(browser, f"http://127.0.0.1:{proxy.port}/", procs, tmp_path,
                              "--say", "hi")
        stop_recording(proxy)
    finally:
        for proc in procs:
            proc.stop()
    assert session.code == 1, session.proc.describe()
    assert session.value("page", "status") == 200  # plain HTTP is not an upgrade: forwarded
    assert session.value("state", "state") == "closed 1006"  # the browser's view of a 403
    assert "closed 1006" in session.value("error", "message")
    assert session.log() == []
    assert not any(" open " in line for line in proxy.lines), proxy.describe()
    if (tmp_path / "none.wsr").exists():
        assert load(tmp_path / "none.wsr").connections() == []


def test_closing_the_tab_mid_chat_records_a_closing_handshake_that_replays(browser, tmp_path):
    """Closing the tab: chromium sends close 1001 and ends the TCP connection at once."""
    procs: list[Proc] = []
    out = tmp_path / "tab.wsr"
    try:
        demo = start(wsreplay("demo-server", "--listen", "127.0.0.1:0", "--deterministic"),
                     procs)
        proxy = start(wsreplay("record", "--target", f"ws://127.0.0.1:{demo.port}",
                               "--listen", "127.0.0.1:0", "--out", out), procs)
        session = run_browser(browser, f"http://127.0.0.1:{proxy.port}/", procs, tmp_path,
                              "--say", "hi")
        assert session.code == 0, session.proc.describe()
        proxy.wait_line(lambda line: "c1 closed" in line)
        stop_recording(proxy)
        ends = [(e.side, e.payload) for e in load(out).events()
                if isinstance(e.payload, (m.Close, m.Drop))]
        assert ends[:2] == [(m.Side.CLIENT, m.Close(1001, None)), (m.Side.SERVER, m.Close(1000))]
        # The tab may be gone before the answering close reaches it: then the recording says
        # so (`> drop`), and a drop after a complete closing handshake replays as no news.
        assert ends[2:] in ([], [(m.Side.CLIENT, m.Drop())])
        fresh = start(wsreplay("demo-server", "--listen", "127.0.0.1:0", "--deterministic"),
                      procs)
        replay = start(wsreplay("replay", out, "--target", f"ws://127.0.0.1:{fresh.port}"),
                       procs, ready=False)
        assert replay.wait(2 * T) == 0, replay.describe()
    finally:
        for proc in procs:
            proc.stop()
